"""Action checks shared by every face: the type first, then conversion, shape and range.

Every face (parallel, AEC, single-agent views, the VecEnv and the no-repeat slate wrappers)
reads actions through :func:`read_array`, so one malformed action gets the same one-line
``ValueError`` everywhere: ``invalid action for agent 'recommender_0': [3, 5, True] (contains
a bool at index 2; ...); expected an element of MultiDiscrete([10 10 10])``. Nothing is
clipped or coerced, and a rejected action changes nothing (the faces check before they step).

What is refused before numpy sees the value (``np.asarray`` would silently turn it into
something else, or fail with a message that names neither the agent nor the env):

* bools anywhere in a list or tuple (``[3, 5, True]`` would become ``[3, 5, 1]``);
* ``None``, strings, bytes, dicts and sets (a dict is the action *dict*, not one action);
* tensors that require grad (``tensor.detach()`` first) and anything else numpy cannot read
  (tensors on a GPU, ragged lists), with numpy's or torch's reason in parentheses.

:func:`as_int_array` then refuses non-integer dtypes (bool, float, with a NaN named, object).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

import numpy as np
from gymnasium import spaces

_MAX_REPR = 120


def _show(value: Any) -> str:
    # a scalar row of a batch is shown as the Python number a user would pass
    if isinstance(value, np.ndarray) and value.ndim == 0 or isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def invalid_action(who: str, value: Any, space: spaces.Space | str, why: str) -> ValueError:
    """The error of every face: names ``who`` (``agent 'recommender_0'``, ``env 3``), the
    value, why it is refused and the space (or, as a string, what is expected)."""
    expected = space if isinstance(space, str) else f"an element of {space}"
    return ValueError(f"invalid action for {who}: {_show(value)} ({why}); expected {expected}")


def _first_bool(value: Any, path: tuple[int, ...] = ()) -> tuple[int, ...] | None:
    """Index path of the first bool inside nested lists/tuples, or None."""
    for i, v in enumerate(value):
        if isinstance(v, (bool, np.bool_)):
            return (*path, i)
        if isinstance(v, (list, tuple)):
            found = _first_bool(v, (*path, i))
            if found is not None:
                return found
    return None


def _refuse_type(value: Any) -> str | None:
    """Why ``value`` is not an action by its type alone (None if it may be one)."""
    if value is None:
        return "None is only the action of an agent that is done"
    if isinstance(value, (str, bytes)):
        return f"a {type(value).__name__}, not a number"
    if isinstance(value, Mapping):
        return "a dict: pass one action, not a mapping of actions"
    if isinstance(value, Set):
        return "a set has no order"
    if getattr(value, "requires_grad", False) and type(value).__module__.startswith("torch"):
        return "a tensor that requires grad: pass tensor.detach()"
    if isinstance(value, (bool, np.bool_)):
        return "dtype bool is not an integer type"
    return None


def read_array(value: Any, who: str, space: spaces.Space | str) -> np.ndarray:
    """Check the type of an action, then convert it with ``np.asarray`` (any dtype).

    Raises:
        ValueError: naming ``who``, the value and the space (see the module docstring).
    """
    if type(value) is np.ndarray:  # the common case: nothing below refuses or converts it
        return value
    why = _refuse_type(value)
    if why is not None:
        raise invalid_action(who, value, space, why)
    if isinstance(value, (list, tuple)):
        at = _first_bool(value)
        if at is not None:
            raise invalid_action(who, value, space,
                                 f"contains a bool at index {at[0] if len(at) == 1 else at}; "
                                 "bools are not indices")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError, RuntimeError, OverflowError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        why = ("ragged: its rows differ in length" if "inhomogeneous" in reason
               else f"not readable as an array of integers: {reason}")
        raise invalid_action(who, value, space, why) from None
    return arr


def as_int_array(value: Any, who: str, space: spaces.Space) -> np.ndarray:
    """:func:`read_array`, then an integer dtype (no bool, float or object)."""
    arr = read_array(value, who, space)
    check_int_dtype(arr, value, who, space)
    return arr


def check_int_dtype(arr: np.ndarray, value: Any, who: str, space: spaces.Space) -> None:
    """Refuse arrays that are not of an integer dtype (naming a NaN when there is one)."""
    if arr.dtype.kind not in "iu":  # signed or unsigned integers (bool is kind "b")
        if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
            raise invalid_action(who, value, space, "contains NaN")
        raise invalid_action(who, value, space, f"dtype {arr.dtype} is not an integer type")


def validate_slate(agent: str, value: Any, space: spaces.Space, cfg: Any) -> np.ndarray:
    """Check one recommender action and return it as a (slate_size,) int64 array.

    Accepts Python or numpy integers (and integer arrays of the space's shape). Rejects bools,
    floats (including NaN), wrong shapes and out-of-range indices with a ``ValueError`` that
    names the agent, the value and the space. Nothing is clipped or coerced.
    """
    who = f"agent {agent!r}"
    arr = as_int_array(value, who, space)
    want = () if cfg.slate_size == 1 else (cfg.slate_size,)
    if arr.shape != want and not (cfg.slate_size == 1 and arr.shape == (1,)):
        raise invalid_action(who, value, space, f"shape {arr.shape}, expected {want}")
    idx = arr.reshape(-1).tolist()  # a handful of ints: cheaper in Python than two reductions
    if min(idx) < 0 or max(idx) >= cfg.n_candidates:
        raise invalid_action(who, value, space, f"indices must be in [0, {cfg.n_candidates})")
    return arr.reshape(cfg.slate_size).astype(np.int64, copy=False)


def validate_discrete(agent: str, value: Any, space: spaces.Discrete) -> int:
    """Check a ``Discrete`` action (an integer scalar in range) and return it as an int."""
    who = f"agent {agent!r}"
    arr = as_int_array(value, who, space)
    if arr.shape not in ((), (1,)):
        raise invalid_action(who, value, space, f"shape {arr.shape}, expected a scalar")
    v = int(arr.reshape(()))
    if not space.start <= v < space.start + space.n:
        raise invalid_action(who, value, space,
                             f"must be in [{space.start}, {space.start + space.n})")
    return v


def validate_slates(actions: Any, num_envs: int, space: spaces.Space, cfg: Any) -> np.ndarray:
    """Check a batch of recommender actions and return it as (num_envs, slate_size) int64.

    Accepts ``(num_envs, slate_size)`` integer arrays, and ``(num_envs,)`` (or
    ``(num_envs, 1)``) for slates of one. Rejects what :func:`read_array` refuses, bools,
    floats (naming the first env with a NaN), wrong shapes and out-of-range indices (naming
    the first bad env), before anything is stepped.

    Raises:
        ValueError: as :func:`validate_slate`, with ``env i`` for the agent.
    """
    k, c = cfg.slate_size, cfg.n_candidates
    if isinstance(actions, (list, tuple)):
        # a batch given row by row: check each row as its env's action, then stack
        rows = []
        for i, row in enumerate(actions):
            arr = read_array(row, f"env {i}", space)
            check_int_dtype(arr, row, f"env {i}", space)
            if rows and arr.shape != rows[0].shape:
                raise invalid_action(f"env {i}", row, space,
                                     f"shape {arr.shape} differs from env 0's {rows[0].shape}")
            rows.append(arr)
        actions = np.stack(rows) if rows else np.empty((0, k), np.int64)
    arr = read_array(actions, "the batch of envs", space)
    if arr.ndim == 0 or arr.shape[0] != num_envs:
        raise ValueError(f"invalid actions: expected a batch of {num_envs} actions (one per env, "
                         f"shape ({num_envs}, {k})), got shape {arr.shape}; each an element "
                         f"of {space}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        i = 0
        if np.issubdtype(arr.dtype, np.floating):
            nan = np.isnan(arr.reshape(num_envs, -1)).any(axis=1)
            if nan.any():
                i = int(np.argmax(nan))
                raise invalid_action(f"env {i}", arr[i], space, "contains NaN")
        raise invalid_action(f"env {i}", arr[i], space, f"dtype {arr.dtype} is not an integer type")
    want = () if k == 1 else (k,)
    row = arr.shape[1:]
    if row != want and not (k == 1 and row == (1,)):
        raise invalid_action("env 0", arr[0], space, f"shape {row}, expected {want}")
    flat = arr.reshape(num_envs, k)
    bad = (flat < 0) | (flat >= c)
    if bad.any():
        i = int(np.argmax(bad.any(axis=1)))
        raise invalid_action(f"env {i}", arr[i], space, f"indices must be in [0, {c})")
    return flat.astype(np.int64, copy=False)
