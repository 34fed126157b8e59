"""The contract every optlab optimizer keeps, as reusable checks.

Point it at your own optimizer::

    from optlab.testing import OptimizerSpec, contract_suite
    test_contract = contract_suite([OptimizerSpec("mine", my_optimizer, learning_rate=0.1)])

pytest then collects one test per (optimizer, check). Each ``check_*`` function can also
be called directly; it raises ``AssertionError`` with the numbers when the contract breaks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from optlab.testing import _problems


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """How to build one optimizer for the contract checks.

    Attributes:
      name: shown in test ids.
      make: ``make(learning_rate) -> GradientTransformation``; ``learning_rate`` must be
        accepted by keyword so that ``optax.inject_hyperparams`` can feed it.
      learning_rate: the rate for the convergence checks.
      rosenbrock_learning_rate: a different rate for Rosenbrock (defaults to the above).
      steps: updates allowed to converge (optax's suite uses 10,000).
      complex_ok: whether the formula is defined for complex parameters.
      schedule_equivalent: whether a rate injected through ``optax.inject_hyperparams``
        acts exactly like the same rates given as a schedule. False for AdamW's paper
        scaling, where a schedule also scales the decay by η_t = α_t/α_0 and an injected
        rate (a constant to the inner optimizer) does not.
      moves_at_rest: whether the form moves θ with a zero gradient from a zero state
        (decoupled weight decay on by default: AdamW, Lion; optax's Yogi starts m, v at 1e-6).
      finite_at_zero: False where the form's formula is 0/0 for an all-zero gradient
        (optax's Prodigy: its d estimate divides by ‖s‖₁ = 0); the property tests then
        assert that documented NaN instead of finiteness.
    """

    name: str
    make: Callable[..., optax.GradientTransformation]
    learning_rate: float
    rosenbrock_learning_rate: float | None = None
    steps: int = 10_000
    complex_ok: bool = True
    schedule_equivalent: bool = True
    moves_at_rest: bool = False
    finite_at_zero: bool = True

    def __repr__(self) -> str:
        return self.name


def _params() -> dict[str, jax.Array]:
    rng = np.random.default_rng(0)
    return {
        "w": jnp.asarray(rng.standard_normal((3, 2)), jnp.float32),
        "b": jnp.asarray(rng.standard_normal((2,)), jnp.float32),
    }


def _grads(seed: int) -> dict[str, jax.Array]:
    rng = np.random.default_rng(seed)
    return {
        "w": jnp.asarray(rng.standard_normal((3, 2)), jnp.float32),
        "b": jnp.asarray(rng.standard_normal((2,)), jnp.float32),
    }


def _counting_jit(fn: Callable) -> tuple[Callable, list[int]]:
    traces = [0]

    def traced(*args):
        traces[0] += 1
        return fn(*args)

    return jax.jit(traced), traces


def _minimize(tx: optax.GradientTransformation, problem: Callable, dtype: Any, steps: int):
    start, target, objective = problem(dtype)

    @jax.jit
    def run(params):
        def body(_, carry):
            p, s = carry
            updates, s = tx.update(_problems.descent_gradient(objective, p), s, p)
            return optax.apply_updates(p, updates), s

        return jax.lax.fori_loop(0, steps, body, (params, tx.init(params)))[0]

    return run(start), target


def _check_converges(spec: OptimizerSpec, problem: Callable, lr: float, dtype: Any) -> None:
    if jnp.iscomplexobj(jnp.zeros((), dtype)) and not spec.complex_ok:
        return
    final, target = _minimize(spec.make(learning_rate=lr), problem, dtype, spec.steps)
    assert final.dtype == target.dtype, f"{spec.name}: params became {final.dtype}"
    err = float(jnp.max(jnp.abs(final - target)))
    assert err < 3e-2, (
        f"{spec.name} did not reach the minimum {target} of {problem.__name__} "
        f"({jnp.dtype(dtype).name}) in {spec.steps} steps at learning rate {lr}: "
        f"ended at {final}, max error {err:.3g} (tolerance 3e-2)"
    )


def check_parabola(spec: OptimizerSpec) -> None:
    """Converges to the minimum of a parabola, real and (where defined) complex."""
    for dtype in (jnp.float32, jnp.complex64):
        _check_converges(spec, _problems.parabola, spec.learning_rate, dtype)


def check_rosenbrock(spec: OptimizerSpec) -> None:
    """Converges to (1, 1) on Rosenbrock from (0, 0), real and (where defined) complex."""
    lr = spec.rosenbrock_learning_rate or spec.learning_rate
    for dtype in (jnp.float32, jnp.complex64):
        _check_converges(spec, _problems.rosenbrock, lr, dtype)


def check_no_recompile(spec: OptimizerSpec) -> None:
    """A second ``update`` with the state of the first reuses the compiled program."""
    tx = spec.make(learning_rate=spec.learning_rate)
    params = _params()
    update, traces = _counting_jit(tx.update)
    state = tx.init(params)
    for seed in range(3):
        _, state = update(_grads(seed), state, params)
    assert traces[0] == 1, f"{spec.name}: update traced {traces[0]} times for 3 calls"


def check_dtypes(spec: OptimizerSpec) -> None:
    """Updates and state keep the gradients' dtype (float32, bfloat16, complex64)."""
    dtypes = [jnp.float32, jnp.bfloat16] + ([jnp.complex64] if spec.complex_ok else [])
    for dtype in dtypes:
        tx = spec.make(learning_rate=spec.learning_rate)
        params = jax.tree.map(lambda x, dtype=dtype: x.astype(dtype), _params())
        state = tx.init(params)
        first_state = state
        for seed in range(2):
            grads = jax.tree.map(lambda x, dtype=dtype: x.astype(dtype), _grads(seed))
            updates, state = jax.jit(tx.update)(grads, state, params)
            for leaf in jax.tree.leaves(updates):
                assert leaf.dtype == dtype, f"{spec.name}: {dtype.__name__} update is {leaf.dtype}"
                assert bool(jnp.all(jnp.isfinite(leaf))), f"{spec.name}: non-finite {dtype}"
        chex.assert_trees_all_equal_dtypes(first_state, state)


def check_vmap(spec: OptimizerSpec) -> None:
    """``jax.vmap`` over a batch of problems equals solving each one on its own."""
    tx = spec.make(learning_rate=spec.learning_rate)
    batch_params = jax.tree.map(lambda *x: jnp.stack(x), *[_grads(10 + i) for i in range(3)])
    batch_grads = jax.tree.map(lambda *x: jnp.stack(x), *[_grads(20 + i) for i in range(3)])

    def two_steps(params, grads):
        state = tx.init(params)
        for _ in range(2):
            updates, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, updates)
        return params

    batched = jax.jit(jax.vmap(two_steps))(batch_params, batch_grads)
    for i in range(3):
        one = jax.jit(two_steps)(
            jax.tree.map(lambda x, i=i: x[i], batch_params),
            jax.tree.map(lambda x, i=i: x[i], batch_grads),
        )
        chex.assert_trees_all_close(
            jax.tree.map(lambda x, i=i: x[i], batched), one, rtol=1e-6, atol=1e-6
        )


def check_inject_hyperparams(spec: OptimizerSpec) -> None:
    """The learning rate is read from and changed in the state without recompiling, and
    the result equals the same optimizer driven by the equivalent schedule."""
    lr = spec.learning_rate
    tx = optax.inject_hyperparams(spec.make)(learning_rate=lr)
    params = _params()
    state = tx.init(params)
    np.testing.assert_allclose(state.hyperparams["learning_rate"], lr, rtol=1e-6)
    update, traces = _counting_jit(tx.update)
    updates1, state = update(_grads(0), state, params)
    state.hyperparams["learning_rate"] = jnp.asarray(lr / 2, jnp.float32)
    updates2, state = update(_grads(1), state, params)
    assert traces[0] == 1, f"{spec.name}: changing the injected rate retraced update"

    if spec.schedule_equivalent:
        reference = spec.make(learning_rate=lambda count: jnp.where(count == 0, lr, lr / 2))
    else:
        reference = spec.make(learning_rate=lr)
    ref_state = reference.init(params)
    want1, ref_state = reference.update(_grads(0), ref_state, params)
    want2, _ = reference.update(_grads(1), ref_state, params)
    chex.assert_trees_all_close(updates1, want1, rtol=1e-5, atol=1e-7)
    if spec.schedule_equivalent:
        chex.assert_trees_all_close(updates2, want2, rtol=1e-5, atol=1e-7)
    else:  # at least the new rate took effect
        moved = max(
            float(jnp.max(jnp.abs(a - b)))
            for a, b in zip(jax.tree.leaves(updates2), jax.tree.leaves(want2), strict=True)
        )
        assert moved > 1e-6, f"{spec.name}: the injected learning rate had no effect"


def check_multisteps(spec: OptimizerSpec) -> None:
    """``optax.MultiSteps`` (gradient accumulation) applies the update of the mean gradient."""
    tx = optax.MultiSteps(spec.make(learning_rate=spec.learning_rate), every_k_schedule=2)
    params = _params()
    state = tx.init(params)
    first, state = jax.jit(tx.update)(_grads(0), state, params)
    second, _ = jax.jit(tx.update)(_grads(1), state, params)
    chex.assert_trees_all_equal(first, jax.tree.map(jnp.zeros_like, params))
    inner = spec.make(learning_rate=spec.learning_rate)
    mean_grad = jax.tree.map(lambda a, b: (a + b) / 2, _grads(0), _grads(1))
    want, _ = inner.update(mean_grad, inner.init(params), params)
    chex.assert_trees_all_close(second, want, rtol=1e-5, atol=1e-7)


def check_masked(spec: OptimizerSpec) -> None:
    """``optax.masked`` applies the optimizer to selected leaves only."""
    tx = optax.masked(spec.make(learning_rate=spec.learning_rate), {"w": True, "b": False})
    params, grads = _params(), _grads(0)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    inner = spec.make(learning_rate=spec.learning_rate)
    # Both compiled: eager and jit round differently, which Newton–Schulz (Muon) amplifies.
    only_w = {"w": params["w"]}
    want, _ = jax.jit(inner.update)({"w": grads["w"]}, inner.init(only_w), only_w)
    chex.assert_trees_all_close(updates["w"], want["w"], rtol=1e-6)
    chex.assert_trees_all_equal(updates["b"], grads["b"])


def check_nnx_optimizer(spec: OptimizerSpec) -> None:
    """``flax.nnx.Optimizer(model, tx, wrt=nnx.Param)`` trains a linear model."""
    from flax import nnx

    model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, spec.make(learning_rate=spec.learning_rate), wrt=nnx.Param)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((16, 3)), jnp.float32)
    y = x @ jnp.array([[1.0], [-2.0], [0.5]])

    def loss_fn(model):
        return jnp.mean((model(x) - y) ** 2)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    first = float(step(model, optimizer))
    for _ in range(30):
        last = float(step(model, optimizer))
    assert last < first, f"{spec.name}: nnx.Optimizer loss went {first:.4g} -> {last:.4g}"


