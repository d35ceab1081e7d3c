"""The learner interface shared by baselines, our Q-learners and SB3 adapters.

A learner acts for many sessions at once (batched observations in, batched actions out) and
learns from batched transitions. Learners use composition, not a class hierarchy: anything
with these methods is a :class:`Learner`.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np


class ActContext(NamedTuple):
    """What a platform knows besides the observation, per observation row.

    Attributes:
        world: the :class:`recsim_env.World` (only *privileged* learners, the oracles, may read
            hidden state such as ``world.sessions.interest`` or ``world.candidates.quality``).
        slots: (n,) int64 world session slot of each row.
        user_ids: (n,) int64 id of the user being served (a platform knows who is logged in).
        item_ids: (n, n_candidates) int64 catalog ids of the candidates (-1 for fresh documents).
            Ids are catalog slots, reused when items retire: ``item_born`` tells items apart.
        providers: (n, n_candidates) int64 provider of each candidate (-1 for none), or
            ``None`` where the caller does not give it (a platform knows who published what).
        item_born: (n, n_candidates) int64 world step each candidate was published (the
            initial catalog's are negative; -1 for fresh documents, whose ``item_ids`` are -1),
            or ``None`` where the caller does not give it.
    """

    world: Any
    slots: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    providers: np.ndarray | None = None
    item_born: np.ndarray | None = None


class Transition(NamedTuple):
    """A batch of transitions, leading axis = row (session).

    Attributes:
        obs: (n, obs_dim) float32.
        action: (n, slate_size) int64 (or (n,) for ``Discrete`` spaces).
        reward: (n,) float64.
        next_obs: (n, obs_dim) float32 (the terminal observation where the episode ended).
        terminated: (n,) bool.
        truncated: (n,) bool.
        clicked: (n,) int64 slate position clicked, or -1 (the platform sees clicks).
        context: the :class:`ActContext` the actions were chosen in (may be ``None``).
        next_context: the context of ``next_obs`` (may be ``None``): the same users, and the
            candidates ``next_obs`` shows (drawn anew every step; a terminal observation shows
            this step's).
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    clicked: np.ndarray
    context: ActContext | None = None
    next_context: ActContext | None = None


@runtime_checkable
class Learner(Protocol):
    """What the runner needs from a learner."""

    privileged: bool
    """True for oracles that read hidden world state; reported as such in every table."""

    def act(self, obs: np.ndarray, context: ActContext | None = None, *,
            explore: bool = True) -> np.ndarray:
        """Choose actions for a batch of observations: (n, obs_dim) -> (n, slate_size)."""
        ...

    def update(self, batch: Transition) -> dict[str, float]:
        """Learn from a batch; returns training metrics keyed by SB3 tag (``train/loss``)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume bit for bit: tensors, arrays, numbers, strings, and
        nested dicts/lists of those (never arbitrary objects; loadable with
        ``torch.load(weights_only=True)``)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        ...
