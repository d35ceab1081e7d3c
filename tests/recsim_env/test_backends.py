"""The compiled world step (``backend="numba"``) gives the same episodes as the plain-numpy
reference, bit for bit, through every face: observations, rewards, terminations, infos and
metrics, on every preset, with providers publishing, user agents choosing, cold-start arrivals
and each content path (hashing, topic, MiniLM's through a stand-in model, topic mixtures).

``tests/recsim_env/test_physics_digests.py`` pins both backends to the digests recorded from the
numpy step; this file compares the two backends through the faces, which the digests do not
drive."""

from __future__ import annotations

import numpy as np
import pytest

import recsim_env
from recsim_env import content
from recsim_env.config import PRESETS
from recsim_env.world import BACKEND_ENV, BACKENDS, World
from tests.recsim_env.helpers import assert_same, random_actions, random_slates

SMALL = dict(n_users=40, n_recommenders=3, n_items_initial=60, n_items_max=160)


def _overrides(preset: str, **extra) -> dict:
    return dict(n_recommenders=3, **extra) if preset == "recsim_ie" else dict(SMALL, **extra)


def _on_backend(monkeypatch, backend: str, make):
    """Build with ``make()`` while worlds default to ``backend``; check it took."""
    monkeypatch.setenv(BACKEND_ENV, backend)
    env = make()
    world = env.world if hasattr(env, "world") else env.unwrapped.world
    assert world.backend == backend
    return env


def _parallel_trace(env, seed: int, n_steps: int) -> list:
    obs, infos = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    trace = [obs, infos]
    for _ in range(n_steps):
        trace.append(env.step(random_actions(env, rng)))
        if not env.agents:
            break
    trace.append(env.metrics())
    return trace


def _aec_trace(env, seed: int, n_turns: int) -> list:
    env.reset(seed=seed)
    for a in env.possible_agents:
        env.action_space(a).seed(seed)
    trace = []
    for _ in range(n_turns):
        agent = env.agent_selection
        obs, reward, term, trunc, info = env.last()
        trace.append((agent, obs, reward, term, trunc, info))
        env.step(None if term or trunc else env.action_space(agent).sample())
        if not env.agents:
            break
    trace.append(env.world.metrics())
    return trace


@pytest.mark.parametrize("preset", PRESETS)
def test_parallel_episodes_identical_on_both_backends(monkeypatch, preset):
    kw = _overrides(preset, n_providers=0 if preset == "recsim_ie" else 2)
    traces = [_parallel_trace(_on_backend(monkeypatch, b, lambda: recsim_env.parallel_env(
        preset=preset, max_cycles=120, **kw)), 5, 200) for b in BACKENDS]
    assert len(traces[0]) == 123
    assert_same(*traces)


@pytest.mark.parametrize("preset", ["default", "recsim_ie", "cold_start"])
def test_aec_with_user_agents_identical_on_both_backends(monkeypatch, preset):
    kw = _overrides(preset, n_user_agents=2, **({} if preset == "recsim_ie" else
                                                 {"n_providers": 1}))
    traces = [_aec_trace(_on_backend(monkeypatch, b, lambda: recsim_env.env(
        preset=preset, max_cycles=60, **kw)), 3, 600) for b in BACKENDS]
    assert_same(*traces)


@pytest.mark.parametrize("preset", ["default", "recsim_ie"])
def test_view_and_vecenv_identical_on_both_backends(monkeypatch, preset):
    from recsim_env.vector import RecommenderVecEnv

    def view_trace(env):
        obs, info = env.reset(seed=4)
        rng = np.random.default_rng(4)
        cfg = env.unwrapped.config
        trace = [obs, info]
        for _ in range(150):
            a = random_slates(rng, 1, cfg.n_candidates, cfg.slate_size)[0]
            out = env.step(int(a[0]) if cfg.slate_size == 1 else a)
            trace.append(out)
            if out[2] or out[3]:
                trace.append(env.reset())
        return trace

    def vec_trace(venv):
        venv.seed(9)
        trace = [venv.reset()]
        rng = np.random.default_rng(9)
        cfg = venv.config
        for _ in range(150):
            a = random_slates(rng, venv.num_envs, cfg.n_candidates, cfg.slate_size)
            trace.append(venv.step(a if cfg.slate_size > 1 else a[:, 0]))
        trace.append(venv.world.metrics())
        return trace

    views = [view_trace(_on_backend(monkeypatch, b, lambda: recsim_env.single_agent_env(
        preset=preset, max_session_steps=40, **_overrides(preset)))) for b in BACKENDS]
    assert_same(*views)
    vecs = [vec_trace(_on_backend(monkeypatch, b, lambda: RecommenderVecEnv(
        5, preset=preset, max_session_steps=30))) for b in BACKENDS]
    assert_same(*vecs)


class _StandInSentenceModel:
    """MiniLM's shape (384 dims, not unit norm) without loading the model."""

    def __init__(self) -> None:
        self.hasher = content.HashingEncoder(10, dim=content.MINILM_DIM)

    def encode(self, texts, **kwargs):
        return self.hasher.encode_texts(texts) * 3.0


