"""Consensus coupling between learners' torch parameters.

A group of ``n`` learners with parameters ``theta_1 .. theta_n`` (each a full
parameter set: a ``torch.nn.Module`` or a list of tensors) is coupled by a
symmetric, non-negative weight matrix ``W`` (n, n) on a communication graph.
The coupling loss is

    L(theta) = 1/2 * sum over unordered pairs {i, j} of w_ij ||theta_i - theta_j||^2,

whose gradient with respect to ``theta_i`` is ``sum_j w_ij (theta_i - theta_j)``.
One consensus step is plain gradient descent on ``L`` with step size ``alpha``,
applied to every member at once from the old values:

    theta_i <- theta_i - alpha * sum_j w_ij (theta_i - theta_j).

Stacking one parameter tensor of every member into ``Theta`` (n, ...), this is
``Theta <- (I - alpha * Lap) @ Theta`` with the weighted graph Laplacian
``Lap = diag(W 1) - W``. The diagonal of ``W`` never enters (``theta_i - theta_i
= 0``), so the step only reads off-diagonal weights; the weight matrices built
here carry the usual self-weight ``w_ii = 1 - sum_{j != i} w_ij``, which makes
them doubly stochastic and makes ``alpha = 1`` the classic averaging ``Theta <-
W @ Theta``.

Because ``Lap`` is symmetric with ``Lap 1 = 0``, the step preserves the mean
``mean_i theta_i`` exactly (up to float rounding). It contracts the
disagreement ``D = sum_i ||theta_i - mean(theta)||^2`` (summed over all
participating tensors) when ``alpha * max_i sum_{j != i} w_ij <= 1`` and the
graph is connected; :func:`spectral_rate` gives the per-round factor.

Two agents with ``w = 1``: the difference ``delta = theta_A - theta_B`` evolves
as ``delta <- (1 - 2 alpha) delta`` (so ``D <- (1 - 2 alpha)^2 D``):
``alpha = 0`` is independent learning, ``alpha = 1/2`` averages the two in one
step, ``alpha = 1`` swaps them (forever: ``D`` never shrinks), and ``alpha > 1``
diverges. Averaging every round is parameter sharing.

Note on the source's worked example: with ``theta_A = [1, 2, 3]``, ``theta_B =
[4, 5, 6]``, ``w = 1`` and ``alpha = 0.1`` it states ``theta_A -> [0.9, ...]``.
That is inconsistent with its own loss (it is what weight decay ``theta_A -
alpha * theta_A`` would give, moving ``theta_A`` away from ``theta_B``). The
gradient step on ``L`` gives ``theta_A = [1.3, 2.3, 3.3]`` and ``theta_B =
[3.7, 4.7, 5.7]``: each moves ``alpha * (theta_B - theta_A) = 0.3`` toward
the other and the mean ``[2.5, 3.5, 4.5]`` is kept.

Target networks: a member may be a :class:`ConsensusMember` carrying a target
network. The same linear map ``I - alpha * Lap`` that mixes the online
parameters is then applied to the targets' corresponding parameters, so the
targets stay the same linear combination of the old targets that the online
parameters are of the old online parameters; a target equal to its online
network before the step stays equal after it. Optimizer state (e.g. Adam
moments) is left untouched: those are per-agent statistics of each agent's own
gradients, not parameters of the coupling loss, and averaging them is not part
of the gradient step on ``L``.

Typical use::

    consensus = Consensus(n_members=3, alpha=0.5, topology="ring", logger=logger)
    for update in range(n_updates):
        for learner in learners:
            learner.update(batch)
        consensus.after_update([learner.q_net for learner in learners])
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from torch import nn

from agents.callbacks import Callback

__all__ = [
    "TOPOLOGIES",
    "WEIGHTS",
    "Consensus",
    "ConsensusMember",
    "ConsensusResult",
    "ExponentialDecay",
    "LinearDecay",
    "adjacency",
    "consensus_step",
    "copy_first",
    "spectral_rate",
    "weight_matrix",
]

TOPOLOGIES = ("complete", "ring", "star", "random_regular")
WEIGHTS = ("metropolis", "uniform")

# Slack for float comparisons on W (e.g. alpha * row sum == 1 exactly in theory).
_TOL = 1e-12
_MAX_REGULAR_TRIES = 1000

ParamSet = nn.Module | Sequence[torch.Tensor]
ParamSelector = Sequence[str] | Callable[[str], bool] | None
SeedLike = int | np.random.Generator | None


class Recorder(Protocol):
    """Anything with SB3's ``Logger.record(key, value)``."""

    def record(self, key: str, value: Any) -> None:
        """Record one scalar under ``key``."""


