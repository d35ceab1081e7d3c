"""Build any learner by name, for any role: the one place scripts and benchmarks go through.

Names:

* baselines (recommenders): ``random``, ``most_popular``, ``myopic_oracle``,
  ``long_term_oracle``, ``epsilon_greedy``, ``ucb1``, ``thompson``, ``linucb``, ``online_mf``,
  ``content_similarity``, ``content_projected`` (see :mod:`agents.baselines`);
* our Q-learners (recommenders): ``tabular_q``, ``linear_q``, ``dqn``, ``slateq``, and
  ``memory_dqn`` and ``memory_slateq`` (the same with a per-user memory, :mod:`agents.memory`);
* Stable-Baselines3 (any role): ``ppo``, ``a2c``, ``sb3_dqn`` (``Discrete`` actions; on
  recommender slates larger than one, :class:`agents.sb3.TopKSB3DQN` shows the top-k positions
  of its per-position Q-values). ``memory=True`` gives a ``ppo`` or ``a2c`` recommender the
  memory of :mod:`agents.memory` (:class:`agents.sb3.MemorySB3Learner`); ``memory_ppo`` is
  ``ppo`` with ``memory=True``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from recsim_env.aec import user_action_space, user_observation_space
from recsim_env.config import EnvConfig
from recsim_env.parallel import provider_action_space, recommender_action_space
from recsim_env.world import World

Q_LEARNERS = ("tabular_q", "linear_q", "dqn", "memory_dqn", "slateq", "memory_slateq")
SB3_LEARNERS = ("ppo", "memory_ppo", "a2c", "sb3_dqn")


def baseline_names() -> tuple[str, ...]:
    """Names of the baselines."""
    from agents.baselines import BASELINES

    return tuple(BASELINES)


def learner_names() -> tuple[str, ...]:
    """Every name :func:`make_learner` accepts."""
    return baseline_names() + Q_LEARNERS + SB3_LEARNERS


def role_spaces(config: EnvConfig, role: str) -> tuple[spaces.Space, spaces.Space]:
    """One agent's ``(observation_space, action_space)`` for ``role``."""
    world = World(config)
    if role == "recommender":
        obs = world.layout.space()
        return obs, recommender_action_space(config)
    if role == "provider":
        obs = spaces.Box(-np.inf, np.inf, (world.provider_obs_dim,), np.float32)
        return obs, provider_action_space(config)
    if role == "user":
        return user_observation_space(config, world.layout.item_dim), user_action_space(config)
    raise ValueError(f"role must be recommender, provider or user, got {role!r}")


def make_learner(name: str, config: EnvConfig, *, role: str = "recommender", n_rows: int = 1,
                 seed: int = 0, total_steps: int = 100_000, **kwargs: Any) -> Any:
    """Build the learner called ``name``.

    Args:
        name: see the module docstring.
        config: the world's config.
        role: the role it acts for (baselines and Q-learners are recommenders only).
        n_rows: agents/sessions it acts for at once (SB3 learners need it fixed).
        seed: the learner's seed.
        total_steps: planned env steps (schedules of SB3 learners).
        **kwargs: passed to the learner's constructor.
    """
    if name in SB3_LEARNERS:
        from agents.sb3 import MemorySB3Learner, SB3Learner, TopKSB3DQN

        if name == "memory_ppo":
            name, kwargs["memory"] = "ppo", True
        if kwargs.pop("memory", False):
            if role != "recommender" or name == "sb3_dqn":
                raise ValueError(f"memory: only ppo and a2c recommenders keep a memory, not "
                                 f"{name!r} as a {role}")
            return MemorySB3Learner(name, config, n_rows, total_steps=total_steps, seed=seed,
                                    **kwargs)
        from agents.memory import MEMORY_OPTIONS

        extra = sorted(set(MEMORY_OPTIONS) & set(kwargs))
        if extra:
            raise ValueError(f"{extra[0]}: an option of SB3 learners with memory = true")
        if name == "sb3_dqn" and role == "recommender" and config.slate_size > 1:
            return TopKSB3DQN(config, n_rows, seed=seed, total_steps=total_steps, **kwargs)
        obs_space, act_space = role_spaces(config, role)
        algo = "dqn" if name == "sb3_dqn" else name
        return SB3Learner(algo, obs_space, act_space, n_rows, total_steps=total_steps, seed=seed,
                          **kwargs)
    if role != "recommender":
        raise ValueError(f"learner {name!r} is a recommender; for role {role!r} use one of "
                         f"{SB3_LEARNERS} or your own Learner")
    if name in Q_LEARNERS:
        if name == "tabular_q":
            from agents.tabular_q import TabularQ as cls
        elif name == "linear_q":
            from agents.linear_q import LinearQ as cls
        elif name == "dqn":
            from agents.dqn import DQN as cls
        elif name == "memory_dqn":
            from agents.memory import MemoryDQN as cls
        elif name == "memory_slateq":
            from agents.memory import MemorySlateQ as cls
        else:
            from agents.slateq import SlateQ as cls
        return cls(config, seed=seed, **kwargs)
    from agents.baselines import BASELINES, make_baseline

    if name in BASELINES:
        return make_baseline(name, config, World(config).layout, seed=seed, **kwargs)
    raise ValueError(f"unknown learner {name!r}; choose from {learner_names()}")


def session_config(env_config: EnvConfig, n_sessions: int) -> EnvConfig:
    """The config whose world has ``n_sessions`` recommender agents and the same population
    per session slot as ``World(env_config, n_sessions)`` (for one learner per agent)."""
    import dataclasses

    return dataclasses.replace(env_config, n_recommenders=n_sessions,
                               n_users=env_config.cohort_size * n_sessions)


def build_learner(name: str, env_config: EnvConfig, *, n_rows: int, seed: int,
                  total_steps: int, kwargs: dict[str, Any] | None = None) -> Any:
    """:func:`make_learner` for a recommender, with errors that name the option.

    Raises:
        ValueError: ``"learner.kwargs.<key>: ..."`` for an option the learner does not take
            or rejects, ``"learner: ..."`` otherwise.
    """
    kwargs = dict(kwargs or {})
    try:
        return make_learner(name, env_config, n_rows=n_rows, seed=seed, total_steps=total_steps,
                            **kwargs)
    except TypeError as e:
        bad = next((k for k in kwargs if f"'{k}'" in str(e)), None)
        if bad is not None:
            raise ValueError(f"learner.kwargs.{bad}: not an option of {name!r} ({e})") from None
        raise ValueError(f"learner.kwargs: {e}") from None
    except ValueError as e:
        msg = str(e)
        bad = next((k for k in kwargs if msg.startswith(k)), None)
        raise ValueError(f"learner.kwargs.{bad}: {msg}" if bad else f"learner: {msg}") from None
