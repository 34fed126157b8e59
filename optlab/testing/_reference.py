"""Roll an optimizer against an independent NumPy reference, step by step."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import optax

RefStep = Callable[[Any, Any, Any], tuple[Any, Any]]

DEFAULT_SHAPES: Mapping[str, Any] = {"dense": {"kernel": (3, 4), "bias": (4,)}, "scale": ()}


@dataclasses.dataclass(frozen=True)
class Difference:
    """One coordinate of one step: where the sides differ most, or first disagree."""

    step: int  # 1-based
    leaf: str  # the leaf's key path, e.g. "['dense']['kernel']"
    index: tuple[int, ...]
    got: float  # the transformation's value
    reference: float  # the NumPy formula's value
    diff: float  # |got − reference|
    bound: float  # atol + rtol·|reference|

    def __str__(self) -> str:
        return (
            f"step {self.step}, leaf {self.leaf}, index {self.index}: got {self.got!r}, "
            f"reference {self.reference!r}, |diff| = {self.diff:.3e}"
        )


@dataclasses.dataclass(repr=False)
class RolloutReport:
    """What a rollout saw: per-step parameters of both sides and the largest error.

    ``repr``/``str`` is one line: the verdict, the first divergence (step, leaf, index,
    both values) or the largest difference, the tolerances and the number of steps; the
    trajectories (``jax_params``, ``ref_params``: one pytree a step) are not printed. A
    diverging rollout raises ``AssertionError``; its report is the error's ``report``.
    """

    steps: int
    max_abs_error: float
    jax_params: list[Any]
    ref_params: list[Any]
    rtol: float | None = None
    atol: float | None = None
    divergence: Difference | None = None  # the first coordinate outside the tolerance
    worst: Difference | None = None  # where |got − reference| was largest (up to the divergence)

    @property
    def passed(self) -> bool:
        return self.divergence is None

    def __repr__(self) -> str:
        tolerances = f"atol={self.atol}, rtol={self.rtol}"
        if self.divergence is not None:
            d = self.divergence
            return (
                f"RolloutReport(DIVERGES from the reference at {d} > atol + rtol·|ref| = "
                f"{d.bound:.3e}; {tolerances}; {len(self.jax_params)} of {self.steps} steps run)"
            )
        where = " (exact)" if self.max_abs_error == 0 else ""
        if self.worst is not None and self.max_abs_error > 0:
            w = self.worst
            where = f" at step {w.step}, leaf {w.leaf}, index {w.index}"
        return (
            f"RolloutReport(matches the reference: {self.steps} steps, max |diff| = "
            f"{self.max_abs_error:.3e}{where}; {tolerances})"
        )

    __str__ = __repr__


def random_tree(shapes: Mapping[str, Any], rng: np.random.Generator, scale: float = 1.0) -> Any:
    """A pytree (nested dicts) of float64 normals with the given leaf shapes."""

    def is_shape(x):
        return isinstance(x, tuple)

    return jax.tree.map(
        lambda shape: scale * rng.standard_normal(shape), dict(shapes), is_leaf=is_shape
    )


def _leaf_paths(tree: Any) -> list[str]:
    return [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(tree)]


def _compare(
    step: int, got: Any, want: Any, rtol: float, atol: float
) -> tuple[Difference | None, ...]:
    """(the largest difference, the first divergence or None) of one step's parameters."""
    worst = None
    for path, g, w in zip(
        _leaf_paths(want), jax.tree.leaves(got), jax.tree.leaves(want), strict=True
    ):
        g, w = np.asarray(g), np.asarray(w)
        if g.shape != w.shape:
            raise AssertionError(f"step {step}, leaf {path}: shape {g.shape} != {w.shape}")
        err = np.abs(g - w)
        bound = atol + rtol * np.abs(w)

        def point(idx, path=path, g=g, w=w, err=err, bound=bound):
            idx = tuple(int(i) for i in idx)
            values = g[idx].item(), w[idx].item(), float(err[idx]), float(bound[idx])
            return Difference(step, path, idx, *values)

        if not np.all(err <= bound) or not np.all(np.isfinite(g) == np.isfinite(w)):
            idx = np.unravel_index(int(np.argmax(err - bound)), err.shape) if err.ndim else ()
            return worst, point(idx)
        if err.size and (worst is None or float(err.max()) > worst.diff):
            worst = point(np.unravel_index(int(np.argmax(err)), err.shape) if err.ndim else ())
    return worst, None


