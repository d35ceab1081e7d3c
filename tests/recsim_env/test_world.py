import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsim_env import choice, items, users
from recsim_env.config import make_config
from recsim_env.world import World
from tests.recsim_env.helpers import random_slates


# ----------------------------------------------------------------------------- choice models
@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from(["mnl", "proportional", "cascade"]),
    s=st.integers(1, 20),
    k=st.integers(1, 5),
    seed=st.integers(0, 2**31),
)
def test_choice_probabilities_are_distributions(model, s, k, seed):
    rng = np.random.default_rng(seed)
    cfg = make_config("default", choice_model=model, n_candidates=max(k, 2), slate_size=k)
    util = rng.normal(0, 3, size=(s, k))
    shown = rng.random((s, k)) < 0.8
    p = choice.choice_probabilities(util, shown, cfg)
    assert p.shape == (s, k + 1)
    assert np.all(np.isfinite(p)) and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(p[:, :k][~shown] == 0)
    pick = choice.sample_choice(p, rng)
    assert np.all((pick >= -1) & (pick < k))
    ok = pick >= 0
    assert np.all(shown[np.flatnonzero(ok), pick[ok]])


def test_sampling_matches_probabilities():
    rng = np.random.default_rng(0)
    p = np.tile([[0.1, 0.0, 0.6, 0.3]], (200_000, 1))
    pick = choice.sample_choice(p, rng)
    freq = np.array([(pick == j).mean() for j in (0, 1, 2, -1)])
    np.testing.assert_allclose(freq, [0.1, 0.0, 0.6, 0.3], atol=0.005)


def test_proportional_is_recsims_formula():
    cfg = make_config("recsim_ie")
    x = np.array([[0.5, -0.2]])
    p = choice.choice_probabilities(x, np.ones((1, 2), bool), cfg)
    denom = (0.5 + 1) + (-0.2 + 1) + 2
    np.testing.assert_allclose(p, [[1.5 / denom, 0.8 / denom, 2 / denom]])


# ----------------------------------------------------------------------------- users
@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 30), steps=st.integers(0, 5000))
def test_drift_bounded_and_finite(seed, n, steps):
    rng = np.random.default_rng(seed)
    cfg = make_config("default", drift_noise=0.2, anchor_noise=0.1)
    x = rng.uniform(-1, 1, (n, cfg.n_topics))
    home = rng.uniform(-1, 1, (n, cfg.n_topics))
    nx, na = users.drift_exogenous(x, home.copy(), home, np.full(n, steps), cfg, rng)
    assert np.all(np.isfinite(nx)) and np.all(np.isfinite(na))
    assert np.all(np.abs(nx) <= 1.0)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1, 30))
def test_consume_keeps_interest_bounded(seed, n):
    rng = np.random.default_rng(seed)
    cfg = make_config("default")
    x = rng.uniform(-1, 1, (n, cfg.n_topics))
    mix = rng.dirichlet(np.ones(cfg.n_topics), size=n)
    clicked = rng.random(n) < 0.5
    z = np.zeros_like(x)
    nx, sat, hist = users.consume(x, z, z, mix, clicked, cfg, rng)
    assert np.all(np.abs(nx) <= 1) and np.all(sat >= 0) and np.all(hist >= 0)
    np.testing.assert_array_equal(nx[~clicked], x[~clicked])  # no click, no endogenous move
    np.testing.assert_allclose(sat[clicked], mix[clicked])


def test_recsim_interest_update_on_one_hot():
    cfg = make_config("recsim_ie")
    x = np.full((4000, cfg.n_topics), 0.2)
    mix = np.zeros_like(x)
    mix[:, 3] = 1.0
    z = np.zeros_like(x)
    nx, _, _ = users.consume(x, z, z, mix, np.ones(4000, bool), cfg, np.random.default_rng(0))
    step = 0.3 * (1 - 0.2) * (1 - 0.2)
    moved = nx[:, 3] - 0.2
    assert set(np.round(moved, 12)) <= {round(step, 12), round(-step, 12)}
    assert abs((moved > 0).mean() - 0.6) < 0.03  # toward with probability (x + 1) / 2
    np.testing.assert_array_equal(np.delete(nx, 3, axis=1), np.delete(x, 3, axis=1))


def test_lazy_drift_matches_stepping_in_distribution():
    """n steps in closed form == n single steps (mean and variance), the lazy-user guarantee."""
    cfg = make_config("default", drift_noise=0.05, anchor_noise=0.03, drift_rate=0.1,
                      anchor_rate=0.02)
    n, steps = 20_000, 25
    rng = np.random.default_rng(0)
    home = np.zeros((n, 1)) + 0.1
    x0, a0 = np.full((n, 1), 0.3), np.full((n, 1), -0.2)
    cfg1 = make_config("default", n_topics=1, drift_noise=0.05, anchor_noise=0.03,
                       drift_rate=0.1, anchor_rate=0.02, topic_quality=None)
    x, a = x0, a0
    for _ in range(steps):
        x, a = users.drift_exogenous(x, a, home, np.ones(n, np.int64), cfg1, rng)
    xl, al = users.drift_exogenous(x0, a0, home, np.full(n, steps), cfg1, rng)
    for s, l in ((x, xl), (a, al)):
        assert abs(s.mean() - l.mean()) < 4 * s.std() / np.sqrt(n) * 1.5
        assert abs(s.std() / l.std() - 1) < 0.04
    del cfg


