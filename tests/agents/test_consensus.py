"""Tests for agents/consensus.py: the step, graphs, weights, validation, schedule, logging."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from agents.consensus import (
    Consensus,
    ConsensusMember,
    ConsensusResult,
    ExponentialDecay,
    LinearDecay,
    adjacency,
    consensus_step,
    spectral_rate,
    weight_matrix,
)

PAIR = np.array([[0.0, 1.0], [1.0, 0.0]])


def tensors(*rows: list[float]) -> list[list[torch.Tensor]]:
    """One single-tensor member per row, float64."""
    return [[torch.tensor(row, dtype=torch.float64)] for row in rows]


def mlp(seed: int) -> nn.Module:
    """A small MLP with seeded, member-specific weights."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2))


def stacked(members: list[nn.Module]) -> dict[str, torch.Tensor]:
    """name -> (n, ...) clone of each parameter across members."""
    names = [name for name, _ in members[0].named_parameters()]
    return {
        name: torch.stack([dict(m.named_parameters())[name].detach().clone() for m in members])
        for name in names
    }


def disagreement(members: list[list[torch.Tensor]]) -> float:
    """sum_i ||theta_i - mean||^2 over all tensors, float64."""
    total = 0.0
    for k in range(len(members[0])):
        x = torch.stack([m[k].detach().double() for m in members])
        total += float((x - x.mean(0)).square().sum())
    return total


def mixing(w: np.ndarray, alpha: float) -> np.ndarray:
    """I - alpha * (diag(W 1) - W) from the off-diagonal part, computed independently."""
    off = w - np.diag(np.diag(w))
    return np.eye(len(w)) - alpha * (np.diag(off.sum(1)) - off)


def slowest_direction(w: np.ndarray, alpha: float) -> np.ndarray:
    """Unit vector orthogonal to 1 along the eigenvalue of largest |.| of the mixing matrix."""
    n = len(w)
    vals, vecs = np.linalg.eigh(mixing(w, alpha) - np.full((n, n), 1.0 / n))
    return vecs[:, np.argmax(np.abs(vals))]


class FakeRecorder:
    """Collects .record calls like SB3's Logger."""

    def __init__(self) -> None:
        self.records: list[tuple[str, float]] = []

    def record(self, key: str, value: float) -> None:
        self.records.append((key, value))


# --------------------------------------------------------------------------- arithmetic


