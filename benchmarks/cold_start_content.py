"""Cold start with LLM-assisted item content: the entry point of
:mod:`agents.experiments.cold_start` (protocol, seeds and outputs are described there).

Usage::

    python benchmarks/cold_start_content.py --workers 2   # the full study (-> results/cold_start)
    python benchmarks/cold_start_content.py --quick       # smoke run (seconds)
    python benchmarks/cold_start_content.py --replot      # rewrite md + png from results.json
"""

from __future__ import annotations

import os

# One BLAS / OpenMP thread per process, set before numpy loads BLAS: with other processes on
# the cores, multi-threaded BLAS spin-waits (LinUCB's solves ran 40x slower without this).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from agents.cli import ArgumentParser  # noqa: E402
from agents.experiments import cold_start  # noqa: E402
from agents.experiments.common import RESULTS_ROOT, new_results_dir  # noqa: E402

COMMITTED = RESULTS_ROOT / "cold_start"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = ArgumentParser(prog="benchmarks/cold_start_content.py",
                       description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny budgets (smoke test)")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--encoders", nargs="+", default=None, choices=cold_start.ENCODERS)
    p.add_argument("--recommenders", nargs="+", default=None, choices=cold_start.RECOMMENDERS)
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, default=None,
                       help="number of reporting seeds, from 100 (default 5; --quick 2)")
    seeds.add_argument("--reporting-seeds", type=int, nargs="+", default=None,
                       help="explicit reporting seeds (never a tuning seed: "
                            f"{', '.join(map(str, cold_start.TUNING_SEEDS))})")
    p.add_argument("--eval-steps", type=int, default=None,
                   help="world steps of the evaluation window")
    p.add_argument("--dqn-steps", type=int, default=None, help="DQN training env steps")
    p.add_argument("--out", type=Path, default=None,
                   help=f"results folder (default: a new {COMMITTED}-<time>/; --out "
                        f"{COMMITTED} rewrites the committed results)")
    p.add_argument("--replot", nargs="?", const="", default=None, metavar="DIR",
                   help=f"only redraw results.md and results.png from DIR/results.json (default "
                        f"{COMMITTED}) into a new folder beside DIR, or into --out")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be >= 1")
    try:
        reporting = args.reporting_seeds
        if args.seeds is not None:
            reporting = cold_start.default_reporting_seeds(args.seeds)
        args.spec = cold_start.study_spec(
            quick=args.quick, encoders=args.encoders, recommenders=args.recommenders,
            reporting_seeds=tuple(reporting) if reporting else None,
            eval_steps=args.eval_steps, dqn_steps=args.dqn_steps)
    except ValueError as e:
        p.error(str(e))
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run (or replot) the study; prints results.md and returns the result."""
    args = parse_args(argv)
    if args.replot is not None:
        # read DIR/results.json; write beside DIR unless --out says where (DIR itself included)
        source = Path(args.replot) if args.replot else (args.out or COMMITTED)
        if not (source / "results.json").is_file():
            print(f"cold_start_content.py: error: --replot: no results.json in {str(source)!r}",
                  file=sys.stderr)
            raise SystemExit(2)
        args.out = args.out or new_results_dir(f"{source.name}-replot", source.parent)
        args.out.mkdir(parents=True, exist_ok=True)
        if args.out.resolve() != source.resolve():
            shutil.copyfile(source / "results.json", args.out / "results.json")
        result = cold_start.replot(args.out)
    else:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        logging.getLogger("recsim_env").setLevel(logging.WARNING)  # one line per encoder
        command = "python benchmarks/cold_start_content.py " + " ".join(
            sys.argv[1:] if argv is None else argv)
        args.out = args.out or new_results_dir(COMMITTED.name)
        result = cold_start.run_study(args.spec, out=args.out, workers=args.workers,
                                      command=command.strip())
    print((args.out / "results.md").read_text())
    return result


if __name__ == "__main__":
    main()
