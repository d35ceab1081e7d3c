"""Throughput of the world and its faces, in user-steps per second (one process, one thread).

    python benchmarks/throughput.py                  # world, parallel env and the other faces
    python benchmarks/throughput.py --vs-recsim      # also Google's RecSim, in the same run
    python benchmarks/throughput.py --quick          # short runs, few sizes (smoke test)
    python benchmarks/throughput.py --pairs 5 --reference PATH/ie_numpy_reference.py
                                                     # issue 18's table, 5 interleaved rounds

One user-step is one slate shown to one user (RecSim's "step"). The faces:

* ``world``: ``World.step`` plus building the observation arrays, ``sessions`` sessions;
* ``parallel``: the PettingZoo ParallelEnv with ``sessions`` recommender agents;
* ``aec``: the AEC env driven turn by turn with ``action_space(agent).sample()``;
  ``aec+users`` adds providers and user agents (rows also carry ``turns_per_s``);
* ``view``: the single-agent view of ``recommender_0``, ``reset()`` at each episode end
  (included in the time);
* ``vecenv``: :class:`recsim_env.vector.RecommenderVecEnv` with ``sessions`` envs;
* ``dummy``: SB3 ``DummyVecEnv`` of ``sessions`` single-agent views.

The world and the parallel env step through a pool of pre-drawn random slates (reused
cyclically) so that their figure measures the simulator, not the action sampler; the other
faces draw their random actions inside the timed loop, as RecSim does. Slates come from
:func:`recsim_env.items.random_slates`. Each cell is the median of ``--repeats`` timed runs.
With ``--vs-recsim`` every rate is also a multiple of RecSim's (measured in the same run,
:mod:`agents.experiments.recsim_reference`), and VecEnv rows are a multiple of the
DummyVecEnv of the same preset. Targets: ``vecenv@4096`` on ``recsim_ie`` >= 150x RecSim, and
``vecenv@256`` >= 50x ``dummy@256``.

``--pairs N`` measures only the rows of issue 18's table (:data:`TARGETS`: the parallel and AEC
envs at one session and the world and VecEnv at 4,096 sessions against RecSim, the world at
4,096 sessions against the batched-numpy restatement of IE given by ``--reference``, and our
DQN's training speed, with SB3's DQN beside it), every row once per round, ``N`` rounds
interleaved, medians of the per-round ratios; plus the start-up costs (``import recsim_env``
and the first world, with a cold and a warm numba cache: :func:`startup_times`). Rows whose
reference is absent (no RecSim venv, no ``--reference``) are reported as not measured.

Results: a table on stdout, ``throughput.json`` (or ``throughput_table.json`` with
``--pairs``) in ``--out`` (default a new ``results/throughput-<time>/``; the committed
``results/throughput/`` is rewritten only with ``--out results/throughput``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

import recsim_env
from agents.checkpoint import write_json
from agents.experiments import recsim_reference
from agents.experiments.common import RESULTS_ROOT, init_worker, new_results_dir
from recsim_env.items import random_slates
from recsim_env.vector import RecommenderVecEnv
from recsim_env.world import World

__all__ = ["OUT_DIR", "TARGETS", "Settings", "bench_aec", "bench_parallel", "bench_training",
           "bench_vec", "bench_view", "bench_world", "format_issue_table", "format_table",
           "issue_table", "load_reference", "main", "run", "slate_pool", "startup_times"]

log = logging.getLogger(__name__)

OUT_DIR = RESULTS_ROOT / "throughput"
POOL_SIZE = 64
"""Pre-drawn slate batches of the world and parallel-env cells, reused cyclically."""
RECSIM_ROW = {"face": "recsim (Google)", "preset": "interest_evolution", "sessions": 1}


@dataclass(frozen=True, kw_only=True)
class Settings:
    """What one throughput run measures.

    Attributes:
        presets: env presets, each measured on every face.
        sessions: session counts of the world and the parallel env.
        max_parallel_sessions: the parallel env is skipped above this (a dict of thousands
            of agents per step measures dict packing, not the simulator); ``None``: never.
        vec_sizes: numbers of envs of the VecEnv.
        dummy_envs: views in the DummyVecEnv (0: none).
        seconds: timed seconds per run.
        repeats: runs per cell (the median is reported).
        faces: also measure the AEC env, the view and the VecEnvs.
        recsim_steps: timed RecSim steps per run (0: RecSim not run).
    """

    presets: tuple[str, ...] = ("recsim_ie", "default")
    sessions: tuple[int, ...] = (1, 64, 1024, 4096)
    max_parallel_sessions: int | None = 1024
    vec_sizes: tuple[int, ...] = (1, 256, 4096)
    dummy_envs: int = 256
    seconds: float = 1.5
    repeats: int = 3
    faces: bool = True
    recsim_steps: int = 0

    def __post_init__(self) -> None:
        for name in ("sessions", "vec_sizes"):
            value = getattr(self, name)
            if not value or any(n < 1 for n in value):
                raise ValueError(f"{name} must be non-empty and all >= 1, got {value}")
        if not self.presets:
            raise ValueError("presets must be non-empty")
        if self.dummy_envs < 0:
            raise ValueError(f"dummy_envs must be >= 0, got {self.dummy_envs}")
        if self.seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {self.seconds}")
        if self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.recsim_steps < 0:
            raise ValueError(f"recsim_steps must be >= 0, got {self.recsim_steps}")

    @classmethod
    def quick(cls, **overrides: Any) -> Settings:
        """Short runs on few sizes (a smoke test)."""
        return cls(**{"sessions": (1, 64), "vec_sizes": (1, 256), "dummy_envs": 16,
                      "seconds": 0.3, "repeats": 1, **overrides})


class Timing(NamedTuple):
    """What :func:`_timed` measured: ``units`` done in ``calls`` calls and ``seconds`` of wall
    time."""

    units: int
    calls: int
    seconds: float

    @property
    def rate(self) -> float:
        """Units per wall second."""
        return self.units / self.seconds


def _timed(step: Callable[[], int], seconds: float, warmup: int = 0) -> Timing:
    """Call ``step`` (which returns the units it did) ``warmup`` times untimed, then until
    ``seconds`` of wall time have passed."""
    for _ in range(warmup):
        step()
    units, calls, start = 0, 0, time.perf_counter()
    while True:
        units += step()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return Timing(units, calls, elapsed)


def slate_pool(n: int, n_candidates: int, slate_size: int, seed: int = 0,
               size: int = POOL_SIZE) -> list[np.ndarray]:
    """``size`` pre-drawn ``(n, slate_size)`` int64 batches of random distinct candidates."""
    rng = np.random.default_rng(seed)
    return [random_slates(rng, n, n_candidates, slate_size) for _ in range(size)]


def _pooled_rate(step: Callable[[Any], Any], actions: Sequence[Any], n_sessions: int,
                 seconds: float) -> float:
    """User-steps/s of ``step(action)`` cycling over pre-built ``actions`` (5 untimed steps
    first)."""
    cycle = itertools.cycle(actions)

    def one() -> int:
        step(next(cycle))
        return n_sessions

    return _timed(one, seconds, warmup=5).rate


def bench_world(preset: str, n_sessions: int, seconds: float) -> dict[str, float]:
    """User-steps/s of ``World.step`` plus building the observation arrays."""
    cfg = recsim_env.make_config(preset)
    world = World(cfg, n_sessions=n_sessions)
    world.reset(0)

    def step(slates: np.ndarray) -> None:
        world.step(slates)
        world.recommender_obs()

    pool = slate_pool(n_sessions, cfg.n_candidates, cfg.slate_size)
    return {"user_steps_per_s": _pooled_rate(step, pool, n_sessions, seconds)}


def bench_parallel(preset: str, n_sessions: int, seconds: float) -> dict[str, float]:
    """User-steps/s of the PettingZoo ParallelEnv with ``n_sessions`` recommender agents."""
    cfg = recsim_env.make_config(preset)
    users = max(cfg.n_users, cfg.cohort_size * n_sessions)
    env = recsim_env.parallel_env(cfg, n_recommenders=n_sessions, n_users=users,
                                  max_cycles=10**9)
    env.reset(seed=0)
    agents = [a for a in env.possible_agents if a.startswith("recommender_")]
    pool = slate_pool(n_sessions, cfg.n_candidates, cfg.slate_size)
    if cfg.slate_size == 1:
        actions = [dict(zip(agents, (int(x) for x in p[:, 0]), strict=True)) for p in pool]
    else:
        actions = [dict(zip(agents, p, strict=True)) for p in pool]
    return {"user_steps_per_s": _pooled_rate(env.step, actions, n_sessions, seconds)}


def bench_aec(preset: str, seconds: float, **overrides: Any) -> dict[str, float]:
    """Turns/s of the AEC env and user-steps/s (world steps x recommenders)."""
    env = recsim_env.env(preset=preset, max_cycles=10**9, **overrides)
    env.reset(seed=0)
    for a in env.possible_agents:
        env.action_space(a).seed(0)

    def cycle() -> int:
        """Turns until the world steps once; returns how many."""
        t, turns = env.world.t, 0
        while env.world.t == t:
            env.step(env.action_space(env.agent_selection).sample())
            turns += 1
        return turns

    timing = _timed(cycle, seconds, warmup=3)
    return {"user_steps_per_s": timing.calls * env.config.n_recommenders / timing.seconds,
            "turns_per_s": timing.rate}


def bench_view(preset: str, seconds: float) -> dict[str, float]:
    """User-steps/s of the single-agent view of ``recommender_0``."""
    env = recsim_env.single_agent_env(preset=preset)
    env.reset(seed=0)
    cfg = env.config
    rng = np.random.default_rng(0)

    def step() -> int:
        a = random_slates(rng, 1, cfg.n_candidates, cfg.slate_size)[0]
        _, _, term, trunc, _ = env.step(a if cfg.slate_size > 1 else int(a[0]))
        if term or trunc:
            env.reset()
        return 1

    return {"user_steps_per_s": _timed(step, seconds, warmup=5).rate}


def bench_vec(venv: Any, cfg: recsim_env.EnvConfig, seconds: float) -> dict[str, float]:
    """User-steps/s of an SB3 VecEnv (``num_envs`` user-steps per call)."""
    venv.seed(0)
    venv.reset()
    rng = np.random.default_rng(0)
    n = venv.num_envs

    def step() -> int:
        a = random_slates(rng, n, cfg.n_candidates, cfg.slate_size)
        venv.step(a if cfg.slate_size > 1 else a[:, 0])
        return n

    return {"user_steps_per_s": _timed(step, seconds, warmup=2).rate}


def _bench_vecenv(preset: str, n: int, seconds: float) -> dict[str, float]:
    return bench_vec(RecommenderVecEnv(n, preset=preset), recsim_env.make_config(preset),
                     seconds)


def _bench_dummy(preset: str, n: int, seconds: float) -> dict[str, float]:
    from stable_baselines3.common.vec_env import DummyVecEnv

    dummy = DummyVecEnv([lambda: recsim_env.single_agent_env(preset=preset)] * n)
    return bench_vec(dummy, recsim_env.make_config(preset), seconds)


_Cell = tuple[str, str, int, Callable[[float], dict[str, float]]]


def _cells(s: Settings) -> list[_Cell]:
    """(face, preset, sessions, measure(seconds)) of every cell ``s`` asks for."""
    out: list[_Cell] = []
    for preset in s.presets:
        for n in s.sessions:
            out.append(("world", preset, n, functools.partial(bench_world, preset, n)))
            if s.max_parallel_sessions is None or n <= s.max_parallel_sessions:
                out.append(("parallel", preset, n, functools.partial(bench_parallel, preset, n)))
    if not s.faces:
        return out
    for preset in s.presets:
        cfg = recsim_env.make_config(preset)
        users = ({"n_providers": 2, "n_user_agents": 4} if cfg.candidate_source == "catalog"
                 else {"n_user_agents": 1})
        for face, overrides in (("aec", {}), ("aec+users", users)):
            n = recsim_env.make_config(preset, **overrides).n_recommenders
            out.append((face, preset, n, functools.partial(bench_aec, preset, **overrides)))
        out.append(("view", preset, 1, functools.partial(bench_view, preset)))
        for n in s.vec_sizes:
            out.append(("vecenv", preset, n, functools.partial(_bench_vecenv, preset, n)))
        if s.dummy_envs:
            out.append(("dummy", preset, s.dummy_envs,
                        functools.partial(_bench_dummy, preset, s.dummy_envs)))
    return out


def _median_row(measure: Callable[[], dict[str, float]], repeats: int) -> dict[str, float]:
    """Every rate ``measure`` returns, median over ``repeats`` calls."""
    runs = [measure() for _ in range(repeats)]
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def _add_ratios(rows: list[dict[str, Any]], recsim_rate: float | None) -> None:
    """``x_recsim`` on every row (when RecSim ran) and ``x_dummy`` on VecEnv rows (when the
    DummyVecEnv of their preset ran)."""
    dummy = {r["preset"]: r["user_steps_per_s"] for r in rows if r["face"] == "dummy"}
    for r in rows:
        if recsim_rate is not None:
            r["x_recsim"] = r["user_steps_per_s"] / recsim_rate
        if r["face"] == "vecenv" and r["preset"] in dummy:
            r["x_dummy"] = r["user_steps_per_s"] / dummy[r["preset"]]


def _recsim(n_steps: int, repeats: int, venv: Path | None) -> dict[str, Any]:
    """RecSim's result of the first run, with the median rate over ``repeats`` runs."""
    python = recsim_reference.ensure_recsim_venv(venv)
    runs = [recsim_reference.run_recsim_reference(n_steps=n_steps, seed=s, python=python)
            for s in range(repeats)]
    return {**runs[0], "steps_per_second": statistics.median(r["steps_per_second"]
                                                              for r in runs)}