class ConsensusResult(NamedTuple):
    """Disagreement ``sum_i ||theta_i - mean(theta)||^2`` around one consensus step.

    Summed over every participating online tensor (targets excluded), computed
    in float64.
    """

    disagreement_before: float
    disagreement_after: float


@dataclass
class ConsensusMember:
    """One learner's parameters for consensus: online network plus optional target.

    Attributes:
        online: the parameters the coupling loss acts on.
        target: a target network whose parameters matching the selected online
            names receive the same linear combination as the online ones.
    """

    online: ParamSet
    target: ParamSet | None = None


# --------------------------------------------------------------------------- graphs


def adjacency(
    topology: str | np.ndarray,
    n: int | None = None,
    *,
    degree: int | None = None,
    seed: SeedLike = None,
) -> np.ndarray:
    """Build or validate an undirected communication graph.

    Args:
        topology: ``"complete"``, ``"ring"``, ``"star"`` (member 0 is the hub),
            ``"random_regular"`` (uniformly drawn, connected, every member has
            ``degree`` neighbours), or a user adjacency matrix (n, n) of 0/1 or
            bool, symmetric with a zero diagonal.
        n: number of members; optional when ``topology`` is a matrix (then it
            must match).
        degree: neighbours per member, required for ``"random_regular"``.
        seed: int or ``np.random.Generator`` for ``"random_regular"`` (required:
            the graph must be reproducible).

    Returns:
        adj: (n, n) bool, symmetric, zero diagonal.

    Raises:
        ValueError: unknown name, bad ``n``/``degree``/``seed``, or an invalid matrix.
    """
    if not isinstance(topology, str):
        return _check_adjacency(np.asarray(topology), n)
    if n is None or isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n must be an int >= 1 for topology {topology!r}, got {n!r}")
    n = int(n)
    adj = np.zeros((n, n), dtype=bool)
    idx = np.arange(n)
    if topology == "complete":
        adj[:] = True
    elif topology == "ring":
        adj[idx, (idx + 1) % n] = True
        adj[(idx + 1) % n, idx] = True
    elif topology == "star":
        adj[0, 1:] = True
        adj[1:, 0] = True
    elif topology == "random_regular":
        return _random_regular(n, degree, seed)
    else:
        raise ValueError(
            f"unknown topology {topology!r}; expected one of {TOPOLOGIES} or an adjacency matrix"
        )
    np.fill_diagonal(adj, False)
    return adj


def _check_adjacency(adj: np.ndarray, n: int | None) -> np.ndarray:
    if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
        raise ValueError(f"adjacency must be a square (n, n) matrix, got shape {adj.shape}")
    if n is not None and adj.shape[0] != n:
        raise ValueError(f"adjacency must be {n} x {n} (one row per member), got {adj.shape}")
    if adj.dtype != bool:
        if not np.issubdtype(adj.dtype, np.number) or not np.isin(adj, (0, 1)).all():
            raise ValueError("adjacency must contain only 0/1 or bool entries")
        adj = adj.astype(bool)
    if not (adj == adj.T).all():
        i, j = np.argwhere(adj != adj.T)[0]
        raise ValueError(f"adjacency must be symmetric (undirected); a[{i}, {j}] != a[{j}, {i}]")
    if adj.diagonal().any():
        i = int(np.flatnonzero(adj.diagonal())[0])
        raise ValueError(f"adjacency must have a zero diagonal (no self-loops); a[{i}, {i}] = 1")
    return adj.copy()


def _random_regular(n: int, degree: int | None, seed: SeedLike) -> np.ndarray:
    if degree is None or isinstance(degree, bool) or int(degree) != degree:
        raise ValueError(f"random_regular needs an int degree, got {degree!r}")
    d = int(degree)
    if not 0 <= d < n:
        raise ValueError(f"random_regular degree must be in [0, n - 1] = [0, {n - 1}], got {d}")
    if (n * d) % 2:
        raise ValueError(f"random_regular needs n * degree even, got n={n}, degree={d}")
    if not (d >= 2 or (d == 1 and n == 2) or n == 1):
        raise ValueError(
            f"a connected {d}-regular graph on {n} members does not exist; use degree >= 2"
        )
    if seed is None:
        raise ValueError("random_regular needs a seed (int or np.random.Generator)")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    for _ in range(_MAX_REGULAR_TRIES):
        edges = _pair_stubs(n, d, rng)
        if edges is None:
            continue
        adj = np.zeros((n, n), dtype=bool)
        if edges:
            rows, cols = np.array(sorted(edges)).T
            adj[rows, cols] = True
            adj[cols, rows] = True
        if _is_connected(adj):
            return adj
    raise RuntimeError(f"no connected {d}-regular graph on {n} nodes after {_MAX_REGULAR_TRIES}")


