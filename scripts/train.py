"""Train learners in the simulated world and log to TensorBoard.

    python scripts/train.py --preset default --learner dqn --steps 200000 --n-sessions 64
    python scripts/train.py --preset default --learner dqn --provider-learner ppo \
        --set n_providers=2 --set n_recommenders=4
    python scripts/train.py --resume runs/<run>/checkpoint.pt ...   # continue a run

Prints the run directory (``runs/<scenario>__<algo>__<seed>__<time>``), evaluates on
held-out seeds, and checkpoints atomically (Ctrl-C stops cleanly with a checkpoint).
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path
from typing import Any

import torch

import recsim_env
from agents.cli import ArgumentParser, int_at_least
from agents.factory import learner_names, make_learner
from agents.hparams import learner_hparams
from agents.runner import RunConfig, Runner


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["n_users=100", "choice_model=mnl"]`` -> dict, values parsed as Python literals."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            out[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key.strip()] = raw
    return out


def build_parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = ArgumentParser(prog="scripts/train.py", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="default", choices=recsim_env.PRESETS,
                   help="the scenario")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (repeatable)")
    p.add_argument("--learner", default="dqn", choices=learner_names(),
                   help="learner shared by every recommender")
    p.add_argument("--provider-learner", choices=learner_names(), default=None,
                   help="learner shared by the provider agents (needs --set n_providers=N)")
    p.add_argument("--user-learner", choices=learner_names(), default=None,
                   help="one learner per user agent (needs --set n_user_agents=N)")
    p.add_argument("--learner-kwargs", type=_json_dict, default={},
                   help="JSON dict of recommender learner options on top of the learner's "
                        "table for the preset (configs/learners/<learner>.toml), "
                        'e.g. \'{"gamma": 0.9}\'')
    p.add_argument("--steps", type=int_at_least(1), default=100_000,
                   help="env steps (session-steps)")
    p.add_argument("--n-sessions", type=int_at_least(1), default=None,
                   help="concurrent sessions served by the shared recommender learner")
    p.add_argument("--seed", type=int_at_least(0), default=0,
                   help="training world and learner seed")
    p.add_argument("--eval-every", type=int_at_least(0), default=0,
                   help="env steps between evaluations (0: only at the end)")
    p.add_argument("--eval-steps", type=int_at_least(1), default=500,
                   help="world steps in which the evaluated sessions start")
    p.add_argument("--checkpoint-every", type=int_at_least(0), default=0,
                   help="env steps between checkpoints (0: at the end and on Ctrl-C)")
    p.add_argument("--run-root", default="runs", help="folder of the run folders")
    p.add_argument("--resume", type=Path, default=None, help="checkpoint to continue from")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _json_dict(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {raw!r} ({e})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {raw!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Entry point: bad input is one line on stderr and exit status 2."""
    torch.set_num_threads(1)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except ValueError as e:  # bad config, learner option or checkpoint
        parser.error(" ".join(str(e).split()))
        return 2


def _run(args: argparse.Namespace) -> int:
    cfg = recsim_env.make_config(args.preset, **parse_overrides(args.set))
    run = RunConfig(total_steps=args.steps, n_sessions=args.n_sessions, seed=args.seed,
                    eval_every=args.eval_every, eval_steps=args.eval_steps,
                    checkpoint_every=args.checkpoint_every, run_root=args.run_root,
                    algo=args.learner, scenario=args.preset, progress=not args.quiet)
    n_rec = args.n_sessions or cfg.n_recommenders
    try:
        hparams = learner_hparams(args.learner, args.preset)
    except ValueError:  # baselines without a table take their defaults
        hparams = {}
    learners: dict[str, Any] = {"recommender": make_learner(
        args.learner, cfg, n_rows=n_rec, seed=args.seed, total_steps=args.steps,
        **{**hparams, **args.learner_kwargs})}
    if args.provider_learner and cfg.n_providers:
        learners["provider"] = make_learner(args.provider_learner, cfg, role="provider",
                                            n_rows=cfg.n_providers, seed=args.seed + 1,
                                            total_steps=args.steps)
    if args.user_learner and cfg.n_user_agents:
        for k in range(cfg.n_user_agents):  # one model per user agent: they act at different times
            learners[f"user_{k}"] = make_learner(args.user_learner, cfg, role="user", n_rows=1,
                                                 seed=args.seed + 2 + k, total_steps=args.steps)
    # --resume continues in the checkpoint's own run directory (progress.csv keeps its rows)
    run_dir = args.resume.parent if args.resume is not None else None
    runner = Runner(cfg, learners, run, run_dir=run_dir)
    if args.resume is not None:
        runner.load(args.resume)
    print(f"run directory: {runner.run_dir}", flush=True)
    out = runner.train()
    runner.close()
    if args.json:
        print(json.dumps(out, default=float))
    else:
        ev = out["eval"] or {}
        print(f"steps: {out['steps']}  eval mean session return: "
              f"{ev.get('mean_reward', float('nan')):.2f}  interrupted: {out['interrupted']}")
        print(f"tensorboard --logdir {run.run_root}")
    return 130 if out["interrupted"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
