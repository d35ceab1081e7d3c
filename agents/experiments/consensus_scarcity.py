"""Consensus under data scarcity: a pre-registered study against independent learners, one
shared network and federated averaging.

    recsim-marl study consensus --workers 2 --out results/consensus_scarcity   # the report
    recsim-marl study consensus --pilot --regimes centre                      # tuning seeds
    recsim-marl study consensus --tiny                                        # seconds

Spec -> runs -> report. The spec is a TOML file (default ``configs/studies/
consensus_scarcity.toml``, shipped in ``recsim_configs.studies``) read by :func:`load_spec`:
regimes (number of agents, session slots per agent, cohort skew; a centre and one factor
changed at a time), methods, the budget in world steps, the evaluation protocol, the learner's
hyperparameters, tuning and reporting seeds, hypotheses and measures. It is committed before
the reporting run; ``results.json`` records the commit that last changed it and its sha256.

World of a regime (:func:`regime_config`): the spec's preset with ``n_agents * slots``
recommender slots, ``users_per_slot`` users per slot, ``cohort_topic_skew = skew`` and
``cohort_topic_group = slots``: agent ``a`` serves the slots ``a * slots .. a * slots + slots -
1``, whose users all lean to topic ``a % n_topics`` (related but not equal tastes across
agents; 0 skew: identical).

Methods (:func:`build_method`), all through the project's one loop (:class:`agents.runner.
Runner` over :mod:`agents.rollout`), coupled by the runner callback
:class:`agents.consensus.ConsensusWrapper`:

* ``independent``: one DQN per agent, each updated on its own slots' transitions;
* ``shared``: one DQN for every slot (pooling all data; the centralised reference), its
  row-counted hyperparameters times ``n_agents``;
* ``fedavg``: independent DQNs whose parameters are replaced by their average every ``every``
  update rounds (complete graph, Metropolis weights ``1/n``, ``alpha = 1``);
* ``consensus``: a consensus step ``theta_i <- theta_i - alpha * sum_j w_ij (theta_i -
  theta_j)`` after every ``every`` rounds on a ring, complete or random-regular graph
  (Metropolis weights), optionally on the feature layers only (personal heads).

Every group starts from learner 0's initial weights (:func:`agents.consensus.copy_first`).

Measures (:func:`summarise`, intervals from :mod:`agents.stats`, paired over seeds): return at
each evaluation budget; steps to ``threshold_fraction`` of the random-to-myopic-oracle gap
(:func:`steps_to_threshold`, censored); the share of the independent-to-shared gap closed
(:func:`agents.stats.share_of_gap`); communication (:func:`communication`).

Outputs in ``--out``: ``results.json`` (spec, provenance, every run, summaries), ``results.md``
(one table per regime), ``<regime>.png`` (curves and paired differences per regime), and
``runs.jsonl`` (each run as it finishes; ``--resume`` keeps those and runs the rest).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

from agents.checkpoint import from_json, to_json, write_json
from agents.experiments.common import EVAL, TRAIN, SeedPlan, new_results_dir, run_pool
from agents.stats import fmt_ci, mean_ci, paired_difference, share_of_gap

__all__ = ["KINDS", "Method", "Regime", "ScarcitySpec", "build_method", "communication",
           "load_spec", "main", "regime_config", "run_one", "run_study", "steps_to_threshold",
           "summarise"]

log = logging.getLogger(__name__)

NAME = "consensus_scarcity"
SPEC_PARTS = ("studies", "consensus_scarcity.toml")
KINDS = ("independent", "shared", "fedavg", "consensus")
REGIME_KEYS = ("n_agents", "slots", "skew")
PER_ROW = ("batch_size", "buffer_size", "learning_starts", "exploration_steps")
"""DQN keys counted in rows (transitions): the shared learner gets ``n_agents`` times."""
DQN_FEATURES = ("user_in", "item_in", "user_proj", "item_proj", "cross_in")
"""Our DQN's feature layers (its output head is ``head.*``): what personal heads share."""
TUNING, REPORTING = "tuning", "reporting"
TINY = dict(budget=16, eval_fracs=[0.5, 1.0], eval_steps=3, users_per_slot=20)
"""``--tiny`` (tests, smoke runs): seconds, not minutes."""
TINY_LEARNER = dict(learning_starts=4, exploration_steps=8, batch_size=4)


# --------------------------------------------------------------------------- spec
@dataclass(frozen=True)
class Regime:
    """One data-scarcity regime: ``n_agents`` agents, ``slots`` session slots each, cohort
    ``skew``."""

    name: str
    n_agents: int
    slots: int
    skew: float

    def __post_init__(self) -> None:
        for key in ("n_agents", "slots"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"regime {self.name!r}: {key} must be an int >= 1, got {v!r}")
        if self.n_agents < 2:
            raise ValueError(f"regime {self.name!r}: n_agents must be >= 2 (a group), got "
                             f"{self.n_agents}")
        if not 0.0 <= float(self.skew) <= 2.0:
            raise ValueError(f"regime {self.name!r}: skew must be in [0, 2], got {self.skew!r}")

    @property
    def n_slots(self) -> int:
        """Session slots of the world (``n_agents * slots``)."""
        return self.n_agents * self.slots


