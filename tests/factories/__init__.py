"""Small typed factories, one module per domain."""
