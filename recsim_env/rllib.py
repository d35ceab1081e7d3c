"""RLlib face: the parallel env as an RLlib ``MultiAgentEnv`` (new API stack).

Needs the optional extra ``ray`` (``pip install 'recsim-marl[ray]'``, ``ray[rllib,tune]``
pinned); importing this module without it raises an ``ImportError`` that says so. Nothing else
in the project imports Ray.

::

    from recsim_env.rllib import RecSimMultiAgentEnv, ppo_config, register
    register()                                   # tune.register_env("recsim_marl", ...)
    config = ppo_config({"preset": "default", "n_providers": 2})   # a role, a policy
    algo = config.build_algo()

Why not RLlib's own ``ParallelPettingZooEnv``: it builds ``possible_agents`` from a set (the
order changes from run to run) and calls ``reset()`` once, unseeded, in its constructor. This
adapter keeps :attr:`RecSimParallelEnv.possible_agents` order (recommenders, then providers),
gives every agent its own observation and action space (the parallel env's objects), resets
only when RLlib asks and honours ``reset(seed=...)`` (``None`` continues the env's generator).

Defaults that matter on a small shared machine (measured on 2 cores, see
``benchmarks/ray_scaling.py``):

* **one thread per process**: torch's second thread made PPO's learner update 30x slower when
  another process held a core; :func:`ppo_config` pins the env runners' threads
  (``OMP_NUM_THREADS=1``) and entry points call ``torch.set_num_threads(1)`` in the driver,
  where the learner runs;
* **sample_timeout_s** 600 s (RLlib's 60 s is too short for a ``default`` world of 1,000 users
  on a busy core: iterations came back with NaN metrics).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

try:
    from ray.rllib.env.multi_agent_env import MultiAgentEnv
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("recsim_env.rllib needs Ray RLlib: pip install 'recsim-marl[ray]' "
                      f"(the optional extra ray[rllib,tune]); importing it failed: {e}") from e

from recsim_env import ENV_NAME, parallel_env
from recsim_env.parallel import RecSimParallelEnv

__all__ = ["DEFAULT_ENV_NAME", "ROLES", "SAMPLE_TIMEOUT_S", "THREAD_ENV_VARS",
           "RecSimMultiAgentEnv", "map_by_role", "ppo_config", "register", "role_of",
           "roles_of"]

DEFAULT_ENV_NAME = "recsim_marl"
"""The name :func:`register` gives the env in Tune's registry."""
ROLES = ("recommender", "provider", "user")
"""Agent roles; an agent id is ``<role>_<index>``."""
SAMPLE_TIMEOUT_S = 600.0
"""Env runners' sample timeout (RLlib's default, 60 s, is too short for ``default``)."""
THREAD_ENV_VARS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Environment of every Ray worker process: one BLAS/OpenMP thread (NOTES.md, Threads)."""


def role_of(agent_id: str) -> str:
    """The role of ``agent_id`` (``recommender_3`` -> ``recommender``).

    Raises:
        ValueError: not ``<role>_<index>`` with a role of :data:`ROLES`.
    """
    role, sep, index = str(agent_id).rpartition("_")
    if not sep or role not in ROLES or not index.isdigit():
        raise ValueError(f"agent id must be <role>_<index> with role one of {ROLES}, "
                         f"got {agent_id!r}")
    return role


def map_by_role(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    """RLlib ``policy_mapping_fn``: every agent of a role shares the role's policy (module),
    named after the role (``recommender``, ``provider``, ``user``)."""
    return role_of(agent_id)


def roles_of(agents: list[str]) -> list[str]:
    """The roles present in ``agents``, in first-appearance order (the module ids
    :func:`map_by_role` maps to)."""
    return list(dict.fromkeys(role_of(a) for a in agents))


class RecSimMultiAgentEnv(MultiAgentEnv):
    """The parallel env (recommenders and providers) as an RLlib ``MultiAgentEnv``.

    Args:
        config: RLlib's ``env_config`` (a dict or ``EnvContext``): ``preset`` (default
            ``"default"``), ``max_cycles`` (steps per episode, default 1000) and any
            :class:`recsim_env.EnvConfig` field as an override (``n_users``, ``n_providers``,
            ...). Unknown keys raise ``ValueError`` naming them.

    Attributes:
        par_env: the wrapped :class:`recsim_env.parallel.RecSimParallelEnv`.
    """

    metadata = {"name": ENV_NAME, "render_modes": ["ansi"]}

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        if config is not None and not isinstance(config, Mapping):
            raise ValueError(f"config must be a dict of env options, got {type(config).__name__}")
        options = dict(config or {})
        preset = options.pop("preset", "default")
        max_cycles = options.pop("max_cycles", 1000)
        render_mode = options.pop("render_mode", None)
        options = {k: (tuple(v) if isinstance(v, list) else v) for k, v in options.items()}
        self.par_env: RecSimParallelEnv = parallel_env(
            preset=preset, max_cycles=max_cycles, render_mode=render_mode, **options)
        self.render_mode = render_mode
        self.possible_agents = list(self.par_env.possible_agents)
        self.agents = []
        self.observation_spaces = {a: self.par_env.observation_space(a)
                                   for a in self.possible_agents}
        self.action_spaces = {a: self.par_env.action_space(a) for a in self.possible_agents}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode; ``seed`` re-seeds the env, ``None`` continues its generator."""
        obs, infos = self.par_env.reset(seed=seed, options=options)
        self.agents = list(self.par_env.agents)
        return obs, infos

    def step(self, action_dict: Mapping[str, Any]):
        """One world step with every live agent's action (``ValueError`` on a bad action,
        nothing changed); ``__all__`` ends the episode when every agent is done."""
        obs, rewards, terminateds, truncateds, infos = self.par_env.step(action_dict)
        self.agents = list(self.par_env.agents)
        terminateds["__all__"] = all(terminateds.values())
        truncateds["__all__"] = not self.agents and not terminateds["__all__"]
        return obs, rewards, terminateds, truncateds, infos

    def render(self) -> str | None:
        """The parallel env's one-line text summary."""
        return self.par_env.render()

    def close(self) -> None:
        """Close the parallel env."""
        self.par_env.close()


