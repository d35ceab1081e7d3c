"""Learners that remember: the platform's own record of what it showed, what was clicked and
what the clicks earned, kept per user id and per item id across sessions.

Why: on ``default`` the user's interest is hidden, and the observation only carries the
topics the user consumed recently (``history``). What the user *turned down* is lost, and
the candidates are described by text features, not topics. A DQN that is shown the true
interest (``observe_interest=True``, a privileged world setting) reaches about 87 on the tuning
seeds where the plain DQN plateaus near 68. A real platform cannot read interest, but it knows
who is logged in (:attr:`agents.base.ActContext.user_ids`) and sees its own impressions and the
clicks (:attr:`agents.base.Transition.clicked`). :class:`UserMemory` turns those into a
per-user profile; :class:`MemoryDQN` feeds it to the DQN's scorer. Nothing of the world's
hidden state is read: the learner is not privileged.

The item's side (``item_memory``): how much an item is watched depends on its hidden quality,
which the candidate features do not carry. The platform knows which item it showed
(``ActContext.item_ids``), who published it (``providers``) and what each click earned (the
step's reward): :class:`ItemMemory` keeps each item's and each provider's reward per click,
shrunk toward the level above. On ``default`` (tuning seeds 0-4, 100k steps) this lifted the
memory DQN from 68.9 to 75.7 (measured before its next-state features were read for the next
step's candidates); an oracle that knows quality and length but not interest scores about 75
there.

**Profile** of user ``u`` (content features only, the first ``content_dim`` of each
candidate): ``click[u]``, an exponential average (``memory_decay``) of the content of the items
``u`` clicked, and ``skip[u]``, the same of the mean content of the items shown to ``u`` and not
clicked, plus the log-counts of clicks and impressions. Where users are new each session
(``fresh_user_each_session``, RecSim's IE) a user's profile is cleared when the session ends.

**Network input**: the user part gains ``[click, skip, log1p(clicks) / 5, log1p(impressions) /
5]`` and each candidate gains its dot products with ``click`` and ``skip`` (content features
are L2-normalised, so these are similarities) and, with ``item_memory``, the
:data:`ITEM_MEMORY_FEATURES`; the rest is :class:`agents.dqn.DQN` unchanged. With
``user_memory = false`` the user profile and its features are left out (with ``item_memory``
also off, the observation is the world's own, unchanged). On ``recsim_ie``, where users are new
every session and their interest is observed, the profile only repeats the observation, and
it held SB3's PPO near the myopic level there (tuning seeds 0-1, 600k steps: 178.7 against
plain PPO's 243.5); ``memory_ppo`` and ``memory_slateq`` run with both memories off there.
:class:`PlatformMemory` builds these inputs for any learner: :class:`MemoryDQN`,
:class:`MemorySlateQ` and SB3's PPO (:class:`agents.sb3.MemorySB3Learner`, ``memory_ppo``).
Replay stores these augmented observations (the next observation with the profile after the
step), so the TD target sees what acting saw.

**One memory per world**: training, the learning-curve world and the evaluation world each
get their own (keyed by the world object), so evaluation never reads what was learned about
another world's users. The rollout loop feeds the memory through :meth:`MemoryDQN.observe`
when it does not learn (evaluation). The state saves the memory of the world it learns on.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from agents.base import ActContext, Transition
from agents.dqn import DQN
from agents.replay import ReplayBuffer, as_array, obs_layout
from agents.slateq import SlateQ
from recsim_env.config import EnvConfig
from recsim_env.items import repeated_mask
from recsim_env.world import ObsLayout

__all__ = ["MEMORY_OPTIONS", "ItemMemory", "MemoryDQN", "MemorySlateQ", "NetLayout",
           "PlatformMemory", "UserMemory", "UserMemoryMixin", "WorldMemory",
           "split_memory_options"]

#: per-candidate memory features: similarity to the click and to the skip profile
CANDIDATE_MEMORY_FEATURES = ("click_similarity", "skip_similarity")


class UserMemory:
    """Per-user decayed profiles of clicked and skipped content (see the module docstring).

    Args:
        content_dim: length of an item's content features.
        decay: weight of the old profile in each update, in [0, 1).
    """

    def __init__(self, content_dim: int, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"memory_decay must be in [0, 1), got {decay!r}")
        self.content_dim, self.decay = int(content_dim), float(decay)
        self.click = np.zeros((0, self.content_dim), np.float32)
        self.skip = np.zeros((0, self.content_dim), np.float32)
        self.counts = np.zeros((0, 2), np.float64)  # clicks, impressions

    @property
    def user_dim(self) -> int:
        """Features added to the user part."""
        return 2 * self.content_dim + 2

    def _grow(self, user_ids: np.ndarray) -> None:
        need = int(user_ids.max(initial=-1)) + 1
        have = self.click.shape[0]
        if need > have:
            n = max(need, 2 * have)
            pad = n - have
            self.click = np.concatenate([self.click, np.zeros((pad, self.content_dim), np.float32)])
            self.skip = np.concatenate([self.skip, np.zeros((pad, self.content_dim), np.float32)])
            self.counts = np.concatenate([self.counts, np.zeros((pad, 2))])

    def features(self, user_ids: np.ndarray, content: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        """The memory features of rows served to ``user_ids``.

        Args:
            user_ids: (n,) int64.
            content: (n, C, content_dim) the candidates' content features.

        Returns:
            user (n, user_dim) and candidate (n, C, 2) float32 features.
        """
        self._grow(user_ids)
        click, skip = self.click[user_ids], self.skip[user_ids]
        user = np.concatenate([click, skip, np.log1p(self.counts[user_ids]) / 5.0], axis=1)
        cand = np.stack([np.einsum("ncd,nd->nc", content, click),
                         np.einsum("ncd,nd->nc", content, skip)], axis=-1)
        return user.astype(np.float32), cand.astype(np.float32)

    def update(self, user_ids: np.ndarray, content: np.ndarray, slates: np.ndarray,
               clicked: np.ndarray) -> None:
        """Record one step: each row's user was shown ``slates`` and clicked slate position
        ``clicked`` (-1: nothing). A candidate repeated in a slate counts once.

        Args:
            user_ids: (n,) int64, distinct (a user is in one session at a time).
            content: (n, C, content_dim) the candidates' content features.
            slates: (n, k) int64 candidate indices.
            clicked: (n,) int64 slate position or -1.
        """
        self._grow(user_ids)
        rows = np.arange(slates.shape[0])
        shown = ~repeated_mask(slates)
        hit = clicked >= 0
        skipped = shown.copy()
        skipped[rows[hit], clicked[hit]] = False
        items = content[rows[:, None], slates]  # (n, k, D)
        n_skip = skipped.sum(axis=1)
        lam = self.decay
        u = user_ids[hit]
        self.click[u] = lam * self.click[u] + (1 - lam) * items[rows[hit], clicked[hit]]
        some = n_skip > 0
        mean_skip = (items * skipped[..., None]).sum(axis=1)[some] / n_skip[some, None]
        u = user_ids[some]
        self.skip[u] = lam * self.skip[u] + (1 - lam) * mean_skip
        self.counts[user_ids, 0] += hit
        self.counts[user_ids, 1] += shown.sum(axis=1)

    def forget(self, user_ids: np.ndarray) -> None:
        """Clear the profiles of ``user_ids`` (new users behind old ids)."""
        self._grow(user_ids)
        self.click[user_ids] = 0.0
        self.skip[user_ids] = 0.0
        self.counts[user_ids] = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"click": torch.from_numpy(self.click.copy()),
                "skip": torch.from_numpy(self.skip.copy()),
                "counts": torch.from_numpy(self.counts.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        click = as_array(state["click"])
        if click.ndim != 2 or click.shape[1] != self.content_dim:
            raise ValueError(f"memory state has content size {click.shape[1:]}, this memory "
                             f"{self.content_dim}")
        self.click, self.skip = click.copy(), as_array(state["skip"]).copy()
        self.counts = as_array(state["counts"]).copy()


#: per-candidate item-memory features (see :class:`ItemMemory`)
ITEM_MEMORY_FEATURES = ("item_watch", "provider_watch", "item_clicks", "provider_clicks")


class ItemMemory:
    """The platform's record of the reward each item and each provider earned when clicked.

    Per catalog id and per provider: the number of clicks and the sum of the step reward of
    those clicks (the watch time, on ``watch_time`` worlds). Estimates are shrunk toward the
    level above: a provider's mean toward the mean over all clicks, an item's toward its
    provider's, each with ``prior`` pseudo-clicks. Catalog ids are slots reused when items
    retire: a record is cleared when its id shows an item published at another step.
    Fresh documents (id -1) and items without a provider have no record of their own.

    Args:
        prior: pseudo-clicks of the shrinkage (> 0).
    """

    def __init__(self, prior: float) -> None:
        if not prior > 0.0:
            raise ValueError(f"item_memory_prior must be > 0, got {prior!r}")
        self.prior = float(prior)
        self.item = np.zeros((0, 2), np.float64)  # clicks, reward sum
        self.item_born = np.zeros(0, np.int64)
        self.provider = np.zeros((0, 2), np.float64)
        self.total = np.zeros(2, np.float64)

    @staticmethod
    def _grow_to(a: np.ndarray, need: int, fill: float = 0.0) -> np.ndarray:
        have = a.shape[0]
        if need <= have:
            return a
        pad = np.full((max(need, 2 * have) - have,) + a.shape[1:], fill, a.dtype)
        return np.concatenate([a, pad])

    def _sync(self, item_ids: np.ndarray, born: np.ndarray, providers: np.ndarray) -> None:
        """Grow the tables to the ids (at least one row: id -1 reads row 0, masked) and clear
        the records of reused ids."""
        self.item = self._grow_to(self.item, max(int(item_ids.max(initial=-1)) + 1, 1))
        self.item_born = self._grow_to(self.item_born, self.item.shape[0], -1)
        self.provider = self._grow_to(self.provider, max(int(providers.max(initial=-1)) + 1, 1))
        known = item_ids >= 0
        ids, b = item_ids[known], born[known]
        new = self.item_born[ids] != b
        self.item[ids[new]] = 0.0
        self.item_born[ids] = b

    def features(self, item_ids: np.ndarray, born: np.ndarray, providers: np.ndarray
                 ) -> np.ndarray:
        """(n, C, len(ITEM_MEMORY_FEATURES)) float32: the item's and its provider's shrunk
        mean reward per click relative to the mean over all clicks, minus 1, and their
        log-click counts / 5."""
        self._sync(item_ids, born, providers)
        k = self.prior
        g = self.total[1] / self.total[0] if self.total[0] > 0 else 1.0
        g = g if g > 0 else 1.0
        p_rec = np.where((providers >= 0)[..., None], self.provider[np.maximum(providers, 0)],
                         0.0)
        p_mean = (p_rec[..., 1] + k * g) / (p_rec[..., 0] + k)
        i_rec = np.where((item_ids >= 0)[..., None], self.item[np.maximum(item_ids, 0)], 0.0)
        i_mean = (i_rec[..., 1] + k * p_mean) / (i_rec[..., 0] + k)
        return np.stack([i_mean / g - 1.0, p_mean / g - 1.0, np.log1p(i_rec[..., 0]) / 5.0,
                         np.log1p(p_rec[..., 0]) / 5.0], axis=-1).astype(np.float32)

    def update(self, item_ids: np.ndarray, born: np.ndarray, providers: np.ndarray,
               slates: np.ndarray, clicked: np.ndarray, reward: np.ndarray) -> None:
        """Record one step: row ``r`` clicked slate position ``clicked[r]`` (-1: nothing) of
        ``slates[r]`` and earned ``reward[r]``."""
        self._sync(item_ids, born, providers)
        hit = np.flatnonzero(clicked >= 0)
        cand = slates[hit, clicked[hit]]
        ids, prov, r = item_ids[hit, cand], providers[hit, cand], reward[hit]
        self.total += (hit.size, r.sum())
        for table, key in ((self.item, ids), (self.provider, prov)):
            ok = key >= 0
            np.add.at(table, key[ok], np.stack([np.ones(ok.sum()), r[ok]], axis=1))

    def state_dict(self) -> dict[str, Any]:
        return {"item": torch.from_numpy(self.item.copy()),
                "item_born": torch.from_numpy(self.item_born.copy()),
                "provider": torch.from_numpy(self.provider.copy()),
                "total": torch.from_numpy(self.total.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.item = as_array(state["item"]).copy()
        self.item_born = as_array(state["item_born"]).copy()
        self.provider = as_array(state["provider"]).copy()
        self.total = as_array(state["total"]).copy()


@dataclass(frozen=True)
class WorldMemory:
    """What a memory learner keeps about one world: its users, and (optionally) its items."""

    user: UserMemory | None
    item: ItemMemory | None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from a learner state's ``memory`` (users) and ``item_memory`` entries."""
        for option, key, part in (("user_memory", "memory", self.user),
                                  ("item_memory", "item_memory", self.item)):
            if (part is not None) != (key in state):
                raise ValueError(f"the saved state and this learner disagree on {option}")
            if part is not None:
                part.load_state_dict(state[key])


