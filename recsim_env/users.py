"""User state and interest dynamics: pure, batched numpy.

Three drifts act on a user's interest ``x`` in [-1, 1]^n_topics:

1. Exogenous (every user, every step, in session or not): an Ornstein-Uhlenbeck pull toward a
   slowly moving anchor ``a``, which itself reverts slowly to the user's ``home`` interest::

       a' = a + anchor_rate * (home - a) + anchor_noise * eps_a
       x' = x + drift_rate  * (a - x)    + drift_noise  * eps_x

   The pair is a linear Gaussian system, so ``n`` steps are applied in closed form
   (:func:`drift_transition`): users away from the platform are advanced lazily, exactly in
   distribution, when they start their next session. Interests are clipped to [-1, 1] when
   materialised (during a session that is every step).
2. Endogenous (RecSim's interest evolution): consuming an item with topic mixture ``m`` moves
   ``x += s * (1 - |x|) * (m - x) * m`` toward the item with probability ``((x + 1) / 2) . m``
   and away otherwise, then clips. For one-hot items this is RecSim's
   ``0.3 * (1 - |x_c|) * (1 - x_c)`` on the consumed topic ``c``.
3. Satiation: per-topic fatigue ``sat = decay * sat + m`` on each consumption and
   ``sat *= decay`` otherwise; it lowers the utility of the topics it covers.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from recsim_env.config import EnvConfig


class UserState(NamedTuple):
    """The whole population, leading axis = user.

    Attributes:
        interest: (n_users, n_topics) float64 in [-1, 1], as of ``last_update``.
        anchor: (n_users, n_topics) float64, the long-term interest the OU pull aims at.
        home: (n_users, n_topics) float64, where the anchor reverts to.
        satiation: (n_users, n_topics) float64 >= 0, as of ``last_update``.
        history: (n_users, n_topics) float64 >= 0, decayed consumption (observable).
        last_update: (n_users,) int64, the world step the arrays above refer to.
        away_until: (n_users,) int64, first step at which the user may start a session.
    """

    interest: np.ndarray
    anchor: np.ndarray
    home: np.ndarray
    satiation: np.ndarray
    history: np.ndarray
    last_update: np.ndarray
    away_until: np.ndarray


def sample_interests(n: int, cfg: EnvConfig, rng: np.random.Generator) -> np.ndarray:
    """Draw fresh interests, uniform in [-1, 1] (RecSim's prior): (n, n_topics) float64."""
    return rng.uniform(-1.0, 1.0, size=(n, cfg.n_topics))


def init_users(cfg: EnvConfig, rng: np.random.Generator, n_users: int | None = None) -> UserState:
    """Create the population at step 0 (anchor = home = interest)."""
    n = cfg.n_users if n_users is None else n_users
    x = sample_interests(n, cfg, rng)
    zeros = np.zeros_like(x)
    return UserState(
        interest=x, anchor=x.copy(), home=x.copy(), satiation=zeros, history=zeros.copy(),
        last_update=np.zeros(n, np.int64), away_until=np.zeros(n, np.int64),
    )


def _geometric_sum(r: float, n: np.ndarray) -> np.ndarray:
    """sum_{k=0}^{n-1} r^k for a scalar ratio ``r`` and integer array ``n``."""
    if r == 1.0:
        return n.astype(np.float64)
    return (1.0 - r ** n) / (1.0 - r)


def drift_transition(
    n_steps: np.ndarray, cfg: EnvConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Closed-form n-step transition of the exogenous (anchor, interest) system.

    In deviations from home, ``z = (a - home, x - home)`` evolves as ``z' = A z + Q^(1/2) eps``
    with ``A = [[l1, 0], [k, l2]]``, ``l1 = 1 - anchor_rate``, ``l2 = 1 - drift_rate``,
    ``k = drift_rate``, ``Q = diag(anchor_noise^2, drift_noise^2)``. After ``n`` steps the
    mean is ``A^n z`` and the covariance ``sum_{j<n} A^j Q A^j^T``, both in closed form.

    Args:
        n_steps: (m,) int64 >= 0 elapsed steps per user.
        cfg: the config (drift parameters).

    Returns:
        ``(p11, p21, p22, chol)`` where ``A^n = [[p11, 0], [p21, p22]]`` per user (each (m,))
        and ``chol`` is (m, 3) = (L11, L21, L22), the Cholesky factor of the covariance.
    """
    n = np.asarray(n_steps, dtype=np.int64)
    l1, l2, k = 1.0 - cfg.anchor_rate, 1.0 - cfg.drift_rate, cfg.drift_rate
    c = k / (l1 - l2)
    p11 = l1 ** n
    p22 = l2 ** n
    p21 = c * (p11 - p22)
    sa2, sx2 = cfg.anchor_noise ** 2, cfg.drift_noise ** 2
    g11, g12, g22 = _geometric_sum(l1 * l1, n), _geometric_sum(l1 * l2, n), _geometric_sum(l2 * l2, n)
    s11 = sa2 * g11
    s21 = sa2 * c * (g11 - g12)
    s22 = sa2 * c * c * (g11 - 2.0 * g12 + g22) + sx2 * g22
    L11 = np.sqrt(s11)
    L21 = np.divide(s21, L11, out=np.zeros_like(s21), where=L11 > 0)
    L22 = np.sqrt(np.maximum(s22 - L21 * L21, 0.0))
    return p11, p21, p22, np.stack([L11, L21, L22], axis=-1)


def drift_exogenous(
    interest: np.ndarray,
    anchor: np.ndarray,
    home: np.ndarray,
    n_steps: np.ndarray | int,
    cfg: EnvConfig,
    rng: np.random.Generator,
    transition: tuple[np.ndarray, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Advance interests and anchors by ``n_steps`` of exogenous drift.

    Args:
        interest, anchor, home: (m, n_topics) float64.
        n_steps: (m,) int64 >= 0 per user, or one int for all.
        cfg: config; a no-op when ``cfg.exogenous_drift`` is off.
        rng: random stream (2 * m * n_topics normals are drawn even for zero steps, so the
            stream does not depend on timing).
        transition: ``drift_transition(n_steps, cfg)`` if already computed (a cache for the
            one-step case).

    Returns:
        New ``(interest, anchor)``; interest clipped to [-1, 1]. Inputs are not modified.
    """
    if not cfg.exogenous_drift:
        return interest, anchor
    p11, p21, p22, chol = transition if transition is not None else drift_transition(n_steps, cfg)
    if np.ndim(p11):  # per-user coefficients: broadcast over topics
        p11, p21, p22, chol = p11[:, None], p21[:, None], p22[:, None], chol[:, None, :]
    eps = rng.standard_normal(size=(2,) + interest.shape)
    da, dx = anchor - home, interest - home
    new_da = p11 * da + chol[..., 0] * eps[0]
    new_dx = p21 * da + p22 * dx + chol[..., 1] * eps[0] + chol[..., 2] * eps[1]
    return np.clip(home + new_dx, -1.0, 1.0), home + new_da


def decay_to(values: np.ndarray, decay: float, n_steps: np.ndarray) -> np.ndarray:
    """Geometric decay over ``n_steps`` per row: (m, k) * decay ** (m,)."""
    return values * (decay ** np.asarray(n_steps))[:, None]


def consume(
    interest: np.ndarray,
    satiation: np.ndarray,
    history: np.ndarray,
    topic_mix: np.ndarray,
    clicked: np.ndarray,
    cfg: EnvConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of consumption effects for the users in session.

    Args:
        interest, satiation, history: (s, n_topics) float64 of the session users.
        topic_mix: (s, n_topics) float64, the consumed item's mixture (ignored where not clicked).
        clicked: (s,) bool.
        cfg: config (``endogenous_drift``, ``interest_step``, ``satiation*``, ``history_decay``).
        rng: random stream (one uniform per user is drawn whenever endogenous drift is on).

    Returns:
        New ``(interest, satiation, history)``; inputs are not modified.
    """
    m = topic_mix * clicked[:, None]
    if cfg.endogenous_drift:
        u = rng.random(size=interest.shape[0])
        toward = u < np.einsum("st,st->s", (interest + 1.0) * 0.5, m)
        step = cfg.interest_step * (1.0 - np.abs(interest)) * (m - interest) * m
        interest = np.clip(interest + np.where(toward[:, None], step, -step), -1.0, 1.0)
    if cfg.satiation:
        satiation = satiation * cfg.satiation_decay + m
    history = history * cfg.history_decay + m
    return interest, satiation, history


def consume_onehot(
    interest: np.ndarray,
    satiation: np.ndarray,
    history: np.ndarray,
    topic: np.ndarray,
    clicked: np.ndarray,
    cfg: EnvConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`consume` for one-hot items (``topic_purity == 1``), touching only the consumed
    topic of each clicking user. Gives the same numbers and draws the same random stream as
    ``consume(..., topic_mix=onehot(topic), ...)``.

    Args:
        topic: (s,) int64 consumed topic (ignored where not clicked).
        Other arguments as :func:`consume`.
    """
    rows = np.flatnonzero(clicked)
    c = topic[rows]
    if cfg.endogenous_drift:
        u = rng.random(size=interest.shape[0])
        x = interest[rows, c]
        toward = u[rows] < (x + 1.0) * 0.5
        step = cfg.interest_step * (1.0 - np.abs(x)) * (1.0 - x)
        interest = interest.copy()
        interest[rows, c] = np.clip(x + np.where(toward, step, -step), -1.0, 1.0)
    if cfg.satiation:
        satiation = satiation * cfg.satiation_decay
        satiation[rows, c] += 1.0
    history = history * cfg.history_decay
    history[rows, c] += 1.0
    return interest, satiation, history
