"""The one-hot fast path (``topic_purity == 1``) gives the same episodes as the general path,
and RecSim's documents are observed without a stored feature block."""

from __future__ import annotations

import numpy as np
import pytest

import recsim_env
from recsim_env.world import World


def _slates(rng: np.random.Generator, n: int, cfg) -> np.ndarray:
    return np.argsort(rng.random((n, cfg.n_candidates)), axis=1)[:, : cfg.slate_size]


@pytest.mark.parametrize("preset, overrides", [
    ("recsim_ie", {}),
    ("default", {"topic_purity": 1.0}),
    ("long_term", {"topic_purity": 1.0, "choice_model": "cascade"}),
])
def test_onehot_fast_path_matches_general_path(preset: str, overrides: dict) -> None:
    cfg = recsim_env.make_config(preset, **overrides)
    fast, general = World(cfg, n_sessions=32), World(cfg, n_sessions=32)
    assert fast._onehot_mix
    general._onehot_mix = False  # force the (s, k, n_topics) einsum path
    fast.reset(3)
    general.reset(3)
    rng = np.random.default_rng(0)
    for t in range(150):
        slates = _slates(rng, 32, cfg)
        a, b = fast.step(slates), general.step(slates)
        for name, x, y in zip(a._fields, a, b):
            assert np.array_equal(x, y), f"step {t}: {name} differs"
    for name in fast.sessions._fields:
        assert np.array_equal(getattr(fast.sessions, name), getattr(general.sessions, name)), name
    assert np.array_equal(fast.recommender_obs(), general.recommender_obs())
    ma, mb = fast.metrics(), general.metrics()
    assert ma.keys() == mb.keys()
    assert all(np.array_equal(ma[k], mb[k], equal_nan=True) for k in ma)


def test_recsim_documents_observed_as_one_hot_topics() -> None:
    cfg = recsim_env.make_config("recsim_ie")
    world = World(cfg, n_sessions=8)
    world.reset(0)
    assert world.candidates.topic_mix is None and world.candidates.content is None
    mix = world.candidate_topic_mix()
    assert mix.shape == (8, cfg.n_candidates, cfg.n_topics)
    assert np.array_equal(mix.argmax(axis=2), world.candidates.topic)
    assert np.array_equal(mix.sum(axis=2), np.ones((8, cfg.n_candidates)))
    _, cand = world.layout.split(world.recommender_obs())
    assert np.array_equal(cand[..., : cfg.n_topics], mix)
    assert not cand[..., cfg.n_topics:].any()  # fresh documents: no history features
    rows = np.array([5, 1])
    assert np.array_equal(world.recommender_obs(rows), world.recommender_obs()[rows])
    assert np.array_equal(world.candidate_topic_mix(rows), mix[rows])


def test_observations_are_fresh_arrays() -> None:
    """Modifying a returned observation changes neither the world nor later observations."""
    cfg = recsim_env.make_config("recsim_ie")
    a, b = World(cfg, n_sessions=16), World(cfg, n_sessions=16)
    a.reset(1)
    b.reset(1)
    rng = np.random.default_rng(0)
    for _ in range(20):
        slates = _slates(rng, 16, cfg)
        obs = a.recommender_obs()
        obs[:] = 7.0
        a.step(slates)
        b.step(slates)
    assert np.array_equal(a.recommender_obs(), b.recommender_obs())
    assert a.recommender_obs() is not a.recommender_obs()


def test_recsim_state_dict_round_trip() -> None:
    cfg = recsim_env.make_config("recsim_ie")
    world = World(cfg, n_sessions=8)
    world.reset(2)
    rng = np.random.default_rng(0)
    for _ in range(10):
        world.step(_slates(rng, 8, cfg))
    state = world.state_dict()
    assert "topic_mix" not in state["groups"]["candidates"]
    slates = [_slates(rng, 8, cfg) for _ in range(30)]
    ref = [world.step(s).reward for s in slates]
    other = World(cfg, n_sessions=8)
    other.load_state_dict(state)
    assert all(np.array_equal(r, other.step(s).reward) for r, s in zip(ref, slates))