@dataclass(frozen=True)
class NetLayout:
    """Layout of the augmented rows the network and the replay see: ``[user (user_dim) |
    candidate 0 (item_dim) | ...]``, like :class:`recsim_env.world.ObsLayout`."""

    user_dim: int
    item_dim: int
    n_candidates: int

    @property
    def size(self) -> int:
        return self.user_dim + self.n_candidates * self.item_dim

    def join(self, user: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """(n, user_dim), (n, C, item_dim) -> (n, size) float32."""
        return np.concatenate([user, cand.reshape(cand.shape[0], -1)], axis=1, dtype=np.float32)

    # the inverse of join, and the observation space carrying this layout (what the
    # candidate-scoring SB3 policies read): ObsLayout's own (they read only user_dim,
    # n_candidates, item_dim and size, which this layout has too)
    split = ObsLayout.split
    space = ObsLayout.space


MEMORY_OPTIONS = ("user_memory", "memory_decay", "item_memory", "item_memory_prior")
"""A learner's options that configure its :class:`PlatformMemory` (the rest are its own)."""


def split_memory_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(PlatformMemory's options, the others)`` of a learner's keyword options."""
    return ({k: v for k, v in options.items() if k in MEMORY_OPTIONS},
            {k: v for k, v in options.items() if k not in MEMORY_OPTIONS})


class PlatformMemory:
    """The memories one learner keeps, one :class:`WorldMemory` per world (keyed by the world
    object), and the augmented observations it builds from them (see the module docstring).
    Learners hold one: :class:`UserMemoryMixin` (our Q-learners), :class:`MemorySB3Learner`.

    Args:
        config: the world's config.
        kind: the learner's name, for errors.
        user_memory: keep a :class:`UserMemory` and give the user and each candidate its
            features (off, the learner has only the item memory, or no memory at all).
        memory_decay: weight of the old user profile in each update.
        item_memory: also keep an :class:`ItemMemory` and give each candidate its features.
        item_memory_prior: the item memory's pseudo-clicks.
    """

    def __init__(self, config: EnvConfig, *, kind: str = "learner", user_memory: bool = True,
                 memory_decay: float = 0.9, item_memory: bool = False,
                 item_memory_prior: float = 2.0) -> None:
        for name, v in (("user_memory", user_memory), ("item_memory", item_memory)):
            if not isinstance(v, (bool, np.bool_)):
                raise ValueError(f"{name} must be true or false, got {v!r}")
        self.kind = kind
        self.user_memory = bool(user_memory)
        self.memory_decay = float(memory_decay)
        self.item_memory = bool(item_memory)
        self.item_memory_prior = float(item_memory_prior)
        self.layout = obs_layout(config)
        self.content_dim = self.layout.content_dim
        mem_user_dim = UserMemory(self.content_dim, self.memory_decay).user_dim  # checks decay
        n_item_feats = len(CANDIDATE_MEMORY_FEATURES)
        if not self.user_memory:
            mem_user_dim = n_item_feats = 0
        if self.item_memory:
            ItemMemory(self.item_memory_prior)  # checks the prior
            n_item_feats += len(ITEM_MEMORY_FEATURES)
        self.net_layout = NetLayout(self.layout.user_dim + mem_user_dim,
                                    self.layout.item_dim + n_item_feats, self.layout.n_candidates)
        self.forget_at_session_end = bool(config.fresh_user_each_session)
        self._memories: weakref.WeakKeyDictionary[Any, WorldMemory] = weakref.WeakKeyDictionary()
        self._learn_world: Any = None
        self._restored: dict[str, Any] | None = None

    def of(self, world: Any) -> WorldMemory | None:
        """The memory of ``world``, if this learner has met it."""
        return self._memories.get(world)

    def memory(self, context: ActContext | None, learning: bool) -> WorldMemory:
        """The memory of the context's world (a new one for a world not seen before; the
        restored memory of a loaded state for the first world this learner explores or learns
        on, which is the training world it was saved from)."""
        if context is None or context.user_ids is None:
            raise ValueError(f"{self.kind} needs the act context (user ids): run it through "
                             "the rollout loop (agents.rollout), which passes one")
        if self.item_memory and (context.providers is None or context.item_born is None):
            raise ValueError(f"{self.kind} with item_memory needs the act context's providers "
                             "and item_born: run it through the rollout loop (agents.rollout)")
        mem = self._memories.get(context.world)
        if mem is None:
            mem = self._memories[context.world] = WorldMemory(
                UserMemory(self.content_dim, self.memory_decay) if self.user_memory else None,
                ItemMemory(self.item_memory_prior) if self.item_memory else None)
            if learning and self._restored is not None:
                mem.load_state_dict(self._restored)
                self._restored = None
        if learning:
            self._learn_world = context.world
        return mem

    def _augment(self, obs: np.ndarray, ctx: ActContext, mem: WorldMemory) -> np.ndarray:
        user, cand = self.layout.split(obs)
        users, parts = [user], [cand]
        if mem.user is not None:
            m_user, m_cand = mem.user.features(ctx.user_ids, cand[..., : self.content_dim])
            users.append(m_user)
            parts.append(m_cand)
        if mem.item is not None:
            parts.append(mem.item.features(ctx.item_ids, ctx.item_born, ctx.providers))
        return self.net_layout.join(np.concatenate(users, axis=1),
                                    np.concatenate(parts, axis=2))

    def net_obs(self, obs: np.ndarray, context: ActContext | None, learning: bool
                ) -> np.ndarray:
        """``obs`` augmented with the memory of the context's world, ``(n, net_layout.size)``
        float32."""
        return self._augment(obs, context, self.memory(context, learning))

    def record(self, batch: Transition, learning: bool) -> tuple[np.ndarray, np.ndarray]:
        """Augment ``obs`` (memory before the step), record the step, augment ``next_obs``
        (memory after it; it is the same user's, terminal where the session ended)."""
        ctx, nxt = batch.context, batch.next_context
        mem = self.memory(ctx, learning)
        if mem.item is not None and nxt is None:
            raise ValueError(f"{self.kind} with item_memory needs the transition's "
                             "next_context (the candidates next_obs shows): run it through the "
                             "rollout loop (agents.rollout)")
        users = ctx.user_ids
        obs = self._augment(batch.obs, ctx, mem)
        _, cand = self.layout.split(batch.obs)
        slates = np.asarray(batch.action).reshape(users.size, -1)
        if mem.user is not None:
            mem.user.update(users, cand[..., : self.content_dim], slates, batch.clicked)
        if mem.item is not None:
            mem.item.update(ctx.item_ids, ctx.item_born, ctx.providers, slates, batch.clicked,
                            np.asarray(batch.reward, np.float64))
        # the next observation shows the next step's candidates (or, where the session ended,
        # this step's): its item features are theirs
        next_obs = self._augment(batch.next_obs, ctx if nxt is None else nxt, mem)
        if self.forget_at_session_end and mem.user is not None:
            mem.user.forget(users[batch.terminated | batch.truncated])
        return obs, next_obs

    def state_dict(self) -> dict[str, Any]:
        """The memory of the world this learner learns on: with ``user_memory``, a ``memory``
        entry (users) and, with ``item_memory``, an ``item_memory`` entry (empty before it has
        learned)."""
        mem = self._memories.get(self._learn_world) if self._learn_world is not None else None
        if mem is None:
            return dict(self._restored or {})
        state = {}
        if mem.user is not None:
            state["memory"] = mem.user.state_dict()
        if mem.item is not None:
            state["item_memory"] = mem.item.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Keep the saved memory for the next world learned on (the training world it was
        saved from is rebuilt on resume); forget every other world's."""
        self._restored = ({k: state[k] for k in ("memory", "item_memory") if k in state}
                          or None)
        self._memories = weakref.WeakKeyDictionary()
        self._learn_world = None


class UserMemoryMixin:
    """Gives a replay Q-learner (:class:`agents.qbase.ReplayQLearner`: its networks take
    ``(user, candidates)`` from ``_split`` and are sized by ``_net_dims``) a
    :class:`PlatformMemory`. Put it first in the bases: ``class MemoryDQN(UserMemoryMixin,
    DQN)``.

    Args:
        config: the world's config.
        seed: the learner's seed.
        **hparams: :data:`MEMORY_OPTIONS` (:class:`PlatformMemory`'s), then the learner's own.
    """

    def __init__(self, config: EnvConfig, *, seed: int = 0, **hparams: Any) -> None:
        memory, hparams = split_memory_options(hparams)
        self.platform_memory = PlatformMemory(config, kind=self.kind, **memory)
        self.net_layout = self.platform_memory.net_layout
        super().__init__(config, seed=seed, **hparams)
        self.replay = ReplayBuffer(self.hp.buffer_size, self.net_layout.size, self.slate_size)

    def _net_dims(self) -> tuple[int, int]:
        return self.net_layout.user_dim, self.net_layout.item_dim

    def _split(self, obs: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net_layout.split(torch.as_tensor(obs, dtype=torch.float32))

    def _net_obs(self, obs: np.ndarray, context: ActContext | None, explore: bool
                 ) -> np.ndarray:
        return self.platform_memory.net_obs(obs, context, learning=explore)

    def observe(self, batch: Transition) -> None:
        """Record a step without learning (the rollout loop calls this when ``learn`` is
        off, e.g. in evaluation)."""
        self.platform_memory.record(batch, learning=False)

    def update(self, batch: Transition) -> dict[str, float]:
        """Record the step in the memory, then store and learn as the learner does, from the
        augmented observations."""
        obs, next_obs = self.platform_memory.record(batch, learning=True)
        return super().update(batch._replace(obs=obs, next_obs=next_obs))

    # ------------------------------------------------------------------ state
    def _model_state(self) -> dict[str, Any]:
        return {**super()._model_state(), **self.platform_memory.state_dict()}

    def _load_model_state(self, state: dict[str, Any]) -> None:
        super()._load_model_state(state)
        self.platform_memory.load_state_dict(state)


class MemoryDQN(UserMemoryMixin, DQN):
    """:class:`agents.dqn.DQN` over observations augmented with a per-user memory
    (``memory_decay``, then DQN's hyperparameters)."""

    kind = "MemoryDQN"


class MemorySlateQ(UserMemoryMixin, SlateQ):
    """:class:`agents.slateq.SlateQ` over observations augmented with a per-user memory
    (``memory_decay``, then SlateQ's hyperparameters)."""

    kind = "MemorySlateQ"