def test_consensus_step_worked_example() -> None:
    members = tensors([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    result = consensus_step(members, 0.1, weights=PAIR)
    torch.testing.assert_close(members[0][0], torch.tensor([1.3, 2.3, 3.3], dtype=torch.float64))
    torch.testing.assert_close(members[1][0], torch.tensor([3.7, 4.7, 5.7], dtype=torch.float64))
    # D = 2 * 3 * 1.5^2 = 13.5, then (1 - 2 alpha)^2 = 0.64 of it.
    assert result == pytest.approx(ConsensusResult(13.5, 0.64 * 13.5))


def test_consensus_step_half_alpha_averages_two() -> None:
    members = tensors([1.0, -2.0, 7.0], [3.0, 4.0, -1.0])
    result = consensus_step(members, 0.5, weights=PAIR)
    expected = torch.tensor([2.0, 1.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(members[0][0], expected)
    torch.testing.assert_close(members[1][0], expected)
    assert result.disagreement_after == pytest.approx(0.0, abs=1e-12)


def test_consensus_step_alpha_one_swaps_two() -> None:
    a = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    b = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    members = [[a.clone()], [b.clone()]]
    for _ in range(2):
        result = consensus_step(members, 1.0, weights=PAIR)
        assert result.disagreement_after == pytest.approx(result.disagreement_before)
        members[0][0], members[1][0] = members[1][0], members[0][0]
        # After swapping the names back, each is bit-identical to its start.
        assert torch.equal(members[0][0], a) and torch.equal(members[1][0], b)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.25, 0.5, 0.8, 1.0])
def test_consensus_step_two_agent_factor(alpha: float) -> None:
    members = tensors([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    result = consensus_step(members, alpha, weights=PAIR)
    factor = (1 - 2 * alpha) ** 2
    assert result.disagreement_after == pytest.approx(factor * result.disagreement_before)
    assert spectral_rate(PAIR, alpha) == pytest.approx(factor)


def test_consensus_step_alpha_zero_is_bit_identical() -> None:
    members = [mlp(0), mlp(1)]
    before = stacked(members)
    result = consensus_step(members, 0.0)
    assert result.disagreement_after == result.disagreement_before
    for name, value in stacked(members).items():
        assert torch.equal(value, before[name])


GRAPHS = [
    ("complete", 5, {}),
    ("ring", 6, {}),
    ("ring", 2, {}),
    ("star", 7, {}),
    ("random_regular", 10, {"degree": 3, "seed": 0}),
    ("random_regular", 9, {"degree": 4, "seed": np.random.default_rng(1)}),
]


@pytest.mark.parametrize("weights", ["metropolis", "uniform"])
@pytest.mark.parametrize(("topology", "n", "kw"), GRAPHS)
def test_consensus_step_preserves_mean(topology: str, n: int, kw: dict, weights: str) -> None:
    w = weight_matrix(topology, n, weights, **kw)
    np.testing.assert_allclose(w, w.T)
    np.testing.assert_allclose(w.sum(axis=0), 1.0)  # doubly stochastic
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert (w >= 0).all()
    rng = np.random.default_rng(0)
    members = [[torch.from_numpy(rng.normal(size=(3, 4))), torch.from_numpy(rng.normal(size=5))]
               for _ in range(n)]
    means = [torch.stack([m[k] for m in members]).mean(0) for k in range(2)]
    result = consensus_step(members, 0.7, weights=w)
    for k in range(2):
        torch.testing.assert_close(torch.stack([m[k] for m in members]).mean(0), means[k])
    assert result.disagreement_after < result.disagreement_before


@pytest.mark.parametrize(("topology", "n", "kw"), GRAPHS[:2] + GRAPHS[3:])
@pytest.mark.parametrize("alpha", [0.3, 1.0])
def test_spectral_rate_matches_slowest_direction(
    topology: str, n: int, kw: dict, alpha: float
) -> None:
    w = weight_matrix(topology, n, **kw)
    rate = spectral_rate(w, alpha)
    v = torch.from_numpy(slowest_direction(w, alpha))  # (n,)
    # Every entry of every tensor deviates from its mean along v, with its own scale.
    scales = [torch.linspace(-2.0, 3.0, 12).reshape(3, 4), torch.tensor([0.5, -4.0])]
    offsets = [torch.ones(3, 4), torch.arange(2.0)]
    members = [
        [(offsets[k] + v[i] * scales[k].double()) for k in range(2)] for i in range(n)
    ]
    for _ in range(3 if rate > 1e-6 else 1):  # complete graph, alpha 1: averaged in one step
        result = consensus_step(members, alpha, weights=w)
        measured = result.disagreement_after / result.disagreement_before
        assert measured == pytest.approx(rate, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("topology", "n", "kw"), GRAPHS)
def test_spectral_rate_bounds_any_start(topology: str, n: int, kw: dict) -> None:
    w = weight_matrix(topology, n, **kw)
    rate = spectral_rate(w, 1.0)
    g = torch.Generator().manual_seed(3)
    members = [[torch.randn(6, 5, generator=g, dtype=torch.float64)] for _ in range(n)]
    for _ in range(5):
        result = consensus_step(members, 1.0, weights=w)
        assert result.disagreement_after <= rate * result.disagreement_before * (1 + 1e-9) + 1e-15


def test_spectral_rate_notes_rounds_ring_of_10() -> None:
    """NOTES: 'shrinking disagreement 1000x takes about 51 rounds on a ring of 10'.

    That figure (and 66 on a star of 10, ~1,300 on a ring of 50) is for the
    disagreement's norm sqrt(D), i.e. D shrinking 10^6x; D itself (the logged
    squared quantity) shrinks 1000x in about half as many rounds (26).
    """
    w = weight_matrix("ring", 10)
    rate = spectral_rate(w, 1.0)
    rounds_norm = math.log(1e3) / -math.log(math.sqrt(rate))
    rounds_squared = math.log(1e3) / -math.log(rate)
    assert 40 <= rounds_norm <= 65
    assert rounds_norm == pytest.approx(51, abs=1)
    assert rounds_squared == pytest.approx(26, abs=1)
    star = spectral_rate(weight_matrix("star", 10), 1.0)
    assert math.log(1e3) / -math.log(math.sqrt(star)) == pytest.approx(66, abs=1)
    ring50 = spectral_rate(weight_matrix("ring", 50), 1.0)
    assert math.log(1e3) / -math.log(math.sqrt(ring50)) == pytest.approx(1300, rel=0.02)

    # Simulated from the slowest direction: count rounds to shrink D by 1000x and 10^6x.
    v = torch.from_numpy(slowest_direction(w, 1.0))
    members = [[v[i].reshape(1).clone()] for i in range(10)]
    d0 = disagreement(members)
    counts = {}
    for r in range(1, 80):
        d = consensus_step(members, 1.0, weights=w).disagreement_after
        for factor in (1e3, 1e6):
            if factor not in counts and d <= d0 / factor:
                counts[factor] = r
    assert counts == {1e3: math.ceil(rounds_squared), 1e6: math.ceil(rounds_norm)}


# --------------------------------------------------------------------------- graphs and weights


def test_adjacency_named_topologies() -> None:
    ring = adjacency("ring", 5)
    assert ring.dtype == bool and (ring.sum(1) == 2).all() and ring[0, 1] and ring[0, 4]
    star = adjacency("star", 5)
    assert star.sum(1).tolist() == [4, 1, 1, 1, 1]
    complete = adjacency("complete", 4)
    assert complete.sum() == 12 and not complete.diagonal().any()
    assert adjacency("ring", 1).sum() == 0


def test_adjacency_random_regular_is_connected_regular_and_seeded() -> None:
    a = adjacency("random_regular", 20, degree=3, seed=7)
    assert (a.sum(1) == 3).all() and (a == a.T).all() and not a.diagonal().any()
    assert np.array_equal(a, adjacency("random_regular", 20, degree=3, seed=7))
    b = adjacency("random_regular", 20, degree=3, seed=np.random.default_rng(7))
    assert np.array_equal(a, b)  # int seed and Generator from that seed agree
    assert not np.array_equal(a, adjacency("random_regular", 20, degree=3, seed=8))
    w = weight_matrix(a)
    assert spectral_rate(w, 1.0) < 1.0  # connected


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"degree": None, "seed": 0}, "needs an int degree"),
        ({"degree": 10, "seed": 0}, r"degree must be in \[0, n - 1\]"),
        ({"degree": 3, "seed": 0, "n": 9}, "n \\* degree even"),
        ({"degree": 1, "seed": 0}, "connected 1-regular graph"),
        ({"degree": 3, "seed": None}, "needs a seed"),
    ],
)
def test_adjacency_random_regular_rejects(kw: dict, match: str) -> None:
    n = kw.pop("n", 10)
    with pytest.raises(ValueError, match=match):
        adjacency("random_regular", n, **kw)


