"""Item catalog: arrays with a leading item axis, arrivals, retirement, counters, candidates.

The catalog has a fixed capacity ``n_items_max`` and an ``active`` mask. Items arrive every step
(a Poisson number from background providers plus what provider agents publish) with zero
interactions; they retire after ``item_lifetime`` steps or, when the catalog is full, oldest
first. Retirement never leaves fewer than ``n_candidates`` active items.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from recsim_env.config import EnvConfig


class Catalog(NamedTuple):
    """The item catalog, leading axis = item slot (capacity ``n_items_max``).

    Attributes:
        active: (I,) bool.
        topic_mix: (I, n_topics) float32, rows sum to 1.
        main_topic: (I,) int64.
        quality: (I,) float64 latent quality.
        length: (I,) float64 item length (time cost of consuming it).
        provider: (I,) int64; background providers first, then provider agents.
        born_at: (I,) int64 world step of arrival.
        impressions: (I,) int64.
        clicks: (I,) int64.
        first_click_at: (I,) int64, -1 until clicked.
        content: (I, content_dim) float32 features seen by recommenders.
        text_tokens: (I, TEXT_TOKENS) int32 token ids of each item's description
            (``recsim_env.content.ItemDescriptions``), rendered on demand.
    """

    active: np.ndarray
    topic_mix: np.ndarray
    main_topic: np.ndarray
    quality: np.ndarray
    length: np.ndarray
    provider: np.ndarray
    born_at: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    first_click_at: np.ndarray
    content: np.ndarray
    text_tokens: np.ndarray


TEXT_TOKENS = 5  # columns of ItemDescriptions.tokens


class NewItems(NamedTuple):
    """A batch of freshly generated items (leading axis = new item). ``text_tokens`` is
    ``None`` when descriptions are not kept (fresh documents)."""

    topic_mix: np.ndarray
    main_topic: np.ndarray
    quality: np.ndarray
    length: np.ndarray
    provider: np.ndarray
    content: np.ndarray
    text_tokens: np.ndarray | None


@functools.lru_cache(maxsize=16)
def _eye(n: int) -> np.ndarray:
    eye = np.eye(n, dtype=np.float32)
    eye.flags.writeable = False
    return eye


def one_hot(index: np.ndarray, n: int) -> np.ndarray:
    """``index.shape + (n,)`` float32 one-hot rows."""
    return _eye(n)[index]


def sample_items(
    main_topic: np.ndarray,
    provider: np.ndarray,
    provider_skill: np.ndarray,
    cfg: EnvConfig,
    encoder,
    rng: np.random.Generator,
    keep_text: bool = False,
) -> NewItems:
    """Generate items of the given main topics and providers.

    Args:
        main_topic: (n,) int64 in [0, n_topics).
        provider: (n,) int64 provider ids (indices into ``provider_skill``), or -1 for none.
        provider_skill: (n_providers_total,) float64.
        cfg: config (purity, quality, length parameters).
        encoder: content encoder with ``encode(topic_mix, quality, rng) -> (n, dim) float32``.
        rng: random stream.
        keep_text: also return the descriptions' token ids (generated in one vectorised
            batch by the encoder; the features are the same either way).

    Returns:
        The new items' arrays.
    """
    n = main_topic.shape[0]
    onehot = _eye(cfg.n_topics)[main_topic]
    if cfg.topic_purity < 1.0:
        spread = rng.dirichlet(np.ones(cfg.n_topics), size=n) if n else np.zeros((0, cfg.n_topics))
        mix = (cfg.topic_purity * onehot + (1.0 - cfg.topic_purity) * spread).astype(np.float32)
    else:
        mix = onehot
    quality = cfg.topic_quality_array[main_topic] + cfg.quality_noise * rng.standard_normal(n)
    if cfg.provider_skill_std > 0 and n:
        quality += np.where(provider >= 0, provider_skill[np.maximum(provider, 0)], 0.0)
    if cfg.item_length_log_std > 0:
        length = cfg.item_length * np.exp(cfg.item_length_log_std * rng.standard_normal(n))
    else:
        length = np.full(n, cfg.item_length)
    if keep_text:
        content, desc = encoder.describe_and_encode(mix, quality, rng)
        tokens = desc.tokens
    else:
        content, tokens = encoder.encode(mix, quality, rng), None
    return NewItems(mix, main_topic, quality, length, provider, content, tokens)


def empty_catalog(cfg: EnvConfig, content_dim: int) -> Catalog:
    """An all-inactive catalog of capacity ``n_items_max``."""
    cap = cfg.n_items_max
    return Catalog(
        active=np.zeros(cap, bool),
        topic_mix=np.zeros((cap, cfg.n_topics), np.float32),
        main_topic=np.zeros(cap, np.int64),
        quality=np.zeros(cap),
        length=np.ones(cap),
        provider=np.full(cap, -1, np.int64),
        born_at=np.zeros(cap, np.int64),
        impressions=np.zeros(cap, np.int64),
        clicks=np.zeros(cap, np.int64),
        first_click_at=np.full(cap, -1, np.int64),
        content=np.zeros((cap, content_dim), np.float32),
        text_tokens=np.zeros((cap, TEXT_TOKENS), np.int32),
    )


def retire_items(cat: Catalog, t: int, cfg: EnvConfig) -> np.ndarray:
    """Active mask after lifetime retirement at step ``t`` (oldest expire first).

    At least ``n_candidates`` items stay active: if more expire, the youngest expired survive.
    """
    if cfg.item_lifetime is None:
        return cat.active
    expired = cat.active & (t - cat.born_at >= cfg.item_lifetime)
    n_exp = int(expired.sum())
    if n_exp == 0:
        return cat.active
    keep_max = int(cat.active.sum()) - cfg.n_candidates
    active = cat.active.copy()
    if n_exp <= keep_max:
        active[expired] = False
    elif keep_max > 0:
        idx = np.flatnonzero(expired)
        oldest = idx[np.argsort(cat.born_at[idx], kind="stable")[:keep_max]]
        active[oldest] = False
    return active


def insert_items(cat: Catalog, active: np.ndarray, new: NewItems, t: int) -> Catalog:
    """Place new items in free slots, evicting the oldest active items when the catalog is full.

    The catalog's arrays are updated in place (the catalog is ``O(n_items_max)`` and only
    ``O(arrivals)`` entries change per step; copying it every step would dominate small runs).

    Args:
        cat: current catalog (its arrays are written).
        active: (I,) bool, the active mask to start from (after retirement).
        new: items to insert (at most the capacity).
        t: current world step (their ``born_at``).

    Returns:
        The catalog with ``active`` replaced.
    """
    n = new.quality.shape[0]
    if n == 0:
        return cat._replace(active=active)
    assert n <= active.shape[0], "more arrivals in one step than catalog capacity"
    free = np.flatnonzero(~active)
    if free.shape[0] >= n:
        slots = free[:n]
    else:
        # oldest first: the n - free active items with the smallest born_at
        need = n - free.shape[0]
        occupied = np.flatnonzero(active)
        oldest = occupied[np.argpartition(cat.born_at[occupied], need - 1)[:need]]
        slots = np.concatenate([free, oldest])
    active = active.copy() if active is not cat.active else active
    active[slots] = True
    cat.topic_mix[slots] = new.topic_mix
    cat.main_topic[slots] = new.main_topic
    cat.quality[slots] = new.quality
    cat.length[slots] = new.length
    cat.provider[slots] = new.provider
    cat.born_at[slots] = t
    cat.impressions[slots] = 0
    cat.clicks[slots] = 0
    cat.first_click_at[slots] = -1
    cat.content[slots] = new.content
    if new.text_tokens is not None:
        cat.text_tokens[slots] = new.text_tokens
    return cat._replace(active=active)


def count_interactions(
    cat: Catalog, shown_items: np.ndarray, clicked_items: np.ndarray, t: int
) -> None:
    """Add impressions and clicks, in place.

    Args:
        cat: catalog (its counters are written).
        shown_items: (m,) int64 item ids shown this step (one entry per impression).
        clicked_items: (c,) int64 item ids clicked this step (distinct sessions may click the
            same item: repeats are counted).
        t: current step (for ``first_click_at``).

    Returns:
        (f,) int64 distinct ids of the items clicked for the first time.
    """
    np.add.at(cat.impressions, shown_items, 1)
    if not clicked_items.size:
        return clicked_items
    np.add.at(cat.clicks, clicked_items, 1)
    first = np.unique(clicked_items[cat.first_click_at[clicked_items] < 0])
    cat.first_click_at[first] = t
    return first


@functools.lru_cache(maxsize=64)
def _strictly_lower(k: int) -> np.ndarray:
    tri = np.tri(k, k, -1, dtype=bool)[None]
    tri.flags.writeable = False
    return tri


def repeated_mask(x: np.ndarray) -> np.ndarray:
    """(s, k) bool: True where ``x[s, j]`` equals an earlier entry ``x[s, i]``, ``i < j``."""
    k = x.shape[1]
    if k <= 4:  # few pairs: one vectorised comparison per pair beats the (s, k, k) cube
        out = np.zeros(x.shape, bool)
        for j in range(1, k):
            col = out[:, j]
            for i in range(j):
                col |= x[:, j] == x[:, i]
        return out
    eq = x[:, :, None] == x[:, None, :]
    return (eq & _strictly_lower(x.shape[1])).any(axis=2)


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values, largest first; ties go to the lower index."""
    if k < values.shape[0]:
        # stable tie-break: among equal values prefer the lower index (lexsort on -index)
        part = np.argpartition(-values, k - 1)[:k]
        kth = values[part].min()
        cand = np.flatnonzero(values >= kth)
    else:
        cand = np.arange(values.shape[0])
    order = np.lexsort((cand, -values[cand]))
    return cand[order[:k]]


