"""The `portrait` command."""
