"""Tabular Q-learning over a documented discretisation of recommender observations.

The state discretiser (:class:`Discretiser`) maps an observation to one of
``(n_topics + 1) * n_progress_bins`` states:

* **topic bin**: the argmax topic of the observed user vector: the true interest when the
  world shows it (``observe_interest``), else the decayed consumption history. A user with no
  history yet (all zeros) gets bin ``n_topics`` ("new user").
* **progress bin**: the session time used (``1 - budget / session_budget``, clipped to
  [0, 1]) cut into ``n_progress_bins`` equal bins.

Actions are item-wise and do not depend on the candidate's index: a candidate is discretised
to its **item class** ``2 * argmax(content) + cold_start_flag`` (its dominant content
dimension, split by the cold-start flag), so the table ``Q[state, item_class]`` has
``content_dim * 2`` columns and transfers to any candidate set, new items included.

Acting: the ``slate_size`` candidates with the highest ``Q[state, class]`` (ties broken at
random while exploring), or, with probability epsilon per row, a uniformly random slate.

Learning (textbook one-step Q-learning)::

    Q(s, a) += lr * (r + gamma * max_a' Q(s', a') - Q(s, a))

where ``a`` is the class of the *credited* candidate (the clicked one; the first slot when
nothing was clicked, see :func:`agents.replay.credited_item`), ``max_a'`` runs over the classes
of the candidates present in ``s'`` (the actions actually available there), and the bootstrap
term is dropped when the session *terminated* (kept on truncation). Rows of one batch are
applied together: each table cell moves once, by ``lr`` times the mean TD error of the rows
that hit it (with one row per cell this is exactly the textbook update).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agents.base import ActContext, Transition
from agents.replay import (
    check_obs,
    credited_item,
    from_saveable,
    linear_schedule,
    obs_layout,
    random_slates,
    rng_state,
    set_rng_state,
    top_k_slates,
)
from recsim_env.config import EnvConfig
from recsim_env.world import ObsLayout

__all__ = ["Discretiser", "TabularQ"]


class Discretiser:
    """Observation -> state index and candidate -> item class (see the module docstring).

    Args:
        layout: the observation layout.
        n_progress_bins: bins of session time used.
    """

    def __init__(self, layout: ObsLayout, n_progress_bins: int = 4) -> None:
        if n_progress_bins < 1:
            raise ValueError(f"n_progress_bins must be >= 1, got {n_progress_bins}")
        self.layout = layout
        self.n_progress_bins = int(n_progress_bins)
        T = layout.n_topics
        # where the topic vector lives in the user part: interest if observed, else history
        self._topic_slice = slice(T + 3, 2 * T + 3) if layout.observe_interest else slice(0, T)
        self._time_col = T

    @property
    def n_states(self) -> int:
        """Number of states: ``(n_topics + 1) * n_progress_bins``."""
        return (self.layout.n_topics + 1) * self.n_progress_bins

    @property
    def n_item_classes(self) -> int:
        """Number of item classes: ``2 * content_dim``."""
        return 2 * self.layout.content_dim

    def states(self, obs: np.ndarray) -> np.ndarray:
        """(n, obs_dim) -> (n,) int64 state index ``topic_bin * n_progress_bins + progress``."""
        user, _ = self.layout.split(obs)
        vec = user[:, self._topic_slice]
        topic = vec.argmax(axis=1)
        if not self.layout.observe_interest:
            topic = np.where(vec.max(axis=1) > 0, topic, self.layout.n_topics)
        used = np.clip(user[:, self._time_col], 0.0, 1.0)
        progress = np.minimum((used * self.n_progress_bins).astype(np.int64),
                              self.n_progress_bins - 1)
        return (topic * self.n_progress_bins + progress).astype(np.int64)

    def item_classes(self, obs: np.ndarray) -> np.ndarray:
        """(n, obs_dim) -> (n, n_candidates) int64 item class ``2 * argmax(content) + cold``."""
        _, cand = self.layout.split(obs)
        d = self.layout.content_dim
        dominant = cand[:, :, :d].argmax(axis=2)
        cold = cand[:, :, d + 3] > 0.5
        return (2 * dominant + cold).astype(np.int64)


class TabularQ:
    """Tabular Q-learning recommender (see the module docstring for the discretisation).

    Args:
        config: the world's config (observation layout, slate size).
        seed: seed of the learner's own generator (exploration, tie-breaking).
        gamma: discount.
        lr: step size of the Q update.
        n_progress_bins: session-progress bins of the state.
        q_init: initial value of every table entry.
        exploration_initial_eps, exploration_final_eps, exploration_steps: epsilon moves
            linearly from the initial to the final value over this many transitions (rows).
    """

    privileged = False

    def __init__(
        self,
        config: EnvConfig,
        *,
        seed: int = 0,
        gamma: float = 0.95,
        lr: float = 0.1,
        n_progress_bins: int = 4,
        q_init: float = 0.0,
        exploration_initial_eps: float = 1.0,
        exploration_final_eps: float = 0.05,
        exploration_steps: int = 20_000,
    ) -> None:
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        if not 0.0 < lr <= 1.0:
            raise ValueError(f"lr must be in (0, 1], got {lr}")
        self.layout = obs_layout(config)
        self.slate_size = config.slate_size
        self.n_candidates = config.n_candidates
        self.gamma = float(gamma)
        self.lr = float(lr)
        self.eps_start = float(exploration_initial_eps)
        self.eps_end = float(exploration_final_eps)
        self.exploration_steps = int(exploration_steps)
        self.discretiser = Discretiser(self.layout, n_progress_bins)
        self.q = np.full((self.discretiser.n_states, self.discretiser.n_item_classes),
                         float(q_init))
        self.rng = np.random.default_rng(seed)
        self.num_timesteps = 0
        self.n_updates = 0

    @property
    def exploration_rate(self) -> float:
        """Current epsilon."""
        return linear_schedule(self.eps_start, self.eps_end, self.exploration_steps,
                               self.num_timesteps)

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """(n, obs_dim) -> (n, n_candidates) Q of each candidate."""
        s = self.discretiser.states(obs)
        return self.q[s[:, None], self.discretiser.item_classes(obs)]

    def act(self, obs: np.ndarray, context: ActContext | None = None, *,
            explore: bool = True) -> np.ndarray:
        """Top-``slate_size`` candidates by Q; epsilon-random slates when exploring.

        Ties (common early on: every entry starts at ``q_init``) are broken at random while
        exploring and by the lower index otherwise, so greedy acting draws nothing from the
        generator (evaluating between updates does not change the training run).

        Returns:
            (n, slate_size) int64.
        """
        check_obs(obs, self.layout)
        slates = top_k_slates(self.q_values(obs), self.slate_size, self.rng if explore else None)
        if explore:
            n = obs.shape[0]
            rand = self.rng.random(n) < self.exploration_rate
            slates[rand] = random_slates(self.rng, int(rand.sum()), self.n_candidates,
                                         self.slate_size)
        return slates

    def update(self, batch: Transition) -> dict[str, float]:
        """One synchronous Q-learning update from a batch (see the module docstring)."""
        d = self.discretiser
        n = batch.obs.shape[0]
        s = d.states(batch.obs)
        a = d.item_classes(batch.obs)[np.arange(n), credited_item(batch.action, batch.clicked)]
        s_next = d.states(batch.next_obs)
        best_next = self.q[s_next[:, None], d.item_classes(batch.next_obs)].max(axis=1)
        not_done = 1.0 - np.asarray(batch.terminated, np.float64)
        target = np.asarray(batch.reward, np.float64) + self.gamma * not_done * best_next
        td = target - self.q[s, a]
        cell = s * d.n_item_classes + a
        size = self.q.size
        count = np.bincount(cell, minlength=size)
        total = np.bincount(cell, weights=td, minlength=size)
        hit = count > 0
        self.q.reshape(-1)[hit] += self.lr * total[hit] / count[hit]
        self.num_timesteps += n
        self.n_updates += 1
        return {
            "train/loss": float(np.mean(td ** 2)),
            "train/q_mean": float(np.mean(target - td)),
            "train/n_updates": float(self.n_updates),
            "rollout/exploration_rate": self.exploration_rate,
        }

    def state_dict(self) -> dict[str, Any]:
        """Table, counters and generator state (tensors, numbers, strings, dicts)."""
        return {
            "kind": "TabularQ",
            "q": torch.from_numpy(self.q.copy()),
            "num_timesteps": self.num_timesteps,
            "n_updates": self.n_updates,
            "rng": rng_state(self.rng),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        q = from_saveable(state["q"])
        if q.shape != self.q.shape:
            raise ValueError(f"Q table shape {q.shape} in the state differs from {self.q.shape}")
        self.q = q.astype(np.float64)
        self.num_timesteps = int(state["num_timesteps"])
        self.n_updates = int(state["n_updates"])
        set_rng_state(self.rng, state["rng"])
