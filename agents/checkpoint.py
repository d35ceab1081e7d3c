"""Atomic, safe checkpoints and results files: the project's one saver.

Checkpoints hold only tensors, numpy arrays (stored as tensors), numbers, strings, bools,
``None`` and nested dicts/lists/tuples of those. They are written to a temporary file in the
same directory, flushed to disk and renamed over the target (``os.replace`` is atomic), so an
interrupted run never leaves a half-written checkpoint. They are read with
``torch.load(weights_only=True)``: loading never unpickles arbitrary objects.

Results (``results.json`` and friends) go through :func:`to_json` (plain JSON data: numpy
values as Python ones, NaN and infinities as ``null``) and :func:`write_json` (atomic too).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

_NUMPY_TAG = "__numpy__"


def to_saveable(obj: Any) -> Any:
    """Convert numpy arrays and scalars inside ``obj`` to tensors / Python numbers."""
    if isinstance(obj, np.ndarray):
        if obj.dtype == object or obj.dtype.kind in "USV":
            raise TypeError(f"cannot checkpoint a numpy array of dtype {obj.dtype}")
        return {_NUMPY_TAG: torch.from_numpy(np.ascontiguousarray(obj).copy())}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: to_saveable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_saveable(v) for v in obj) if isinstance(obj, list) else tuple(
            to_saveable(v) for v in obj)
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    raise TypeError(f"cannot checkpoint an object of type {type(obj).__name__}; convert it to "
                    "tensors, arrays, numbers, strings or containers of those")


def from_saveable(obj: Any) -> Any:
    """Inverse of :func:`to_saveable` (tensors tagged as numpy come back as numpy arrays)."""
    if isinstance(obj, dict):
        if set(obj) == {_NUMPY_TAG}:
            return obj[_NUMPY_TAG].numpy().copy()
        return {k: from_saveable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_saveable(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(from_saveable(v) for v in obj)
    return obj


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories can't be
    opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, write: Any) -> Path:
    """Write through ``write(file)`` to a temporary file in ``path``'s directory, fsync it,
    rename it over ``path`` and fsync the directory. The temporary file never survives an
    exception (a killed process can leave one: see :func:`remove_stale_temp`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def remove_stale_temp(path: str | Path) -> list[Path]:
    """Delete the temporary files a killed writer of ``path`` left behind
    (``.<name>.*.tmp`` beside it). Returns what was removed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    stale = sorted(path.parent.glob(f".{path.name}.*.tmp"))
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file + fsync + rename + fsync of
    the directory)."""
    data = to_saveable(payload)
    return _atomic_write(Path(path), lambda f: torch.save(data, f))


def to_json(x: Any) -> Any:
    """Plain JSON data: numpy values as Python ones, NaN and infinities as ``null``, tuples
    as lists, paths as strings."""
    if isinstance(x, dict):
        return {str(k): to_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_json(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_json(x.tolist())
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, Path):
        return str(x)
    if x is None or isinstance(x, (bool, int, str)):
        return x
    return str(x)


def from_json(x: Any) -> Any:
    """Inverse of :func:`to_json` for numbers: ``null`` comes back as NaN inside lists and
    dicts of numbers (so means and intervals read from a results file stay floats)."""
    if isinstance(x, dict):
        return {k: from_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [from_json(v) for v in x]
    return float("nan") if x is None else x


def write_json(path: str | Path, data: Any, *, indent: int | None = 1) -> Path:
    """Write ``to_json(data)`` to ``path`` atomically."""
    text = json.dumps(to_json(data), indent=indent, sort_keys=False)
    return _atomic_write(Path(path), lambda f: f.write(text.encode() + b"\n"))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return from_saveable(torch.load(path, map_location="cpu", weights_only=True))
