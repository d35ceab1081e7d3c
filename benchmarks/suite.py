"""Policy benchmark suite: scenarios x policies x seeds, with tables, plots and TensorBoard.

    recsim-marl benchmark --suite quick --workers 2     # a few minutes
    recsim-marl benchmark --suite full --workers 2      # about 25 minutes on 2 cores
    python benchmarks/suite.py --suite quick            # the same, without the console script

Every (scenario, policy, seed) is one independent run (a separate process with
``--workers N``):

* **learned policies** (our Q-learners, SB3 PPO and DQN, a consensus group) are trained with
  :class:`agents.runner.Runner` on world seed ``seed`` (TensorBoard curves in
  ``runs/benchmark_<suite>/<scenario>__<policy>__<seed>__<time>/``, with evaluation curves on
  seed ``20000 + seed`` every ``budget / curve_points`` steps and one row in TensorBoard's
  hparams table holding the run's final metrics), then frozen and evaluated greedily
  (``explore=False``);
* **baselines** need no training; those that learn online (the bandits, LinUCB, matrix
  factorisation, content similarity) run as deployed: exploring and updating while they serve.

Evaluation (:func:`agents.metrics.evaluate_recommender`) is on held-out world seeds
``10000 + seed``, disjoint from every training and curve seed, with the same world seed for
every policy (common random numbers), ``warmup_steps`` unmeasured steps and then
``eval_steps`` measured steps of ``eval_sessions`` concurrent sessions. Means and 95%
confidence intervals are over seeds (Student t).

Outputs in ``results/<suite>/``: ``results.csv`` and ``results.json`` (one row per scenario
and policy: ``<metric>_mean`` and ``<metric>_ci95``), ``results.md`` (tables, best non-oracle
value per column in bold, target checks), and PNGs: ``learning_curves.png``,
``bar_<metric>.png`` per headline metric, ``interest_drift.png``.

Design decisions:

* **SB3 DQN on slates.** SB3's DQN has one Q-value per discrete action, i.e. per candidate
  position. On slates larger than one it runs as :class:`agents.sb3.TopKSB3DQN`: the slate is
  its top-k candidates by Q (epsilon-random while exploring) and the replayed action is the clicked
  position (the first when nothing was clicked), the crediting our DQN uses. The scenario is
  unchanged, so its numbers compare with every other row.
* **SB3 PPO** acts on the ``MultiDiscrete`` slate space with one policy shared by every
  session (parameter sharing); a repeated candidate is an empty position.
* **Consensus group**: four DQNs, each serving a quarter of the sessions, coupled after every
  update round by ``ConsensusWrapper(alpha, topology="ring")``.
* **Budgets** are env steps (session-steps) per training run, per suite and scenario, in
  :data:`BUDGETS`; learner hyperparameters in :data:`HPARAMS` (our Q-learners' come from the
  Q-learner benchmark, ``benchmarks/learning_qlearners.py``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # runnable as a plain script
    sys.path.insert(0, str(REPO_ROOT))

from agents.metrics import METRIC_KEYS, mean_ci, oracle_gap_closed  # noqa: E402

log = logging.getLogger(__name__)

SCENARIOS = ("default", "recsim_ie", "cold_start", "long_term")

# --------------------------------------------------------------------------- policies
BASELINE_POLICIES = ("random", "most_popular", "epsilon_greedy", "ucb1", "thompson", "linucb",
                     "online_mf", "content_similarity")
ORACLE_POLICIES = ("myopic_oracle", "long_term_oracle")
LEARNED_POLICIES = ("tabular_q", "linear_q", "dqn", "slateq", "ppo", "sb3_dqn", "consensus_dqn")
POLICIES = BASELINE_POLICIES + ORACLE_POLICIES + LEARNED_POLICIES
ONLINE_BASELINES = ("epsilon_greedy", "ucb1", "thompson", "linucb", "online_mf",
                    "content_similarity")
"""Baselines that learn while they serve: evaluated exploring and updating."""

POLICY_NOTES = {
    "sb3_dqn": "SB3 DQN; slates > 1: top-k of its per-position Q, clicked position credited",
    "ppo": "SB3 PPO on the MultiDiscrete slate, one policy shared by all sessions",
    "consensus_dqn": "4 DQNs, each a quarter of the sessions, consensus on a ring",
    "linucb": "LinUCB; content x user features on recsim_ie, content features elsewhere",
}


def policy_kind(name: str) -> str:
    """``baseline``, ``oracle`` (privileged) or ``learned``."""
    if name in ORACLE_POLICIES:
        return "oracle"
    return "learned" if name in LEARNED_POLICIES else "baseline"


# --------------------------------------------------------------------------- hyperparameters
# Our Q-learners start from the Q-learner benchmark (benchmarks/learning_qlearners.py:
# recsim_ie: long horizon, slow Polyak target; catalog scenarios: shorter horizon), adjusted by
# short sweeps for this suite (3 seeds each, evaluated as here):
# * recsim_ie, linear_q: gamma 0.995, lr 0.1, a long exploration (150k steps, final 0.01):
#   greedy return 249-264 after 400k-500k steps; with 60k steps of exploration one seed in
#   three stayed at 157.
# * catalog scenarios, dqn: gamma 0.5 (the long-term oracle is no better than the myopic one
#   there): 67.6-69.3 after 100k steps on default, where gamma 0.95 gave 61.6-80.7.
# exploration_steps and learning_starts are capped to a fraction of the budget (_scaled).
_DEEP_RECSIM = dict(gamma=0.99, lr=1e-3, batch_size=256, buffer_size=50_000,
                    learning_starts=2_000, gradient_steps=2, target_update_interval=1,
                    tau=0.01, exploration_steps=30_000, exploration_final_eps=0.05,
                    reward_scale=0.1, hidden=(64, 64), cross_dim=32)
_DEEP_CATALOG = {**_DEEP_RECSIM, "gamma": 0.95, "reward_scale": 0.5}
_DQN_CATALOG = {**_DEEP_CATALOG, "gamma": 0.5}
_TABULAR = {"recsim_ie": dict(gamma=0.995, lr=0.2, exploration_steps=150_000,
                              exploration_final_eps=0.01),
            "*": dict(gamma=0.95, lr=0.05, exploration_steps=30_000)}
_LINEAR = {"recsim_ie": dict(gamma=0.995, lr=0.1, exploration_steps=150_000,
                             exploration_final_eps=0.01),
           "*": dict(gamma=0.95, lr=0.02, exploration_steps=30_000)}
HPARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "tabular_q": _TABULAR,
    "linear_q": _LINEAR,
    "dqn": {"recsim_ie": _DEEP_RECSIM, "*": _DQN_CATALOG},
    "slateq": {"recsim_ie": _DEEP_RECSIM, "*": _DEEP_CATALOG},
    # one gradient step per learner and round (the group runs four networks); each member
    # sees a quarter of the sessions, so a quarter of the buffer spans the same time window
    "consensus_dqn": {"recsim_ie": {**_DEEP_RECSIM, "gradient_steps": 1, "buffer_size": 12_500},
                      "*": {**_DQN_CATALOG, "gradient_steps": 1, "buffer_size": 12_500}},
    "ppo": {"recsim_ie": dict(n_steps=64, batch_size=1024, n_epochs=4, learning_rate=3e-4,
                              gamma=0.99, ent_coef=0.01),
            "*": dict(n_steps=64, batch_size=1024, n_epochs=4, learning_rate=3e-4,
                      gamma=0.95, ent_coef=0.01)},
    "sb3_dqn": {"recsim_ie": dict(learning_rate=1e-3, buffer_size=50_000, batch_size=256,
                                  gamma=0.99, train_freq=1, gradient_steps=1, tau=0.01,
                                  target_update_interval=1, exploration_fraction=0.5,
                                  exploration_final_eps=0.05),
                "*": dict(learning_rate=1e-3, buffer_size=50_000, batch_size=256, gamma=0.5,
                          train_freq=1, gradient_steps=1, tau=0.01, target_update_interval=1,
                          exploration_fraction=0.5, exploration_final_eps=0.05)},
}
BASELINE_KWARGS: dict[str, dict[str, dict[str, Any]]] = {
    # The personalised (outer-product) features cost a 706 x 706 solve per step with the
    # 64-dim hashing content: the catalog scenarios use content features only.
    "linucb": {"recsim_ie": {}, "*": {"features": "concat"}},
}
CONSENSUS = dict(n_learners=4, alpha=0.1, topology="ring")


def _lookup(table: dict[str, dict[str, Any]], scenario: str) -> dict[str, Any]:
    return dict(table.get(scenario, table.get("*", {})))


# --------------------------------------------------------------------------- budgets
# Env steps (session-steps) per training run. The full suite spends its time where it pays:
# the cheap linear/tabular learners get long runs on recsim_ie, DQN 100k steps everywhere.
BUDGETS: dict[str, dict[str, dict[str, int]]] = {
    "quick": {"*": dict(tabular_q=20_000, linear_q=20_000, dqn=10_000, slateq=4_000,
                        ppo=8_000, sb3_dqn=4_000, consensus_dqn=4_000)},
    "full": {
        "recsim_ie": dict(tabular_q=300_000, linear_q=400_000, dqn=100_000, slateq=30_000,
                          ppo=50_000, sb3_dqn=30_000, consensus_dqn=50_000),
        "*": dict(tabular_q=50_000, linear_q=50_000, dqn=100_000, slateq=20_000,
                  ppo=50_000, sb3_dqn=30_000, consensus_dqn=50_000),
    },
}


@dataclass(frozen=True, kw_only=True)
class Suite:
    """One benchmark suite.

    Attributes:
        name: ``quick`` or ``full``.
        scenarios: presets.
        policies: rows (see :data:`POLICIES`).
        seeds: independent runs per (scenario, policy); seed ``s`` trains on world ``s`` and
            is evaluated on world ``10000 + s``.
        budgets: scenario (or ``*``) -> policy -> training env steps.
        train_sessions: concurrent sessions while training.
        eval_sessions, eval_steps, warmup_steps: the evaluation world.
        curve_points: evaluations during training (learning curves).
        curve_eval_steps: world steps of each of those evaluations (scenario or ``*``).
        env_overrides: applied to every scenario's config (tiny sizes for tests).
        hparam_overrides: applied to every learned policy's hyperparameters that have the key
            (tiny networks and batches for tests).
        baseline_kwargs: baseline -> scenario (or ``*``) -> constructor options.
        drift_steps, drift_sessions: the interest-drift picture's run.
    """

    name: str
    scenarios: tuple[str, ...] = SCENARIOS
    policies: tuple[str, ...] = POLICIES
    seeds: int = 3
    budgets: dict[str, dict[str, int]] = field(default_factory=dict)
    train_sessions: int = 64
    eval_sessions: int = 64
    eval_steps: int = 300
    warmup_steps: int = 50
    curve_points: int = 6
    curve_eval_steps: dict[str, int] = field(
        default_factory=lambda: {"recsim_ie": 250, "*": 100})
    env_overrides: dict[str, Any] = field(default_factory=dict)
    hparam_overrides: dict[str, Any] = field(default_factory=dict)
    baseline_kwargs: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: dict(BASELINE_KWARGS))
    drift_steps: int = 600
    drift_sessions: int = 64

    def __post_init__(self) -> None:
        bad = [s for s in self.scenarios if s not in SCENARIOS]
        if bad:
            raise ValueError(f"scenarios: unknown {bad}; choose from {SCENARIOS}")
        bad = [p for p in self.policies if p not in POLICIES]
        if bad:
            raise ValueError(f"policies: unknown {bad}; choose from {POLICIES}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")
        if self.seeds > 10_000:
            raise ValueError("seeds must be < 10000 (training and evaluation seeds must not "
                             "overlap)")

    def budget(self, scenario: str, policy: str) -> int:
        """Training env steps of ``policy`` on ``scenario`` (0 for baselines)."""
        if policy_kind(policy) != "learned":
            return 0
        table = self.budgets.get(scenario, self.budgets.get("*", {}))
        return int(table.get(policy, self.budgets.get("*", {}).get(policy, 0)))

    def curve_steps(self, scenario: str) -> int:
        """World steps of each learning-curve evaluation."""
        return int(self.curve_eval_steps.get(scenario, self.curve_eval_steps.get("*", 100)))


SUITES: dict[str, Suite] = {
    "quick": Suite(name="quick", seeds=3, budgets=BUDGETS["quick"], eval_sessions=32,
                   eval_steps=150, warmup_steps=30, curve_points=3,
                   curve_eval_steps={"recsim_ie": 60, "*": 30}, drift_steps=600,
                   drift_sessions=32),
    "full": Suite(name="full", seeds=5, budgets=BUDGETS["full"], eval_sessions=64,
                  eval_steps=300, warmup_steps=50, curve_points=5,
                  curve_eval_steps={"recsim_ie": 150, "*": 60}, drift_steps=2000),
}

TINY = dict(seeds=2, scenarios=("default", "recsim_ie"), train_sessions=16, eval_sessions=32,
            eval_steps=50, warmup_steps=10, curve_points=2,
            curve_eval_steps={"recsim_ie": 30, "*": 15}, drift_steps=20, drift_sessions=8,
            budgets={"*": {p: 320 for p in LEARNED_POLICIES}},
            hparam_overrides=dict(batch_size=32, hidden=(16,), cross_dim=4, gradient_steps=1,
                                  buffer_size=2_000, n_steps=16, n_epochs=1),
            baseline_kwargs={"linucb": {"*": {"features": "concat"}}})
"""Overrides of ``--tiny`` (tests and smoke runs)."""


def get_suite(name: str, *, tiny: bool = False, scenarios: list[str] | None = None,
              policies: list[str] | None = None, seeds: int | None = None) -> Suite:
    """The suite called ``name``, optionally tiny and restricted."""
    if name not in SUITES:
        raise ValueError(f"suite must be one of {sorted(SUITES)}, got {name!r}")
    spec = SUITES[name]
    if tiny:
        spec = dataclasses.replace(spec, **TINY)
    if scenarios:
        spec = dataclasses.replace(spec, scenarios=tuple(scenarios))
    if policies:
        spec = dataclasses.replace(spec, policies=tuple(policies))
    if seeds is not None:
        spec = dataclasses.replace(spec, seeds=int(seeds))
    return spec


def scenario_config(spec: Suite, scenario: str) -> Any:
    """The world config of ``scenario`` in this suite."""
    from recsim_env.config import make_config

    return make_config(scenario, **spec.env_overrides)


TRAIN_SEED_OFFSET = 0
CURVE_SEED_OFFSET = 20_000
EVAL_SEED_OFFSET = 10_000


# --------------------------------------------------------------------------- one run
def _scaled(hp: dict[str, Any], steps: int) -> dict[str, Any]:
    """Cap schedule lengths to the budget: explore for at most half of it, learn early."""
    hp = dict(hp)
    if "exploration_steps" in hp:
        hp["exploration_steps"] = max(1, min(hp["exploration_steps"], steps // 2))
    if "learning_starts" in hp:
        hp["learning_starts"] = max(1, min(hp["learning_starts"], steps // 10))
    return hp


def build_learned(policy: str, scenario: str, cfg: Any, seed: int, steps: int, n: int,
                  overrides: dict[str, Any] | None = None
                  ) -> tuple[Any, dict[str, Any], Any, Any, dict[str, Any]]:
    """Learners of a learned policy.

    Returns:
        ``(world_config, learners_by_agent, consensus, eval_policy, hparams)``.
    """
    from agents.cli import build_learner, session_config

    hp = _scaled(_lookup(HPARAMS[policy], scenario), steps)
    hp.update({k: v for k, v in (overrides or {}).items() if k in hp})
    if policy == "sb3_dqn":
        # SB3 counts its target interval in env steps; one update per world step of n rows
        hp["target_update_interval"] = n
        learner = build_learner("sb3_dqn", cfg, n_rows=n, seed=seed, total_steps=steps,
                                kwargs=hp)  # TopKSB3DQN on slates > 1
        return cfg, {"recommender": learner}, None, learner, hp
    if policy == "consensus_dqn":
        from agents.consensus import ConsensusWrapper

        m = CONSENSUS["n_learners"]
        group = [build_learner("dqn", cfg, n_rows=n // m, seed=seed * m + j, total_steps=steps,
                               kwargs=hp) for j in range(m)]
        wrapper = ConsensusWrapper(group, alpha=CONSENSUS["alpha"],
                                   topology=CONSENSUS["topology"])
        mapping = {f"recommender_{i}": group[i % m] for i in range(n)}
        return (session_config(cfg, n), mapping, wrapper, group,
                {**hp, **{f"consensus_{k}": v for k, v in CONSENSUS.items()}})
    learner = build_learner(policy, cfg, n_rows=n, seed=seed, total_steps=steps, kwargs=hp)
    return cfg, {"recommender": learner}, None, learner, hp


def write_hparams(run_dir: Path, hparams: dict[str, Any], metrics: dict[str, float]) -> None:
    """One row of TensorBoard's hparams table in ``run_dir``: the run's hyperparameters and
    its final metrics (``hparam/<metric>``). The experiment's columns are written once per
    suite by :func:`write_hparams_experiment`."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams as hp_summary

    clean_hp = {k: _hp_value(v) for k, v in hparams.items()}
    clean_m = {f"hparam/{k}": float(v) for k, v in metrics.items() if np.isfinite(v)}
    _, ssi, sei = hp_summary(clean_hp, clean_m)
    with SummaryWriter(log_dir=str(run_dir)) as w:
        w.file_writer.add_summary(ssi)
        w.file_writer.add_summary(sei)
        for k, v in clean_m.items():
            w.add_scalar(k, v, 0)