@pytest.mark.parametrize("encoder, extra", [
    ("minilm", {"content_dim": 24}),
    ("topic", {}),
    ("none", {}),
    ("hashing", {"topic_purity": 1.0, "choice_model": "cascade", "slate_size": 4}),
])
def test_content_paths_identical_on_both_backends(monkeypatch, encoder, extra):
    if encoder == "minilm":  # the stand-in: the world's path is the same for the real model
        model = _StandInSentenceModel()
        monkeypatch.setattr(content, "_missing_llm_packages", lambda: [])
        monkeypatch.setattr(content, "load_minilm_model", lambda: model)
    kw = dict(SMALL, n_providers=1, content_encoder=encoder, **extra)
    traces = [_parallel_trace(_on_backend(monkeypatch, b, lambda: recsim_env.parallel_env(
        max_cycles=80, **kw)), 2, 100) for b in BACKENDS]
    assert_same(*traces)


def _same_steps(worlds, rng, n_steps: int) -> None:
    """Step ``worlds`` with the same random slates; every step's results and observations,
    and the final metrics, must be the same."""
    cfg = worlds[0].config
    for _ in range(n_steps):
        slates = random_slates(rng, worlds[0].n_sessions, cfg.n_candidates, cfg.slate_size)
        res = [tuple(w.step(slates)) for w in worlds]
        obs = [w.recommender_obs() for w in worlds]
        for w in range(1, len(worlds)):
            assert_same(res[0], res[w])
            assert_same(obs[0], obs[w])
    for w in worlds[1:]:
        assert_same(worlds[0].metrics(), w.metrics())


def _stepped_world(backend: str, seed: int, n_steps: int) -> tuple[World, np.random.Generator]:
    """A small ``default`` world on ``backend`` after ``n_steps`` random steps, and the
    generator that drew them."""
    cfg = recsim_env.make_config("default", **SMALL)
    world = World(cfg, backend=backend)
    world.reset(seed)
    rng = np.random.default_rng(seed)
    for _ in range(n_steps):
        world.step(random_slates(rng, 3, cfg.n_candidates, cfg.slate_size))
    return world, rng


def test_wide_slates_fall_back_to_numpy_sums():
    """Slates of 16 or more positions: numpy sums the choice weights pairwise, so the compiled
    path takes numpy's probabilities; episodes stay identical."""
    cfg = recsim_env.make_config("default", **SMALL, n_candidates=24, slate_size=16)
    worlds = [World(cfg, backend=b) for b in BACKENDS]
    for w in worlds:
        w.reset(1)
    _same_steps(worlds, np.random.default_rng(0), 60)


def test_state_dict_restores_across_backends():
    """A checkpoint taken on one backend continues identically on the other."""
    a, rng = _stepped_world("numpy", 3, 30)
    b = World(a.config, backend="numba")
    b.load_state_dict(a.state_dict())
    _same_steps([a, b], rng, 30)


def test_unknown_backend_named_in_error(monkeypatch):
    cfg = recsim_env.make_config("recsim_ie")
    with pytest.raises(ValueError, match=r"backend must be one of \('numba', 'numpy'\), got 'jax'"):
        World(cfg, backend="jax")
    monkeypatch.setenv(BACKEND_ENV, "cuda")
    with pytest.raises(ValueError, match=f"got 'cuda' \\(from the argument or {BACKEND_ENV}\\)"):
        World(cfg)


@pytest.mark.parametrize("n_topics", [3, 10, 17])
def test_einsum_dot_products_fall_back_to_numpy(n_topics):
    """Topic mixtures: the kernels restate numpy's einsum summation order where
    ``einsum_dot_matches`` finds it does, and numpy's einsum feeds them otherwise; both
    give the numpy step's episodes."""
    from recsim_env import kernels

    cfg = recsim_env.make_config("default", **SMALL, n_topics=n_topics)
    worlds = [World(cfg, backend=b) for b in ("numpy", "numba", "numba")]
    assert bool(worlds[1]._kflags[kernels.F_DOT]) == kernels.einsum_dot_matches(n_topics)
    worlds[2]._kflags[kernels.F_DOT] = 0  # as on a numpy build whose order differs
    for w in worlds:
        w.reset(2)
    _same_steps(worlds, np.random.default_rng(2), 60)


def test_einsum_dot_restates_einsum_where_it_claims_to():
    from recsim_env import kernels

    rng = np.random.default_rng(7)
    for n in (1, 2, 7, 8, 9, 16, 20, 31):
        if not kernels.einsum_dot_matches(n):
            continue
        a = rng.normal(size=(200, n))
        for b in (rng.random((200, 2, n)).astype(np.float32), rng.normal(size=(200, 2, n))):
            got = np.empty((200, 2))
            kernels._einsum_rows(a, b, got)
            np.testing.assert_array_equal(got, np.einsum("st,skt->sk", a, b))


def test_many_sessions_many_impressions_identical_on_both_backends():
    """Hundreds of sessions on a small catalog: impression counts outgrow the compiled
    path's log1p table within the run (the table grows; features stay numpy's)."""
    cfg = recsim_env.make_config("default", **SMALL)
    worlds = [World(cfg, n_sessions=256, backend=b) for b in BACKENDS]
    for w in worlds:
        w.reset(5)
    _same_steps(worlds, np.random.default_rng(5), 40)
    assert worlds[0].candidates.impressions.max() > 256


def test_states_that_stored_catalog_candidates_features_load():
    """States saved when the candidates' topic mixtures and content were stored with them
    (they are now read from the catalog) restore and continue identically."""
    a, rng = _stepped_world("numba", 4, 20)
    b = World(a.config, backend="numba")
    state = a.state_dict()
    assert "content" not in state["groups"]["candidates"]
    state["groups"]["candidates"].update(content=a.candidate_content(),
                                         topic_mix=a.candidate_topic_mix())
    b.load_state_dict(state)
    assert b.candidates.content is None and b.candidates.topic_mix is None
    _same_steps([a, b], rng, 20)