def assert_matches_reference(
    tx: optax.GradientTransformation,
    ref_step: RefStep,
    *,
    ref_init: Callable[[Any], Any] = lambda params: None,
    num_steps: int = 10,
    shapes: Mapping[str, Any] = DEFAULT_SHAPES,
    grad_fn: Callable[[Any, int], Any] | None = None,
    per_leaf: bool = True,
    seed: int = 0,
    grad_scale: float = 1.0,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    update_kwargs: Mapping[str, Any] | None = None,
) -> RolloutReport:
    """Checks ``tx`` against a NumPy reference of the formula, step after step.

    Random float64 parameters (a pytree with leaf ``shapes``) receive ``num_steps``
    gradients, either a random sequence (``seed``, scaled by ``grad_scale``) or
    ``grad_fn(params, t)`` evaluated at each side's own current parameters (for methods
    whose iterates feed back into the gradient). ``tx`` runs jitted with 64-bit floats
    on; the reference runs in NumPy float64. After every step the parameters must agree
    within ``atol + rtol·|reference|``; the first disagreement raises an
    ``AssertionError`` naming the step (1-based), the leaf path, the index and the sizes.

    Args:
      tx: the transformation under test.
      ref_step: ``ref_step(params, grad, state) -> (params, state)``, the formula in
        NumPy. With ``per_leaf=True`` (default) it is called on each leaf separately,
        with that leaf's own state, which suits elementwise rules.
      ref_init: ``ref_init(params) -> state`` (per leaf if ``per_leaf``); default None.
      num_steps: how many updates to compare.
      shapes: the parameter pytree, as nested dicts of shape tuples.
      grad_fn: optional ``grad_fn(params, t) -> grads`` in NumPy, t from 1.
      per_leaf: whether ``ref_step``/``ref_init`` see one leaf or the whole tree.
      seed: seeds parameters and gradients.
      grad_scale: multiplies the random gradients (probe huge or tiny magnitudes).
      rtol, atol: the tolerance, stated by the caller.
      update_kwargs: extra keyword arguments for ``tx.update``.

    Returns:
      A ``RolloutReport`` with both trajectories and the largest absolute error (printing
      it shows one line: verdict, largest difference, tolerances, steps).

    Raises:
      AssertionError: at the first disagreement; its ``report`` attribute is the
        ``RolloutReport`` so far, with the divergence.
    """
    rng = np.random.default_rng(seed)
    params0 = random_tree(shapes, rng)
    grads_seq = [random_tree(shapes, rng, grad_scale) for _ in range(num_steps)]
    kwargs = dict(update_kwargs or {})

    def grads_at(params, t):
        if grad_fn is None:
            return grads_seq[t - 1]
        return jax.tree.map(np.asarray, grad_fn(params, t))

    if per_leaf:
        ref_state = jax.tree.map(ref_init, params0)
    else:
        ref_state = ref_init(params0)

    def reference(params, grads, state):
        if not per_leaf:
            return ref_step(params, grads, state)
        leaves_p, treedef = jax.tree.flatten(params)
        leaves_g = treedef.flatten_up_to(grads)
        leaves_s = treedef.flatten_up_to(state)
        out = [ref_step(p, g, s) for p, g, s in zip(leaves_p, leaves_g, leaves_s, strict=True)]
        return (
            treedef.unflatten([o[0] for o in out]),
            treedef.unflatten([o[1] for o in out]),
        )

    with jax.enable_x64(True):
        update = jax.jit(lambda g, s, p: tx.update(g, s, p, **kwargs))
        params = jax.tree.map(jax.numpy.asarray, params0)
        state = tx.init(params)
        ref_params = params0
        worst, jax_traj, ref_traj = None, [], []
        for t in range(1, num_steps + 1):
            grads = grads_at(jax.tree.map(np.asarray, params), t)
            updates, state = update(jax.tree.map(jax.numpy.asarray, grads), state, params)
            params = optax.apply_updates(params, updates)
            ref_params, ref_state = reference(ref_params, grads_at(ref_params, t), ref_state)
            got = jax.tree.map(np.asarray, params)
            largest, divergence = _compare(t, got, ref_params, rtol, atol)
            if largest is not None and (worst is None or largest.diff > worst.diff):
                worst = largest
            jax_traj.append(got)
            ref_traj.append(ref_params)
            if divergence is not None:
                d = divergence
                error = AssertionError(
                    f"optimizer diverges from the reference at step {d.step}, leaf {d.leaf}, "
                    f"index {d.index}: got {d.got!r}, reference {d.reference!r}, "
                    f"|diff| = {d.diff:.3e} > atol + rtol·|ref| = {d.bound:.3e} "
                    f"(atol={atol}, rtol={rtol})"
                )
                error.report = RolloutReport(
                    num_steps, max(d.diff, worst.diff if worst else 0.0), jax_traj, ref_traj,
                    rtol, atol, divergence=d, worst=worst,
                )  # fmt: skip
                raise error
    return RolloutReport(
        num_steps, worst.diff if worst else 0.0, jax_traj, ref_traj, rtol, atol, worst=worst
    )
