"""Consensus vs independent learning vs full parameter sharing: 8 recommenders, 8 cohorts.

    python benchmarks/consensus.py --workers 2                 # DQN then PPO, 5 seeds
    python benchmarks/consensus.py --algo dqn --workers 2      # DQN only
    python benchmarks/consensus.py --quick --out /tmp/q        # smoke run (seconds)
    python benchmarks/consensus.py --report-only               # redo md + plots from json
    python benchmarks/consensus.py --algo dqn --first-seed 10 --eval-seeds 20001 20002
                                   # fresh training and evaluation seeds (a confirmation run)

The world is the ``default`` preset with ``n_recommenders=8`` and heterogeneous cohorts
(``cohort_topic_skew``, default 1.5: users of cohort ``c`` get +1.5 on topic ``c`` of their
initial interest and home, clipped to [-1, 1], so each recommender's users prefer a
different topic and personalisation matters; the preset's own cohorts are identical).
Recommender ``i`` serves cohort ``i`` only.

Settings (each over ``--seeds`` training seeds, evaluated on held-out world seeds):

* ``independent``: one learner per agent, no coupling (alpha = 0);
* ``ring a=..`` / ``complete a=..``: one learner per agent coupled by
  :class:`agents.consensus.ConsensusWrapper` (Metropolis weights) after every update round;
* ``... heads personal``: consensus on the shared feature layers only (``params=`` name
  prefixes of the network), each agent's output head stays its own;
* ``shared``: full parameter sharing, ONE learner mapped to all 8 agents
  (``{"recommender": learner}``). It sees 8 rows per update, so its per-update batch,
  replay buffer, ``learning_starts`` and exploration schedule (all counted in rows) are 8x an
  individual agent's: one shared update then uses the same data as one round of 8 agents'
  updates (what ``complete`` with alpha = 1 approximates).

Learners come from :func:`agents.factory.make_learner`: our ``dqn`` (item-wise double DQN)
and SB3 ``ppo`` (``n_rows=1`` per agent; its slates use the no-repeat encoding,
``slate_encoding="no_repeat"``, because per-position heads over ``MultiDiscrete([10] * 3)``
repeat items, which leaves positions empty). In every setting the 8 networks start from one
initialisation (learner 0's weights, ``ConsensusWrapper(common_init=True)``; the shared
learner is built with learner 0's seed), as decentralised SGD assumes: networks initialised
apart are not aligned, so averaging them early mostly shrinks their weights
(``--no-common-init`` gives each its own). Our DQN takes one gradient step per ``update``
call, i.e. per world step; :class:`TrainEvery` can hand it ``train_every`` world steps of
transitions at a time instead (SB3's ``train_freq``; ``--kwargs '{"dqn": {"train_every": 4}}'``)
to cut CPU. Consensus runs once per update round (``every=train_every``, default every world
step); for PPO once per rollout (``every=n_steps``), right after the 8 models trained.

Outputs (``--out``, default ``benchmarks/results/consensus``): ``results.md`` (table: final
return, env steps to 90% of the best final return, final disagreement, each mean and 95% CI
over seeds), ``results.json`` (everything, incl. curves), ``curves.png`` (mean evaluation
return vs env steps, 95% bands), ``disagreement.png`` (parameter disagreement
``sum_i ||theta_i - mean||^2`` over *all* network parameters, sampled during training).
Run directories (TensorBoard events, ``consensus/*`` tags) go to ``--run-root``
(default ``runs/consensus_bench``); no checkpoints are written.

Statistics: 95% CI over seeds = mean +- t_{0.975, n-1} * sd / sqrt(n). "Final return" is the
mean of the last two evaluations of a run. "Steps to threshold": first evaluation at which the
trailing mean of the last two evaluations reaches 90% of the best setting's mean final return;
runs that never reach it count as their total steps (the table then shows a lower bound ">=").
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import multiprocessing as mp
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

N_AGENTS = 8
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "consensus"
QUICK_OUT = ROOT / "runs" / "consensus_quick"
TABLE_COLUMNS = ("setting", "final return (mean ± 95% CI)", "steps to 90% (mean ± 95% CI)",
                 "reached", "final disagreement (mean ± 95% CI)")


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Setting:
    """One way of coupling the 8 agents' learners.

    Attributes:
        name: label in tables and plots.
        kind: ``independent``, ``consensus`` or ``shared``.
        topology: consensus graph (``ring`` / ``complete``).
        alpha: consensus step size (Metropolis weights).
        params: parameter-name prefixes that take part (None: all).
    """

    name: str
    kind: str
    topology: str = "complete"
    alpha: float = 0.0
    params: tuple[str, ...] | None = None


@dataclass(frozen=True)
class AlgoSpec:
    """Budget and hyperparameters of one algorithm's experiment."""

    steps: int
    eval_fracs: tuple[float, ...]  # evaluation points, as fractions of ``steps``
    eval_steps: int
    eval_seeds: tuple[int, ...]
    disagreement_every: int  # world steps between disagreement samples
    train_every: int  # world steps per update round (1 for PPO: SB3 has its own n_steps)
    kwargs: dict[str, Any] = field(default_factory=dict)
    shared_kwargs: dict[str, Any] = field(default_factory=dict)  # overrides for the 1 shared
    head_prefixes: tuple[str, ...] = ()  # personal parameters of "heads personal"
    settings: tuple[Setting, ...] = ()
    common_init: bool = True  # the 8 networks start from learner 0's initial weights


