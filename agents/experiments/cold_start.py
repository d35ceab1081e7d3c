"""Cold start with LLM-assisted item content: does a better encoder help recommenders?

On the ``cold_start`` preset, every content encoder (``hashing``, ``minilm``, ``topic`` = the
privileged noisy topic mixture, ``none`` = no content) is crossed with these recommenders:

* ``content_similarity``: :class:`agents.baselines.ContentSimilarity` with the ``learned``
  profile for every encoder (a per-user decayed sum of the content of the items the user
  clicked, keyed by user id), so the encoders are compared under one user model.
* ``content_projected``: :class:`agents.baselines.ProjectedContentSimilarity`, the same cosine
  similarity with one user model for every encoder (the observed history, in topic space) and
  items mapped into topic space by a ridge regression learned online from the observation.
* ``linucb``: the stock LinUCB on ``content x history`` features, only where its ridge
  dimension stays small (``topic``, ``none``): with 64 or 384 content dims it is 706 or 4,226
  and costs >100 ms per step.
* ``dqn``: our deep Q recommender, trained with :class:`agents.runner.Runner`, then evaluated
  greedy and frozen. Its hyperparameters are ``configs/learners/dqn.toml``
  (:func:`agents.hparams.learner_hparams`) with this study's small-budget overrides
  (:data:`DQN_OVERRIDES`, :func:`dqn_hparams`).
* ``interest_probe`` (privileged diagnostic, :class:`agents.baselines.InterestProbe`): the true
  user interest dotted with the content mapped into topic space as in ``content_projected``.
  It isolates the encoder from user modelling: what content alone tells about a cold item,
  given a perfect user model.

Reference rows, encoder-free (run on the ``none`` world): ``random`` and the privileged
``myopic_oracle``.

Protocol (the spec is :class:`Study`). Run seed ``s`` (:class:`agents.experiments.common.
SeedPlan`) evaluates on world ``10000 + s`` and trains the DQN on world ``s`` (its Runner's
end-of-training evaluation runs on world ``20000 + s``). Every evaluation is
:func:`agents.evaluation.evaluate` with the preset's ``n_recommenders`` session slots: every
session that starts in the ``eval_steps``-step window is followed to its end; online
recommenders explore and learn while they serve. Metrics: ``cold_start_ctr``,
``time_to_first_click`` (steps from an item's arrival to its first click), ``return`` (session
return), ``ctr`` and ``cold_start_share`` (share of impressions on cold items). Tables give the
mean and 95% Student-t interval over the reporting seeds (:mod:`agents.stats`); ratios between
encoders are paired by seed.

Seeds. The study's settings (the recommenders' options, the DQN's overrides, the preset's
cold-start parameters) were explored on evaluation worlds 1000 and 1001 and confirmed on
2000-2002, with training worlds 0-4 (and the first published table used evaluation worlds
1000-1004): every run seed whose worlds touch those is a tuning seed (:data:`TUNING_SEEDS`).
The default reporting seeds :data:`REPORTING_SEEDS` (100-104: training worlds 100-104,
evaluation worlds 10100-10104) are fresh; both lists go into ``results.json`` and a spec that
reports a tuning seed is refused.

MiniLM cost: item texts do not depend on the policy (the catalog streams are separate from the
choice streams), so :func:`run_study` lists every text the runs will need (cheap, with the
hashing encoder, which draws the same descriptions), embeds the distinct ones once (split over
the worker processes, the model loaded once per process) and hands the embeddings to the job
workers (:func:`load_minilm_embeddings`, the pool initializer). Every world of a process shares
one encoder per encoder name (:func:`shared_encoder`, passed as ``World(..., encoder=)``), so
the job workers never run the model for a listed text. Sessions still running
``text_tail_steps`` after a window are embedded on demand (``job_cache_misses``). The overhead
is measured and reported.

Usage::

    python benchmarks/cold_start_content.py --workers 2   # the full study (-> results/cold_start)
    python benchmarks/cold_start_content.py --quick       # smoke run (seconds)
    python benchmarks/cold_start_content.py --replot      # rewrite md + png from results.json

Outputs (default ``results/cold_start``): ``results.md``, ``results.json`` (spec, tuning and
reporting seeds, per-seed runs, cells, target verdicts) and ``results.png``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.checkpoint import from_json, write_json
from agents.evaluation import evaluate
from agents.experiments.common import CURVE, EVAL, RESULTS_ROOT, TRAIN, SeedPlan, run_pool
from agents.factory import make_learner
from agents.hparams import learner_hparams
from agents.rollout import Rollout
from agents.runner import RunConfig, Runner
from agents.stats import fmt_ci, mean_ci, ratio_ci
from recsim_env.config import EnvConfig, make_config
from recsim_env.content import ContentEncoder, ItemDescriptions, make_item_vocabulary
from recsim_env.world import ObsLayout, World, content_encoder

__all__ = ["ENCODERS", "RECOMMENDERS", "REPORTING_SEEDS", "TUNING_SEEDS", "Study", "dqn_hparams",
           "load_minilm_embeddings", "replot", "run_job", "run_study", "shared_encoder",
           "study_spec", "summarize", "target_verdict", "world_texts"]

log = logging.getLogger(__name__)

PRESET = "cold_start"
ENCODERS = ("hashing", "minilm", "topic", "none")
RECOMMENDERS = ("content_similarity", "content_projected", "linucb", "dqn", "interest_probe")
REFERENCES = ("random", "myopic_oracle")
PRIVILEGED = ("interest_probe", "myopic_oracle")
CONTENT_RECOMMENDERS = ("content_similarity", "content_projected")
"""The content-based recommenders the target is about (non-privileged, content only)."""
RECOMMENDER_KWARGS: dict[str, dict[str, Any]] = {"content_similarity": {"profile": "learned"}}
"""Constructor options: one user model (the learned profile) for every encoder."""
METRICS = ("cold_start_ctr", "time_to_first_click", "return", "ctr", "cold_start_share")
"""Keys of :func:`agents.evaluation.evaluate` reported per cell."""
LINUCB_MAX_DIM = 256
"""LinUCB re-inverts its (D, D) ridge matrix every step: run it only where D is this small."""
TARGET_RATIO_NONE = 1.5
"""Target: MiniLM cold-start CTR >= 1.5x that with no content..."""
TARGET_WITHIN_TOPIC = 0.10
"""...and within 10% of the privileged topic features'."""

