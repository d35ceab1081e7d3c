"""Benchmark metrics against hand-computed values on a tiny fixed log."""

import math
from collections import namedtuple

import numpy as np
import pytest

from agents import metrics as M

LOG2_3 = math.log2(3)

# A tiny fixed log: three slates of size 2 over four candidates, with the ground-truth
# relevance (expected engagement) of every candidate.
SLATES = np.array([[0, 1], [2, 3], [1, 1]])
RELEVANCE = np.array([
    [0.9, 0.1, 0.8, 0.0],  # relevant (top 2): {0, 2}; the slate hits 0
    [0.5, 0.5, 0.5, 0.1],  # tie at the 2nd value: relevant {0, 1, 2}; the slate hits 2
    [0.0, 1.0, 0.5, 0.2],  # relevant {1, 2}; the slate repeats 1 (shown once)
])


def test_precision_recall_at_k_by_hand():
    np.testing.assert_allclose(M.precision_at_k(SLATES, RELEVANCE), [0.5, 0.5, 0.5])
    np.testing.assert_allclose(M.recall_at_k(SLATES, RELEVANCE), [0.5, 1 / 3, 0.5])
    np.testing.assert_array_equal(M.relevant_mask(RELEVANCE, 2)[1], [True, True, True, False])


def test_ndcg_at_k_by_hand():
    expected = [
        (0.9 + 0.1 / LOG2_3) / (0.9 + 0.8 / LOG2_3),
        (0.5 + 0.1 / LOG2_3) / (0.5 + 0.5 / LOG2_3),
        1.0 / (1.0 + 0.5 / LOG2_3),  # the repeat gains nothing
    ]
    np.testing.assert_allclose(M.ndcg_at_k(SLATES, RELEVANCE), expected, rtol=1e-12)
    # the ideal slate scores 1; no relevance at all is undefined
    assert M.ndcg_at_k(np.array([[0, 2]]), RELEVANCE[:1])[0] == pytest.approx(1.0)
    assert np.isnan(M.ndcg_at_k(np.array([[0, 1]]), np.zeros((1, 4)))[0])


@pytest.mark.parametrize("amounts, expected", [
    ([1, 1, 1, 1], 0.0),
    ([0, 0, 0, 10], 0.75),  # (n - 1) / n
    ([1, 2, 3, 4], 0.25),  # sum |xi - xj| over ordered pairs (20) / (2 n^2 mean) (80)
    ([4, 1, 3, 2], 0.25),  # order does not matter
])
def test_gini_by_hand(amounts, expected):
    assert M.gini(np.array(amounts)) == pytest.approx(expected)


def test_gini_rejects_negative_and_is_nan_for_zero():
    with pytest.raises(ValueError):
        M.gini(np.array([1.0, -1.0]))
    assert np.isnan(M.gini(np.zeros(3)))


def test_intra_list_diversity_by_hand():
    mix = np.array([
        [[1, 0], [0, 1], [1, 1]],
        [[1, 0], [1, 0], [0, 1]],
    ], dtype=float)
    c = 1 / math.sqrt(2)
    shown = np.array([[True, True, True], [True, False, True]])  # row 1: a repeat hidden
    np.testing.assert_allclose(M.intra_list_diversity(mix, shown),
                               [(1 + 2 * (1 - c)) / 3, 1.0])
    assert np.isnan(M.intra_list_diversity(mix[:1, :1])[0])  # one item: no pairs


def test_distinct_mask_and_coverage_and_gap():
    np.testing.assert_array_equal(M.distinct_mask(np.array([[3, 3, 1, 3]])),
                                  [[True, False, True, False]])
    assert M.coverage(3, 4) == 0.75
    assert M.oracle_gap_closed(15.0, 10.0, 20.0) == 0.5
    assert np.isnan(M.oracle_gap_closed(15.0, 10.0, 9.0))
    np.testing.assert_allclose(M.oracle_gap_closed(np.array([10.0, 20.0]), 10.0, 20.0), [0, 1])


def test_item_ledger_counts_reused_slots_as_new_items():
    Cat = namedtuple("Cat", "active born_at")
    ledger = M.ItemLedger(Cat(np.array([True, True, False]), np.array([-5, -3, 0])))
    ledger.add(np.array([0, 0, 1]))
    # slot 1 is replaced by a new item, slot 2 gets one
    ledger.sync(Cat(np.array([True, True, True]), np.array([-5, 4, 4])))
    ledger.add(np.array([0, 2]))
    imp = np.sort(ledger.impressions())
    np.testing.assert_array_equal(imp, [0, 1, 1, 3])  # 4 items were available
