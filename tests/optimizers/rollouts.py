"""Rollouts of an optimizer, of optax and of torch.optim on the same gradients (float64).

Parity tests compare the resulting parameter trajectories step by step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

SHAPES = {"w": (3, 4), "b": (4,)}


def problem(num_steps: int = 12, seed: int = 0, scale: float = 1.0):
    """Random float64 parameters and a random gradient sequence."""
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = [
        {k: scale * rng.standard_normal(s) for k, s in SHAPES.items()} for _ in range(num_steps)
    ]
    return params, grads


def jax_rollout(tx: optax.GradientTransformation, params, grads) -> list[dict]:
    """Parameters after each update of ``tx`` (jitted, 64-bit floats)."""
    with jax.enable_x64(True):
        update = jax.jit(tx.update)
        p = {k: jnp.asarray(v) for k, v in params.items()}
        state = tx.init(p)
        out = []
        for g in grads:
            updates, state = update({k: jnp.asarray(v) for k, v in g.items()}, state, p)
            p = optax.apply_updates(p, updates)
            out.append({k: np.asarray(v) for k, v in p.items()})
    return out


def torch_rollout(make_optimizer, params, grads) -> list[dict]:
    """Parameters after each ``torch.optim`` step; ``make_optimizer(list_of_tensors)``."""
    import torch

    # float64 by default, so that torch's scalar state (NAdam's step and μ-product, kept
    # in the default dtype) is float64 too; restored afterwards.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        opt = make_optimizer(list(tensors.values()))
        out = []
        for g in grads:
            for k, t in tensors.items():
                t.grad = torch.tensor(g[k])
            opt.step()
            out.append({k: t.detach().numpy().copy() for k, t in tensors.items()})
    finally:
        torch.set_default_dtype(previous)
    return out


def assert_same_trajectory(got: list[dict], want: list[dict], *, rtol: float, atol: float) -> None:
    """Every step, every leaf within ``atol + rtol·|want|``; names the first step that is not."""
    assert len(got) == len(want)
    for step, (g, w) in enumerate(zip(got, want, strict=True), start=1):
        for k in w:
            np.testing.assert_allclose(
                g[k], w[k], rtol=rtol, atol=atol, err_msg=f"step {step}, leaf {k!r}"
            )
