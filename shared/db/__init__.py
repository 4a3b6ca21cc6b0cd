"""Database access: the declarative base, engines and the per-tenant unit of work."""
