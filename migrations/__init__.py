"""Alembic migrations: reviewed by hand, reversible, checked against the models by a test."""