def _pair_stubs(n: int, d: int, rng: np.random.Generator) -> set[tuple[int, int]] | None:
    """One attempt of the Steger-Wormald pairing (as in networkx.random_regular_graph)."""
    edges: set[tuple[int, int]] = set()
    stubs = np.repeat(np.arange(n), d)
    while stubs.size:
        leftover: dict[int, int] = defaultdict(int)
        rng.shuffle(stubs)
        for a, b in zip(stubs[0::2].tolist(), stubs[1::2].tolist(), strict=True):
            a, b = min(a, b), max(a, b)
            if a != b and (a, b) not in edges:
                edges.add((a, b))
            else:
                leftover[a] += 1
                leftover[b] += 1
        if leftover and not _can_pair(edges, sorted(leftover)):
            return None
        stubs = np.repeat(np.array(list(leftover), dtype=int), list(leftover.values()))
    return edges


def _can_pair(edges: set[tuple[int, int]], nodes: list[int]) -> bool:
    return any((a, b) not in edges for k, a in enumerate(nodes) for b in nodes[k + 1 :])


def _is_connected(adj: np.ndarray) -> bool:
    """Whether the undirected graph with boolean adjacency (n, n) is connected."""
    return not _unreached(adj).size


def _unreached(adj: np.ndarray) -> np.ndarray:
    """Indices of nodes not reachable from node 0, (k,) int."""
    n = adj.shape[0]
    reached = np.zeros(n, dtype=bool)
    reached[0] = True
    frontier = reached.copy()
    while frontier.any():
        new = adj[frontier].any(axis=0) & ~reached
        reached |= new
        frontier = new
    return np.flatnonzero(~reached)


# --------------------------------------------------------------------------- weights


def weight_matrix(
    adjacency_or_name: str | np.ndarray,
    n: int | None = None,
    weights: str | np.ndarray = "metropolis",
    *,
    degree: int | None = None,
    seed: SeedLike = None,
) -> np.ndarray:
    """Consensus weights ``W`` on a graph.

    ``"metropolis"`` (default): ``w_ij = 1 / (1 + max(deg_i, deg_j))`` on edges;
    symmetric, doubly stochastic, needs only neighbours' degrees.
    ``"uniform"``: the maximum-degree rule ``w_ij = 1 / (1 + max_k deg_k)`` on
    edges, the same for all edges (``1 / n`` everywhere on the complete graph,
    so ``alpha = 1`` averages in one step there). Both set the self-weight
    ``w_ii = 1 - sum_{j != i} w_ij`` (ignored by the step, kept so ``W`` is
    doubly stochastic); both have off-diagonal row sums < 1, so any
    ``alpha <= 1`` is a valid, convergent step on a connected graph.

    Args:
        adjacency_or_name: a topology name (see :func:`adjacency`) or an
            adjacency matrix (n, n).
        n: number of members (required with a name).
        weights: ``"metropolis"``, ``"uniform"``, or an explicit matrix (n, n)
            whose non-zero off-diagonal entries must lie on the graph's edges.
        degree: for ``"random_regular"``.
        seed: for ``"random_regular"``.

    Returns:
        W: (n, n) float64.

    Raises:
        ValueError: unknown names, bad shapes, or explicit weights off the graph.
    """
    adj = adjacency(adjacency_or_name, n, degree=degree, seed=seed)
    n = adj.shape[0]
    if not isinstance(weights, str):
        w = np.array(weights, dtype=np.float64)
        _check_square(w, n)
        off = ~np.eye(n, dtype=bool)
        outside = (w != 0) & off & ~adj
        if outside.any():
            i, j = np.argwhere(outside)[0]
            raise ValueError(
                f"W has weight w[{i}, {j}] = {w[i, j]:g} between members that are not "
                "neighbours in the topology; expected zero off the graph's edges"
            )
        return w
    deg = adj.sum(axis=1)
    if weights == "metropolis":
        w = adj / (1.0 + np.maximum(deg[:, None], deg[None, :]))
    elif weights == "uniform":
        w = adj / (1.0 + deg.max(initial=0))
    else:
        raise ValueError(f"unknown weights {weights!r}; expected one of {WEIGHTS} or a matrix")
    np.fill_diagonal(w, 1.0 - w.sum(axis=1))
    return w


def _check_square(w: np.ndarray, n: int | None) -> None:
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"W must be a square (n, n) matrix, got shape {w.shape}")
    if n is not None and w.shape[0] != n:
        raise ValueError(f"W must be {n} x {n} (one row per member), got shape {w.shape}")


