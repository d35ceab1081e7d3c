"""The throughput study: ``python benchmarks/throughput.py --help`` (the library code is
:mod:`agents.experiments.throughput`)."""

from agents.experiments.throughput import main

if __name__ == "__main__":
    raise SystemExit(main())
