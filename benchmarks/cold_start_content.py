"""Cold start with LLM-assisted item content: does a better encoder help recommenders?

On the ``cold_start`` preset, every content encoder (``hashing``, ``minilm``, ``topic`` = the
privileged noisy topic mixture, ``none`` = no content) is crossed with these recommenders:

* ``content_similarity``: the stock :class:`agents.baselines.ContentSimilarity` with the
  ``learned`` profile for every encoder (a per-user decayed sum of the content of the items
  the user clicked, keyed by user id), so the encoders are compared under one user model. It
  learns online on the evaluation world.
* ``content_projected``: :class:`agents.baselines.ProjectedContentSimilarity`, the same cosine
  similarity, but with one user model for every encoder (the observed history, in topic
  space) and items mapped into topic space by a ridge regression learned online from the
  observation alone.
* ``linucb``: the stock LinUCB on ``content x history`` features, online; only where its ridge
  dimension stays small (``topic``, ``none``): with 64 or 384 content dims it is 706 or 4,226
  and costs >100 ms per step.
* ``dqn``: our deep Q recommender (``make_learner("dqn", ...)``), trained with
  :class:`agents.runner.Runner` on a training seed, then evaluated greedy and frozen.
* ``interest_probe`` (privileged diagnostic): the true user interest dotted with the content
  mapped into topic space as in ``content_projected``. It isolates the encoder from user
  modelling: what the content alone tells about a cold item, given a perfect user model.

Reference rows, encoder-free: ``random`` and the privileged ``myopic_oracle``.

Protocol: evaluation worlds are ``World(cfg)`` with the preset's ``n_recommenders`` session
slots and seeds ``EVAL_SEED0 + i``; training worlds (DQN) use seeds ``i``: disjoint. Every run
reports the world's own metrics over the whole evaluation episode: ``cold_start_ctr``,
``time_to_first_click`` (steps from an item's arrival to its first click, over items that
arrived during the run and were clicked), ``session_return`` (mean over sessions that ended)
and ``ctr``. Tables give the mean over seeds and a 95% Student-t interval.

MiniLM cost: item texts do not depend on the policy (the catalog streams are separate from the
choice streams), so the script lists every text the runs will need (cheap, with the hashing
encoder, which draws the same descriptions), embeds the distinct ones once (split over the
worker processes, the model loaded once per process) and hands the embeddings to the job
workers, whose shared per-process encoder then never runs the model. The overhead is measured
and reported.

Usage::

    python benchmarks/cold_start_content.py --workers 2   # full run (13 min on 2 busy cores)
    python benchmarks/cold_start_content.py --quick       # smoke run (seconds)
    python benchmarks/cold_start_content.py --replot      # rewrite md + png from results.json

Outputs (``--out``, default ``benchmarks/results/cold_start``): ``results.md``,
``results.json`` and ``results.png``.
"""

from __future__ import annotations

import os

# One BLAS / OpenMP thread per process: with other processes on the cores, multi-threaded BLAS
# spin-waits (LinUCB's solves ran 40x slower without this).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, as_completed  # noqa: E402
from dataclasses import asdict, dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # runnable as a plain script
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import recsim_env.world as world_mod  # noqa: E402
from agents.baselines import (  # noqa: E402
    ContentSimilarity,
    ProjectedContentSimilarity,
    policy_steps,
)
from agents.factory import make_learner  # noqa: E402
from agents.runner import RunConfig, Runner  # noqa: E402
from recsim_env.config import EnvConfig, make_config  # noqa: E402
from recsim_env.content import ItemDescriptions, make_item_vocabulary  # noqa: E402
from recsim_env.world import World  # noqa: E402

log = logging.getLogger(__name__)

PRESET = "cold_start"
ENCODERS = ("hashing", "minilm", "topic", "none")
RECOMMENDERS = ("content_similarity", "content_projected", "linucb", "dqn", "interest_probe")
REFERENCES = ("random", "myopic_oracle")
PRIVILEGED = ("interest_probe", "myopic_oracle")
CONTENT_RECOMMENDERS = ("content_similarity", "content_projected")
"""The content-based recommenders the target is about (non-privileged, content only)."""
METRICS = ("cold_start_ctr", "time_to_first_click", "session_return", "ctr",
           "cold_start_impression_share")
