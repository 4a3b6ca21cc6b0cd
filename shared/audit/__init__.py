"""The audit log: which API key changed or erased what, and when."""