# Evaluation points: every 1/32 of the run for its first quarter (where thresholds are
# crossed), then every 1/8.
DENSE_EARLY = tuple(k / 32 for k in range(1, 9)) + tuple(k / 8 for k in range(3, 9))

# Our DQN's ItemScorer: user_in / item_in / user_proj / item_proj / cross_in form the first
# (feature) layer over [user, candidate, user x candidate]; head.* is the output head.
DQN_FEATURES = ("user_in", "item_in", "user_proj", "item_proj", "cross_in")
# SB3 ActorCriticPolicy: mlp_extractor.* (policy and value trunks) and the action/value heads.
PPO_FEATURES = ("mlp_extractor",)


def _settings(features: tuple[str, ...], alphas_ring: tuple[float, ...],
              alphas_complete: tuple[float, ...], alpha_heads: float) -> tuple[Setting, ...]:
    out = [Setting("independent", "independent")]
    out += [Setting(f"ring a={a:g}", "consensus", "ring", a) for a in alphas_ring]
    out += [Setting(f"complete a={a:g}", "consensus", "complete", a) for a in alphas_complete]
    out.append(Setting(f"complete a={alpha_heads:g}, heads personal", "consensus", "complete",
                       alpha_heads, features))
    out.append(Setting("shared", "shared"))
    return tuple(out)


# Hyperparameters counted in rows (transitions): the shared learner gets 8x.
_PER_ROW = {"dqn": ("batch_size", "buffer_size", "learning_starts", "exploration_steps"),
            "ppo": ("batch_size",)}


def algo_spec(algo: str, *, quick: bool = False, steps: int | None = None,
              overrides: dict[str, Any] | None = None, **fields: Any) -> AlgoSpec:
    """The experiment's budget and hyperparameters for ``algo`` (``dqn`` or ``ppo``).

    ``overrides``: learner kwargs to change (``--kwargs``); those counted in rows are scaled
    8x for the shared learner; the key ``train_every`` sets :attr:`AlgoSpec.train_every`.
    ``fields``: other :class:`AlgoSpec` fields to replace (``eval_steps``, ``eval_seeds``,
    ``common_init``; None leaves a field as it is).
    """
    if algo == "dqn":
        spec = AlgoSpec(
            steps=16_000, eval_fracs=DENSE_EARLY, eval_steps=100, eval_seeds=(10_001, 10_002),
            disagreement_every=20, train_every=1,
            kwargs=dict(hidden=(64,), cross_dim=16, lr=3e-3, gamma=0.5, batch_size=64,
                        buffer_size=5_000, learning_starts=50, exploration_steps=300,
                        exploration_final_eps=0.05, target_update_interval=25),
            shared_kwargs=dict(batch_size=8 * 64, buffer_size=8 * 5_000,
                               learning_starts=8 * 50, exploration_steps=8 * 300),
            head_prefixes=("head",),
            settings=_settings(DQN_FEATURES, (0.5,), (0.05, 0.5), 0.5),
        )
        if quick:
            spec = AlgoSpec(**{**spec.__dict__, "steps": 80, "eval_fracs": (1.0,),
                               "eval_steps": 40, "eval_seeds": (10_001,),
                               "disagreement_every": 5,
                               "kwargs": {**spec.kwargs, "learning_starts": 4,
                                          "exploration_steps": 20},
                               "shared_kwargs": {**spec.shared_kwargs, "learning_starts": 32,
                                                 "exploration_steps": 160}})
    elif algo == "ppo":
        spec = AlgoSpec(
            steps=16_000, eval_fracs=tuple(k / 8 for k in range(1, 9)), eval_steps=100,
            eval_seeds=(10_001, 10_002), disagreement_every=32, train_every=1,
            kwargs=dict(n_steps=64, batch_size=32, n_epochs=4, learning_rate=1e-3,
                        gamma=0.5, ent_coef=0.01, policy_kwargs=dict(net_arch=[64, 64]),
                        slate_encoding="no_repeat"),
            shared_kwargs=dict(batch_size=8 * 32),
            head_prefixes=("action_net", "value_net"),
            settings=_settings(PPO_FEATURES, (0.5,), (0.1, 0.5), 0.5),
        )
        if quick:
            spec = AlgoSpec(**{**spec.__dict__, "steps": 80, "eval_fracs": (1.0,),
                               "eval_steps": 40, "eval_seeds": (10_001,),
                               "disagreement_every": 5,
                               "kwargs": {**spec.kwargs, "n_steps": 8, "batch_size": 8,
                                          "n_epochs": 1},
                               "shared_kwargs": {"batch_size": 64}})
    else:
        raise ValueError(f"algo must be dqn or ppo, got {algo!r}")
    if quick:  # fewer settings: one of each kind
        spec = AlgoSpec(**{**spec.__dict__, "settings": tuple(
            s for s in spec.settings if s.kind != "consensus" or s.params is not None)})
    if steps is not None:
        spec = AlgoSpec(**{**spec.__dict__, "steps": int(steps)})
    if overrides:
        over = dict(overrides)
        train_every = int(over.pop("train_every", spec.train_every))
        kwargs = {**spec.kwargs, **over}
        shared = {**spec.shared_kwargs, **{k: N_AGENTS * kwargs[k] for k in _PER_ROW[algo]
                                           if k in over}}
        spec = AlgoSpec(**{**spec.__dict__, "kwargs": kwargs, "shared_kwargs": shared,
                           "train_every": train_every})
    fields = {k: v for k, v in fields.items() if v is not None}
    unknown = set(fields) - set(spec.__dict__)
    if unknown:
        raise ValueError(f"unknown AlgoSpec fields {sorted(unknown)}")
    if "eval_seeds" in fields:
        fields["eval_seeds"] = tuple(int(x) for x in fields["eval_seeds"])
    return AlgoSpec(**{**spec.__dict__, **fields})


