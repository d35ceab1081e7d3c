"""SB3 policies that score candidates (``agents.sb3_policies``)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import DQN, PPO

from agents.factory import make_learner
from agents.sb3_policies import (
    CandidateQPolicy,
    CandidateScoringPolicy,
    SlateDistribution,
    decode_codes,
    encode_codes,
)
from recsim_env import World, make_config
from recsim_env.slates import NoRepeatSlatesVec, decode_no_repeat, encode_no_repeat
from recsim_env.vector import RecommenderVecEnv
from recsim_env.views import RecommenderView

SMALL = dict(n_users=32, n_items_initial=60, n_items_max=200)


def _obs_and_policy(preset: str = "default", **kw):
    env = RecommenderVecEnv(4, preset=preset, **SMALL)
    model = PPO(CandidateScoringPolicy, env, n_steps=8, batch_size=16, seed=0, device="cpu", **kw)
    return env, env.reset(), model


def _permute_candidates(obs: np.ndarray, layout, perm: np.ndarray) -> np.ndarray:
    user, cand = layout.split(obs)
    return np.concatenate([user, cand[:, perm].reshape(len(obs), -1)], axis=1)


def test_every_recommender_face_carries_its_layout():
    cfg = make_config("default", **SMALL)
    layout = World(cfg).layout
    env = RecommenderVecEnv(4, preset="default", **SMALL)
    assert env.observation_space.layout == layout
    view = RecommenderView(config=cfg)
    assert view.observation_space.layout == layout
    # equal to the plain Box of the same shape (SB3 compares spaces when loading)
    assert env.observation_space == spaces.Box(-np.inf, np.inf, (layout.size,), np.float32)


def test_scores_are_permutation_equivariant_and_slates_never_repeat():
    env, obs, model = _obs_and_policy()
    policy, layout = model.policy, env.observation_space.layout
    assert policy.scores_candidates
    perm = np.random.default_rng(0).permutation(layout.n_candidates)
    with torch.no_grad():
        s = policy.get_distribution(torch.as_tensor(obs)).scores.numpy()
        sp = policy.get_distribution(
            torch.as_tensor(_permute_candidates(obs, layout, perm))).scores.numpy()
    np.testing.assert_allclose(sp, s[:, perm], rtol=1e-5, atol=1e-6)
    for _ in range(20):
        slates, _ = model.predict(obs, deterministic=False)
        assert all(len(set(row)) == slates.shape[1] for row in slates.tolist())
    mode, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(mode, np.argsort(-s, axis=1, kind="stable")[:, :mode.shape[1]])


@pytest.mark.parametrize("encoding,k", [("positions", 2), ("no_repeat", 3), ("item", 1)])
def test_plackett_luce_probabilities_sum_to_one_over_all_slates(encoding, k):
    c = 4
    dist = SlateDistribution(c, k, encoding)
    scores = torch.tensor([[0.3, -1.0, 2.0, 0.5], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    slates = torch.tensor(list(itertools.permutations(range(c), k)))
    total = torch.zeros(2, dtype=torch.float64)
    for slate in slates:
        rows = slate[None].repeat(2, 1)
        if encoding == "no_repeat":
            rows = encode_codes(rows, c)
        elif encoding == "item":
            rows = rows[:, 0]
        total += dist.proba_distribution(scores).log_prob(rows).exp()
    np.testing.assert_allclose(total.numpy(), 1.0, rtol=1e-12)
    # uniform scores: every ordered slate equally likely, entropy log(#slates)
    d = dist.proba_distribution(scores)
    d.log_prob(d.mode())
    assert d.entropy()[1].item() == pytest.approx(np.log(len(slates)))


def test_sampling_matches_plackett_luce():
    torch.manual_seed(0)
    scores = torch.tensor([[1.0, 0.0, -1.0]]).repeat(20_000, 1)
    dist = SlateDistribution(3, 2, "positions").proba_distribution(scores)
    slates = dist.sample()
    first = np.bincount(slates[:, 0].numpy(), minlength=3) / len(slates)
    np.testing.assert_allclose(first, torch.softmax(scores[0], 0).numpy(), atol=0.015)
    # second position given first = 0: softmax over candidates 1 and 2
    given0 = slates[slates[:, 0] == 0, 1].numpy()
    assert np.mean(given0 == 1) == pytest.approx(1 / (1 + np.exp(-1.0)), abs=0.02)


def test_torch_code_twins_match_numpy():
    rng = np.random.default_rng(0)
    slates = np.stack([rng.permutation(7)[:3] for _ in range(50)])
    codes = encode_no_repeat(slates, 7)
    np.testing.assert_array_equal(encode_codes(torch.as_tensor(slates), 7).numpy(), codes)
    np.testing.assert_array_equal(decode_codes(torch.as_tensor(codes), 7).numpy(),
                                  decode_no_repeat(codes, 7))


def test_ppo_trains_saves_and_loads_on_slates_and_codes(tmp_path):
    env, obs, model = _obs_and_policy()
    model.learn(64)
    model.save(tmp_path / "ppo")
    loaded = PPO.load(tmp_path / "ppo", env=env, device="cpu")
    assert isinstance(loaded.policy, CandidateScoringPolicy) and loaded.policy.scores_candidates
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0],
                                  model.predict(obs, deterministic=True)[0])
    codes = NoRepeatSlatesVec(RecommenderVecEnv(4, preset="default", **SMALL))
    m2 = PPO(CandidateScoringPolicy, codes, n_steps=8, batch_size=16, seed=0, device="cpu")
    m2.learn(32)
    assert m2.action_space.contains(m2.predict(codes.reset())[0][0])


def test_plain_mlp_where_there_are_no_candidates():
    cfg = make_config("default", n_providers=2, **SMALL)
    learner = make_learner("ppo", cfg, role="provider", n_rows=2)  # MlpPolicy by default
    obs = np.zeros((2, World(cfg).provider_obs_dim), np.float32)
    assert learner.act(obs).shape == (2,)
    # the candidate-scoring policy on a provider's spaces is SB3's MLP actor-critic
    obs_space, act_space = learner.model.observation_space, learner.model.action_space
    policy = CandidateScoringPolicy(obs_space, act_space, lambda _: 1e-3)
    assert not policy.scores_candidates
    actions, values, log_prob = policy(torch.as_tensor(obs))
    assert actions.shape == (2,) and values.shape == (2, 1) and log_prob.shape == (2,)


def test_layout_that_does_not_fit_is_refused():
    cfg = make_config("default", **SMALL)
    layout = World(cfg).layout
    box = spaces.Box(-np.inf, np.inf, (layout.size + 1,), np.float32)
    with pytest.raises(ValueError, match="does not fit the layout"):
        CandidateScoringPolicy(box, spaces.MultiDiscrete([10, 10]), lambda _: 1e-3, layout=layout)
    with pytest.raises(ValueError, match="not a slate over the layout's 10 candidates"):
        CandidateScoringPolicy(layout.space(), spaces.MultiDiscrete([5, 5]), lambda _: 1e-3)


def test_dqn_q_network_scores_candidates_and_learns():
    cfg = make_config("default", **SMALL)
    one = make_config("default", slate_size=1, **SMALL)
    env = RecommenderVecEnv(4, preset="default", slate_size=1, **SMALL)
    model = DQN(CandidateQPolicy, env, learning_starts=16, batch_size=8, buffer_size=500,
                seed=0, device="cpu")
    model.learn(64)
    obs = env.reset()
    layout = env.observation_space.layout
    perm = np.random.default_rng(1).permutation(layout.n_candidates)
    with torch.no_grad():
        q = model.policy.q_net(torch.as_tensor(obs)).numpy()
        qp = model.policy.q_net(torch.as_tensor(_permute_candidates(obs, layout, perm))).numpy()
    assert q.shape == (4, layout.n_candidates)
    np.testing.assert_allclose(qp, q[:, perm], rtol=1e-5, atol=1e-6)
    # the project's adapters pick the candidate-scoring policy by themselves
    assert isinstance(make_learner("sb3_dqn", one, n_rows=4).model.policy, CandidateQPolicy)
    topk = make_learner("sb3_dqn", cfg, n_rows=4)
    assert isinstance(topk.model.policy, CandidateQPolicy)
    assert isinstance(make_learner("ppo", cfg, n_rows=4).model.policy, CandidateScoringPolicy)


def test_short_ppo_run_with_candidate_scoring_beats_random_slates_on_recsim_ie(tmp_path):
    """A learning smoke test (seeded, not timed): 8,192 env steps of PPO with the candidate-
    scoring policy, through the project's runner, against random slates on a held-out world."""
    from agents.evaluation import evaluate
    from agents.runner import RunConfig, Runner

    cfg = make_config("recsim_ie")
    steps = 8192
    ppo = make_learner("ppo", cfg, n_rows=32, seed=0, total_steps=steps, n_steps=16,
                       batch_size=256, n_epochs=10, learning_rate=3e-3, gamma=0.99,
                       ent_coef=0.0)
    run = RunConfig(total_steps=steps, n_sessions=32, seed=0, eval_steps=1, eval_seeds=(99,),
                    progress=False, save_checkpoints=False, run_root=str(tmp_path))
    runner = Runner(cfg, {"recommender": ppo}, run)
    runner.train()
    runner.close()
    protocol = dict(seed=100, n_sessions=32, steps=60, warmup_steps=0, max_session_steps=1000)
    learned = evaluate(ppo, cfg, **protocol)["return"]
    random = evaluate(make_learner("random", cfg, seed=0), cfg, **protocol)["return"]
    assert learned > random + 5, (learned, random)  # about 177 against 153
