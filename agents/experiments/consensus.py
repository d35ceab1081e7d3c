"""Consensus vs independent learning vs full parameter sharing: 8 recommenders, 8 cohorts.

    python benchmarks/consensus.py --workers 2                 # DQN then PPO, reporting seeds
    python benchmarks/consensus.py --algo dqn --workers 2      # DQN only
    python benchmarks/consensus.py --quick                     # smoke run (seconds)
    python benchmarks/consensus.py --replot                    # redo md + plots from json
    python benchmarks/consensus.py --pilot --algo dqn          # a pilot on the tuning seeds

Spec -> runs -> report: :func:`study_spec` builds the :class:`Study` (world, settings, budgets,
hyperparameters, seeds), :func:`run_study` trains every (algorithm, setting, seed) in the
project's process pool (:func:`agents.experiments.common.run_pool`) and writes the report
(:func:`write_report`); :func:`replot` rewrites the report from ``results.json``.

The world is the ``default`` preset with ``n_recommenders=8`` and heterogeneous cohorts
(``cohort_topic_skew``, default 1.5: users of cohort ``c`` get +1.5 on topic ``c`` of their
initial interest and home, clipped to [-1, 1], so each recommender's users prefer a
different topic and personalisation matters; the preset's own cohorts are identical).
Recommender ``i`` serves cohort ``i`` only.

Settings (each over the seeds, evaluated on held-out world seeds):

* ``independent``: one learner per agent, no coupling (alpha = 0);
* ``ring a=..`` / ``complete a=..``: one learner per agent coupled by
  :class:`agents.consensus.ConsensusWrapper` (Metropolis weights; a runner callback) after
  every update round;
* ``... heads personal``: consensus on the shared feature layers only (``params=`` name
  prefixes of the network), each agent's output head stays its own;
* ``shared``: full parameter sharing, ONE learner mapped to all 8 agents
  (``{"recommender": learner}``). It sees 8 rows per update, so its per-update batch,
  replay buffer, ``learning_starts`` and exploration schedule (all counted in rows) are 8x an
  individual agent's (:attr:`AlgoSpec.shared_kwargs`): one shared update then uses the same
  data as one round of 8 agents' updates (what ``complete`` with alpha = 1 approximates).

Learners come from :func:`agents.factory.make_learner`: our ``dqn`` (item-wise double DQN)
and SB3 ``ppo`` (``n_rows=1`` per agent). Their hyperparameters are the project's tables
(:func:`agents.hparams.learner_hparams` on ``default``) with this study's deliberate
deviations on top, named in :data:`STUDY_OVERRIDES` (8 small per-agent networks in short
runs); results record both. PPO's slates use the no-repeat encoding
(``slate_encoding="no_repeat"``), because per-position heads over ``MultiDiscrete([10] * 3)``
repeat items, which leaves positions empty. In every setting the 8 networks start from one
initialisation (learner 0's weights, ``ConsensusWrapper(common_init=True)``; the shared
learner is built with learner 0's seed), as decentralised SGD assumes: networks initialised
apart are not aligned, so averaging them early mostly shrinks their weights
(``--no-common-init`` gives each its own). Our DQN takes its gradient steps per ``update``
call, i.e. per world step; :class:`TrainEvery` can hand it ``train_every`` world steps of
transitions at a time instead (SB3's ``train_freq``; ``--kwargs '{"dqn": {"train_every": 4}}'``)
to cut CPU. Consensus runs once per update round (``every=train_every``, default every world
step); for PPO once per rollout (``every=n_steps``), right after the 8 models trained.

Seeds (:data:`SEED_PLAN`): the settings and hyperparameters were chosen in pilots on the
tuning seeds 0-4 (training worlds 0-4, evaluation worlds 10001-10002; the committed
``results/consensus/`` is such a run); reports use the disjoint reporting seeds 10-14 with
evaluation worlds 20001-20002 (``results/consensus_noisy/``). A report refuses a tuning seed
or a tuning evaluation world; ``--pilot`` runs on tuning seeds and labels its output as a
pilot, never a result.

Outputs (``--out``, default ``results/consensus``): ``results.md`` (table: final return, env
steps to 90% of the best final return, final disagreement, each mean and 95% CI over seeds),
``results.json`` (everything, incl. curves and the seed plan), ``curves.png`` (mean
evaluation return vs env steps, 95% bands), ``disagreement.png`` (parameter disagreement
``sum_i ||theta_i - mean||^2`` over *all* network parameters, sampled during training by
:class:`DisagreementProbe`, a runner callback). Run directories (TensorBoard events,
``consensus/*`` tags) go to ``--run-root`` (default ``runs/consensus_bench``); no
checkpoints are written.

Statistics (:mod:`agents.stats`): 95% CI over seeds, Student t. "Final return" is the mean of
the last two evaluations of a run (:meth:`agents.runner.Runner.evaluate`: every session that
starts in the evaluation window, followed to its end). "Steps to threshold": first evaluation
at which the trailing mean of the last two evaluations reaches 90% of the best setting's mean
final return; runs that never reach it count as their total steps (the table then shows a
lower bound ">=").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.callbacks import Callback
from agents.checkpoint import from_json, write_json
from agents.experiments.common import RESULTS_ROOT, SeedPlan, new_results_dir, run_pool
from agents.stats import fmt_ci, mean_ci, paired_difference

__all__ = ["N_AGENTS", "SEED_PLAN", "STUDY_OVERRIDES", "TABLE_COLUMNS", "AlgoSpec",
           "DisagreementProbe", "Setting", "Study", "TrainEvery", "algo_spec", "main",
           "replot", "run_one", "run_study", "steps_to", "study_spec", "summarise"]

log = logging.getLogger(__name__)

N_AGENTS = 8
"""Recommenders, one per cohort."""
NAME = "consensus"
DEFAULT_OUT = RESULTS_ROOT / NAME
QUICK_OUT = Path("runs") / "consensus_quick"
DEFAULT_RUN_ROOT = Path("runs") / "consensus_bench"
HPARAMS_SCENARIO = "default"
"""The table of ``configs/learners/<algo>.toml`` the learners start from."""
FINAL_EVALS = 2
"""A run's final return is the mean of its last this many evaluations (and steps to the
threshold use the trailing mean over as many)."""
THRESHOLD_FRACTION = 0.9
"""Steps to threshold: to this fraction of the best setting's mean final return."""
SPEEDUP_TARGET = 0.5
"""Target: a consensus setting needs at most this fraction of independent learners' steps."""
TABLE_COLUMNS = ("setting", "final return (mean ± 95% CI)", "steps to 90% (mean ± 95% CI)",
                 "reached", "final disagreement (mean ± 95% CI)")

