"""Shared test set-up: one torch thread (see NOTES on OpenMP spin-waiting), and one Ray
instance per test session for the tests marked ``ray``."""

import pytest
import torch

torch.set_num_threads(1)

RAY_CPUS = 2
"""CPUs of the test session's Ray instance (a 2-core CI machine)."""


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray instance shared by every test that needs one (``ray.init`` takes seconds
    and hundreds of MB): 2 CPUs, no dashboard, a 100 MB object store, one thread per worker.
    Skips when the extra ``ray`` is not installed. Never ``ray stop`` (it ends Ray processes
    by name, other users' too); the instance ends with the session."""
    ray = pytest.importorskip("ray", reason="needs the optional extra: pip install "
                                            "'recsim-marl[ray]'")
    from agents.experiments.ray_backend import init_ray

    started = not ray.is_initialized()
    init_ray(num_cpus=RAY_CPUS, object_store_memory=10**8)
    yield ray
    if started:
        ray.shutdown()