@pytest.mark.parametrize(
    ("adj", "match"),
    [
        (np.ones((2, 3)), "square"),
        (np.array([[0, 2], [2, 0]]), "0/1 or bool"),
        (np.array([[0, 1], [0, 0]]), "symmetric"),
        (np.array([[1, 1], [1, 0]]), "zero diagonal"),
    ],
)
def test_adjacency_rejects_bad_matrix(adj: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        adjacency(adj)


def test_adjacency_rejects_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown topology 'torus'"):
        adjacency("torus", 4)


def test_weight_matrix_metropolis_and_uniform_values() -> None:
    star = weight_matrix("star", 4)  # hub degree 3, leaves 1 -> every edge 1/4
    assert star[0, 1] == pytest.approx(0.25) and star[1, 1] == pytest.approx(0.75)
    path = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    w = weight_matrix(path)  # degrees 1, 2, 1 -> edges 1/3
    np.testing.assert_allclose(w, [[2 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3], [0, 1 / 3, 2 / 3]])
    np.testing.assert_allclose(weight_matrix("complete", 4, "uniform"), np.full((4, 4), 0.25))
    np.testing.assert_allclose(weight_matrix("complete", 4), np.full((4, 4), 0.25))


def test_weight_matrix_rejects_weights_off_graph() -> None:
    w = np.array([[0, 1, 0.5, 1], [1, 0, 1, 0], [0.5, 1, 0, 1], [1, 0, 1, 0]])
    with pytest.raises(ValueError, match=r"w\[0, 2\] = 0.5 between members that are not neighbo"):
        weight_matrix("ring", 4, w)


# --------------------------------------------------------------------------- validation


INVALID = [
    (np.ones((2, 3)), 0.1, "W must be a square"),
    (np.ones((3, 3)) - np.eye(3), 0.1, r"W must be 2 x 2 \(one row per member\)"),
    (np.array([[0, 1.0], [0.5, 0]]), 0.1, "W must be symmetric"),
    (np.array([[0, np.nan], [np.nan, 0]]), 0.1, "W must be finite"),
]
BYPASSABLE = [
    (np.array([[0, -1.0], [-1.0, 0]]), 0.1, "non-negative off-diagonal weights"),
    (np.zeros((2, 2)), 0.1, "disconnected"),
    (PAIR, -0.1, "alpha must be >= 0"),
    (PAIR, 1.5, r"alpha \* max_i sum_\(j != i\) w_ij must be <= 1"),
]


@pytest.mark.parametrize(("w", "alpha", "match"), INVALID + BYPASSABLE)
def test_consensus_step_rejects_invalid(w: np.ndarray, alpha: float, match: str) -> None:
    members = [mlp(0), mlp(1)]
    before = stacked(members)
    with pytest.raises(ValueError, match=match):
        consensus_step(members, alpha, weights=w)
    for name, value in stacked(members).items():
        assert torch.equal(value, before[name])  # untouched on error


@pytest.mark.parametrize(("w", "alpha", "match"), INVALID)
def test_consensus_step_allow_divergent_still_rejects_malformed(
    w: np.ndarray, alpha: float, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        consensus_step(tensors([1.0], [2.0]), alpha, weights=w, allow_divergent=True)


@pytest.mark.parametrize(("w", "alpha", "match"), BYPASSABLE)
def test_consensus_step_allow_divergent_warns(w: np.ndarray, alpha: float, match: str) -> None:
    members = tensors([1.0, 2.0], [4.0, 6.0])
    with pytest.warns(RuntimeWarning, match=match):
        consensus_step(members, alpha, weights=w, allow_divergent=True)


def test_consensus_step_divergent_alpha_grows_disagreement() -> None:
    members = tensors([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    with pytest.warns(RuntimeWarning, match="oscillates or diverges"):
        result = consensus_step(members, 1.5, weights=PAIR, allow_divergent=True)
    assert result.disagreement_after == pytest.approx(4.0 * result.disagreement_before)
    assert spectral_rate(PAIR, 1.5) == pytest.approx(4.0)


def test_consensus_step_rejects_mismatched_shapes() -> None:
    members = [mlp(0), mlp(1), nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 9))]
    with pytest.raises(ValueError, match=r"member 2 parameter '2.weight' has shape \(9, 8\)"):
        consensus_step(members, 0.5)
    lists = [[torch.zeros(3), torch.zeros(2)], [torch.zeros(3), torch.zeros(4)]]
    with pytest.raises(ValueError, match=r"member 1 parameter '1' has shape \(4,\), expected \(2"):
        consensus_step(lists, 0.5)
    before = stacked(members[:2])
    for name, value in stacked(members[:2]).items():
        assert torch.equal(value, before[name])


def test_consensus_step_rejects_missing_and_shared_parameters() -> None:
    with pytest.raises(ValueError, match="member 1 has no parameter '1'"):
        consensus_step([[torch.zeros(2), torch.zeros(2)], [torch.zeros(2)]], 0.5)
    shared = mlp(0)
    with pytest.raises(ValueError, match="member 1 parameter '0.weight' is the same tensor"):
        consensus_step([shared, shared], 0.5)
    with pytest.raises(ValueError, match="params=.* selects no parameters"):
        consensus_step([mlp(0), mlp(1)], 0.5, params=["nothing"])
    with pytest.raises(TypeError, match="nn.Module, a list/tuple of tensors"):
        consensus_step([{"w": torch.zeros(2)}, {"w": torch.zeros(2)}], 0.5)


# --------------------------------------------------------------------------- subsets and targets


@pytest.mark.parametrize("params", [["0.", "2."], lambda name: not name.startswith("4.")])
def test_consensus_step_param_subset_leaves_others_bit_identical(params: object) -> None:
    members = [mlp(s) for s in range(3)]
    before = stacked(members)
    consensus_step(members, 1.0, params=params)  # complete + Metropolis, alpha 1: averages
    after = stacked(members)
    for name in before:
        if name.startswith("4."):  # personal head
            assert torch.equal(after[name], before[name])
        else:
            expected = before[name].mean(0, keepdim=True).expand_as(before[name])
            torch.testing.assert_close(after[name], expected)


def test_consensus_step_target_equal_to_online_stays_equal() -> None:
    online = [mlp(s) for s in range(3)]
    targets = [copy.deepcopy(m) for m in online]
    members = [ConsensusMember(o, t) for o, t in zip(online, targets, strict=True)]
    consensus_step(members, 0.4, topology="ring")
    for o, t in zip(online, targets, strict=True):
        for (_, po), (_, pt) in zip(o.named_parameters(), t.named_parameters(), strict=True):
            assert torch.equal(po, pt)


def test_consensus_step_target_gets_same_linear_combination() -> None:
    n, alpha = 4, 0.6
    online = [mlp(s) for s in range(n)]
    targets = [mlp(10 + s) for s in range(n)]
    old_online, old_target = stacked(online), stacked(targets)
    w = weight_matrix("star", n)
    m = torch.from_numpy(mixing(w, alpha)).float()
    result = consensus_step(
        [ConsensusMember(o, t) for o, t in zip(online, targets, strict=True)], alpha, weights=w,
        params=["0."],
    )
    new_online, new_target = stacked(online), stacked(targets)
    for name in old_online:
        if name.startswith("0."):
            flat = (n, -1)
            expected_o = (m @ old_online[name].reshape(flat)).reshape(old_online[name].shape)
            expected_t = (m @ old_target[name].reshape(flat)).reshape(old_target[name].shape)
            torch.testing.assert_close(new_online[name], expected_o)
            torch.testing.assert_close(new_target[name], expected_t)
        else:
            assert torch.equal(new_online[name], old_online[name])
            assert torch.equal(new_target[name], old_target[name])
    # Only the selected online tensors count towards the disagreement, never the targets.
    selected = [name for name in old_online if name.startswith("0.")]
    expected_d = disagreement([[old_online[name][i] for name in selected] for i in range(n)])
    assert result.disagreement_before == pytest.approx(expected_d)


def test_consensus_step_rejects_partial_targets() -> None:
    members = [ConsensusMember(mlp(0), mlp(5)), ConsensusMember(mlp(1))]
    with pytest.raises(ValueError, match="member 1 has no target network"):
        consensus_step(members, 0.5)


# --------------------------------------------------------------------------- real networks


def test_consensus_step_torch_mlp_contracts_and_keeps_mean() -> None:
    members = [mlp(s) for s in range(5)]
    before = stacked(members)
    result = consensus_step(members, 0.9, topology="ring")
    after = stacked(members)
    assert result.disagreement_after < spectral_rate(weight_matrix("ring", 5), 0.9) * (
        result.disagreement_before * (1 + 1e-5)
    )
    for name in before:
        torch.testing.assert_close(after[name].mean(0), before[name].mean(0))
    assert all(p.grad is None for m in members for p in m.parameters())


def test_consensus_step_sb3_ppo_policies() -> None:
    ppo = pytest.importorskip("stable_baselines3").PPO
    policies = [ppo("MlpPolicy", "CartPole-v1", seed=s).policy for s in range(3)]
    before = stacked(policies)
    result = consensus_step(policies, 1.0, "metropolis", "complete")
    after = stacked(policies)
    # Complete graph, Metropolis (1/3 everywhere) and alpha = 1: exact averaging.
    assert result.disagreement_before > 1.0
    assert result.disagreement_after < 1e-9 * result.disagreement_before
    for name in before:
        torch.testing.assert_close(after[name].mean(0), before[name].mean(0))
        torch.testing.assert_close(after[name][0], after[name][2])


def test_consensus_step_sb3_ppo_shared_extractor_personal_heads() -> None:
    ppo = pytest.importorskip("stable_baselines3").PPO
    policies = [ppo("MlpPolicy", "CartPole-v1", seed=s).policy for s in range(3)]
    before = stacked(policies)
    result = consensus_step(policies, 0.5, topology="star", params=["mlp_extractor."])
    after = stacked(policies)
    assert result.disagreement_after < result.disagreement_before
    for name in before:
        if name.startswith(("action_net", "value_net")):
            assert torch.equal(after[name], before[name])
        elif name.endswith("weight"):  # SB3 zero-initialises biases: those agree already
            assert not torch.equal(after[name], before[name])


def test_consensus_step_is_deterministic() -> None:
    runs = []
    for _ in range(2):
        members = [mlp(s) for s in range(6)]
        results = [
            consensus_step(members, 0.8, topology="random_regular", degree=3, seed=11)
            for _ in range(3)
        ]
        runs.append((results, stacked(members)))
    assert runs[0][0] == runs[1][0]
    for name, value in runs[0][1].items():
        assert torch.equal(value, runs[1][1][name])


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 6),
    seed=st.integers(0, 2**31 - 1),
    alpha_frac=st.floats(0.0, 1.0),
)
def test_consensus_step_property_mean_kept_and_contracting(
    n: int, seed: int, alpha_frac: float
) -> None:
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.uniform(0.0, 2.0, size=(n, n)) * (rng.random((n, n)) < 0.7), 1)
    upper[np.arange(n - 1), np.arange(1, n)] += 0.1  # a path keeps the graph connected
    w = upper + upper.T
    alpha = alpha_frac / w.sum(1).max()
    members = [[torch.from_numpy(rng.normal(size=(2, 3)))] for _ in range(n)]
    mean = torch.stack([m[0] for m in members]).mean(0)
    result = consensus_step(members, alpha, weights=w)
    torch.testing.assert_close(torch.stack([m[0] for m in members]).mean(0), mean)
    bound = spectral_rate(w, alpha) * result.disagreement_before
    assert result.disagreement_after <= bound * (1 + 1e-9) + 1e-12
    assert result.disagreement_after <= result.disagreement_before * (1 + 1e-9)


