"""Linear Q-learning over (user, candidate) features, trained by semi-gradient TD.

Features: with ``u1 = [user features, 1]`` (``user_dim + 1``) and ``c1 = [candidate features,
1]`` (``item_dim + 1``), the feature vector of a (state, candidate) pair is their outer
product ``phi(s, i) = vec(u1 c1^T)``. It holds the user features, the candidate features, every
user x candidate interaction (interest in the candidate's topic, for instance) and a bias, so

    Q(s, i) = w . phi(s, i) = u1^T W c1,        W: (user_dim + 1, item_dim + 1)

is computed without ever materialising ``phi``. The same ``W`` scores every candidate, so the
learner generalises to items it has never seen.

Update (semi-gradient TD(0), Q-learning target, the target held fixed)::

    delta_n = r_n + gamma * (1 - terminated_n) * max_i' Q(s'_n, i') - Q(s_n, a_n)
    W += lr * mean_n(delta_n * phi_n) / mean_n(|phi_n|^2)

``a_n`` is the credited candidate (:func:`agents.replay.credited_item`); truncated rows
bootstrap. Dividing by the mean squared feature norm (normalised LMS) makes ``lr`` the fraction
of the TD error corrected per step whatever the feature scale, which keeps plain SGD stable.
Acting: top-``slate_size`` by Q, epsilon-random slates while exploring.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.base import Transition
from agents.qbase import QLearner, check_gamma_lr
from agents.replay import credited_item
from recsim_env.config import EnvConfig

__all__ = ["LinearQ"]


class LinearQ(QLearner):
    """Linear Q over outer-product (user, candidate) features (see the module docstring).

    The epsilon schedule, acting (top-``slate_size`` by Q, epsilon-random slates while
    exploring), counters and state format are :class:`agents.qbase.QLearner`'s.

    Args:
        config: the world's config (observation layout, slate size).
        seed: seed of the learner's own generators.
        gamma: discount.
        lr: normalised step size in (0, 1].
        **exploration: ``exploration_initial_eps`` (1.0), ``exploration_final_eps`` (0.05),
            ``exploration_steps`` (20,000): the linear epsilon schedule of
            :class:`agents.qbase.QLearner`.
    """

    kind = "LinearQ"

    def __init__(
        self,
        config: EnvConfig,
        *,
        seed: int = 0,
        gamma: float = 0.95,
        lr: float = 0.05,
        **exploration: Any,
    ) -> None:
        check_gamma_lr(gamma, lr)
        # W starts at zero (no randomness); the torch generator is kept for the common state
        # format
        super().__init__(config, seed=seed, gamma=gamma, lr=lr,
                         torch_generator=True, **exploration)
        self.weight = torch.zeros(self.layout.user_dim + 1, self.layout.item_dim + 1,
                                  dtype=torch.float64)

    def _features(self, obs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, obs_dim) -> ``u1 (n, user_dim + 1)``, ``c1 (n, C, item_dim + 1)`` float64."""
        user, cand = self.layout.split(torch.as_tensor(obs, dtype=torch.float64))
        u1 = torch.cat([user, torch.ones(user.shape[0], 1, dtype=torch.float64)], dim=1)
        c1 = torch.cat([cand, torch.ones(*cand.shape[:2], 1, dtype=torch.float64)], dim=2)
        return u1, c1

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """(n, obs_dim) -> (n, n_candidates) float64."""
        u1, c1 = self._features(obs)
        return self._q(u1, c1).numpy()

    def _q(self, u1: torch.Tensor, c1: torch.Tensor) -> torch.Tensor:
        """``u1^T W c1`` for ``c1`` of shape (n, C, e) -> (n, C), or (n, e) -> (n,)."""
        uw = u1 @ self.weight  # (n, item_dim + 1)
        if c1.dim() == 3:
            return torch.einsum("ne,nce->nc", uw, c1)
        return torch.einsum("ne,ne->n", uw, c1)

    def update(self, batch: Transition) -> dict[str, float]:
        """One normalised semi-gradient TD step on the batch (see the module docstring)."""
        n = batch.obs.shape[0]
        u1, c1 = self._features(batch.obs)
        a = torch.from_numpy(credited_item(batch.action, batch.clicked))
        c1_a = c1[torch.arange(n), a]  # (n, item_dim + 1)
        q_sa = self._q(u1, c1_a)
        u1n, c1n = self._features(batch.next_obs)
        best_next = self._q(u1n, c1n).max(dim=1).values
        not_done = 1.0 - torch.as_tensor(np.asarray(batch.terminated), dtype=torch.float64)
        reward = torch.as_tensor(np.asarray(batch.reward), dtype=torch.float64)
        delta = reward + self.gamma * not_done * best_next - q_sa
        # mean_n delta_n * phi_n, with phi_n = outer(u1_n, c1_a_n)
        grad = torch.einsum("n,nd,ne->de", delta, u1, c1_a) / n
        sq_norm = ((u1 ** 2).sum(1) * (c1_a ** 2).sum(1)).mean()
        self.weight += self.lr * grad / sq_norm
        return self._count_update(n, float((delta ** 2).mean()), float(q_sa.mean()))

    def _model_state(self) -> dict[str, Any]:
        """The weights ``W``."""
        return {"weight": self.weight.clone()}

    def _load_model_state(self, state: dict[str, Any]) -> None:
        w = torch.as_tensor(state["weight"], dtype=torch.float64)
        if w.shape != self.weight.shape:
            raise ValueError(f"weight shape {tuple(w.shape)} in the state differs from "
                             f"{tuple(self.weight.shape)}")
        self.weight = w.clone()