def check_abstract_init(spec: OptimizerSpec) -> None:
    """``init`` works on ``jax.ShapeDtypeStruct`` (no values needed), matching a real init."""
    tx = spec.make(learning_rate=spec.learning_rate)
    params = _params()
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    got = jax.eval_shape(tx.init, abstract)
    want = jax.eval_shape(tx.init, params)
    chex.assert_trees_all_equal_structs(got, want)
    chex.assert_trees_all_equal_shapes_and_dtypes(got, want)
    mapped = optax.tree_map_params(tx, lambda p: p, tx.init(params))
    chex.assert_trees_all_equal_structs(mapped, tx.init(params))


def check_extra_args(spec: OptimizerSpec) -> None:
    """``update`` tolerates extra keyword arguments (``value=``, ``grad=`` ...), jitted."""
    tx = spec.make(learning_rate=spec.learning_rate)
    params = _params()
    with_extra = jax.jit(lambda g, s, p: tx.update(g, s, p, value=jnp.ones(()), grad=g))
    try:
        got, _ = with_extra(_grads(0), tx.init(params), params)
    except TypeError as err:
        raise AssertionError(
            f"{spec.name}: update() takes no extra keyword arguments ({err}); the trainer "
            "passes value=loss. Return optax.with_extra_args_support(tx), or build it from "
            "transformations that accept **extra_args (optax.GradientTransformationExtraArgs)"
        ) from None
    want, _ = jax.jit(tx.update)(_grads(0), tx.init(params), params)
    chex.assert_trees_all_close(got, want)


