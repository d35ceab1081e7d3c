"""Property-based fuzzing of the config and of every face's actions (hypothesis).

* Random overrides of random presets give either a valid env, whose observations, rewards and
  infos stay finite for a few hundred steps, or a one-line ``ValueError`` naming the field.
* Random malformed actions on every face raise a ``ValueError`` naming the agent (or env) and
  leave the env exactly as a twin that never saw them.

Strategies are read from the config's own field declarations (types and ranges), so a new
field is fuzzed without editing this file. Sizes stay small when valid: the point is the
boundaries of each range and the values just outside them, not big worlds.

``RECSIM_FUZZ_EXAMPLES=2000 pytest tests/recsim_env/test_fuzz.py`` fuzzes longer.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import typing

import annotated_types
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import recsim_env
from recsim_env.config import PRESETS, EnvConfig, make_config
from recsim_env.slates import NoRepeatSlates
from recsim_env.vector import RecommenderVecEnv
from tests.recsim_env.helpers import assert_same, random_actions

FIELDS = {f.name: EnvConfig.__pydantic_fields__[f.name] for f in dataclasses.fields(EnvConfig)
          if f.name != "extra"}
# Values of no field's type, or outside every field's range.
JUNK = st.sampled_from([None, "x", "False", "", True, False, math.nan, math.inf, -math.inf,
                        1e308, -1e308, 10**30, -(10**30), 2.5, -1, 0, [], [1, 2], {}, object()])
SMALL_INT_SPAN = 24  # valid ints drawn from [low, low + span] (plus the upper bound when cheap)
# Fields where the world allocates per unit: never drawn near their upper bound when valid.
SIZES = {"n_users", "n_topics", "n_recommenders", "n_providers", "n_user_agents",
         "n_candidates", "slate_size", "n_items_max", "n_items_initial",
         "n_background_providers", "content_dim"}


def _declared(tp, meta: list) -> tuple[type, dict, bool]:
    """``(base type, bounds {ge, gt, le, lt}, nullable)`` of a field's annotation."""
    bounds: dict = {}
    nullable = False
    while True:
        for m in meta:
            for c in getattr(m, "metadata", [m]):
                for kind in (annotated_types.Ge, annotated_types.Gt, annotated_types.Le,
                             annotated_types.Lt):
                    if isinstance(c, kind):
                        key = kind.__name__.lower()
                        bounds[key] = getattr(c, key)
        if typing.get_origin(tp) is typing.Annotated:
            tp, *meta = typing.get_args(tp)
        elif type(None) in typing.get_args(tp):
            nullable = True
            tp, meta = next(a for a in typing.get_args(tp) if a is not type(None)), []
        else:
            return tp, bounds, nullable


def _valid(name: str, tp, b: dict) -> st.SearchStrategy:
    """Values of the declared type and range."""
    if typing.get_origin(tp) is typing.Literal:
        # MiniLM loads a sentence-transformer: its config checks are tested, its world is not
        return st.sampled_from([a for a in typing.get_args(tp) if a != "minilm"])
    if tp is bool:
        return st.booleans()
    if tp is int:
        lo = b["ge"] if "ge" in b else b["gt"] + 1
        hi = b["le"] if "le" in b else b.get("lt", 10**18) - 1
        small = st.integers(lo, min(hi, lo + SMALL_INT_SPAN))
        return small if name in SIZES else small | st.just(hi)
    if tp is float:
        return st.floats(b.get("ge", b.get("gt")), b.get("le", b.get("lt")),
                         exclude_min="gt" in b, exclude_max="lt" in b)
    if typing.get_origin(tp) is tuple:
        elem, eb, _ = _declared(typing.get_args(tp)[0], [])
        return st.lists(_valid(name, elem, eb), min_size=1, max_size=12).map(tuple)
    raise AssertionError(f"no strategy for {name}: {tp}")


