"""The one statistics module: Student-t intervals by hand, paired differences, ratios."""

import math

import numpy as np
import pytest

from agents import stats


def test_mean_ci_student_t_by_hand():
    mean, half = stats.mean_ci([1, 2, 3, 4, 5])
    # s = sqrt(2.5), t_{0.975, 4} = 2.776445
    assert mean == 3.0
    assert half == pytest.approx(2.776445 * math.sqrt(2.5) / math.sqrt(5), rel=1e-5)
    mean, half = stats.mean_ci([2.0, 4.0])  # t_{0.975, 1} = 12.7062, s = sqrt(2)
    assert half == pytest.approx(12.706205 * math.sqrt(2) / math.sqrt(2), rel=1e-5)
    assert stats.mean_ci([7.0, float("nan")]) == (7.0, pytest.approx(float("nan"), nan_ok=True))
    assert all(np.isnan(stats.mean_ci([])))


def test_mean_ci_along_an_axis_equals_each_column():
    x = np.array([[1.0, 2.0], [3.0, 5.0], [4.0, np.nan]])
    mean, half = stats.mean_ci(x, axis=0)
    for j in range(2):
        m, h = stats.mean_ci(x[:, j])
        assert mean[j] == pytest.approx(m) and half[j] == pytest.approx(h)


def test_t_quantile_matches_table_and_rejects_bad_df():
    for df, t in ((1, 12.706205), (4, 2.776445), (30, 2.042272)):
        assert stats.t_quantile(0.975, df) == pytest.approx(t, rel=1e-5)
    with pytest.raises(ValueError, match="df"):
        stats.t_quantile(0.975, 0)


def test_paired_difference_is_tighter_than_separate_intervals():
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 10, 8)       # what common random numbers share
    a = 100 + seed_effect + rng.normal(0, 0.5, 8)
    b = 98 + seed_effect + rng.normal(0, 0.5, 8)
    d, hd = stats.paired_difference(a, b)
    _, ha = stats.mean_ci(a)
    assert d == pytest.approx(np.mean(a - b)) and hd < ha / 5 and d - hd > 0
    with pytest.raises(ValueError, match="same seeds"):
        stats.paired_difference([1.0, 2.0], [1.0])


def test_ratio_ci_and_format():
    r, h = stats.ratio_ci([2.0, 4.0, 6.0], [1.0, 2.0, 0.0])  # the zero denominator is dropped
    assert r == 2.0 and h == 0.0
    assert stats.fmt_ci(12.345, 0.4) == "12.3 ± 0.4"
    assert stats.fmt_ci(float("nan"), 1.0) == "n/a"