@dataclass(frozen=True)
class Method:
    """One way of coupling the agents' learners (see the module docstring)."""

    name: str
    kind: str
    topology: str = "complete"
    alpha: float = 0.0
    every: int = 1
    degree: int | None = None
    personal_heads: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"method {self.name!r}: kind must be one of {KINDS}, got "
                             f"{self.kind!r}")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"method {self.name!r}: every must be an int >= 1, got "
                             f"{self.every!r}")
        if self.kind == "consensus" and not 0.0 < float(self.alpha) <= 1.0:
            raise ValueError(f"method {self.name!r}: alpha must be in (0, 1], got "
                             f"{self.alpha!r}")

    @property
    def params(self) -> tuple[str, ...] | None:
        """Parameter-name prefixes that take part in the coupling (None: all)."""
        return DQN_FEATURES if self.personal_heads else None


@dataclass(frozen=True)
class ScarcitySpec:
    """The whole pre-registered study (see ``configs/studies/consensus_scarcity.toml``).

    Attributes:
        regimes, methods: what is compared.
        budget: world steps per run.
        eval_fracs: evaluation points as fractions of ``budget`` (and one at step 0).
        eval_steps: world steps in which evaluated sessions start.
        threshold_fraction: steps to this fraction of the random-to-oracle gap.
        learner: one agent's DQN kwargs on top of ``configs/learners/dqn.toml [preset]``.
        train_every: world steps per update round: each learner gets that many world steps
            of transitions at once (:class:`agents.experiments.consensus.TrainEvery`); a
            method's ``every`` counts update rounds.
        seed_plan: tuning and reporting seeds.
        source: the spec's path, sha256 and commit (provenance).
    """

    name: str
    preset: str
    users_per_slot: int
    regimes: tuple[Regime, ...]
    methods: tuple[Method, ...]
    budget: int
    eval_fracs: tuple[float, ...]
    eval_steps: int
    threshold_fraction: float
    learner: dict[str, Any]
    seed_plan: SeedPlan
    train_every: int = 1
    hypotheses: tuple[str, ...] = ()
    measures: tuple[str, ...] = ()
    source: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("budget", "eval_steps", "users_per_slot", "train_every"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{key} must be an int >= 1, got {v!r}")
        if not self.eval_fracs or any(not 0.0 < f <= 1.0 for f in self.eval_fracs):
            raise ValueError(f"eval_fracs must be fractions in (0, 1], got "
                             f"{list(self.eval_fracs)}")
        if not 0.0 < self.threshold_fraction < 1.0:
            raise ValueError(f"threshold_fraction must be in (0, 1), got "
                             f"{self.threshold_fraction}")
        kinds = {m.kind for m in self.methods}
        if not {"independent", "shared"} <= kinds:
            raise ValueError(f"methods must include the kinds 'independent' and 'shared', got "
                             f"{sorted(kinds)}")
        for group in (self.regimes, self.methods):
            names = [x.name for x in group]
            if len(set(names)) != len(names) or not names:
                raise ValueError(f"names must be unique and non-empty, got {names}")

    @property
    def eval_points(self) -> list[int]:
        """World steps at which a run is evaluated (besides 0), increasing, ending at the
        budget."""
        return sorted({max(int(round(f * self.budget)), 1) for f in self.eval_fracs})

    def method(self, kind: str) -> Method:
        """The first method of ``kind``."""
        return next(m for m in self.methods if m.kind == kind)

    def select(self, regimes: list[str] | None = None, methods: list[str] | None = None
               ) -> ScarcitySpec:
        """The spec restricted to these regime and method names (the reference kinds
        independent and shared always stay).

        Raises:
            ValueError: a name that is not in the spec.
        """
        out = self
        if regimes:
            unknown = sorted(set(regimes) - {r.name for r in self.regimes})
            if unknown:
                raise ValueError(f"--regimes: unknown {unknown}; the spec has "
                                 f"{[r.name for r in self.regimes]}")
            out = dataclasses.replace(out, regimes=tuple(r for r in self.regimes
                                                         if r.name in regimes))
        if methods:
            unknown = sorted(set(methods) - {m.name for m in self.methods})
            if unknown:
                raise ValueError(f"--methods: unknown {unknown}; the spec has "
                                 f"{[m.name for m in self.methods]}")
            out = dataclasses.replace(out, methods=tuple(
                m for m in self.methods
                if m.name in methods or m.kind in ("independent", "shared")))
        return out

    def tiny(self) -> ScarcitySpec:
        """Tiny budgets and populations (tests, smoke runs)."""
        return dataclasses.replace(
            self, budget=TINY["budget"], eval_fracs=tuple(TINY["eval_fracs"]),
            eval_steps=TINY["eval_steps"], users_per_slot=TINY["users_per_slot"],
            learner={**self.learner, **TINY_LEARNER})

    def to_dict(self) -> dict[str, Any]:
        """Everything, as plain data (with the seed plan's worlds)."""
        out = dataclasses.asdict(self)
        out["seed_plan"] = self.seed_plan.to_dict()
        out["eval_points"] = self.eval_points
        return out


def default_spec_path() -> Path:
    """The committed spec, ``configs/studies/consensus_scarcity.toml``."""
    from agents.hparams import config_file

    return Path(str(config_file(*SPEC_PARTS)))


_TOP_KEYS = {"name", "preset", "users_per_slot", "tuning_seeds", "reporting_seeds", "budget",
             "eval_fracs", "eval_steps", "threshold_fraction", "hypotheses", "measures",
             "centre", "regimes", "learner", "methods", "train_every"}
_METHOD_KEYS = {f.name for f in dataclasses.fields(Method)}


def _unknown(where: str, table: dict[str, Any], known: set[str] | tuple[str, ...]) -> None:
    extra = sorted(set(table) - set(known))
    if extra:
        raise ValueError(f"{where}: unknown keys {extra}; expected some of {sorted(known)}")


def load_spec(path: str | Path | None = None) -> ScarcitySpec:
    """Read and validate a study spec (default: the committed one).

    Raises:
        ValueError: a missing file, invalid TOML, an unknown key or a bad value, naming it.
    """
    path = Path(path) if path is not None else default_spec_path()
    if not path.is_file():
        raise ValueError(f"--spec: {str(path)!r} does not exist")
    raw_bytes = path.read_bytes()
    try:
        raw = tomllib.loads(raw_bytes.decode())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: invalid TOML: {e}") from None
    _unknown(str(path), raw, _TOP_KEYS)
    missing = sorted({"centre", "regimes", "methods", "tuning_seeds", "reporting_seeds",
                      "budget"} - set(raw))
    if missing:
        raise ValueError(f"{path}: missing keys {missing}")
    centre = raw["centre"]
    _unknown(f"{path} [centre]", centre, REGIME_KEYS)
    regimes = []
    for r in raw["regimes"]:
        _unknown(f"{path} [[regimes]]", r, ("name", *REGIME_KEYS))
        regimes.append(Regime(name=r["name"], **{k: r.get(k, centre[k]) for k in REGIME_KEYS}))
    methods = []
    for m in raw["methods"]:
        _unknown(f"{path} [[methods]]", m, _METHOD_KEYS)
        methods.append(Method(**m))
    return ScarcitySpec(
        name=raw.get("name", NAME), preset=raw.get("preset", "default"),
        users_per_slot=raw.get("users_per_slot", 100), regimes=tuple(regimes),
        methods=tuple(methods), budget=raw["budget"],
        eval_fracs=tuple(float(f) for f in raw.get("eval_fracs", [1.0])),
        eval_steps=raw.get("eval_steps", 20),
        threshold_fraction=float(raw.get("threshold_fraction", 0.5)),
        learner=dict(raw.get("learner", {})), train_every=raw.get("train_every", 1),
        seed_plan=SeedPlan(tuning=tuple(raw["tuning_seeds"]),
                           reporting=tuple(raw["reporting_seeds"])),
        hypotheses=tuple(raw.get("hypotheses", ())), measures=tuple(raw.get("measures", ())),
        source=spec_provenance(path, raw_bytes))


def spec_provenance(path: Path, raw: bytes) -> dict[str, Any]:
    """The spec's sha256, the commit that last changed it and whether the working copy
    differs from that commit (None where git cannot tell: not a clone, no git)."""
    out: dict[str, Any] = {"file": path.name, "sha256": hashlib.sha256(raw).hexdigest(),
                           "commit": "unknown (not in a git clone)",
                           "uncommitted_changes": "unknown"}

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", *args], cwd=path.resolve().parent, capture_output=True,
                               text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("log", "-1", "--format=%H", "--", path.name)
    if commit:
        out["commit"] = commit
        out["uncommitted_changes"] = bool(git("status", "--porcelain", "--", path.name))
    return out


# --------------------------------------------------------------------------- one run
def regime_config(spec: ScarcitySpec, regime: Regime) -> Any:
    """The world of ``regime``: ``n_agents * slots`` recommender slots; agent ``a``'s slots
    share one skewed topic."""
    from recsim_env import make_config

    return make_config(spec.preset, n_recommenders=regime.n_slots,
                       n_users=spec.users_per_slot * regime.n_slots,
                       cohort_topic_skew=float(regime.skew), cohort_topic_group=regime.slots)


def learner_kwargs(spec: ScarcitySpec, n_agents: int, *, shared: bool) -> dict[str, Any]:
    """One agent's DQN kwargs (``shared``: the one learner of all agents, row-counted keys
    times ``n_agents``)."""
    from agents.hparams import learner_hparams

    kw = {**learner_hparams("dqn", spec.preset), **spec.learner}
    if shared:
        kw.update({k: n_agents * kw[k] for k in PER_ROW if k in kw})
    return kw


def build_method(spec: ScarcitySpec, regime: Regime, method: Method, cfg: Any, seed: int
                 ) -> tuple[dict[str, Any], list[Any], Any]:
    """Learners by agent id, the runner's callbacks and the coupling (a
    :class:`agents.consensus.ConsensusWrapper` or None)."""
    from agents.consensus import ConsensusWrapper, copy_first, learner_member
    from agents.experiments.consensus import TrainEvery
    from agents.factory import make_learner

    n, k, every = regime.n_agents, regime.slots, spec.train_every * method.every
    if method.kind == "shared":  # learner 0's seed: the same initial weights as the groups
        one = make_learner("dqn", cfg, seed=1000 * seed, **learner_kwargs(spec, n, shared=True))
        return {"recommender": TrainEvery(one, spec.train_every)}, [], None
    kw = learner_kwargs(spec, n, shared=False)
    group = [TrainEvery(make_learner("dqn", cfg, seed=1000 * seed + i, **kw), spec.train_every)
             for i in range(n)]
    copy_first([learner_member(x) for x in group])
    learners = {f"recommender_{s}": group[s // k] for s in range(regime.n_slots)}
    if method.kind == "independent":
        return learners, [], None
    if method.kind == "fedavg":
        wrapper = ConsensusWrapper(group, alpha=1.0, topology="complete", every=every,
                                   params=method.params)
    else:
        wrapper = ConsensusWrapper(group, alpha=float(method.alpha), topology=method.topology,
                                   every=every, params=method.params,
                                   degree=method.degree, seed=seed)
    return learners, [wrapper], wrapper


def communication(method: Method, wrapper: Any, learners: dict[str, Any], regime: Regime,
                  obs_size: int, slate_size: int, world_steps: int) -> dict[str, Any]:
    """What a method sends, in numbers (parameters or floats of raw data).

    * consensus: each agent sends its mixed tensors (online and target network: the step
      mixes both) to each of its ``deg_i`` neighbours every round;
    * fedavg: each agent uploads them, the server sends the average back (2 n per round in
      total);
    * shared / raw pooling: each agent sends every transition, ``2 * obs + slate + 4``
      numbers (obs, next obs, slate, reward, terminated, truncated, click);
    * independent: nothing.

    Returns:
        ``params_per_message``, ``rounds``, ``per_agent_per_round`` (mean over agents),
        ``total``, ``raw_per_row``, ``raw_total`` (what pooling the same run's transitions
        would send) and ``model_params`` (one agent's online network).
    """
    from agents.consensus import learner_member

    first = next(iter(learners.values()))
    model = learner_member(first).online
    model_params = int(sum(p.numel() for p in model.parameters()))
    raw_per_row = 2 * obs_size + slate_size + 4
    raw_total = regime.n_agents * world_steps * regime.slots * raw_per_row
    out = {"model_params": model_params, "raw_per_row": raw_per_row, "raw_total": raw_total,
           "params_per_message": 0, "rounds": 0, "per_agent_per_round": 0.0, "total": 0}
    if method.kind == "shared":
        out.update(per_agent_per_round=float(world_steps and regime.slots * raw_per_row),
                   total=raw_total, rounds=world_steps)  # per world step
        return out
    if wrapper is None:
        return out
    from agents.consensus import _gather

    _, online, targets = _gather(wrapper.members, wrapper.consensus.params)
    per_msg = sum(t.numel() for t in online[0]) + (
        sum(t.numel() for t in targets[0]) if targets is not None else 0)
    rounds = wrapper.consensus.n_rounds
    n = regime.n_agents
    if method.kind == "fedavg":
        per_agent, total_per_round = float(per_msg), 2 * n * per_msg
    else:
        w = wrapper.consensus.weights
        degrees = ((w > 0) & ~np.eye(n, dtype=bool)).sum(axis=1)
        per_agent, total_per_round = float(degrees.mean() * per_msg), int(degrees.sum() * per_msg)
    out.update(params_per_message=int(per_msg), rounds=int(rounds),
               per_agent_per_round=per_agent, total=int(total_per_round * rounds))
    return out


def run_config(spec: ScarcitySpec, regime: Regime, seed: int) -> Any:
    """The runner's settings of one run (also the reference returns' protocol)."""
    from agents.runner import RunConfig

    return RunConfig(total_steps=spec.budget * regime.n_slots,
                     seed=SeedPlan.world(TRAIN, seed), eval_seeds=(SeedPlan.world(EVAL, seed),),
                     eval_every=0, eval_steps=spec.eval_steps, log_every=10**9,
                     progress=False, algo="dqn", scenario=f"{NAME}_{regime.name}",
                     save_checkpoints=False, eval_at_start=False)


def run_one(job: tuple[ScarcitySpec, Regime, Method, int, str]) -> dict[str, Any]:
    """Train one (regime, method, seed) through the runner; its evaluations and
    communication."""
    from agents.callbacks import EvalRecorder
    from agents.runner import Runner

    spec, regime, method, seed, run_root = job
    t0, c0 = time.perf_counter(), time.process_time()
    cfg = regime_config(spec, regime)
    learners, callbacks, wrapper = build_method(spec, regime, method, cfg, seed)
    recorder = EvalRecorder()
    slug = method.name.replace(",", "").replace(" ", "_")
    run = run_config(spec, regime, seed)
    runner = Runner(cfg, learners, run, run_dir=Path(run_root) / regime.name / slug /
                    f"seed{seed}", callbacks=[*callbacks, recorder])
    try:
        for point in spec.eval_points:  # train() evaluates when it stops
            runner.train(total_steps=point * regime.n_slots)
        world_steps = runner.world_steps
        comm = communication(method, wrapper, learners, regime, runner.world.layout.size,
                             cfg.slate_size, world_steps)
    finally:
        runner.close()
    return {"regime": regime.name, "method": method.name, "seed": seed,
            "world_steps": [int(r["step"]) // regime.n_slots for r in recorder.history],
            "returns": [float(r["mean_reward"]) for r in recorder.history],
            "communication": comm,
            "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}


def reference_returns(job: tuple[ScarcitySpec, Regime, int]) -> dict[str, Any]:
    """Random and myopic-oracle returns on the seed's evaluation world under the runs'
    protocol."""
    from agents.evaluation import evaluate
    from agents.factory import make_learner

    spec, regime, seed = job
    cfg = regime_config(spec, regime)
    run = run_config(spec, regime, seed)
    out: dict[str, Any] = {"regime": regime.name, "seed": seed}
    for name in ("random", "myopic_oracle"):
        m = evaluate({"recommender": make_learner(name, cfg)}, cfg, seed=run.eval_seeds[0],
                     n_sessions=regime.n_slots, steps=spec.eval_steps,
                     max_session_steps=run.max_session_steps, ground_truth=False)
        out[name] = float(m["return"])
    return out


# --------------------------------------------------------------------------- statistics
def steps_to_threshold(steps: np.ndarray, curves: np.ndarray, thresholds: np.ndarray
                       ) -> np.ndarray:
    """Per seed, the first evaluation step whose return reaches the seed's threshold; NaN
    where none does (censored at the budget).

    Args:
        steps: (evals,) world steps of the evaluations.
        curves: (seeds, evals) returns.
        thresholds: (seeds,) one threshold per seed.
    """
    steps, curves = np.asarray(steps), np.asarray(curves, np.float64)
    hit = curves >= np.asarray(thresholds, np.float64)[:, None]
    first = np.argmax(hit, axis=1)
    return np.where(hit.any(axis=1), steps[first], np.nan)


def _ci(x: np.ndarray) -> dict[str, float]:
    m, h = mean_ci(x)
    return {"mean": m, "ci": h}


def summarise(spec: ScarcitySpec, results: list[dict[str, Any]],
              references: list[dict[str, Any]]) -> dict[str, Any]:
    """Per regime and method: return at each budget, final return and paired differences,
    steps to threshold, share of the gap closed, communication (intervals over seeds)."""
    out: dict[str, Any] = {}
    for regime in spec.regimes:
        refs = sorted((r for r in references if r["regime"] == regime.name),
                      key=lambda r: r["seed"])
        seeds = [r["seed"] for r in refs]
        rnd = np.array([r["random"] for r in refs])
        orc = np.array([r["myopic_oracle"] for r in refs])
        thr = rnd + spec.threshold_fraction * (orc - rnd)
        runs = {m.name: sorted((r for r in results if r["regime"] == regime.name
                                and r["method"] == m.name), key=lambda r: r["seed"])
                for m in spec.methods}
        finals = {}
        rows: dict[str, Any] = {}
        for m in spec.methods:
            rs = runs[m.name]
            if [r["seed"] for r in rs] != seeds:
                raise ValueError(f"{regime.name}/{m.name}: runs on seeds "
                                 f"{[r['seed'] for r in rs]}, references on {seeds}")
            steps = np.asarray(rs[0]["world_steps"])
            curves = np.asarray([r["returns"] for r in rs], np.float64)  # (seeds, evals)
            finals[m.name] = curves[:, -1]
            cm, cci = mean_ci(curves, axis=0)
            hit = steps_to_threshold(steps, curves, thr)
            censored = np.where(np.isnan(hit), spec.budget, hit)
            comm = [r["communication"] for r in rs]
            rows[m.name] = {
                "kind": m.kind, "steps": steps.tolist(), "curves": curves.tolist(),
                "curve_mean": cm.tolist(), "curve_ci": cci.tolist(),
                "final": curves[:, -1].tolist(), "final_ci": _ci(curves[:, -1]),
                "steps_to_threshold": [None if np.isnan(h) else int(h) for h in hit],
                "reached": int(np.isfinite(hit).sum()),
                "steps_censored_ci": _ci(censored),
                "communication": {k: float(np.mean([c[k] for c in comm])) for k in comm[0]},
                "cpu_s": [r["cpu_s"] for r in rs], "wall_s": [r["wall_s"] for r in rs]}
        ind, sh = finals[spec.method("independent").name], finals[spec.method("shared").name]
        shared_gap = paired_difference(sh, ind)
        for m in spec.methods:
            f = finals[m.name]
            row = rows[m.name]
            row["minus_independent"] = dict(zip(("mean", "ci"), paired_difference(f, ind),
                                                strict=True))
            row["minus_shared"] = dict(zip(("mean", "ci"), paired_difference(f, sh),
                                           strict=True))
            d = row["minus_independent"]
            row["beats_independent"] = bool(d["mean"] - d["ci"] > 0)
            row["below_independent"] = bool(d["mean"] + d["ci"] < 0)
            row["gap_share"] = dict(zip(("mean", "low", "high"), share_of_gap(f, ind, sh),
                                        strict=True))
        out[regime.name] = {
            "regime": dataclasses.asdict(regime), "seeds": seeds,
            "random": _ci(rnd), "myopic_oracle": _ci(orc), "threshold": _ci(thr),
            "random_per_seed": rnd.tolist(), "oracle_per_seed": orc.tolist(),
            "shared_minus_independent": dict(zip(("mean", "ci"), shared_gap, strict=True)),
            "shared_beats_independent": bool(shared_gap[0] - shared_gap[1] > 0),
            "rows": rows}
    return out


# --------------------------------------------------------------------------- report
TABLE_COLUMNS = ("method", "return at the budgets", "final - independent (paired)",
                 "final - shared (paired)", "share of ind.->shared gap", "steps to 50% gap",
                 "params sent / agent / round", "total sent (x raw pooling)")


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def table_rows(spec: ScarcitySpec, block: dict[str, Any]) -> list[list[str]]:
    """One regime's table (:data:`TABLE_COLUMNS`) as strings."""
    out = []
    for m in spec.methods:
        r = block["rows"][m.name]
        at = " / ".join(f"{x:.1f}" for x in r["curve_mean"])
        final = f"{at} (final {fmt_ci(r['final_ci']['mean'], r['final_ci']['ci'])})"
        d_ind = r["minus_independent"]
        d_sh = r["minus_shared"]
        n = len(r["final"])
        if m.kind in ("independent", "shared"):
            share = "0 (by definition)" if m.kind == "independent" else "1 (by definition)"
        elif not block["shared_beats_independent"]:
            share = "n/a (shared not above ind.)"
        else:
            g = r["gap_share"]
            share = f"{g['mean']:.2f} [{g['low']:.2f}, {g['high']:.2f}]"
        s = r["steps_censored_ci"]
        steps = (f"{'>= ' if r['reached'] < n else ''}{_num(s['mean'])} ± {_num(s['ci'])} "
                 f"({r['reached']}/{n} reached)")
        c = r["communication"]
        ratio = c["total"] / c["raw_total"] if c["raw_total"] else float("nan")
        total = "0" if not c["total"] else f"{c['total']:,.0f} ({ratio:.2g}x)"
        out.append([m.name, final,
                    "—" if m.kind == "independent" else
                    f"{d_ind['mean']:+.1f} ± {d_ind['ci']:.1f}" + (
                        " **" if r["beats_independent"] else
                        " (below)" if r["below_independent"] else ""),
                    "—" if m.kind == "shared" else f"{d_sh['mean']:+.1f} ± {d_sh['ci']:.1f}",
                    share, steps,
                    # shared: raw numbers per world step, shown per update round as the rest
                    _num(c["per_agent_per_round"] * (spec.train_every if m.kind == "shared"
                                                     else 1)), total])
    return out


def write_markdown(path: Path, data: dict[str, Any], spec: ScarcitySpec) -> None:
    """``results.md`` from ``results.json``'s data."""
    meta, src = data["meta"], data["spec"]["source"]
    role = meta["role"]
    lines = [f"# Consensus under data scarcity ({spec.name})", ""]
    if role == TUNING:
        lines += [f"**Pilot on tuning seeds {meta['seeds']}: not a result.** Reports use the "
                  f"reporting seeds {list(spec.seed_plan.reporting)}.", ""]
    else:
        lines += [f"Reporting seeds {meta['seeds']} (evaluation world 10000 + seed, the same "
                  f"for every method); hyperparameters and budget chosen on the disjoint tuning "
                  f"seeds {list(spec.seed_plan.tuning)}.", ""]
    lines += [f"Spec: `configs/studies/{src['file']}` (sha256 `{src['sha256'][:12]}`, last "
              f"changed in commit `{src['commit']}`"
              + (", **with uncommitted changes**" if src.get("uncommitted_changes") is True
                 else "")
              + f"); code at commit `{meta.get('code_commit')}`.  ",
              f"Command: `{meta['command']}`  ",
              f"Wall time {meta['wall_s']:.0f} s with {meta['workers']} worker(s), "
              f"{meta['cpu_s']:.0f} s CPU over runs ({meta['machine']}).", ""]
    lines += [f"World: preset `{spec.preset}`, `n_agents * slots` recommender slots, "
              f"{spec.users_per_slot} users per slot; agent a serves slots a*slots .. "
              "a*slots+slots-1, whose users lean to topic a % n_topics by `skew` "
              "(`cohort_topic_skew`, `cohort_topic_group = slots`). "
              f"Budget {spec.budget} world steps per run, update rounds of "
              f"{spec.train_every} world step(s), evaluated at {spec.eval_points} world steps "
              f"({spec.eval_steps} world steps of session starts on the seed's held-out world, "
              "each session followed to its end, greedy). Learner: our DQN, "
              f"`configs/learners/dqn.toml [{spec.preset}]` with "
              f"`{json.dumps(spec.learner)}`; the shared learner's row-counted keys times "
              "n_agents.", ""]
    lines += ["Columns: mean return at each evaluation budget, final (full budget) with 95% "
              "interval; differences paired over seeds (** = above independent beyond the "
              "interval, (below) = below it beyond the interval); share of the "
              "independent-to-shared gap closed = mean(method - ind) "
              "/ mean(shared - ind) with a paired bootstrap 95% interval, read only where "
              "shared is above independent beyond its interval; steps to "
              f"{spec.threshold_fraction:g} of the random-to-myopic-oracle gap (mean over "
              "seeds with unreached runs counted as the budget: '>=' marks a lower bound); "
              f"parameters sent per agent per update round of {spec.train_every} world step(s) "
              "when the method communicates (online + target tensors the step mixes; FedAvg: "
              "the upload, every `every` rounds; shared: the raw transitions) and in total "
              "over the run (all messages, FedAvg's download included; shared: the raw "
              "transitions pooled), with the ratio to "
              "what pooling the same run's raw transitions sends.", ""]
    for regime in spec.regimes:
        block = data["summary"][regime.name]
        r = block["regime"]
        sg = block["shared_minus_independent"]
        lines += [f"## {regime.name}: {r['n_agents']} agents x {r['slots']} slots, skew "
                  f"{r['skew']:g}", "",
                  f"Random {fmt_ci(block['random']['mean'], block['random']['ci'])}, myopic "
                  "oracle (privileged) "
                  f"{fmt_ci(block['myopic_oracle']['mean'], block['myopic_oracle']['ci'])}"
                  f", threshold {block['threshold']['mean']:.1f}; shared - independent "
                  f"{sg['mean']:+.1f} ± {sg['ci']:.1f} (paired).", "",
                  "| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in table_rows(spec, block)]
        lines += ["", f"Budgets: {spec.eval_points} world steps.", "",
                  f"![{regime.name}]({regime.name}.png)", ""]
    path.write_text("\n".join(lines))


def plot(out: Path, data: dict[str, Any], spec: ScarcitySpec) -> list[Path]:
    """``<regime>.png``: return vs world steps with random/oracle/threshold lines, and each
    method's final return minus independent's (paired 95% intervals)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    pilot = " (PILOT, tuning seeds)" if data["meta"]["role"] == TUNING else ""
    for regime in spec.regimes:
        block = data["summary"][regime.name]
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
        colors = {}
        for m in spec.methods:
            r = block["rows"][m.name]
            x, mean, ci = r["steps"], np.array(r["curve_mean"]), np.array(r["curve_ci"])
            (line,) = ax.plot(x, mean, marker="o", ms=3, lw=1.5, label=m.name)
            colors[m.name] = line.get_color()
            if np.isfinite(ci).all():
                ax.fill_between(x, mean - ci, mean + ci, color=line.get_color(), alpha=0.12)
        for key, ls, label in (("random", "--", "random"), ("myopic_oracle", "-.",
                                                            "myopic oracle"),
                               ("threshold", ":", f"{spec.threshold_fraction:g} of gap")):
            ax.axhline(block[key]["mean"], color="black", ls=ls, lw=0.8, label=label)
        ax.set_xlabel("world steps")
        ax.set_ylabel("evaluation return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        ax.set_title(f"return, mean and 95% CI over {len(block['seeds'])} seeds{pilot}",
                     fontsize=9)
        names = [m.name for m in spec.methods if m.kind != "independent"]
        d = [block["rows"][n]["minus_independent"] for n in names]
        y = np.arange(len(names))
        bx.barh(y, [v["mean"] for v in d], xerr=[v["ci"] for v in d],
                color=[colors[n] for n in names], capsize=3)
        bx.axvline(0, color="black", lw=0.8)
        bx.set_yticks(y, names, fontsize=8)
        bx.invert_yaxis()
        bx.set_xlabel("final return - independent (paired 95% CI; > 0 is better)")
        bx.grid(alpha=0.3, axis="x")
        r = block["regime"]
        fig.suptitle(f"{regime.name}: {r['n_agents']} agents x {r['slots']} slots, skew "
                     f"{r['skew']:g}, budget {spec.budget} world steps", fontsize=10)
        fig.tight_layout()
        path = out / f"{regime.name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def _int_or_none(x: Any) -> int | None:
    """An int read back from JSON (None was written as null and reads back as NaN)."""
    return int(x) if isinstance(x, int) or (isinstance(x, float) and np.isfinite(x)) else None


def spec_from_dict(doc: dict[str, Any]) -> ScarcitySpec:
    """The :class:`ScarcitySpec` written by :meth:`ScarcitySpec.to_dict`."""
    doc = {k: v for k, v in doc.items() if k != "eval_points"}
    plan = doc.pop("seed_plan")
    return ScarcitySpec(**{
        **doc, "regimes": tuple(Regime(**r) for r in doc["regimes"]),
        "methods": tuple(Method(**{**m, "degree": _int_or_none(m["degree"])})
                         for m in doc["methods"]),
        "eval_fracs": tuple(doc["eval_fracs"]), "hypotheses": tuple(doc["hypotheses"]),
        "measures": tuple(doc["measures"]),
        "seed_plan": SeedPlan(tuning=tuple(plan["tuning_seeds"]),
                              reporting=tuple(plan["reporting_seeds"]))})


def write_report(out: Path, data: dict[str, Any]) -> dict[str, Any]:
    """``results.json``, then ``results.md`` and the plots from what was written."""
    path = write_json(out / "results.json", data)
    data = from_json(json.loads(path.read_text()))
    spec = spec_from_dict(data["spec"])
    write_markdown(out / "results.md", data, spec)
    plot(out, data, spec)
    return data


def replot(out: str | Path) -> dict[str, Any]:
    """Rewrite ``results.md`` and the plots of ``out`` from its ``results.json``."""
    path = Path(out) / "results.json"
    if not path.is_file():
        raise ValueError(f"--replot: no results.json in {str(out)!r}")
    data = from_json(json.loads(path.read_text()))
    data["summary"] = summarise(spec_from_dict(data["spec"]), data["runs"], data["references"])
    return write_report(Path(out), data)


# --------------------------------------------------------------------------- the study
def _code_commit() -> str | None:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                           timeout=10, check=False, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() or None


def study_seeds(spec: ScarcitySpec, *, pilot: bool, seeds: list[int] | int | None
                ) -> tuple[int, ...]:
    """The run seeds: the reporting seeds (a report refuses tuning seeds) or, for a pilot,
    tuning seeds (a pilot refuses reporting seeds); ``seeds`` an int takes the first n."""
    plan = spec.seed_plan
    pool = plan.tuning if pilot else plan.reporting
    if seeds is None:
        seeds = list(pool)
    elif isinstance(seeds, int):
        if not 1 <= seeds <= len(pool):
            raise ValueError(f"--seeds must be in [1, {len(pool)}], got {seeds}")
        seeds = list(pool[:seeds])
    if pilot:
        off = sorted(set(seeds) - set(plan.tuning))
        if off:
            raise ValueError(f"a pilot runs on tuning seeds {list(plan.tuning)}; seeds {off} "
                             "are not (a pilot on reporting seeds spoils them)")
        return tuple(seeds)
    return plan.check_reporting(seeds)


def run_study(spec: ScarcitySpec, *, out: str | Path, run_root: str | Path,
              seeds: tuple[int, ...], pilot: bool = False, workers: int = 1,
              progress: bool = True, command: str = "", resume: bool = False
              ) -> dict[str, Any]:
    """Run every (regime, method, seed) and the references, then write the report.

    Returns:
        the data written to ``results.json``, as read back.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0, code_commit = time.perf_counter(), _code_commit()  # the code that runs
    refs = run_pool(reference_returns, [(spec, r, s) for r in spec.regimes for s in seeds],
                    workers=1, progress=False)
    # seed by seed (a stopped study has whole seeds done), the largest runs of a seed first
    jobs = sorted([(spec, r, m, s, str(run_root)) for r in spec.regimes for m in spec.methods
                   for s in seeds],
                  key=lambda j: (seeds.index(j[3]),
                                 -j[1].n_slots * (1 if j[2].kind == "shared" else j[1].n_agents)))
    # every finished run is appended to runs.jsonl; --resume skips those already there
    done_path = out / "runs.jsonl"
    done = {}
    if not resume:
        done_path.unlink(missing_ok=True)
    elif done_path.is_file():
        for line in done_path.read_text().splitlines():
            r = from_json(json.loads(line))
            done[(r["regime"], r["method"], r["seed"])] = r
    todo = [j for j in jobs if (j[1].name, j[2].name, j[3]) not in done]

    def report(r: dict[str, Any]) -> None:
        with done_path.open("a") as f:
            f.write(json.dumps(to_json(r)) + "\n")
        log.info("  %-10s %-26s seed %d: final %7.2f (%.0f s cpu)", r["regime"], r["method"],
                 r["seed"], r["returns"][-1], r["cpu_s"])

    log.info("%d regimes x %d methods x %d seeds = %d runs (%d done before), %d worker(s)",
             len(spec.regimes), len(spec.methods), len(seeds), len(jobs), len(done), workers)
    new = run_pool(run_one, todo, workers=workers, progress=progress, desc=NAME,
                   on_result=report)
    by_key = {**done, **{(r["regime"], r["method"], r["seed"]): r for r in new}}
    results = [by_key[(j[1].name, j[2].name, j[3])] for j in jobs]
    data = {
        "spec": spec.to_dict(), "references": refs, "runs": results,
        "summary": summarise(spec, results, refs),
        "meta": {"role": TUNING if pilot else REPORTING, "seeds": list(seeds),
                 "command": command, "code_commit": code_commit, "workers": workers,
                 "wall_s": time.perf_counter() - t0,
                 "cpu_s": float(sum(r["cpu_s"] for r in results)),
                 "resumed_runs": len(done),
                 "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                            f"{platform.python_version()}"},
    }
    return write_report(out, data)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``recsim-marl study consensus``."""
    from agents.cli import int_at_least

    p.add_argument("--spec", default=None,
                   help="study spec TOML (default: the committed "
                        "configs/studies/consensus_scarcity.toml)")
    p.add_argument("--workers", type=int_at_least(1), default=1,
                   help="parallel processes (default 1)")
    p.add_argument("--pilot", action="store_true",
                   help="run on the spec's tuning seeds, labelled as a pilot (never a result)")
    p.add_argument("--seeds", type=int_at_least(1), default=None,
                   help="run only the first N seeds of the role")
    p.add_argument("--regimes", nargs="+", default=None, metavar="REGIME",
                   help="run only these regimes of the spec")
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help="run only these methods (independent and shared always run)")
    p.add_argument("--tiny", action="store_true", help="tiny budgets (tests, smoke runs)")
    p.add_argument("--out", default=None,
                   help=f"results folder (default: a new results/{NAME}-<time>/; --out "
                        f"results/{NAME} rewrites the committed results)")
    p.add_argument("--runs-dir", default=None,
                   help=f"TensorBoard run folder (default runs/{NAME})")
    p.add_argument("--resume", action="store_true",
                   help="keep the runs already in OUT/runs.jsonl (an interrupted study) and "
                        "run the rest")
    p.add_argument("--replot", default=None, metavar="DIR",
                   help="rewrite DIR's results.md and plots from its results.json; run "
                        "nothing")


def main(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Run ``recsim-marl study consensus`` with parsed ``args``; returns a summary for the
    command line."""
    if args.replot:
        replot(args.replot)
        return {"out_dir": args.replot, "seconds": 0.0, "runs": 0}
    spec = load_spec(args.spec).select(args.regimes, args.methods)
    if args.tiny:
        spec = spec.tiny()
    seeds = study_seeds(spec, pilot=args.pilot, seeds=args.seeds)
    out = Path(args.out) if args.out else new_results_dir(NAME + ("-pilot" if args.pilot
                                                                  else ""))
    run_root = Path(args.runs_dir) if args.runs_dir else Path("runs") / NAME
    if not args.quiet and not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    data = run_study(spec, out=out, run_root=run_root, seeds=seeds, pilot=args.pilot,
                     workers=args.workers, progress=not (args.quiet or args.json),
                     command=command, resume=args.resume)
    return {"out_dir": str(out), "seconds": data["meta"]["wall_s"], "runs": len(data["runs"])}
