"""Personas: evidence-based portraits of target segments, kept current."""