# --------------------------------------------------------------------------- Consensus class


def test_consensus_applies_every_k_rounds_and_logs() -> None:
    recorder = FakeRecorder()
    consensus = Consensus(3, alpha=0.5, topology="ring", every=3, logger=recorder)
    members = [mlp(s) for s in range(3)]
    results = [consensus.after_update(members) for _ in range(7)]
    assert [r is not None for r in results] == [False, False, True, False, False, True, False]
    assert consensus.n_updates == 7 and consensus.n_rounds == 2
    assert recorder.records == [
        ("consensus/disagreement", results[2].disagreement_before),
        ("consensus/alpha", 0.5),
        ("consensus/rounds", 1),
        ("consensus/disagreement", results[5].disagreement_before),
        ("consensus/alpha", 0.5),
        ("consensus/rounds", 2),
    ]


def test_consensus_works_with_sb3_logger() -> None:
    logger_mod = pytest.importorskip("stable_baselines3.common.logger")
    logger = logger_mod.Logger(folder=None, output_formats=[])
    consensus = Consensus(2, alpha=0.25, weights=PAIR, logger=logger)
    result = consensus.after_update(tensors([0.0, 0.0], [1.0, 1.0]))
    assert logger.name_to_value["consensus/disagreement"] == result.disagreement_before
    assert logger.name_to_value["consensus/alpha"] == 0.25
    assert logger.name_to_value["consensus/rounds"] == 1


