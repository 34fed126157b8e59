"""cyclical and cyclical_momentum: Smith's formula, PyTorch's CyclicLR, inject_hyperparams."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab import schedules as sch
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem
from tests.schedules.oracles import (
    assert_close64,
    assert_closed_form,
    torch_values,
    values64,
)


def ref_smith(t, base, peak, s):
    """Smith (2017), section 3.1: cycle, x and the triangle."""
    cycle = np.floor(1 + t / (2 * s))
    x = np.abs(t / s - 2 * cycle + 1)
    return base + (peak - base) * np.maximum(0, 1 - x)


def ref_cyclical(t, base, peak, up, down, mode="triangular", gamma=1.0):
    """Piecewise linear: `up` steps up, `down` steps down; λ per cycle or per step."""
    out = []
    for s in t:
        k, pos = divmod(s, up + down)
        h = pos / up if pos <= up else (up + down - pos) / down
        lam = {"triangular": 1.0, "triangular2": 0.5**k, "exp_range": gamma**s}[mode]
        out.append(base + (peak - base) * h * lam)
    return np.array(out)


@pytest.mark.parametrize(
    ("schedule", "formula"),
    [
        pytest.param(
            sch.cyclical(0.01, 0.1, 10), lambda t: ref_smith(t, 0.01, 0.1, 10), id="smith"
        ),
        pytest.param(
            sch.cyclical(0.01, 0.1, 10),
            lambda t: ref_cyclical(t, 0.01, 0.1, 10, 10),
            id="triangular",
        ),
        pytest.param(
            sch.cyclical(0.01, 0.1, 7, step_size_down=13, mode="triangular2"),
            lambda t: ref_cyclical(t, 0.01, 0.1, 7, 13, "triangular2"),
            id="triangular2-asymmetric",
        ),
        pytest.param(
            sch.cyclical(0.0, 1.0, 12, step_size_down=5, mode="exp_range", gamma=0.99),
            lambda t: ref_cyclical(t, 0.0, 1.0, 12, 5, "exp_range", 0.99),
            id="exp_range",
        ),
        pytest.param(
            sch.cyclical_momentum(0.85, 0.95, 9, step_size_down=4, mode="triangular2"),
            lambda t: 0.95 - (ref_cyclical(t, 0.85, 0.95, 9, 4, "triangular2") - 0.85),
            id="momentum",
        ),
    ],
)
def test_closed_form(schedule, formula):
    assert_closed_form(schedule, formula)


@pytest.mark.parametrize(
    ("up", "down", "mode", "gamma"),
    [
        (10, None, "triangular", 1.0),
        (7, 13, "triangular", 1.0),
        (11, 4, "triangular2", 1.0),
        (9, 20, "exp_range", 0.995),
    ],
)
def test_parity_torch_cyclic_lr(torch, up, down, mode, gamma):
    kw = {"step_size_down": down, "mode": mode, "gamma": gamma}
    cyclic_lr = torch.optim.lr_scheduler.CyclicLR
    want_lr, _ = torch_values(
        torch, lambda o: cyclic_lr(o, 0.01, 0.1, up, cycle_momentum=False, **kw)
    )
    assert_close64(sch.cyclical(0.01, 0.1, up, **kw), want_lr)
    _, want_mu = torch_values(
        torch,
        lambda o: cyclic_lr(o, 0.01, 0.1, up, base_momentum=0.8, max_momentum=0.95, **kw),
        momentum=0.9,
    )
    assert_close64(sch.cyclical_momentum(0.8, 0.95, up, **kw), want_mu)


def _cycles(**kw):
    return {
        "learning_rate": sch.cyclical(0.01, 0.1, 3, **kw),
        "mu": sch.cyclical_momentum(0.8, 0.9, 3, **kw),
    }


def test_momentum_schedule_through_inject_hyperparams():
    """hyperparams['mu'] after the k-th update is the value that update used: μ(k − 1)."""
    kw = {"step_size_down": 5, "mode": "triangular2"}
    tx = optax.inject_hyperparams(optlab.momentum)(**_cycles(**kw))
    params = jnp.zeros(3)
    traces = [0]

    def update(g, state):
        traces[0] += 1
        return tx.update(g, state, params)

    update = jax.jit(update)
    state = tx.init(params)
    mus, lrs = [], []
    for _ in range(20):
        _, state = update(jnp.ones(3), state)
        mus.append(float(state.hyperparams["mu"]))
        lrs.append(float(state.hyperparams["learning_rate"]))
    assert traces[0] == 1
    want = _cycles(**kw)
    np.testing.assert_allclose(mus, values64(want["mu"], np.arange(20)), rtol=1e-6)
    np.testing.assert_allclose(lrs, values64(want["learning_rate"], np.arange(20)), rtol=1e-6)


def test_momentum_schedule_gives_torch_trajectory(torch):
    """inject_hyperparams(momentum) with both cycles = torch SGD(momentum) + CyclicLR."""
    kw = {"step_size_down": 5, "mode": "triangular2"}
    params, grads = problem(num_steps=20)
    got = jax_rollout(optax.inject_hyperparams(optlab.momentum)(**_cycles(**kw)), params, grads)

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
        opt = torch.optim.SGD(list(tensors.values()), lr=0.01, momentum=0.9)
        cyclic = torch.optim.lr_scheduler.CyclicLR(
            opt, 0.01, 0.1, 3, base_momentum=0.8, max_momentum=0.9, **kw
        )
        want = []
        for g in grads:
            for k, t in tensors.items():
                t.grad = torch.tensor(g[k])
            opt.step()
            cyclic.step()
            want.append({k: t.detach().numpy().copy() for k, t in tensors.items()})
    finally:
        torch.set_default_dtype(previous)
    assert_same_trajectory(got, want, rtol=1e-11, atol=1e-13)