# ----------------------------------------------------------------------------- items
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), steps=st.integers(1, 60))
def test_catalog_invariants(seed, steps):
    cfg = make_config("cold_start", n_users=40, n_recommenders=4, n_items_initial=40,
                      n_items_max=120, arrival_rate=15.0, item_lifetime=20, n_providers=2)
    w = World(cfg)
    w.reset(seed)
    rng = np.random.default_rng(seed)
    prev_imp = w.catalog.impressions.copy()
    for _ in range(steps):
        prev_born = w.catalog.born_at.copy()
        prev_clicks = w.catalog.clicks.copy()
        prev_imp = w.catalog.impressions.copy()
        w.step(random_slates(rng, 4, cfg.n_candidates, cfg.slate_size),
               rng.integers(0, cfg.n_topics + 1, size=2))
        cat = w.catalog
        assert cfg.n_candidates <= cat.active.sum() <= cfg.n_items_max
        same = cat.born_at == prev_born  # slots not replaced this step: counters only grow
        assert np.all(cat.impressions[same] >= prev_imp[same])
        assert np.all(cat.clicks[same] >= prev_clicks[same])
        assert np.all(cat.clicks <= cat.impressions)
        np.testing.assert_allclose(cat.topic_mix[cat.active].sum(1), 1.0, rtol=1e-5)
        ids = w.candidates.item_id
        assert np.all(cat.active[ids])
        assert not items.repeated_mask(ids).any()
        cold = w.candidate_cold
        np.testing.assert_array_equal(cold, cat.impressions[ids] < cfg.cold_start_impressions)
        user, cand = w.layout.split(w.recommender_obs())
        np.testing.assert_array_equal(cand[..., -1], cold)
        assert np.all(np.isfinite(user)) and np.all(np.isfinite(cand))


def test_new_items_start_cold_with_zero_interactions():
    cfg = make_config("cold_start", n_users=40, n_recommenders=4)
    w = World(cfg)
    w.reset(0)
    rng = np.random.default_rng(0)
    for _ in range(2):
        w.step(random_slates(rng, 4, cfg.n_candidates, cfg.slate_size))
    new = w.catalog.active & (w.catalog.born_at == w.t - 1)  # arrived in the last step
    assert new.any()
    assert np.all(w.catalog.impressions[new] == 0) and np.all(w.catalog.clicks[new] == 0)
    assert np.all(w.catalog.first_click_at[new] == -1)


def test_repeated_mask():
    x = np.array([[1, 2, 1, 3, 2], [0, 1, 2, 3, 4]])
    np.testing.assert_array_equal(
        items.repeated_mask(x), [[0, 0, 1, 0, 1], [0, 0, 0, 0, 0]])


def test_cohorts_and_sessions():
    cfg = make_config("default", n_users=40, n_recommenders=4)
    w = World(cfg)
    w.reset(0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        res = w.step(random_slates(rng, 4, cfg.n_candidates, cfg.slate_size))
        assert np.all(w.sessions.user % 4 == np.arange(4))  # each slot serves its own cohort
        assert np.all(res.session_length[res.session_ended] >= 1)
    m = w.metrics()
    assert m["sessions"] > 4 and 0 <= m["return_rate"] <= 1


def test_world_scales_population_with_sessions():
    cfg = make_config("default", n_users=100, n_recommenders=4)
    w = World(cfg, n_sessions=64)
    assert w.n_users == cfg.cohort_size * 64
    w.reset(1)
    assert w.recommender_obs().shape == (64, w.layout.size)


def test_recsim_ie_reproduces_recsim_statistics():
    """Random slates on recsim_ie vs Google RecSim's measured per-session statistics
    (NOTES: length 83.7, return 154.1, 0.466 clicks per step), each within 2%.

    Only the first session of each slot is counted, so no session is cut by the horizon."""
    cfg = make_config("recsim_ie")
    n = 4096
    w = World(cfg, n_sessions=n)
    w.reset(2024)
    rng = np.random.default_rng(2024)
    done = np.zeros(n, bool)
    length, ret = np.zeros(n), np.zeros(n)
    clicks = 0
    while not done.all():
        res = w.step(random_slates(rng, n, 10, 2))
        live = ~done
        clicks += int((res.choice[live] >= 0).sum())
        ended = res.session_ended & live
        length[ended] = res.session_length[ended]
        ret[ended] = res.session_return[ended]
        done |= ended
    assert length.mean() == pytest.approx(83.7, rel=0.02)
    assert ret.mean() == pytest.approx(154.1, rel=0.02)
    assert clicks / length.sum() == pytest.approx(0.466, rel=0.02)
