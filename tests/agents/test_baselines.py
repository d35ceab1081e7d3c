"""Tests for agents/baselines.py: valid slates, determinism, exact resume, and that each
baseline does what it is for (oracles beat random, learners learn)."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch

from agents.base import ActContext, Learner, Transition
from agents.baselines import (
    BASELINES,
    ContentSimilarity,
    expected_engagement,
    item_counts,
    make_baseline,
    top_slate,
)
from agents.evaluation import evaluate
from recsim_env import World, make_config
from recsim_env.choice import choice_probabilities

NAMES = sorted(BASELINES)


def deployed(policy, cfg, **kw):
    """The evaluation of a baseline as deployed: exploring and learning while it serves."""
    return evaluate(policy, cfg, learn=True, explore=True, ground_truth=False, **kw)


PRIVILEGED = {"myopic_oracle", "horizon_oracle", "long_term_oracle", "interest_probe"}
LEARNERS = ["epsilon_greedy", "ucb1", "thompson", "linucb", "online_mf", "content_similarity",
            "content_projected"]

CONFIGS = {
    # live catalog, 64-dim hashing content, slate of 3, MNL
    "default": make_config("default", n_users=64, n_items_initial=60, n_items_max=200),
    # fresh documents, observed interest, slate of 2, proportional choice
    "recsim_ie": make_config("recsim_ie"),
    # cascade (ordered slates), topic content, slate of 3
    "cascade": make_config("default", n_users=64, choice_model="cascade", content_encoder="topic",
                           n_items_initial=60, n_items_max=200),
    # slates of one (Discrete action spaces)
    "slate1": make_config("default", n_users=64, slate_size=1, content_encoder="topic",
                          n_items_initial=60, n_items_max=200),
}

# Items differ in click rate (quality enters the choice and varies by topic): learners that
# track items or content should beat random slates on CTR.
EASY = make_config("default", content_encoder="topic", quality_in_choice=1.0,
                   topic_quality=tuple(float(x) for x in np.linspace(-1.5, 1.5, 10)),
                   n_items_initial=200, n_items_max=400, arrival_rate=1.0)


def rollout(policy, world: World, n_steps: int, *, learn: bool = True) -> list[np.ndarray]:
    """Act (and learn) for ``n_steps`` on all of the world's slots; returns the slates."""
    slots = np.arange(world.n_sessions)
    obs = world.recommender_obs()
    out = []
    for _ in range(n_steps):
        ctx = ActContext(world, slots, world.sessions.user.copy(), world.candidates.item_id.copy())
        action = policy.act(obs, ctx)
        out.append(action)
        res = world.step(action)
        next_obs = world.recommender_obs()
        if learn:
            final = next_obs.copy()
            final[res.session_ended] = res.terminal_obs
            policy.update(Transition(obs, action, res.reward, final, res.session_ended.copy(),
                                     np.zeros(world.n_sessions, bool), res.choice, ctx))
        obs = next_obs
    return out


def new_world(cfg, n_sessions: int = 16, seed: int = 0) -> World:
    world = World(cfg, n_sessions=n_sessions)
    world.reset(seed)
    return world


