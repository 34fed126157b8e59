"""Shared test set-up: 8 simulated CPU devices, set before jax is first imported."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import jax  # noqa: E402  (must come after XLA_FLAGS)
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests: few examples, no deadline (the first example pays for compilation).
settings.register_profile("optlab", max_examples=12, deadline=None, derandomize=True)
settings.load_profile("optlab")


@pytest.fixture(scope="session")
def devices():
    return jax.devices()
