"""Shared test set-up: 8 simulated CPU devices, set before jax is first imported."""

import atexit
import importlib.util
import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import jax
import pytest
from hypothesis import settings

# XLA's persistent compilation cache, fresh for each test session and shared by its xdist
# workers: most tests train the same few tiny models, and compiling their steps again is most
# of their time. The folder travels in a variable of our own, so the tests' subprocesses
# (some killed with SIGKILL, possibly while writing an entry) never use it. The session that
# makes the folder (the controller, or a lone process) removes it.
_CACHE = "OPTLAB_TEST_XLA_CACHE"
if _CACHE not in os.environ:
    os.environ[_CACHE] = tempfile.mkdtemp(prefix="optlab-tests-xla-cache-")
    atexit.register(shutil.rmtree, os.environ[_CACHE], ignore_errors=True)

if not jax.config.jax_compilation_cache_dir:  # unless the user's environment names one
    jax.config.update("jax_compilation_cache_dir", os.environ[_CACHE])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    # a size limit turns on the cache's file lock, so that a worker never reads an entry
    # that another is still writing (jax would warn and compile again); it needs `filelock`
    if importlib.util.find_spec("filelock") is not None:
        jax.config.update("jax_compilation_cache_max_size", 8 * 2**30)

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


def pytest_configure(config):
    """The quick tier (the default ``-m 'not slow'``) compiles with XLA's LLVM backend at -O0.

    Its programs are tiny and compiling them is most of its time: 6 min 5 s at the default
    level against 4 min 23 s at -O0 on the 2 cores here (1,974 tests, the same day). -O0
    changes no semantics (no fast-math at any level); a step runs about 1.8x slower, which
    only the full tier's long runs would feel, so the full tier (``-m ""``, CI) compiles as
    users do. Set before the first backend starts (collection's imports create no arrays);
    xdist workers and the tests' subprocesses inherit it.
    """
    flags = os.environ["XLA_FLAGS"]
    if config.option.markexpr == "not slow" and "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0"