def rows_with_repeats(x: np.ndarray) -> np.ndarray:
    """(r,) int64 ascending indices of the rows of ``x`` (m, k) that hold a repeated value."""
    srt = np.sort(x, axis=1)
    return np.flatnonzero((srt[:, 1:] == srt[:, :-1]).any(axis=1))


def generate_candidates(
    cat: Catalog, n_sessions: int, cfg: EnvConfig, rng: np.random.Generator,
    find_repeats=rows_with_repeats,
) -> np.ndarray:
    """Candidate item ids for every session: newest, most clicked, then uniformly random.

    The newest and most-clicked parts are the same for every session; the random part is drawn
    per session without repeats (duplicates are redrawn, vectorised over sessions).
    ``find_repeats`` is :func:`rows_with_repeats` or a compiled equivalent
    (``recsim_env.kernels.rows_with_repeats``); the draws do not depend on it.

    Returns:
        (n_sessions, n_candidates) int64 item ids, distinct within each row.
    """
    active_idx = np.flatnonzero(cat.active)
    parts = []
    taken = np.zeros(cat.active.shape[0], bool)
    if cfg.n_newest:
        newest = active_idx[_top_k(cat.born_at[active_idx], cfg.n_newest)]
        taken[newest] = True
        parts.append(newest)
    if cfg.n_popular:
        pool = np.flatnonzero(cat.active & ~taken)
        popular = pool[_top_k(cat.clicks[pool], cfg.n_popular)]
        taken[popular] = True
        parts.append(popular)
    fixed = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    out = np.empty((n_sessions, cfg.n_candidates), np.int64)
    out[:, : fixed.shape[0]] = fixed
    if cfg.n_random:
        pool = np.flatnonzero(cat.active & ~taken)
        pick = rng.integers(pool.shape[0], size=(n_sessions, cfg.n_random))
        while True:  # redraw repeats; only rows that have one are examined
            bad = find_repeats(pick)
            if bad.size == 0:
                break
            sub = pick[bad]
            dup = repeated_mask(sub)
            sub[dup] = rng.integers(pool.shape[0], size=int(dup.sum()))
            pick[bad] = sub
        out[:, fixed.shape[0]:] = pool[pick]
    return out


def random_slates(rng: np.random.Generator, n: int, n_candidates: int,
                  slate_size: int) -> np.ndarray:
    """(n, slate_size) int64 uniformly random slates of distinct candidates.

    The one random-slate sampler of the project (built-in recommenders, exploration, the
    random baseline and the benchmarks all draw through it). Sequential sampling without
    replacement, vectorised over rows: position ``j`` draws an index among the
    ``n_candidates - j`` unused ones and shifts it past the used ones (in ascending order):
    ``slate_size`` integers per row, whatever the number of candidates.
    """
    out = np.empty((n, slate_size), np.int64)
    used = np.empty((n, 0), np.int64)
    for j in range(slate_size):  # positions, not users: slate_size is small
        x = rng.integers(0, n_candidates - j, size=n)
        for c in range(j):
            x += x >= used[:, c]
        out[:, j] = x
        used = np.sort(out[:, : j + 1], axis=1)
    return out
