"""Atomic, safe checkpoints.

Checkpoints hold only tensors, numpy arrays (stored as tensors), numbers, strings, bools,
``None`` and nested dicts/lists/tuples of those. They are written to a temporary file in the
same directory, flushed to disk and renamed over the target (``os.replace`` is atomic), so an
interrupted run never leaves a half-written checkpoint. They are read with
``torch.load(weights_only=True)``: loading never unpickles arbitrary objects.
"""

from __future__ import annotations

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


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temporary file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(to_saveable(payload), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return from_saveable(torch.load(path, map_location="cpu", weights_only=True))
