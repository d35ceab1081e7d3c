"""Learning and throughput benchmarks of our Q-learners (TabularQ, LinearQ, DQN, SlateQ).

For every (preset, algorithm, seed) a learner is trained with
:func:`agents.dqn.train_on_world` for ``--steps`` env steps (session-steps), then evaluated
greedily with :func:`agents.dqn.evaluate_on_world` (the first session of each of 512 slots of a
fresh world, so long sessions are not under-represented). Reference policies are evaluated the
same way: ``random`` (uniform slates) and, where the world is RecSim's, two *privileged* ones
that read hidden state (``myopic``: highest true interest; ``best_quality``: highest true
quality). The table gives the mean over seeds and a 95% confidence interval (Student t over
seeds).

Throughput (``--throughput``): env steps per second of DQN and SlateQ training on ``recsim_ie``
with 256 sessions and one gradient step of batch 256 per world step (one replayed transition
per env step), learning from the first world step on.

Usage::

    python benchmarks/learning_qlearners.py --presets recsim_ie --seeds 5 --jobs 2
    python benchmarks/learning_qlearners.py --throughput
    python benchmarks/learning_qlearners.py --quick          # smoke run, tiny budgets

Results: one JSON per run and ``summary.md`` under ``--out``
(default ``results/raw/learning_qlearners``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # runnable as a plain script
    sys.path.insert(0, str(REPO_ROOT))

log = logging.getLogger(__name__)

ALGOS = ("tabular", "linear", "dqn", "slateq")
REFERENCES = ("random", "myopic", "best_quality")

# Hyperparameters per preset. recsim_ie: the payoff of quality is long-term (quality extends
# the session budget), so a high discount and a slowly moving (Polyak) target matter most.
_DEEP_RECSIM = dict(gamma=0.99, lr=1e-3, batch_size=256, buffer_size=50_000,
                    learning_starts=2_000, gradient_steps=2, target_update_interval=1,
                    tau=0.01, exploration_steps=30_000, exploration_final_eps=0.05,
                    reward_scale=0.1, hidden=(64, 64), cross_dim=32)
_DEEP_CATALOG = {**_DEEP_RECSIM, "gamma": 0.95, "reward_scale": 0.5}
SPECS: dict[str, dict[str, dict[str, Any]]] = {
    "recsim_ie": {
        "tabular": dict(n_sessions=64, learner=dict(gamma=0.99, lr=0.05,
                                                    exploration_steps=30_000)),
        "linear": dict(n_sessions=64, learner=dict(gamma=0.99, lr=0.02,
                                                   exploration_steps=30_000)),
        "dqn": dict(n_sessions=64, learner=_DEEP_RECSIM),
        "slateq": dict(n_sessions=64, learner=_DEEP_RECSIM),
    },
    "default": {
        "tabular": dict(n_sessions=64, learner=dict(gamma=0.95, lr=0.05,
                                                    exploration_steps=30_000)),
        "linear": dict(n_sessions=64, learner=dict(gamma=0.95, lr=0.02,
                                                   exploration_steps=30_000)),
        "dqn": dict(n_sessions=64, learner=_DEEP_CATALOG),
        "slateq": dict(n_sessions=64, learner=_DEEP_CATALOG),
    },
}
SPECS["cold_start"] = SPECS["default"]
# env steps per training run unless --steps is given (catalog sessions are ~4x shorter)
DEFAULT_STEPS = {"recsim_ie": 300_000, "default": 100_000, "cold_start": 100_000}

# two-sided 95% Student t quantiles by degrees of freedom
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}


def ci95(values: np.ndarray) -> float:
    """Half-width of the 95% t confidence interval of the mean (nan for one value)."""
    n = len(values)
    if n < 2:
        return float("nan")
    df = n - 1
    if df > 30:
        t = 1.96
    else:  # the nearest tabulated df below (conservative)
        t = _T95[max(k for k in _T95 if k <= df)]
    return float(t * np.std(values, ddof=1) / np.sqrt(n))


def make_learner(algo: str, cfg: Any, seed: int, **kw: Any) -> Any:
    """Build one of our Q-learners by name."""
    from agents.dqn import DQN
    from agents.linear_q import LinearQ
    from agents.slateq import SlateQ
    from agents.tabular_q import TabularQ

    cls = {"tabular": TabularQ, "linear": LinearQ, "dqn": DQN, "slateq": SlateQ}[algo]
    return cls(cfg, seed=seed, **kw)


class ReferencePolicy:
    """``random`` slates, or a privileged top-k by true interest / true quality."""

    def __init__(self, kind: str, slate_size: int, n_candidates: int, seed: int) -> None:
        self.kind, self.k, self.c = kind, slate_size, n_candidates
        self.privileged = kind != "random"
        self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray, context: Any = None, *, explore: bool = True) -> np.ndarray:
        if self.kind == "random":
            score = self.rng.random((obs.shape[0], self.c))
        else:
            world, slots = context.world, context.slots
            cand = world.candidates
            if self.kind == "myopic":
                score = np.einsum("st,sct->sc", world.sessions.interest[slots],
                                  world.candidate_topic_mix(slots))
            else:
                score = cand.quality[slots]
        return np.argsort(-score, axis=1, kind="stable")[:, : self.k].astype(np.int64)


def _setup_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_one(preset: str, algo: str, seed: int, steps: int, eval_sessions: int) -> dict[str, Any]:
    """Train and evaluate one learner (or evaluate one reference policy)."""
    _setup_worker()
    from agents.dqn import evaluate_on_world, train_on_world
    from recsim_env import make_config

    cfg = make_config(preset)
    eval_seed = 10_000 + seed
    t0 = time.perf_counter()
    out: dict[str, Any] = {"preset": preset, "algo": algo, "seed": seed}
    if algo in REFERENCES:
        learner = ReferencePolicy(algo, cfg.slate_size, cfg.n_candidates, seed)
        out["privileged"] = learner.privileged
    else:
        spec = SPECS[preset][algo]
        learner = make_learner(algo, cfg, seed, **spec["learner"])
        tl = train_on_world(learner, cfg, total_steps=steps, seed=seed,
                            n_sessions=spec["n_sessions"], log_interval=max(steps // 10, 1))
        out.update(
            privileged=False, env_steps=tl.env_steps, train_seconds=tl.seconds,
            train_fps=tl.env_steps / tl.seconds,
            n_sessions=spec["n_sessions"], hyperparameters=_jsonable(spec["learner"]),
            curve=[{k: r[k] for k in ("time/total_timesteps", "rollout/ep_rew_mean",
                                      "rollout/ep_len_mean")} for r in tl.records],
        )
    ev = evaluate_on_world(learner, cfg, seed=eval_seed, n_sessions=eval_sessions)
    out.update(eval_return=ev["mean_return"], eval_ci95=ev["ci95"],
               eval_length=ev["mean_length"], eval_episodes=ev["n_episodes"],
               eval_unfinished=ev["n_unfinished"], seconds=time.perf_counter() - t0)
    return out


def measure_throughput(algo: str, steps: int = 102_400, n_sessions: int = 256,
                       seed: int = 0) -> dict[str, Any]:
    """Env steps/s of training on recsim_ie, one gradient step (batch 256) per world step."""
    _setup_worker()
    from agents.dqn import SessionLoop
    from recsim_env import make_config

    cfg = make_config("recsim_ie")
    learner = make_learner(algo, cfg, seed, **{**_DEEP_RECSIM, "gradient_steps": 1,
                                                "batch_size": 256, "learning_starts": 256})
    loop = SessionLoop(cfg, n_sessions=n_sessions, seed=seed)
    for _ in range(10):  # warm-up: replay filled past learning_starts, allocations done
        loop.step(learner)
    n_world = steps // n_sessions
    t0 = time.perf_counter()
    for _ in range(n_world):
        info = loop.step(learner)
    dt = time.perf_counter() - t0
    assert "train/loss" in info.metrics  # every measured step trained
    return {"algo": algo, "n_sessions": n_sessions, "gradient_steps_per_world_step": 1,
            "batch_size": 256, "replayed_per_env_step": 256 / n_sessions,
            "env_steps": n_world * n_sessions, "seconds": dt,
            "env_steps_per_second": n_world * n_sessions / dt}


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def summarize(results: list[dict[str, Any]]) -> str:
    """Markdown table: mean eval return over seeds with 95% CI, per preset and algorithm."""
    lines = ["| preset | algorithm | seeds | env steps | eval return (mean +- 95% CI) | "
             "minus random, same eval world (paired) | session length | "
             "train return, last interval | train env steps/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["preset"], r["algo"]), []).append(r)
    random_by = {(r["preset"], r["seed"]): r["eval_return"] for r in results
                 if r["algo"] == "random"}
    order = {a: i for i, a in enumerate(REFERENCES + ALGOS)}
    for (preset, algo), rs in sorted(groups.items(), key=lambda kv: (kv[0][0],
                                                                       order.get(kv[0][1], 99))):
        ret = np.array([r["eval_return"] for r in rs])
        length = np.array([r["eval_length"] for r in rs])
        trained = [r for r in rs if "curve" in r]
        if trained:
            fps_text = f"{np.mean([r['train_fps'] for r in trained]):,.0f}"
            steps_text = f"{trained[0]['env_steps']:,}"
            # the epsilon-greedy training return over the last log interval
            last = np.array([r["curve"][-1]["rollout/ep_rew_mean"] for r in trained])
            last_text = f"{last.mean():.1f} +- {ci95(last):.1f}"
        else:
            fps_text = steps_text = last_text = "-"
        # the same eval seed gives the same world for every policy: compare pairwise
        diff = np.array([r["eval_return"] - random_by[(preset, r["seed"])] for r in rs
                         if (preset, r["seed"]) in random_by])
        diff_text = (f"{diff.mean():+.1f} +- {ci95(diff):.1f}"
                     if diff.size and algo != "random" else "-")
        name = algo + (" (privileged)" if rs[0].get("privileged") else "")
        lines.append(f"| {preset} | {name} | {len(rs)} | {steps_text} | "
                     f"{ret.mean():.1f} +- {ci95(ret):.1f} | {diff_text} | {length.mean():.1f} | "
                     f"{last_text} | {fps_text} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--presets", nargs="+", default=["recsim_ie", "default", "cold_start"])
    p.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    p.add_argument("--references", nargs="*", default=list(REFERENCES), choices=REFERENCES)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=None,
                   help=f"env steps per training run (default per preset: {DEFAULT_STEPS})")
    p.add_argument("--eval-sessions", type=int, default=512)
    p.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    p.add_argument("--throughput", action="store_true", help="only measure throughput")
    p.add_argument("--quick", action="store_true", help="tiny budgets (smoke test)")
    p.add_argument("--summarize", type=Path, nargs="+", default=None, metavar="DIR",
                   help="only rebuild the table from the run JSONs in these folders")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "results/raw/learning_qlearners")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.summarize:
        runs = [json.loads(f.read_text()) for d in args.summarize for f in sorted(d.glob("*.json"))
                if f.name != "throughput.json"]
        print(summarize(runs))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.throughput:
        rows = []
        for algo in ("dqn", "slateq"):
            r = measure_throughput(algo, steps=10_240 if args.quick else 102_400)
            rows.append(r)
            print(f"{algo}: {r['env_steps_per_second']:,.0f} env steps/s "
                  f"({r['n_sessions']} sessions, 1 gradient step of batch 256 per world step)",
                  flush=True)
        (args.out / "throughput.json").write_text(json.dumps(rows, indent=2) + "\n")
        return 0
    if args.quick:
        args.steps, args.seeds, args.eval_sessions = 4_096, 2, 32
    tasks = []
    for preset in args.presets:
        refs = [r for r in args.references if preset == "recsim_ie" or r == "random"]
        steps = args.steps or DEFAULT_STEPS.get(preset, 300_000)
        tasks += [(preset, a, s, steps) for a in args.algos + refs for s in range(args.seeds)]
    # recsim_ie first (the learning target), then longest first within a preset, so the pool
    # does not end on one long straggler
    cost = {"slateq": 4, "dqn": 3, "linear": 1, "tabular": 1}
    tasks.sort(key=lambda t: (t[0] != "recsim_ie", -cost.get(t[1], 0)))
    results = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futs = {pool.submit(run_one, *t, args.eval_sessions): t for t in tasks}
        for fut in as_completed(futs):
            r = fut.result()
            results.append(r)
            (args.out / f"{r['preset']}__{r['algo']}__{r['seed']}.json").write_text(
                json.dumps(r, indent=2) + "\n")
            print(f"{r['preset']:>10} {r['algo']:>12} seed {r['seed']}: "
                  f"{r['eval_return']:.1f} ({r['seconds']:.0f}s)", flush=True)
    table = summarize(results)
    (args.out / "summary.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
