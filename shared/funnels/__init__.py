"""Funnels and customer journeys."""