def _check_weights(w: np.ndarray, n: int, alpha: float) -> list[str]:
    """Validate ``W`` and ``alpha``.

    Raises ValueError for problems that make the step meaningless (shape,
    non-finite values, asymmetry, bad alpha value) and returns the problems
    that only stop convergence (negative weights, disconnected graph,
    ``alpha < 0``, ``alpha * max row sum > 1``), which ``allow_divergent``
    may bypass.
    """
    _check_square(w, n)
    if not np.isfinite(w).all():
        i, j = np.argwhere(~np.isfinite(w))[0]
        raise ValueError(f"W must be finite, got w[{i}, {j}] = {w[i, j]}")
    if not np.allclose(w, w.T, rtol=0.0, atol=1e-12):
        i, j = np.unravel_index(np.argmax(np.abs(w - w.T)), w.shape)
        raise ValueError(
            f"W must be symmetric (w_ij == w_ji), got w[{i}, {j}] = {w[i, j]:g} "
            f"but w[{j}, {i}] = {w[j, i]:g}"
        )
    if isinstance(alpha, bool) or not isinstance(alpha, int | float | np.floating | np.integer):
        raise ValueError(f"alpha must be a real number, got {alpha!r}")
    if not math.isfinite(alpha):
        raise ValueError(f"alpha must be finite, got {alpha}")
    problems = []
    off = w.copy()
    np.fill_diagonal(off, 0.0)
    if (off < 0).any():
        i, j = np.argwhere(off < 0)[0]
        problems.append(
            f"W must have non-negative off-diagonal weights, got w[{i}, {j}] = {off[i, j]:g}"
        )
    if n > 1:
        unreached = _unreached(off != 0)
        if unreached.size:
            problems.append(
                f"the graph of W is disconnected (members {unreached.tolist()} cannot reach "
                "member 0); expected a connected graph, or consensus cannot be reached"
            )
    if alpha < 0:
        problems.append(f"alpha must be >= 0, got {alpha}")
    row_max = float(off.sum(axis=1).max(initial=0.0))
    if alpha * row_max > 1.0 + _TOL:
        problems.append(
            f"alpha * max_i sum_(j != i) w_ij must be <= 1, got {alpha:g} * {row_max:g} = "
            f"{alpha * row_max:g}; the step oscillates or diverges (use alpha <= "
            f"{1.0 / row_max:g})"
        )
    return problems


def _mixing_matrix(w: np.ndarray, alpha: float) -> np.ndarray:
    """``I - alpha * (diag(W 1) - W)`` from the off-diagonal part of ``W``, (n, n) float64."""
    off = w.copy()
    np.fill_diagonal(off, 0.0)
    laplacian = np.diag(off.sum(axis=1)) - off
    return np.eye(w.shape[0]) - alpha * laplacian


def spectral_rate(w: np.ndarray, alpha: float) -> float:
    """Predicted per-round contraction factor of the squared disagreement.

    With ``M = I - alpha * Lap`` (symmetric, ``M 1 = 1``), let ``rho`` be the
    largest ``|eigenvalue|`` of ``M`` on the subspace orthogonal to the
    all-ones vector, i.e. the spectral norm of ``M - 1 1^T / n`` (for a
    connected graph: the second-largest ``|eigenvalue|`` of ``M``). This returns
    ``rho ** 2``, so that every step satisfies

        disagreement_after <= spectral_rate(W, alpha) * disagreement_before,

    with equality when every parameter's deviation from the mean lies along
    the eigenvector(s) of that extreme eigenvalue. The norm
    ``sqrt(disagreement)`` shrinks by ``rho`` per round. Rounds to shrink the
    disagreement by ``f``: ``log(f) / -log(spectral_rate(W, alpha))``.

    Args:
        w: (n, n) symmetric weights (the diagonal is ignored).
        alpha: step size.

    Returns:
        ``rho ** 2`` in [0, inf); 1 for a disconnected graph, > 1 when diverging.

    Raises:
        ValueError: ``W`` not square, not finite or not symmetric.
    """
    w = np.asarray(w, dtype=np.float64)
    _check_weights(w, w.shape[0] if w.ndim == 2 else None, float(alpha))
    n = w.shape[0]
    if n == 1:
        return 0.0
    m = _mixing_matrix(w, float(alpha)) - np.full((n, n), 1.0 / n)
    rho = float(np.abs(np.linalg.eigvalsh(m)).max())
    return rho**2


# --------------------------------------------------------------------------- members


def _select(names: list[str], params: ParamSelector) -> list[str]:
    if params is None:
        return names
    if callable(params):
        return [name for name in names if params(name)]
    prefixes = (params,) if isinstance(params, str) else tuple(params)
    if not all(isinstance(p, str) for p in prefixes):
        raise ValueError(f"params must be None, name prefixes (str) or a callable, got {params!r}")
    return [name for name in names if name.startswith(prefixes)]


