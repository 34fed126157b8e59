"""SAM: sharpness-aware minimization (Foret et al. 2021, Algorithm 1), a wrapper."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from optlab import _validation
from optlab.optimizers._base import abs_sq, check_like


class SAMState(NamedTuple):
    """optax.contrib's ``SAMState``. ``steps_since_sync``: calls since the last descent
    (always 0 in the one-call form); ``opt_state``: the base optimizer's; ``adv_state``:
    the ascent optimizer's; ``cache``: θ before the ascent (optax's alternating form only,
    else None)."""

    steps_since_sync: jax.Array
    opt_state: optax.OptState
    adv_state: optax.OptState
    cache: optax.Params | None


def _accumulation_dtype(tree: Any) -> Any:
    reals = [jnp.zeros((), x.dtype).real.dtype for x in jax.tree.leaves(tree)]
    return jnp.result_type(jnp.float32, *reals)


def ascent_direction(grads: Any) -> Any:
    """g/‖g‖₂ over the whole tree (0 where g = 0); the norm is taken of g/max|g|, so it
    neither overflows nor underflows."""
    leaves = jax.tree.leaves(grads)
    if not leaves:
        return grads
    acc = _accumulation_dtype(grads)
    scale = jnp.max(jnp.stack([jnp.max(jnp.abs(g)).astype(acc) for g in leaves]))
    nonzero = scale > 0
    safe_scale = jnp.where(nonzero, scale, 1)
    sq = sum(jnp.sum(abs_sq(g.astype(jnp.result_type(g, acc)) / safe_scale)) for g in leaves)
    norm = jnp.where(nonzero, jnp.sqrt(sq), 1)

    def leaf(g):
        unit = g.astype(jnp.result_type(g, acc)) / safe_scale / norm
        return jnp.where(nonzero, unit, 0).astype(g.dtype)

    return jax.tree.map(leaf, grads)


def sam_ascent(rho: float) -> optax.GradientTransformationExtraArgs:
    """The paper's ascent as an adversarial optimizer: updates −ρ·g/‖g‖₂ (0 at g = 0).

    SAM negates the adversarial optimizer's updates, so θ moves to θ + ε̂ with
    ε̂ = ρ·g/‖g‖₂ (eq. 2, p = 2): ``optax.chain(optax.contrib.normalize(), optax.sgd(rho))``
    but defined at g = 0 (where ``normalize`` divides 0 by 0).
    """

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        unit = ascent_direction(updates)
        return jax.tree.map(lambda u: -(jnp.asarray(rho).astype(u.dtype) * u), unit), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _loop(n: Any, body: Callable[[Any, Any], Any], carry: Any) -> Any:
    """``for i in range(n): carry = body(i, carry)``, also for a traced n (inject_hyperparams)."""
    if _validation.is_concrete_number(n):
        for i in range(int(n)):
            carry = body(i, carry)
        return carry
    return jax.lax.fori_loop(0, n, body, carry)


def _pick(cond: jax.Array, if_true: Any, if_false: Any) -> Any:
    # optax.contrib.sam's pick_one: cond·a + (1 − cond)·b, term by term.
    return jax.tree.map(lambda a, b: cond * a + (1 - cond) * b, if_true, if_false)


def sam(
    optimizer: optax.GradientTransformation,
    adv_optimizer: optax.GradientTransformation | None = None,
    sync_period: int = 2,
    reset_state: bool = True,
    opaque_mode: bool = False,
    batch_axis_name: str | None = None,
    *,
    rho: float = 0.05,
    like: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""SAM: Foret et al.'s Algorithm 1 around a base ``optimizer``, in one ``update``.

    ::

        g ← ∇L_B(θ)                          (the caller's grads)
        ε̂ ← ρ·g / ‖g‖₂                       (eq. 2 with p = 2; the global norm)
        g_SAM ← ∇L_B(θ + ε̂)                   (eq. 3)
        θ ← θ + optimizer.update(g_SAM, ·, θ)  (the paper: θ ← θ − η·g_SAM)

    **The loss function is an argument of update**: ``update(grads, state, params, *,
    obj_fn)``, where ``obj_fn(params) -> scalar loss`` is this step's batch loss (optax's
    name; optlab's trainer passes it) and ``grads = ∇obj_fn(params)`` as usual; the ascent
    gradient is ``jax.grad(obj_fn)(θ + ε̂)`` (conjugated for complex θ, optax's convention
    for updates). One call makes the whole SAM step, so nothing outside sees θ + ε̂. The
    extra arguments, ``obj_fn`` included, are handed on to ``optimizer`` (which may itself
    need them, e.g. Sophia); its ``params`` are θ.

    Symbols → arguments: ρ = ``rho`` (the paper's default ρ = 0.05); the step size is the
    base ``optimizer``'s (SAM has none of its own). optax's arguments keep their names and
    order: ``adv_optimizer`` replaces the ascent (its updates are negated, so
    ``optax.chain(optax.contrib.normalize(), optax.sgd(rho))`` is eq. 2 again; then
    ``rho`` is unused); ``sync_period − 1`` ascent steps precede each descent (2: the
    paper's one); ``reset_state`` re-initializes the ascent optimizer's state after each
    descent; ``batch_axis_name`` takes ``jax.lax.pmean`` of the ascent gradients over that
    axis (under pmap). ``opaque_mode`` only matters for ``like="optax"``: this form is
    opaque by construction. ε̂ = 0 where g = 0 (the paper's formula is 0/0 there).

    Versus optax: ``like="optax"`` is optax.contrib.sam term by term. With
    ``opaque_mode=False`` (its default) successive calls *alternate*: ``sync_period − 1``
    calls return the ascent updates (θ ← θ + ε̂, the caller evaluating the next gradient
    at θ + ε̂), then one call returns θ_cache − θ + optimizer.update(g, ·, θ_cache), the
    descent from the cached θ with the gradient the caller computed at θ + ε̂. The base
    optimizer advances once per ``sync_period`` calls, so a schedule in it counts descents.
    With ``opaque_mode=True`` it needs ``grad_fn(params, i) -> grads`` (``obj_fn`` is
    accepted instead, as ``jax.grad(obj_fn)``) and makes the whole step in one call, as
    here. optax has no default ``adv_optimizer``: None means the paper's ascent
    (``sam_ascent(rho)`` = normalize + sgd(ρ), but 0 at g = 0 where optax's normalize
    gives NaN). torch.optim has no SAM: ``like="torch"`` raises.

    Args:
      optimizer: the base (outer) optimizer, e.g. ``optlab.sgd(0.1)``.
      adv_optimizer: the ascent optimizer, or None for ε̂ = ρ·g/‖g‖₂.
      sync_period: ≥ 1; 1 + the number of ascent steps per descent.
      reset_state: whether the ascent state restarts after each descent.
      opaque_mode: optax's one-call mode (``like="optax"`` only; this form always is).
      batch_axis_name: the pmap axis to average ascent gradients over, or None.
      rho: ρ ≥ 0, the radius of the default ascent.
      like: None (the paper, one call) or ``"optax"``.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; ``update`` needs ``params`` and
      ``obj_fn`` (``like="optax"``: only in opaque mode, there ``grad_fn`` or ``obj_fn``).

    Example:
      >>> import jax.numpy as jnp, numpy as np, optax, optlab
      >>> loss = lambda p: 0.5 * jnp.sum(p**2)
      >>> tx = optlab.optimizers.sam(optax.sgd(0.1), rho=0.5)
      >>> p = jnp.array([3.0, 4.0])  # g = (3, 4): ε̂ = 0.5·g/5, ∇L(θ + ε̂) = (3.3, 4.4)
      >>> u, _ = tx.update(p, tx.init(p), p, obj_fn=loss)
      >>> print(np.round(np.asarray(u), 6))
      [-0.33 -0.44]

    References:
      Foret, Kleiner, Mobahi & Neyshabur, "Sharpness-Aware Minimization for Efficiently
      Improving Generalization", ICLR 2021.
    """
    check_like("sam", like, ("optax",))
    _validation.check_non_negative("sam", "rho", rho, "Foret et al. use rho=0.05.")
    if _validation.is_concrete_number(sync_period) and not (
        sync_period >= 1 and float(sync_period).is_integer()
    ):
        _validation.fail(
            "sam", "sync_period", sync_period, "an integer >= 1", "2 is one ascent per descent."
        )
    adv = sam_ascent(rho) if adv_optimizer is None else adv_optimizer
    adv = optax.with_extra_args_support(adv)
    inner = optax.with_extra_args_support(optimizer)
    keep_cache = like == "optax" and not opaque_mode

    def init_fn(params):
        return SAMState(
            steps_since_sync=jnp.zeros([], jnp.int32),
            opt_state=inner.init(params),
            adv_state=adv.init(params),
            cache=params if keep_cache else None,
        )

    def one_call(updates, state, params, grad_fn, inner_kwargs):
        """The ascent steps, then the descent from θ (the paper; optax's opaque mode)."""

        def ascend(i, carry):
            adv_params, grads, adv_state = carry
            step, adv_state = adv.update(grads, adv_state, adv_params)
            adv_params = optax.apply_updates(adv_params, jax.tree.map(lambda x: -x, step))
            grads = grad_fn(adv_params, i)
            if batch_axis_name is not None:
                grads = jax.lax.pmean(grads, axis_name=batch_axis_name)
            return adv_params, grads, adv_state

        _, grads, adv_state = _loop(sync_period - 1, ascend, (params, updates, state.adv_state))
        if reset_state:
            adv_state = adv.init(params)
        updates, opt_state = inner.update(grads, state.opt_state, params, **inner_kwargs)
        return updates, SAMState(jnp.zeros([], jnp.int32), opt_state, adv_state, None)

    def paper_update(updates, state, params=None, *, obj_fn=None, **extra_args):
        if obj_fn is None:
            raise ValueError(
                "sam: `update` needs `obj_fn`, a function params -> scalar loss of this "
                "step's batch, for the gradient at θ + ε̂: "
                "tx.update(grads, state, params, obj_fn=lambda p: loss(p, batch)). "
                "(optax's alternating form, which takes no loss, is like='optax'.)"
            )
        if params is None:
            raise ValueError("sam: `update` needs `params` (θ, where the ascent starts).")
        grad = jax.grad(obj_fn)

        def grad_fn(p, i):
            del i
            return jax.tree.map(jnp.conj, grad(p))

        return one_call(updates, state, params, grad_fn, {"obj_fn": obj_fn, **extra_args})

    def optax_opaque_update(updates, state, params=None, *, grad_fn=None, **extra_args):
        obj_fn = extra_args.get("obj_fn")
        if grad_fn is None and obj_fn is not None:

            def grad_fn(p, i):
                del i
                return jax.grad(obj_fn)(p)

        if grad_fn is None:
            raise ValueError(
                "sam: grad_fn (or obj_fn) must be provided when opaque_mode=True: "
                "tx.update(grads, state, params, grad_fn=lambda p, i: jax.grad(loss)(p))."
            )
        return one_call(updates, state, params, grad_fn, {})

    def optax_transparent_update(updates, state, params=None, **extra_args):
        # optax.contrib.sam with opaque_mode=False, step for step.
        del extra_args
        first_step = state.steps_since_sync == 0
        last_step = state.steps_since_sync == sync_period - 1
        adv_updates, adv_state = adv.update(updates, state.adv_state, params)
        adv_updates = jax.tree.map(lambda x: -x, adv_updates)
        opt_updates, opt_state = inner.update(updates, state.opt_state, state.cache)
        opt_updates = jax.tree.map(lambda c, p, u: c - p + u, state.cache, params, opt_updates)
        cache = _pick(first_step, params, state.cache)
        updates = _pick(last_step, opt_updates, adv_updates)
        if reset_state:
            adv_state = _pick(last_step, adv.init(params), adv_state)
        else:
            adv_state = _pick(last_step, state.adv_state, adv_state)
        opt_state = _pick(last_step, opt_state, state.opt_state)
        steps_since_sync = (state.steps_since_sync + 1) % sync_period
        return updates, SAMState(steps_since_sync, opt_state, adv_state, cache)

    if like != "optax":
        update_fn = paper_update
    elif opaque_mode:
        update_fn = optax_opaque_update
    else:
        update_fn = optax_transparent_update
    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