def write_hparams_experiment(runs_dir: Path, hparams: dict[str, list[Any]],
                             metrics: list[str]) -> None:
    """The hparams plugin's experiment (columns) at the root of the suite's runs."""
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams as hp_summary

    example = {k: (v[0] if v else "") for k, v in hparams.items()}
    discrete = {k: sorted(set(v), key=str) for k, v in hparams.items()
                if v and all(isinstance(x, str) for x in v)}
    exp, _, _ = hp_summary(example, {f"hparam/{m}": 0.0 for m in metrics}, discrete)
    runs_dir.mkdir(parents=True, exist_ok=True)
    with SummaryWriter(log_dir=str(runs_dir)) as w:
        w.file_writer.add_summary(exp)


def _hp_value(v: Any) -> Any:
    if isinstance(v, (bool, str)) or v is None:
        return v
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v) if isinstance(v, (float, np.floating)) else int(v)
    return str(v)


def run_task(spec: Suite, scenario: str, policy: str, seed: int, runs_dir: str
             ) -> dict[str, Any]:
    """Train (learned policies) and evaluate one (scenario, policy, seed). Never raises: a
    failure is returned as ``error`` with NaN metrics."""
    import torch

    torch.set_num_threads(1)
    t0, cpu0 = time.perf_counter(), time.process_time()
    out: dict[str, Any] = {"scenario": scenario, "policy": policy, "seed": seed,
                           "kind": policy_kind(policy), "train_steps": 0, "curve": [],
                           "run_dir": None, "error": None}
    try:
        out.update(_run_task(spec, scenario, policy, seed, Path(runs_dir)))
    except Exception as e:  # noqa: BLE001 - one failing policy must not sink the suite
        log.exception("%s/%s/%s failed", scenario, policy, seed)
        out["error"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc(limit=6)
        out["metrics"] = {k: float("nan") for k in METRIC_KEYS}
    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = time.process_time() - cpu0
    return out


def _run_task(spec: Suite, scenario: str, policy: str, seed: int, runs_dir: Path
              ) -> dict[str, Any]:
    from agents.factory import make_learner
    from agents.metrics import evaluate_recommender
    from agents.runner import RunConfig, Runner

    cfg = scenario_config(spec, scenario)
    kind = policy_kind(policy)
    eval_seed = EVAL_SEED_OFFSET + seed
    res: dict[str, Any] = {}
    if kind == "learned":
        steps = spec.budget(scenario, policy)
        n = spec.train_sessions
        world_cfg, learners, consensus, eval_policy, hp = build_learned(
            policy, scenario, cfg, TRAIN_SEED_OFFSET + seed, steps, n, spec.hparam_overrides)
        per_agent = consensus is not None
        every = max(steps // spec.curve_points, n) if spec.curve_points else 0
        run = RunConfig(total_steps=steps, n_sessions=None if per_agent else n,
                        seed=TRAIN_SEED_OFFSET + seed, eval_seeds=(CURVE_SEED_OFFSET + seed,),
                        eval_every=every, eval_steps=spec.curve_steps(scenario),
                        log_every=max(steps // 20, n), run_root=str(runs_dir), algo=policy,
                        scenario=scenario, progress=False, max_session_steps=1000,
                        save_checkpoints=False)  # a checkpoint holds the replay buffer
        runner = Runner(world_cfg, learners, run, consensus=consensus)
        t_train = time.perf_counter()
        runner.train()
        train_seconds = time.perf_counter() - t_train
        curve = [(int(e["step"]), float(e["mean_reward"])) for e in runner.eval_history]
        runner.close()
        metrics = evaluate_recommender(eval_policy, cfg, seed=eval_seed,
                                       n_sessions=spec.eval_sessions, n_steps=spec.eval_steps,
                                       warmup_steps=spec.warmup_steps)
        hparams = {"scenario": scenario, "policy": policy, "seed": seed, "train_steps": steps,
                   "train_sessions": n, **hp}
        write_hparams(runner.run_dir, hparams, {k: metrics[k] for k in METRIC_KEYS})
        res.update(train_steps=steps, curve=curve, run_dir=str(runner.run_dir),
                   train_seconds=train_seconds,
                   hparams={k: _hp_value(v) for k, v in hparams.items()})
    else:
        kwargs = _lookup(spec.baseline_kwargs.get(policy, {}), scenario)
        learner = make_learner(policy, cfg, seed=seed, **kwargs)
        online = policy in ONLINE_BASELINES
        metrics = evaluate_recommender(learner, cfg, seed=eval_seed,
                                       n_sessions=spec.eval_sessions, n_steps=spec.eval_steps,
                                       warmup_steps=spec.warmup_steps, explore=online,
                                       learn=online)
    res["metrics"] = metrics
    return res


def drift_snapshots(spec: Suite, scenario: str = "default", policy: str = "myopic_oracle",
                    n_times: int = 4, max_users: int = 1500, seed: int = 0) -> dict[str, Any]:
    """Users' interests at ``n_times`` evenly spaced steps of one run (the interest-drift
    picture). Only users in a session drift endogenously, so the picture keeps the
    ``max_users`` users who spent the most steps in sessions."""
    import torch

    from agents.base import ActContext
    from agents.factory import make_learner
    from recsim_env.world import World

    torch.set_num_threads(1)
    cfg = scenario_config(spec, scenario)
    world = World(cfg, n_sessions=spec.drift_sessions)
    world.reset(EVAL_SEED_OFFSET + seed)
    learner = make_learner(policy, cfg, seed=seed)
    times = np.linspace(0, spec.drift_steps, n_times).round().astype(int)
    slots = np.arange(world.n_sessions)
    served = np.zeros(world.n_users, np.int64)
    snaps = []
    for t in range(spec.drift_steps + 1):
        if t in times:
            snaps.append(world.materialized_interests().astype(np.float32))
        if t == spec.drift_steps:
            break
        served += np.bincount(world.sessions.user, minlength=world.n_users)
        ctx = ActContext(world, slots, world.sessions.user.copy(),
                         world.candidates.item_id.copy())
        world.step(np.asarray(learner.act(world.recommender_obs(), ctx, explore=False)))
    users = np.sort(np.argsort(-served, kind="stable")[: min(max_users, world.n_users)])
    return {"scenario": scenario, "policy": policy, "times": times.tolist(),
            "interests": np.stack(snaps)[:, users],
            "session_steps": served[users]}


# --------------------------------------------------------------------------- aggregation
HIGHER_IS_BETTER = {
    "return": True, "ctr": True, "watch_time": True, "session_length": True,
    "return_rate": True, "cold_start_ctr": True, "cold_start_share": None,
    "time_to_first_click": False, "coverage": True, "diversity": True, "gini": False,
    "provider_gini": False, "precision": True, "recall": True, "ndcg": True,
    "gap_closed": True,
}
"""Direction of each metric for marking the best value (None: no direction)."""

METRIC_LABELS = {
    "return": "return", "ctr": "CTR", "watch_time": "watch time/step",
    "session_length": "session length", "return_rate": "return rate",
    "cold_start_ctr": "cold CTR", "cold_start_share": "cold share",
    "time_to_first_click": "time to 1st click", "coverage": "coverage",
    "diversity": "ILD", "gini": "item Gini", "provider_gini": "provider Gini",
    "precision": "P@k", "recall": "R@k", "ndcg": "NDCG@k", "gap_closed": "oracle gap closed",
}
ENGAGEMENT_COLUMNS = ("return", "ctr", "watch_time", "session_length", "return_rate",
                      "gap_closed")
CATALOG_COLUMNS = ("cold_start_ctr", "cold_start_share", "time_to_first_click", "coverage",
                   "diversity", "gini", "provider_gini", "precision", "recall", "ndcg")
ALL_COLUMNS = tuple(METRIC_KEYS) + ("gap_closed",)
HEADLINE = ("return", "ctr", "watch_time", "cold_start_ctr", "coverage", "ndcg")


def aggregate(spec: Suite, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (scenario, policy): mean and 95% CI over seeds of every metric, plus the
    fraction of the oracle gap closed (learned policies; paired by evaluation seed)."""
    by = {(r["scenario"], r["policy"], r["seed"]): r for r in records}
    rows = []
    for scenario in spec.scenarios:
        for policy in spec.policies:
            recs = [by[(scenario, policy, s)] for s in range(spec.seeds)
                    if (scenario, policy, s) in by]
            if not recs:
                continue
            row: dict[str, Any] = {
                "scenario": scenario, "policy": policy, "kind": policy_kind(policy),
                "privileged": policy_kind(policy) == "oracle", "n_seeds": len(recs),
                "train_steps": recs[0]["train_steps"],
                "errors": "; ".join(sorted({r["error"] for r in recs if r.get("error")})),
                "note": POLICY_NOTES.get(policy, ""),
            }
            for k in METRIC_KEYS:
                row[f"{k}_mean"], row[f"{k}_ci95"] = mean_ci([r["metrics"][k] for r in recs])
            gaps = []
            if row["kind"] == "learned":
                for r in recs:
                    my = by.get((scenario, "myopic_oracle", r["seed"]))
                    lt = by.get((scenario, "long_term_oracle", r["seed"]))
                    if my and lt:
                        gaps.append(oracle_gap_closed(r["metrics"]["return"],
                                                      my["metrics"]["return"],
                                                      lt["metrics"]["return"]))
            row["gap_closed_mean"], row["gap_closed_ci95"] = mean_ci(gaps) if gaps else (
                float("nan"), float("nan"))
            rows.append(row)
    _mask_unreliable_gap(rows)
    return rows


def _mask_unreliable_gap(rows: list[dict[str, Any]]) -> None:
    """The gap fraction is only meaningful where the long-term oracle beats the myopic one
    beyond their confidence intervals; elsewhere it is NaN with a note."""
    for scenario in {r["scenario"] for r in rows}:
        get = {r["policy"]: r for r in rows if r["scenario"] == scenario}
        my, lt = get.get("myopic_oracle"), get.get("long_term_oracle")
        ok = bool(my and lt and _beats(lt, my, "return"))
        for r in get.values():
            if r["kind"] == "learned" and not ok:
                r["gap_closed_mean"] = r["gap_closed_ci95"] = float("nan")


def _lo_hi(row: dict[str, Any], metric: str) -> tuple[float, float]:
    m, c = row[f"{metric}_mean"], row[f"{metric}_ci95"]
    c = c if math.isfinite(c) else 0.0
    return m - c, m + c


def _beats(a: dict[str, Any], b: dict[str, Any], metric: str) -> bool:
    """``a`` is above ``b`` with non-overlapping confidence intervals."""
    return bool(math.isfinite(a[f"{metric}_mean"]) and math.isfinite(b[f"{metric}_mean"])
                and _lo_hi(a, metric)[0] > _lo_hi(b, metric)[1])


def check_targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, per scenario: random < myopic oracle (mean return); the best
    learned policy above every non-oracle baseline with non-overlapping CIs; on
    ``recsim_ie`` the best learned mean return >= 200."""
    out: dict[str, Any] = {}
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        get = {r["policy"]: r for r in rows if r["scenario"] == scenario}
        t: dict[str, Any] = {}
        if "random" in get and "myopic_oracle" in get:
            t["random_below_myopic"] = bool(get["random"]["return_mean"]
                                            < get["myopic_oracle"]["return_mean"])
        learned = [r for r in get.values() if r["kind"] == "learned"
                   and math.isfinite(r["return_mean"])]
        baselines = [r for r in get.values() if r["kind"] == "baseline"
                     and math.isfinite(r["return_mean"])]
        if learned:
            best = max(learned, key=lambda r: r["return_mean"])
            t["best_learned"] = best["policy"]
            t["best_learned_return"] = best["return_mean"]
            if baselines:
                beaten = [b["policy"] for b in baselines if _beats(best, b, "return")]
                t["best_learned_beats_baselines"] = len(beaten) == len(baselines)
                t["baselines_not_beaten"] = [b["policy"] for b in baselines
                                             if b["policy"] not in beaten]
            if scenario == "recsim_ie":
                t["recsim_ie_return_at_least_200"] = bool(best["return_mean"] >= 200)
        out[scenario] = t
    return out


# --------------------------------------------------------------------------- writing
CSV_FIXED = ("scenario", "policy", "kind", "privileged", "n_seeds", "train_steps", "note",
             "errors")


def csv_columns() -> list[str]:
    """Columns of ``results.csv``."""
    cols = list(CSV_FIXED)
    for k in ALL_COLUMNS:
        cols += [f"{k}_mean", f"{k}_ci95"]
    return cols


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """``results.csv``: one row per (scenario, policy)."""
    cols = csv_columns()
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (_num(r[k]) if isinstance(r[k], float) else r[k]) for k in cols})


def _num(x: float) -> str:
    return "" if not math.isfinite(x) else f"{x:.6g}"


def _cell(row: dict[str, Any], metric: str) -> str:
    m, c = row[f"{metric}_mean"], row[f"{metric}_ci95"]
    if not math.isfinite(m):
        return "n/a"
    digits = 1 if abs(m) >= 10 else (2 if abs(m) >= 1 else 3)
    text = f"{m:.{digits}f}"
    if math.isfinite(c):
        text += f" ± {c:.{digits}f}"
    return text


def markdown_table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[str]:
    """One scenario's Markdown table; the best non-oracle value per column in bold."""
    best: dict[str, float] = {}
    for col in columns:
        sign = HIGHER_IS_BETTER.get(col)
        vals = [r[f"{col}_mean"] for r in rows
                if r["kind"] != "oracle" and math.isfinite(r[f"{col}_mean"])]
        if sign is not None and vals:
            best[col] = max(vals) if sign else min(vals)
    head = "| policy | " + " | ".join(METRIC_LABELS[c] for c in columns) + " |"
    lines = [head, "|---" + "|---:" * len(columns) + "|"]
    for r in rows:
        name = r["policy"] + (" †" if r["privileged"] else "")
        if r["errors"]:
            name += " ‡"
        cells = []
        for col in columns:
            text = _cell(r, col)
            if col in best and r["kind"] != "oracle" and r[f"{col}_mean"] == best[col]:
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def summary_table(spec: Suite, rows: list[dict[str, Any]], metric: str = "return") -> list[str]:
    """Policies x scenarios table of one metric (mean ± 95% CI); best non-oracle in bold."""
    scenarios = [s for s in spec.scenarios if any(r["scenario"] == s for r in rows)]
    get = {(r["scenario"], r["policy"]): r for r in rows}
    best = {}
    for sc in scenarios:
        vals = [r[f"{metric}_mean"] for r in rows if r["scenario"] == sc and r["kind"] != "oracle"
                and math.isfinite(r[f"{metric}_mean"])]
        if vals:
            best[sc] = max(vals) if HIGHER_IS_BETTER.get(metric, True) else min(vals)
    lines = ["| policy | " + " | ".join(f"`{sc}`" for sc in scenarios) + " |",
             "|---" + "|---:" * len(scenarios) + "|"]
    for policy in spec.policies:
        cells = []
        for sc in scenarios:
            r = get.get((sc, policy))
            if r is None:
                cells.append("")
                continue
            text = _cell(r, metric)
            if r["kind"] != "oracle" and best.get(sc) == r[f"{metric}_mean"]:
                text = f"**{text}**"
            cells.append(text)
        kind = {"oracle": " †", "learned": " (learned)"}.get(policy_kind(policy), "")
        lines.append(f"| {policy}{kind} | " + " | ".join(cells) + " |")
    return lines


def write_markdown(path: Path, spec: Suite, rows: list[dict[str, Any]],
                   targets: dict[str, Any], seconds: float, workers: int,
                   records: list[dict[str, Any]] = ()) -> str:
    """``results.md``: per-scenario tables, notes and the target checks."""
    cpu = sum(float(r.get("cpu_seconds") or 0.0) for r in records)
    lines = [f"# Benchmark `{spec.name}`", "",
             f"{len(spec.scenarios)} scenarios x {len(spec.policies)} policies x {spec.seeds} "
             f"seeds; {seconds / 60:.1f} min with {workers} worker(s), {cpu / 60:.1f} CPU-min in "
             "the runs. Mean ± 95% CI over seeds "
             f"(Student t). Evaluation: {spec.eval_sessions} concurrent sessions, "
             f"{spec.warmup_steps} warm-up + {spec.eval_steps} measured steps on held-out "
             f"world seeds {EVAL_SEED_OFFSET}+seed (training: seed; learning curves: "
             f"{CURVE_SEED_OFFSET}+seed). **Bold**: best non-oracle value per column. "
             "†: privileged oracle (reads the hidden user state). ‡: some runs failed (see "
             "`results.json`). n/a: undefined (fresh documents have no item identity, so no "
             "item, provider or cold-start metrics; the oracle gap is shown only where the "
             "long-term oracle beats the myopic one beyond their CIs).", "",
             "## Mean session return", ""]
    lines += summary_table(spec, rows) + [""]
    for scenario in spec.scenarios:
        srows = [r for r in rows if r["scenario"] == scenario]
        if not srows:
            continue
        budgets = ", ".join(f"{p} {spec.budget(scenario, p):,}" for p in spec.policies
                            if policy_kind(p) == "learned")
        lines += [f"## {scenario}", "", f"Training env steps: {budgets}.", ""]
        lines += markdown_table(srows, ENGAGEMENT_COLUMNS) + [""]
        lines += markdown_table(srows, CATALOG_COLUMNS) + [""]
    lines += ["## Targets", ""]
    for scenario, t in targets.items():
        parts = []
        if "random_below_myopic" in t:
            parts.append(f"random < myopic oracle: {'yes' if t['random_below_myopic'] else 'NO'}")
        if "best_learned" in t:
            parts.append(f"best learned: {t['best_learned']} ({t['best_learned_return']:.1f})")
        if "best_learned_beats_baselines" in t:
            ok = t["best_learned_beats_baselines"]
            parts.append("beats every non-oracle baseline with non-overlapping CIs: " + (
                "yes" if ok else f"NO (not: {', '.join(t['baselines_not_beaten'])})"))
        if "recsim_ie_return_at_least_200" in t:
            parts.append(f"return >= 200: {'yes' if t['recsim_ie_return_at_least_200'] else 'NO'}")
        lines.append(f"- **{scenario}**: " + "; ".join(parts))
    lines += ["", "## Policies", ""]
    lines += [f"- `{p}`: {POLICY_NOTES[p]}" for p in spec.policies if p in POLICY_NOTES]
    lines += ["- online baselines (" + ", ".join(f"`{p}`" for p in ONLINE_BASELINES)
              + ") explore and learn while they are evaluated; learned policies are frozen "
              "and greedy."]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


# --------------------------------------------------------------------------- plots
def _short(policy: str) -> str:
    return {"most_popular": "popular", "epsilon_greedy": "eps-greedy",
            "content_similarity": "content", "myopic_oracle": "myopic†",
            "long_term_oracle": "long-term†", "consensus_dqn": "consensus"}.get(policy, policy)


def plot_learning_curves(path: Path, spec: Suite, records: list[dict[str, Any]]) -> None:
    """Evaluation return during training, mean over seeds with a 95% CI band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(spec.scenarios)
    fig, axes = plt.subplots(1, len(scenarios), figsize=(4.2 * len(scenarios), 3.3),
                             squeeze=False)
    for ax, scenario in zip(axes[0], scenarios):
        plotted = False
        for policy in spec.policies:
            curves = [r["curve"] for r in records if r["scenario"] == scenario
                      and r["policy"] == policy and r.get("curve")]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            steps = np.array([c[i][0] for i in range(n) for c in curves[:1]])
            vals = np.array([[c[i][1] for i in range(n)] for c in curves])
            stats = [mean_ci(vals[:, i]) for i in range(n)]
            mean = np.array([s[0] for s in stats])
            ci = np.nan_to_num(np.array([s[1] for s in stats]))
            ax.plot(steps, mean, label=_short(policy), lw=1.5)
            ax.fill_between(steps, mean - ci, mean + ci, alpha=0.2)
            plotted = plotted or bool(np.isfinite(mean).any() and (steps > 0).all())
        ax.set_title(scenario)
        ax.set_xlabel("env steps")
        if plotted:
            ax.set_xscale("log")  # budgets differ by 10x between learners
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("eval session return")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 7),
                   fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_bars(path: Path, spec: Suite, rows: list[dict[str, Any]], metric: str) -> None:
    """One headline metric: a bar per policy (95% CI whiskers), a panel per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = [s for s in spec.scenarios if any(r["scenario"] == s for r in rows)]
    fig, axes = plt.subplots(1, len(scenarios), figsize=(4.2 * len(scenarios), 3.4),
                             squeeze=False)
    colors = {"baseline": "#8da0cb", "oracle": "#bbbbbb", "learned": "#fc8d62"}
    for ax, scenario in zip(axes[0], scenarios):
        srows = [r for r in rows if r["scenario"] == scenario]
        x = np.arange(len(srows))
        mean = np.array([r[f"{metric}_mean"] for r in srows])
        ci = np.nan_to_num(np.array([r[f"{metric}_ci95"] for r in srows]))
        ax.bar(x, np.nan_to_num(mean), yerr=ci, color=[colors[r["kind"]] for r in srows],
               capsize=2)
        ax.set_xticks(x, [_short(r["policy"]) for r in srows], rotation=70, fontsize=7)
        ax.set_title(scenario)
        ax.grid(axis="y", alpha=0.3)
        for xi in np.flatnonzero(~np.isfinite(mean)):
            ax.text(xi, 0, "n/a", ha="center", va="bottom", fontsize=6, rotation=90)
    axes[0][0].set_ylabel(METRIC_LABELS.get(metric, metric))
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def radial_projection(interest: np.ndarray, sharpness: float = 4.0) -> np.ndarray:
    """2-D projection of interest vectors: topic ``t`` is anchored at angle ``2 pi t / T`` on
    the unit circle and a user sits at the softmax(``sharpness`` x interest)-weighted mean of
    the anchors (RadViz). Users with one dominant topic sit near its anchor, users with mixed
    interests near the centre, and drift shows as movement.

    Args:
        interest: (..., T) interests in [-1, 1].

    Returns:
        (..., 2) float64.
    """
    x = np.asarray(interest, dtype=np.float64)
    n_topics = x.shape[-1]
    angle = 2 * np.pi * np.arange(n_topics) / n_topics
    anchors = np.stack([np.cos(angle), np.sin(angle)], axis=1)  # (T, 2)
    z = sharpness * x
    w = np.exp(z - z.max(axis=-1, keepdims=True))
    w /= w.sum(axis=-1, keepdims=True)
    return w @ anchors


def plot_interest_drift(path: Path, drift: dict[str, Any], n_trails: int = 40) -> None:
    """Users' interest vectors at several times (radial 2-D projection, see
    :func:`radial_projection`), coloured by each user's dominant topic; the last panel traces
    a few users through every snapshot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray(drift["interests"], dtype=np.float64)  # (times, users, topics)
    proj = radial_projection(x)  # (times, users, 2)
    n_times, n_users, n_topics = x.shape
    cmap = plt.get_cmap("tab10" if n_topics <= 10 else "tab20")
    fig, axes = plt.subplots(1, n_times, figsize=(3.0 * n_times, 3.3), squeeze=False)
    angle = 2 * np.pi * np.arange(n_topics) / n_topics
    trail = np.linspace(0, n_users - 1, min(n_trails, n_users)).astype(int)
    for i, ax in enumerate(axes[0]):
        topic = x[i].argmax(axis=1)
        ax.scatter(proj[i, :, 0], proj[i, :, 1], c=cmap(topic % cmap.N), s=3, alpha=0.5,
                   linewidths=0, rasterized=True)
        ax.scatter(np.cos(angle), np.sin(angle), c=cmap(np.arange(n_topics) % cmap.N), s=40,
                   marker="s", edgecolors="k", linewidths=0.5)
        if i == n_times - 1:  # trails of a few users across all snapshots
            for u in trail:
                ax.plot(proj[:, u, 0], proj[:, u, 1], color="k", lw=0.6, alpha=0.6)
                ax.plot(proj[-1, u, 0], proj[-1, u, 1], "k.", ms=3)
        share = np.bincount(x[i].argmax(axis=1), minlength=n_topics).max() / n_users
        ax.set_title(f"step {drift['times'][i]} (largest topic {share:.0%})", fontsize=8)
        ax.set_xlim(-1.15, 1.15)
        ax.set_ylim(-1.15, 1.15)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"user interests drifting on {drift['scenario']} under {drift['policy']}: "
                 "topics on a circle (squares), users at their softmax-weighted topic mix, "
                 "colour = dominant topic; last panel: trails", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# --------------------------------------------------------------------------- driver
def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)


def _task_cost(spec: Suite, scenario: str, policy: str) -> float:
    """Rough relative cost, to start the longest runs first."""
    factor = {"slateq": 3.0, "consensus_dqn": 2.5, "dqn": 2.0, "sb3_dqn": 1.5, "ppo": 1.0,
              "linear_q": 0.5, "tabular_q": 0.4}.get(policy, 0.0)
    base = 30_000.0 if policy == "linucb" and scenario == "recsim_ie" else 5_000.0
    return factor * spec.budget(scenario, policy) + base


def run_suite(spec: Suite, *, out_dir: str | Path, runs_dir: str | Path, workers: int = 1,
              progress: bool = True) -> dict[str, Any]:
    """Run every (scenario, policy, seed), then write the tables and plots.

    Returns:
        ``{"rows", "targets", "files", "seconds", "n_tasks"}``.
    """
    from tqdm import tqdm

    out_dir, runs_dir = Path(out_dir), Path(runs_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tasks = [(sc, p, s) for sc in spec.scenarios for p in spec.policies for s in range(spec.seeds)]
    tasks.sort(key=lambda t: -_task_cost(spec, t[0], t[1]))
    records: list[dict[str, Any]] = []
    bar = tqdm(total=len(tasks) + 1, desc=f"benchmark {spec.name}", unit="run",
               disable=not progress, dynamic_ncols=True)
    drift_scenario = "default" if "default" in spec.scenarios else spec.scenarios[0]
    if workers <= 1:
        _init_worker()
        for t in tasks:
            records.append(run_task(spec, *t, str(runs_dir)))
            bar.set_postfix_str(f"{t[0]}/{t[1]}")
            bar.update(1)
        drift = drift_snapshots(spec, drift_scenario)
        bar.update(1)
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker) as pool:
            futs = {pool.submit(run_task, spec, *t, str(runs_dir)): t for t in tasks}
            drift_fut = pool.submit(drift_snapshots, spec, drift_scenario)
            for fut in as_completed([*futs, drift_fut]):
                if fut is not drift_fut:
                    records.append(fut.result())
                    bar.set_postfix_str("{}/{}".format(*futs[fut][:2]))
                bar.update(1)
            drift = drift_fut.result()
    bar.close()
    seconds = time.perf_counter() - t0
    for r in records:
        if r.get("error"):
            log.warning("%s/%s seed %s failed: %s", r["scenario"], r["policy"], r["seed"],
                        r["error"])
    rows = aggregate(spec, records)
    targets = check_targets(rows)
    files = write_outputs(spec, out_dir, runs_dir, rows, records, drift, targets, seconds,
                          workers)
    return {"rows": rows, "targets": targets, "files": files, "seconds": seconds,
            "n_tasks": len(tasks)}


def replot(spec: Suite, *, out_dir: str | Path, runs_dir: str | Path) -> dict[str, Any]:
    """Rewrite every output of ``out_dir`` from its ``results.json`` (the per-seed runs), e.g.
    after changing a plot; only the interest-drift run is simulated again."""
    out_dir = Path(out_dir)
    doc = json.loads((out_dir / "results.json").read_text())
    records = [_from_json(r) for r in doc["runs"]]
    spec = dataclasses.replace(spec, seeds=int(doc["spec"]["seeds"]),
                               scenarios=tuple(doc["spec"]["scenarios"]),
                               policies=tuple(doc["spec"]["policies"]))
    rows = aggregate(spec, records)
    targets = check_targets(rows)
    drift = drift_snapshots(spec, "default" if "default" in spec.scenarios else spec.scenarios[0])
    files = write_outputs(spec, out_dir, Path(runs_dir), rows, records, drift, targets,
                          float(doc["seconds"]), int(doc["workers"]), hparams_experiment=False)
    return {"rows": rows, "targets": targets, "files": files, "seconds": float(doc["seconds"]),
            "n_tasks": len(records)}


def _from_json(x: Any) -> Any:
    """Inverse of :func:`_jsonable` for metrics: ``null`` back to NaN."""
    if isinstance(x, dict):
        return {k: (float("nan") if v is None and k != "error" and k != "run_dir" else
                    _from_json(v)) for k, v in x.items()}
    if isinstance(x, list):
        return [_from_json(v) for v in x]
    return x


def write_outputs(spec: Suite, out_dir: Path, runs_dir: Path, rows: list[dict[str, Any]],
                  records: list[dict[str, Any]], drift: dict[str, Any],
                  targets: dict[str, Any], seconds: float, workers: int, *,
                  hparams_experiment: bool = True) -> list[str]:
    """Every file of ``results/<suite>/`` plus the hparams experiment in ``runs_dir``."""
    files = []
    write_csv(out_dir / "results.csv", rows)
    files.append(out_dir / "results.csv")
    # per-run hyperparameters are in "hparams" (per policy and scenario) and in TensorBoard
    per_seed = [{k: v for k, v in r.items() if k not in ("traceback", "hparams")}
                for r in records]
    per_seed.sort(key=lambda r: (r["scenario"], POLICIES.index(r["policy"]), r["seed"]))
    doc = {"suite": spec.name, "spec": _jsonable(dataclasses.asdict(spec)),
           "seconds": seconds, "workers": workers, "columns": csv_columns(), "rows": rows,
           "targets": targets, "runs": per_seed,
           "hparams": {p: {s: _jsonable(_lookup(HPARAMS[p], s)) for s in spec.scenarios}
                       for p in spec.policies if p in HPARAMS},
           "seeds": {"train": [TRAIN_SEED_OFFSET + s for s in range(spec.seeds)],
                     "curve": [CURVE_SEED_OFFSET + s for s in range(spec.seeds)],
                     "eval": [EVAL_SEED_OFFSET + s for s in range(spec.seeds)]}}
    (out_dir / "results.json").write_text(json.dumps(_jsonable(doc), separators=(",", ":"))
                                          + "\n")
    files.append(out_dir / "results.json")
    write_markdown(out_dir / "results.md", spec, rows, targets, seconds, workers, records)
    files.append(out_dir / "results.md")
    plot_learning_curves(out_dir / "learning_curves.png", spec, records)
    files.append(out_dir / "learning_curves.png")
    for metric in HEADLINE:
        plot_bars(out_dir / f"bar_{metric}.png", spec, rows, metric)
        files.append(out_dir / f"bar_{metric}.png")
    plot_interest_drift(out_dir / "interest_drift.png", drift)
    files.append(out_dir / "interest_drift.png")
    hp_values: dict[str, list[Any]] = {}
    for r in records:
        for k, v in (r.get("hparams") or {}).items():
            hp_values.setdefault(k, []).append(v)
    if hp_values and hparams_experiment:
        write_hparams_experiment(runs_dir, hp_values, list(METRIC_KEYS))
    return [str(f) for f in files]


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, float)):
        return float(f"{x:.6g}") if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/suite.py ...``: the same as ``recsim-marl benchmark ...``."""
    from agents.cli import main as cli_main

    return cli_main(["benchmark", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