def eval_points(spec: AlgoSpec) -> list[int]:
    """Env steps at which a run is evaluated (multiples of 8, increasing, ending at steps)."""
    pts = {_round_up(max(int(f * spec.steps), 1), N_AGENTS) for f in spec.eval_fracs}
    return sorted(p for p in pts if p <= _round_up(spec.steps, N_AGENTS))


def _round_up(x: int, k: int) -> int:
    return -(-x // k) * k


def env_config(skew: float):
    """The ``default`` preset with 8 recommenders and topic-skewed cohorts."""
    from recsim_env import make_config

    return make_config("default", n_recommenders=N_AGENTS, cohort_topic_skew=skew)


# --------------------------------------------------------------------------- learners
class TrainEvery:
    """Hand a learner ``k`` world steps of transitions at once (SB3's ``train_freq``).

    Acting passes straight through; ``update`` buffers the batches and, on every ``k``-th
    call, concatenates them into one :class:`agents.base.Transition` for the inner learner
    (our DQN then stores ``k`` rows and takes its gradient steps). For consensus the wrapper
    exposes the inner learner's parameters (``consensus_member``).
    """

    privileged = False

    def __init__(self, inner: Any, k: int) -> None:
        self.inner = inner
        self.k = int(k)
        self._pending: list[Any] = []

    def act(self, obs, context=None, *, explore: bool = True):
        return self.inner.act(obs, context, explore=explore)

    def update(self, batch) -> dict[str, float]:
        if self.k == 1:
            return self.inner.update(batch)
        self._pending.append(batch)
        if len(self._pending) < self.k:
            return {}
        from agents.base import Transition

        parts, self._pending = self._pending, []
        merged = Transition(*(np.concatenate([getattr(p, f) for p in parts])
                              for f in Transition._fields if f != "context"), context=None)
        return self.inner.update(merged)

    def consensus_member(self):
        from agents.consensus import learner_member

        return learner_member(self.inner)

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)
        self._pending = []


def _make(algo: str, cfg, seed: int, spec: AlgoSpec, *, shared: bool) -> Any:
    from agents.factory import make_learner

    kwargs = {**spec.kwargs, **(spec.shared_kwargs if shared else {})}
    if algo == "ppo":
        return make_learner("ppo", cfg, n_rows=N_AGENTS if shared else 1, seed=seed,
                            total_steps=spec.steps, **kwargs)
    return TrainEvery(make_learner("dqn", cfg, seed=seed, **kwargs), spec.train_every)


class _Probe:
    """The runner's consensus hook: applies the setting's consensus (if any) and samples the
    disagreement of all parameters every ``sample_every`` world steps."""

    def __init__(self, coupling: Any, measure: Any, sample_every: int) -> None:
        self.coupling = coupling
        self.measure = measure
        self.sample_every = sample_every
        self.world_steps = 0
        self.samples: list[tuple[int, float]] = []

    def sample(self, env_steps: int) -> None:
        if self.measure is not None:
            self.samples.append((env_steps, float(self.measure.disagreement())))

    def after_update(self, assignments: Any = None, logger: Any = None) -> None:
        if self.coupling is not None:
            self.coupling.after_update(assignments, logger)
        self.world_steps += 1
        if self.world_steps % self.sample_every == 0:
            self.sample(self.world_steps * N_AGENTS)

    def state_dict(self) -> dict[str, Any]:
        return self.coupling.state_dict() if self.coupling is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.coupling is not None:
            self.coupling.load_state_dict(state)


