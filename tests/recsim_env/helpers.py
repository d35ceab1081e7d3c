"""Small shared helpers for the environment tests."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np


def random_slates(rng: np.random.Generator, n: int, n_candidates: int, k: int) -> np.ndarray:
    """(n, k) int64 uniformly random slates of distinct candidates (Gumbel top-k)."""
    return np.argsort(rng.random((n, n_candidates)), axis=1)[:, :k].astype(np.int64)


def random_actions(env, rng: np.random.Generator) -> dict:
    """One valid action per live agent of a parallel env (distinct slates)."""
    cfg = env.config
    out = {}
    for a in env.agents:
        if a.startswith("recommender"):
            s = random_slates(rng, 1, cfg.n_candidates, cfg.slate_size)[0]
            out[a] = int(s[0]) if cfg.slate_size == 1 else s
        else:
            out[a] = int(rng.integers(env.action_space(a).n))
    return out


def assert_same(a, b) -> None:
    """Deep equality of nested dicts/tuples/lists/arrays (NaN equals NaN)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_equal(a, b)


# Advice from PettingZoo's api_test and the Gymnasium / SB3 env checkers that this env's design
# answers on purpose: unbounded feature boxes, MultiDiscrete slates, roles whose observations
# differ in size, envs built without a registry spec, and wrappers checked on purpose. Any
# other warning they raise (NaN observations, wrong dtypes, observations outside their space,
# ...) fails the test.
DESIGN_ADVICE = (
    r"Observations are different shapes",
    r"Agents have different observation space sizes",
    r"Action space for each agent probably should be",
    r"Agent's (minimum|maximum) observation space value is -?infinity",
    r".*A Box observation space (minimum|maximum) value is -?infinity",
    r".*Not able to test alternative render modes due to the environment not having a "
    r"spec",
    r".*The environment \(<NoRepeatSlates<.*is different from the unwrapped version",
)


@contextlib.contextmanager
def warnings_as_errors():
    """Every warning is an error, except :data:`DESIGN_ADVICE` and library deprecations."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("default", DeprecationWarning)
        warnings.simplefilter("default", PendingDeprecationWarning)
        for message in DESIGN_ADVICE:
            warnings.filterwarnings("ignore", message=message)
        yield