def _machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "numpy": np.__version__,
            "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()}


def run(settings: Settings, *, recsim_venv: Path | None = None) -> dict[str, Any]:
    """Measure every cell of ``settings``.

    Returns:
        ``rows`` (``face``, ``preset``, ``sessions``, ``user_steps_per_s``, and where they
        apply ``turns_per_s``, ``x_recsim``, ``x_dummy``), ``recsim`` (RecSim's result or
        ``None``), ``machine`` and ``settings``.
    """
    rows: list[dict[str, Any]] = []
    recsim = None
    if settings.recsim_steps:
        recsim = _recsim(settings.recsim_steps, settings.repeats, recsim_venv)
        rows.append({**RECSIM_ROW, "user_steps_per_s": recsim["steps_per_second"]})
    for face, preset, n, measure in _cells(settings):
        row = {"face": face, "preset": preset, "sessions": n,
               **_median_row(functools.partial(measure, settings.seconds), settings.repeats)}
        rows.append(row)
        log.info("  %-9s %-10s %5d sessions: %14s user-steps/s", face, preset, n,
                 f"{row['user_steps_per_s']:,.0f}")
    _add_ratios(rows, None if recsim is None else recsim["steps_per_second"])
    return {"rows": rows, "recsim": recsim, "machine": _machine(),
            "settings": dataclasses.asdict(settings)}