# --------------------------------------------------------------------------- one run
def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train one (algo, setting, seed); returns its evaluation curve and disagreement."""
    import torch

    torch.set_num_threads(1)
    from agents.consensus import ConsensusWrapper
    from agents.runner import RunConfig, Runner

    t0, c0 = time.perf_counter(), time.process_time()
    algo, seed = job["algo"], job["seed"]
    setting = Setting(**job["setting"])
    spec = algo_spec(algo, quick=job["quick"], steps=job["steps"],
                     overrides=job.get("overrides"), **job.get("fields", {}))
    cfg = env_config(job["skew"])
    if setting.kind == "shared":
        learner = _make(algo, cfg, 1000 * seed, spec, shared=True)
        learners = {"recommender": learner}
        probe = _Probe(None, None, spec.disagreement_every)
    else:
        group = [_make(algo, cfg, 1000 * seed + i, spec, shared=False) for i in range(N_AGENTS)]
        learners = {f"recommender_{i}": x for i, x in enumerate(group)}
        every = spec.kwargs["n_steps"] if algo == "ppo" else spec.train_every
        # All parameters, never steps; with common_init every setting starts the 8 networks
        # from learner 0's initial weights, so settings differ only in their coupling.
        measure = ConsensusWrapper(group, alpha=0.0, common_init=spec.common_init)
        coupling = None
        if setting.kind == "consensus":
            coupling = ConsensusWrapper(group, alpha=setting.alpha, topology=setting.topology,
                                        every=every, params=setting.params)
        probe = _Probe(coupling, measure, spec.disagreement_every)
    run = RunConfig(total_steps=spec.steps, seed=seed, eval_seeds=spec.eval_seeds,
                    eval_every=0, eval_steps=spec.eval_steps,
                    log_every=max(spec.steps // 10, 1), progress=False, algo=algo,
                    scenario="consensus", save_checkpoints=False, eval_at_start=True)
    slug = setting.name.replace(" ", "_").replace(",", "").replace("=", "")
    run_dir = Path(job["run_root"]) / algo / slug / f"seed{seed}"
    runner = Runner(cfg, learners, run, run_dir=run_dir, consensus=probe)
    try:
        probe.sample(0)
        for point in eval_points(spec):  # train() evaluates at step 0 and when it stops
            runner.train(total_steps=point)
        history = [{"step": int(e["step"]), "mean_reward": float(e["mean_reward"])}
                   for e in runner.eval_history]
    finally:
        runner.close()
    return {
        "algo": algo, "setting": setting.name, "seed": seed,
        "steps": [h["step"] for h in history],
        "returns": [h["mean_reward"] for h in history],
        "disagreement_steps": [s for s, _ in probe.samples],
        "disagreement": [d for _, d in probe.samples],
        "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
    }


def reference_returns(skew: float, eval_seeds: tuple[int, ...], eval_steps: int
                      ) -> dict[str, float]:
    """Evaluation return of two fixed baselines under the same protocol, for scale."""
    import tempfile

    import torch

    torch.set_num_threads(1)
    from agents.factory import make_learner
    from agents.runner import RunConfig, Runner

    cfg = env_config(skew)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, label in (("random", "random"), ("myopic_oracle", "myopic oracle (privileged)")):
            run = RunConfig(total_steps=0, eval_seeds=tuple(eval_seeds), eval_steps=eval_steps,
                            progress=False, save_checkpoints=False)
            runner = Runner(cfg, {"recommender": make_learner(name, cfg)}, run,
                            run_dir=Path(tmp) / name)
            out[label] = float(runner.evaluate()["mean_reward"])
            runner.close()
    return out


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_jobs(jobs: list[dict[str, Any]], workers: int, log=print) -> list[dict[str, Any]]:
    """Run jobs inline (``workers <= 1``) or in a process pool, in the order given."""
    results: list[dict[str, Any]] = []

    def report(r: dict[str, Any]) -> None:
        log(f"  {r['algo']:4s} {r['setting']:32s} seed {r['seed']}: final "
            f"{r['returns'][-1]:7.2f}  ({r['wall_s']:.0f} s wall, {r['cpu_s']:.0f} s cpu)")

    if workers <= 1:
        for job in jobs:
            results.append(run_one(job))
            report(results[-1])
        return results
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                initializer=_init_worker) as pool:
        futures = [pool.submit(run_one, job) for job in jobs]
        for fut in cf.as_completed(futures):
            report(fut.result())
        results = [f.result() for f in futures]
    return results


# --------------------------------------------------------------------------- statistics
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def t_crit(n: int) -> float:
    """t_{0.975, n-1} (NaN for n < 2)."""
    if n < 2:
        return float("nan")
    try:
        from scipy.stats import t

        return float(t.ppf(0.975, n - 1))
    except ImportError:  # scipy is a dev extra
        return _T975[n - 2] if n - 2 < len(_T975) else 1.96


def mean_ci(x: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and 95% CI half-width over ``axis`` (t distribution, n - 1 dof)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[axis]
    mean = x.mean(axis=axis)
    if n < 2:
        return mean, np.full_like(mean, np.nan)
    return mean, t_crit(n) * x.std(axis=axis, ddof=1) / math.sqrt(n)


def _trailing(curve: np.ndarray, width: int = 2) -> np.ndarray:
    """Trailing mean of the last ``width`` points (fewer at the start), along the last axis."""
    c = np.cumsum(np.asarray(curve, np.float64), axis=-1)
    out = c.copy()
    out[..., width:] = c[..., width:] - c[..., :-width]
    counts = np.minimum(np.arange(1, curve.shape[-1] + 1), width)
    return out / counts


def steps_to(steps: np.ndarray, curves: np.ndarray, threshold: float) -> np.ndarray:
    """Per-seed first step where the trailing 2-eval mean reaches ``threshold`` (NaN: never)."""
    smooth = _trailing(curves)
    out = np.full(curves.shape[0], np.nan)
    for i, row in enumerate(smooth):
        hit = np.flatnonzero(row >= threshold)
        if hit.size:
            out[i] = steps[hit[0]]
    return out


def summarise(results: list[dict[str, Any]], spec: AlgoSpec) -> dict[str, Any]:
    """Curves, final returns, steps to threshold and disagreement per setting."""
    names = [s.name for s in spec.settings]
    by = {n: sorted((r for r in results if r["setting"] == n), key=lambda r: r["seed"])
          for n in names}
    rows: dict[str, dict[str, Any]] = {}
    for name, runs in by.items():
        steps = np.asarray(runs[0]["steps"])
        curves = np.asarray([r["returns"] for r in runs], np.float64)  # (seeds, evals)
        final = curves[:, -2:].mean(axis=1)
        m, ci = mean_ci(curves)
        fm, fci = mean_ci(final)
        row = {"seeds": [r["seed"] for r in runs], "steps": steps.tolist(),
               "curve_mean": m.tolist(), "curve_ci": ci.tolist(),
               "curves": curves.tolist(), "final": final.tolist(),
               "final_mean": float(fm), "final_ci": float(fci),
               "wall_s": [r["wall_s"] for r in runs], "cpu_s": [r["cpu_s"] for r in runs]}
        if runs[0]["disagreement"]:
            d = np.asarray([r["disagreement"] for r in runs], np.float64)
            dm, dci = mean_ci(d)
            row.update(disagreement_steps=runs[0]["disagreement_steps"],
                       disagreement_mean=dm.tolist(), disagreement_ci=dci.tolist(),
                       final_disagreement=float(dm[-1]), final_disagreement_ci=float(dci[-1]))
        else:  # one network: no disagreement
            row.update(disagreement_steps=[], disagreement_mean=[], disagreement_ci=[],
                       final_disagreement=0.0, final_disagreement_ci=0.0)
        rows[name] = row
    best = max(rows, key=lambda n: rows[n]["final_mean"])
    threshold = 0.9 * rows[best]["final_mean"]
    for name, row in rows.items():
        hit = steps_to(np.asarray(row["steps"]), np.asarray(row["curves"]), threshold)
        censored = np.where(np.isnan(hit), spec.steps, hit)
        sm, sci = mean_ci(censored)
        row.update(steps_to_threshold=[None if np.isnan(h) else int(h) for h in hit],
                   steps_mean=float(sm), steps_ci=float(sci),
                   reached=int(np.isfinite(hit).sum()))
    target = check_target(rows, spec)
    return {"settings": names, "rows": rows, "best": best, "threshold": threshold,
            "target": target}


def check_target(rows: dict[str, dict[str, Any]], spec: AlgoSpec) -> dict[str, Any]:
    """Some consensus setting reaches the threshold in at most half the env steps of
    independent learners and ends at least as high as full sharing (means over seeds)."""
    ind, shared = rows["independent"], rows["shared"]
    out = []
    for s in spec.settings:
        if s.kind != "consensus":
            continue
        r = rows[s.name]
        # independent learners at the threshold from step 0 (nothing to learn): none is faster
        faster = (r["reached"] == len(r["final"]) and ind["steps_mean"] > 0
                  and r["steps_mean"] <= 0.5 * ind["steps_mean"])
        higher = r["final_mean"] >= shared["final_mean"]
        ratio = r["steps_mean"] / ind["steps_mean"] if ind["steps_mean"] > 0 else float("nan")
        out.append({"setting": s.name, "steps_ratio_vs_independent": ratio,
                    "final_minus_shared":
                    r["final_mean"] - shared["final_mean"], "faster": bool(faster),
                    "at_least_shared": bool(higher), "met": bool(faster and higher)})
    return {"met": any(o["met"] for o in out), "independent_lower_bound":
            ind["reached"] < len(ind["final"]), "per_setting": out}


def paired(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean and 95% CI of the per-seed difference ``a - b`` (same seeds, same eval worlds)."""
    m, ci = mean_ci(np.asarray(a) - np.asarray(b))
    return float(m), float(ci)