def _named(obj: object, what: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        return dict(obj.named_parameters())
    if isinstance(obj, list | tuple) and all(isinstance(t, torch.Tensor) for t in obj):
        return {str(k): t for k, t in enumerate(obj)}
    raise TypeError(
        f"{what} must be an nn.Module, a list/tuple of tensors or a ConsensusMember, "
        f"got {type(obj).__name__}"
    )


def _gather(
    members: Sequence[ParamSet | ConsensusMember], params: ParamSelector
) -> tuple[list[str], list[list[torch.Tensor]], list[list[torch.Tensor]] | None]:
    """Selected online (and target) tensors of every member, validated.

    Returns:
        names: selected parameter names, in member 0's order.
        online: online[i][k] is member i's tensor for names[k].
        targets: same layout for targets, or None when no member has one.
    """
    if isinstance(members, nn.Module | ConsensusMember | torch.Tensor):
        raise TypeError("members must be a sequence of parameter sets, one per member")
    wrapped = [m if isinstance(m, ConsensusMember) else ConsensusMember(m) for m in members]
    if not wrapped:
        raise ValueError("members must not be empty")
    has_target = [m.target is not None for m in wrapped]
    if any(has_target) and not all(has_target):
        missing = has_target.index(False)
        raise ValueError(
            f"member {missing} has no target network but others do; expected all or none"
        )
    named = [_named(m.online, f"member {i}") for i, m in enumerate(wrapped)]
    names = _select(list(named[0]), params)
    if not names:
        raise ValueError(f"params={params!r} selects no parameters of member 0")
    online = [_take(named[i], names, i, "parameter", named[0]) for i in range(len(wrapped))]
    if len(wrapped) > 1:
        for i in range(1, len(wrapped)):
            extra = [k for k in _select(list(named[i]), params) if k not in named[0]]
            if extra:
                raise ValueError(
                    f"member {i} has parameter {extra[0]!r} that member 0 lacks; "
                    "expected identical parameter names across members"
                )
    seen: dict[int, tuple[int, str]] = {}
    for i, tensors in enumerate(online):
        for name, t in zip(names, tensors, strict=True):
            if t.numel() == 0:
                continue
            owner = seen.setdefault(t.data_ptr(), (i, name))
            if owner[0] != i:
                raise ValueError(
                    f"member {i} parameter {name!r} is the same tensor as member {owner[0]}'s "
                    f"{owner[1]!r}; expected separate copies per member"
                )
    if not any(has_target):
        return names, online, None
    targets = []
    for i, m in enumerate(wrapped):
        t_named = _named(m.target, f"member {i} target")
        targets.append(_take(t_named, names, i, "target parameter", named[0]))
    return names, online, targets


def _take(
    named: dict[str, torch.Tensor],
    names: list[str],
    i: int,
    what: str,
    reference: dict[str, torch.Tensor],
) -> list[torch.Tensor]:
    out = []
    for name in names:
        if name not in named:
            raise ValueError(
                f"member {i} has no {what} {name!r}; expected the same names as member 0"
            )
        t, ref = named[name], reference[name]
        if t.shape != ref.shape:
            raise ValueError(
                f"member {i} {what} {name!r} has shape {tuple(t.shape)}, expected "
                f"{tuple(ref.shape)} like member 0"
            )
        if t.dtype != ref.dtype or t.device != ref.device:
            raise ValueError(
                f"member {i} {what} {name!r} is {t.dtype} on {t.device}, expected "
                f"{ref.dtype} on {ref.device} like member 0"
            )
        if not t.is_floating_point():
            raise ValueError(f"member {i} {what} {name!r} has dtype {t.dtype}; expected float")
        out.append(t)
    return out


def _disagreement(stacked: torch.Tensor) -> float:
    """``sum_i ||x_i - mean(x)||^2`` for stacked (n, m) values, in float64."""
    x = stacked.to(torch.float64)
    return float((x - x.mean(dim=0, keepdim=True)).square().sum())


# --------------------------------------------------------------------------- the step


def consensus_step(
    members: Sequence[ParamSet | ConsensusMember],
    alpha: float,
    weights: str | np.ndarray = "metropolis",
    topology: str | np.ndarray = "complete",
    *,
    params: ParamSelector = None,
    allow_divergent: bool = False,
    degree: int | None = None,
    seed: SeedLike = None,
) -> ConsensusResult:
    """One simultaneous consensus step on ``n`` members' parameters, in place.

    ``theta_i <- theta_i - alpha * sum_j w_ij (theta_i - theta_j)`` for every
    selected parameter, computed from the old values: each parameter is stacked
    across members into (n, ...) and multiplied once by ``I - alpha * Lap``.
    Targets (see :class:`ConsensusMember`) get the same matrix. Everything is
    validated and computed before anything is written, so on any error every
    parameter is left unchanged.

    Args:
        members: n parameter sets, each an ``nn.Module``, a list/tuple of
            tensors (named ``"0"``, ``"1"``, ...), or a :class:`ConsensusMember`;
            selected parameters must match in names, shapes, dtypes, devices.
        alpha: step size >= 0 with ``alpha * max_i sum_(j != i) w_ij <= 1``.
        weights: ``"metropolis"``, ``"uniform"`` (see :func:`weight_matrix`),
            or an explicit (n, n) matrix ``W`` (symmetric, non-negative
            off-diagonal, connected; the diagonal is ignored). With the
            default ``topology="complete"`` an explicit ``W`` is used as is;
            with another topology its non-zeros must lie on that graph's edges.
        topology: a name (see :func:`adjacency`) or an (n, n) adjacency matrix.
        params: which parameters take part: None (all ``named_parameters``,
            no buffers), name prefixes (``str.startswith``), or a callable
            ``name -> bool``. The others stay bit-identical.
        allow_divergent: run even if the step cannot converge (negative
            weights, disconnected graph, ``alpha < 0``, or ``alpha *`` max row
            sum ``> 1``), with a ``RuntimeWarning``. Non-square, non-finite or
            asymmetric ``W`` are always rejected.
        degree: for ``topology="random_regular"``.
        seed: for ``topology="random_regular"``; an int gives the same graph
            every call, a Generator draws a new one each call.

    Returns:
        The disagreement of the selected online parameters before and after.

    Raises:
        ValueError: invalid W, alpha, or mismatched members.
        TypeError: a member of an unsupported type.
    """
    _, online, targets = _gather(members, params)
    w = weight_matrix(topology, len(online), weights, degree=degree, seed=seed)
    return _apply(online, targets, w, alpha, allow_divergent)


def _apply(
    online: list[list[torch.Tensor]],
    targets: list[list[torch.Tensor]] | None,
    w: np.ndarray,
    alpha: float,
    allow_divergent: bool,
) -> ConsensusResult:
    n = len(online)
    problems = _check_weights(w, n, alpha)
    if problems:
        if not allow_divergent:
            raise ValueError("; ".join(problems) + " (pass allow_divergent=True to step anyway)")
        warnings.warn(
            "consensus step may not converge: " + "; ".join(problems),
            RuntimeWarning,
            stacklevel=3,
        )
    mixing = _mixing_matrix(w, float(alpha))
    groups = [online] if targets is None else [online, targets]
    before = after = 0.0
    writes: list[tuple[list[torch.Tensor], torch.Tensor]] = []
    with torch.no_grad():
        for g, group in enumerate(groups):
            for k in range(len(group[0])):
                column = [group[i][k] for i in range(n)]
                stacked = torch.stack([t.detach().reshape(-1) for t in column])  # (n, m)
                mixed = torch.as_tensor(mixing, dtype=stacked.dtype, device=stacked.device)
                new = mixed @ stacked  # (n, m)
                if g == 0:
                    before += _disagreement(stacked)
                    after += _disagreement(new)
                writes.append((column, new))
        if alpha != 0:
            for column, new in writes:
                for t, row in zip(column, new, strict=True):
                    t.copy_(row.view_as(t))
    if alpha == 0:
        after = before
    return ConsensusResult(before, after)


def copy_first(members: Sequence[ParamSet | ConsensusMember], params: ParamSelector = None
               ) -> None:
    """Set every member's selected parameters to member 0's, and their targets to member 0's
    target, in place (the averaging map with all weight on member 0, applied to online and
    target networks alike, as :func:`consensus_step` does).

    Validated like :func:`consensus_step` before anything is written. This is the common
    starting point of decentralised SGD; the disagreement is 0 afterwards.
    """
    _, online, targets = _gather(members, params)
    with torch.no_grad():
        for group in [online] if targets is None else [online, targets]:
            for tensors in group[1:]:
                for t, first in zip(tensors, group[0], strict=True):
                    t.copy_(first)


# --------------------------------------------------------------------------- schedules


@dataclass(frozen=True)
class LinearDecay:
    """Alpha going linearly from ``start`` to ``end`` over ``n_rounds`` consensus rounds.

    Call with the 0-based consensus round; constant at ``end`` afterwards.
    """

    start: float
    end: float
    n_rounds: int

    def __post_init__(self) -> None:
        if self.n_rounds < 1:
            raise ValueError(f"n_rounds must be >= 1, got {self.n_rounds}")

    def __call__(self, round_index: int) -> float:
        """Alpha for consensus round ``round_index``."""
        frac = min(round_index / self.n_rounds, 1.0)
        return self.start + frac * (self.end - self.start)


@dataclass(frozen=True)
class ExponentialDecay:
    """Alpha ``max(start * rate ** round, minimum)`` for the 0-based consensus round."""

    start: float
    rate: float
    minimum: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.rate <= 1.0:
            raise ValueError(f"rate must be in (0, 1], got {self.rate}")

    def __call__(self, round_index: int) -> float:
        """Alpha for consensus round ``round_index``."""
        return max(self.start * self.rate**round_index, self.minimum)


# --------------------------------------------------------------------------- stateful


class Consensus:
    """Consensus applied every ``every`` update rounds, with an alpha schedule and logging.

    The weight matrix is built once at construction (so a ``random_regular``
    graph stays fixed). Call :meth:`after_update` once after each update round
    of the learners; it counts rounds, steps when due, and records
    ``consensus/disagreement`` (before the step: what local training produced
    since the last round), ``consensus/alpha`` and ``consensus/rounds`` (steps
    applied so far) on the logger.

    Args:
        n_members: number of members n.
        alpha: a float, or a callable ``round -> alpha`` taking the 0-based
            index of the consensus round (e.g. :class:`LinearDecay`).
        topology: as in :func:`consensus_step`.
        weights: as in :func:`consensus_step`.
        every: apply on every k-th call of :meth:`after_update` (k >= 1).
        params: as in :func:`consensus_step`.
        logger: an SB3 ``Logger`` or anything with ``.record(key, value)``.
        degree: for ``"random_regular"``.
        seed: for ``"random_regular"``.
        allow_divergent: as in :func:`consensus_step`.

    Attributes:
        weights: the weight matrix W, (n_members, n_members) float64.
        n_updates: update rounds counted so far (calls of :meth:`after_update`).
        n_rounds: consensus steps applied so far (logged as ``consensus/rounds``).
    """

    def __init__(
        self,
        n_members: int,
        alpha: float | Callable[[int], float] = 0.5,
        topology: str | np.ndarray = "complete",
        weights: str | np.ndarray = "metropolis",
        every: int = 1,
        params: ParamSelector = None,
        logger: Recorder | None = None,
        *,
        degree: int | None = None,
        seed: SeedLike = None,
        allow_divergent: bool = False,
    ) -> None:
        if isinstance(n_members, bool) or int(n_members) != n_members or n_members < 1:
            raise ValueError(f"n_members must be an int >= 1, got {n_members!r}")
        if isinstance(every, bool) or int(every) != every or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        self.n_members = int(n_members)
        self.alpha = alpha
        self.every = int(every)
        self.params = params
        self.logger = logger
        self.allow_divergent = allow_divergent
        self.weights = weight_matrix(topology, self.n_members, weights, degree=degree, seed=seed)
        # Fail at construction, not at the first due round (a scheduled alpha is checked then).
        problems = _check_weights(self.weights, self.n_members, 0.0 if callable(alpha) else alpha)
        if problems and not allow_divergent:
            raise ValueError("; ".join(problems) + " (pass allow_divergent=True to step anyway)")
        self.n_updates = 0
        self.n_rounds = 0

    def current_alpha(self) -> float:
        """Alpha the next consensus round will use."""
        return float(self.alpha(self.n_rounds) if callable(self.alpha) else self.alpha)

    def after_update(
        self, members: Sequence[ParamSet | ConsensusMember]
    ) -> ConsensusResult | None:
        """Count one update round; apply the step if due.

        Args:
            members: the n members, as in :func:`consensus_step`.

        Returns:
            The step's result, or None when no step was due.
        """
        due = (self.n_updates + 1) % self.every == 0
        if not due:
            self.n_updates += 1
            return None
        if len(members) != self.n_members:
            raise ValueError(f"expected {self.n_members} members, got {len(members)}")
        alpha = self.current_alpha()
        _, online, targets = _gather(members, self.params)
        result = _apply(online, targets, self.weights, alpha, self.allow_divergent)
        # Counters move only after a successful step, so a failed call can be retried.
        self.n_updates += 1
        self.n_rounds += 1
        if self.logger is not None:
            self.logger.record("consensus/disagreement", result.disagreement_before)
            self.logger.record("consensus/alpha", alpha)
            self.logger.record("consensus/rounds", self.n_rounds)
        return result

    def state_dict(self) -> dict[str, Any]:
        """Counters and the weight matrix, for exact resumption from a checkpoint."""
        return {
            "n_updates": self.n_updates,
            "n_rounds": self.n_rounds,
            "weights": self.weights.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore counters (and the weight matrix) saved by :meth:`state_dict`."""
        missing = {"n_updates", "n_rounds", "weights"} - set(state)
        if missing:
            raise ValueError(f"consensus state is missing keys {sorted(missing)}")
        w = np.array(state["weights"], dtype=np.float64)
        problems = _check_weights(w, self.n_members, 0.0)
        if problems and not self.allow_divergent:
            raise ValueError("saved weights: " + "; ".join(problems))
        self.weights = w
        self.n_updates = int(state["n_updates"])
        self.n_rounds = int(state["n_rounds"])


# --------------------------------------------------------------------------- runner glue


def learner_member(learner: Any) -> ConsensusMember:
    """The consensus parameters of a learner of the runner.

    * our Q-learners (``DQN``, ``SlateQ``, ...): ``q_net`` with its target ``q_target``;
    * :class:`agents.sb3.SB3Learner`: the SB3 policy; for SB3 DQN the online ``q_net`` with its
      ``q_net_target``;
    * anything else that defines ``consensus_member()`` returning a :class:`ConsensusMember`.

    Raises:
        ValueError: the learner has no torch parameters to couple (e.g. a baseline).
    """
    if hasattr(learner, "consensus_member"):
        return learner.consensus_member()
    model = getattr(learner, "model", None)
    if model is not None and hasattr(model, "policy"):  # SB3Learner
        policy = model.policy
        if hasattr(policy, "q_net_target"):
            return ConsensusMember(online=policy.q_net, target=policy.q_net_target)
        return ConsensusMember(online=policy)
    if isinstance(getattr(learner, "q_net", None), torch.nn.Module):
        return ConsensusMember(online=learner.q_net, target=getattr(learner, "q_target", None))
    raise ValueError(f"{type(learner).__name__} has no torch parameters to couple; consensus "
                     "needs learners with networks (our Q-learners or SB3 models)")


class ConsensusWrapper(Callback):
    """Couple a group of the runner's learners with a consensus step after each update round.

    A runner callback (:class:`agents.callbacks.Callback`): pass it in ``Runner(...,
    callbacks=[wrapper])``. One update round is one runner step (every learner of the group
    has been updated once).
    Logs ``consensus/disagreement`` (before the step), ``consensus/alpha`` and
    ``consensus/rounds`` to the runner's TensorBoard logger.

    Args:
        learners: the learners to couple, in a fixed order (their ids in the runner do not
            matter; each must appear in the runner's mapping).
        alpha, topology, weights, every, params, degree, seed, allow_divergent: as in
            :class:`Consensus` (``alpha=0`` is independent learning; ``alpha=1`` with
            Metropolis weights on a complete graph of ``n`` learners averages them).
        common_init: copy learner 0's selected parameters into every other learner (online
            and target networks) once, at construction, so the group starts from one point
            as in decentralised SGD. Networks initialised apart are not aligned (hidden units
            can be permuted), so averaging them early mostly shrinks their weights toward
            zero. Optimizer state is left alone (it belongs to each learner's own gradients).
    """

    def __init__(self, learners: Sequence[Any], *, alpha: float | Callable[[int], float] = 0.5,
                 topology: str | np.ndarray = "complete", weights: Any = "metropolis",
                 every: int = 1, params: ParamSelector = None, degree: int | None = None,
                 seed: SeedLike = None, allow_divergent: bool = False,
                 common_init: bool = False) -> None:
        self.learners = list(learners)
        if len(self.learners) < 2:
            raise ValueError(f"consensus needs at least 2 learners, got {len(self.learners)}")
        if len({id(x) for x in self.learners}) != len(self.learners):
            raise ValueError("the same learner appears twice in the consensus group")
        self.members = [learner_member(x) for x in self.learners]
        self.consensus = Consensus(len(self.learners), alpha=alpha, topology=topology,
                                   weights=weights, every=every, params=params, degree=degree,
                                   seed=seed, allow_divergent=allow_divergent)
        if common_init:
            copy_first(self.members, params)

    def after_update(self, logger: Any = None) -> ConsensusResult | None:
        """Count an update round and apply the consensus step when it is due."""
        self.consensus.logger = logger
        return self.consensus.after_update(self.members)

    def on_step(self, step: Any) -> bool:
        """The runner's hook: one update round happened."""
        self.after_update(self.runner.logger)
        return True

    def disagreement(self) -> float:
        """Current disagreement sum_i ||theta_i - mean||^2 over the selected parameters."""
        return consensus_step(self.members, 0.0, weights=self.consensus.weights,
                              params=self.consensus.params).disagreement_before

    def state_dict(self) -> dict[str, Any]:
        """Counters and weights (the learners' parameters are saved by the learners)."""
        return self.consensus.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.consensus.load_state_dict(state)