def _just_outside(tp, b: dict) -> list:
    """Values just outside the declared range."""
    if typing.get_origin(tp) is tuple:
        elem, eb, _ = _declared(typing.get_args(tp)[0], [])
        return [(0.0, v) for v in _just_outside(elem, eb)]
    out = []
    for key, v in b.items():
        if tp is int:
            out.append(v - 1 if key == "ge" else v + 1 if key == "le" else v)
        elif tp is float:
            down = key in ("ge", "gt")
            out.append(np.nextafter(v, -math.inf if down else math.inf) if key in ("ge", "le")
                       else v)
    return out


@functools.cache
def field_values(name: str) -> st.SearchStrategy:
    """Valid values (twice as likely), values just outside the range, and junk."""
    info = FIELDS[name]
    tp, b, nullable = _declared(info.annotation, list(info.metadata))
    valid = _valid(name, tp, b)
    if nullable:
        valid = st.none() | valid
    outside = _just_outside(tp, b)
    return st.one_of(valid, valid, st.sampled_from(outside) if outside else JUNK, JUNK)


overrides = st.permutations(sorted(FIELDS)).flatmap(
    lambda names: st.integers(1, 4).flatmap(
        lambda n: st.fixed_dictionaries({k: field_values(k) for k in names[:n]})))

# A small world under every preset (recsim_ie is small already and has no catalog).
SMALL = dict(n_users=12, n_recommenders=3, n_providers=1, n_items_initial=40, n_items_max=80)
STEPS = 200
EXAMPLES = int(os.environ.get("RECSIM_FUZZ_EXAMPLES", "0")) or None


def _finite(x) -> bool:
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    return bool(np.all(np.isfinite(np.asarray(x, dtype=np.float64))))


