"""Shared test set-up: 8 simulated CPU devices, set before jax is first imported."""

import atexit
import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()

import jax
import pytest
from hypothesis import settings

CACHE = "OPTLAB_TEST_XLA_CACHE"  # the quick tier's compilation cache (pytest_configure)

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
    """The quick tier (the default ``-m 'not slow'``) compiles at LLVM -O0, on a shared cache.

    Its programs are tiny and compiling them is most of its time. The full tier (``-m ""``,
    CI) compiles as users do, without either: its long runs would feel -O0's slower steps
    (about 1.8x), and its many one-off programs made the cache a loss there (the slow
    optimizer tests of four files: 189 s without it, 214 s with it).

    - XLA's LLVM backend at -O0: no semantics change (no fast-math at any level). Set before
      the first backend starts (collection's imports create no arrays); xdist workers and
      the tests' subprocesses inherit it.
    - XLA's persistent compilation cache, fresh for the session and shared by its xdist
      workers (most tests train the same few tiny models). Its folder travels in a variable
      of our own, so the tests' subprocesses (some killed with SIGKILL, possibly mid-write)
      never use it. Its entries are written without a lock: a worker that reads one while
      another is still writing it gets a warning and compiles again. jax's size limit would
      add a file lock, but its eviction scan serializes the workers (5 min 29 s here). The
      process that makes the folder (the controller, or a lone process) removes it.

    Measured on the 2 cores here (1,974 tests): 6 min 5 s with neither and 4 min 23 s with
    both on a slow hour of the host, 3 min 40 s with both on a normal one (README, Tests).
    """
    if config.option.markexpr != "not slow":
        return
    flags = os.environ["XLA_FLAGS"]
    if "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=0"
    if jax.config.jax_compilation_cache_dir:  # the user's environment names one
        return
    if CACHE not in os.environ:
        os.environ[CACHE] = tempfile.mkdtemp(prefix="optlab-tests-xla-cache-")
        atexit.register(shutil.rmtree, os.environ[CACHE], ignore_errors=True)
    jax.config.update("jax_compilation_cache_dir", os.environ[CACHE])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
