"""Run benchmarks by name: `python -m bench` runs all, `python -m bench ingest --customers N`
runs one with its own options (see `python -m bench ingest --help`)."""

from __future__ import annotations

import importlib
import sys

# name -> module with `main(argv)`; the order is the order `python -m bench` runs them in.
BENCHMARKS = {
    "ingest": "bench.ingest",
    "customer_value": "bench.customer_value",
    "segments": "bench.segments",
    "funnels": "bench.funnels",
    "load": "bench.load",
}


def main(argv: list[str]) -> None:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(BENCHMARKS))
        return
    if argv and not argv[0].startswith("-"):
        if argv[0] not in BENCHMARKS:
            sys.exit(f"bench: unknown benchmark {argv[0]!r}; known: {', '.join(BENCHMARKS)}")
        names, options = [argv[0]], argv[1:]
    else:
        names, options = list(BENCHMARKS), argv
    for name in names:
        importlib.import_module(BENCHMARKS[name]).main(options)


if __name__ == "__main__":
    main(sys.argv[1:])
