"""Portrait's processes: the HTTP API, the arq worker and the `portrait` command."""
