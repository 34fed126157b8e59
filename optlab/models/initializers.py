"""Weight initializers exactly as lecture 03 ("Initialization") writes them.

Each public factory returns a ``jax.nn.initializers``-compatible function
``init(key, shape, dtype=jnp.float32) -> jax.Array``; pass it as ``kernel_init=`` to any
Flax layer, or select it by name with ``create_model(..., init=name)``:

===================  ===============================================  =======================
name                 weights                                          lecture 03 slide
===================  ===============================================  =======================
``"constant"``       every weight = c (default c = 0.1)               "A Poor Initialization"
``"normal"``         N(0, σ²), σ = 0.01                               "Gaussian/Normal"
``"xavier"``         U(−√(6/(n_j + n_{j+1})), +√(6/(n_j + n_{j+1})))  "Xavier"
``"xavier_simple"``  N(0, 1)·√(1/n_j)                                 "(Simpler) Xavier"
``"he"``             N(0, 1)·√(1/(n_j/2)) = N(0, 1)·√(2/n_j)          "Xavier2" (ReLU form)
===================  ===============================================  =======================

n_j is the fan-in (inputs feeding one unit) and n_{j+1} the fan-out (units fed by one
input). A kernel of shape ``(*receptive_field, n_in, n_out)`` (Flax's layout for ``Dense``
and ``Conv``) has fan-in = ∏receptive_field·n_in and fan-out = ∏receptive_field·n_out, so a
conv kernel's fan-in is kernel size × input channels. ``DenseGeneral`` (attention's
query/key/value/out projections) flattens its kernel to 2-D before calling the initializer,
so the fans there are the flattened input and output sizes.

The normals are plain, not truncated: ``jax.nn.initializers.glorot_normal`` and
``he_normal`` draw from a truncated normal (rescaled to the same variance), so they are
not these formulas. ``"xavier"`` has the distribution of
``jax.nn.initializers.glorot_uniform()``. The models always initialize biases to zero.

References:
  Glorot & Bengio, "Understanding the difficulty of training deep feedforward neural
  networks", AISTATS 2010. He, Zhang, Ren & Sun, "Delving deep into rectifiers:
  surpassing human-level performance on ImageNet classification", ICCV 2015.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

Initializer = Callable[..., jax.Array]

NAMES: tuple[str, ...] = ("constant", "normal", "xavier", "xavier_simple", "he")


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """(fan-in n_j, fan-out n_{j+1}) of a kernel laid out ``(*receptive_field, in, out)``.

    Example:
      >>> fans((64, 32)), fans((5, 1, 25)), fans((3, 3, 16, 8))
      ((64, 32), (5, 125), (144, 72))
    """
    shape = tuple(int(d) for d in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return receptive_field * shape[-2], receptive_field * shape[-1]


def constant(value: float = 0.1) -> Initializer:
    """Every weight equal to ``value``: lecture 03's "poor initialization".

    All units of a layer then compute the same output and receive the same gradient, so
    they stay identical after every update: the layer behaves like a single unit (a
    degenerate solution).

    Example:
      >>> import jax
      >>> print(constant(0.1)(jax.random.key(0), (2, 3)))
      [[0.1 0.1 0.1]
       [0.1 0.1 0.1]]
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        del key
        return jnp.full(shape, value, dtype)

    return init


def normal(stddev: float = 0.01) -> Initializer:
    """Small Gaussian weights N(μ, σ²) with μ = 0, σ = ``stddev`` (lecture 03: σ = 0.01).

    Keeps units in the linear region of most activations, but in a deep network the
    activations shrink layer after layer ("Limitation of Small Weights").

    Example:
      >>> import jax
      >>> w = normal()(jax.random.key(0), (1000, 100))
      >>> round(float(w.std()), 3)
      0.01
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        return stddev * jax.random.normal(key, shape, dtype)

    return init


def xavier() -> Initializer:
    """Xavier (Glorot) uniform: U(−a, a) with a = √(6/(n_j + n_{j+1})).

    Its variance a²/3 = 2/(n_j + n_{j+1}) keeps the variance of activations (forward) and
    of gradients (backward) roughly constant through tanh-like layers.

    Example:
      >>> import jax
      >>> w = xavier()(jax.random.key(0), (64, 32))
      >>> bool(abs(w).max() <= (6 / (64 + 32)) ** 0.5)
      True
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        n_in, n_out = fans(shape)
        limit = math.sqrt(6.0 / (n_in + n_out))
        return jax.random.uniform(key, shape, dtype, minval=-limit, maxval=limit)

    return init


def xavier_simple() -> Initializer:
    """Simpler Xavier: N(0, 1)·√(1/n_j) with n_j the fan-in (for tanh-like activations).

    Example:
      >>> import jax
      >>> w = xavier_simple()(jax.random.key(0), (400, 300))
      >>> round(float(w.std() * 400**0.5), 1)
      1.0
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        n_in, _ = fans(shape)
        return jax.random.normal(key, shape, dtype) * math.sqrt(1.0 / n_in)

    return init


def he() -> Initializer:
    """He ("Xavier2"), the ReLU form: N(0, 1)·√(1/(n_j/2)) = N(0, 1)·√(2/n_j).

    A ReLU zeroes half of its inputs on average, halving the second moment; doubling the
    weight variance compensates, so activations keep their scale through deep ReLU nets.

    Example:
      >>> import jax
      >>> w = he()(jax.random.key(0), (400, 300))
      >>> round(float(w.std() * (400 / 2) ** 0.5), 1)
      1.0
    """

    def init(key: jax.Array, shape: Sequence[int], dtype: Any = jnp.float32) -> jax.Array:
        n_in, _ = fans(shape)
        return jax.random.normal(key, shape, dtype) * math.sqrt(2.0 / n_in)

    return init


_FACTORIES: dict[str, Callable[[], Initializer]] = {
    "constant": constant,
    "normal": normal,
    "xavier": xavier,
    "xavier_simple": xavier_simple,
    "he": he,
}


def get(init: str | Initializer, *, owner: str = "initializers.get") -> Initializer:
    """The initializer named ``init`` (one of ``NAMES``, defaults as above), or ``init`` itself
    if it is already a function ``init(key, shape, dtype)``.

    Example:
      >>> get("he") is not None, get(jax.nn.initializers.zeros) is jax.nn.initializers.zeros
      (True, True)
    """
    if callable(init):
        return init
    if init not in _FACTORIES:
        raise ValueError(
            f"{owner}: `init` must be one of {NAMES} or a function init(key, shape, dtype), "
            f"got {init!r}. Pick one of {', '.join(NAMES)} (lecture 03)."
        )
    return _FACTORIES[init]()
