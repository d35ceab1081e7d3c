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

from agents.base import Transition
from agents.qbase import QLearner, check_gamma_lr
from agents.replay import as_array, credited_item
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


class TabularQ(QLearner):
    """Tabular Q-learning recommender (see the module docstring for the discretisation).

    The epsilon schedule, acting, counters and state format are
    :class:`agents.qbase.QLearner`'s. Acting: top-``slate_size`` candidates by Q,
    epsilon-random slates when exploring. Ties (common early on: every entry starts at
    ``q_init``) are broken at random while exploring and by the lower index otherwise, so
    greedy acting draws nothing from the generator (evaluating between updates does not change
    the training run).

    Args:
        config: the world's config (observation layout, slate size).
        seed: seed of the learner's own generator (exploration, tie-breaking).
        gamma: discount.
        lr: step size of the Q update.
        n_progress_bins: session-progress bins of the state.
        q_init: initial value of every table entry.
        **exploration: ``exploration_initial_eps`` (1.0), ``exploration_final_eps`` (0.05),
            ``exploration_steps`` (20,000): epsilon moves linearly from the initial to the final
            value over this many transitions (rows), as in :class:`agents.qbase.QLearner`.
    """

    kind = "TabularQ"
    random_tie_break = True

    def __init__(
        self,
        config: EnvConfig,
        *,
        seed: int = 0,
        gamma: float = 0.95,
        lr: float = 0.1,
        n_progress_bins: int = 4,
        q_init: float = 0.0,
        **exploration: Any,
    ) -> None:
        check_gamma_lr(gamma, lr)
        super().__init__(config, seed=seed, gamma=gamma, lr=lr,
                         **exploration)
        self.discretiser = Discretiser(self.layout, n_progress_bins)
        self.q = np.full((self.discretiser.n_states, self.discretiser.n_item_classes),
                         float(q_init))

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """(n, obs_dim) -> (n, n_candidates) Q of each candidate."""
        s = self.discretiser.states(obs)
        return self.q[s[:, None], self.discretiser.item_classes(obs)]

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
        return self._count_update(n, float(np.mean(td ** 2)), float(np.mean(target - td)))

    def _model_state(self) -> dict[str, Any]:
        """The Q table (a tensor)."""
        return {"q": torch.from_numpy(self.q.copy())}

    def _load_model_state(self, state: dict[str, Any]) -> None:
        q = as_array(state["q"])
        if q.shape != self.q.shape:
            raise ValueError(f"Q table shape {q.shape} in the state differs from {self.q.shape}")
        self.q = q.astype(np.float64)
