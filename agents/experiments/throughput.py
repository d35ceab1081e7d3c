"""Throughput of the world and its faces, in user-steps per second (one process, one thread).

    python benchmarks/throughput.py                  # world, parallel env and the other faces
    python benchmarks/throughput.py --vs-recsim      # also Google's RecSim, in the same run
    python benchmarks/throughput.py --quick          # short runs (smoke test)
    python benchmarks/throughput.py --pairs 7        # VecEnv@4096 / RecSim in interleaved pairs

One user-step is one slate shown to one user (RecSim's "step"). Random slates of distinct
candidates are pre-drawn (a pool of 64 batches, reused cyclically) so the figure measures the
simulator, not the action sampler (the AEC env, views and VecEnvs of
``throughput_faces.py`` draw their random actions inside the timed loop, as RecSim does). Each
cell is the median of ``--repeats`` timed runs.
Results: a table on stdout and JSON in ``benchmarks/results/throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import recsim_env  # noqa: E402
from recsim_env.world import World  # noqa: E402

SESSIONS = (1, 64, 1024, 4096)
PRESETS = ("recsim_ie", "default")


def slate_pool(n: int, n_candidates: int, k: int, seed: int = 0, size: int = 64) -> list:
    """``size`` pre-drawn (n, k) batches of distinct random candidate indices."""
    rng = np.random.default_rng(seed)
    return [np.argsort(rng.random((n, n_candidates)), axis=1)[:, :k] for _ in range(size)]


def _timed(step, min_seconds: float, min_steps: int) -> tuple[int, float]:
    """Run ``step(i)`` until both limits pass; returns (steps, seconds)."""
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(min_steps):
            step(n)
            n += 1
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            return n, dt


def bench_world(preset: str, n_sessions: int, seconds: float) -> float:
    """User-steps/s of ``World.step`` plus building the observation arrays."""
    cfg = recsim_env.make_config(preset)
    world = World(cfg, n_sessions=n_sessions)
    world.reset(0)
    pool = slate_pool(n_sessions, cfg.n_candidates, cfg.slate_size)

    def step(i: int) -> None:
        world.step(pool[i % 64])
        world.recommender_obs()

    for i in range(5):
        step(i)
    n, dt = _timed(step, seconds, max(1, 2000 // n_sessions))
    return n * n_sessions / dt


def bench_parallel(preset: str, n_sessions: int, seconds: float) -> float:
    """User-steps/s of the PettingZoo ParallelEnv with ``n_sessions`` recommender agents."""
    cfg = recsim_env.make_config(preset)
    users = max(cfg.n_users, cfg.cohort_size * n_sessions)
    env = recsim_env.parallel_env(cfg, n_recommenders=n_sessions, n_users=users,
                                  max_cycles=10**9)
    env.reset(seed=0)
    pool = slate_pool(n_sessions, cfg.n_candidates, cfg.slate_size)
    agents = env.possible_agents
    if cfg.slate_size == 1:
        actions = [dict(zip(agents, (int(x) for x in p[:, 0]))) for p in pool]
    else:
        actions = [dict(zip(agents, p)) for p in pool]

    def step(i: int) -> None:
        env.step(actions[i % 64])

    for i in range(5):
        step(i)
    n, dt = _timed(step, seconds, max(1, 2000 // n_sessions))
    return n * n_sessions / dt


def median_of(fn, repeats: int, *args) -> float:
    """Median over ``repeats`` runs."""
    return statistics.median(fn(*args) for _ in range(repeats))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure everything requested; returns the JSON-able results."""
    seconds = 0.3 if args.quick else args.seconds
    repeats = 1 if args.quick else args.repeats
    sessions = (1, 64) if args.quick else SESSIONS
    rows: list[dict[str, Any]] = []
    recsim: dict[str, Any] | None = None
    if args.vs_recsim:
        from recsim_reference import run_recsim_reference

        runs = [run_recsim_reference(n_steps=5_000 if args.quick else 50_000, seed=s)
                for s in range(repeats)]
        recsim = dict(runs[0])
        recsim["steps_per_second"] = statistics.median(r["steps_per_second"] for r in runs)
        rows.append({"face": "recsim (Google)", "preset": "interest_evolution", "sessions": 1,
                     "user_steps_per_s": recsim["steps_per_second"]})
    for preset in PRESETS:
        for n in sessions:
            for face, fn in (("world", bench_world), ("parallel", bench_parallel)):
                if face == "parallel" and n > 1024 and not args.all:
                    continue  # a dict of 4096 agents per step measures dict packing, not us
                v = median_of(fn, repeats, preset, n, seconds)
                rows.append({"face": face, "preset": preset, "sessions": n,
                             "user_steps_per_s": v})
                if not args.json_only:
                    print(f"  {face:9s} {preset:10s} {n:5d} sessions: {v:14,.0f} user-steps/s",
                          flush=True)
    if not args.skip_faces:
        import throughput_faces

        face_rows = throughput_faces.measure_faces(quick=args.quick, seconds=seconds,
                                                   repeats=repeats)
        rows += face_rows
        if not args.json_only:
            for r in face_rows:
                print(f"  {r['face']:9s} {r['preset']:10s} {r['sessions']:5d} sessions: "
                      f"{r['user_steps_per_s']:14,.0f} user-steps/s", flush=True)
    if recsim:
        for r in rows:
            r["x_recsim"] = r["user_steps_per_s"] / recsim["steps_per_second"]
    return {
        "rows": rows,
        "recsim": recsim,
        "machine": {"python": platform.python_version(), "numpy": np.__version__,
                    "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
        "settings": {"seconds": seconds, "repeats": repeats},
    }


def paired_ratios(pairs: int, seconds: float, recsim_steps: int = 30_000) -> dict[str, Any]:
    """The #3 target measured in interleaved pairs: RecSim, then the VecEnv and the world at
    4096 sessions on ``recsim_ie``, ``pairs`` times. The machine's speed drifts by tens of
    percent within a minute, so each ratio divides two rates taken seconds apart; the median
    of the pairs is the figure to quote."""
    from recsim_reference import run_recsim_reference
    from throughput_faces import bench_vec

    from recsim_env.vector import RecommenderVecEnv

    cfg = recsim_env.make_config("recsim_ie")
    venv = RecommenderVecEnv(4096, config=cfg)
    rows = []
    for i in range(pairs):
        recsim = run_recsim_reference(n_steps=recsim_steps, seed=i)["steps_per_second"]
        vec = bench_vec(venv, cfg, seconds)["steps_per_s"]
        world = bench_world("recsim_ie", 4096, seconds)
        rows.append({"recsim": recsim, "vecenv@4096": vec, "world@4096": world,
                     "x_vecenv": vec / recsim, "x_world": world / recsim})
        print(f"  pair {i}: RecSim {recsim:,.0f}  VecEnv@4096 {vec:,.0f} ({vec / recsim:.1f}x)  "
              f"world@4096 {world:,.0f} ({world / recsim:.1f}x)", flush=True)
    return {"pairs": rows,
            "median_x_vecenv": statistics.median(r["x_vecenv"] for r in rows),
            "median_x_world": statistics.median(r["x_world"] for r in rows)}


def format_table(result: dict[str, Any]) -> str:
    """Markdown table of the rows."""
    has_ratio = result["recsim"] is not None
    head = ("| face | preset | sessions | user-steps/s |" + (" x RecSim |" if has_ratio else "")
            + " x DummyVecEnv |")
    sep = "|---|---|---:|---:|" + ("---:|" if has_ratio else "") + "---:|"
    lines = [head, sep]
    for r in result["rows"]:
        line = (f"| {r['face']} | {r['preset']} | {r['sessions']} | "
                f"{r['user_steps_per_s']:,.0f} |")
        if has_ratio:
            line += f" {r['x_recsim']:.1f} |"
        line += f" {r['x_dummy']:.1f} |" if "x_dummy" in r else " |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--vs-recsim", action="store_true", help="also run Google's RecSim")
    p.add_argument("--quick", action="store_true", help="short runs, few sizes")
    p.add_argument("--all", action="store_true", help="include the parallel env at 4096")
    p.add_argument("--skip-faces", action="store_true", help="world and parallel env only")
    p.add_argument("--seconds", type=float, default=1.5, help="timed seconds per run")
    p.add_argument("--repeats", type=int, default=3, help="runs per cell (median reported)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "throughput.json")
    p.add_argument("--json-only", action="store_true")
    p.add_argument("--pairs", type=int, default=0,
                   help="only the VecEnv/world@4096 vs RecSim ratio, in N interleaved pairs "
                        "(median reported)")
    args = p.parse_args(argv)
    if args.pairs:
        res = paired_ratios(args.pairs, args.seconds)
        print(f"median over {args.pairs} pairs: VecEnv@4096 {res['median_x_vecenv']:.1f}x "
              f"RecSim, world@4096 {res['median_x_world']:.1f}x RecSim")
        out = args.out.with_name("throughput_pairs.json")
        out.write_text(json.dumps(res, indent=2))
        return 0
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(format_table(result))
    print(f"\nwrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
