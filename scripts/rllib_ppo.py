"""RLlib PPO on the multi-agent world: recommenders and providers, each role its own policy.

    python scripts/rllib_ppo.py --iterations 20                      # default, 2 providers
    python scripts/rllib_ppo.py --iterations 20 --env-runners 2      # sample in 2 actors
    python scripts/rllib_ppo.py --address auto ...                   # on a running cluster

Needs the extra ``ray`` (``pip install 'recsim-marl[ray]'``). Prints each iteration's mean
episode return per policy and env steps per second, saves the algorithm
(``--checkpoint``, default ``runs/rllib_ppo``) and reads it back with
``Algorithm.from_checkpoint``. The adapter and its defaults: :mod:`recsim_env.rllib`.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy and torch are imported

import argparse  # noqa: E402
import sys  # noqa: E402

import recsim_env  # noqa: E402
from agents.cli import ArgumentParser, int_at_least, parse_value  # noqa: E402

TINY = {"n_users": 100, "n_items_initial": 60, "n_items_max": 200, "max_cycles": 20}
"""World of ``--tiny`` (tests and smoke runs)."""


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = ArgumentParser(prog="scripts/rllib_ppo.py", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default", choices=recsim_env.PRESETS,
                   help="the scenario (default default)")
    p.add_argument("--providers", type=int_at_least(0), default=2,
                   help="provider agents, one policy for all of them (default 2)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. n_recommenders=8 (repeatable)")
    p.add_argument("--iterations", type=int_at_least(1), default=20,
                   help="PPO iterations (default 20)")
    p.add_argument("--env-runners", type=int_at_least(0), default=0,
                   help="remote env-runner actors (0: sample in this process; default 0)")
    p.add_argument("--batch", type=int_at_least(1), default=4000,
                   help="env steps per iteration (train_batch_size_per_learner, default 4000)")
    p.add_argument("--max-cycles", type=int_at_least(1), default=200,
                   help="world steps per episode (default 200)")
    p.add_argument("--lr", type=float, default=3e-4, help="learning rate (default 3e-4)")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="RLlib's seed (default 0)")
    p.add_argument("--checkpoint", default="runs/rllib_ppo",
                   help="where to save the algorithm (default runs/rllib_ppo)")
    p.add_argument("--address", default=None,
                   help="Ray cluster, e.g. auto or HEAD:6379 (default: a local instance)")
    p.add_argument("--tiny", action="store_true",
                   help="a 100-user world, 20-step episodes, 40-step batches, 8-unit networks "
                        "(tests)")
    p.add_argument("--quiet", action="store_true", help="only the final lines")
    return p


def main(argv: list[str] | None = None) -> int:
    """Train, save, restore; exit status 2 on a bad argument."""
    args = build_parser().parse_args(argv)
    env_config = {"preset": args.preset, "n_providers": args.providers,
                  "max_cycles": args.max_cycles, **(TINY if args.tiny else {})}
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            print(f"scripts/rllib_ppo.py: error: --set expects KEY=VALUE, got {item!r}",
                  file=sys.stderr)
            return 2
        env_config[key.strip()] = parse_value(raw.strip())
    batch = 40 if args.tiny else args.batch
    try:
        from agents.experiments.ray_backend import train_ppo

        def show(row):
            if not args.quiet:
                per_role = "  ".join(f"{k} {v:.1f}" for k, v in row["module_returns"].items())
                print(f"iteration {row['iteration']}: return {row['return']:.1f} ({per_role})"
                      f"  {row['steps_per_s']:.0f} env steps/s", flush=True)

        out = train_ppo(env_config, iterations=args.iterations,
                        num_env_runners=args.env_runners, seed=args.seed,
                        checkpoint=args.checkpoint, address=args.address,
                        model_hidden=(8,) if args.tiny else None, on_iteration=show,
                        lr=args.lr, train_batch_size_per_learner=batch,
                        minibatch_size=min(batch, 128 if not args.tiny else 20),
                        num_epochs=1 if args.tiny else 5)
    except ValueError as e:
        print(f"scripts/rllib_ppo.py: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    from ray.rllib.algorithms.algorithm import Algorithm

    restored = Algorithm.from_checkpoint(out["checkpoint"])
    try:
        iteration = restored.iteration
    finally:
        restored.stop()
    print(f"policies: {', '.join(out['modules'])}\ncheckpoint: {out['checkpoint']} "
          f"(restored at iteration {iteration})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