def _make(config: Mapping[str, Any] | None) -> RecSimMultiAgentEnv:
    return RecSimMultiAgentEnv(config)


def register(name: str = DEFAULT_ENV_NAME) -> str:
    """Register :class:`RecSimMultiAgentEnv` with ``tune.register_env`` under ``name``, so
    that ``config.environment(name, env_config={...})`` builds it in every env runner.

    Returns:
        ``name``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, got {name!r}")
    from ray.tune.registry import register_env

    register_env(name, _make)
    return name


def ppo_config(env_config: Mapping[str, Any] | None = None, *, env_name: str | None = None,
               num_env_runners: int = 0, sample_timeout_s: float = SAMPLE_TIMEOUT_S,
               seed: int | None = 0, **training: Any) -> Any:
    """An RLlib ``PPOConfig`` (new API stack, torch) for this env with one policy (RLModule)
    per role (:func:`map_by_role`) and the defaults above.

    Args:
        env_config: :class:`RecSimMultiAgentEnv` options (preset, max_cycles, overrides).
        env_name: a name given to :func:`register` (default: the class itself).
        num_env_runners: remote env-runner actors (0: sample in the driver).
        sample_timeout_s: how long an iteration waits for samples.
        seed: RLlib's seed (env runners reset with seeds derived from it).
        **training: ``PPOConfig.training`` options (``lr``, ``train_batch_size_per_learner``,
            ``minibatch_size``, ``num_epochs``, ...).
    """
    from ray.rllib.algorithms.ppo import PPOConfig

    env_config = dict(env_config or {})
    probe = RecSimMultiAgentEnv(env_config)  # spaces and roles only: no reset
    roles = roles_of(probe.possible_agents)
    config = (PPOConfig()
              .api_stack(enable_rl_module_and_learner=True,
                         enable_env_runner_and_connector_v2=True)
              .framework("torch")
              .environment(env_name or RecSimMultiAgentEnv, env_config=env_config)
              .env_runners(num_env_runners=num_env_runners, sample_timeout_s=sample_timeout_s)
              .python_environment(extra_python_environs_for_worker=dict(THREAD_ENV_VARS))
              .multi_agent(policies=set(roles), policy_mapping_fn=map_by_role)
              .debugging(seed=seed))
    if training:
        config = config.training(**training)
    return config
