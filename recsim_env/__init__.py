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