def test_consensus_alpha_schedules() -> None:
    linear = LinearDecay(1.0, 0.2, n_rounds=4)
    assert [linear(k) for k in range(6)] == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2, 0.2])
    expo = ExponentialDecay(1.0, 0.5, minimum=0.2)
    assert [expo(k) for k in range(4)] == pytest.approx([1.0, 0.5, 0.25, 0.2])
    recorder = FakeRecorder()
    consensus = Consensus(2, alpha=linear, weights=PAIR, every=2, logger=recorder)
    for _ in range(6):
        consensus.after_update(tensors([0.0], [1.0]))
    alphas = [v for k, v in recorder.records if k == "consensus/alpha"]
    assert alphas == pytest.approx([1.0, 0.8, 0.6])


def test_consensus_rejects_bad_setup() -> None:
    with pytest.raises(ValueError, match="every must be an int >= 1"):
        Consensus(2, every=0)
    with pytest.raises(ValueError, match=r"alpha \* max_i"):
        Consensus(2, alpha=2.0, weights=PAIR)
    with pytest.raises(ValueError, match="disconnected"):
        Consensus(2, alpha=lambda k: 0.1, weights=np.zeros((2, 2)))
    consensus = Consensus(2, alpha=lambda k: -1.0, weights=PAIR)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        consensus.after_update(tensors([0.0], [1.0]))
    assert consensus.n_updates == 0 and consensus.n_rounds == 0
    with pytest.raises(ValueError, match="expected 2 members, got 3"):
        consensus.after_update(tensors([0.0], [1.0], [2.0]))


def test_consensus_state_dict_resumes_exactly() -> None:
    def make() -> Consensus:
        return Consensus(
            4, alpha=ExponentialDecay(0.9, 0.7), topology="random_regular", degree=2,
            seed=np.random.default_rng(5), every=2,
        )

    reference, members_ref = make(), [mlp(s) for s in range(4)]
    for _ in range(5):
        reference.after_update(members_ref)
    state = reference.state_dict()
    assert state["n_updates"] == 5 and state["n_rounds"] == 2

    resumed = Consensus(4, alpha=ExponentialDecay(0.9, 0.7), every=2)  # complete graph
    resumed.load_state_dict(copy.deepcopy(state))
    assert resumed.state_dict() == state
    members_res = copy.deepcopy(members_ref)
    for _ in range(5):
        r_ref = reference.after_update(members_ref)
        r_res = resumed.after_update(members_res)
        assert r_ref == r_res
    for name, value in stacked(members_ref).items():
        assert torch.equal(value, stacked(members_res)[name])
    with pytest.raises(ValueError, match="missing keys"):
        resumed.load_state_dict({"n_updates": 1})
