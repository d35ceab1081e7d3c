"""The policy benchmark suite: scenarios x policies x seeds -> tables, plots, TensorBoard.

    recsim-marl benchmark --suite quick --workers 2     # a smoke run, minutes
    recsim-marl benchmark --suite full --workers 2      # the committed results/full/

The spec of a suite is ``configs/suites/<name>.toml`` (scenarios, budgets, evaluation protocol,
tuning and reporting seeds) and every learner's hyperparameters are
``configs/learners/<learner>.toml`` (:func:`agents.hparams.learner_hparams`); nothing here
restates them.

Seeds (:class:`agents.experiments.common.SeedPlan`): hyperparameters were chosen on the suite's
**tuning seeds**; it runs and reports only its **reporting seeds** (disjoint; it refuses a
tuning seed). Run seed ``s``:

* **learned policies** (our Q-learners, SB3 PPO and DQN, a consensus group) are trained with
  :class:`agents.runner.Runner` on world ``s`` (TensorBoard curves in
  ``runs/benchmark_<suite>/<scenario>__<policy>__<seed>__<time>/``, with evaluation curves on
  world ``20000 + s`` and one row in TensorBoard's hparams table holding the run's final
  metrics), then frozen and evaluated greedily (``explore=False``);
* **baselines** need no training; those that learn online (the bandits, LinUCB, matrix
  factorisation, content similarity) run as deployed: exploring and updating while they serve.

Evaluation (:func:`agents.evaluation.evaluate`, the project's one definition) is on the
held-out world ``10000 + s``, the same for every policy (common random numbers):
``warmup_steps`` unmeasured steps, then every session that starts in the next ``eval_steps``
steps is followed to its end. Means and 95% confidence intervals are over seeds
(:mod:`agents.stats`).

Outputs in ``results/<suite>/``: ``results.csv`` and ``results.json`` (one row per scenario
and policy: ``<metric>_mean`` and ``<metric>_ci95``; the seeds of every role), ``results.md``
(tables, best non-oracle value per column in bold, target checks), and PNGs:
``learning_curves.png``, ``bar_<metric>.png`` per headline metric, ``interest_drift.png``.

Design decisions:

* **SB3 DQN on slates.** SB3's DQN has one Q-value per discrete action, i.e. per candidate
  position. On slates larger than one it runs as :class:`agents.sb3.TopKSB3DQN`: the slate is
  its top-k candidates by Q (epsilon-random while exploring) and the replayed action is the
  clicked position (the first when nothing was clicked), the crediting our DQN uses.
* **SB3 PPO** acts on the ``MultiDiscrete`` slate space with one policy shared by every
  session (parameter sharing); a repeated candidate is an empty position.
* **Consensus group**: four DQNs, each serving a quarter of the sessions, coupled after every
  update round by ``ConsensusWrapper`` (a runner callback).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

from agents.checkpoint import from_json, write_json
from agents.evaluation import METRIC_KEYS, evaluate
from agents.experiments.common import CURVE, EVAL, TRAIN, SeedPlan, run_pool
from agents.hparams import config_file, learner_hparams
from agents.metrics import oracle_gap_closed
from agents.stats import fmt_ci, mean_ci, paired_difference, ratio_ci

log = logging.getLogger(__name__)

SCENARIOS = ("default", "recsim_ie", "cold_start", "long_term")

# --------------------------------------------------------------------------- policies
from agents.experiments.names import (  # noqa: E402  (re-exported: one home, no torch)
    LEARNED_POLICIES,
    ORACLE_POLICIES,
    POLICIES,
    SUITE_NAMES,
)

ONLINE_BASELINES = ("epsilon_greedy", "ucb1", "thompson", "linucb", "online_mf",
                    "content_similarity")
"""Baselines that learn while they serve: evaluated exploring and updating."""

POLICY_NOTES = {
    "sb3_dqn": "SB3 DQN with one Q-value per candidate (CandidateQPolicy); slates > 1: top-k, "
               "clicked item credited",
    "ppo": "SB3 PPO with the candidate-scoring policy (Plackett-Luce slates without repeats), "
           "one policy shared by all sessions",
    "memory_dqn": "our DQN over the observation plus the platform's memory: each user's clicked "
                  "and skipped content, each item's and provider's reward per click (by id)",
    "memory_ppo": "ppo over the same inputs as memory_dqn",
    "memory_slateq": "slateq over the same inputs as memory_dqn",
    "horizon_oracle": "heuristic: myopic value plus the budget a click gives back (horizon 4)",
    "long_term_oracle": "planner: rollouts of the myopic and horizon oracles on forks of the "
                        "true world, 8 steps, value extrapolated at the rollout's rates",
    "consensus_dqn": "4 DQNs, each a quarter of the sessions, consensus on a ring",
    "linucb": "LinUCB; content x user features on recsim_ie, content features elsewhere",
}


def policy_kind(name: str) -> str:
    """``baseline``, ``oracle`` (privileged) or ``learned``."""
    if name in ORACLE_POLICIES:
        return "oracle"
    return "learned" if name in LEARNED_POLICIES else "baseline"


PPO_POLICIES = ("ppo", "memory_ppo")
"""SB3 PPO rows (with the candidate-scoring policy; ``memory_ppo`` with the platform's memory),
each checked against the best Q-learner."""

CONSENSUS_PREFIX = "consensus_"
"""Keys of ``configs/learners/consensus_dqn.toml`` that configure the coupling, not the DQNs."""


@dataclass(frozen=True, kw_only=True)
class Suite:
    """One benchmark suite (``configs/suites/<name>.toml``).

    Attributes:
        name: ``quick`` or ``full``.
        scenarios: presets.
        policies: rows (see :data:`POLICIES`).
        seed_plan: tuning and reporting seeds; the suite runs the reporting seeds. Run seed
            ``s`` trains on world ``s``, draws curves on world ``20000 + s`` and is evaluated
            on world ``10000 + s``.
        budgets: scenario (or ``*``) -> policy -> training env steps.
        train_sessions: concurrent sessions while training.
        eval_sessions, eval_steps, warmup_steps: the evaluation world.
        curve_points: evaluations during training (learning curves).
        curve_eval_steps: world steps of each of those evaluations (scenario or ``*``).
        env_overrides: applied to every scenario's config (tiny sizes for tests).
        hparam_overrides: applied to every learned policy's hyperparameters that have the key
            (tiny networks and batches for tests).
        drift_steps, drift_sessions: the interest-drift picture's run.
    """

    name: str
    scenarios: tuple[str, ...] = SCENARIOS
    policies: tuple[str, ...] = POLICIES
    seed_plan: SeedPlan
    budgets: dict[str, dict[str, int]] = field(default_factory=dict)
    train_sessions: int = 64
    eval_sessions: int = 64
    eval_steps: int = 300
    warmup_steps: int = 50
    curve_points: int = 5
    curve_eval_steps: dict[str, int] = field(default_factory=lambda: {"*": 60})
    env_overrides: dict[str, Any] = field(default_factory=dict)
    hparam_overrides: dict[str, Any] = field(default_factory=dict)
    drift_steps: int = 600
    drift_sessions: int = 64

    def __post_init__(self) -> None:
        bad = [s for s in self.scenarios if s not in SCENARIOS]
        if bad:
            raise ValueError(f"scenarios: unknown {bad}; choose from {', '.join(SCENARIOS)}")
        bad = [p for p in self.policies if p not in POLICIES]
        if bad:
            raise ValueError(f"policies: unknown {bad}; choose from {', '.join(POLICIES)}")

    @property
    def seeds(self) -> tuple[int, ...]:
        """The run seeds: the reporting seeds."""
        return self.seed_plan.reporting

    def budget(self, scenario: str, policy: str) -> int:
        """Training env steps of ``policy`` on ``scenario`` (0 for baselines)."""
        if policy_kind(policy) != "learned":
            return 0
        table = self.budgets.get(scenario, self.budgets.get("*", {}))
        return int(table.get(policy, self.budgets.get("*", {}).get(policy, 0)))

    def curve_steps(self, scenario: str) -> int:
        """World steps of each learning-curve evaluation."""
        return int(self.curve_eval_steps.get(scenario, self.curve_eval_steps.get("*", 100)))

    def hparams(self, policy: str, scenario: str) -> dict[str, Any]:
        """The policy's constructor options on ``scenario`` (``configs/learners``), with the
        suite's ``hparam_overrides`` for keys the table has."""
        try:
            hp = learner_hparams(policy, scenario)
        except ValueError:
            return {}  # baselines without a table take their defaults
        hp.update({k: v for k, v in self.hparam_overrides.items() if k in hp})
        return hp


def load_suite(name: str) -> Suite:
    """The suite ``configs/suites/<name>.toml``."""
    if name not in SUITE_NAMES:
        raise ValueError(f"suite must be one of {', '.join(SUITE_NAMES)}, got {name!r}")
    doc = tomllib.loads(config_file("suites", f"{name}.toml").read_text())
    ev = dict(doc.get("evaluation", {}))
    return Suite(name=doc["name"], scenarios=tuple(doc["scenarios"]),
                 seed_plan=SeedPlan(tuple(doc["tuning_seeds"]), tuple(doc["reporting_seeds"])),
                 budgets={k: dict(v) for k, v in doc["budgets"].items()},
                 curve_eval_steps=dict(ev.pop("curve_eval_steps", {"*": 60})), **ev)


TINY = dict(scenarios=("default", "recsim_ie"), train_sessions=16, eval_sessions=32,
            eval_steps=50, warmup_steps=10, curve_points=2,
            curve_eval_steps={"recsim_ie": 30, "*": 15}, drift_steps=20, drift_sessions=8,
            budgets={"*": {p: 320 for p in LEARNED_POLICIES}},
            hparam_overrides=dict(batch_size=32, hidden=(16,), cross_dim=4, gradient_steps=1,
                                  buffer_size=2_000, n_steps=16, n_epochs=1, lookahead=2))
"""Overrides of ``--tiny`` (tests and smoke runs)."""


def get_suite(name: str, *, tiny: bool = False, scenarios: list[str] | None = None,
              policies: list[str] | None = None, seeds: list[int] | int | None = None) -> Suite:
    """The suite called ``name``, optionally tiny and restricted.

    Args:
        seeds: run these reporting seeds (a list), or the first ``n`` of them (an int).
            Tuning seeds are refused.
    """
    spec = load_suite(name)
    if tiny:
        spec = dataclasses.replace(spec, **TINY)
    if scenarios:
        spec = dataclasses.replace(spec, scenarios=tuple(scenarios))
    if policies:
        spec = dataclasses.replace(spec, policies=tuple(policies))
    if seeds is not None:
        plan = spec.seed_plan
        if isinstance(seeds, int):
            if not 1 <= seeds <= len(plan.reporting):
                raise ValueError(f"seeds must be in [1, {len(plan.reporting)}] (the suite's "
                                 f"reporting seeds {list(plan.reporting)}), got {seeds}")
            chosen = plan.reporting[:seeds]
        else:
            chosen = plan.check_reporting(seeds)
        spec = dataclasses.replace(spec, seed_plan=SeedPlan(plan.tuning, chosen))
    return spec


def scenario_config(spec: Suite, scenario: str) -> Any:
    """The world config of ``scenario`` in this suite."""
    from recsim_env.config import make_config

    return make_config(scenario, **spec.env_overrides)


# --------------------------------------------------------------------------- one run
def _scaled(hp: dict[str, Any], steps: int) -> dict[str, Any]:
    """Cap schedule lengths to the budget: explore for at most half of it, learn early."""
    hp = dict(hp)
    if "exploration_steps" in hp:
        hp["exploration_steps"] = max(1, min(hp["exploration_steps"], steps // 2))
    if "learning_starts" in hp:
        hp["learning_starts"] = max(1, min(hp["learning_starts"], steps // 10))
    return hp


def build_learned(spec: Suite, policy: str, scenario: str, cfg: Any, seed: int, steps: int,
                  n: int) -> tuple[Any, dict[str, Any], list[Any], Any, dict[str, Any]]:
    """Learners of a learned policy.

    Returns:
        ``(world_config, learners_by_agent, callbacks, eval_policy, hparams)``.
    """
    from agents.factory import build_learner, session_config

    hp = _scaled(spec.hparams(policy, scenario), steps)
    if policy == "sb3_dqn":
        # SB3 counts its target interval in env steps; one update per world step of n rows
        hp["target_update_interval"] = n
        learner = build_learner("sb3_dqn", cfg, n_rows=n, seed=seed, total_steps=steps,
                                kwargs=hp)  # TopKSB3DQN on slates > 1
        return cfg, {"recommender": learner}, [], learner, hp
    if policy == "consensus_dqn":
        from agents.consensus import ConsensusWrapper

        cons = {k[len(CONSENSUS_PREFIX):]: v for k, v in hp.items()
                if k.startswith(CONSENSUS_PREFIX)}
        dqn_hp = {k: v for k, v in hp.items() if not k.startswith(CONSENSUS_PREFIX)}
        m = int(cons["n_learners"])
        group = [build_learner("dqn", cfg, n_rows=n // m, seed=seed * m + j, total_steps=steps,
                               kwargs=dqn_hp) for j in range(m)]
        wrapper = ConsensusWrapper(group, alpha=float(cons["alpha"]), topology=cons["topology"])
        mapping = {f"recommender_{i}": group[i % m] for i in range(n)}
        return session_config(cfg, n), mapping, [wrapper], group, hp
    learner = build_learner(policy, cfg, n_rows=n, seed=seed, total_steps=steps, kwargs=hp)
    return cfg, {"recommender": learner}, [], learner, hp


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


def run_task(job: tuple[Suite, str, str, int, str]) -> dict[str, Any]:
    """:func:`run_one` of one job ``(spec, scenario, policy, seed, runs_dir)`` (the pool's
    unit of work)."""
    spec, scenario, policy, seed, runs_dir = job
    return run_one(spec, scenario, policy, seed, runs_dir)


def run_one(spec: Suite, scenario: str, policy: str, seed: int, runs_dir: str | Path, *,
            callbacks: list[Any] = ()) -> dict[str, Any]:
    """Train (learned policies) and evaluate ``policy`` on ``scenario`` with run seed
    ``seed``; ``callbacks`` are added to the training runner's (e.g. a Tune reporter; they
    must not change the run). Never raises: a failure is returned as ``error`` with NaN
    metrics."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    out: dict[str, Any] = {"scenario": scenario, "policy": policy, "seed": seed,
                           "kind": policy_kind(policy), "train_steps": 0, "curve": [],
                           "run_dir": None, "error": None}
    try:
        out.update(_run_task(spec, scenario, policy, seed, Path(runs_dir), list(callbacks)))
    except Exception as e:  # noqa: BLE001 - one failing policy must not sink the suite
        log.exception("%s/%s/%s failed", scenario, policy, seed)
        out["error"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc(limit=6)
        out["metrics"] = {k: float("nan") for k in METRIC_KEYS}
    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = time.process_time() - cpu0
    return out


def _run_task(spec: Suite, scenario: str, policy: str, seed: int, runs_dir: Path,
              extra_callbacks: list[Any] = ()) -> dict[str, Any]:
    from agents.factory import make_learner
    from agents.runner import RunConfig, Runner

    cfg = scenario_config(spec, scenario)
    kind = policy_kind(policy)
    eval_world = SeedPlan.world(EVAL, seed)
    protocol = dict(seed=eval_world, n_sessions=spec.eval_sessions, steps=spec.eval_steps,
                    warmup_steps=spec.warmup_steps, max_session_steps=MAX_SESSION_STEPS)
    res: dict[str, Any] = {}
    if kind == "learned":
        steps = spec.budget(scenario, policy)
        n = spec.train_sessions
        world_cfg, learners, callbacks, eval_policy, hp = build_learned(
            spec, policy, scenario, cfg, SeedPlan.world(TRAIN, seed), steps, n)
        per_agent = policy == "consensus_dqn"
        every = max(steps // spec.curve_points, n) if spec.curve_points else 0
        run = RunConfig(total_steps=steps, n_sessions=None if per_agent else n,
                        seed=SeedPlan.world(TRAIN, seed),
                        eval_seeds=(SeedPlan.world(CURVE, seed),),
                        eval_every=every, eval_steps=spec.curve_steps(scenario),
                        log_every=max(steps // 20, n), run_root=str(runs_dir), algo=policy,
                        scenario=scenario, progress=False, max_session_steps=MAX_SESSION_STEPS,
                        save_checkpoints=False)  # a checkpoint holds the replay buffer
        runner = Runner(world_cfg, learners, run,
                        callbacks=[*callbacks, *extra_callbacks])
        t_train = time.perf_counter()
        runner.train()
        train_seconds = time.perf_counter() - t_train
        curve = [(int(e["step"]), float(e["mean_reward"])) for e in runner.eval_history]
        runner.close()
        metrics = evaluate(eval_policy, cfg, **protocol)
        hparams = {"scenario": scenario, "policy": policy, "seed": seed, "train_steps": steps,
                   "train_sessions": n, **hp}
        write_hparams(runner.run_dir, hparams, {k: metrics[k] for k in METRIC_KEYS})
        res.update(train_steps=steps, curve=curve, run_dir=_portable(runner.run_dir),
                   train_seconds=train_seconds,
                   hparams={k: _hp_value(v) for k, v in hparams.items()})
    else:
        learner = make_learner(policy, cfg, seed=seed, **spec.hparams(policy, scenario))
        online = policy in ONLINE_BASELINES
        metrics = evaluate(learner, cfg, explore=online, learn=online, **protocol)
    res["metrics"] = {k: v for k, v in metrics.items() if not k.startswith("env/")}
    return res


MAX_SESSION_STEPS = 1000
"""Time limit of a session in training and evaluation (truncation)."""


def _portable(path: Path) -> str:
    """``path`` relative to the working directory (results files name no machine paths);
    its last part when it lies elsewhere."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return Path(path).name


def drift_snapshots(spec: Suite, scenario: str = "default", policy: str = "myopic_oracle",
                    n_times: int = 41, max_users: int = 1500) -> dict[str, Any]:
    """Users' interests at ``n_times`` evenly spaced steps of one run (the interest-drift
    picture), on the evaluation world of the first reporting seed. Only users in a session
    drift endogenously, so the picture keeps the ``max_users`` users who spent the most steps
    in sessions."""
    from agents.factory import make_learner
    from agents.rollout import EVAL_STREAM, Rollout, assign_rows
    from recsim_env.world import World

    seed = spec.seeds[0]
    cfg = scenario_config(spec, scenario)
    world = World(cfg, n_sessions=spec.drift_sessions)
    world.reset(SeedPlan.world(EVAL, seed))
    learner = make_learner(policy, cfg, seed=seed)
    rollout = Rollout(world, assign_rows(learner, world.n_sessions),
                      np.random.default_rng([seed, EVAL_STREAM]),
                      max_session_steps=MAX_SESSION_STEPS)
    times = np.unique(np.linspace(0, spec.drift_steps, n_times).round().astype(int))
    served = np.zeros(world.n_users, np.int64)
    snaps = []
    for t in range(spec.drift_steps + 1):
        if t in times:
            snaps.append(world.materialized_interests().astype(np.float32))
        if t == spec.drift_steps:
            break
        served += np.bincount(world.sessions.user, minlength=world.n_users)
        rollout.step(explore=False, learn=False)
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
            recs = [by[(scenario, policy, s)] for s in spec.seeds
                    if (scenario, policy, s) in by]
            if not recs:
                continue
            row = metric_row(scenario, policy, recs)
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


def metric_row(scenario: str, policy: str, recs: list[dict[str, Any]],
               n_seeds: int | None = None) -> dict[str, Any]:
    """A results row of ``policy`` on ``scenario`` from its runs ``recs``: the fixed columns
    and the mean and 95% CI over the runs of every metric (``gap_closed`` NaN: set by
    :func:`aggregate`)."""
    row: dict[str, Any] = {
        "scenario": scenario, "policy": policy, "kind": policy_kind(policy),
        "privileged": policy_kind(policy) == "oracle",
        "n_seeds": len(recs) if n_seeds is None else n_seeds,
        "train_steps": recs[0]["train_steps"] if recs else 0,
        "errors": "; ".join(sorted({r["error"] for r in recs if r.get("error")})),
        "note": POLICY_NOTES.get(policy, ""),
    }
    for k in METRIC_KEYS:
        row[f"{k}_mean"], row[f"{k}_ci95"] = mean_ci([r["metrics"][k] for r in recs])
    row["gap_closed_mean"] = row["gap_closed_ci95"] = float("nan")
    return row


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


def check_targets(rows: list[dict[str, Any]],
                  records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The targets, per scenario: random < myopic oracle (mean return); the best learned
    policy above every non-oracle baseline with non-overlapping CIs; on ``recsim_ie`` the best
    learned mean return >= 200; with the per-seed ``records``, the paired checks of
    :func:`_paired_targets`."""
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
        if records:
            t.update(_paired_targets(scenario, get, records))
        out[scenario] = t
    return out


def _paired_targets(scenario: str, rows: dict[str, dict[str, Any]],
                    records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-seed (paired) checks: the long-term oracle against the myopic one, the share of
    the random-to-best-oracle gap the best learned policy closes, PPO against the best
    Q-learner, and which learned policies are above random beyond their paired interval."""
    by = {(r["policy"], r["seed"]): r["metrics"]["return"] for r in records
          if r["scenario"] == scenario and not r.get("error")}
    seeds = sorted({s for (_, s) in by})

    def returns(policy: str) -> np.ndarray | None:
        vals = [by.get((policy, s)) for s in seeds]
        return None if any(v is None for v in vals) else np.array(vals, np.float64)

    t: dict[str, Any] = {}
    rnd, my, lt = returns("random"), returns("myopic_oracle"), returns("long_term_oracle")
    if my is not None and lt is not None:
        d, h = paired_difference(lt, my)
        t["long_term_minus_myopic"] = [d, h]
        t["long_term_beyond_myopic"] = bool(d - h > 0)
    learned = [p for p in LEARNED_POLICIES if p in rows and returns(p) is not None
               and math.isfinite(rows[p]["return_mean"])]
    oracles = [o for o in (my, lt) if o is not None]
    if rnd is not None and oracles and learned:
        best_oracle = np.max(np.stack(oracles), axis=0) if len(oracles) > 1 else oracles[0]
        best = max(learned, key=lambda p: rows[p]["return_mean"])
        share = (returns(best) - rnd) / (best_oracle - rnd)
        t["gap_to_best_oracle_closed"] = [best, *mean_ci(share)]
        t["learned_not_above_random"] = [
            p for p in learned if (lambda dh: dh[0] - dh[1] <= 0)(
                paired_difference(returns(p), rnd))]
    from agents.factory import Q_LEARNERS

    q = [p for p in Q_LEARNERS if p in learned]
    for ppo in PPO_POLICIES:
        if ppo in learned and q:
            best_q = max(q, key=lambda p: rows[p]["return_mean"])
            t[f"{ppo}_share_of_best_q"] = [best_q, *ratio_ci(returns(ppo), returns(best_q))]
    return t


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
                   records: list[dict[str, Any]] = (),
                   provenance: dict[str, Any] | None = None) -> str:
    """``results.md``: per-scenario tables, notes and the target checks."""
    cpu = sum(float(r.get("cpu_seconds") or 0.0) for r in records)
    lines = [f"# Benchmark `{spec.name}`", "",
             f"{len(spec.scenarios)} scenarios x {len(spec.policies)} policies x "
             f"{len(spec.seeds)} reporting seeds {list(spec.seeds)} (hyperparameters were "
             f"chosen on the tuning seeds {list(spec.seed_plan.tuning)}, never reported); "
             f"{seconds / 60:.1f} min with {workers} worker(s), {cpu / 60:.1f} CPU-min in "
             "the runs. Mean ± 95% CI over seeds "
             f"(Student t). Evaluation: {spec.eval_sessions} concurrent sessions, "
             f"{spec.warmup_steps} warm-up + {spec.eval_steps} measured steps on held-out "
             f"world seeds {SeedPlan.world(EVAL, 0)}+seed (training: seed; learning curves: "
             f"{SeedPlan.world(CURVE, 0)}+seed); every session that starts in the measured "
             "steps is followed to its end. **Bold**: best non-oracle value per column. "
             "†: privileged oracle (reads the hidden user state). ‡: some runs failed (see "
             "`results.json`). n/a: undefined (fresh documents have no item identity, so no "
             "item, provider or cold-start metrics; the oracle gap is shown only where the "
             "long-term oracle beats the myopic one beyond their CIs).", ""]
    if provenance:
        redone = sorted({p for _, p in provenance["rerun"]})
        lines += [f"Updated run: {', '.join(redone)} were run again on "
                  f"{', '.join(sorted({sc for sc, _ in provenance['rerun']}))}; the other "
                  f"{provenance['kept_runs']} runs are kept from the earlier run in "
                  f"`{provenance['source']}` (same seeds and protocol; times include both).",
                  ""]
    lines += ["## Mean session return", ""]
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
        if "long_term_minus_myopic" in t:
            d, h = t["long_term_minus_myopic"]
            parts.append(f"long-term minus myopic oracle, paired: {fmt_ci(d, h)}"
                         + (" (beyond the interval)" if t["long_term_beyond_myopic"] else ""))
        if "gap_to_best_oracle_closed" in t:
            p, m, h = t["gap_to_best_oracle_closed"]
            parts.append(f"share of the random-to-best-oracle gap closed by {p}: "
                         f"{fmt_ci(m, h, 2)}")
        for ppo in PPO_POLICIES:
            if f"{ppo}_share_of_best_q" in t:
                q, m, h = t[f"{ppo}_share_of_best_q"]
                parts.append(f"{ppo} / {q}: {fmt_ci(m, h, 2)}")
        if "learned_not_above_random" in t:
            below = t["learned_not_above_random"]
            parts.append("every learned policy above random beyond its paired interval: "
                         + ("yes" if not below else f"NO (not: {', '.join(below)})"))
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
            "horizon_oracle": "horizon†", "long_term_oracle": "long-term†",
            "consensus_dqn": "consensus"}.get(policy, policy)


def plot_learning_curves(path: Path, spec: Suite, records: list[dict[str, Any]],
                         references: dict[str, dict[str, float]] | None = None) -> None:
    """Evaluation return during training, mean over seeds with a 95% CI band, with the
    random and myopic-oracle returns on the same protocol as dashed reference lines."""
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
        ref_style = {"random": ("0.45", "random"), "myopic_oracle": ("k", "myopic oracle†")}
        for policy, value in (references or {}).get(scenario, {}).items():
            if math.isfinite(value):
                color, label = ref_style.get(policy, ("0.3", policy))
                ax.axhline(value, color=color, ls="--", lw=1.1, label=label)
        ax.set_title(scenario)
        ax.set_xlabel("env steps of training")
        if plotted:
            ax.set_xscale("log")  # budgets differ by 10x between learners
            # short tick labels (1k, 2k, 5k, 10k, ...) that do not overlap
            short = matplotlib.ticker.FuncFormatter(
                lambda x, _: f"{x / 1000:g}k" if x >= 1000 else f"{x:g}")
            ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10))
            ax.xaxis.set_minor_locator(matplotlib.ticker.LogLocator(base=10, subs=(2, 5)))
            ax.xaxis.set_major_formatter(short)
            ax.xaxis.set_minor_formatter(short)
            ax.tick_params(axis="x", which="both", labelsize=8)
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
    """One headline metric: a horizontal bar per policy (95% CI whiskers), a panel per
    scenario sharing the policy names, coloured by kind with a legend (baseline, privileged
    oracle, learned) and the direction of the metric in the axis label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    scenarios = [s for s in spec.scenarios if any(r["scenario"] == s for r in rows)]
    policies = [p for p in spec.policies if any(r["policy"] == p for r in rows)]
    fig, axes = plt.subplots(1, len(scenarios), figsize=(3.3 * len(scenarios) + 1.4,
                                                         0.28 * len(policies) + 1.6),
                             squeeze=False, sharey=True)
    colors = {"baseline": "#8da0cb", "oracle": "#bbbbbb", "learned": "#fc8d62"}
    y = np.arange(len(policies))
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        by_policy = {r["policy"]: r for r in rows if r["scenario"] == scenario}
        mean = np.array([by_policy.get(p, {}).get(f"{metric}_mean", np.nan) for p in policies],
                        dtype=float)
        ci = np.nan_to_num(np.array([by_policy.get(p, {}).get(f"{metric}_ci95", np.nan)
                                     for p in policies], dtype=float))
        ax.barh(y, np.nan_to_num(mean), xerr=ci, capsize=2,
                color=[colors[policy_kind(p)] for p in policies])
        ax.set_title(scenario)
        ax.grid(axis="x", alpha=0.3)
        for yi in np.flatnonzero(~np.isfinite(mean)):
            ax.text(0, yi, " n/a", ha="left", va="center", fontsize=8)
    axes[0][0].set_yticks(y, [_short(p) for p in policies], fontsize=9)
    axes[0][0].invert_yaxis()  # the table's order, top to bottom
    better = {True: "higher is better", False: "lower is better"}.get(
        HIGHER_IS_BETTER.get(metric), "")
    fig.supxlabel(f"{METRIC_LABELS.get(metric, metric)}"
                  + (f" ({better})" if better else "") + ", mean ± 95% CI", fontsize=10)
    fig.legend(handles=[Patch(color=colors[k], label=label) for k, label in
                        (("baseline", "baseline"), ("oracle", "oracle † (privileged)"),
                         ("learned", "learned"))],
               loc="upper center", ncol=3, frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def dominant_topic_shares(interests: np.ndarray) -> np.ndarray:
    """(times, topics): the share of users whose favourite topic (largest interest) is each
    topic, at each snapshot of ``interests (times, users, topics)``."""
    x = np.asarray(interests)
    n_times, n_users, n_topics = x.shape
    fav = x.argmax(axis=2)  # (times, users)
    counts = (fav[:, :, None] == np.arange(n_topics)).sum(axis=1)
    return counts / max(n_users, 1)


def plot_interest_drift(path: Path, drift: dict[str, Any], n_users_shown: int = 4) -> None:
    """Interest drift in two panels: the share of users whose favourite topic is each topic
    over time (a stacked area: drift moves the bands), and a few users' interest in every
    topic over time (each line one topic, coloured as in the left panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray(drift["interests"], dtype=np.float64)  # (times, users, topics)
    times = np.asarray(drift["times"])
    n_times, n_users, n_topics = x.shape
    cmap = plt.get_cmap("tab10" if n_topics <= 10 else "tab20")
    colors = [cmap(t % cmap.N) for t in range(n_topics)]
    fig = plt.figure(figsize=(11, 4.2))
    grid = fig.add_gridspec(2, 3, width_ratios=(1.4, 1, 1))
    ax = fig.add_subplot(grid[:, 0])
    shares = dominant_topic_shares(x)
    ax.stackplot(times, shares.T, colors=colors, labels=[f"topic {t}" for t in range(n_topics)],
                 alpha=0.85)
    ax.set_xlim(times[0], times[-1])
    ax.set_ylim(0, 1)
    ax.set_xlabel("world step")
    ax.set_ylabel("share of users whose favourite topic it is")
    ax.set_title("favourite topics over time", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.16), ncol=min(n_topics, 5), fontsize=7,
              frameon=False)
    # the users who spent the most steps in sessions: their interest in each topic over time
    served = np.asarray(drift.get("session_steps", np.zeros(n_users)))
    shown = np.argsort(-served, kind="stable")[:n_users_shown]
    for k, u in enumerate(shown):
        axu = fig.add_subplot(grid[k // 2, 1 + k % 2])
        for t in range(n_topics):
            axu.plot(times, x[:, u, t], color=colors[t], lw=1.2)
        axu.set_ylim(-1.05, 1.05)
        axu.axhline(0, color="0.7", lw=0.6)
        axu.set_title(f"user {k + 1} ({int(served[u])} session steps): interest per topic",
                      fontsize=8)
        axu.tick_params(labelsize=7)
        if k // 2 == 1:
            axu.set_xlabel("world step", fontsize=8)
    fig.suptitle(f"Interest drift on {drift['scenario']} under {drift['policy']} "
                 f"({n_users} users who were served the most)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


REFERENCE_POLICIES = ("random", "myopic_oracle")
"""Baselines drawn as reference lines on the learning curves."""


def curve_references(spec: Suite) -> dict[str, dict[str, float]]:
    """Mean session return of :data:`REFERENCE_POLICIES` under the learning curves' own
    protocol (curve worlds ``20000 + s``, ``curve_eval_steps`` steps, ``train_sessions``
    slots), per scenario: the lines a learning curve should climb from and toward."""
    from agents.factory import make_learner

    out: dict[str, dict[str, float]] = {}
    for scenario in spec.scenarios:
        cfg = scenario_config(spec, scenario)
        out[scenario] = {}
        for policy in REFERENCE_POLICIES:
            if policy not in POLICIES:
                continue
            vals = [evaluate(make_learner(policy, cfg, seed=s), cfg,
                             seed=SeedPlan.world(CURVE, s), n_sessions=spec.train_sessions,
                             steps=spec.curve_steps(scenario), max_session_steps=MAX_SESSION_STEPS,
                             ground_truth=False)["return"] for s in spec.seeds]
            out[scenario][policy] = mean_ci(vals)[0]
    return out


# --------------------------------------------------------------------------- driver
def _task_cost(spec: Suite, scenario: str, policy: str) -> float:
    """Rough relative cost, to start the longest runs first."""
    factor = {"slateq": 3.0, "consensus_dqn": 2.5, "dqn": 2.0, "sb3_dqn": 1.5, "ppo": 1.0,
              "linear_q": 0.5, "tabular_q": 0.4}.get(policy, 0.0)
    base = 30_000.0 if policy == "linucb" and scenario == "recsim_ie" else 5_000.0
    return factor * spec.budget(scenario, policy) + base


def run_suite(spec: Suite, *, out_dir: str | Path, runs_dir: str | Path, workers: int = 1,
              progress: bool = True, backend: str = "local", address: str | None = None,
              update: str | Path | None = None) -> dict[str, Any]:
    """Run every (scenario, policy, reporting seed), then write the tables and plots.

    ``backend`` and ``address`` choose the pool (:func:`agents.experiments.common.run_pool`:
    local processes or Ray tasks); the results do not depend on it.

    Args:
        update: the folder of an earlier run of this suite: run only ``spec``'s scenarios x
            policies again and keep that run's other runs (same seeds), e.g. after changing
            one learner. ``results.json`` records which runs were kept (``update``).

    Returns:
        ``{"rows", "targets", "files", "seconds", "n_tasks"}``.
    """
    spec.seed_plan.check_reporting(spec.seeds)
    out_dir, runs_dir = Path(out_dir), Path(runs_dir)
    kept: list[dict[str, Any]] = []
    provenance: dict[str, Any] | None = None
    if update is not None:
        spec, kept, provenance = _kept_runs(spec, Path(update))
    out_dir.mkdir(parents=True, exist_ok=True)
    runs_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rerun = provenance["rerun"] if provenance else None
    tasks = [(sc, p, s) for sc in spec.scenarios for p in spec.policies for s in spec.seeds
             if rerun is None or [sc, p] in rerun]
    tasks.sort(key=lambda t: -_task_cost(spec, t[0], t[1]))
    jobs = [(spec, sc, p, s, str(runs_dir)) for sc, p, s in tasks]
    records = kept + run_pool(run_task, jobs, workers=workers, progress=progress,
                              desc=f"benchmark {spec.name}", backend=backend,
                              address=address)
    drift = drift_snapshots(spec, "default" if "default" in spec.scenarios else spec.scenarios[0])
    references = curve_references(spec)
    seconds = time.perf_counter() - t0
    for r in records:
        if r.get("error"):
            log.warning("%s/%s seed %s failed: %s", r["scenario"], r["policy"], r["seed"],
                        r["error"])
    rows = aggregate(spec, records)
    targets = check_targets(rows, records)
    if provenance:
        seconds += provenance["seconds"]
    files = write_outputs(spec, out_dir, runs_dir, rows, records, drift, targets, seconds,
                          workers, references=references, provenance=provenance)
    return {"rows": rows, "targets": targets, "files": files, "seconds": seconds,
            "n_tasks": len(tasks)}


def _kept_runs(spec: Suite, folder: Path) -> tuple[Suite, list[dict[str, Any]], dict[str, Any]]:
    """For ``run_suite(update=folder)``: the spec covering the earlier run's scenarios and
    policies plus ``spec``'s, the earlier runs to keep, and the provenance record."""
    import json

    path = folder / "results.json"
    if not path.is_file():
        raise ValueError(f"update: no results.json in {str(folder)!r}; give the folder of a "
                         "run of this suite")
    doc = from_json(json.loads(path.read_text()))
    seeds = doc.get("seeds", {})
    if doc.get("suite") != spec.name or list(seeds.get("reporting_seeds", [])) != list(spec.seeds):
        raise ValueError(f"update: {path} is suite {doc.get('suite')!r} on seeds "
                         f"{seeds.get('reporting_seeds')}; expected suite {spec.name!r} on "
                         f"{list(spec.seeds)}")
    rerun = [[sc, p] for sc in spec.scenarios for p in spec.policies]
    scenarios = [sc for sc in SCENARIOS if sc in doc["spec"]["scenarios"] or sc in spec.scenarios]
    policies = [p for p in POLICIES if p in doc["spec"]["policies"] or p in spec.policies]
    kept = [r for r in doc["runs"] if [r["scenario"], r["policy"]] not in rerun
            and r["policy"] in POLICIES]
    for r in kept:  # the error field is text, never NaN
        r["error"] = None if isinstance(r.get("error"), float) else r.get("error")
    provenance = {"source": _portable(folder), "seconds": float(doc["seconds"]),
                  "rerun": rerun, "kept_runs": len(kept),
                  "earlier": doc.get("update")}
    full = dataclasses.replace(spec, scenarios=tuple(scenarios), policies=tuple(policies))
    return full, kept, provenance


def replot(spec: Suite, *, out_dir: str | Path, runs_dir: str | Path) -> dict[str, Any]:
    """Rewrite every output of ``out_dir`` from its ``results.json`` (the per-seed runs), e.g.
    after changing a plot; only the interest-drift run is simulated again."""
    import json

    out_dir = Path(out_dir)
    path = out_dir / "results.json"
    if not path.is_file():
        raise ValueError(f"--replot needs {path}; run the suite first")
    doc = from_json(json.loads(path.read_text()))
    records = doc["runs"]
    for r in records:  # the error field is text, never NaN
        r["error"] = None if isinstance(r.get("error"), float) else r.get("error")
    seeds = doc["seeds"]
    if "tuning_seeds" not in seeds:
        raise ValueError(f"{path}: written before the suite named its tuning and reporting "
                         "seeds; rerun the suite to replot it")
    spec = dataclasses.replace(spec, scenarios=tuple(doc["spec"]["scenarios"]),
                               policies=tuple(doc["spec"]["policies"]),
                               seed_plan=SeedPlan(tuple(seeds["tuning_seeds"]),
                                                  tuple(seeds["reporting_seeds"])))
    rows = aggregate(spec, records)
    targets = check_targets(rows, records)
    drift = drift_snapshots(spec, "default" if "default" in spec.scenarios else spec.scenarios[0])
    references = doc.get("curve_references") or curve_references(spec)
    files = write_outputs(spec, out_dir, Path(runs_dir), rows, records, drift, targets,
                          float(doc["seconds"]), int(doc["workers"]), hparams_experiment=False,
                          references=references, provenance=doc.get("update"))
    return {"rows": rows, "targets": targets, "files": files, "seconds": float(doc["seconds"]),
            "n_tasks": len(records)}


def write_outputs(spec: Suite, out_dir: Path, runs_dir: Path, rows: list[dict[str, Any]],
                  records: list[dict[str, Any]], drift: dict[str, Any],
                  targets: dict[str, Any], seconds: float, workers: int, *,
                  hparams_experiment: bool = True,
                  references: dict[str, dict[str, float]] | None = None,
                  provenance: dict[str, Any] | None = None) -> list[str]:
    """Every file of ``results/<suite>/`` plus the hparams experiment in ``runs_dir``."""
    files = []
    write_csv(out_dir / "results.csv", rows)
    files.append(out_dir / "results.csv")
    # per-run hyperparameters are in "hparams" (per policy and scenario) and in TensorBoard
    per_seed = [{k: v for k, v in r.items() if k not in ("traceback", "hparams")}
                for r in records]
    per_seed.sort(key=lambda r: (r["scenario"], POLICIES.index(r["policy"]), r["seed"]))
    spec_doc = {k: v for k, v in dataclasses.asdict(spec).items() if k != "seed_plan"}
    doc = {"suite": spec.name, "spec": spec_doc,
           "seconds": seconds, "workers": workers, "columns": csv_columns(), "rows": rows,
           "targets": targets, "runs": per_seed,
           "hparams": {p: {s: spec.hparams(p, s) for s in spec.scenarios}
                       for p in spec.policies},
           "seeds": spec.seed_plan.to_dict(), "curve_references": references or {}}
    if provenance:
        doc["update"] = provenance
    write_json(out_dir / "results.json", doc, indent=None)
    files.append(out_dir / "results.json")
    write_markdown(out_dir / "results.md", spec, rows, targets, seconds, workers, records,
                   provenance=provenance)
    files.append(out_dir / "results.md")
    plot_learning_curves(out_dir / "learning_curves.png", spec, records, references)
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


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/suite.py ...``: the same as ``recsim-marl benchmark ...``."""
    import sys

    from agents.cli import main as cli_main

    return cli_main(["benchmark", *(sys.argv[1:] if argv is None else argv)])
