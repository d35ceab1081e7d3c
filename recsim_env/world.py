"""The world: users, items, choice and response composed into one batched step.

The world knows nothing of agents or dicts. It runs ``n_sessions`` concurrent session slots
(one per recommender in the PettingZoo env, one per sub-env in the VecEnv). Slot ``s`` serves
users of cohort ``s`` (users ``u`` with ``u % n_sessions == s``), one session at a time.

Step order: recommend (slates in), choose, respond, update users, update items, reward,
terminate (end sessions, start new ones), observe (next candidates and observations). The
response formulas (utility, watch time, satisfaction, budget, patience, reward, session end)
live in :mod:`recsim_env.response`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, NamedTuple

import numpy as np
from gymnasium import spaces

from recsim_env import choice as choice_lib
from recsim_env import items as items_lib
from recsim_env import response
from recsim_env import users as users_lib
from recsim_env.config import EnvConfig
from recsim_env.content import ContentEncoder, make_content_encoder

# Per-candidate features after the content vector: age, log impressions, empirical CTR, cold.
ITEM_EXTRA_FEATURES = ("age", "log_impressions", "ctr", "cold_start")
# User summary features after the consumption history: session time used, session steps,
# session click rate.
USER_SESSION_FEATURES = ("time_used", "session_steps", "click_rate")


def content_encoder(config: EnvConfig):
    """The content encoder configured by ``config`` (``content_encoder``, ``content_dim``,
    ``content_noise``)."""
    return make_content_encoder(config.content_encoder, n_topics=config.n_topics,
                                dim=config.content_dim, noise=config.content_noise_value)


def check_encoder(encoder: ContentEncoder, config: EnvConfig) -> ContentEncoder:
    """``encoder`` if it matches the one ``config`` builds (name, ``dim`` and noise, so
    observations have the layout :meth:`ObsLayout.from_config` gives); else ``ValueError``.
    Building that reference is cheap: no encoder loads a model or encodes before it is used."""
    if not isinstance(encoder, ContentEncoder):
        raise ValueError(f"encoder must be a recsim_env.content.ContentEncoder, got "
                         f"{type(encoder).__name__}")
    ref = content_encoder(config)
    for attr in ("name", "dim", "noise"):
        want, got = getattr(ref, attr, None), getattr(encoder, attr, None)
        if got != want:
            raise ValueError(f"encoder.{attr} is {got!r} but config {config.content_encoder!r} "
                             f"(content_dim={config.content_dim}, content_noise="
                             f"{config.content_noise_value}) gives {want!r}")
    return encoder


@dataclasses.dataclass(frozen=True)
class ObsLayout:
    """Layout of a recommender observation: a flat float32 vector.

    ``[history (n_topics) | time_used, session_steps, click_rate | interest (n_topics, only if
    observe_interest) | candidate 0 features | ... | candidate C-1 features]``, where each
    candidate has ``[content (content_dim) | age, log_impressions, ctr, cold_start]``.
    """

    n_topics: int
    content_dim: int
    n_candidates: int
    observe_interest: bool

    @functools.cached_property
    def user_dim(self) -> int:
        """Length of the user part."""
        return self.n_topics * (2 if self.observe_interest else 1) + len(USER_SESSION_FEATURES)

    @functools.cached_property
    def item_dim(self) -> int:
        """Length of one candidate's part."""
        return self.content_dim + len(ITEM_EXTRA_FEATURES)

    @functools.cached_property
    def size(self) -> int:
        """Total observation length."""
        return self.user_dim + self.n_candidates * self.item_dim

    @classmethod
    def from_config(cls, config: EnvConfig) -> ObsLayout:
        """The layout a world with ``config`` produces (builds only the content encoder,
        which loads no model until it encodes)."""
        return cls(config.n_topics, content_encoder(config).dim, config.n_candidates,
                   config.observe_interest)

    def split(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Split ``(..., size)`` observations into ``(..., user_dim)`` and
        ``(..., n_candidates, item_dim)`` (views, no copy; torch tensors work too)."""
        user = obs[..., : self.user_dim]
        cand = obs[..., self.user_dim:].reshape(obs.shape[:-1] + (self.n_candidates, self.item_dim))
        return user, cand

    def space(self) -> spaces.Box:
        """The recommender observation space of this layout (every face uses it): a flat
        float32 ``Box`` that also carries this layout as ``space.layout``, so a policy built
        from the space alone (``PPO(agents.sb3_policies.CandidateScoringPolicy, env)``) can
        split user and candidate features. It is a plain ``Box`` (PettingZoo wants one space
        class for all agents) and equal to any ``Box`` of the same shape."""
        space = spaces.Box(-np.inf, np.inf, (self.size,), np.float32)
        space.layout = self
        return space


class Candidates(NamedTuple):
    """What each session may recommend this step; leading axes (n_sessions, n_candidates).

    ``item_id`` is -1 for fresh (never stored) documents; ``topic`` is the main topic (the
    argmax of ``topic_mix``, which is one-hot at it when ``topic_purity == 1``).
    ``topic_mix`` (s, c, n_topics) and ``content`` (s, c, content_dim) are held only for
    fresh documents that are not RecSim's one-hot ones; otherwise they are ``None`` and
    :meth:`World.candidate_topic_mix` and :meth:`World.candidate_content` read them from the
    catalog (which changes only inside a step) or materialise the one-hot topics.
    """

    item_id: np.ndarray
    topic: np.ndarray
    topic_mix: np.ndarray
    quality: np.ndarray
    length: np.ndarray
    provider: np.ndarray
    content: np.ndarray
    age: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray


class Sessions(NamedTuple):
    """Per-slot session state, leading axis = session slot.

    The user arrays are the live state of the user being served (the population arrays are
    written back when the session ends).
    """

    user: np.ndarray  # (s,) int64
    interest: np.ndarray  # (s, T)
    anchor: np.ndarray  # (s, T)
    satiation: np.ndarray  # (s, T)
    history: np.ndarray  # (s, T)
    budget: np.ndarray  # (s,)
    patience: np.ndarray  # (s,)
    steps: np.ndarray  # (s,) int64
    ret: np.ndarray  # (s,) reward summed over the session
    clicks: np.ndarray  # (s,) int64
    satisfaction: np.ndarray  # (s,) summed satisfaction


class StepResult(NamedTuple):
    """Outcome of one world step (leading axis = session slot unless noted).

    Attributes:
        reward: (s,) recommender reward.
        choice: (s,) int64 clicked slate position or -1.
        clicked_item: (s,) int64 catalog id of the clicked item, -1 if none or fresh.
        watch_time: (s,).
        satisfaction: (s,) in [0, 1); 0 without a click.
        user_utility: (s,) utility of the clicked item for the user (0 without click).
        impressions: (s,) int64 items shown (distinct slate positions).
        cold_impressions: (s,) int64 cold-start items shown.
        cold_clicks: (s,) int64.
        session_ended: (s,) bool.
        session_length: (s,) int64 (valid where ``session_ended``).
        session_return: (s,) (valid where ``session_ended``).
        session_user: (s,) int64 user whose session this step belonged to.
        terminal_obs: (e, obs_size) float32 final observations of the sessions that ended
            (rows in slot order, for ``session_ended``), seen with this step's candidates.
        provider_reward: (n_providers,) reward of provider agents.
        provider_published: (n_providers,) bool.
    """

    reward: np.ndarray
    choice: np.ndarray
    clicked_item: np.ndarray
    watch_time: np.ndarray
    satisfaction: np.ndarray
    user_utility: np.ndarray
    impressions: np.ndarray
    cold_impressions: np.ndarray
    cold_clicks: np.ndarray
    session_ended: np.ndarray
    session_length: np.ndarray
    session_return: np.ndarray
    session_user: np.ndarray
    terminal_obs: np.ndarray
    provider_reward: np.ndarray
    provider_published: np.ndarray


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


BACKENDS = ("numba", "numpy")
"""How :class:`World` computes its step: compiled kernels, or the plain-numpy reference."""
DEFAULT_BACKEND = "numba"
BACKEND_ENV = "RECSIM_ENV_BACKEND"
"""Environment variable that chooses the backend of worlds built without one (every face)."""

@functools.cache
def _kernels() -> Any:
    """:mod:`recsim_env.kernels`, imported (numba and its on-disk cache loaded) on first use, so
    that ``import recsim_env`` stays light; not kept on worlds, which stay deep-copyable."""
    from recsim_env import kernels

    return kernels


class _Scratch(NamedTuple):
    """Intermediates of the compiled step, reused every step (never handed out)."""

    shown: np.ndarray
    quality: np.ndarray
    affinity: np.ndarray
    utility: np.ndarray
    z: np.ndarray
    clicked: np.ndarray
    pos: np.ndarray
    chosen: np.ndarray
    c_quality: np.ndarray
    c_length: np.ndarray
    args: np.ndarray
    exps: np.ndarray


# counted when sessions end
_COUNTERS = ("sessions", "session_length", "session_return", "returned_in_window",
             "first_clicks", "time_to_first_click")
# accumulated per slot every step (rows of World._acc)
_ACC_ROWS = ("impressions", "clicks", "cold_impressions", "cold_clicks", "watch_time")


class World:
    """Batched world state and step.

    Args:
        config: the world's configuration.
        n_sessions: concurrent session slots; defaults to ``config.n_recommenders``. When it
            differs, the population is scaled to keep ``config.cohort_size`` users per slot.
        encoder: the content encoder to use, built once and shared by several worlds (so a
            MiniLM encoder's embedding cache serves them all); it must match ``config``
            (:func:`check_encoder`). ``None``: build the one ``config`` names.
        backend: ``"numba"``: the step's arithmetic runs in compiled kernels
            (:mod:`recsim_env.kernels`); ``"numpy"``: the plain-numpy reference. Both draw the
            same random numbers and give bit-identical episodes
            (``tests/recsim_env/test_backends.py``). ``None`` (what every env face passes):
            the environment variable ``RECSIM_ENV_BACKEND`` if set, else
            :data:`DEFAULT_BACKEND`.
    """

    def __init__(self, config: EnvConfig, n_sessions: int | None = None, *,
                 encoder: ContentEncoder | None = None, backend: str | None = None) -> None:
        if backend is None:
            backend = os.environ.get(BACKEND_ENV, DEFAULT_BACKEND)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r} (from the "
                             f"argument or {BACKEND_ENV})")
        if n_sessions is None:
            n_sessions = config.n_recommenders
        if not (isinstance(n_sessions, (int, np.integer)) and n_sessions >= 1):
            raise ValueError(f"n_sessions must be an int >= 1, got {n_sessions!r}")
        self.config = config
        self.n_sessions = int(n_sessions)
        if self.n_sessions == config.n_recommenders:
            self.n_users = config.n_users
        else:
            self.n_users = config.cohort_size * self.n_sessions
        self.n_providers_total = config.n_background_providers + config.n_providers
        self.encoder = (content_encoder(config) if encoder is None
                        else check_encoder(encoder, config))
        self.layout = ObsLayout(config.n_topics, self.encoder.dim, config.n_candidates,
                                config.observe_interest)
        # cohorts: (n_sessions, cohort_max) user ids padded with -1
        m = -(-self.n_users // self.n_sessions)
        ids = np.arange(m * self.n_sessions).reshape(m, self.n_sessions).T
        self._cohorts = np.where(ids < self.n_users, ids, -1)
        self._cohort_sizes = (self._cohorts >= 0).sum(axis=1)
        self.provider_obs_dim = 4 + 2 * config.n_topics
        self._one_step = users_lib.drift_transition(np.int64(1), config)
        # constant arrays reused every step (read-only, so no step can corrupt them)
        n, P = self.n_sessions, config.n_providers
        self._arange_s = _frozen(np.arange(n))
        self._all_shown = _frozen(np.ones((n, 1), bool))
        self._ones_s = _frozen(np.ones(n, np.int64))
        self._zeros_s = _frozen(np.zeros(n, np.int64))
        self._minus_ones_s = _frozen(np.full(n, -1, np.int64))
        self._no_publish = _frozen(np.zeros(P, bool))
        self._no_publish_reward = _frozen(np.zeros(P))
        self._no_terminal_obs = _frozen(np.zeros((0, self.layout.size), np.float32))
        # one-hot mixtures: utilities and consumption touch one topic per item (a gather
        # instead of an (s, k, n_topics) einsum); identical results to the general path
        self._onehot_mix = config.topic_purity == 1.0
        self._onehot_content = (config.candidate_source == "fresh" and config.topic_purity == 1.0
                                and config.content_encoder == "topic"
                                and config.content_noise_value == 0.0)
        self._fresh_length = _frozen(np.full(n * config.n_candidates, config.item_length))
        self._fresh_length_sc = self._fresh_length.reshape(n, config.n_candidates)
        c = config.n_candidates
        # flat offset of candidate j's first content entry in row i of an observation batch
        self._onehot_offsets = _frozen(np.arange(n)[:, None] * self.layout.size
                                       + self.layout.user_dim
                                       + np.arange(c)[None, :] * self.layout.item_dim)
        self._fresh_ids = _frozen(np.full((n, c), -1, np.int64))
        self._minus_ones_sc = _frozen(np.full(n * c, -1, np.int64))
        self._fresh_zeros = _frozen(np.zeros((n, c)))
        self._fresh_zeros_int = _frozen(np.zeros((n, c), np.int64))
        self._fresh_extra = _frozen(np.zeros((n, c, len(ITEM_EXTRA_FEATURES)), np.float32))
        self._rng: np.random.Generator | None = None
        self.backend = backend
        self._compiled = backend == "numba"
        if backend == "numba":
            kernels = _kernels()
            self._kparams, self._kflags = kernels.step_params(config, self._one_step)
            if config.slate_size + 1 > choice_lib._NARROW:
                # numpy sums rows this wide pairwise: numpy computes the probabilities
                self._kflags[kernels.F_MODEL] = kernels.CASCADE
            k = config.slate_size
            self._scratch = _Scratch(
                shown=np.empty((n, k), bool), quality=np.empty((n, k)),
                affinity=np.empty((n, k)), utility=np.empty((n, k)), z=np.empty((n, k + 1)),
                clicked=np.empty(n, bool), pos=np.empty(n, np.int64),
                chosen=np.empty(n, np.int64), c_quality=np.empty(n), c_length=np.empty(n),
                args=np.empty((2, n)), exps=np.empty((2, n)))
            self._no_override = _frozen(np.zeros(0, np.int64))
            self._empty_s = _frozen(np.zeros(0))
            self._empty_sk = _frozen(np.zeros((0, 0)))
            self._empty_st = _frozen(np.zeros((0, 0)))
            self._no_content = self._no_mix = _frozen(np.zeros((0, 0), np.float32))
            self._no_ids = _frozen(np.zeros((0, 0), np.int64))
            self._fresh_flat_ids = _frozen(np.arange(n * c).reshape(n, c))
            self._empty_eps = _frozen(np.zeros((0, 0, 0)))
            self._log1p = np.log1p(np.arange(256, dtype=np.int64))  # numpy's own log1p values

    # ------------------------------------------------------------------ reset
    def reset(self, seed: int | np.random.SeedSequence | None = None) -> None:
        """Start a new episode: fresh population, catalog and sessions."""
        cfg = self.config
        root = np.random.default_rng(seed)
        (self.rng_users, self.rng_items, self.rng_choice, self.rng_cand,
         self.rng_content) = root.spawn(5)
        self._rng = root
        self.t = 0
        self.users = users_lib.init_users(cfg, self.rng_users, self.n_users)
        if cfg.cohort_topic_skew:
            u = np.arange(self.n_users)
            x = self.users.interest
            topic = ((u % self.n_sessions) // cfg.cohort_topic_group) % cfg.n_topics
            x[u, topic] += cfg.cohort_topic_skew
            np.clip(x, -1.0, 1.0, out=x)
            self.users.anchor[:] = x
            self.users.home[:] = x
        self.provider_skill = cfg.provider_skill_std * self.rng_items.standard_normal(
            self.n_providers_total)
        self.catalog = items_lib.empty_catalog(cfg, self.encoder.dim) if self._catalog_mode else None
        if self._catalog_mode:
            n0 = cfg.n_items_initial
            new = self._sample_new(
                self.rng_items.integers(cfg.n_topics, size=n0),
                self.rng_items.integers(cfg.n_background_providers, size=n0),
            )
            self.catalog = items_lib.insert_items(self.catalog, self.catalog.active, new, 0)
            # spread initial birth times so the catalog does not expire all at once
            life = cfg.item_lifetime or 1000
            born = -self.rng_items.integers(0, life, size=n0)
            self.catalog.born_at[: n0] = born
        self._provider_stats = np.zeros((cfg.n_providers, 3))  # decayed impressions, clicks, watch
        self._topic_demand = np.full(cfg.n_topics, 1.0 / cfg.n_topics)
        self.counters = dict.fromkeys(_COUNTERS, 0.0)
        self._acc = np.zeros((len(_ACC_ROWS), self.n_sessions))
        self.sessions = self._empty_sessions()
        # home interest of each slot's user (users.home[sessions.user]), kept by
        # _start_sessions: the compiled step reads it in slot order, not scattered over the
        # population
        self._session_home = np.zeros_like(self.sessions.interest)
        self._start_sessions(np.ones(self.n_sessions, bool))
        self._new_candidates()

    @property
    def _catalog_mode(self) -> bool:
        return self.config.candidate_source == "catalog"

    def _sample_new(self, topics: np.ndarray, providers: np.ndarray) -> items_lib.NewItems:
        return items_lib.sample_items(topics, providers, self.provider_skill, self.config,
                                      self.encoder, self.rng_content, keep_text=True)

    def _empty_sessions(self) -> Sessions:
        s, T = self.n_sessions, self.config.n_topics
        z = np.zeros((s, T))
        return Sessions(np.zeros(s, np.int64), z, z.copy(), z.copy(), z.copy(), np.zeros(s),
                        np.zeros(s), np.zeros(s, np.int64), np.zeros(s), np.zeros(s, np.int64),
                        np.zeros(s))

    # ------------------------------------------------------------------ sessions
    def _start_sessions(self, mask: np.ndarray) -> None:
        """Begin a new session in every slot where ``mask``: pick a user of the slot's cohort
        who is back (uniformly), or the one who comes back soonest when nobody is."""
        slots = np.flatnonzero(mask)
        if slots.size == 0:
            return
        cfg, U = self.config, self.users
        # Uniform over the cohort members who are back, by rejection: a few uniform proposals
        # per slot, then an exact scan for the (rare) slots where every proposal was away.
        u = self.rng_users.random(size=(slots.size, 4))
        if self._compiled:
            user, miss = np.empty(slots.size, np.int64), np.empty(slots.size, np.int64)
            miss = miss[:_kernels().propose_users(slots, self._cohorts, self._cohort_sizes, u,
                                                  U.away_until, self.t, user, miss)]
        else:
            cohort = self._cohorts[slots]  # (e, m)
            prop = (u * self._cohort_sizes[slots, None]).astype(np.int64)
            cand = np.take_along_axis(cohort, prop, axis=1)
            ok = U.away_until[cand] <= self.t
            first = ok.argmax(axis=1)
            user = cand[np.arange(slots.size), first]
            miss = np.flatnonzero(~ok.any(axis=1))
        if miss.size:
            sub = self._cohorts[slots[miss]]
            valid = sub >= 0
            safe = np.where(valid, sub, 0)
            back = valid & (U.away_until[safe] <= self.t)
            score = np.where(back, self.rng_users.random(size=sub.shape), -1.0)
            soonest = np.where(valid, U.away_until[safe], np.iinfo(np.int64).max).argmin(axis=1)
            pick = np.where(back.any(axis=1), score.argmax(axis=1), soonest)
            user[miss] = sub[np.arange(miss.size), pick]
        n_el = np.maximum(self.t - U.last_update[user], 0)
        if cfg.fresh_user_each_session:
            interest = users_lib.sample_interests(slots.size, cfg, self.rng_users)
            U.home[user] = interest
            if self._compiled:
                _kernels().start_sessions(slots, user, interest, interest, interest, interest,
                                          interest, True, *self._session_start_args())
                return
            anchor, sat, hist = interest.copy(), np.zeros_like(interest), np.zeros_like(interest)
            home = interest
        else:
            home = U.home[user]
            interest, anchor = users_lib.drift_exogenous(
                U.interest[user], U.anchor[user], home, n_el, cfg, self.rng_users)
            sat = users_lib.decay_to(U.satiation[user], cfg.satiation_decay, n_el)
            hist = users_lib.decay_to(U.history[user], cfg.history_decay, n_el)
            if self._compiled:
                _kernels().start_sessions(slots, user, interest, anchor, sat, hist, home, False,
                                          *self._session_start_args())
                return
        S = self.sessions
        S.user[slots] = user
        self._session_home[slots] = home
        S.interest[slots] = interest
        S.anchor[slots] = anchor
        S.satiation[slots] = sat
        S.history[slots] = hist
        S.budget[slots] = cfg.session_budget
        S.patience[slots] = cfg.patience if cfg.patience is not None else np.inf
        S.steps[slots] = 0
        S.ret[slots] = 0.0
        S.clicks[slots] = 0
        S.satisfaction[slots] = 0.0

    def _session_start_args(self) -> tuple:
        """The session arrays and start values that ``kernels.start_sessions`` writes."""
        cfg, S = self.config, self.sessions
        return (cfg.session_budget, cfg.patience if cfg.patience is not None else np.inf,
                S.user, self._session_home, S.interest, S.anchor, S.satiation, S.history,
                S.budget, S.patience, S.steps, S.ret, S.clicks, S.satisfaction)

    def time_limited(self, max_steps: int | None, eligible: np.ndarray | None = None
                     ) -> np.ndarray:
        """(n_sessions,) bool: the sessions that reached the time limit, ``max_steps`` steps.

        Time-limit truncation is decided here, once, for every face and loop (views, the
        VecEnv, the rollout loop of training and evaluation). Call it after :meth:`step` with
        ``eligible`` = the slots whose session did not end in that step (and, for a view, only
        its own slot); read what the truncated sessions need (their last observation, return
        and length), then end them with :meth:`restart_sessions`.

        Args:
            max_steps: the limit (``None``: no limit, nothing is truncated).
            eligible: (n_sessions,) bool slots that may be truncated (default all).
        """
        if max_steps is None:
            return np.zeros(self.n_sessions, bool)
        limited = self.sessions.steps >= max_steps
        return limited & eligible if eligible is not None else limited

    def restart_sessions(self, mask: np.ndarray) -> None:
        """End the sessions in ``mask`` (the users leave and are counted in the session
        metrics) and start new ones in those slots. The candidates stay as they are.

        Used by the world itself when budget or patience runs out, and by the env faces to
        truncate sessions (time limits).

        Args:
            mask: (n_sessions,) bool.
        """
        S, ctr = self.sessions, self.counters
        back = self._end_sessions(mask)
        ctr["sessions"] += int(mask.sum())
        ctr["session_length"] += float(S.steps[mask].sum())
        ctr["session_return"] += float(S.ret[mask].sum())
        ctr["returned_in_window"] += int(back.sum())
        self._start_sessions(mask)

    def _end_sessions(self, mask: np.ndarray) -> np.ndarray:
        """Write the users of ending sessions back to the population and send them away.

        Returns:
            (e,) bool: whether each ending session's user returns within ``return_window``.
        """
        cfg, S, U = self.config, self.sessions, self.users
        slots = np.flatnonzero(mask)
        user = S.user[slots]
        U.interest[user] = S.interest[slots]
        U.anchor[user] = S.anchor[slots]
        U.satiation[user] = S.satiation[slots]
        U.history[user] = S.history[slots]
        U.last_update[user] = self.t
        mean_sat = S.satisfaction[slots] / np.maximum(S.steps[slots], 1)
        mean_delay = cfg.return_delay_mean * np.exp(-cfg.retention_strength * (mean_sat - 0.5))
        if cfg.return_delay_mean > 0:
            delay = self.rng_users.geometric(1.0 / (1.0 + mean_delay)) - 1
        else:
            delay = np.zeros(slots.size, np.int64)
        U.away_until[user] = self.t + delay
        return delay <= cfg.return_window

    # ------------------------------------------------------------------ candidates / obs
    def _new_candidates(self) -> None:
        """Draw this step's candidates and snapshot their observed extra features ``(s, c,
        4)`` (age, log impressions, CTR, cold flag), which ``recommender_obs`` writes into the
        observation.

        Catalog items' content and topic mixtures stay in the catalog (``candidates.content``
        and ``candidates.topic_mix`` are ``None``; :meth:`candidate_content` and
        :meth:`candidate_topic_mix` gather them): ``recommender_obs`` copies the content
        straight from the catalog into the observation, and the step reads the mixtures
        there. The catalog changes only inside :meth:`step`, after the choice and the
        terminal observations, so between steps it holds exactly what the candidates were
        drawn with. Fresh documents keep theirs in ``candidates.content`` ``(s, c,
        content_dim)`` and ``candidates.topic_mix``.

        RecSim's documents (fresh, one-hot, noise-free ``topic`` content) have no stored
        features: their content is the one-hot topic, which ``recommender_obs`` scatters
        straight into the observation, and ``candidates.topic_mix``/``content`` are ``None``
        (use :meth:`candidate_topic_mix`)."""
        cfg, s, c = self.config, self.n_sessions, self.config.n_candidates
        if self._onehot_content:
            topics = self.rng_cand.integers(cfg.n_topics, size=s * c)
            noise = self.rng_cand.standard_normal(s * c, dtype=np.float32)
            if self._compiled:
                quality = np.empty(s * c)
                _kernels().fresh_quality(topics, cfg.topic_quality_array,
                                         np.float32(cfg.quality_noise), noise, quality)
            else:
                quality = cfg.topic_quality_array[topics] + cfg.quality_noise * noise
            self._set_fresh_candidates(topics.reshape(s, c), None, quality.reshape(s, c),
                                       self._fresh_length_sc, None)
            self._cand_extra = None
            return
        if self._catalog_mode:
            ids = items_lib.generate_candidates(
                self.catalog, s, cfg, self.rng_cand,
                _kernels().rows_with_repeats if self._compiled else items_lib.rows_with_repeats)
            cat = self.catalog
            if self._compiled:
                self._gather_candidates(ids)
                return
            age = (self.t - cat.born_at[ids]).astype(np.float64)
            impressions, clicks = cat.impressions[ids], cat.clicks[ids]
            self.candidates = Candidates(
                item_id=ids, topic=cat.main_topic[ids], topic_mix=None,
                quality=cat.quality[ids], length=cat.length[ids], provider=cat.provider[ids],
                content=None, age=age, impressions=impressions, clicks=clicks,
            )
            self._cand_extra = self._extra_features(self.candidates)
        else:  # fresh documents: no history, so the extra features stay zero
            topics = self.rng_cand.integers(cfg.n_topics, size=s * c)
            new = items_lib.sample_items(topics, self._minus_ones_sc, self.provider_skill,
                                         cfg, self.encoder, self.rng_cand)
            self._set_fresh_candidates(topics.reshape(s, c), new.topic_mix.reshape(s, c, -1),
                                       new.quality.reshape(s, c), new.length.reshape(s, c),
                                       new.content.reshape(s, c, -1))
            self._cand_extra = self._fresh_extra

    def _gather_candidates(self, ids: np.ndarray) -> None:
        """The catalog branch of :meth:`_new_candidates` in one compiled pass (the same
        values as its gathers and :meth:`_extra_features`)."""
        cat, (s, c) = self.catalog, ids.shape
        cand = Candidates(
            item_id=ids, topic=np.empty((s, c), np.int64), topic_mix=None,
            quality=np.empty((s, c)), length=np.empty((s, c)),
            provider=np.empty((s, c), np.int64), content=None, age=np.empty((s, c)),
            impressions=np.empty((s, c), np.int64), clicks=np.empty((s, c), np.int64))
        extra = np.empty((s, c, len(ITEM_EXTRA_FEATURES)), np.float32)
        ok = _kernels().gather_candidates(
            ids, self.t, cat.main_topic, cat.quality, cat.length, cat.provider,
            cat.born_at, cat.impressions, cat.clicks, self._log1p,
            self.config.cold_start_impressions, cand.topic, cand.quality,
            cand.length, cand.provider, cand.age, cand.impressions, cand.clicks, extra)
        self.candidates = cand
        self._cand_extra = extra if ok else self._extra_features(cand)

    def _extra_features(self, cand: Candidates) -> np.ndarray:
        """(s, c, 4) float32 age / 100, log1p(impressions), CTR and cold flag of catalog
        candidates (zero for fresh documents, ``item_id == -1``)."""
        if self._compiled:
            extra = np.empty(cand.item_id.shape + (len(ITEM_EXTRA_FEATURES),), np.float32)
            while True:
                if _kernels().extra_features(cand.item_id, cand.age, cand.impressions,
                                                cand.clicks, self._log1p,
                                                self.config.cold_start_impressions, extra):
                    return extra
                # grow the table (same function on the same integers: the same values)
                self._log1p = np.log1p(np.arange(2 * int(cand.impressions.max()) + 1,
                                                 dtype=np.int64))
        extra = np.empty(cand.item_id.shape + (len(ITEM_EXTRA_FEATURES),), np.float32)
        extra[..., 0] = cand.age / 100.0
        extra[..., 1] = np.log1p(cand.impressions)
        extra[..., 2] = cand.clicks / np.maximum(cand.impressions, 1)
        extra[..., 3] = ((cand.item_id >= 0)
                         & (cand.impressions < self.config.cold_start_impressions))
        return extra

    def _set_fresh_candidates(self, topic, topic_mix, quality, length, content) -> None:
        self.candidates = Candidates(  # positional, in field order (see Candidates)
            self._fresh_ids, topic, topic_mix, quality, length, self._fresh_ids, content,
            self._fresh_zeros, self._fresh_zeros_int, self._fresh_zeros_int)

    def candidate_topic_mix(self, slots: np.ndarray | None = None) -> np.ndarray:
        """(n, n_candidates, n_topics) topic mixtures of the candidates of ``slots`` (all
        when ``None``), materialised for RecSim's one-hot documents."""
        cand = self.candidates
        if cand.topic_mix is not None:
            return cand.topic_mix if slots is None else cand.topic_mix[slots]
        if self._catalog_mode:
            ids = cand.item_id if slots is None else cand.item_id[slots]
            return self.catalog.topic_mix[ids]
        topic = cand.topic if slots is None else cand.topic[slots]
        return items_lib.one_hot(topic, self.config.n_topics)

    def candidate_content(self, slots: np.ndarray | None = None) -> np.ndarray:
        """(n, n_candidates, content_dim) float32 content features of the candidates of
        ``slots`` (all when ``None``), as the observation carries them: gathered from the
        catalog, or RecSim's one-hot documents' topics materialised."""
        cand = self.candidates
        if cand.content is not None:
            return cand.content if slots is None else cand.content[slots]
        if self._catalog_mode:
            ids = cand.item_id if slots is None else cand.item_id[slots]
            return np.take(self.catalog.content, ids, axis=0)
        topic = cand.topic if slots is None else cand.topic[slots]
        return items_lib.one_hot(topic, self.config.n_topics)

    @property
    def candidate_cold(self) -> np.ndarray:
        """(s, c) bool: candidate is a cold-start item (fewer impressions than the threshold).
        Fresh documents (``candidate_source='fresh'``) are never flagged."""
        cand = self.candidates
        return (cand.item_id >= 0) & (cand.impressions < self.config.cold_start_impressions)

    def recommender_obs(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Recommender observations, laid out as :class:`ObsLayout`.

        Args:
            rows: session slots to observe (int array); ``None`` for all.

        Returns:
            (n_rows, layout.size) float32.
        """
        cfg, S, lay = self.config, self.sessions, self.layout
        cand, extra = self.candidates, self._cand_extra
        if self._compiled:
            onehot = self._onehot_content
            if onehot:
                ids, content, extra = self._fresh_ids, self._no_content, self._fresh_extra
            elif self._catalog_mode:
                ids, content = cand.item_id, self.catalog.content
            else:  # fresh documents: their content, flattened
                ids, content = self._fresh_flat_ids, cand.content.reshape(-1, lay.content_dim)
            rows = self._arange_s if rows is None else rows
            out = np.empty((rows.shape[0], lay.size), np.float32)
            _kernels().build_obs(
                rows, S.history, S.budget, S.steps, S.clicks, S.interest, cfg.observe_interest,
                1.0 - cfg.history_decay, cfg.session_budget, onehot, cand.topic, ids, content,
                extra, lay.user_dim, lay.item_dim, out)
            return out
        content = None if self._onehot_content else self.candidate_content(rows)
        if rows is not None:
            S = Sessions(*(a[rows] for a in S))
            if content is not None:
                extra = extra[rows]
        n = S.user.shape[0]
        T = cfg.n_topics
        # the user part is built in a small contiguous buffer and copied once: column writes
        # straight into the wide output would each touch a cache line of every row
        user = np.empty((n, lay.user_dim), np.float32)
        np.multiply(S.history, 1.0 - cfg.history_decay, out=user[:, :T], casting="same_kind")
        user[:, T] = 1.0 - S.budget / cfg.session_budget
        user[:, T + 1] = S.steps / 100.0
        user[:, T + 2] = S.clicks / np.maximum(S.steps, 1)
        if cfg.observe_interest:
            user[:, T + 3: 2 * T + 3] = S.interest
        if content is None:  # one-hot documents: scatter the ones into a zeroed observation
            out = np.zeros((n, lay.size), np.float32)
            topic = self.candidates.topic if rows is None else self.candidates.topic[rows]
            out.reshape(-1)[self._onehot_offsets[:n] + topic] = 1.0
        else:
            out = np.empty((n, lay.size), np.float32)
            cand = out[:, lay.user_dim:].reshape(n, lay.n_candidates, lay.item_dim)
            cand[..., : lay.content_dim] = content
            cand[..., lay.content_dim:] = extra
        out[:, :lay.user_dim] = user
        return out

    def provider_obs(self) -> np.ndarray:
        """(n_providers, 4 + 2 * n_topics) float32: own active items (/10), decayed impressions,
        clicks and watch time on own items, platform demand per topic (click share), and
        catalog supply per topic (item share)."""
        cfg = self.config
        P = cfg.n_providers
        if P == 0:
            return np.zeros((0, self.provider_obs_dim), np.float32)
        cat = self.catalog
        own = cat.provider - cfg.n_background_providers
        mine = cat.active & (own >= 0)
        counts = np.bincount(own[mine], minlength=P)[:P]
        supply = np.bincount(cat.main_topic[cat.active], minlength=cfg.n_topics)
        supply = supply / max(int(cat.active.sum()), 1)
        return np.concatenate([
            (counts / 10.0)[:, None],
            self._provider_stats,
            np.broadcast_to(self._topic_demand, (P, cfg.n_topics)),
            np.broadcast_to(supply, (P, cfg.n_topics)),
        ], axis=1).astype(np.float32)

    # ------------------------------------------------------------------ step
    def step(
        self,
        slates: np.ndarray,
        publish: np.ndarray | None = None,
        choice_override: np.ndarray | None = None,
    ) -> StepResult:
        """Advance every session and item by one step.

        Args:
            slates: (n_sessions, slate_size) int candidate indices. A candidate repeated within
                a slate is shown once: later repeats are empty positions (no impression, never
                clicked). Must already be validated (see the env faces).
            publish: (n_providers,) int: 0 = nothing, k = publish an item of topic k - 1.
            choice_override: (n_sessions,) int64: -2 lets the choice model decide, -1 forces
                no click, j >= 0 forces a click on slate position j (user agents).

        Returns:
            The :class:`StepResult`.
        """
        cfg, cand = self.config, self.candidates
        s, k = slates.shape
        r = self._arange_s
        rows = r[:, None]
        respond = self._respond_compiled if self._compiled else self._respond_numpy
        (shown, n_imp, pick, clicked, pos, chosen, c_util, watch, satisfaction, reward, ended,
         any_ended) = respond(slates, choice_override)
        S = self.sessions
        steps, ret = S.steps, S.ret
        # update items
        P = cfg.n_providers
        published = (self._no_publish if publish is None or not cfg.n_providers
                     else np.asarray(publish) > 0)
        prov_reward = self._no_publish_reward
        if self._catalog_mode and self._compiled:
            c_item, c_cold = np.empty(s, np.int64), np.empty(s, bool)
            cold_imp, first = np.empty(s, np.int64), np.empty(2, np.int64)
            cat = self.catalog
            _kernels().count_interactions(
                slates, shown, clicked, pos, chosen, cand.item_id, cand.impressions,
                cfg.cold_start_impressions, self.t, cat.impressions, cat.clicks,
                cat.first_click_at, cat.born_at, self._acc, c_item, c_cold, cold_imp, first)
            clicked_ids = c_item[clicked]
            self.counters["first_clicks"] += int(first[0])
            self.counters["time_to_first_click"] += float(first[1])
        elif self._catalog_mode:
            slate_ids = cand.item_id[rows, slates]
            cold = (cand.impressions[rows, slates] < cfg.cold_start_impressions) & shown
            c_item = np.where(clicked, cand.item_id[r, chosen], -1)
            c_cold = clicked & cold[r, pos]
            clicked_ids = c_item[clicked]
            first = items_lib.count_interactions(self.catalog, slate_ids[shown], clicked_ids,
                                                 self.t)
            if first.size:  # time to first click of items that arrived during the run
                born = self.catalog.born_at[first]
                new = born > 0
                self.counters["first_clicks"] += int(new.sum())
                self.counters["time_to_first_click"] += float((self.t - born[new]).sum())
            cold_imp = cold.sum(axis=1)
            self._acc[2] += cold_imp
            self._acc[3] += c_cold
        if self._catalog_mode:
            if P:
                own = cand.provider[rows, slates] - cfg.n_background_providers
                imp = np.bincount(own[shown & (own >= 0)], minlength=P)[:P]
                c_own = np.where(clicked, own[r, pos], -1)
                ok = c_own >= 0
                clk = np.bincount(c_own[ok], minlength=P)[:P]
                wt = np.bincount(c_own[ok], weights=watch[ok], minlength=P)[:P]
                prov_reward = wt - cfg.publication_cost * published
                self._provider_stats = 0.9 * self._provider_stats + np.stack([imp, clk, wt], 1)
            if clicked_ids.size:
                share = np.bincount(self.catalog.main_topic[clicked_ids], minlength=cfg.n_topics)
                self._topic_demand = 0.99 * self._topic_demand + 0.01 * share / clicked_ids.size
        # terminal observations, seen with this step's candidates: before the catalog
        # update below replaces items (the observation reads content from the catalog)
        terminal_obs = (self.recommender_obs(np.flatnonzero(ended)) if any_ended
                        else self._no_terminal_obs)
        if self._catalog_mode:
            self._update_catalog(published, publish)
        else:  # fresh documents are never stored, never cold
            c_item = self._minus_ones_s
            c_cold = cold_imp = self._zeros_s
        # terminate
        self.t += 1
        if any_ended:
            sess_len, sess_ret, sess_user = steps.copy(), ret.copy(), S.user.copy()
            self.restart_sessions(ended)
        else:
            sess_len, sess_ret, sess_user = steps, ret, S.user
        self._new_candidates()
        return StepResult(  # positional, in field order (see StepResult)
            reward, pick, c_item, watch, satisfaction, c_util, n_imp, cold_imp, c_cold, ended,
            sess_len, sess_ret, sess_user, terminal_obs, prov_reward, published)

    def _respond_numpy(self, slates: np.ndarray, choice_override: np.ndarray | None) -> tuple:
        """Recommend, choose, respond and update the sessions (the plain-numpy reference of
        :meth:`_respond_compiled`); accumulates rows 0, 1 and 4 of ``_acc``.

        Returns:
            ``(shown, n_imp, pick, clicked, pos, chosen, c_util, watch, satisfaction, reward,
            ended, any_ended)`` (see :meth:`step`).
        """
        cfg, S, cand = self.config, self.sessions, self.candidates
        s, k = slates.shape
        r = self._arange_s
        rows = r[:, None]
        # recommend: gather the slate
        shown = ~items_lib.repeated_mask(slates) if k > 1 else self._all_shown
        quality = cand.quality[rows, slates]
        # choose
        if self._onehot_mix:
            topic = cand.topic[rows, slates]  # (s, k)
            affinity = np.take_along_axis(S.interest, topic, axis=1)
        else:
            mix = self.candidate_topic_mix()[rows, slates]  # (s, k, T)
            affinity = np.einsum("st,skt->sk", S.interest, mix)
        sat = None
        if cfg.satiation:
            sat = (np.take_along_axis(S.satiation, topic, axis=1) if self._onehot_mix
                   else np.einsum("st,skt->sk", S.satiation, mix))
        utility = response.choice_utility(affinity, quality, sat, cfg)
        probs = choice_lib.choice_probabilities(utility, shown, cfg)
        pick = choice_lib.sample_choice(probs, self.rng_choice)
        if choice_override is not None:
            pick = np.where(choice_override >= -1, choice_override, pick)
        clicked = pick >= 0
        pos = np.maximum(pick, 0)
        chosen = slates[r, pos]  # candidate index of the clicked (or first) item
        # respond
        c_util = utility[r, pos] * clicked
        c_quality = quality[r, pos]
        c_aff = affinity[r, pos] if cfg.watch_mode == "engaged" else None  # 'full' skips it
        watch = response.watch_time(cand.length[r, chosen], c_aff, c_quality, S.budget, clicked,
                                    cfg)
        satisfaction = response.satisfaction(c_util, clicked)
        # update users (in session): consumption, then one step of exogenous drift
        if self._onehot_mix:
            interest, satiation, history = users_lib.consume_onehot(
                S.interest, S.satiation, S.history, topic[r, pos], clicked, cfg, self.rng_users)
        else:
            interest, satiation, history = users_lib.consume(
                S.interest, S.satiation, S.history, mix[r, pos] * clicked[:, None], clicked, cfg,
                self.rng_users)
        anchor = S.anchor
        if cfg.exogenous_drift:
            interest, anchor = users_lib.drift_exogenous(
                interest, anchor, self.users.home[S.user], 1, cfg, self.rng_users, self._one_step)
        budget = response.update_budget(S.budget, watch, c_quality, clicked, cfg)
        patience = response.update_patience(S.patience, satisfaction, clicked, cfg)
        reward = response.recommender_reward(watch, clicked, cfg)
        steps = S.steps + 1
        ret = S.ret + reward
        self.sessions = S = S._replace(
            interest=interest, anchor=anchor, satiation=satiation, history=history,
            budget=budget, patience=patience, steps=steps, ret=ret,
            clicks=S.clicks + clicked, satisfaction=S.satisfaction + satisfaction)
        ended = response.session_ended(budget, patience, cfg)
        n_imp = shown.sum(axis=1) if k > 1 else self._ones_s
        acc = self._acc  # per-slot running sums, reduced only when metrics are read
        acc[0] += n_imp
        acc[1] += clicked
        acc[4] += watch
        return (shown, n_imp, pick, clicked, pos, chosen, c_util, watch, satisfaction, reward,
                ended, ended.any())

    def _respond_compiled(self, slates: np.ndarray, choice_override: np.ndarray | None
                          ) -> tuple:
        """:meth:`_respond_numpy` through the compiled kernels (:mod:`recsim_env.kernels`):
        the same draws from the same generators in the same order, the same arithmetic, the
        same bits. Intermediates live in scratch arrays reused every step; what the step
        hands out (results, session state) is new each step, as in the numpy path."""
        kern, cfg, S, cand = _kernels(), self.config, self.sessions, self.candidates
        s, T = S.interest.shape
        x = self._scratch
        params, flags = self._kparams, self._kflags
        flags[kern.F_ONEHOT] = self._onehot_mix  # which gathers the numpy path would use
        out_f = np.empty((8, s))
        out_i = np.empty((4, s), np.int64)
        new_interest, new_history = np.empty((s, T)), np.empty((s, T))
        new_satiation = np.empty((s, T)) if cfg.satiation else S.satiation
        new_anchor = np.empty((s, T)) if cfg.exogenous_drift else S.anchor
        ended = np.empty(s, bool)
        # topic mixtures: one-hot (gathered by topic), dot products in the kernels (F_DOT), or
        # numpy's einsum passed in
        dot = not self._onehot_mix and bool(flags[kern.F_DOT])
        mix_ids, mix_table = self._no_ids, self._no_mix
        if self._onehot_mix or dot:
            aff_mix = sat_mix = mix = self._empty_sk
            if dot:
                mix_ids, mix_table = self._mix_source()
        else:
            tm = self.candidate_topic_mix()
            mix = np.empty(slates.shape + tm.shape[2:])  # (s, k, T), float64 (see gather_mix)
            kern.gather_mix(tm, slates, mix)
            aff_mix = np.einsum("st,skt->sk", S.interest, mix)
            sat_mix = (np.einsum("st,skt->sk", S.satiation, mix) if cfg.satiation
                       else self._empty_sk)
        override = self._no_override if choice_override is None else choice_override
        gathered = (slates, cand.topic, cand.quality, S.interest, S.satiation, aff_mix, sat_mix,
                    mix_ids, mix_table, params, flags, x.shown, x.quality, x.affinity,
                    x.utility, x.z)
        picked = (override, slates, x.utility, x.quality, x.affinity, cand.length, params,
                  flags, out_f, out_i, x.clicked, x.pos, x.chosen, x.c_quality, x.c_length,
                  x.args)
        model = int(flags[kern.F_MODEL])
        if model == kern.PROPORTIONAL:
            kern.gather_and_pick(*gathered, self.rng_choice.random(size=s), override,
                                 cand.length, out_f, out_i, x.clicked, x.pos, x.chosen,
                                 x.c_quality, x.c_length, x.args)
        else:
            kern.gather_slate(*gathered, out_i[kern.I_N_IMP])
            if model == kern.MNL:
                np.exp(x.z, out=x.z)
                z = x.z
            else:
                z = choice_lib.choice_probabilities(x.utility, x.shown, cfg)
            kern.pick_and_respond(z, model == kern.MNL, self.rng_choice.random(size=s),
                                  *picked)
        if cfg.watch_mode == "engaged":
            np.exp(x.args, out=x.exps)
        else:  # the watch exponent is not used ('full' watch): only satisfaction's
            np.exp(x.args[1], out=x.exps[1])
        clicked = x.clicked
        mix_chosen, mix_dot = self._empty_st, self._empty_s
        einsum = not (self._onehot_mix or dot)
        if einsum:
            mix_chosen = mix[self._arange_s, x.pos] * clicked[:, None]
        u_endo = self._empty_s
        if cfg.endogenous_drift:
            u_endo = self.rng_users.random(size=s)
            if einsum:  # users_lib.consume's dot product, in numpy's order
                mix_dot = np.einsum("st,st->s", (S.interest + 1.0) * 0.5,
                                    mix_chosen * clicked[:, None])
        eps = (self.rng_users.standard_normal(size=(2, s, T)) if cfg.exogenous_drift
               else self._empty_eps)
        n_ended = kern.update_sessions(
            clicked, x.exps, x.c_length, x.c_quality, cand.topic, x.chosen, mix_chosen, mix_dot,
            mix_ids, mix_table, S.budget, S.patience, S.steps, S.ret, S.clicks, S.satisfaction,
            S.interest, S.satiation, S.history, S.anchor, self._session_home, self._arange_s,
            u_endo, eps, params, flags, self._acc, out_f, out_i, new_interest, new_satiation,
            new_history, new_anchor, ended)
        f, i = out_f, out_i
        self.sessions = Sessions(  # positional: the constructor is the cheapest on one slot
            S.user, new_interest, new_anchor, new_satiation, new_history, f[kern.O_BUDGET],
            f[kern.O_PATIENCE], i[kern.I_STEPS], f[kern.O_RET], i[kern.I_CLICKS],
            f[kern.O_SAT_SUM])
        return (x.shown, i[kern.I_N_IMP], i[kern.I_PICK], clicked, x.pos, x.chosen,
                f[kern.O_C_UTIL], f[kern.O_WATCH], f[kern.O_SATISFACTION], f[kern.O_REWARD],
                ended, n_ended > 0)

    def _update_catalog(self, published: np.ndarray, publish: np.ndarray | None) -> None:
        cfg = self.config
        active = items_lib.retire_items(self.catalog, self.t, cfg)
        n_bg = int(self.rng_items.poisson(cfg.arrival_rate))
        topics = [self.rng_items.integers(cfg.n_topics, size=n_bg)]
        provs = [self.rng_items.integers(cfg.n_background_providers, size=n_bg)]
        if published.any():
            who = np.flatnonzero(published)
            topics.append(np.asarray(publish)[who].astype(np.int64) - 1)
            provs.append(who + cfg.n_background_providers)
        topics_a, provs_a = np.concatenate(topics), np.concatenate(provs)
        if topics_a.size > cfg.n_items_max:
            topics_a, provs_a = topics_a[: cfg.n_items_max], provs_a[: cfg.n_items_max]
        new = self._sample_new(topics_a, provs_a)
        self.catalog = items_lib.insert_items(self.catalog, active, new, self.t)

    def _mix_source(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, table)``: candidate ``c`` of slot ``i`` has the topic mixture
        ``table[ids[i, c]]`` (the catalog's rows, or the fresh documents' flattened,
        materialised for one-hot documents)."""
        cand = self.candidates
        if self._catalog_mode:
            return cand.item_id, self.catalog.topic_mix
        return self._fresh_flat_ids, self.candidate_topic_mix().reshape(-1, self.config.n_topics)

    def _rebuild_extras(self) -> None:
        """Recompute the candidates' extra features from ``self.candidates`` (after a load)."""
        self._cand_extra = None if self._onehot_content else self._extra_features(self.candidates)

    def item_texts(self, item_ids: np.ndarray) -> list[str]:
        """Descriptions of catalog items (rendered on demand; not on the step path)."""
        if self.catalog is None:
            raise ValueError("item_texts needs candidate_source='catalog' (fresh documents "
                             "are not stored)")
        from recsim_env.content import ItemDescriptions, make_item_vocabulary

        ids = np.asarray(item_ids, np.int64)
        vocab = make_item_vocabulary(self.config.n_topics)
        return ItemDescriptions(self.catalog.text_tokens[ids], vocab).texts()

    # ------------------------------------------------------------------ checkpoints
    _RNGS = ("_rng", "rng_users", "rng_items", "rng_choice", "rng_cand", "rng_content")
    _ARRAYS = ("provider_skill", "_provider_stats", "_topic_demand", "_acc")

    def state_dict(self) -> dict[str, Any]:
        """The complete world state as plain data: numpy arrays, numbers, strings and nested
        dicts (random generators as their bit-generator states). Restoring it with
        :meth:`load_state_dict` continues the run bit for bit."""
        if self._rng is None:
            raise RuntimeError("World.state_dict() before reset()")
        groups = {"users": self.users, "sessions": self.sessions, "candidates": self.candidates}
        if self.catalog is not None:
            groups["catalog"] = self.catalog
        return {
            "t": int(self.t),
            "arrays": {name: getattr(self, name).copy() for name in self._ARRAYS},
            "groups": {g: {f: np.array(a) for f, a in v._asdict().items() if a is not None}
                       for g, v in groups.items()},
            "counters": dict(self.counters),
            "rngs": {name: getattr(self, name).bit_generator.state for name in self._RNGS},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` (from a world with the same config)."""
        if self._rng is None:
            self.reset(0)  # allocate, then overwrite everything
        groups = state["groups"]
        if groups["users"]["interest"].shape != self.users.interest.shape:
            raise ValueError(
                f"checkpoint has {groups['users']['interest'].shape[0]} users, this world has "
                f"{self.users.interest.shape[0]}: build the World with the same config and "
                "n_sessions")
        self.t = int(state["t"])
        for name in self._ARRAYS:
            setattr(self, name, np.array(state["arrays"][name]))
        self.users = users_lib.UserState(**{k: np.array(v) for k, v in groups["users"].items()})
        self.sessions = Sessions(**{k: np.array(v) for k, v in groups["sessions"].items()})
        self._session_home = self.users.home[self.sessions.user]
        cand = groups["candidates"]
        self.candidates = Candidates(**{k: np.array(cand[k]) if k in cand else None
                                        for k in Candidates._fields})
        if self._catalog_mode:  # read from the catalog (older states stored them)
            self.candidates = self.candidates._replace(topic_mix=None, content=None)
        self._rebuild_extras()
        if "catalog" in groups:
            self.catalog = items_lib.Catalog(**{k: np.array(v) for k, v in groups["catalog"].items()})
        self.counters = {k: float(v) for k, v in state["counters"].items()}
        for name in self._RNGS:
            getattr(self, name).bit_generator.state = state["rngs"][name]

    # ------------------------------------------------------------------ metrics
    def metrics(self) -> dict[str, float]:
        """Run-level metrics since the last reset.

        Keys: ``ctr`` (clicks per impression), ``cold_start_ctr``, ``cold_start_impression_share``,
        ``clicks_per_step`` (per session step), ``watch_time`` (per session step),
        ``session_length`` and ``session_return`` (means over ended sessions), ``sessions``,
        ``return_rate`` (share of ended sessions whose user comes back within
        ``return_window`` steps), ``time_to_first_click`` (mean steps from arrival to first
        click, over items that arrived during the run and were clicked), ``catalog_size``,
        ``steps``.
        """
        c = dict(self.counters)
        c.update(zip(_ACC_ROWS, self._acc.sum(axis=1)))
        c["steps"] = self.t
        n = max(self.t * self.n_sessions, 1)
        out = {
            "ctr": c["clicks"] / max(c["impressions"], 1),
            "cold_start_ctr": c["cold_clicks"] / max(c["cold_impressions"], 1),
            "cold_start_impression_share": c["cold_impressions"] / max(c["impressions"], 1),
            "clicks_per_step": c["clicks"] / n,
            "watch_time": c["watch_time"] / n,
            "sessions": c["sessions"],
            "session_length": c["session_length"] / c["sessions"] if c["sessions"] else float("nan"),
            "session_return": c["session_return"] / c["sessions"] if c["sessions"] else float("nan"),
            "return_rate": c["returned_in_window"] / c["sessions"] if c["sessions"] else float("nan"),
            "time_to_first_click": (c["time_to_first_click"] / c["first_clicks"]
                                    if c["first_clicks"] else float("nan")),
            "catalog_size": int(self.catalog.active.sum()) if self.catalog is not None else 0,
            "steps": c["steps"],
        }
        return {key: float(v) for key, v in out.items()}

    def materialized_interests(self) -> np.ndarray:
        """(n_users, n_topics) every user's interest as of now (in-session users live; others
        advanced in expectation, without noise). For plots and metrics, not for the step."""
        U, cfg = self.users, self.config
        n = np.maximum(self.t - U.last_update, 0)
        if cfg.exogenous_drift:
            p11, p21, p22, _ = users_lib.drift_transition(n, cfg)
            da, dx = U.anchor - U.home, U.interest - U.home
            x = np.clip(U.home + p21[:, None] * da + p22[:, None] * dx, -1, 1)
        else:
            x = U.interest.copy()
        x[self.sessions.user] = self.sessions.interest
        return x
