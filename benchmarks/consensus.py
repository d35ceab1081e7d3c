"""The consensus study: ``python benchmarks/consensus.py --quick`` (the library code, spec,
runs and report, is :mod:`agents.experiments.consensus`; ``--help`` lists the options)."""

from agents.experiments.consensus import main

if __name__ == "__main__":
    raise SystemExit(main())
