"""Seeded training of our Q-learners is bit-for-bit what it was before the training path was
optimised (issue 18): the same random draws and the same numerics give the same parameters,
optimizer state, replay contents and generator states.

The digests were recorded from the learners of commit 9b9c392 on the plain-numpy world
(``python -m tests.agents.test_learner_digests`` prints them). A change that alters them
changes every seeded learning result: do not regenerate them to make a speed-up pass.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
import torch

from tests.agents.test_qlearners import EASY, LEARNERS, SMALL_DEFAULT, _train

CONFIGS = {"easy": EASY, "default": SMALL_DEFAULT}
EXPECTED = {
    ("linear", "easy"): "c2c88414b3131c42f9d61694b179c0e69dd74c01c5b03d69ab7719b7d9674c01",
    ("linear", "default"): "4a38c73e3ae136982e1954c8c6c6c383bd622d9fa2729f6fd6062b2614b08ab3",
    ("dqn", "easy"): "98dd1ad78e958a4725357208a801c79d054a04677b17e55fe3e59c13830d2756",
    ("dqn", "default"): "e3966c064b0dfa40c97a8d087ed47523e1418d50e31546903457f5bc7b3203eb",
    ("slateq", "easy"): "0f4c78a8f0a88dacf8356b2ae38cbe02928edd17daca89ca487e96fba7b7e953",
    ("slateq", "default"): "fda36d4fa3cd8904d50d1f99a5be5daab48450e9731e4fcc27cd68e2e0b6e6c1",
}


def _feed(h: Any, x: Any) -> None:
    if isinstance(x, dict):
        for k in sorted(x, key=str):
            h.update(str(k).encode())
            _feed(h, x[k])
    elif isinstance(x, (list, tuple)):
        for v in x:
            _feed(h, v)
    elif isinstance(x, torch.Tensor):
        _feed(h, x.detach().cpu().numpy())
    elif isinstance(x, np.ndarray):
        a = np.ascontiguousarray(x)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    else:
        h.update(repr(x).encode())


def learner_digest(name: str, config: str) -> str:
    """sha256 of learner ``name``'s whole state after 60 seeded world steps of 16 sessions."""
    learner = LEARNERS[name](CONFIGS[config], 3)
    _train(learner, CONFIGS[config], 60, seed=5)
    h = hashlib.sha256()
    _feed(h, learner.state_dict())
    return h.hexdigest()


@pytest.mark.parametrize("name, config", sorted(EXPECTED))
def test_seeded_training_unchanged(name: str, config: str) -> None:
    assert learner_digest(name, config) == EXPECTED[name, config]


if __name__ == "__main__":  # print the digests
    for key in sorted(EXPECTED):
        print(f"    {key!r}: {learner_digest(*key)!r},")
