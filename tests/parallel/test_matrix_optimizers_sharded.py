"""Muon, Shampoo and SOAP on sharded parameters (issue 13): five updates of the MLP's
parameters under ``jax.jit`` with the in/out shardings of optlab.parallel's rules
(``param_specs``, and ``opt_state_specs`` as ``optlab.train.layout.state_shardings`` uses
it) on fsdp (data=8), tp (data=2, model=4: the (128, 10) head falls back to replicated)
and tp (data=4, model=2: every kernel split), against the same five updates on one device.

The updates are the optimizers' own (``tx.update`` + ``optax.apply_updates``) on fixed
random gradients, so only the layout differs. Layouts change how XLA splits reductions
(G·Gᵀ, ‖M‖_F, XXᵀ over a sharded dimension become per-device partial sums and an
all-reduce), i.e. the last bits. What the last bits are worth depends on the optimizer:
``_sensitivity`` measures it on one device by perturbing every gradient by one float32
ulp (relative 2⁻²³). Measured (per leaf, max|a − b| / max|b|; params on their
displacement p − p₀, the part the optimizer wrote):

=============================  ================  ===================  =====================
optimizer                      sharded vs one:   sharded vs one:      1-ulp perturbation on
                               displacement      optimizer state      one device (disp/state)
=============================  ================  ===================  =====================
muon                           ≤ 1.1e-5          0 (bit for bit)      1.3e-5 / 4.2e-7
shampoo (one block per leaf)   ≤ 1.3e-5          ≤ 8.9e-7             1.7e-5 / 1.1e-6
shampoo (block_size=2)         ≤ 4.1e-5          ≤ 3.0e-7             2.5e-3 / 6.2e-7
soap (max_precond_dim=64)      ≤ 3.2e-5          ≤ 4.7e-5             4.3e-5 / 6.7e-5
=============================  ================  ===================  =====================

(The displacement's 1e-5 is one float32 ulp of the parameters, |p| ≤ 4, over a displacement
of ~0.05.) Asserted: ``TOL`` below, a few times the measured gaps and of the order of what
one ulp of the gradients does on one device; parameters also with ``assert_allclose``
(rtol 1e-5, atol 5e-6: float32 parameters of magnitude ≤ 4 after ~0.05 of movement;
measured worst 2.6e-6 absolute, SOAP under tp4x2).

SOAP with its default ``max_precond_dim`` is run but not compared: the (128, 10) head's
L = G·Gᵀ (128 × 128) has rank 10 at the first update, so ``eigh`` picks an arbitrary basis
of its 118-dimensional null space, and Adam's per-coordinate normalization in that basis
makes every later iterate depend on the choice (the module docstring of
``optlab/optimizers/_soap.py`` says so). One ulp of the gradients on ONE device moves the
parameters' displacement by 53% and the state by O(1), so no layout can be held to one
device's numbers. With ``max_precond_dim=64`` only full-rank sides are rotated (the 64 × 64
L of the (64, 128) kernel, the 10 × 10 R of the head) and the comparison is well posed.

Shampoo's blocked preconditioner calls a BATCHED ``eigh`` (one per block). On the CPU,
jaxlib's LAPACK kernel splits a batch whose work exceeds 2e5 flops (5·b³ per b × b block)
into tasks on XLA's intra-op thread pool and blocks a pool thread until they finish
(``jax::ParallelBatchMap``). That pool has max(#cores, #devices) threads; with 8 simulated
devices on a machine of ≤ 8 cores, eight devices entering such an ``eigh`` at once hold
every pool thread, none is left for the tasks, and the step deadlocks (gdb: all
``tf_XLAEigen`` threads in ``lapack_ssyevd_ffi → ParallelBatchMap →
BlockingCounter::Wait``). The quick test therefore uses ``block_size=2`` (every batch's
work stays under the 2e5-flop threshold, so LAPACK runs inline); the slow test runs
``block_size=48`` (padded blocks) in a subprocess with ``NPROC=16`` (a 16-thread pool).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

import optlab
from optlab.parallel import make_mesh, opt_state_specs, param_specs, shardings
from tests.parallel.conftest import abstract_params

# 8 simulated devices running eigh/QR and Newton-Schulz: the full tier (pytest -m "").
pytestmark = pytest.mark.slow
STEPS = 5
LAYOUTS = {
    "fsdp8": ("data=8", "fsdp"),
    "tp2x4": ("data=2,model=4", "tp"),
    "tp4x2": ("data=4,model=2", "tp"),
}
# Which kernels each layout splits (the head (128, 10) falls back under model=4).
SPLIT_KERNELS = {
    "fsdp8": {"Dense_0", "Dense_1", "Dense_2"},
    "tp2x4": {"Dense_0", "Dense_1"},
    "tp4x2": {"Dense_0", "Dense_1", "Dense_2"},
}
OPTIMIZERS = {
    "muon": lambda: optlab.muon(0.02),
    "shampoo": lambda: optlab.shampoo(1e-2),  # block_size 128: one block per leaf
    "shampoo_blocks": lambda: optlab.shampoo(1e-2, block_size=2),  # see the docstring
    "soap": lambda: optlab.soap(1e-2, precondition_frequency=2, max_precond_dim=64),
}
SLOW_OPTIMIZERS = {"shampoo_blocks48": lambda: optlab.shampoo(1e-2, block_size=48)}
# Per-leaf max|a − b| / max|b| (params: on the displacement p − p0).
TOL = {
    "muon": (1e-4, 1e-5),
    "shampoo": (1e-4, 1e-5),
    "shampoo_blocks": (3e-4, 1e-5),
    "shampoo_blocks48": (3e-4, 1e-5),
    "soap": (3e-4, 5e-4),
}
PARAM_RTOL, PARAM_ATOL = 1e-5, 5e-6


def _abstract():
    return abstract_params("mlp", (64,))


def _random_tree(key, like):
    leaves, treedef = jax.tree.flatten(like)
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten(
        [jax.random.normal(k, leaf.shape, leaf.dtype) for k, leaf in zip(keys, leaves, strict=True)]
    )


def _problem():
    """Initial params, STEPS gradients and a noise tree, all fixed."""
    abstract = _abstract()
    keys = jax.random.split(jax.random.key(0), STEPS + 2)
    params = _random_tree(keys[0], abstract)
    grads = [_random_tree(k, abstract) for k in keys[1 : STEPS + 1]]
    return abstract, params, grads, _random_tree(keys[-1], abstract)


def _step(tx):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def run_one_device(tx, params, grads):
    step = jax.jit(_step(tx))
    state = tx.init(params)
    for g in grads:
        params, state = step(params, state, g)
    return jax.device_get((params, state))


def run_sharded(tx, abstract, params, grads, layout):
    """(params, state) after the updates, their spec trees, and the compiled step."""
    mesh_spec, strategy = LAYOUTS[layout]
    mesh = make_mesh(mesh_spec)
    p_specs, _ = param_specs(abstract, mesh, strategy)
    o_specs = opt_state_specs(
        tx, jax.eval_shape(tx.init, abstract), abstract, p_specs, mesh, strategy
    )
    p_sh, o_sh = shardings(p_specs, mesh), shardings(o_specs, mesh)
    step = jax.jit(_step(tx), in_shardings=(p_sh, o_sh, p_sh), out_shardings=(p_sh, o_sh))
    p = jax.device_put(params, p_sh)
    s = jax.device_put(tx.init(params), o_sh)
    for g in grads:
        p, s = step(p, s, jax.device_put(g, p_sh))
    return p, s, p_specs, o_specs


def gaps(got, want, base=None):
    """{path: max|a − b| / max|b|} per leaf (on a − base, b − base if base is given)."""
    bases = jax.tree.leaves(base) if base is not None else [None] * len(jax.tree.leaves(want))
    out = {}
    for (path, a), b, c in zip(
        jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want), bases, strict=True
    ):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if c is not None:
            a, b = a - np.asarray(c, np.float64), b - np.asarray(c, np.float64)
        diff = float(np.max(np.abs(a - b))) if a.size else 0.0
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        out[jax.tree_util.keystr(path)] = diff / scale if scale > 0 else diff
    return out


def compare(name, layout):
    """Measured gaps of one optimizer and layout against one device (a dict of floats)."""
    make = {**OPTIMIZERS, **SLOW_OPTIMIZERS}[name]
    abstract, params, grads, _ = _problem()
    one_p, one_s = run_one_device(make(), params, grads)
    p, s, _, _ = run_sharded(make(), abstract, params, grads, layout)
    p, s = jax.device_get((p, s))
    return {
        "displacement": max(gaps(p, one_p, params).values()),
        "state": max(gaps(s, one_s).values()),
        "params_abs": float(
            max(
                np.max(np.abs(a - b))
                for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(one_p), strict=True)
            )
        ),
    }


def one_blas_thread():
    """OpenBLAS (scipy's, under jaxlib's LAPACK kernels) at one thread: eight simulated
    devices each calling a busy-waiting 2-thread OpenBLAS on a small machine made every
    Shampoo/SOAP step ~100x slower (5-12 s instead of 0.05 s, measured on 2 cores)."""
    try:
        import threadpoolctl
    except ImportError:  # scikit-learn's dependency; without it the tests are only slower
        return contextlib.nullcontext()
    jax.numpy.linalg.eigh(jax.numpy.eye(2)).eigenvalues.block_until_ready()  # load LAPACK
    return threadpoolctl.threadpool_limits(1, user_api="blas")


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    with one_blas_thread():
        yield


@pytest.fixture(scope="module")
def problem():
    return _problem()


@pytest.fixture(scope="module")
def one_device(problem):
    _, params, grads, _ = problem
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = run_one_device(OPTIMIZERS[name](), params, grads)
        return cache[name]

    return get


def _spec_tree(tree):
    return jax.tree.map(lambda a: a.sharding.spec, tree)


def _kernel_specs(p_specs):
    return {name: layer["kernel"] for name, layer in p_specs.items()}


def _check_state_layout(name, state, o_specs, p_specs):
    """The state's leaves carry the planned specs; moments follow the params' specs and
    Shampoo's/SOAP's statistics are replicated."""
    assert _spec_tree(state) == o_specs
    if name == "muon":
        muon_mu = o_specs.inner_states["muon"].inner_state[0].mu
        adam = o_specs.inner_states["adam"].inner_state[0]
        for layer, spec in p_specs.items():
            assert muon_mu[layer]["kernel"] == spec["kernel"]  # momentum follows the param
            assert adam.mu[layer]["bias"] == adam.nu[layer]["bias"] == spec["bias"]
        return
    inner = o_specs[0]
    moments = ("mu", "nu") if name.startswith("shampoo") else ("exp_avg", "exp_avg_sq")
    for field in moments:
        assert getattr(inner, field) == p_specs
    assert inner.count == P()
    statistics = [s for s in jax.tree.leaves(inner.preconditioners) if s is not None]
    assert statistics and set(statistics) == {P()}  # (…, m, m) statistics: replicated


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_sharded_updates_match_one_device(problem, one_device, name, layout):
    abstract, params, grads, _ = problem
    tx = OPTIMIZERS[name]()
    p, s, p_specs, o_specs = run_sharded(tx, abstract, params, grads, layout)

    split = {k for k, spec in _kernel_specs(p_specs).items() if any(e is not None for e in spec)}
    assert split == SPLIT_KERNELS[layout]  # the kernels really are sharded
    for layer in SPLIT_KERNELS[layout]:
        assert p[layer]["kernel"].sharding.spec == p_specs[layer]["kernel"] != P()
    assert _spec_tree(p) == p_specs
    _check_state_layout(name, s, o_specs, p_specs)

    one_p, one_s = one_device(name)
    p, s = jax.device_get((p, s))
    disp_tol, state_tol = TOL[name]
    disp, state = gaps(p, one_p, params), gaps(s, one_s)
    assert max(disp.values()) <= disp_tol, disp
    assert max(state.values()) <= state_tol, state
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(one_p), strict=True):
        np.testing.assert_allclose(a, b, rtol=PARAM_RTOL, atol=PARAM_ATOL)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves((p, s)))


def test_soap_default_runs_sharded(problem):
    """SOAP with its defaults (both sides of every kernel rotated) compiles and runs under
    fsdp with the planned layout; its values are not compared (see the module docstring)."""
    abstract, params, grads, _ = problem
    tx = optlab.soap(1e-2, precondition_frequency=2)
    p, s, p_specs, o_specs = run_sharded(tx, abstract, params, grads, "fsdp8")
    _check_state_layout("soap", s, o_specs, p_specs)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(jax.device_get((p, s))))
    moved = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - b))), p, params)
    assert min(jax.tree.leaves(moved)) > 0


def _sensitivity(name):
    """What one float32 ulp of every gradient does to the 5 updates on one device."""
    _, params, grads, noise = _problem()
    perturbed = [jax.tree.map(lambda g, n: g * (1 + 2.0**-23 * n), g, noise) for g in grads]
    p1, s1 = run_one_device(OPTIMIZERS[name](), params, grads)
    p2, s2 = run_one_device(OPTIMIZERS[name](), params, perturbed)
    return max(gaps(p2, p1, params).values()), max(gaps(s2, s1).values())


@pytest.mark.slow
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_tolerance_is_of_the_order_of_one_ulp(name):
    """The asserted tolerances are no tighter than the 1-ulp sensitivity allows and not
    far above it: a last-bit change of the gradients moves one device's result by this
    much."""
    disp, state = _sensitivity(name)
    disp_tol, state_tol = TOL[name]
    assert disp <= 10 * disp_tol and state <= 10 * state_tol
    assert disp_tol <= max(1e-4, 30 * disp) and state_tol <= max(1e-5, 30 * state)


@pytest.mark.slow  # a subprocess with a 16-thread intra-op pool
def test_blocked_shampoo_realistic_block_size_in_a_subprocess():
    """block_size=48 (padded 48 × 48 blocks, batched eigh on the LAPACK thread pool) under
    every layout, in a child with NPROC=16 so that the pool outnumbers the 8 devices."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, NPROC="16", OPENBLAS_NUM_THREADS="1")
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    proc = subprocess.run(
        [sys.executable, "-m", "tests.parallel.test_matrix_optimizers_sharded", "shampoo_blocks48"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    disp_tol, state_tol = TOL["shampoo_blocks48"]
    for layout, gap in measured.items():
        assert gap["displacement"] <= disp_tol and gap["state"] <= state_tol, (layout, gap)
        assert gap["params_abs"] <= PARAM_ATOL + PARAM_RTOL * 4.0, (layout, gap)


if __name__ == "__main__":  # python -m tests.parallel.test_matrix_optimizers_sharded NAME
    with one_blas_thread():
        print(json.dumps({layout: compare(sys.argv[1], layout) for layout in LAYOUTS}))