SEED_PLAN = SeedPlan(tuning=(0, 1, 2, 3, 4), reporting=(10, 11, 12, 13, 14))
"""Run seeds: the pilots (and ``results/consensus/``) trained on 0-4; the reporting run
(``results/consensus_noisy/``) on the fresh seeds 10-14."""
TUNING_EVAL_SEEDS = (10_001, 10_002)
"""Evaluation worlds of the pilots (seen while tuning: a report may not use them)."""
REPORTING_EVAL_SEEDS = (20_001, 20_002)
"""Evaluation worlds of reports: the same for every seed and setting (common random
numbers), disjoint from every training world and from :data:`TUNING_EVAL_SEEDS`."""
TUNING, REPORTING = "tuning", "reporting"


# --------------------------------------------------------------------------- spec
@dataclass(frozen=True, kw_only=True)
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

    def __post_init__(self) -> None:
        if self.kind not in ("independent", "consensus", "shared"):
            raise ValueError(f"kind must be independent, consensus or shared, got {self.kind!r}")


# Hyperparameters counted in rows (transitions): the shared learner gets 8x.
PER_ROW = {"dqn": ("batch_size", "buffer_size", "learning_starts", "exploration_steps"),
           "ppo": ("batch_size",)}

STUDY_OVERRIDES: dict[str, dict[str, Any]] = {
    # Eight small networks, each trained on one cohort (an eighth of the sessions: one row
    # per world step) for 1,000 world steps: smaller layers and buffer, a larger step size,
    # exploration and warm-up scaled to the short run. One gradient step per round and no
    # reward scaling, as in every committed run (the DQN defaults the study was built on).
    "dqn": dict(hidden=(64,), cross_dim=16, lr=3e-3, batch_size=64, buffer_size=5_000,
                learning_starts=50, exploration_steps=300, target_update_interval=25,
                gradient_steps=1, reward_scale=1.0),
    # One agent's rollout is n_steps rows (n_rows=1), so the batch is a fraction of it; a
    # myopic discount as our DQN's; distinct items per slate (see the module docstring). The
    # committed study ran SB3's MlpPolicy with 4 epochs per rollout, from before the
    # candidate-scoring policy and its 10 epochs became the ppo defaults; kept, so it reruns.
    "ppo": dict(batch_size=32, learning_rate=1e-3, gamma=0.5, n_epochs=4, policy="MlpPolicy",
                policy_kwargs={"net_arch": [64, 64]}, slate_encoding="no_repeat"),
}
"""The study's deliberate deviations from ``configs/learners/<algo>.toml`` [default]."""

QUICK_OVERRIDES: dict[str, dict[str, Any]] = {
    "dqn": dict(learning_starts=4, exploration_steps=20),
    "ppo": dict(n_steps=8, batch_size=8, n_epochs=1),
}
"""``--quick`` (smoke runs, tests): learning within 10 world steps."""

# Evaluation points: every 1/32 of the run for its first quarter (where thresholds are
# crossed), then every 1/8.
DENSE_EARLY = tuple(k / 32 for k in range(1, 9)) + tuple(k / 8 for k in range(3, 9))
EVERY_EIGHTH = tuple(k / 8 for k in range(1, 9))

# Our DQN's ItemScorer: user_in / item_in / user_proj / item_proj / cross_in form the first
# (feature) layer over [user, candidate, user x candidate]; head.* is the output head.
DQN_FEATURES = ("user_in", "item_in", "user_proj", "item_proj", "cross_in")
# SB3 ActorCriticPolicy: mlp_extractor.* (policy and value trunks) and the action/value heads.
PPO_FEATURES = ("mlp_extractor",)


