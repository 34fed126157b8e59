"""Evaluating schedules on many steps at once, and the values PyTorch's schedulers give.

Every schedule is evaluated on a whole array of steps (one compile per schedule). Float64
comparisons (``jax.enable_x64``) use rtol 1e-12; the float32 default path rtol 1e-5.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

STEPS = np.arange(301)
RTOL64, ATOL64 = 1e-12, 1e-15
RTOL32, ATOL32 = 1e-5, 1e-7


def values64(schedule, steps=STEPS) -> np.ndarray:
    """The schedule at every step, jitted and vmapped, in float64."""
    with jax.enable_x64(True):
        return np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps)))


def assert_close64(schedule, want, steps=STEPS) -> None:
    got = values64(schedule, steps)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=RTOL64, atol=ATOL64)


def assert_closed_form(schedule, formula) -> None:
    """Float64 within 1e-12 of ``formula(t)`` (NumPy float64) at t = 0 … 300; float32
    from an int32 count within 1e-5."""
    want = formula(STEPS.astype(np.float64))
    assert_close64(schedule, want)
    got32 = np.asarray(schedule(jnp.arange(STEPS.size, dtype=jnp.int32)))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, want, rtol=RTOL32, atol=ATOL32)


def torch_values(torch, make_scheduler, n=STEPS.size, momentum=0.0):
    """lr and momentum that a torch scheduler gives the updates at steps 0 … n − 1.

    Driven as in training: ``optimizer.step()`` then ``scheduler.step()``; the value read
    before the first ``scheduler.step()`` is step 0's.
    """
    param = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([param], lr=1.0, momentum=momentum)
    scheduler = make_scheduler(opt)
    lrs, momenta = [], []
    for _ in range(n):
        lrs.append(scheduler.get_last_lr()[0])
        momenta.append(opt.param_groups[0]["momentum"])
        opt.step()
        scheduler.step()
    return np.array(lrs), np.array(momenta)
