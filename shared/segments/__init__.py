"""Segments: rule-based audiences, data-driven segmentation and STP targeting."""
