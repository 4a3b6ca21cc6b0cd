"""Customer profiles: typed facts with their sources, computed behaviour, erasure and export."""
