"""Tenants (stores), their API keys and their webhook secrets."""
