"""recsim_env: a batched, multi-agent recommender-system world with PettingZoo faces.

Public API::

    import recsim_env
    env = recsim_env.parallel_env(preset="default", n_users=500)   # PettingZoo ParallelEnv
    cfg = recsim_env.make_config("recsim_ie")                     # frozen, validated config
    recsim_env.PRESETS                                            # scenario names
"""

from __future__ import annotations

import dataclasses
from typing import Any

from recsim_env.config import PRESET_DESCRIPTIONS, PRESETS, EnvConfig, make_config
from recsim_env.parallel import ENV_NAME, RecSimParallelEnv
from recsim_env.world import ObsLayout, World

__all__ = [
    "ENV_NAME",
    "PRESETS",
    "PRESET_DESCRIPTIONS",
    "EnvConfig",
    "ObsLayout",
    "RecSimParallelEnv",
    "World",
    "make_config",
    "parallel_env",
    "resolve_config",
]


def resolve_config(
    config: EnvConfig | None = None, *, preset: str | None = None, **overrides: Any
) -> EnvConfig:
    """The config of a face constructor: a given config (with overrides), or a preset.

    Raises:
        ValueError: both ``config`` and ``preset`` given, or any invalid field.
    """
    if config is not None:
        if preset is not None:
            raise ValueError("pass either config or preset, not both")
        if not isinstance(config, EnvConfig):
            raise ValueError(f"config must be an EnvConfig, got {type(config).__name__}")
        if not overrides:
            return config
        known = {f.name for f in dataclasses.fields(EnvConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}; known fields: {sorted(known)}")
        return dataclasses.replace(config, **overrides)
    return make_config(preset or "default", **overrides)


def parallel_env(
    config: EnvConfig | None = None,
    *,
    preset: str | None = None,
    max_cycles: int = 1000,
    render_mode: str | None = None,
    **overrides: Any,
) -> RecSimParallelEnv:
    """PettingZoo ParallelEnv with ``recommender_i`` and ``provider_j`` agents.

    Args:
        config: a full config; or build one from ``preset`` (default ``"default"``).
        preset: one of :data:`PRESETS`.
        max_cycles: steps per episode.
        render_mode: ``None`` or ``"ansi"``.
        **overrides: config fields to change, e.g. ``n_recommenders=8``.
    """
    cfg = resolve_config(config, preset=preset, **overrides)
    return RecSimParallelEnv(cfg, max_cycles=max_cycles, render_mode=render_mode)


# --- turn-based env, single-agent views and Gymnasium ids (aec.py, views.py, vector.py) ---
from recsim_env.aec import RecSimAECEnv  # noqa: E402
from recsim_env.views import SingleAgentView, make_single_agent_env  # noqa: E402

__all__ += [
    "RecSimAECEnv",
    "SingleAgentView",
    "env",
    "single_agent_env",
]


def env(
    config: EnvConfig | None = None,
    *,
    preset: str | None = None,
    max_cycles: int = 1000,
    render_mode: str | None = None,
    **overrides: Any,
) -> RecSimAECEnv:
    """PettingZoo AEC env: providers, then recommenders, then user agents act in turn.

    Args:
        config: a full config; or build one from ``preset`` (default ``"default"``).
        preset: one of :data:`PRESETS`.
        max_cycles: world steps per episode.
        render_mode: ``None`` or ``"ansi"``.
        **overrides: config fields to change, e.g. ``n_user_agents=4``.
    """
    cfg = resolve_config(config, preset=preset, **overrides)
    return RecSimAECEnv(cfg, max_cycles=max_cycles, render_mode=render_mode)


def single_agent_env(
    agent: str = "recommender_0",
    config: EnvConfig | None = None,
    *,
    others: Any = None,
    preset: str | None = None,
    max_session_steps: int = 500,
    max_episode_steps: int = 1000,
    render_mode: str | None = None,
    **overrides: Any,
) -> SingleAgentView:
    """A ``gymnasium.Env`` in which ``agent`` acts and every other agent is driven.

    Args:
        agent: ``recommender_i``, ``provider_j`` or ``user_k``.
        config: a full config; or build one from ``preset`` (default ``"default"``).
        others: agent id -> ``callable(obs) -> action`` for agents not left to built-in
            behaviour (random slates, background publication rate, the choice model).
        preset: one of :data:`PRESETS`.
        max_session_steps: session time limit of recommender and user views (truncation).
        max_episode_steps: episode length of the provider view.
        render_mode: ``None`` or ``"ansi"``.
        **overrides: config fields to change.

    See :mod:`recsim_env.views` for episodes and reset semantics.
    """
    cfg = resolve_config(config, preset=preset, **overrides)
    return make_single_agent_env(agent, cfg, others=others, max_session_steps=max_session_steps,
                                 max_episode_steps=max_episode_steps, render_mode=render_mode)


GYMNASIUM_IDS: dict[str, dict[str, Any]] = {
    "recsim_env/Recommender-v0": {"agent": "recommender_0"},
    "recsim_env/Provider-v0": {"agent": "provider_0", "n_providers": 1},
    # a cohort of one user per recommender: user 0 is always the one served in slot 0
    "recsim_env/User-v0": {"agent": "user_0", "n_users": 4, "n_user_agents": 1},
}


def _register_gymnasium_ids() -> None:
    import gymnasium

    for env_id, kwargs in GYMNASIUM_IDS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point="recsim_env:single_agent_env",
                               kwargs=dict(kwargs))


_register_gymnasium_ids()


def __getattr__(name: str) -> Any:
    # ``recsim_env.vector`` imports Stable-Baselines3 (and torch): load it on first use only.
    if name == "vector":
        import importlib

        return importlib.import_module("recsim_env.vector")
    raise AttributeError(f"module 'recsim_env' has no attribute {name!r}")
