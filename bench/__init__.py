"""Benchmarks: `python -m bench [NAME ...] [-- options]` (`make bench` runs them all)."""
