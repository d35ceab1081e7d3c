"""Throughput of the env faces with random actions: AEC, single-agent view, VecEnv, DummyVecEnv.

One *step* is one slate shown to one user (a recommender step), as in RecSim; the AEC env is
measured in agent-steps (turns) per second, like PettingZoo's ``performance_benchmark``.

* ``aec``: ``recsim_env.env`` driven turn by turn with ``action_space(agent).sample()``;
  ``aec+users`` adds 2 providers and 4 user agents (turns/s and world steps/s).
* ``view``: ``recsim_env.single_agent_env`` (``recommender_0``), random distinct slates,
  ``reset()`` at each episode end (included in the time).
* ``vecenv@N``: :class:`recsim_env.vector.RecommenderVecEnv` with ``N`` envs, one random
  distinct slate per env per step (generated in the timed loop, vectorised).
* ``dummy@N``: SB3 ``DummyVecEnv`` of ``N`` single-agent views, the same random slates.

``python benchmarks/throughput.py --vs-recsim`` runs these faces together with the world,
the parallel env and Google's RecSim in one process and reports every rate as a multiple of
RecSim's (measured in the same run). Targets: ``vecenv@4096`` on ``recsim_ie`` >= 150x
RecSim, and ``vecenv@256`` >= 50x ``dummy@256``.

Usage::

    python benchmarks/throughput_faces.py --seconds 2 --json faces.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import recsim_env
from recsim_env.vector import RecommenderVecEnv
from recsim_env.views import random_slates

def _timed(step: Callable[[], int], seconds: float, warmup: int = 3) -> dict[str, float]:
    """Run ``step`` (returning the units it did) for about ``seconds`` of wall time.

    Returns ``rate`` (units per wall second), ``cpu_rate`` (units per CPU second of this
    process: close to the rate on an idle machine when other processes share the cores) and
    ``per_call`` (wall seconds per call).
    """
    for _ in range(warmup):
        step()
    units, calls = 0, 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while True:
        units += step()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            cpu = max(time.process_time() - cpu_start, 1e-9)
            return {"rate": units / elapsed, "cpu_rate": units / cpu, "per_call": elapsed / calls}


def bench_aec(preset: str, seconds: float, **overrides: Any) -> dict[str, float]:
    """Turns per second of the AEC env (and world steps per second)."""
    env = recsim_env.env(preset=preset, max_cycles=10**9, **overrides)
    env.reset(seed=0)
    for a in env.possible_agents:
        env.action_space(a).seed(0)
    t0 = env.world.t

    def turns() -> int:
        for _ in range(100):
            a = env.agent_selection
            env.step(env.action_space(a).sample())
        return 100

    start = time.perf_counter()
    r = _timed(turns, seconds)
    world_rate = (env.world.t - t0) / (time.perf_counter() - start)
    cpu_share = r["rate"] / r["cpu_rate"]
    return {"sessions": env.config.n_recommenders,
            "turns_per_s": r["rate"], "turns_per_cpu_s": r["cpu_rate"],
            "world_steps_per_s": world_rate,
            "steps_per_s": world_rate * env.config.n_recommenders,
            "steps_per_cpu_s": world_rate * env.config.n_recommenders / cpu_share}


def bench_view(preset: str, seconds: float) -> dict[str, float]:
    """Recommender steps per second of one single-agent view."""
    env = recsim_env.single_agent_env(preset=preset)
    env.reset(seed=0)
    cfg = env.config
    rng = np.random.default_rng(0)

    def steps() -> int:
        for _ in range(50):
            a = random_slates(rng, 1, cfg.n_candidates, cfg.slate_size)[0]
            _, _, term, trunc, _ = env.step(a if cfg.slate_size > 1 else int(a[0]))
            if term or trunc:
                env.reset()
        return 50

    r = _timed(steps, seconds)
    return {"steps_per_s": r["rate"], "steps_per_cpu_s": r["cpu_rate"],
            "ms_per_step": r["per_call"] / 50 * 1e3}


def bench_vec(venv: Any, cfg: recsim_env.EnvConfig, seconds: float) -> dict[str, float]:
    """Recommender steps per second of a VecEnv (num_envs steps per call)."""
    venv.seed(0)
    venv.reset()
    rng = np.random.default_rng(0)
    n = venv.num_envs

    def step() -> int:
        a = random_slates(rng, n, cfg.n_candidates, cfg.slate_size)
        venv.step(a if cfg.slate_size > 1 else a[:, 0])
        return n

    r = _timed(step, seconds, warmup=2)
    return {"steps_per_s": r["rate"], "steps_per_cpu_s": r["cpu_rate"],
            "ms_per_vec_step": r["per_call"] * 1e3}


def run_benchmark(
    presets: Sequence[str] = ("recsim_ie", "default"),
    seconds: float = 2.0,
    sizes: Sequence[int] = (1, 256, 4096),
    dummy_envs: int = 256,
) -> list[dict[str, Any]]:
    """Measure every face on every preset.

    Returns:
        One row per (preset, face): ``preset``, ``face``, ``steps_per_s`` and extras.
    """
    from stable_baselines3.common.vec_env import DummyVecEnv

    rows: list[dict[str, Any]] = []
    for preset in presets:
        cfg = recsim_env.make_config(preset)
        rows.append({"preset": preset, "face": "aec", **bench_aec(preset, seconds)})
        if cfg.candidate_source == "catalog":
            extra = dict(n_providers=2, n_user_agents=4)
        else:
            extra = dict(n_user_agents=1)
        rows.append({"preset": preset, "face": "aec+users",
                     **bench_aec(preset, seconds, **extra)})
        rows.append({"preset": preset, "face": "view", **bench_view(preset, seconds)})
        for n in sizes:
            venv = RecommenderVecEnv(n, preset=preset)
            rows.append({"preset": preset, "face": f"vecenv@{n}",
                         **bench_vec(venv, cfg, seconds)})
        if dummy_envs:
            dummy = DummyVecEnv([lambda: recsim_env.single_agent_env(preset=preset)
                                 for _ in range(dummy_envs)])
            rows.append({"preset": preset, "face": f"dummy@{dummy_envs}",
                         **bench_vec(dummy, cfg, seconds)})
    return rows


def measure_faces(quick: bool = False, seconds: float = 1.5, repeats: int = 3,
                  presets: Sequence[str] = ("recsim_ie", "default")) -> list[dict[str, Any]]:
    """Rows for ``benchmarks/throughput.py``: ``face``, ``preset``, ``sessions`` and
    ``user_steps_per_s`` (median over ``repeats`` runs), plus ``x_dummy`` for VecEnv rows."""
    sizes = (1, 256) if quick else (1, 256, 4096)
    dummy_envs = 16 if quick else 256
    runs = [run_benchmark(presets, seconds, sizes, dummy_envs) for _ in range(repeats)]
    rows = []
    for i, first in enumerate(runs[0]):
        rate = statistics.median(r[i]["steps_per_s"] for r in runs)
        face = first["face"]
        sessions = int(face.split("@")[1]) if "@" in face else first.get("sessions", 1)
        row = {"face": face.split("@")[0] if "@" in face else face, "preset": first["preset"],
               "sessions": sessions, "user_steps_per_s": rate}
        if "turns_per_s" in first:
            row["turns_per_s"] = statistics.median(r[i]["turns_per_s"] for r in runs)
        rows.append(row)
    for r in rows:
        dummy = next((d for d in rows if d["preset"] == r["preset"] and d["face"] == "dummy"),
                     None)
        if dummy and r["face"] == "vecenv":
            r["x_dummy"] = r["user_steps_per_s"] / dummy["user_steps_per_s"]
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table with speed-ups against the DummyVecEnv of the same preset.

    ``/cpu-s`` columns divide by this process's CPU time instead of wall time (they estimate
    the idle-machine rate when the cores are shared).
    """
    lines = [f"{'preset':<10} {'face':<11} {'steps/s':>10} {'steps/cpu-s':>12} "
             f"{'turns/s':>9} {'x dummy':>8}"]
    for r in rows:
        dummy = next((d for d in rows if d["preset"] == r["preset"]
                      and d["face"].startswith("dummy@")), None)
        x_dummy = (f"{r['steps_per_s'] / dummy['steps_per_s']:.1f}"
                   if dummy and r["face"].startswith("vecenv@") else "")
        turns = f"{r['turns_per_s']:,.0f}" if "turns_per_s" in r else ""
        lines.append(
            f"{r['preset']:<10} {r['face']:<11} {r['steps_per_s']:>10,.0f} "
            f"{r['steps_per_cpu_s']:>12,.0f} {turns:>9} {x_dummy:>8}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: print the table, optionally write JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", nargs="+", default=["recsim_ie", "default"])
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--sizes", nargs="+", type=int, default=[1, 256, 4096])
    p.add_argument("--dummy-envs", type=int, default=256)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rows = run_benchmark(args.presets, args.seconds, args.sizes, args.dummy_envs)
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