def _plain(x) -> bool:
    """Only what torch.load(weights_only=True) restores without help."""
    if isinstance(x, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return all(_plain(v) for v in x)
    return isinstance(x, (torch.Tensor, bool, int, float, str, type(None)))


# --------------------------------------------------------------------------- contract
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("name", NAMES)
def test_baseline_gives_valid_slates(name, config):
    cfg = CONFIGS[config]
    world = new_world(cfg)
    policy = make_baseline(name, cfg, world.layout, seed=1)
    assert isinstance(policy, Learner)
    for slates in rollout(policy, world, 5):
        assert slates.shape == (world.n_sessions, cfg.slate_size)
        assert slates.dtype == np.int64
        assert slates.min() >= 0 and slates.max() < cfg.n_candidates
        assert (np.sort(slates, axis=1)[:, 1:] != np.sort(slates, axis=1)[:, :-1]).all()
    greedy = policy.act(world.recommender_obs(), ActContext(
        world, np.arange(world.n_sessions), world.sessions.user.copy(),
        world.candidates.item_id.copy()), explore=False)
    assert greedy.shape == (world.n_sessions, cfg.slate_size)


@pytest.mark.parametrize("name", NAMES)
def test_baseline_privileged_flag(name):
    policy = make_baseline(name, CONFIGS["default"], World(CONFIGS["default"], 1).layout)
    assert policy.privileged is (name in PRIVILEGED)


@pytest.mark.parametrize("name", NAMES)
def test_baseline_deterministic_for_seed(name):
    cfg = CONFIGS["default"]
    runs = []
    for _ in range(2):
        world = new_world(cfg, seed=3)
        runs.append(rollout(make_baseline(name, cfg, world.layout, seed=7), world, 8))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_baseline_seed_changes_random_slates():
    cfg = CONFIGS["default"]
    world = new_world(cfg)
    obs = world.recommender_obs()
    a = make_baseline("random", cfg, world.layout, seed=0).act(obs)
    b = make_baseline("random", cfg, world.layout, seed=1).act(obs)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("config", ["default", "recsim_ie"])
@pytest.mark.parametrize("name", NAMES)
def test_baseline_state_dict_round_trip_resumes_exactly(name, config):
    cfg = CONFIGS[config]
    world = new_world(cfg, seed=5)
    policy = make_baseline(name, cfg, world.layout, seed=2)
    rollout(policy, world, 12)
    state = policy.state_dict()
    assert _plain(state)
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    restored = make_baseline(name, cfg, world.layout, seed=99)
    restored.load_state_dict(torch.load(buf, weights_only=True))
    twin = copy.deepcopy(world)
    for a, b in zip(rollout(policy, world, 6), rollout(restored, twin, 6)):
        np.testing.assert_array_equal(a, b)


def test_load_state_dict_rejects_other_baseline():
    cfg = CONFIGS["default"]
    layout = World(cfg, 1).layout
    state = make_baseline("ucb1", cfg, layout).state_dict()
    with pytest.raises(ValueError, match="ucb1"):
        make_baseline("thompson", cfg, layout).load_state_dict(state)


def test_make_baseline_rejects_unknown_name_and_bad_params():
    cfg = CONFIGS["default"]
    layout = World(cfg, 1).layout
    with pytest.raises(ValueError, match="name must be one of"):
        make_baseline("nope", cfg, layout)
    with pytest.raises(ValueError, match="epsilon"):
        make_baseline("epsilon_greedy", cfg, layout, epsilon=1.5)
    with pytest.raises(ValueError, match="alpha"):
        make_baseline("linucb", cfg, layout, alpha=-1.0)
    with pytest.raises(ValueError, match="seed"):
        make_baseline("random", cfg, layout, seed=-1)
    with pytest.raises(ValueError, match="layout"):
        make_baseline("random", cfg, World(CONFIGS["recsim_ie"], 1).layout)
    with pytest.raises(TypeError):
        make_baseline("random", cfg, layout, epsilon=0.1)


@pytest.mark.parametrize("name", sorted(PRIVILEGED) + ["online_mf"])
def test_context_needed(name):
    cfg = CONFIGS["default"]
    world = new_world(cfg)
    with pytest.raises(ValueError, match="ActContext"):
        make_baseline(name, cfg, world.layout).act(world.recommender_obs(), None)


def test_act_rejects_wrong_obs_shape():
    cfg = CONFIGS["default"]
    policy = make_baseline("random", cfg, World(cfg, 1).layout)
    with pytest.raises(ValueError, match="obs must have shape"):
        policy.act(np.zeros((4, 3), np.float32))


# --------------------------------------------------------------------------- helpers
def test_top_slate_orders_by_score_and_breaks_ties_at_random():
    rng = np.random.default_rng(0)
    scores = np.array([[0.1, 0.9, 0.5, np.nan]])
    np.testing.assert_array_equal(top_slate(scores, 3, rng), [[1, 2, 0]])
    firsts = top_slate(np.zeros((4000, 4)), 1, rng)[:, 0]
    counts = np.bincount(firsts, minlength=4)
    assert counts.min() > 850  # about 1000 each: no bias toward low indices


def test_item_counts_recovers_catalog_counters():
    cfg = CONFIGS["default"]
    world = new_world(cfg)
    rollout(make_baseline("random", cfg, world.layout), world, 30, learn=False)
    _, cand = world.layout.split(world.recommender_obs())
    imp, clicks = item_counts(cand, world.layout.content_dim)
    np.testing.assert_array_equal(imp, world.candidates.impressions)
    np.testing.assert_array_equal(clicks, world.candidates.clicks)


def test_expected_engagement_matches_realised_watch_time():
    cfg = CONFIGS["default"]
    world = new_world(cfg, n_sessions=4096, seed=1)
    slots = np.arange(world.n_sessions)
    e = expected_engagement(world, slots)
    slates = top_slate(np.zeros((world.n_sessions, cfg.n_candidates)), cfg.slate_size,
                       np.random.default_rng(0))
    probs = choice_probabilities(np.take_along_axis(e.utility, slates, 1),
                                 np.ones(slates.shape, bool), cfg)
    predicted = (probs[:, :-1] * np.take_along_axis(e.reward, slates, 1)).sum(1).mean()
    realised = world.step(slates).watch_time.mean()
    assert abs(realised - predicted) < 0.05 * predicted  # about 8 standard errors


def test_content_similarity_learns_profile_from_clicks():
    cfg = CONFIGS["default"]  # hashing content: profiles are learned, not read from history
    world = new_world(cfg)
    policy = make_baseline("content_similarity", cfg, world.layout)
    assert isinstance(policy, ContentSimilarity) and policy.profile == "learned"
    rollout(policy, world, 20)
    assert np.abs(policy.profiles).sum() > 0
    topic_cfg = CONFIGS["cascade"]  # topic content: the observed history is the profile
    topic = make_baseline("content_similarity", topic_cfg, World(topic_cfg, 1).layout)
    assert topic.profile == "history"


def test_content_projected_maps_text_content_to_topics():
    cfg = make_config("cold_start", n_items_initial=100, n_items_max=300)  # hashing content
    world = World(cfg, n_sessions=16)
    world.reset(0)
    policy = make_baseline("content_projected", cfg, world.layout)
    assert policy.topic_view(np.zeros((1, cfg.n_candidates, world.layout.item_dim))) is None
    rollout(policy, world, 200)
    cat = world.catalog
    live = np.flatnonzero(cat.active)
    pred = cat.content[live].astype(np.float64) @ policy.M
    # the regression was fitted on clicked items only; it names the main topic of almost all
    assert (pred.argmax(axis=1) == cat.main_topic[live]).mean() > 0.8


def test_content_projected_rejects_bad_parameters():
    layout = World(CONFIGS["default"], 1).layout
    with pytest.raises(ValueError, match="l2"):
        make_baseline("content_projected", CONFIGS["default"], layout, l2=0.0)
    with pytest.raises(ValueError, match="refresh"):
        make_baseline("content_projected", CONFIGS["default"], layout, refresh=0)


def test_content_beats_random_on_cold_start_items():
    """On ``cold_start`` (one item per step, choosy users) content-based recommenders click
    through on new items far more often than random ones (benchmark: 1.6-1.7x with MiniLM)."""
    cfg = make_config("cold_start")
    layout = World(cfg, 1).layout
    ctr = {name: deployed(make_baseline(name, cfg, layout), cfg, n_sessions=4,
                            steps=600, seed=1000)["cold_start_ctr"]
           for name in ("random", "content_projected")}
    assert ctr["content_projected"] > 1.3 * ctr["random"], ctr


# --------------------------------------------------------------------------- behaviour
def test_myopic_oracle_beats_random_on_recsim_ie():
    cfg = make_config("recsim_ie")
    layout = World(cfg, 1).layout
    ret = {name: deployed(make_baseline(name, cfg, layout), cfg, n_sessions=256,
                            steps=400, seed=0, warmup_steps=100)["return"]
           for name in ("random", "myopic_oracle")}
    # RecSim's reference: random 154, myopic 166 (best quality 280)
    assert 145 < ret["random"] < 163
    assert ret["myopic_oracle"] > ret["random"] + 6


@pytest.mark.parametrize(("preset", "overrides", "n_sessions"), [
    ("recsim_ie", {}, 64),  # about 286 against 166
    # long_term with sessions ended by their budget, not by patience (about 168 against 143):
    # as shipped, patience 4 ends every session after ~9 steps with most of the budget unspent,
    # so the budget that quality gives back is worth nothing and the two oracles tie there
    ("long_term", {"patience": None}, 128),
])
def test_horizon_oracle_beats_myopic_oracle(preset, overrides, n_sessions):
    cfg = make_config(preset, **overrides)
    layout = World(cfg, 1).layout
    ret = {name: deployed(make_baseline(name, cfg, layout), cfg, n_sessions=n_sessions,
                            steps=300, seed=1, warmup_steps=100)["return"]
           for name in ("myopic_oracle", "horizon_oracle")}
    assert ret["horizon_oracle"] > 1.08 * ret["myopic_oracle"]


def test_planning_oracle_beats_myopic_where_the_horizon_matters():
    cfg = make_config("recsim_ie")
    layout = World(cfg, 1).layout
    ret = {name: deployed(make_baseline(name, cfg, layout, **kw), cfg, n_sessions=16,
                            steps=120, seed=2, warmup_steps=20)["return"]
           for name, kw in (("myopic_oracle", {}), ("long_term_oracle", {"lookahead": 4}))}
    assert ret["long_term_oracle"] > 1.08 * ret["myopic_oracle"]


def test_planning_oracle_forks_without_touching_the_world():
    cfg = make_config("long_term", n_users=64, n_items_initial=60, n_items_max=200)
    world = World(cfg, 8)
    world.reset(3)
    planner = make_baseline("long_term_oracle", cfg, world.layout, lookahead=3)
    myopic = make_baseline("myopic_oracle", cfg, world.layout)
    only_myopic = make_baseline("long_term_oracle", cfg, world.layout, horizons=[0.0],
                                lookahead=2)
    for _ in range(5):
        ctx = ActContext(world, np.arange(8), world.sessions.user.copy(),
                         world.candidates.item_id.copy())
        obs = world.recommender_obs()
        before = world.state_dict()
        slates = planner.act(obs, ctx)
        after = world.state_dict()
        # the fork has its own state and dice: the world is exactly as it was
        assert before["t"] == after["t"] and before["rngs"] == after["rngs"]
        for group, arrays in before["groups"].items():
            for name, value in arrays.items():
                np.testing.assert_array_equal(value, after["groups"][group][name])
        assert slates.shape == (8, cfg.slate_size)
        assert planner.last_choice in (0, 1)
        # with the myopic oracle as its only base policy, the planner is the myopic oracle
        np.testing.assert_array_equal(only_myopic.act(obs, ctx), myopic.act(obs, ctx))
        world.step(slates)


def test_planning_oracle_refuses_bad_settings():
    cfg = make_config("default", n_users=32, n_items_initial=60, n_items_max=200)
    layout = World(cfg, 1).layout
    with pytest.raises(ValueError, match="lookahead"):
        make_baseline("long_term_oracle", cfg, layout, lookahead=0)
    with pytest.raises(ValueError, match="horizons"):
        make_baseline("long_term_oracle", cfg, layout, horizons=[])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_learners_beat_random_ctr_on_easy_config(seed):
    layout = World(EASY, 1).layout

    def ctr(name: str) -> float:
        policy = make_baseline(name, EASY, layout, seed=seed)
        return deployed(policy, EASY, n_sessions=32, steps=150, seed=seed,
                        warmup_steps=150)["ctr"]

    base = ctr("random")
    for name in LEARNERS:
        assert ctr(name) > base + 0.01, name


def test_linucb_incremental_inverse_matches_full_solve():
    cfg = CONFIGS["default"]  # 64-dim hashing content: dim 706, Woodbury updates
    world = new_world(cfg)
    policy = make_baseline("linucb", cfg, world.layout)
    rollout(policy, world, 40)
    assert not policy._stale  # the incremental path kept A^-1 current
    np.testing.assert_allclose(policy._A_inv @ policy.A, np.eye(policy.dim), atol=1e-8)
    np.testing.assert_allclose(policy._theta, np.linalg.solve(policy.A, policy.b), atol=1e-8)