def bench_training(learner: str, preset: str, n_sessions: int, steps: int,
                   warmup: int) -> dict[str, float]:
    """Env steps/s of training ``learner`` (its ``configs/learners`` hyperparameters for
    ``preset``, so its default replay ratio) on ``n_sessions`` sessions: the training step of
    :meth:`agents.runner.Runner.train` (act, step the world, store, update), timed over
    ``steps`` env steps after ``warmup`` untimed ones (past ``learning_starts``, so updates
    run), without evaluation or logging."""
    import tempfile

    from agents.factory import build_learner
    from agents.hparams import learner_hparams
    from agents.runner import RunConfig, Runner

    cfg = recsim_env.make_config(preset)
    hp = learner_hparams(learner, preset)
    total = warmup + steps
    model = build_learner(learner, cfg, n_rows=n_sessions, seed=0, total_steps=total, kwargs=hp)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunConfig(total_steps=total, n_sessions=n_sessions, progress=False,
                        save_checkpoints=False, run_root=tmp, log_every=10**9)
        runner = Runner(cfg, {"recommender": model}, run)
        rounds = -(-warmup // n_sessions), -(-steps // n_sessions)
        for _ in range(rounds[0]):
            runner.rollout.step(explore=True, learn=True)
        start = time.perf_counter()
        for _ in range(rounds[1]):
            runner.rollout.step(explore=True, learn=True)
        elapsed = time.perf_counter() - start
        runner.close()
    return {"env_steps_per_s": rounds[1] * n_sessions / elapsed,
            "learning_starts": float(hp.get("learning_starts", 0))}


def load_reference(path: Path) -> Any:
    """The plain batched-numpy restatement of RecSim's IE (``ie_numpy_reference.py`` of the
    project's shared bench folder) as a module; its ``run(users, seconds, seed, with_obs)``
    is what the table times."""
    import importlib.util

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--reference: no file at {path}")
    spec = importlib.util.spec_from_file_location("ie_numpy_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise ValueError(f"--reference: {path} has no run(users, seconds, seed, with_obs)")
    return module


class Target(NamedTuple):
    """One row of issue 18's table: ``key`` of the measured figure (a rate or a per-pair
    ratio), what it is, and the target it must reach."""

    key: str
    what: str
    target: float
    unit: str


TARGETS: tuple[Target, ...] = (
    Target("x_parallel", "parallel env, 1 recommender, `recsim_ie`, per step vs RecSim "
           "`interest_evolution`", 2.0, "x"),
    Target("x_aec", "AEC env, 1 session, `recsim_ie`, vs RecSim", 1.5, "x"),
    Target("world_default", "world, `default`, 4,096 sessions (user-steps/s)", 500_000.0, ""),
    Target("x_world_ie", "world, `recsim_ie`, 4,096 sessions, vs RecSim", 300.0, "x"),
    Target("x_vecenv_ie", "`RecommenderVecEnv`, `recsim_ie`, 4,096 envs, vs RecSim", 300.0, "x"),
    Target("x_reference_ie", "world with observations, `recsim_ie`, 4,096 sessions, vs the "
           "batched-numpy restatement of IE (`--with-obs`)", 2.0, "x"),
    Target("x_reference_default", "world with observations, `default`, 4,096 sessions, vs the "
           "same restatement", 0.5, "x"),
    Target("dqn_ie", "our DQN training on `recsim_ie`, 64 sessions, defaults (env steps/s)",
           10_000.0, ""),
    Target("dqn_default", "our DQN training on `default`, 64 sessions (env steps/s)", 8_000.0,
           ""),
)
TABLE_SESSIONS = 4096
TRAIN_SESSIONS = 64


def _pair(i: int, seconds: float, recsim_python: Path | None, reference: Any,
          recsim_steps: int, train_steps: int, train_warmup: int) -> dict[str, float | None]:
    """One round of every measurement of the table, back to back, and its ratios."""
    ie, dflt, n = "recsim_ie", "default", TABLE_SESSIONS
    r: dict[str, float | None] = {}
    r["recsim"] = (None if recsim_python is None else recsim_reference.run_recsim_reference(
        n_steps=recsim_steps, seed=i, python=recsim_python)["steps_per_second"])
    r["parallel_ie"] = bench_parallel(ie, 1, seconds)["user_steps_per_s"]
    r["aec_ie"] = bench_aec(ie, seconds)["user_steps_per_s"]
    r["world_ie"] = bench_world(ie, n, seconds)["user_steps_per_s"]
    r["vecenv_ie"] = bench_vec(RecommenderVecEnv(n, preset=ie), recsim_env.make_config(ie),
                               seconds)["user_steps_per_s"]
    r["world_default"] = bench_world(dflt, n, seconds)["user_steps_per_s"]
    r["reference"] = (None if reference is None else
                      reference.run(n, seconds, seed=i, with_obs=True)["user_steps_per_s"])
    if train_steps:
        for key, learner, preset in (("dqn_ie", "dqn", ie), ("dqn_default", "dqn", dflt),
                                     ("sb3_dqn_ie", "sb3_dqn", ie)):
            r[key] = bench_training(learner, preset, TRAIN_SESSIONS, train_steps,
                                    train_warmup)["env_steps_per_s"]

    def ratio(a: str, b: str) -> float | None:
        return None if r.get(a) is None or r.get(b) is None else r[a] / r[b]

    r.update(x_parallel=ratio("parallel_ie", "recsim"), x_aec=ratio("aec_ie", "recsim"),
             x_world_ie=ratio("world_ie", "recsim"), x_vecenv_ie=ratio("vecenv_ie", "recsim"),
             x_reference_ie=ratio("world_ie", "reference"),
             x_reference_default=ratio("world_default", "reference"))
    return r


def startup_times(repeats: int = 3) -> dict[str, float]:
    """Seconds of ``import recsim_env`` and of the first world (build, reset, one step, one
    observation) of each preset, in fresh interpreters: with an empty numba cache (the
    compile, once per installation), with the cache filled, and on the numpy backend.
    Medians over ``repeats`` interpreters."""
    import subprocess
    import sys
    import tempfile

    probe = (
        "import time, json; t0 = time.perf_counter(); import recsim_env; "
        "t1 = time.perf_counter(); from recsim_env.world import World; import numpy as np; "
        "out = {'import': t1 - t0}\n"
        "for p in ('recsim_ie', 'default'):\n"
        "    t = time.perf_counter(); cfg = recsim_env.make_config(p); w = World(cfg); "
        "w.reset(0); w.step(np.zeros((w.n_sessions, cfg.slate_size), np.int64) "
        "+ np.arange(cfg.slate_size)); w.recommender_obs(); "
        "out['first_world_' + p] = time.perf_counter() - t\n"
        "print(json.dumps(out))")
    runs: dict[str, list[dict[str, float]]] = {"cold": [], "warm": [], "numpy": []}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache:
            for mode in ("cold", "warm", "numpy"):
                env = {**os.environ, "NUMBA_CACHE_DIR": cache,
                       "RECSIM_ENV_BACKEND": "numpy" if mode == "numpy" else "numba"}
                out = subprocess.run([sys.executable, "-c", probe], env=env, check=True,
                                     capture_output=True, text=True).stdout
                runs[mode].append(json.loads(out.strip().splitlines()[-1]))
    return {f"{key}_{mode}_s": statistics.median(r[key] for r in rs)
            for mode, rs in runs.items() for key in rs[0]}


def issue_table(pairs: int, seconds: float, *, recsim_venv: Path | None = None,
                reference: Path | None = None, recsim_steps: int = 20_000,
                train_steps: int = 6_400, train_warmup: int = 2_560,
                startup: bool = True) -> dict[str, Any]:
    """Every row of issue 18's table, measured in ``pairs`` interleaved rounds (each round
    measures everything once, so each ratio divides rates taken seconds apart); the figure of
    a row is the median over the rounds. RecSim's rows are ``None`` (not measured) when its
    venv is absent (``find_recsim_python``: nothing is installed here), the restatement's
    when no ``reference`` file is given.

    Returns:
        ``rounds`` (every measurement of every round), ``medians``, ``targets`` (per row:
        ``what``, ``target``, ``measured``, ``met``), ``startup`` (:func:`startup_times`),
        ``recsim_measured``, ``reference_measured``, ``machine``, ``settings``.
    """
    python = recsim_reference.find_recsim_python(recsim_venv)
    if python is None:
        log.warning("no RecSim venv at %s: RecSim's rows are not measured",
                    recsim_venv or recsim_reference.DEFAULT_VENV)
    module = None if reference is None else load_reference(reference)
    load_before = os.getloadavg()  # 1, 5, 15-minute load averages: how busy the machine was
    rounds = []
    for i in range(pairs):
        r = _pair(i, seconds, python, module, recsim_steps, train_steps, train_warmup)
        rounds.append(r)
        log.info("  round %d: %s", i, ", ".join(f"{k} {v:,.1f}" for k, v in r.items()
                                                 if v is not None))
    keys = rounds[0].keys()
    medians = {k: (None if any(r[k] is None for r in rounds)
                   else statistics.median(r[k] for r in rounds)) for k in keys}
    load_after = os.getloadavg()
    targets = [{"key": t.key, "what": t.what, "target": t.target, "unit": t.unit,
                "measured": medians.get(t.key),
                "met": None if medians.get(t.key) is None else medians[t.key] >= t.target}
               for t in TARGETS]
    return {"rounds": rounds, "medians": medians, "targets": targets,
            "startup": startup_times() if startup else None,
            "recsim_measured": python is not None, "reference_measured": module is not None,
            "machine": {**_machine(), "loadavg_before": load_before,
                        "loadavg_after": load_after},
            "settings": {"pairs": pairs, "seconds": seconds, "recsim_steps": recsim_steps,
                         "train_steps": train_steps, "train_warmup": train_warmup,
                         "sessions": TABLE_SESSIONS, "train_sessions": TRAIN_SESSIONS}}


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "not measured"
    return f"{value:.2f}x" if unit == "x" else f"{value:,.0f}"


def format_issue_table(result: dict[str, Any]) -> str:
    """Markdown table of an :func:`issue_table` result (the README's Throughput table)."""
    lines = ["| what | measured (median of pairs) | target | met |", "|---|---:|---:|:---:|"]
    for t in result["targets"]:
        met = "" if t["met"] is None else ("yes" if t["met"] else "no")
        target = f">= {t['target']:g}x" if t["unit"] == "x" else f">= {t['target']:,.0f}"
        lines.append(f"| {t['what']} | {_fmt(t['measured'], t['unit'])} | {target} | {met} |")
    m = result["medians"]
    extra = [("RecSim `interest_evolution` (steps/s)", m.get("recsim")),
             ("batched-numpy restatement of IE, 4,096 users, with obs (user-steps/s)",
              m.get("reference")),
             ("parallel env, 1 recommender, `recsim_ie` (steps/s)", m.get("parallel_ie")),
             ("AEC env, `recsim_ie` (user-steps/s)", m.get("aec_ie")),
             ("world, `recsim_ie`, 4,096 sessions (user-steps/s)", m.get("world_ie")),
             ("SB3's DQN (top-k adapter) training on `recsim_ie`, 64 sessions (env steps/s)",
              m.get("sb3_dqn_ie"))]
    lines += [f"| {what} | {_fmt(v, '')} | | |" for what, v in extra]
    st = result.get("startup")
    if st:
        lines += ["", "| start-up (s, median of fresh interpreters) | numba, cold cache | "
                  "numba, cached | numpy backend |", "|---|---:|---:|---:|"]
        for key, what in (("import", "`import recsim_env`"),
                          ("first_world_recsim_ie", "first `recsim_ie` world: build, reset, "
                                                    "step, observe"),
                          ("first_world_default", "first `default` world: build, reset, "
                                                  "step, observe")):
            lines.append(f"| {what} | {st[f'{key}_cold_s']:.2f} | {st[f'{key}_warm_s']:.2f} | "
                         f"{st[f'{key}_numpy_s']:.2f} |")
    return "\n".join(lines)


def format_table(result: dict[str, Any]) -> str:
    """Markdown table of a :func:`run` result."""
    has_recsim = result["recsim"] is not None
    lines = ["| face | preset | sessions | user-steps/s |" + (" x RecSim |" if has_recsim else "")
             + " x DummyVecEnv |",
             "|---|---|---:|---:|" + ("---:|" if has_recsim else "") + "---:|"]
    for r in result["rows"]:
        line = f"| {r['face']} | {r['preset']} | {r['sessions']} | {r['user_steps_per_s']:,.0f} |"
        if has_recsim:
            line += f" {r['x_recsim']:.1f} |"
        line += f" {r['x_dummy']:.1f} |" if "x_dummy" in r else " |"
        lines.append(line)
    return "\n".join(lines)


def _one_thread() -> None:
    """One torch and BLAS thread. The thread variables bind only before numpy loads, so the
    pools already loaded are limited too where threadpoolctl is installed."""
    init_worker()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        log.warning("threadpoolctl is not installed: numpy's BLAS keeps its default threads")
        return
    threadpool_limits(1)


def main(argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/throughput.py ...``: measure, print the table, write JSON."""
    from agents.cli import ArgumentParser  # one-line errors, exit status 2

    p = ArgumentParser(prog="benchmarks/throughput.py", description=__doc__,
                       formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--vs-recsim", action="store_true", help="also run Google's RecSim")
    p.add_argument("--quick", action="store_true", help="short runs, few sizes")
    p.add_argument("--all", action="store_true",
                   help="include the parallel env above 1024 sessions")
    p.add_argument("--skip-faces", action="store_true", help="world and parallel env only")
    p.add_argument("--presets", nargs="+", default=None, help="default: recsim_ie default")
    p.add_argument("--seconds", type=float, default=None,
                   help="timed seconds per run (default 1.5, --quick 0.3)")
    p.add_argument("--repeats", type=int, default=None,
                   help="runs per cell, median reported (default 3, --quick 1)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"output folder (default: a new {OUT_DIR}-<time>/; --out {OUT_DIR} "
                        "rewrites the committed results)")
    p.add_argument("--recsim-venv", type=Path, default=None,
                   help="RecSim's virtual environment (default .venv-recsim)")
    p.add_argument("--pairs", type=int, default=0,
                   help="only issue 18's table (every target row), in N interleaved rounds "
                        "(medians of the per-round ratios); writes throughput_table.json")
    p.add_argument("--reference", type=Path, default=None,
                   help="with --pairs: the batched-numpy restatement of IE "
                        "(ie_numpy_reference.py of the shared bench folder); without it those "
                        "rows are not measured")
    p.add_argument("--train-steps", type=int, default=6_400,
                   help="with --pairs: timed env steps of each training measurement "
                        "(0: no training rows)")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = new_results_dir(OUT_DIR.name, OUT_DIR.parent)
    logging.basicConfig(format="%(message)s")
    logging.getLogger("agents.experiments").setLevel(logging.INFO)  # progress, RecSim's venv
    _one_thread()
    given = {k: v for k, v in (("seconds", args.seconds), ("repeats", args.repeats),
                               ("presets", args.presets and tuple(args.presets)))
             if v is not None}
    if args.pairs:
        res = issue_table(args.pairs, given.get("seconds", Settings.seconds),
                          recsim_venv=args.recsim_venv, reference=args.reference,
                          train_steps=args.train_steps, startup=not args.quick)
        print(format_issue_table(res))
        print(f"\nwrote {write_json(args.out / 'throughput_table.json', res, indent=2)}")
        return 0
    if args.vs_recsim:
        given["recsim_steps"] = 5_000 if args.quick else 50_000
    if args.all:
        given["max_parallel_sessions"] = None
    given["faces"] = not args.skip_faces
    settings = Settings.quick(**given) if args.quick else Settings(**given)
    result = run(settings, recsim_venv=args.recsim_venv)
    print(format_table(result))
    print(f"\nwrote {write_json(args.out / 'throughput.json', result, indent=2)}")
    return 0