CONTRACT_CHECKS: dict[str, Callable[[OptimizerSpec], None]] = {
    "parabola": check_parabola,
    "rosenbrock": check_rosenbrock,
    "no_recompile": check_no_recompile,
    "dtypes": check_dtypes,
    "vmap": check_vmap,
    "inject_hyperparams": check_inject_hyperparams,
    "multisteps": check_multisteps,
    "masked": check_masked,
    "nnx_optimizer": check_nnx_optimizer,
    "abstract_init": check_abstract_init,
    "extra_args": check_extra_args,
}


def contract_suite(specs: Sequence[OptimizerSpec], checks: Sequence[str] | None = None):
    """A pytest test function parametrized over ``specs`` × contract checks.

    Assign it to a module-level name starting with ``test_`` in a test file.
    """
    import pytest

    names = list(checks or CONTRACT_CHECKS)
    unknown = sorted(set(names) - set(CONTRACT_CHECKS))
    if unknown:
        raise ValueError(f"unknown contract checks {unknown}; known: {sorted(CONTRACT_CHECKS)}")

    @pytest.mark.parametrize("check", names)
    @pytest.mark.parametrize("spec", list(specs), ids=[s.name for s in specs])
    def test_contract(spec: OptimizerSpec, check: str) -> None:
        CONTRACT_CHECKS[check](spec)

    return test_contract