TUNING_SEEDS = (0, 1, 2, 3, 4, 1000, 1001, 1002, 1003, 1004, 2000, 2001, 2002)
"""Run seeds whose worlds the settings were explored and confirmed on (module docstring)."""
REPORTING_SEED0 = 100
REPORTING_SEEDS = tuple(range(REPORTING_SEED0, REPORTING_SEED0 + 5))
"""Fresh seeds, disjoint from :data:`TUNING_SEEDS` in every role's worlds."""

DQN_OVERRIDES: dict[str, Any] = {"buffer_size": 10_000, "learning_starts": 1_000}
"""Small-budget overrides of ``configs/learners/dqn.toml``: a 10,000-row replay (a MiniLM
observation is 3,903 floats and every worker holds one replay) and learning from 1,000 env
steps (a 20,000-step budget, not the suite's 100,000)."""


def default_reporting_seeds(n: int) -> tuple[int, ...]:
    """The first ``n`` reporting seeds (``100, 101, ...``)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return tuple(range(REPORTING_SEED0, REPORTING_SEED0 + n))


# ------------------------------------------------------------------------- the spec
@dataclass(frozen=True, kw_only=True)
class Study:
    """The cold-start study: what to run and with which budgets.

    Attributes:
        encoders: content encoders (columns).
        recommenders: recommenders (rows), besides the encoder-free references.
        reporting_seeds: run seeds every reported number comes from (never a tuning seed).
        eval_steps: world steps of the evaluation window.
        warmup_steps: unmeasured world steps before it.
        eval_sessions: session slots of the evaluation world (None: the preset's
            ``n_recommenders``).
        dqn_steps: env steps (session-steps) of DQN training.
        dqn_sessions: session slots of the DQN training world.
        dqn_batch_size: replayed transitions per DQN gradient step (None: the table's).
        text_tail_steps: world steps after a window whose item texts MiniLM embeds up front
            (counted sessions run on after the window).
    """

    encoders: tuple[str, ...] = ENCODERS
    recommenders: tuple[str, ...] = RECOMMENDERS
    reporting_seeds: tuple[int, ...] = REPORTING_SEEDS
    eval_steps: int = 1000
    warmup_steps: int = 0
    eval_sessions: int | None = None
    dqn_steps: int = 20_000
    dqn_sessions: int = 64
    dqn_batch_size: int | None = None
    text_tail_steps: int = 300

    def __post_init__(self) -> None:
        for name, allowed in (("encoders", ENCODERS), ("recommenders", RECOMMENDERS)):
            value = tuple(getattr(self, name))
            object.__setattr__(self, name, value)
            bad = [v for v in value if v not in allowed]
            if bad or not value or len(set(value)) != len(value):
                raise ValueError(f"{name} must be distinct values of {allowed}, got {value}")
        object.__setattr__(self, "reporting_seeds", self.seeds.reporting)  # refuses tuning
        for name, lo in (("eval_steps", 1), ("warmup_steps", 0), ("dqn_steps", 1),
                         ("dqn_sessions", 1), ("text_tail_steps", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
        for name in ("eval_sessions", "dqn_batch_size"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be None or an int >= 1, got {v!r}")

    @property
    def seeds(self) -> SeedPlan:
        """Tuning (:data:`TUNING_SEEDS`) and reporting seeds; raises if they overlap."""
        return SeedPlan(tuning=TUNING_SEEDS, reporting=tuple(self.reporting_seeds))

    @property
    def n_eval_sessions(self) -> int:
        """Session slots of the evaluation world."""
        return self.eval_sessions or make_config(PRESET).n_recommenders

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``results.json``."""
        return dataclasses.asdict(self)


QUICK: dict[str, Any] = dict(reporting_seeds=REPORTING_SEEDS[:2], eval_steps=30, dqn_steps=480,
                             dqn_sessions=16, dqn_batch_size=32, text_tail_steps=200)
"""Overrides of ``--quick`` (smoke runs and tests: seconds without MiniLM)."""


def study_spec(*, quick: bool = False, **overrides: Any) -> Study:
    """The full study, or the quick one, with ``overrides`` (``None`` values are ignored)."""
    fields = dict(QUICK) if quick else {}
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return Study(**fields)


def preset_config(encoder: str) -> EnvConfig:
    """The ``cold_start`` preset with content encoder ``encoder``."""
    return make_config(PRESET, content_encoder=encoder)


def dqn_hparams(spec: Study) -> dict[str, Any]:
    """The DQN's hyperparameters: the table's, :data:`DQN_OVERRIDES`, then the budget's
    (batch size, exploration over half the budget, learning from at most a quarter in)."""
    hp = learner_hparams("dqn", PRESET)
    hp.update(DQN_OVERRIDES)
    if spec.dqn_batch_size is not None:
        hp["batch_size"] = spec.dqn_batch_size
    hp["exploration_steps"] = max(spec.dqn_steps // 2, 1)
    hp["learning_starts"] = max(1, min(hp["learning_starts"], spec.dqn_steps // 4))
    return hp


def linucb_dim(cfg: EnvConfig) -> int:
    """LinUCB's ``outer`` feature size for ``cfg``'s content."""
    d = ObsLayout.from_config(cfg).content_dim
    return d * (cfg.n_topics + 1) + 2


def make_recommender(name: str, cfg: EnvConfig, seed: int) -> Any:
    """A recommender of the study (not the DQN, which is trained: :func:`train_dqn`)."""
    return make_learner(name, cfg, seed=seed, **RECOMMENDER_KWARGS.get(name, {}))


# ------------------------------------------------------------------------- shared encoders
_ENCODERS: dict[str, ContentEncoder] = {}
"""This process's encoders by name. Every world of the process is given the same one, so a
text MiniLM embedded once is never embedded again (encoders keep no state but that cache)."""


def shared_encoder(name: str) -> ContentEncoder:
    """This process's encoder for :func:`preset_config` ``(name)``, built on first use."""
    enc = _ENCODERS.get(name)
    if enc is None:
        enc = _ENCODERS[name] = content_encoder(preset_config(name))
    return enc


def _minilm_cache_size() -> int:
    # the encoder's embedding cache (text -> vector) has no public size: read the dict
    return len(shared_encoder("minilm")._cache)


def _minilm_model_loaded() -> bool:
    from recsim_env.content import load_minilm_model

    return load_minilm_model.cache_info().currsize > 0


def load_minilm_embeddings(texts: list[str] | None, emb: np.ndarray | None) -> None:
    """Pool initializer: put pre-computed MiniLM embeddings into this process's encoder."""
    if texts:
        # no public way to seed the cache: the pre-pass embedded these texts with the same
        # model and projection as this encoder would
        shared_encoder("minilm")._cache.update(zip(texts, emb, strict=True))


# ------------------------------------------------------------------------- one run
def train_dqn(spec: Study, cfg: EnvConfig, seed: int, encoder: ContentEncoder
              ) -> tuple[Any, dict[str, Any]]:
    """Train the DQN with the Runner on the training world of run seed ``seed``."""
    plan = spec.seeds
    dqn = make_learner("dqn", cfg, seed=plan.world(TRAIN, seed), total_steps=spec.dqn_steps,
                       **dqn_hparams(spec))
    t0 = time.perf_counter()
    # the run directory holds only logs (no checkpoints: they would hold the replay buffer)
    with tempfile.TemporaryDirectory(prefix="cold_start_dqn_", ignore_cleanup_errors=True
                                     ) as run_root:
        run = RunConfig(total_steps=spec.dqn_steps, n_sessions=spec.dqn_sessions,
                        seed=plan.world(TRAIN, seed), eval_seeds=(plan.world(CURVE, seed),),
                        eval_steps=1, log_every=spec.dqn_steps, run_root=run_root, algo="dqn",
                        scenario=f"{PRESET}_{cfg.content_encoder}", progress=False,
                        save_checkpoints=False)
        runner = Runner(cfg, {"recommender": dqn}, run, encoder=encoder)
        out = runner.train()
        runner.close()
    return dqn, {"train_steps": out["steps"], "train_seconds": time.perf_counter() - t0,
                 "train_curve_return": out["eval"]["mean_reward"]}


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """One (encoder, recommender, run seed) cell: train if needed, evaluate, time it."""
    spec: Study = job["spec"]
    enc_name, name = job["encoder"], job["recommender"]
    (seed,) = spec.seeds.check_reporting((job["seed"],))
    cfg = preset_config(enc_name)
    encoder = shared_encoder(enc_name)
    minilm = enc_name == "minilm"
    cache_before = _minilm_cache_size() if minilm else 0
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if name == "dqn":
        policy, extra = train_dqn(spec, cfg, seed, encoder)
        online = False  # frozen and greedy
    else:
        policy = make_recommender(name, cfg, seed=SeedPlan.world(TRAIN, seed))
        online = True  # as deployed: exploring and learning while serving
    metrics = evaluate(policy, cfg, seed=SeedPlan.world(EVAL, seed),
                       n_sessions=spec.n_eval_sessions, steps=spec.eval_steps,
                       warmup_steps=spec.warmup_steps, explore=online, learn=online,
                       ground_truth=False, encoder=encoder)
    if minilm:
        extra["minilm_cache_misses"] = _minilm_cache_size() - cache_before
        extra["minilm_model_loaded"] = _minilm_model_loaded()
    return {"encoder": "-" if job.get("reference") else enc_name, "recommender": name,
            "seed": seed, "eval_world": SeedPlan.world(EVAL, seed),
            "train_world": SeedPlan.world(TRAIN, seed),
            "metrics": {k: metrics[k] for k in (*METRICS, "sessions", "censored_sessions")},
            "seconds": time.perf_counter() - t0, **extra}


def plan_jobs(spec: Study) -> tuple[list[dict[str, Any]], list[str]]:
    """The job list (DQN and MiniLM first: the longest) and the cells skipped, with why."""
    jobs: list[dict[str, Any]] = []
    skipped: list[str] = []
    seeds = spec.seeds.reporting
    for enc in spec.encoders:
        cfg = preset_config(enc)
        for rec in spec.recommenders:
            if rec == "linucb" and linucb_dim(cfg) > LINUCB_MAX_DIM:
                skipped.append(f"linucb x {enc} (ridge dimension {linucb_dim(cfg):,} > "
                               f"{LINUCB_MAX_DIM}: one matrix inverse per step)")
                continue
            jobs += [dict(spec=spec, encoder=enc, recommender=rec, seed=s) for s in seeds]
    for ref in REFERENCES:  # encoder-free: run on the `none` world (same items as text ones)
        jobs += [dict(spec=spec, encoder="none", recommender=ref, seed=s, reference=True)
                 for s in seeds]
    jobs.sort(key=lambda j: (j["recommender"] != "dqn", j["encoder"] != "minilm"))
    return jobs, skipped


# ------------------------------------------------------------------------- MiniLM pre-pass
def world_texts(seed: int, steps: int) -> list[str]:
    """Descriptions of every item a ``cold_start`` world of ``seed`` holds in ``steps`` steps.

    Arrivals and descriptions come from the world's item and content streams, which no policy
    touches, and the hashing and MiniLM encoders draw the same descriptions: so a cheap hashing
    world with one session slot and random slates lists exactly the MiniLM world's texts.
    """
    cfg = preset_config("hashing")
    world = World(cfg, n_sessions=1, encoder=shared_encoder("hashing"))
    world.reset(seed)
    rollout = Rollout(world, [], np.random.default_rng(0))  # built-in random slates
    cat = world.catalog
    tokens = [cat.text_tokens[cat.active]]
    for _ in range(steps):
        rollout.step(explore=False, learn=False)
        cat = world.catalog
        tokens.append(cat.text_tokens[cat.active & (cat.born_at == world.t - 1)])
    return ItemDescriptions(np.concatenate(tokens), make_item_vocabulary(cfg.n_topics)).texts()


def _world_texts_job(job: tuple[int, int]) -> list[str]:
    return world_texts(*job)


def _encode_chunk(texts: list[str]) -> tuple[list[str], np.ndarray, float, float]:
    from recsim_env.content import load_minilm_model

    t0 = time.perf_counter()
    load_minilm_model()
    t1 = time.perf_counter()
    emb = shared_encoder("minilm").encode_texts(texts)
    return texts, emb, t1 - t0, time.perf_counter() - t1


def minilm_worlds(spec: Study) -> list[tuple[int, int]]:
    """(world seed, world steps) of every MiniLM world the jobs build: the evaluation worlds,
    and with the DQN its training and end-of-training evaluation worlds."""
    plan = spec.seeds
    window = spec.warmup_steps + spec.eval_steps + spec.text_tail_steps
    worlds = [(plan.world(EVAL, s), window) for s in plan.reporting]
    if "dqn" in spec.recommenders:
        train_steps = -(-spec.dqn_steps // spec.dqn_sessions)
        worlds += [(plan.world(TRAIN, s), train_steps) for s in plan.reporting]
        worlds += [(plan.world(CURVE, s), 1 + spec.text_tail_steps) for s in plan.reporting]
    return worlds


def pre_encode_minilm(spec: Study, workers: int, progress: bool = False
                      ) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """List the texts of every MiniLM world, embed the distinct ones once; returns them and
    the measured overhead."""
    t0 = time.perf_counter()
    worlds = minilm_worlds(spec)
    lists = run_pool(_world_texts_job, worlds, workers=workers, progress=progress,
                     desc="list texts")
    t_list = time.perf_counter() - t0
    n_items = sum(len(x) for x in lists)
    distinct = list(dict.fromkeys(t for x in lists for t in x))
    t1 = time.perf_counter()
    n_chunks = max(1, min(workers, len(distinct)))
    chunks = [distinct[k::n_chunks] for k in range(n_chunks)]
    results = run_pool(_encode_chunk, chunks, workers=min(workers, n_chunks),
                       progress=progress, desc="embed texts")
    texts = [t for r in results for t in r[0]]
    dim = shared_encoder("minilm").dim
    emb = (np.concatenate([r[1] for r in results]) if texts
           else np.zeros((0, dim), np.float32))
    encode_cpu = sum(r[3] for r in results)
    overhead = {
        "worlds": len(worlds),
        "items": n_items,
        "distinct_texts_per_world_sum": sum(len(set(x)) for x in lists),
        "distinct_texts": len(distinct),
        "cache_hit_rate": 1.0 - len(distinct) / max(n_items, 1),
        "processes_loading_model": len(results),
        "model_load_seconds": [r[2] for r in results],
        "encode_cpu_seconds": encode_cpu,
        "ms_per_distinct_text": 1000.0 * encode_cpu / max(len(distinct), 1),
        "list_texts_wall_seconds": t_list,
        "encode_wall_seconds": time.perf_counter() - t1,
        "total_wall_seconds": time.perf_counter() - t0,
    }
    return texts, emb, overhead


# ------------------------------------------------------------------------- statistics
def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (encoder, recommender): per-seed values, mean and 95% interval of every metric."""
    cells: dict[str, dict[str, Any]] = {}
    for r in sorted(runs, key=lambda r: r["seed"]):
        key = f"{r['encoder']}/{r['recommender']}"
        cell = cells.setdefault(key, {"encoder": r["encoder"], "recommender": r["recommender"],
                                      "privileged": r["recommender"] in PRIVILEGED,
                                      "seeds": [], "per_seed": {m: [] for m in METRICS},
                                      "seconds": []})
        cell["seeds"].append(r["seed"])
        cell["seconds"].append(r["seconds"])
        for m in METRICS:
            cell["per_seed"][m].append(r["metrics"][m])
    for cell in cells.values():
        cell["mean"], cell["ci95"] = {}, {}
        for m in METRICS:
            cell["mean"][m], cell["ci95"][m] = mean_ci(cell["per_seed"][m])
    return cells


def ratio_stats(cells: dict[str, Any], recommender: str, num: str, den: str) -> dict[str, Any]:
    """Cold-start CTR ratio ``num / den`` of one recommender: ratio of the means, and the
    mean and interval of the per-seed ratios (paired by seed)."""
    a, b = cells.get(f"{num}/{recommender}"), cells.get(f"{den}/{recommender}")
    nan = float("nan")
    if a is None or b is None:
        return {"ratio_of_means": nan, "mean": nan, "ci95": nan, "per_seed": []}
    x = dict(zip(a["seeds"], a["per_seed"]["cold_start_ctr"], strict=True))
    y = dict(zip(b["seeds"], b["per_seed"]["cold_start_ctr"], strict=True))
    common = [s for s in x if s in y]
    xs = np.array([x[s] for s in common], np.float64)
    ys = np.array([y[s] for s in common], np.float64)
    mean, half = ratio_ci(xs, ys)
    den_mean = b["mean"]["cold_start_ctr"]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_seed = np.where(ys != 0, xs / ys, np.nan)
    return {"ratio_of_means": a["mean"]["cold_start_ctr"] / den_mean if den_mean else nan,
            "mean": mean, "ci95": half, "per_seed": per_seed.tolist(), "seeds": common}


def lift_share(cells: dict[str, Any], recommender: str) -> float:
    """(minilm - none) / (topic - none) of the cold-start CTR: the share of the privileged
    encoder's lift over no content that MiniLM recovers. NaN unless the topic encoder's lift
    exceeds the sum of the two 95% half-widths (a share of noise means nothing)."""
    try:
        c = {e: cells[f"{e}/{recommender}"] for e in ("minilm", "topic", "none")}
    except KeyError:
        return float("nan")
    g = {e: c[e]["mean"]["cold_start_ctr"] for e in c}
    noise = np.nan_to_num(c["topic"]["ci95"]["cold_start_ctr"]) + np.nan_to_num(
        c["none"]["ci95"]["cold_start_ctr"])
    gap = g["topic"] - g["none"]
    return (g["minilm"] - g["none"]) / gap if gap > noise else float("nan")


def target_verdict(cells: dict[str, Any], recommender: str) -> dict[str, Any]:
    """The target for ``recommender``: MiniLM cold-start CTR >= 1.5x no content and within
    10% of the topic reference (on the means)."""
    vs_none = ratio_stats(cells, recommender, "minilm", "none")
    vs_topic = ratio_stats(cells, recommender, "minilm", "topic")
    r1, r2 = vs_none["ratio_of_means"], vs_topic["ratio_of_means"]
    ok1 = bool(np.isfinite(r1) and r1 >= TARGET_RATIO_NONE)
    ok2 = bool(np.isfinite(r2) and abs(r2 - 1.0) <= TARGET_WITHIN_TOPIC)
    return {"recommender": recommender, "minilm_over_none": vs_none,
            "minilm_over_topic": vs_topic, "lift_share": lift_share(cells, recommender),
            "meets_1_5x_none": ok1, "within_10pct_topic": ok2, "met": ok1 and ok2}


# ------------------------------------------------------------------------- the study
def run_study(spec: Study, *, out: str | Path = RESULTS_ROOT / "cold_start", workers: int = 1,
              progress: bool = True, command: str = "") -> dict[str, Any]:
    """Run every job of ``spec``, write ``results.json``, ``results.md`` and ``results.png``
    into ``out`` and return the result."""
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs, skipped = plan_jobs(spec)
    texts = emb = overhead = None
    if "minilm" in spec.encoders:
        texts, emb, overhead = pre_encode_minilm(spec, workers, progress)
    runs = run_pool(run_job, jobs, workers=workers, progress=progress, desc="cold start",
                    initializer=load_minilm_embeddings, initargs=(texts, emb))
    cells = summarize(runs)
    targets = [target_verdict(cells, r) for r in spec.recommenders]
    if overhead is not None:
        mruns = [r for r in runs if r["encoder"] == "minilm"]
        overhead["job_cache_misses"] = int(sum(r.get("minilm_cache_misses", 0) for r in mruns))
        overhead["job_model_loads"] = int(sum(bool(r.get("minilm_model_loaded")) for r in mruns))
    result = {
        "preset": PRESET,
        "config": make_config(PRESET).to_dict(),
        "spec": spec.to_dict(),
        "seeds": spec.seeds.to_dict(),
        "n_sessions": spec.n_eval_sessions,
        "dqn_hparams": dqn_hparams(spec),
        "dqn_overrides": dict(DQN_OVERRIDES),
        "encoders": list(spec.encoders),
        "recommenders": list(spec.recommenders),
        "skipped": skipped,
        "cells": cells,
        "targets": targets,
        "content_recommenders": list(CONTENT_RECOMMENDERS),
        "target_met": any(t["met"] for t in targets if t["recommender"] in CONTENT_RECOMMENDERS),
        "minilm_overhead": overhead,
        "runs": runs,
        "workers": workers,
        "command": command,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), Python "
                   f"{platform.python_version()}",
        "wall_seconds": time.perf_counter() - t0,
    }
    write_json(out / "results.json", result)
    write_markdown(out / "results.md", result)
    write_plot(out / "results.png", result)
    return result


def replot(out: str | Path = RESULTS_ROOT / "cold_start") -> dict[str, Any]:
    """Rewrite ``results.md`` and ``results.png`` from ``out/results.json``; returns it."""
    import json

    out = Path(out)
    result = from_json(json.loads((out / "results.json").read_text()))
    write_markdown(out / "results.md", result)
    write_plot(out / "results.png", result)
    return result


# ------------------------------------------------------------------------- outputs
_LABELS = {"cold_start_ctr": "cold-start CTR", "time_to_first_click": "time to 1st click",
           "return": "session return", "ctr": "CTR", "cold_start_share": "cold share"}


def _num(x: float, digits: int) -> str:
    return f"{x:.{digits}f}" if np.isfinite(x) else "n/a"


def _row_label(cell: dict[str, Any]) -> str:
    return cell["recommender"] + (" (privileged)" if cell["privileged"] else "")


def _reading(cells: dict[str, Any]) -> list[str]:
    """Headroom facts computed from the table (where the cells exist)."""

    def ctr(key: str) -> float:
        cell = cells.get(key)
        return cell["mean"]["cold_start_ctr"] if cell else float("nan")

    rnd, oracle = ctr("-/random"), ctr("-/myopic_oracle")
    out = ["", "## Headroom", ""]
    slate = make_config(PRESET).slate_size
    out.append(f"- A slate of {slate} gets at most one click, so a per-impression CTR cannot "
               f"exceed 1/{slate} = {1 / slate:.3f}; random slates get {_num(rnd, 4)}.")
    if np.isfinite(rnd) and np.isfinite(oracle) and rnd > 0:
        out.append(f"- The privileged myopic oracle (true interest and quality; it maximises "
                   f"expected watch time) reaches {oracle / rnd:.3f}x random's cold-start CTR.")
    probe = {e: ctr(f"{e}/interest_probe") for e in ENCODERS}
    if all(np.isfinite(v) for v in probe.values()) and probe["none"] > 0:
        out.append(
            "- With a perfect user model (`interest_probe`: true interest, ranked by affinity), "
            "content alone gives "
            + ", ".join(f"{e} {probe[e] / probe['none']:.3f}x" for e in ("minilm", "hashing",
                                                                              "topic"))
            + " the cold-start CTR with no content: the ceiling of what an encoder can buy "
              "here, against the learned user models above.")
    return out


def _protocol(result: dict[str, Any]) -> str:
    spec, seeds = result["spec"], result["seeds"]
    w = seeds["world_seeds"]
    hp = result["dqn_hparams"]
    over = ", ".join(f"{k} {v:,}" for k, v in result["dqn_overrides"].items())
    return (
        f"Mean ± 95% t interval over {len(seeds['reporting_seeds'])} reporting seeds "
        f"({_seed_list(seeds['reporting_seeds'])}: evaluation worlds {_seed_list(w[EVAL])}, "
        f"DQN training worlds {_seed_list(w[TRAIN])}); tuning seeds "
        f"({_seed_list(seeds['tuning_seeds'])}) are never reported. Each evaluation is "
        f"`agents.evaluation.evaluate` on `World(cfg)` with {result['n_sessions']} session "
        f"slots: {spec['warmup_steps']} warm-up steps, then every session that starts in the "
        f"next {spec['eval_steps']} world steps, followed to its end. Online recommenders "
        f"explore and learn while they serve; the DQN (`configs/learners/dqn.toml` with this "
        f"study's overrides: {over}; batch {hp['batch_size']}, exploration over "
        f"{hp['exploration_steps']:,} steps) is trained with the Runner for "
        f"{spec['dqn_steps']:,} env steps ({spec['dqn_sessions']} slots) and evaluated greedy "
        f"and frozen.")


def _seed_list(seeds: list[int]) -> str:
    seeds = [int(s) for s in seeds]
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}..{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    """results.md: the table, the ratios, the target verdict, the overhead."""
    cells = result["cells"]
    lines = [
        f"# Cold start with LLM-assisted content (`{PRESET}` preset)", "",
        _protocol(result), "",
        "| encoder | recommender | " + " | ".join(_LABELS[m] for m in METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    order = {r: k for k, r in enumerate(RECOMMENDERS + REFERENCES)}
    enc_order = {e: k for k, e in enumerate((*ENCODERS, "-"))}
    for cell in sorted(cells.values(), key=lambda c: (order[c["recommender"]] >= len(RECOMMENDERS),
                                                      enc_order[c["encoder"]],
                                                      order[c["recommender"]])):
        vals = [fmt_ci(cell["mean"][m], cell["ci95"][m]) for m in METRICS]
        lines.append(f"| {cell['encoder']} | {_row_label(cell)} | " + " | ".join(vals) + " |")
    if result.get("skipped"):
        lines += ["", "Not run: " + "; ".join(result["skipped"]) + "."]
    lines += ["", "## Target: MiniLM cold-start CTR >= 1.5x no content, within 10% of `topic`",
              "", "Ratios of the seed means (and mean ± t interval of the per-seed ratios, "
              "paired by seed).", "",
              "| recommender | minilm / none | minilm / topic | lift share "
              "(minilm-none)/(topic-none) | >= 1.5x none | within 10% of topic | met |",
              "|---|---|---|---|---|---|---|"]
    yes = {True: "yes", False: "no"}
    for v in result["targets"]:
        a, b = v["minilm_over_none"], v["minilm_over_topic"]
        if not (np.isfinite(a["ratio_of_means"]) or np.isfinite(b["ratio_of_means"])):
            continue  # no MiniLM cell (not run)
        lines.append(
            f"| {v['recommender']}{' (privileged)' if v['recommender'] in PRIVILEGED else ''} | "
            f"{_num(a['ratio_of_means'], 3)} ({fmt_ci(a['mean'], a['ci95'])}) | "
            f"{_num(b['ratio_of_means'], 3)} ({fmt_ci(b['mean'], b['ci95'])}) | "
            f"{_num(v['lift_share'], 2)} | {yes[v['meets_1_5x_none']]} | "
            f"{yes[v['within_10pct_topic']]} | {yes[v['met']]} |")
    verdict = {v["recommender"]: v["met"] for v in result["targets"]
               if v["recommender"] in CONTENT_RECOMMENDERS}
    met = [f"`{r}`" for r, ok in verdict.items() if ok]
    missed = [f"`{r}`" for r, ok in verdict.items() if not ok]
    lines += ["", f"Content-based recommenders: target met by {', '.join(met) or 'none'}"
              + (f"; not met by {', '.join(missed)}" if missed else "") + "."]
    lines += _reading(cells)
    ov = result.get("minilm_overhead")
    if isinstance(ov, dict):  # None (no MiniLM cells) reads back from JSON as NaN
        lines += ["", "## MiniLM overhead", "",
                  f"- {ov['items']:,} item texts in {ov['worlds']} MiniLM worlds, "
                  f"{ov['distinct_texts']:,} distinct (cache hit rate {ov['cache_hit_rate']:.0%};"
                  f" {ov['distinct_texts_per_world_sum']:,} if each world had its own cache).",
                  f"- model loaded in {ov['processes_loading_model']} process(es): "
                  + ", ".join(f"{s:.1f} s" for s in ov["model_load_seconds"]) + ".",
                  f"- embedding: {ov['encode_cpu_seconds']:.1f} CPU-s, "
                  f"{ov['ms_per_distinct_text']:.1f} ms per distinct text; listing the texts "
                  f"{ov['list_texts_wall_seconds']:.1f} s; whole pre-pass "
                  f"{ov['total_wall_seconds']:.1f} s wall of {result['wall_seconds']:.0f} s.",
                  f"- job workers: {ov.get('job_cache_misses', 0)} cache misses, model loaded "
                  f"in {ov.get('job_model_loads', 0)} job(s)."]
    lines += ["", f"Command: `{result['command']}`; wall time {result['wall_seconds']:.0f} s "
              f"with {result['workers']} worker(s) on {result['machine']}.", ""]
    path.write_text("\n".join(lines))


def write_plot(path: Path, result: dict[str, Any]) -> None:
    """results.png: one panel per headline metric, bars = encoders, groups = recommenders."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = result["cells"]
    recs = [r for r in RECOMMENDERS if any(c["recommender"] == r for c in cells.values())]
    encs = [e for e in ENCODERS if any(c["encoder"] == e for c in cells.values())]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    width = 0.8 / max(len(encs), 1)
    for ax, metric in zip(axes, ("cold_start_ctr", "time_to_first_click", "return"),
                          strict=True):
        for k, enc in enumerate(encs):
            means, errs, xs = [], [], []
            for j, rec in enumerate(recs):
                cell = cells.get(f"{enc}/{rec}")
                if cell is None:
                    continue
                xs.append(j + (k - (len(encs) - 1) / 2) * width)
                means.append(cell["mean"][metric])
                errs.append(np.nan_to_num(cell["ci95"][metric]))
            ax.bar(xs, means, width, yerr=errs, capsize=2, label=enc)
        for ref, style in (("random", "--"), ("myopic_oracle", ":")):
            cell = cells.get(f"-/{ref}")
            if cell is not None and np.isfinite(cell["mean"][metric]):
                ax.axhline(cell["mean"][metric], color="k", ls=style, lw=1, label=ref)
        ax.set_xticks(range(len(recs)))
        ax.set_xticklabels([r.replace("_", "\n") for r in recs], fontsize=8)
        ax.set_title(_LABELS[metric])
        if metric == "cold_start_ctr":
            lo = np.nanmin([c["mean"][metric] for c in cells.values()])
            if np.isfinite(lo):
                ax.set_ylim(max(0.0, lo - 0.03), None)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{PRESET}: content encoders x recommenders (mean ± 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