# --------------------------------------------------------------------------- outputs
def _pm(m: float, ci: float, fmt: str = "{:.1f}") -> str:
    if not np.isfinite(ci):
        return fmt.format(m)
    return f"{fmt.format(m)} ± {fmt.format(ci)}"


def table_rows(summary: dict[str, Any]) -> list[list[str]]:
    """The results table (see :data:`TABLE_COLUMNS`) as strings."""
    out = []
    for name in summary["settings"]:
        r = summary["rows"][name]
        n = len(r["final"])
        steps = _pm(r["steps_mean"], r["steps_ci"], "{:,.0f}")
        if r["reached"] < n:
            steps = ">= " + steps
        dis = ("0 (one network)" if not r["disagreement_mean"] else
               _pm(r["final_disagreement"], r["final_disagreement_ci"], "{:.3g}"))
        out.append([name, _pm(r["final_mean"], r["final_ci"]), steps, f"{r['reached']}/{n}",
                    dis])
    return out


def write_markdown(path: Path, data: dict[str, Any]) -> None:
    meta = data["meta"]
    lines = ["# Consensus vs independent vs shared: 8 recommenders, 8 cohorts", ""]
    lines += [
        f"World: `default` preset with `n_recommenders=8`, **`cohort_topic_skew="
        f"{meta['skew']:g}`** (heterogeneous cohorts: users of cohort c get +{meta['skew']:g} "
        "on topic c of their initial interest and home; the preset's cohorts are identical "
        "otherwise). Recommender i serves cohort i; reward = watch time; return = mean "
        "return of the sessions that start in the evaluation window of held-out worlds, each "
        "followed to its end (`Runner.evaluate`; greedy policies).",
        "",
        "Final return = mean of the last two evaluations; steps to 90% = env steps until the "
        "trailing two-evaluation mean first reaches 90% of the best setting's final return "
        "(runs that never do count as their total steps: '>=' marks a lower bound); "
        "disagreement = sum_i ||theta_i - mean||^2 over all network parameters at the end "
        "of training. ± = 95% CI over seeds (t distribution).",
        "",
    ]
    for algo, block in data["algos"].items():
        s, spec = block["summary"], block["spec"]
        lines += [f"## {algo.upper()}", ""]
        lines += [f"Command: `{spec.get('command', meta['command'])}`  ",
                  f"Wall time: {spec['wall_s']:.0f} s on {spec.get('workers', meta['workers'])}"
                  f" worker(s), {spec['cpu_s']:.0f} s CPU summed over runs "
                  f"({spec.get('machine', meta['machine'])}).", ""]
        lines += [f"{len(spec['seeds'])} seeds {spec['seeds']} x {spec['steps']:,} env steps "
                  f"({spec['steps'] // N_AGENTS:,} world steps), evaluated at 0 and "
                  f"{spec['eval_points']} env steps on seeds {list(spec['eval_seeds'])} "
                  f"x {spec['eval_steps']} world steps. Learner kwargs: "
                  f"`{json.dumps(spec['kwargs'])}`; shared learner overrides: "
                  f"`{json.dumps(spec['shared_kwargs'])}`; "
                  f"update round every {spec['train_every_effective']} world step(s). "
                  + ("The 8 networks start from one initialisation (learner 0's weights, "
                     "`common_init`) in every setting." if spec.get("common_init") else
                     "Each network starts from its own random initialisation."), ""]
        lines += [f"Best final return: **{s['best']}**; 90% threshold = "
                  f"{s['threshold']:.1f}."]
        ref = block.get("reference")
        if ref:
            lines[-1] += " Same evaluation, fixed policies: " + ", ".join(
                f"{k} {v:.1f}" for k, v in ref.items()) + "."
        lines.append("")
        lines.append("| " + " | ".join(TABLE_COLUMNS) + " |")
        lines.append("|" + "---|" * len(TABLE_COLUMNS))
        for row in table_rows(s):
            lines.append("| " + " | ".join(row) + " |")
        t = s["target"]
        lines += ["", f"Target (a consensus setting reaches the threshold in <= half the "
                  f"steps of independent learners AND ends >= full sharing): "
                  f"**{'met' if t['met'] else 'not met'}**."
                  + (" Independent learners did not all reach the threshold, so their "
                     "steps are a lower bound." if t["independent_lower_bound"] else "")
                  + (" The untrained networks already reach the threshold (step 0): the "
                     "best final return is not 10% above the start, so steps to the "
                     "threshold say nothing here." if s["rows"]["independent"]["steps_mean"] == 0
                     else ""), ""]
        rows = s["rows"]
        for o in t["per_setting"]:
            final = rows[o["setting"]]["final"]
            vs_ind = "{:+.1f} ± {:.1f}".format(*paired(final, rows["independent"]["final"]))
            vs_shared = "{:+.1f} ± {:.1f}".format(*paired(final, rows["shared"]["final"]))
            lines.append(f"- {o['setting']}: steps / independent = "
                         f"{o['steps_ratio_vs_independent']:.2f}; final - independent = "
                         f"{vs_ind}, final - shared = {vs_shared} (paired over seeds) -> "
                         f"{'met' if o['met'] else 'not met'}")
        lines.append("")
    lines += ["![curves](curves.png)", "", "![disagreement](disagreement.png)", ""]
    path.write_text("\n".join(lines))


