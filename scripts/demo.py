"""The main job on the default scenario: what ``make demo`` runs.

Trains a DQN with the runner (``agents.cli.DEMO_STEPS`` env steps, about two minutes on one
core; TensorBoard curves in ``runs/``), then evaluates it on held-out seeds next to random,
most-popular and the (privileged) myopic oracle, prints the table, what each column means, a
one-sentence verdict and the path of its learning-curve plot. The same as
``recsim-marl demo``; ``--help`` lists the options:

    python scripts/demo.py [--steps N] [--preset default] [--quiet] [--json]
"""

from __future__ import annotations

import sys

from agents.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``recsim-marl demo`` with these arguments."""
    return cli_main(["demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