def _settings(features: tuple[str, ...], alphas_ring: tuple[float, ...],
              alphas_complete: tuple[float, ...], alpha_heads: float) -> tuple[Setting, ...]:
    out = [Setting(name="independent", kind="independent")]
    out += [Setting(name=f"ring a={a:g}", kind="consensus", topology="ring", alpha=a)
            for a in alphas_ring]
    out += [Setting(name=f"complete a={a:g}", kind="consensus", topology="complete", alpha=a)
            for a in alphas_complete]
    out.append(Setting(name=f"complete a={alpha_heads:g}, heads personal", kind="consensus",
                       topology="complete", alpha=alpha_heads, params=features))
    out.append(Setting(name="shared", kind="shared"))
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class AlgoSpec:
    """Budget, hyperparameters and settings of one algorithm's experiment.

    Attributes:
        algo: ``dqn`` or ``ppo``.
        steps: env steps per run (all 8 agents).
        eval_fracs: evaluation points, as fractions of ``steps`` (and one at step 0).
        eval_steps: world steps in which evaluated sessions start.
        eval_seeds: held-out evaluation worlds (the same for every seed and setting).
        disagreement_every: world steps between disagreement samples.
        train_every: world steps per DQN update round (PPO: its own ``n_steps``).
        overrides: learner kwargs that deviate from ``configs/learners/<algo>.toml``.
        head_prefixes: personal parameters in ``heads personal`` (recorded).
        settings: the couplings compared.
        common_init: the 8 networks start from learner 0's initial weights.
    """

    algo: str
    steps: int
    eval_fracs: tuple[float, ...]
    eval_steps: int
    eval_seeds: tuple[int, ...]
    disagreement_every: int
    train_every: int = 1
    overrides: dict[str, Any] = field(default_factory=dict)
    head_prefixes: tuple[str, ...] = ()
    settings: tuple[Setting, ...] = ()
    common_init: bool = True

    def __post_init__(self) -> None:
        if self.algo not in PER_ROW:
            raise ValueError(f"algo must be dqn or ppo, got {self.algo!r}")
        for name in ("steps", "eval_steps", "disagreement_every", "train_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.eval_seeds:
            raise ValueError("eval_seeds: at least one evaluation world is needed")
        names = {s.name for s in self.settings}
        if not {"independent", "shared"} <= names:
            raise ValueError(f"settings must keep 'independent' and 'shared', got "
                             f"{sorted(names)}")

    @property
    def kwargs(self) -> dict[str, Any]:
        """One agent's learner kwargs: the table's ``default`` with :attr:`overrides`."""
        from agents.hparams import learner_hparams

        return {**learner_hparams(self.algo, HPARAMS_SCENARIO), **self.overrides}

    @property
    def shared_kwargs(self) -> dict[str, Any]:
        """The shared learner's changes: every kwarg counted in rows, times 8."""
        kw = self.kwargs
        return {k: N_AGENTS * kw[k] for k in PER_ROW[self.algo] if k in kw}

    @property
    def round_every(self) -> int:
        """World steps per update round (and consensus step)."""
        return int(self.kwargs["n_steps"]) if self.algo == "ppo" else self.train_every

    @property
    def eval_points(self) -> list[int]:
        """Env steps at which a run is evaluated (multiples of 8, increasing, ending at
        ``steps``), besides step 0."""
        last = _round_up(self.steps, N_AGENTS)
        pts = {_round_up(max(int(f * self.steps), 1), N_AGENTS) for f in self.eval_fracs}
        return sorted(p for p in pts if p <= last)

    def to_dict(self) -> dict[str, Any]:
        """Everything, with the resolved kwargs, as plain data."""
        out = dataclasses.asdict(self)
        out.update(kwargs=self.kwargs, shared_kwargs=self.shared_kwargs,
                   hparams_table=f"configs/learners/{self.algo}.toml [{HPARAMS_SCENARIO}]",
                   eval_points=self.eval_points, train_every_effective=self.round_every)
        return out


def _round_up(x: int, k: int) -> int:
    return -(-x // k) * k


def algo_spec(algo: str, *, quick: bool = False, pilot: bool = False, steps: int | None = None,
              overrides: dict[str, Any] | None = None, settings: list[str] | None = None,
              **fields: Any) -> AlgoSpec:
    """The experiment's budget and hyperparameters for ``algo`` (``dqn`` or ``ppo``).

    Args:
        quick: tiny budgets and one setting of each kind (seconds).
        pilot: evaluate on the tuning evaluation worlds (:data:`TUNING_EVAL_SEEDS`).
        steps: env steps per run.
        overrides: learner kwargs to change on top of :data:`STUDY_OVERRIDES` (``--kwargs``);
            those counted in rows are scaled 8x for the shared learner; the key
            ``train_every`` sets :attr:`AlgoSpec.train_every`.
        settings: substrings: keep only the consensus settings whose name contains one.
        fields: other :class:`AlgoSpec` fields to replace (``eval_steps``, ``eval_seeds``,
            ``common_init``; None leaves a field as it is).
    """
    eval_seeds = TUNING_EVAL_SEEDS if pilot else REPORTING_EVAL_SEEDS
    if algo == "dqn":
        spec = AlgoSpec(algo="dqn", steps=8_000, eval_fracs=DENSE_EARLY, eval_steps=200,
                        eval_seeds=eval_seeds, disagreement_every=20,
                        overrides=STUDY_OVERRIDES["dqn"], head_prefixes=("head",),
                        settings=_settings(DQN_FEATURES, (0.5,), (0.05, 0.5), 0.5))
    elif algo == "ppo":
        spec = AlgoSpec(algo="ppo", steps=16_000, eval_fracs=EVERY_EIGHTH, eval_steps=200,
                        eval_seeds=eval_seeds, disagreement_every=32,
                        overrides=STUDY_OVERRIDES["ppo"],
                        head_prefixes=("action_net", "value_net"),
                        settings=_settings(PPO_FEATURES, (0.5,), (0.1, 0.5), 0.5))
    else:
        raise ValueError(f"algo must be dqn or ppo, got {algo!r}")
    if quick:  # one setting of each kind
        spec = dataclasses.replace(
            spec, steps=80, eval_fracs=(1.0,), eval_steps=40, eval_seeds=eval_seeds[:1],
            disagreement_every=5, overrides={**spec.overrides, **QUICK_OVERRIDES[algo]},
            settings=tuple(s for s in spec.settings
                           if s.kind != "consensus" or s.params is not None))
    if settings:
        spec = dataclasses.replace(spec, settings=tuple(
            s for s in spec.settings
            if s.kind != "consensus" or any(w in s.name for w in settings)))
    if steps is not None:
        spec = dataclasses.replace(spec, steps=int(steps))
    if overrides:
        over = dict(overrides)
        train_every = int(over.pop("train_every", spec.train_every))
        spec = dataclasses.replace(spec, overrides={**spec.overrides, **over},
                                   train_every=train_every)
    fields = {k: v for k, v in fields.items() if v is not None}
    unknown = set(fields) - {f.name for f in dataclasses.fields(AlgoSpec)}
    if unknown:
        raise ValueError(f"unknown AlgoSpec fields {sorted(unknown)}")
    if "eval_seeds" in fields:
        fields["eval_seeds"] = tuple(int(x) for x in fields["eval_seeds"])
    return dataclasses.replace(spec, **fields)


@dataclass(frozen=True, kw_only=True)
class Study:
    """The whole experiment: world, algorithms, seeds.

    Attributes:
        algos: one :class:`AlgoSpec` per algorithm.
        seeds: run seeds: reporting seeds of :attr:`seed_plan`, or tuning seeds when
            :attr:`pilot`.
        pilot: a tuning run (labelled as such; never a result).
        skew: ``cohort_topic_skew`` of the world.
        seed_plan: tuning and reporting seeds.
        tuning_eval_seeds: evaluation worlds seen while tuning (refused in a report).

    Raises:
        ValueError: a report on a tuning seed or tuning evaluation world, a pilot on a
            reporting seed, or an evaluation world that is also a training world.
    """

    algos: tuple[AlgoSpec, ...]
    seeds: tuple[int, ...]
    pilot: bool = False
    skew: float = 1.5
    seed_plan: SeedPlan = SEED_PLAN
    tuning_eval_seeds: tuple[int, ...] = TUNING_EVAL_SEEDS

    def __post_init__(self) -> None:
        plan = self.seed_plan
        if self.pilot:
            seeds = tuple(self.seeds)
            off = sorted(set(seeds) - set(plan.tuning))
            if off:
                raise ValueError(f"a pilot runs on tuning seeds {list(plan.tuning)}; seeds "
                                 f"{off} are not (a pilot on reporting seeds spoils them)")
        else:
            seeds = plan.check_reporting(self.seeds)
        object.__setattr__(self, "seeds", seeds)
        if not seeds:
            raise ValueError("seeds: at least one run seed is needed")
        train_worlds = set(plan.tuning) | set(plan.reporting)
        for spec in self.algos:
            clash = sorted(set(spec.eval_seeds) & train_worlds)
            if clash:
                raise ValueError(f"{spec.algo}: eval_seeds {clash} are training worlds of "
                                 "this study")
            seen = sorted(set(spec.eval_seeds) & set(self.tuning_eval_seeds))
            if seen and not self.pilot:
                raise ValueError(f"{spec.algo}: eval_seeds {seen} were evaluation worlds of "
                                 f"the pilots (tuning); report on others, e.g. "
                                 f"{list(REPORTING_EVAL_SEEDS)}")

    @property
    def role(self) -> str:
        """``tuning`` (a pilot) or ``reporting``."""
        return TUNING if self.pilot else REPORTING

    def seeds_doc(self) -> dict[str, Any]:
        """The seed plan as written into ``results.json``."""
        return {"tuning_seeds": list(self.seed_plan.tuning),
                "reporting_seeds": list(self.seed_plan.reporting),
                "tuning_eval_seeds": list(self.tuning_eval_seeds)}


def study_spec(algos: list[str], *, seeds: list[int] | int | None = None, pilot: bool = False,
               quick: bool = False, skew: float = 1.5, **algo_kw: Any) -> Study:
    """The :class:`Study` for ``algos``.

    Args:
        seeds: run these seeds (a list), or the first ``n`` of the role's seeds (an int);
            default: all (``quick``: 2).
        pilot: run on the tuning seeds (a labelled pilot) instead of the reporting seeds.
        algo_kw: for :func:`algo_spec`, per algorithm where a value is a dict keyed by
            algorithm (``overrides``) and the same for all otherwise.
    """
    pool = SEED_PLAN.tuning if pilot else SEED_PLAN.reporting
    if seeds is None:
        seeds = 2 if quick else len(pool)
    if isinstance(seeds, int):
        if not 1 <= seeds <= len(pool):
            role = TUNING if pilot else REPORTING
            raise ValueError(f"seeds must be in [1, {len(pool)}] (the {role} seeds "
                             f"{list(pool)}), got {seeds}")
        seeds = list(pool[:seeds])
    specs = []
    for algo in algos:
        kw = dict(algo_kw)
        kw["overrides"] = (kw.get("overrides") or {}).get(algo)
        specs.append(algo_spec(algo, quick=quick, pilot=pilot, **kw))
    return Study(algos=tuple(specs), seeds=tuple(int(s) for s in seeds), pilot=pilot, skew=skew)


def env_config(skew: float) -> Any:
    """The ``default`` preset with 8 recommenders and topic-skewed cohorts."""
    from recsim_env import make_config

    return make_config("default", n_recommenders=N_AGENTS, cohort_topic_skew=skew)


# --------------------------------------------------------------------------- learners
class TrainEvery:
    """Hand a learner ``k`` world steps of transitions at once (SB3's ``train_freq``).

    A learner wrapper (it changes what the learner sees, not the runner's loop): acting
    passes straight through; ``update`` buffers the batches and, on every ``k``-th call,
    concatenates them into one :class:`agents.base.Transition` for the inner learner (our DQN
    then stores ``k`` rows and takes its gradient steps). For consensus it exposes the inner
    learner's parameters (``consensus_member``).
    """

    privileged = False

    def __init__(self, inner: Any, k: int) -> None:
        if k < 1:
            raise ValueError(f"train_every must be >= 1, got {k}")
        self.inner = inner
        self.k = int(k)
        self._pending: list[Any] = []

    def act(self, obs: np.ndarray, context: Any = None, *, explore: bool = True) -> np.ndarray:
        """The inner learner's slates: (n, slate_size) int64."""
        return self.inner.act(obs, context, explore=explore)

    def update(self, batch: Any) -> dict[str, float]:
        """Buffer ``batch``; every ``k``-th call, update the inner learner on all of them."""
        if self.k == 1:
            return self.inner.update(batch)
        self._pending.append(batch)
        if len(self._pending) < self.k:
            return {}
        from agents.base import Transition

        parts, self._pending = self._pending, []
        contexts = ("context", "next_context")
        merged = Transition(*(np.concatenate([getattr(p, f) for p in parts])
                              for f in Transition._fields if f not in contexts))
        return self.inner.update(merged)

    def consensus_member(self) -> Any:
        """The inner learner's parameters (:func:`agents.consensus.learner_member`)."""
        from agents.consensus import learner_member

        return learner_member(self.inner)

    def state_dict(self) -> dict[str, Any]:
        """The inner learner's state (pending batches are not kept)."""
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the inner learner; pending batches are dropped."""
        self.inner.load_state_dict(state)
        self._pending = []


def make_agent_learner(spec: AlgoSpec, cfg: Any, seed: int, *, shared: bool) -> Any:
    """One agent's learner (``shared``: the one learner of all 8 agents)."""
    from agents.factory import make_learner

    kwargs = {**spec.kwargs, **(spec.shared_kwargs if shared else {})}
    if spec.algo == "ppo":
        return make_learner("ppo", cfg, n_rows=N_AGENTS if shared else 1, seed=seed,
                            total_steps=spec.steps, **kwargs)
    return TrainEvery(make_learner("dqn", cfg, seed=seed, **kwargs), spec.train_every)


class DisagreementProbe(Callback):
    """A runner callback: samples the group's parameter disagreement every ``every`` world
    steps (and at step 0) and records every evaluation.

    Args:
        measure: a :class:`agents.consensus.ConsensusWrapper` over the group used only to
            measure (not a callback of the runner); ``None``: one network, nothing to sample.
        every: world steps between samples.

    Attributes:
        samples: ``(env_steps, disagreement)`` pairs.
        evaluations: ``(env_steps, mean_reward)`` of each evaluation.
    """

    def __init__(self, measure: Any, every: int) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.measure = measure
        self.every = int(every)
        self.samples: list[tuple[int, float]] = []
        self.evaluations: list[tuple[int, float]] = []

    def _sample(self) -> None:
        if self.measure is not None:
            self.samples.append((int(self.runner.steps), float(self.measure.disagreement())))

    def on_training_start(self) -> None:  # noqa: D102
        if self.runner.steps == 0 and not self.samples:
            self._sample()

    def on_step(self, step: Any) -> bool:  # noqa: D102
        if self.runner.world_steps % self.every == 0:
            self._sample()
        return True

    def on_evaluation(self, result: dict[str, Any]) -> None:  # noqa: D102
        self.evaluations.append((int(result["step"]), float(result["mean_reward"])))

    def state_dict(self) -> dict[str, Any]:  # noqa: D102
        return {"samples": [list(s) for s in self.samples],
                "evaluations": [list(e) for e in self.evaluations]}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: D102
        self.samples = [(int(s), float(d)) for s, d in state["samples"]]
        self.evaluations = [(int(s), float(r)) for s, r in state["evaluations"]]


def build_setting(spec: AlgoSpec, setting: Setting, cfg: Any, seed: int
                  ) -> tuple[dict[str, Any], list[Callback], DisagreementProbe]:
    """Learners (agent id or role -> learner), the runner's callbacks and the probe."""
    from agents.consensus import ConsensusWrapper

    if setting.kind == "shared":
        learners = {"recommender": make_agent_learner(spec, cfg, 1000 * seed, shared=True)}
        probe = DisagreementProbe(None, spec.disagreement_every)
        return learners, [probe], probe
    group = [make_agent_learner(spec, cfg, 1000 * seed + i, shared=False)
             for i in range(N_AGENTS)]
    learners = {f"recommender_{i}": x for i, x in enumerate(group)}
    # All parameters, never steps; with common_init every setting starts the 8 networks
    # from learner 0's initial weights, so settings differ only in their coupling.
    measure = ConsensusWrapper(group, alpha=0.0, common_init=spec.common_init)
    probe = DisagreementProbe(measure, spec.disagreement_every)
    callbacks: list[Callback] = []
    if setting.kind == "consensus":
        callbacks.append(ConsensusWrapper(group, alpha=setting.alpha, topology=setting.topology,
                                          every=spec.round_every, params=setting.params))
    return learners, [*callbacks, probe], probe  # the probe samples after the coupling


def run_config(spec: AlgoSpec, seed: int) -> Any:
    """The runner's settings of one run (also the protocol of the reference returns)."""
    from agents.runner import RunConfig

    return RunConfig(total_steps=spec.steps, seed=seed, eval_seeds=spec.eval_seeds,
                     eval_every=0, eval_steps=spec.eval_steps,
                     log_every=max(spec.steps // 10, 1), progress=False, algo=spec.algo,
                     scenario=NAME, save_checkpoints=False, eval_at_start=True)


# --------------------------------------------------------------------------- one run
def run_one(job: tuple[AlgoSpec, Setting, int, float, str]) -> dict[str, Any]:
    """Train one (algo, setting, seed); returns its evaluation curve and disagreement.

    Args:
        job: ``(spec, setting, seed, skew, run_root)``.
    """
    from agents.runner import Runner

    spec, setting, seed, skew, run_root = job
    t0, c0 = time.perf_counter(), time.process_time()
    cfg = env_config(skew)
    learners, callbacks, probe = build_setting(spec, setting, cfg, seed)
    slug = setting.name.replace(" ", "_").replace(",", "").replace("=", "")
    run_dir = Path(run_root) / spec.algo / slug / f"seed{seed}"
    runner = Runner(cfg, learners, run_config(spec, seed), run_dir=run_dir, callbacks=callbacks)
    try:
        for point in spec.eval_points:  # train() evaluates at step 0 and when it stops
            runner.train(total_steps=point)
    finally:
        runner.close()
    return {
        "algo": spec.algo, "setting": setting.name, "seed": seed,
        "steps": [s for s, _ in probe.evaluations],
        "returns": [r for _, r in probe.evaluations],
        "disagreement_steps": [s for s, _ in probe.samples],
        "disagreement": [d for _, d in probe.samples],
        "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
    }


def reference_returns(skew: float, spec: AlgoSpec) -> dict[str, float]:
    """Evaluation return of two fixed baselines under the runs' protocol, for scale."""
    from agents.evaluation import evaluate_seeds
    from agents.factory import make_learner

    cfg = env_config(skew)
    run = run_config(spec, seed=0)
    out = {}
    for name, label in (("random", "random"), ("myopic_oracle", "myopic oracle (privileged)")):
        per_seed = evaluate_seeds({"recommender": make_learner(name, cfg)}, cfg,
                                  list(spec.eval_seeds), n_sessions=N_AGENTS,
                                  steps=spec.eval_steps, max_session_steps=run.max_session_steps,
                                  ground_truth=False)
        out[label] = float(mean_ci([m["return"] for m in per_seed])[0])
    return out


# --------------------------------------------------------------------------- statistics
def _trailing(curve: np.ndarray, width: int = FINAL_EVALS) -> np.ndarray:
    """Trailing mean of the last ``width`` points (fewer at the start), along the last axis."""
    c = np.cumsum(np.asarray(curve, np.float64), axis=-1)
    out = c.copy()
    out[..., width:] = c[..., width:] - c[..., :-width]
    counts = np.minimum(np.arange(1, curve.shape[-1] + 1), width)
    return out / counts


def steps_to(steps: np.ndarray, curves: np.ndarray, threshold: float) -> np.ndarray:
    """Per-seed first step where the trailing 2-eval mean reaches ``threshold`` (NaN: never).

    Args:
        steps: (evals,) env steps of the evaluations.
        curves: (seeds, evals) evaluation returns.
    """
    smooth = _trailing(curves)
    out = np.full(curves.shape[0], np.nan)
    for i, row in enumerate(smooth):
        hit = np.flatnonzero(row >= threshold)
        if hit.size:
            out[i] = steps[hit[0]]
    return out


def summarise(results: list[dict[str, Any]], spec: AlgoSpec) -> dict[str, Any]:
    """Curves, final returns, steps to threshold and disagreement per setting (means and 95%
    CIs over seeds, :func:`agents.stats.mean_ci`)."""
    names = [s.name for s in spec.settings]
    by = {n: sorted((r for r in results if r["setting"] == n), key=lambda r: r["seed"])
          for n in names}
    rows: dict[str, dict[str, Any]] = {}
    for name, runs in by.items():
        steps = np.asarray(runs[0]["steps"])
        curves = np.asarray([r["returns"] for r in runs], np.float64)  # (seeds, evals)
        final = curves[:, -FINAL_EVALS:].mean(axis=1)
        m, ci = mean_ci(curves, axis=0)
        fm, fci = mean_ci(final)
        row = {"seeds": [r["seed"] for r in runs], "steps": steps.tolist(),
               "curve_mean": m.tolist(), "curve_ci": ci.tolist(),
               "curves": curves.tolist(), "final": final.tolist(),
               "final_mean": fm, "final_ci": fci,
               "wall_s": [r["wall_s"] for r in runs], "cpu_s": [r["cpu_s"] for r in runs]}
        if runs[0]["disagreement"]:
            d = np.asarray([r["disagreement"] for r in runs], np.float64)
            dm, dci = mean_ci(d, axis=0)
            row.update(disagreement_steps=runs[0]["disagreement_steps"],
                       disagreement_mean=dm.tolist(), disagreement_ci=dci.tolist(),
                       final_disagreement=float(dm[-1]), final_disagreement_ci=float(dci[-1]))
        else:  # one network: no disagreement
            row.update(disagreement_steps=[], disagreement_mean=[], disagreement_ci=[],
                       final_disagreement=0.0, final_disagreement_ci=0.0)
        rows[name] = row
    best = max(rows, key=lambda n: rows[n]["final_mean"])
    threshold = THRESHOLD_FRACTION * rows[best]["final_mean"]
    for row in rows.values():
        hit = steps_to(np.asarray(row["steps"]), np.asarray(row["curves"]), threshold)
        censored = np.where(np.isnan(hit), spec.steps, hit)
        sm, sci = mean_ci(censored)
        row.update(steps_to_threshold=[None if np.isnan(h) else int(h) for h in hit],
                   steps_mean=sm, steps_ci=sci, reached=int(np.isfinite(hit).sum()))
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
                  and r["steps_mean"] <= SPEEDUP_TARGET * ind["steps_mean"])
        higher = r["final_mean"] >= shared["final_mean"]
        ratio = r["steps_mean"] / ind["steps_mean"] if ind["steps_mean"] > 0 else float("nan")
        out.append({"setting": s.name, "steps_ratio_vs_independent": ratio,
                    "final_minus_shared": r["final_mean"] - shared["final_mean"],
                    "faster": bool(faster), "at_least_shared": bool(higher),
                    "met": bool(faster and higher)})
    return {"met": any(o["met"] for o in out), "independent_lower_bound":
            ind["reached"] < len(ind["final"]), "per_setting": out}


# --------------------------------------------------------------------------- report
def _steps_ci(m: float, ci: float) -> str:
    """Env steps with thousands separators: ``"1,102 ± 174"``."""
    return f"{m:,.0f}" if not np.isfinite(ci) else f"{m:,.0f} ± {ci:,.0f}"


def table_rows(summary: dict[str, Any]) -> list[list[str]]:
    """The results table (see :data:`TABLE_COLUMNS`) as strings."""
    out = []
    for name in summary["settings"]:
        r = summary["rows"][name]
        n = len(r["final"])
        steps = _steps_ci(r["steps_mean"], r["steps_ci"])
        if r["reached"] < n:
            steps = ">= " + steps
        dis = ("0 (one network)" if not r["disagreement_mean"] else
               fmt_ci(r["final_disagreement"], r["final_disagreement_ci"]))
        out.append([name, fmt_ci(r["final_mean"], r["final_ci"]), steps, f"{r['reached']}/{n}",
                    dis])
    return out


def _role_of(seeds: list[int], plan: dict[str, Any]) -> str:
    """``tuning`` when any seed was a tuning seed (results.json written before the seed plan
    was recorded), else ``reporting``."""
    return TUNING if set(seeds) & set(plan["tuning_seeds"]) else REPORTING


def fill_seed_plan(data: dict[str, Any]) -> dict[str, Any]:
    """Add the seed plan (and each algorithm's role) to ``data`` where missing (results
    written before they were recorded); returns ``data``."""
    plan = data.setdefault("seed_plan", {
        "tuning_seeds": list(SEED_PLAN.tuning), "reporting_seeds": list(SEED_PLAN.reporting),
        "tuning_eval_seeds": list(TUNING_EVAL_SEEDS)})
    for block in data["algos"].values():
        block["spec"].setdefault("role", _role_of(block["spec"]["seeds"], plan))
    return data


def _seed_line(spec: dict[str, Any], plan: dict[str, Any]) -> str:
    if spec["role"] == TUNING:
        return (f"**Pilot on tuning seeds {spec['seeds']}** (evaluation worlds "
                f"{list(spec['eval_seeds'])}): settings and hyperparameters were chosen on "
                f"these seeds, so these numbers are not results. Reports use the reporting "
                f"seeds {plan['reporting_seeds']}.")
    return (f"Reporting seeds {spec['seeds']}, evaluation worlds {list(spec['eval_seeds'])}; "
            f"settings and hyperparameters were chosen on the disjoint tuning seeds "
            f"{plan['tuning_seeds']} (evaluation worlds {plan['tuning_eval_seeds']}).")


def _kwargs_line(spec: dict[str, Any]) -> str:
    if "overrides" in spec:
        return (f"Learner kwargs: `{spec['hparams_table']}` with the study's overrides "
                f"`{json.dumps(spec['overrides'])}`, i.e. `{json.dumps(spec['kwargs'])}`")
    return f"Learner kwargs: `{json.dumps(spec['kwargs'])}`"


def write_markdown(path: Path, data: dict[str, Any]) -> None:
    """``results.md`` from ``results.json``'s data."""
    meta, plan = data["meta"], data["seed_plan"]
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
        lines += [f"## {algo.upper()}", "", _seed_line(spec, plan), ""]
        lines += [f"Command: `{spec.get('command', meta['command'])}`  ",
                  f"Wall time: {spec['wall_s']:.0f} s on {spec.get('workers', meta['workers'])}"
                  f" worker(s), {spec['cpu_s']:.0f} s CPU summed over runs "
                  f"({spec.get('machine', meta['machine'])}).", ""]
        lines += [f"{len(spec['seeds'])} seeds {spec['seeds']} x {spec['steps']:,} env steps "
                  f"({spec['steps'] // N_AGENTS:,} world steps), evaluated at 0 and "
                  f"{spec['eval_points']} env steps on seeds {list(spec['eval_seeds'])} "
                  f"x {spec['eval_steps']} world steps. {_kwargs_line(spec)}; shared learner "
                  f"overrides: `{json.dumps(spec['shared_kwargs'])}`; "
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
            vs_ind = "{:+.1f} ± {:.1f}".format(
                *paired_difference(final, rows["independent"]["final"]))
            vs_shared = "{:+.1f} ± {:.1f}".format(
                *paired_difference(final, rows["shared"]["final"]))
            lines.append(f"- {o['setting']}: steps / independent = "
                         f"{o['steps_ratio_vs_independent']:.2f}; final - independent = "
                         f"{vs_ind}, final - shared = {vs_shared} (paired over seeds) -> "
                         f"{'met' if o['met'] else 'not met'}")
        lines.append("")
    lines += ["![curves](curves.png)", "", "![disagreement](disagreement.png)", ""]
    path.write_text("\n".join(lines))


def plot(out: Path, data: dict[str, Any]) -> None:
    """``curves.png`` and ``disagreement.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    algos = list(data["algos"])
    skew = data["meta"]["skew"]
    for kind in ("curves", "disagreement"):
        fig, axes = plt.subplots(1, len(algos), figsize=(6.5 * len(algos), 4.5), squeeze=False)
        for ax, algo in zip(axes[0], algos, strict=True):
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
            spec = data["algos"][algo]["spec"]
            n = len(spec["seeds"])
            pilot = " (pilot, tuning seeds)" if spec.get("role") == TUNING else ""
            ax.set_xlabel("env steps (all 8 agents)")
            if kind == "curves":
                ax.axhline(s["threshold"], color="grey", ls=":", lw=1, label="90% of best")
                for (label, value), ls in zip(data["algos"][algo].get("reference", {}).items(),
                                              ("--", "-."), strict=False):
                    ax.axhline(value, color="black", ls=ls, lw=0.8, label=label)
                ax.set_ylabel("mean evaluation return")
                ax.set_title(f"{algo.upper()}: evaluation return, {n} seeds, 95% CI{pilot}")
            else:
                ax.set_yscale("log")
                ax.set_ylabel("sum_i ||theta_i - mean||^2 (all params)")
                ax.set_title(f"{algo.upper()}: disagreement, {n} seeds, 95% CI "
                             f"(shared: 0){pilot}")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"8 recommenders on default, cohort_topic_skew={skew:g}", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / f"{kind}.png", dpi=110)
        plt.close(fig)


def write_report(out: Path, data: dict[str, Any]) -> dict[str, Any]:
    """Write ``results.json``, then ``results.md`` and the plots from what was written (so a
    replot reads exactly the same data). Returns the data as read back."""
    path = write_json(out / "results.json", data)
    data = fill_seed_plan(from_json(json.loads(path.read_text())))
    write_markdown(out / "results.md", data)
    plot(out, data)
    return data


def _load(out: Path) -> dict[str, Any] | None:
    path = out / "results.json"
    if not path.is_file():
        return None
    return from_json(json.loads(path.read_text()))


def replot(out: str | Path) -> dict[str, Any]:
    """Rewrite ``results.md`` and the plots of ``out`` from its ``results.json``, adding the
    seed plan and the reference returns where an older file lacks them (nothing is trained).
    """
    out = Path(out)
    data = _load(out)
    if data is None:
        raise ValueError(f"--replot needs {out / 'results.json'}; run the study first")
    fill_seed_plan(data)
    for algo, block in data["algos"].items():
        if "reference" not in block:
            sp = block["spec"]
            ref_spec = algo_spec(algo, eval_seeds=sp["eval_seeds"], eval_steps=sp["eval_steps"])
            block["reference"] = reference_returns(data["meta"]["skew"], ref_spec)
    return write_report(out, data)


# --------------------------------------------------------------------------- the study
def run_study(study: Study, *, out: str | Path, run_root: str | Path, workers: int = 1,
              progress: bool = True, command: str | None = None) -> dict[str, Any]:
    """Train every (algorithm, setting, seed) of ``study`` and write the report to ``out``.

    Results of another algorithm already in ``out/results.json`` (same skew) are kept.

    Returns:
        the data written to ``results.json``, as read back.
    """
    if study.pilot:  # Study refused any other mix of seeds
        log.warning("pilot on tuning seeds %s: the report is labelled as such, not a result",
                    list(study.seeds))
    out, run_root = Path(out), Path(run_root)
    out.mkdir(parents=True, exist_ok=True)
    algos = [spec.algo for spec in study.algos]
    data: dict[str, Any] = {"algos": {}}
    old = _load(out)
    if old is not None and old.get("meta", {}).get("skew") == study.skew:
        fill_seed_plan(old)
        data["algos"] = {k: v for k, v in old.get("algos", {}).items() if k not in algos}
    data["seed_plan"] = study.seeds_doc()
    command = command or "python benchmarks/consensus.py"
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    t0, cpu = time.perf_counter(), 0.0

    def report(r: dict[str, Any]) -> None:
        log.info("  %-4s %-32s seed %d: final %7.2f  (%.0f s wall, %.0f s cpu)", r["algo"],
                 r["setting"], r["seed"], r["returns"][-1], r["wall_s"], r["cpu_s"])

    for spec in study.algos:
        jobs = [(spec, s, seed, study.skew, str(run_root))
                for s in spec.settings for seed in study.seeds]
        log.info("%s: %d settings x %d seeds = %d runs of %s env steps, %d worker(s)", spec.algo,
                 len(spec.settings), len(study.seeds), len(jobs), f"{spec.steps:,}", workers)
        ta = time.perf_counter()
        results = run_pool(run_one, jobs, workers=workers, progress=progress,
                           desc=f"consensus {spec.algo}", on_result=report)
        cpu += sum(r["cpu_s"] for r in results)
        summary = summarise(results, spec)
        spec_doc = spec.to_dict()
        spec_doc.update(seeds=list(study.seeds), role=study.role,
                        wall_s=time.perf_counter() - ta, command=command, workers=workers,
                        machine=machine, cpu_s=sum(r["cpu_s"] for r in results))
        data["algos"][spec.algo] = {"spec": spec_doc, "summary": summary,
                                    "reference": reference_returns(study.skew, spec)}
        for row in table_rows(summary):
            log.info("  %s", " | ".join(row))
        log.info("  target met: %s", summary["target"]["met"])
    data["meta"] = {
        "skew": study.skew, "command": command,
        "wall_s": time.perf_counter() - t0, "cpu_s": cpu, "workers": workers,
        "machine": machine, "config": env_config(study.skew).to_dict(),
        "algos_in_this_invocation": algos,
    }
    return write_report(out, data)


# --------------------------------------------------------------------------- command line
def parse_kwargs(text: str | None) -> dict[str, dict[str, Any]]:
    """``--kwargs`` as ``{algo: {name: value}}``; anything else is an error (a flat
    ``{"lr": ...}`` would otherwise be ignored without a word).

    Raises:
        ValueError: not JSON, or not keyed by algorithm.
    """
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--kwargs: not JSON ({e}): {text!r}") from None
    if not isinstance(doc, dict) or any(k not in PER_ROW or not isinstance(v, dict)
                                        for k, v in doc.items()):
        raise ValueError(f"--kwargs must map an algorithm ('dqn' or 'ppo') to its learner "
                         f"kwargs, e.g. '{{\"dqn\": {{\"lr\": 0.001}}}}'; got {text!r}")
    return doc


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python benchmarks/consensus.py``."""
    from agents.cli import ArgumentParser, int_at_least  # one-line errors, exit status 2

    p = ArgumentParser(prog="benchmarks/consensus.py",
                                description=__doc__.split("\n")[0])
    p.add_argument("--algo", choices=("dqn", "ppo", "both"), default="both")
    p.add_argument("--seeds", type=int_at_least(1), default=None,
                   help="run the first N seeds of the role (default all 5; --quick: 2)")
    p.add_argument("--seed-list", type=int_at_least(0), nargs="+", default=None, metavar="SEED",
                   help="run these seeds (reporting seeds; tuning seeds with --pilot)")
    p.add_argument("--pilot", action="store_true",
                   help=f"a tuning run on the tuning seeds {list(SEED_PLAN.tuning)} and "
                        f"evaluation worlds {list(TUNING_EVAL_SEEDS)}, labelled as a pilot")
    p.add_argument("--eval-steps", type=int_at_least(1), default=None,
                   help="world steps in which evaluated sessions start, each followed to its "
                        "end (default: per algorithm)")
    p.add_argument("--eval-seeds", type=int_at_least(0), nargs="+", default=None,
                   help=f"held-out evaluation world seeds (default {list(REPORTING_EVAL_SEEDS)};"
                        f" --pilot: {list(TUNING_EVAL_SEEDS)})")
    p.add_argument("--no-common-init", action="store_true",
                   help="start each agent's network from its own random weights")
    p.add_argument("--steps", type=int_at_least(1), default=None,
                   help="env steps per run (default: per algorithm)")
    p.add_argument("--workers", type=int_at_least(1), default=1, help="parallel worker processes")
    p.add_argument("--skew", type=float, default=1.5, help="cohort_topic_skew (0: identical)")
    p.add_argument("--settings", default=None,
                   help="comma-separated substrings: run only matching consensus settings "
                        "('independent' and 'shared' always run)")
    p.add_argument("--kwargs", default=None,
                   help='learner kwargs overrides as JSON per algo, e.g. '
                        '\'{"dqn": {"lr": 0.001, "train_every": 2}}\'')
    p.add_argument("--replot", "--report-only", dest="replot", nargs="?", const="", default=None,
                   metavar="DIR",
                   help=f"redraw results.md and the plots from DIR/results.json (default "
                        f"{DEFAULT_OUT}) into a new folder beside DIR, or into --out; run "
                        "nothing")
    p.add_argument("--quick", action="store_true", help="tiny smoke run (seconds)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or per-run lines")
    p.add_argument("--out", default=None,
                   help=f"results folder (default: a new {DEFAULT_OUT}-<time>/; --quick: "
                        f"{QUICK_OUT}; --out {DEFAULT_OUT} rewrites the committed results)")
    p.add_argument("--run-root", default=None,
                   help=f"where run directories go (default {DEFAULT_RUN_ROOT}; --quick: "
                        "<out>/runs)")
    return p


def main(argv: list[str] | None = None) -> int:
    """``python benchmarks/consensus.py ...``: parse, run (or replot), report. Exit status 2
    on a bad argument (a tuning seed in a report included)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if not args.quiet and not log.handlers:  # this study's lines, not every library's
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    if args.replot is not None:
        # read DIR/results.json; write beside DIR unless --out says where (DIR itself included)
        source = Path(args.replot) if args.replot else (Path(args.out) if args.out
                                                        else DEFAULT_OUT)
        out = Path(args.out) if args.out else new_results_dir(f"{source.name}-replot",
                                                              source.parent)
        try:
            if not (source / "results.json").is_file():
                raise ValueError(f"--replot: no results.json in {str(source)!r}")
            out.mkdir(parents=True, exist_ok=True)
            if out.resolve() != source.resolve():
                shutil.copyfile(source / "results.json", out / "results.json")
            replot(out)
        except ValueError as e:
            parser.error(str(e))
        print(f"rewrote {out}/results.md, curves.png, disagreement.png")
        return 0
    out = Path(args.out) if args.out else (QUICK_OUT if args.quick else new_results_dir(NAME))
    run_root = Path(args.run_root) if args.run_root else (
        out / "runs" if args.quick else DEFAULT_RUN_ROOT)
    algos = ["dqn", "ppo"] if args.algo == "both" else [args.algo]
    try:
        study = study_spec(
            algos, seeds=args.seed_list or args.seeds, pilot=args.pilot, quick=args.quick,
            skew=args.skew, steps=args.steps, overrides=parse_kwargs(args.kwargs),
            settings=[w.strip() for w in args.settings.split(",")] if args.settings else None,
            eval_steps=args.eval_steps, eval_seeds=args.eval_seeds,
            common_init=False if args.no_common_init else None)
    except ValueError as e:
        parser.error(str(e))
    command = "python benchmarks/consensus.py " + " ".join(shlex.quote(a) for a in argv)
    t0 = time.perf_counter()
    data = run_study(study, out=out, run_root=run_root, workers=args.workers,
                     progress=not args.quiet, command=command.strip())
    print(f"wrote {out}/results.md, results.json, curves.png, disagreement.png "
          f"({time.perf_counter() - t0:.0f} s wall, {data['meta']['cpu_s']:.0f} s cpu)")
    return 0
