"""What AMSGrad, AdaMax and RAdam share (``optlab.optimizers._adam_variants``, ``_radam``): the
checks of the moments' hyper-parameters, the EMA, bias correction and the real view of complex
parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from optlab import _validation
from optlab.optimizers._base import (
    scalar_like,
)

_LIBRARIES = ("optax", "torch")


def _check_moments(owner: str, b1, b2, eps, eps_root=0.0) -> None:
    _validation.check_unit_interval(owner, "b1", b1, "The papers use b1=0.9.")
    _validation.check_unit_interval(owner, "b2", b2, "The papers use b2=0.999.")
    _validation.check_non_negative(owner, "eps", eps, "Use eps=1e-8.")
    _validation.check_non_negative(owner, "eps_root", eps_root, "Use 0 unless differentiating.")


def _ema(decay, old: jax.Array, new: jax.Array) -> jax.Array:
    """β·old + (1 − β)·new in ``old``'s dtype."""
    return scalar_like(decay, old) * old + scalar_like(1.0 - decay, old) * new.astype(old.dtype)


def _real_view(fn: Callable[..., tuple[jax.Array, ...]]) -> Callable[..., tuple[jax.Array, ...]]:
    """``fn`` (written for real arrays) on complex leaves as torch.optim runs it: on the real
    and the imaginary parts separately (``torch.view_as_real``), recombined."""

    def wrapped(*leaves):
        if not any(jnp.iscomplexobj(x) for x in leaves):
            return fn(*leaves)
        real = fn(*(jnp.real(x) for x in leaves))
        imag = fn(*(jnp.imag(x) for x in leaves))
        return tuple(jax.lax.complex(r, i) for r, i in zip(real, imag, strict=True))

    return wrapped


def _correction(b, t: jax.Array) -> jax.Array:
    """The bias correction 1 − b^t (optax's and torch's evaluation)."""
    return 1.0 - jnp.asarray(b) ** t


# --- AMSGrad --------------------------------------------------------------------------------


def _check_flag(owner: str, name: str, value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        _validation.fail(owner, name, value, "True, False or None", "None: the form's default.")
