"""Statistics and recommendation metrics for benchmarks: batched, pure numpy.

Intervals over seeds live in :mod:`agents.stats`; the evaluation loop that feeds these
metrics is :func:`agents.evaluation.evaluate`.

Ranking metrics of slates against ground-truth relevance (``relevance (n, C)`` for ``C``
candidates, ``slates (n, k)`` candidate indices, best first), per row:

* the relevant set ``R`` is the top ``k`` candidates by relevance, ties at the ``k``-th value
  included (so ``|R| >= k``);
* :func:`precision_at_k` ``= |S ∩ R| / k`` and :func:`recall_at_k` ``= |S ∩ R| / |R|``, where
  ``S`` is the set of distinct candidates in the slate (a repeated candidate is shown once);
* :func:`ndcg_at_k`: graded gains = relevance, ``DCG = sum_i gain(s_i) / log2(i + 2)`` over the
  slate's positions (a repeat gains nothing), divided by the DCG of the ``k`` most relevant
  candidates in order. NaN where that ideal DCG is 0.

Catalog metrics:

* :func:`gini`: Gini coefficient of non-negative amounts (impressions per item or provider):
  0 when equal, ``(n - 1) / n`` when one holds everything.
* :func:`intra_list_diversity`: mean pairwise ``1 - cosine`` of the topic mixtures in a slate.
* :func:`coverage`: distinct items shown / items available.
* :func:`oracle_gap_closed`: ``(learned - myopic) / (long_term - myopic)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "ItemLedger",
    "coverage",
    "distinct_mask",
    "gini",
    "intra_list_diversity",
    "ndcg_at_k",
    "oracle_gap_closed",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "relevant_mask",
]

# --------------------------------------------------------------------------- ranking
def distinct_mask(slates: np.ndarray) -> np.ndarray:
    """(n, k) bool: True where the slate position holds a candidate not already shown earlier
    in the same slate."""
    slates = np.asarray(slates)
    k = slates.shape[1]
    same = slates[:, :, None] == slates[:, None, :]  # (n, k, k)
    earlier = np.tril(np.ones((k, k), bool), -1)  # [i, j]: j < i
    return ~(same & earlier).any(axis=2)


def relevant_mask(relevance: np.ndarray, k: int) -> np.ndarray:
    """(n, C) bool: the top ``k`` candidates of each row by relevance, ties included.

    Args:
        relevance: (n, C) ground-truth relevance (NaN counts as ``-inf``).
        k: 1 <= k <= C.
    """
    rel = np.asarray(relevance, dtype=np.float64)
    n, c = rel.shape
    if not 1 <= k <= c:
        raise ValueError(f"k must be in [1, {c}], got {k}")
    rel = np.where(np.isnan(rel), -np.inf, rel)
    kth = -np.partition(-rel, k - 1, axis=1)[:, k - 1]  # k-th largest per row
    return rel >= kth[:, None]


def _hits(slates: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """(n,) number of distinct slate candidates that are relevant."""
    slates = np.asarray(slates, dtype=np.int64)
    hit = np.take_along_axis(relevant, slates, axis=1) & distinct_mask(slates)
    return hit.sum(axis=1)


def precision_at_k(slates: np.ndarray, relevance: np.ndarray) -> np.ndarray:
    """(n,) precision@k, ``k = slates.shape[1]`` (see the module docstring)."""
    k = np.asarray(slates).shape[1]
    return _hits(slates, relevant_mask(relevance, k)) / k


def recall_at_k(slates: np.ndarray, relevance: np.ndarray) -> np.ndarray:
    """(n,) recall@k: relevant candidates shown / relevant candidates (top ``k``, ties in)."""
    k = np.asarray(slates).shape[1]
    rel = relevant_mask(relevance, k)
    return _hits(slates, rel) / rel.sum(axis=1)


def ndcg_at_k(slates: np.ndarray, relevance: np.ndarray) -> np.ndarray:
    """(n,) NDCG@k with graded gains = relevance (clipped at 0); NaN where the ideal DCG is 0."""
    slates = np.asarray(slates, dtype=np.int64)
    rel = np.maximum(np.nan_to_num(np.asarray(relevance, dtype=np.float64), nan=0.0), 0.0)
    k = slates.shape[1]
    discount = 1.0 / np.log2(np.arange(k) + 2.0)  # (k,)
    gains = np.take_along_axis(rel, slates, axis=1) * distinct_mask(slates)
    dcg = gains @ discount
    ideal = -np.sort(-rel, axis=1)[:, :k]
    idcg = ideal @ discount
    return np.divide(dcg, idcg, out=np.full_like(dcg, np.nan), where=idcg > 0)


def ranking_metrics(slates: np.ndarray, relevance: np.ndarray) -> dict[str, np.ndarray]:
    """``precision``, ``recall`` and ``ndcg`` @k of every row, each (n,)."""
    return {"precision": precision_at_k(slates, relevance),
            "recall": recall_at_k(slates, relevance),
            "ndcg": ndcg_at_k(slates, relevance)}


# --------------------------------------------------------------------------- catalog
def gini(amounts: np.ndarray) -> float:
    """Gini coefficient of non-negative amounts: 0 = perfectly equal; NaN if all are zero.

    ``G = sum_i (2 i - n - 1) x_(i) / (n * sum x)`` with ``x_(1) <= ... <= x_(n)``.
    """
    x = np.sort(np.asarray(amounts, dtype=np.float64).reshape(-1))
    if x.size == 0 or np.any(x < 0):
        raise ValueError("gini needs a non-empty array of non-negative amounts")
    total = x.sum()
    if total <= 0:
        return float("nan")
    n = x.size
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def intra_list_diversity(mix: np.ndarray, shown: np.ndarray | None = None) -> np.ndarray:
    """Mean pairwise ``1 - cosine`` between the topic mixtures of the items of each slate.

    Args:
        mix: (n, k, T) topic mixtures of the slate positions.
        shown: (n, k) bool positions that count (distinct items); default all.

    Returns:
        (n,) float64; NaN for slates with fewer than two shown items.
    """
    mix = np.asarray(mix, dtype=np.float64)
    n, k, _ = mix.shape
    shown = np.ones((n, k), bool) if shown is None else np.asarray(shown, bool)
    norm = np.linalg.norm(mix, axis=2, keepdims=True)
    unit = np.divide(mix, norm, out=np.zeros_like(mix), where=norm > 0)
    cos = np.einsum("nit,njt->nij", unit, unit)
    pair = shown[:, :, None] & shown[:, None, :] & ~np.eye(k, dtype=bool)[None]
    n_pairs = pair.sum(axis=(1, 2))
    total = np.where(pair, 1.0 - cos, 0.0).sum(axis=(1, 2))
    return np.divide(total, n_pairs, out=np.full(n, np.nan), where=n_pairs > 0)


def coverage(n_shown: int, n_available: int) -> float:
    """Share of the available items that were shown at least once (NaN without items)."""
    return float(n_shown / n_available) if n_available > 0 else float("nan")


def oracle_gap_closed(learned: float | np.ndarray, myopic: float | np.ndarray,
                      long_term: float | np.ndarray) -> float | np.ndarray:
    """``(learned - myopic) / (long_term - myopic)``: 0 = as good as the myopic oracle, 1 = as
    good as the long-term oracle. NaN where the oracles do not differ (``long_term <= myopic``).
    """
    learned, myopic, long_term = (np.asarray(v, dtype=np.float64) for v in
                                  (learned, myopic, long_term))
    gap = long_term - myopic
    out = np.divide(learned - myopic, gap, out=np.full(np.broadcast(learned, gap).shape, np.nan),
                    where=gap > 0)
    return float(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------- catalog ledger
class ItemLedger:
    """Impressions per catalog item over a run. Catalog slots are reused, so an item is a
    (slot, born_at) occupant; an occupant is flushed to the ledger when its slot changes."""

    _EMPTY = np.iinfo(np.int64).min

    def __init__(self, catalog: Any) -> None:
        self._key = self._keys(catalog)
        self._imp = np.zeros(self._key.shape[0])
        self._done: list[np.ndarray] = []

    def _keys(self, catalog: Any) -> np.ndarray:
        return np.where(catalog.active, catalog.born_at, self._EMPTY)

    def sync(self, catalog: Any) -> None:
        """Flush occupants that left (retired or replaced) since the last call."""
        key = self._keys(catalog)
        changed = key != self._key
        if changed.any():
            self._done.append(self._imp[changed & (self._key != self._EMPTY)].copy())
            self._imp[changed] = 0.0
            self._key = key

    def add(self, item_ids: np.ndarray) -> None:
        """Count one impression for each id (catalog slot) in ``item_ids``."""
        self._imp += np.bincount(item_ids, minlength=self._imp.shape[0])

    def impressions(self) -> np.ndarray:
        """(items available during the run,) impressions of each."""
        live = self._imp[self._key != self._EMPTY]
        return np.concatenate(self._done + [live])
