"""The benchmark suite: ``python benchmarks/suite.py --suite quick`` is ``recsim-marl
benchmark --suite quick`` (the library code is :mod:`agents.experiments.suite`)."""

from agents.experiments.suite import main

if __name__ == "__main__":
    raise SystemExit(main())