EVAL_SEED0 = 1000
LINUCB_MAX_DIM = 256
"""LinUCB re-inverts its (D, D) ridge matrix every step: run it only where D is this small."""
TARGET_RATIO_NONE = 1.5
TARGET_WITHIN_TOPIC = 0.10
OUT_DEFAULT = ROOT / "benchmarks" / "results" / "cold_start"

# Our DQN with the catalog-preset settings of benchmarks/learning_qlearners.py
# (_DEEP_CATALOG), scaled to this budget: a smaller replay (MiniLM observations are 3,903
# floats; the Runner's checkpoint holds the replay) and exploration over half the budget.
DQN_PARAMS: dict[str, Any] = dict(
    gamma=0.95, lr=1e-3, batch_size=256, buffer_size=10_000, learning_starts=1_000,
    gradient_steps=2, target_update_interval=1, tau=0.01, exploration_final_eps=0.05,
    reward_scale=0.5, hidden=(128, 128), cross_dim=32,
)


@dataclass(frozen=True)
class Budget:
    """Sizes of one benchmark run.

    Attributes:
        seeds: evaluation seeds (and as many training seeds).
        eval_steps: world steps per evaluation episode.
        dqn_steps: env steps (session-steps) of DQN training.
        dqn_sessions: session slots of the DQN training world.
        dqn_batch_size: replayed transitions per DQN gradient step.
    """

    seeds: int = 5
    eval_steps: int = 1000
    dqn_steps: int = 20_000
    dqn_sessions: int = 64
    dqn_batch_size: int = 256


QUICK = Budget(seeds=2, eval_steps=30, dqn_steps=480, dqn_sessions=16, dqn_batch_size=32)


# ------------------------------------------------------------------------- recommenders
class InterestProbe(ProjectedContentSimilarity):
    """Privileged diagnostic: ``true interest . (c M)``, with ``M`` learned as in the parent.

    A perfect user model, so the cold-start CTR depends only on what the content tells about
    an item's topics: an upper reference per encoder.
    """

    name = "interest_probe"
    privileged = True

    def _scores(self, user, cand, context, explore):
        self._need_world(context)
        pred = self.topic_view(cand)
        if pred is None:
            return np.zeros(cand.shape[:2])
        interest = context.world.sessions.interest[context.slots]
        return np.einsum("nt,nct->nc", interest, pred)


def linucb_dim(cfg: EnvConfig) -> int:
    """LinUCB's ``outer`` feature size for ``cfg``'s content."""
    d = world_mod.ObsLayout.from_config(cfg).content_dim
    return d * (cfg.n_topics + 1) + 2


def make_recommender(name: str, cfg: EnvConfig, seed: int) -> Any:
    """Build a recommender of the benchmark (not the DQN, which is trained separately)."""
    layout = world_mod.ObsLayout.from_config(cfg)
    if name == "content_similarity":  # one user model for every encoder
        return ContentSimilarity(cfg, layout, seed=seed, profile="learned")
    if name == "interest_probe":
        return InterestProbe(cfg, layout, seed=seed)
    return make_learner(name, cfg, seed=seed)


# ------------------------------------------------------------------------- shared encoders
_ORIGINAL_CONTENT_ENCODER = world_mod.content_encoder
_SHARED_ENCODERS: dict[tuple, Any] = {}


def _shared_content_encoder(config: EnvConfig) -> Any:
    """One encoder per (name, topics, dim, noise) and process, so a text embedded by one world
    is never embedded again by another. Encoders keep no state but that cache."""
    key = (config.content_encoder, config.n_topics, config.content_dim,
           config.content_noise_value)
    enc = _SHARED_ENCODERS.get(key)
    if enc is None:
        enc = _SHARED_ENCODERS[key] = _ORIGINAL_CONTENT_ENCODER(config)
    return enc


def install_shared_encoders() -> None:
    """Make every ``World`` of this process reuse its encoder (and so the MiniLM cache)."""
    world_mod.content_encoder = _shared_content_encoder


@contextlib.contextmanager
def shared_encoders() -> Iterator[None]:
    """:func:`install_shared_encoders` for the duration of the block, then restore."""
    previous = world_mod.content_encoder
    install_shared_encoders()
    try:
        yield
    finally:
        world_mod.content_encoder = previous