@settings(max_examples=EXAMPLES or 120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(preset=st.sampled_from(PRESETS), over=overrides)
def test_random_overrides_give_valid_env_or_named_error(preset, over):
    base = {} if preset == "recsim_ie" else SMALL
    try:
        cfg = make_config(preset, **{**base, **over})
    except (ValueError, TypeError) as e:
        msg = str(e)
        assert "\n" not in msg, msg
        assert msg.split(" ")[0] in FIELDS, msg
        event("refused")
        return
    event("valid")
    env = recsim_env.parallel_env(cfg, max_cycles=STEPS)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    assert all(_finite(o) for o in obs.values())
    while env.agents:
        obs, rew, _, _, infos = env.step(random_actions(env, rng))
        assert all(_finite(o) for o in obs.values()), (cfg, env.world.t)
        assert _finite(rew), (cfg, rew)
        assert all(_finite(i) for i in infos.values()), (cfg, infos)


# ---------------------------------------------------------------------------- actions
C, K = 10, 3  # candidates and slate size of the fuzzed faces
FACE_KW = dict(n_users=8, n_recommenders=2, n_providers=1, n_items_initial=40, n_items_max=80)


def _grad(values) -> torch.Tensor:
    return torch.tensor(np.asarray(values, dtype=np.float32), requires_grad=True)


def malformed_slates(k: int = K, c: int = C) -> st.SearchStrategy:
    """Actions that are not elements of ``MultiDiscrete([c] * k)`` (or of ``Discrete(c)``)."""
    good = st.lists(st.integers(0, c - 1), min_size=k, max_size=k)

    def put(values: st.SearchStrategy) -> st.SearchStrategy:
        return st.tuples(good, st.integers(0, k - 1), values).map(
            lambda t: t[0][: t[1]] + [t[2]] + t[0][t[1] + 1:])

    fractions = st.floats(allow_nan=True, allow_infinity=True).filter(
        lambda x: not math.isfinite(x) or x != int(x))
    return st.one_of(
        put(st.booleans()),                                        # [3, 5, True]
        put(fractions),                                            # [3, 5.5, 1], nan, inf
        put(st.integers(c, 2**70) | st.integers(-(2**70), -1)),    # out of range, overflow
        put(st.sampled_from([None, "1", [1, 2]])),                 # junk inside, ragged
        good.map(lambda v: np.asarray(v, np.float64)),             # float dtype
        good.map(lambda v: np.asarray(v, bool)),                   # bool dtype
        good.map(_grad),                                           # tensor needing grad
        good.map(lambda v: np.asarray(v).reshape(1, k)),           # wrong shape
        st.lists(st.integers(0, c - 1), max_size=k + 3).filter(lambda v: len(v) != k),
        st.booleans(),
        st.sampled_from([None, "0", b"0", {}, {"recommender_0": [0, 1, 2]}, {0, 1, 2}, 2.0,
                         math.nan]),
    )


@functools.cache
def _pairs(face: str):
    if face == "parallel":
        return [recsim_env.parallel_env(**FACE_KW) for _ in range(2)]
    if face == "aec":
        return [recsim_env.env(**FACE_KW) for _ in range(2)]
    if face == "view":
        return [recsim_env.single_agent_env(**FACE_KW) for _ in range(2)]
    if face == "no_repeat":
        return [NoRepeatSlates(recsim_env.single_agent_env(**FACE_KW)) for _ in range(2)]
    if face == "vector":
        return [RecommenderVecEnv(3, **FACE_KW) for _ in range(2)]
    raise AssertionError(face)


def _valid_step(face: str, env, rng: np.random.Generator):
    """One valid step (a whole cycle for the AEC env); returns what it observed."""
    if face == "parallel":
        return env.step(random_actions(env, rng))
    if face == "aec":
        out = []
        for _ in range(len(env.agents)):
            a = env.agent_selection
            env.step(rng.permutation(C)[:K] if a.startswith("recommender")
                     else int(rng.integers(env.action_space(a).n)))
            out.append(env.last())
        return out
    if face == "vector":
        return env.step(np.stack([rng.permutation(C)[:K] for _ in range(env.num_envs)]))
    return env.step(rng.permutation(C - 2)[:K] if face == "no_repeat" else rng.permutation(C)[:K])


def _reset(face: str, env, seed: int) -> None:
    if face == "vector":
        env.seed(seed)
        env.reset()
    else:
        env.reset(seed=seed)


def _bad_step(face: str, env, bad, rng: np.random.Generator):
    if face == "parallel":
        return env.step(random_actions(env, rng) | {"recommender_0": bad})
    if face == "vector":
        batch = [list(rng.permutation(C)[:K]) for _ in range(env.num_envs)]
        batch[1] = bad
        return env.step(batch)
    return env.step(bad)


@pytest.mark.parametrize("face", ["parallel", "aec", "view", "no_repeat", "vector"])
@settings(max_examples=EXAMPLES or 40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad=malformed_slates(), seed=st.integers(0, 3), warmup=st.integers(0, 2))
def test_malformed_actions_raise_and_leave_state_unchanged(face, bad, seed, warmup):
    if face == "no_repeat":  # no-repeat codes may be whole floats (decode_no_repeat)
        assume(not (isinstance(bad, np.ndarray) and bad.dtype.kind == "f"
                    and np.array_equal(bad, np.round(bad)) and bad.shape == (K,)))
    env, twin = _pairs(face)
    for e in (env, twin):
        _reset(face, e, seed)
    rng_a, rng_b = np.random.default_rng(seed), np.random.default_rng(seed)
    for _ in range(warmup):
        _valid_step(face, env, rng_a)
        _valid_step(face, twin, rng_b)
    if face == "aec":  # bring both to recommender_0's turn (providers act first)
        while not env.agent_selection.startswith("recommender"):
            env.step(0)
            twin.step(0)
    with pytest.raises(ValueError) as err:
        _bad_step(face, env, bad, np.random.default_rng(99))
    msg = str(err.value)
    assert "\n" not in msg
    if face == "vector":
        assert "env 1" in msg or "invalid actions: expected a batch" in msg, msg
    elif face == "no_repeat":
        assert "no-repeat" in msg, msg
    else:
        assert "invalid action for agent 'recommender_0'" in msg, msg
    # the failed call changed nothing: world state and the next valid step equal the twin's
    inner = getattr(env, "unwrapped", env)
    assert_same(inner.world.state_dict(), getattr(twin, "unwrapped", twin).world.state_dict())
    assert_same(_valid_step(face, env, np.random.default_rng(1)),
                _valid_step(face, twin, np.random.default_rng(1)))