def plot(out: Path, data: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    algos = list(data["algos"])
    skew = data["meta"]["skew"]
    for kind in ("curves", "disagreement"):
        fig, axes = plt.subplots(1, len(algos), figsize=(6.5 * len(algos), 4.5), squeeze=False)
        for ax, algo in zip(axes[0], algos):
            s = data["algos"][algo]["summary"]
            for name in s["settings"]:
                r = s["rows"][name]
                if kind == "curves":
                    x, m, ci = r["steps"], np.array(r["curve_mean"]), np.array(r["curve_ci"])
                else:
                    if not r["disagreement_mean"]:
                        continue
                    x = r["disagreement_steps"]
                    m, ci = np.array(r["disagreement_mean"]), np.array(r["disagreement_ci"])
                (line,) = ax.plot(x, m, label=name, lw=1.6)
                if np.isfinite(ci).all():
                    lo = m - ci if kind == "curves" else np.maximum(m - ci, m * 1e-3)
                    ax.fill_between(x, lo, m + ci, color=line.get_color(), alpha=0.15)
            n = len(data["algos"][algo]["spec"]["seeds"])
            ax.set_xlabel("env steps (all 8 agents)")
            if kind == "curves":
                ax.axhline(s["threshold"], color="grey", ls=":", lw=1, label="90% of best")
                for (label, value), ls in zip(data["algos"][algo].get("reference", {}).items(),
                                              ("--", "-.")):
                    ax.axhline(value, color="black", ls=ls, lw=0.8, label=label)
                ax.set_ylabel("mean evaluation return")
                ax.set_title(f"{algo.upper()}: evaluation return, {n} seeds, 95% CI")
            else:
                ax.set_yscale("log")
                ax.set_ylabel("sum_i ||theta_i - mean||^2 (all params)")
                ax.set_title(f"{algo.upper()}: disagreement, {n} seeds, 95% CI "
                             "(shared: 0)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"8 recommenders on default, cohort_topic_skew={skew:g}", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / f"{kind}.png", dpi=110)
        plt.close(fig)


# --------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algo", choices=("dqn", "ppo", "both"), default="both")
    p.add_argument("--seeds", type=int, default=None,
                   help="number of training seeds (default 5; --quick: 2)")
    p.add_argument("--first-seed", type=int, default=0,
                   help="training seeds are first-seed .. first-seed + seeds - 1")
    p.add_argument("--eval-steps", type=int, default=None,
                   help="world steps in which evaluated sessions start, each followed to its "
                        "end (default: per algorithm)")
    p.add_argument("--eval-seeds", type=int, nargs="+", default=None,
                   help="held-out evaluation world seeds (default: per algorithm)")
    p.add_argument("--no-common-init", action="store_true",
                   help="start each agent's network from its own random weights")
    p.add_argument("--steps", type=int, default=None,
                   help="env steps per run (default: per algorithm)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    p.add_argument("--skew", type=float, default=1.5, help="cohort_topic_skew (0: identical)")
    p.add_argument("--settings", default=None,
                   help="comma-separated substrings: run only matching settings (must keep "
                        "'independent' and 'shared')")
    p.add_argument("--kwargs", default=None,
                   help='learner kwargs overrides as JSON per algo, e.g. '
                        '\'{"dqn": {"lr": 0.001, "train_every": 2}}\'')
    p.add_argument("--report-only", action="store_true",
                   help="rewrite results.md and the plots from --out/results.json, run nothing")
    p.add_argument("--quick", action="store_true", help="tiny smoke run (seconds)")
    p.add_argument("--out", default=None, help="results folder")
    p.add_argument("--run-root", default=None, help="where run directories go")
    return p.parse_args(argv)


def parse_kwargs(text: str | None) -> dict[str, dict[str, Any]]:
    """``--kwargs`` as ``{algo: {name: value}}``; anything else is an error (a flat
    ``{"lr": ...}`` would otherwise be ignored without a word)."""
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise SystemExit(f"--kwargs: not JSON ({e}): {text!r}") from None
    if not isinstance(doc, dict) or any(k not in ("dqn", "ppo") or not isinstance(v, dict)
                                        for k, v in doc.items()):
        raise SystemExit(f"--kwargs must map an algorithm ('dqn' or 'ppo') to its learner "
                         f"kwargs, e.g. '{{\"dqn\": {{\"lr\": 0.001}}}}'; got {text!r}")
    return doc


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Path(args.out) if args.out else (QUICK_OUT if args.quick else DEFAULT_OUT)
    run_root = Path(args.run_root) if args.run_root else (
        out / "runs" if args.quick else ROOT / "runs" / "consensus_bench")
    out.mkdir(parents=True, exist_ok=True)
    algos = ["dqn", "ppo"] if args.algo == "both" else [args.algo]
    n_seeds = args.seeds if args.seeds is not None else (2 if args.quick else 5)
    seeds = list(range(args.first_seed, args.first_seed + n_seeds))
    fields = {"eval_steps": args.eval_steps, "eval_seeds": args.eval_seeds,
              "common_init": False if args.no_common_init else None}
    json_path = out / "results.json"
    if args.report_only:
        data = json.loads(json_path.read_text())
        missing = [b for b in data["algos"].values() if "reference" not in b]
        for block in missing:
            sp = block["spec"]
            block["reference"] = reference_returns(data["meta"]["skew"], sp["eval_seeds"],
                                                   sp["eval_steps"])
        if missing:
            json_path.write_text(json.dumps(data, indent=1, default=str))
        write_markdown(out / "results.md", data)
        plot(out, data)
        print(f"rewrote {out}/results.md, curves.png, disagreement.png")
        return data
    data: dict[str, Any] = {"algos": {}}
    if json_path.exists():  # keep the other algorithm's results from an earlier run
        try:
            old = json.loads(json_path.read_text())
            if old.get("meta", {}).get("skew") == args.skew:
                data["algos"] = {k: v for k, v in old.get("algos", {}).items()
                                 if k not in algos}
        except (json.JSONDecodeError, AttributeError):
            pass
    t0 = time.perf_counter()
    cpu = 0.0
    command = "python benchmarks/consensus.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    for algo in algos:
        overrides = parse_kwargs(args.kwargs).get(algo)
        spec = algo_spec(algo, quick=args.quick, steps=args.steps, overrides=overrides,
                         **fields)
        if args.settings:
            want = [w.strip() for w in args.settings.split(",")]
            spec = AlgoSpec(**{**spec.__dict__, "settings": tuple(
                s for s in spec.settings if s.kind != "consensus"
                or any(w in s.name for w in want))})
        jobs = [{"algo": algo, "setting": s.__dict__, "seed": seed, "quick": args.quick,
                 "steps": args.steps, "skew": args.skew, "run_root": str(run_root),
                 "overrides": overrides, "fields": fields}
                for s in spec.settings for seed in seeds]
        print(f"{algo}: {len(spec.settings)} settings x {len(seeds)} seeds = {len(jobs)} runs "
              f"of {spec.steps:,} env steps, {args.workers} worker(s)", flush=True)
        ta = time.perf_counter()
        results = run_jobs(jobs, args.workers)
        cpu += sum(r["cpu_s"] for r in results)
        summary = summarise(results, spec)
        spec_json = {k: v for k, v in spec.__dict__.items() if k != "settings"}
        spec_json.update(seeds=seeds, eval_points=eval_points(spec), settings=[s.__dict__ for s in spec.settings],
                         train_every_effective=(spec.kwargs["n_steps"] if algo == "ppo"
                                                else spec.train_every),
                         wall_s=time.perf_counter() - ta, command=command,
                         workers=args.workers, machine=machine,
                         cpu_s=sum(r["cpu_s"] for r in results))
        data["algos"][algo] = {"spec": spec_json, "summary": summary, "reference":
                               reference_returns(args.skew, spec.eval_seeds, spec.eval_steps)}
        for row in table_rows(summary):
            print("  " + " | ".join(row))
        print(f"  target met: {summary['target']['met']}", flush=True)
    wall = time.perf_counter() - t0
    data["meta"] = {
        "skew": args.skew, "command": command,
        "wall_s": wall, "cpu_s": cpu, "workers": args.workers, "machine": machine,
        "config": env_config(args.skew).to_dict(),
        "algos_in_this_invocation": algos,
    }
    text = json.dumps(data, indent=1, default=str)
    json_path.write_text(text)
    data = json.loads(text)  # the report reads exactly what --report-only would
    write_markdown(out / "results.md", data)
    plot(out, data)
    print(f"wrote {out}/results.md, results.json, curves.png, disagreement.png "
          f"({wall:.0f} s wall, {cpu:.0f} s cpu)")
    return data


if __name__ == "__main__":
    main()