def minilm_cache() -> dict[str, np.ndarray]:
    """The text -> embedding cache of this process's shared MiniLM encoder (default config)."""
    return _shared_content_encoder(make_config(PRESET, content_encoder="minilm"))._cache


def _minilm_model_loaded() -> bool:
    from recsim_env.content import load_minilm_model

    return load_minilm_model.cache_info().currsize > 0


# ------------------------------------------------------------------------- evaluation
def evaluate(policy: Any, cfg: EnvConfig, seed: int, steps: int, *, learn: bool,
             explore: bool) -> dict[str, float]:
    """Run ``policy`` on ``World(cfg)`` (the preset's session slots) for ``steps`` world steps.

    Acting, then (with ``learn``) ``policy.update`` on the :class:`Transition`, as
    :func:`agents.baselines.evaluate_policy` does; the metrics are the world's own
    (:meth:`World.metrics`) over the whole episode.
    """
    world = World(cfg)
    world.reset(seed)
    for _ in policy_steps(policy, world, steps, learn=learn, explore=explore):
        pass
    m = world.metrics()
    return {k: m[k] for k in (*METRICS, "sessions")}


def train_dqn(cfg: EnvConfig, seed: int, eval_seed: int, budget: Budget) -> tuple[Any, dict]:
    """Train our DQN with the Runner on world seed ``seed`` (never an evaluation seed)."""
    dqn = make_learner("dqn", cfg, seed=seed, total_steps=budget.dqn_steps,
                       **{**DQN_PARAMS, "batch_size": budget.dqn_batch_size,
                          "exploration_steps": max(budget.dqn_steps // 2, 1),
                          "learning_starts": min(DQN_PARAMS["learning_starts"],
                                                 budget.dqn_steps // 4)})
    run_root = tempfile.mkdtemp(prefix="cold_start_dqn_")
    try:
        # The Runner's own end-of-training evaluation is skipped in effect (one step): the
        # comparison below evaluates every recommender the same way.
        run = RunConfig(total_steps=budget.dqn_steps, n_sessions=budget.dqn_sessions, seed=seed,
                        eval_seeds=(eval_seed,), eval_steps=1, log_every=10**9,
                        run_root=run_root, algo="dqn", scenario=f"{PRESET}_{cfg.content_encoder}",
                        progress=False, save_checkpoints=False)
        runner = Runner(cfg, {"recommender": dqn}, run)
        out = runner.train()
        runner.close()
        recent = list(getattr(runner, "_ep_returns", {}).get("recommender", []))
        info = {"train_steps": out["steps"],
                "train_ep_rew_mean": float(np.mean(recent)) if recent else float("nan")}
    finally:
        shutil.rmtree(run_root, ignore_errors=True)  # checkpoints hold the replay buffer
    return dqn, info


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """One (encoder, recommender, seed index) cell; returns its metrics and timings."""
    torch.set_num_threads(1)
    install_shared_encoders()
    budget = Budget(**job["budget"])
    cfg = make_config(PRESET, content_encoder=job["encoder"])
    i = job["seed_index"]
    eval_seed, train_seed = EVAL_SEED0 + i, i
    name = job["recommender"]
    t0 = time.perf_counter()
    minilm = job["encoder"] == "minilm"
    cache_before = len(minilm_cache()) if minilm else 0
    extra: dict[str, Any] = {}
    if name == "dqn":
        policy, extra = train_dqn(cfg, train_seed, eval_seed, budget)
        extra["train_seconds"] = time.perf_counter() - t0
        metrics = evaluate(policy, cfg, eval_seed, budget.eval_steps, learn=False, explore=False)
    else:
        policy = make_recommender(name, cfg, seed=train_seed)
        metrics = evaluate(policy, cfg, eval_seed, budget.eval_steps, learn=True, explore=True)
    if minilm:
        extra["minilm_cache_misses"] = len(minilm_cache()) - cache_before
        extra["minilm_model_loaded"] = _minilm_model_loaded()
    return {**job, "eval_seed": eval_seed, "train_seed": train_seed, "metrics": metrics,
            "seconds": time.perf_counter() - t0, **extra}


# ------------------------------------------------------------------------- MiniLM pre-pass
def world_texts(seed: int, steps: int) -> list[str]:
    """Descriptions of every item a ``cold_start`` world of ``seed`` holds in ``steps`` steps.

    Arrivals and descriptions come from the world's item and content streams, which no policy
    touches, and the hashing and MiniLM encoders draw the same descriptions: so a cheap hashing
    world with one session slot and random slates lists exactly the MiniLM world's texts.
    """
    cfg = make_config(PRESET, content_encoder="hashing")
    world = World(cfg, n_sessions=1)
    world.reset(seed)
    rng = np.random.default_rng(0)
    cat = world.catalog
    tokens = [cat.text_tokens[cat.active]]
    for _ in range(steps):
        world.step(np.argsort(rng.random((1, cfg.n_candidates)), axis=1)[:, : cfg.slate_size])
        cat = world.catalog
        tokens.append(cat.text_tokens[cat.active & (cat.born_at == world.t - 1)])
    vocab = make_item_vocabulary(cfg.n_topics)
    return ItemDescriptions(np.concatenate(tokens), vocab).texts()


def _encode_chunk(texts: list[str]) -> tuple[list[str], np.ndarray, float, float]:
    torch.set_num_threads(1)
    from recsim_env.content import load_minilm_model

    t0 = time.perf_counter()
    load_minilm_model()
    t1 = time.perf_counter()
    enc = _shared_content_encoder(make_config(PRESET, content_encoder="minilm"))
    emb = enc.encode_texts(texts)
    return texts, emb, t1 - t0, time.perf_counter() - t1


def _worlds_needed(budget: Budget, recommenders: list[str]) -> list[tuple[int, int]]:
    """(seed, world steps) of every MiniLM world the jobs build (the DQN's Runner also builds
    its evaluation world, but for one step: a prefix of the evaluation world's items)."""
    worlds = [(EVAL_SEED0 + i, budget.eval_steps) for i in range(budget.seeds)]
    if "dqn" in recommenders:
        train_world_steps = -(-budget.dqn_steps // budget.dqn_sessions)
        worlds += [(i, train_world_steps) for i in range(budget.seeds)]
    return worlds


def _init_worker(texts: list[str] | None, emb: np.ndarray | None) -> None:
    torch.set_num_threads(1)
    install_shared_encoders()
    if texts is not None:
        minilm_cache().update(zip(texts, emb, strict=True))


def pre_encode_minilm(budget: Budget, recommenders: list[str], pool: ProcessPoolExecutor | None,
                      workers: int) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """List the texts of every MiniLM world, embed the distinct ones once; returns them and
    the measured overhead."""
    t0 = time.perf_counter()
    worlds = _worlds_needed(budget, recommenders)
    if pool is None:
        lists = [world_texts(s, n) for s, n in worlds]
    else:
        lists = list(pool.map(world_texts, [s for s, _ in worlds], [n for _, n in worlds]))
    t_list = time.perf_counter() - t0
    n_items = sum(len(x) for x in lists)
    distinct = list(dict.fromkeys(t for x in lists for t in x))
    per_world_distinct = sum(len(set(x)) for x in lists)
    t1 = time.perf_counter()
    n_chunks = max(1, min(workers, len(distinct)))
    chunks = [distinct[k::n_chunks] for k in range(n_chunks)]
    if pool is None or n_chunks == 1:
        results = [_encode_chunk(c) for c in chunks]
    else:
        results = list(pool.map(_encode_chunk, chunks))
    texts = [t for r in results for t in r[0]]
    emb = np.concatenate([r[1] for r in results]) if texts else np.zeros((0, 384), np.float32)
    t_encode = time.perf_counter() - t1
    loads = [r[2] for r in results]
    encode_cpu = sum(r[3] for r in results)
    overhead = {
        "worlds": len(worlds),
        "items": n_items,
        "distinct_texts_per_world_sum": per_world_distinct,
        "distinct_texts": len(distinct),
        "cache_hit_rate": 1.0 - len(distinct) / max(n_items, 1),
        "processes_loading_model": len(results),
        "model_load_seconds": loads,
        "encode_cpu_seconds": encode_cpu,
        "ms_per_distinct_text": 1000.0 * encode_cpu / max(len(distinct), 1),
        "list_texts_wall_seconds": t_list,
        "encode_wall_seconds": t_encode,
        "total_wall_seconds": time.perf_counter() - t0,
    }
    return texts, emb, overhead


# ------------------------------------------------------------------------- statistics
def t_ci95(values: list[float]) -> tuple[float, float, int]:
    """(mean, half-width of the 95% Student-t interval, n) over the finite values."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return float("nan"), float("nan"), 0
    mean = float(x.mean())
    if n < 2:
        return mean, float("nan"), n
    half = float(stats.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, half, n


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (encoder, recommender): per-seed values and mean/CI of every metric."""
    cells: dict[str, dict[str, Any]] = {}
    for r in sorted(runs, key=lambda r: r["seed_index"]):
        key = f"{r['encoder']}/{r['recommender']}"
        cell = cells.setdefault(key, {"encoder": r["encoder"], "recommender": r["recommender"],
                                      "privileged": r["recommender"] in PRIVILEGED,
                                      "seeds": [], "per_seed": {m: [] for m in METRICS},
                                      "seconds": []})
        cell["seeds"].append(r["eval_seed"])
        cell["seconds"].append(r["seconds"])
        for m in METRICS:
            cell["per_seed"][m].append(r["metrics"][m])
    for cell in cells.values():
        cell["mean"], cell["ci95"], cell["n"] = {}, {}, {}
        for m in METRICS:
            cell["mean"][m], cell["ci95"][m], cell["n"][m] = t_ci95(cell["per_seed"][m])
    return cells


def ratio_stats(cells: dict[str, Any], recommender: str, num: str, den: str) -> dict[str, Any]:
    """Cold-start CTR ratio ``num / den`` of one recommender: ratio of means, and the mean and
    t interval of the per-seed ratios (paired by evaluation seed)."""
    a, b = cells.get(f"{num}/{recommender}"), cells.get(f"{den}/{recommender}")
    if a is None or b is None:
        return {"ratio_of_means": float("nan"), "mean": float("nan"), "ci95": float("nan"),
                "n": 0}
    x = dict(zip(a["seeds"], a["per_seed"]["cold_start_ctr"], strict=True))
    y = dict(zip(b["seeds"], b["per_seed"]["cold_start_ctr"], strict=True))
    paired = [x[s] / y[s] for s in x if s in y and y[s] > 0]
    mean, half, n = t_ci95(paired)
    return {"ratio_of_means": a["mean"]["cold_start_ctr"] / b["mean"]["cold_start_ctr"],
            "mean": mean, "ci95": half, "n": n, "per_seed": paired}


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
    """The issue's target for ``recommender``: MiniLM cold-start CTR >= 1.5x no content and
    within 10% of the topic reference (on the means)."""
    vs_none = ratio_stats(cells, recommender, "minilm", "none")
    vs_topic = ratio_stats(cells, recommender, "minilm", "topic")
    r1, r2 = vs_none["ratio_of_means"], vs_topic["ratio_of_means"]
    ok1 = bool(np.isfinite(r1) and r1 >= TARGET_RATIO_NONE)
    ok2 = bool(np.isfinite(r2) and abs(r2 - 1.0) <= TARGET_WITHIN_TOPIC)
    return {"recommender": recommender, "minilm_over_none": vs_none,
            "minilm_over_topic": vs_topic, "lift_share": lift_share(cells, recommender),
            "meets_1_5x_none": ok1, "within_10pct_topic": ok2, "met": ok1 and ok2}


# ------------------------------------------------------------------------- outputs
_LABELS = {"cold_start_ctr": "cold-start CTR", "time_to_first_click": "time to 1st click",
           "session_return": "session return", "ctr": "CTR",
           "cold_start_impression_share": "cold share"}


def _fmt(mean: float, half: float, digits: int) -> str:
    if not np.isfinite(mean):
        return "n/a"
    if not np.isfinite(half):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


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
    if np.isfinite(rnd) and np.isfinite(oracle):
        out.append(f"- The privileged myopic oracle (true interest and quality; it maximises "
                   f"expected watch time) reaches {oracle / rnd:.3f}x random's cold-start CTR.")
    probe = {e: ctr(f"{e}/interest_probe") for e in ENCODERS}
    if all(np.isfinite(v) for v in probe.values()):
        out.append(
            "- With a perfect user model (`interest_probe`: true interest, ranked by affinity), "
            "content alone gives "
            + ", ".join(f"{e} {probe[e] / probe['none']:.3f}x" for e in ("minilm", "hashing",
                                                                              "topic"))
            + " the cold-start CTR with no content: the ceiling of what an encoder can buy "
              "here, against the learned user models above.")
    return out


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    """results.md: the table, the ratios, the target verdict, the overhead."""
    cells, budget = result["cells"], result["budget"]
    digits = {"cold_start_ctr": 4, "time_to_first_click": 2, "session_return": 1, "ctr": 4,
              "cold_start_impression_share": 3}
    lines = [
        f"# Cold start with LLM-assisted content (`{PRESET}` preset)",
        "",
        f"Mean ± 95% t interval over {budget['seeds']} evaluation seeds "
        f"({EVAL_SEED0}..{EVAL_SEED0 + budget['seeds'] - 1}; DQN training seeds "
        f"0..{budget['seeds'] - 1}), {budget['eval_steps']} world steps each on `World(cfg)` "
        f"({result['n_sessions']} session slots). Online recommenders learn during the "
        f"evaluation episode; the DQN is trained with the Runner for {budget['dqn_steps']:,} "
        f"env steps ({budget['dqn_sessions']} slots, {DQN_PARAMS['gradient_steps']} gradient "
        f"steps of {budget['dqn_batch_size']} per world step) and evaluated greedy and frozen.",
        "",
        "| encoder | recommender | " + " | ".join(_LABELS[m] for m in METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    order = {r: k for k, r in enumerate(RECOMMENDERS + REFERENCES)}
    enc_order = {e: k for k, e in enumerate((*ENCODERS, "-"))}
    for cell in sorted(cells.values(), key=lambda c: (order[c["recommender"]] >= len(RECOMMENDERS),
                                                      enc_order[c["encoder"]],
                                                      order[c["recommender"]])):
        vals = [_fmt(cell["mean"][m], cell["ci95"][m], digits[m]) for m in METRICS]
        lines.append(f"| {cell['encoder']} | {_row_label(cell)} | " + " | ".join(vals) + " |")
    skipped = result.get("skipped", [])
    if skipped:
        lines += ["", "Not run: " + "; ".join(skipped) + "."]
    lines += ["", "## Target: MiniLM cold-start CTR >= 1.5x no content, within 10% of `topic`",
              "", "Ratios of the seed means (and mean ± t interval of the per-seed ratios, "
              "paired by evaluation seed).", "",
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
            f"{_num(a['ratio_of_means'], 3)} ({_fmt(a['mean'], a['ci95'], 3)}) | "
            f"{_num(b['ratio_of_means'], 3)} ({_fmt(b['mean'], b['ci95'], 3)}) | "
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
    if ov:
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
    for ax, metric in zip(axes, ("cold_start_ctr", "time_to_first_click", "session_return"),
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
            ax.set_ylim(max(0.0, lo - 0.03), None)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{PRESET}: content encoders x recommenders (mean ± 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------- main
def plan_jobs(encoders: list[str], recommenders: list[str], budget: Budget
              ) -> tuple[list[dict[str, Any]], list[str]]:
    """The job list (DQN first: the longest) and the cells skipped, with why."""
    jobs, skipped = [], []
    b = asdict(budget)
    for enc in encoders:
        cfg = make_config(PRESET, content_encoder=enc)
        for rec in recommenders:
            if rec == "linucb" and linucb_dim(cfg) > LINUCB_MAX_DIM:
                skipped.append(f"linucb x {enc} (ridge dimension {linucb_dim(cfg):,} > "
                               f"{LINUCB_MAX_DIM}: one matrix inverse per step)")
                continue
            jobs += [dict(encoder=enc, recommender=rec, seed_index=i, budget=b)
                     for i in range(budget.seeds)]
    for ref in REFERENCES:  # encoder-free: run on the `none` world (same items as text ones)
        jobs += [dict(encoder="none", recommender=ref, seed_index=i, budget=b, reference=True)
                 for i in range(budget.seeds)]
    jobs.sort(key=lambda j: (j["recommender"] != "dqn", j["encoder"] != "minilm"))
    return jobs, skipped


def _pool(workers: int, initargs: tuple = (None, None)) -> ProcessPoolExecutor:
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method),
                               initializer=_init_worker, initargs=initargs)


def run_benchmark(encoders: list[str], recommenders: list[str], budget: Budget, workers: int,
                  out: Path, command: str) -> dict[str, Any]:
    """Run every job, write the outputs, return the result dict."""
    with shared_encoders():
        return _run_benchmark(encoders, recommenders, budget, workers, out, command)


def _run_benchmark(encoders: list[str], recommenders: list[str], budget: Budget, workers: int,
                   out: Path, command: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    jobs, skipped = plan_jobs(encoders, recommenders, budget)
    overhead = None
    texts = emb = None
    if "minilm" in encoders:
        pre_pool = _pool(workers) if workers > 1 else None
        try:
            texts, emb, overhead = pre_encode_minilm(budget, recommenders, pre_pool, workers)
        finally:
            if pre_pool is not None:
                pre_pool.shutdown()
    runs = []
    if workers > 1:
        with _pool(workers, (texts, emb)) as pool:
            futures = [pool.submit(run_job, j) for j in jobs]
            for fut in as_completed(futures):
                runs.append(fut.result())
                log.info("done %s/%s seed %d", runs[-1]["encoder"], runs[-1]["recommender"],
                         runs[-1]["seed_index"])
    else:
        _init_worker(texts, emb)
        for j in jobs:
            runs.append(run_job(j))
    for r in runs:
        if r.get("reference"):
            r["encoder"] = "-"
    cells = summarize(runs)
    targets = [target_verdict(cells, r) for r in recommenders if r in
               ("content_similarity", "content_projected", "dqn", "interest_probe", "linucb")]
    if overhead is not None:
        mruns = [r for r in runs if r["encoder"] == "minilm"]
        overhead["job_cache_misses"] = int(sum(r.get("minilm_cache_misses", 0) for r in mruns))
        overhead["job_model_loads"] = int(sum(bool(r.get("minilm_model_loaded")) for r in mruns))
    result = {
        "preset": PRESET,
        "config": make_config(PRESET).to_dict(),
        "n_sessions": make_config(PRESET).n_recommenders,
        "budget": asdict(budget),
        "dqn_params": {k: list(v) if isinstance(v, tuple) else v for k, v in DQN_PARAMS.items()},
        "encoders": encoders,
        "recommenders": recommenders,
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
    (out / "results.json").write_text(json.dumps(result, indent=1, default=_json_default))
    write_markdown(out / "results.md", result)
    write_plot(out / "results.png", result)
    return result


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny budgets (smoke test)")
    p.add_argument("--workers", type=int, default=1, help="worker processes")
    p.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=ENCODERS)
    p.add_argument("--recommenders", nargs="+", default=list(RECOMMENDERS),
                   choices=RECOMMENDERS)
    p.add_argument("--seeds", type=int, default=None, help="evaluation seeds (default 5)")
    p.add_argument("--eval-steps", type=int, default=None, help="world steps per evaluation")
    p.add_argument("--dqn-steps", type=int, default=None, help="DQN training env steps")
    p.add_argument("--out", type=Path, default=OUT_DEFAULT)
    p.add_argument("--replot", action="store_true",
                   help="only rewrite results.md and results.png from --out/results.json")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Entry point; returns the result dict."""
    args = parse_args(argv)
    if args.replot:
        result = json.loads((args.out / "results.json").read_text())
        write_markdown(args.out / "results.md", result)
        write_plot(args.out / "results.png", result)
        return result
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("recsim_env").setLevel(logging.WARNING)  # one line per encoder built
    budget = QUICK if args.quick else Budget()
    if args.seeds is not None:
        budget = replace(budget, seeds=args.seeds)
    if args.eval_steps is not None:
        budget = replace(budget, eval_steps=args.eval_steps)
    if args.dqn_steps is not None:
        budget = replace(budget, dqn_steps=args.dqn_steps)
    command = "python benchmarks/cold_start_content.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    result = run_benchmark(list(args.encoders), list(args.recommenders), budget, args.workers,
                           args.out, command.strip())
    print((args.out / "results.md").read_text())
    return result


if __name__ == "__main__":
    main()
