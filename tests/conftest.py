"""Shared test set-up: 8 simulated CPU devices, set before jax is first imported."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import jax
import pytest
from hypothesis import settings

# Property tests: few examples, no deadline (the first example pays for compilation).
settings.register_profile("optlab", max_examples=12, deadline=None, derandomize=True)
settings.load_profile("optlab")


@pytest.fixture(scope="session")
def devices():
    return jax.devices()


@pytest.fixture
def torch():
    """PyTorch, the optional parity oracle: tests using it skip cleanly when it is absent."""
    return pytest.importorskip("torch")
