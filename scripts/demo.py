"""The main job on the default scenario: what ``make demo`` runs.

Trains a DQN with the runner for a couple of minutes (TensorBoard curves in ``runs/``), then
evaluates it on held-out seeds next to random, most-popular and the (privileged) myopic oracle
and prints the table. The same as ``recsim-marl demo``:

    python scripts/demo.py [--steps 100000] [--preset default] [--quiet] [--json]
"""

from __future__ import annotations

import sys

from agents.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``recsim-marl demo`` with these arguments."""
    return cli_main(["demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
