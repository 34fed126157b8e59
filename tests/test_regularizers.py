"""optlab.regularizers: clipping, lecture 03's L2/L1/elastic-net penalties, decoupled decay.

The penalties are checked against ``jax.grad`` of the penalized loss itself (lecture 03:
L = |y − Wx|² + λ|W|², elastic net α|W|² + β|W|), the decay against ``optlab.adamw``,
the clippings against optax and PyTorch.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optlab
from optlab.regularizers import (
    clip_by_global_norm,
    clip_by_value,
    decoupled_weight_decay,
    elastic_net,
    l1_penalty,
    l2_penalty,
)
from optlab.testing import OptimizerSpec, assert_matches_reference, contract_suite
from tests.optimizers.rollouts import assert_same_trajectory, jax_rollout, problem, torch_rollout

RTOL, ATOL = 1e-11, 1e-13  # trajectories, as in tests/optimizers
# One transformation step in float64: the same formula, operations in another order
# (2λ·W versus λ·(2W), (g/‖g‖)·c versus g·(c/‖g‖)) differ by a few ulps (2.2e-16 each).
ULPS = 1e-14
LAM, ALPHA, BETA, WD = 0.03, 0.02, 0.05, 0.1
MASK = {"w": True, "b": False}

# Every transformation, built with a given mask (None: all leaves).
MAKERS = {
    "clip_by_value": lambda mask: clip_by_value(0.5, mask=mask),
    "clip_by_global_norm": lambda mask: clip_by_global_norm(1.0, mask=mask),
    "l2_penalty": lambda mask: l2_penalty(LAM, mask=mask),
    "l1_penalty": lambda mask: l1_penalty(LAM, mask=mask),
    "elastic_net": lambda mask: elastic_net(ALPHA, BETA, mask=mask),
    "decoupled_weight_decay": lambda mask: decoupled_weight_decay(WD, learning_rate=0.1, mask=mask),
}
NEEDS_PARAMS = ["l2_penalty", "l1_penalty", "elastic_net", "decoupled_weight_decay"]


def regression():
    """Lecture 03's |y − Wx|² (summed over a batch), float64 params and its gradient."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 4))
    params = {
        "w": jnp.asarray(rng.standard_normal((3, 4))),
        "b": jnp.asarray(rng.standard_normal(4)),
    }

    def loss(p):
        return jnp.sum((jnp.asarray(y) - (jnp.asarray(x) @ p["w"] + p["b"])) ** 2)

    return loss, params


def apply_once(tx, grads, params):
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates


def assert_trees_close(got, want, *, rtol, atol):
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol, err_msg=f"leaf {k!r}")


# --- the penalties are the gradients of lecture 03's penalized losses -----------------------


def sum_over(params, fn, mask=None):
    return sum(jnp.sum(fn(p)) for k, p in params.items() if mask is None or mask[k])


@pytest.mark.parametrize("mask", [None, MASK])
def test_l2_penalty_is_the_gradient_of_the_lecture_loss(mask):
    with jax.enable_x64(True):
        loss, params = regression()
        got = apply_once(l2_penalty(LAM, mask=mask), jax.grad(loss)(params), params)
        want = jax.grad(lambda p: loss(p) + LAM * sum_over(p, jnp.square, mask))(params)
        assert_trees_close(got, want, rtol=ULPS, atol=ULPS)


@pytest.mark.parametrize("mask", [None, MASK])
def test_l1_penalty_is_the_gradient_away_from_zero(mask):
    with jax.enable_x64(True):
        loss, params = regression()  # normal draws: no entry is 0
        got = apply_once(l1_penalty(LAM, mask=mask), jax.grad(loss)(params), params)
        want = jax.grad(lambda p: loss(p) + LAM * sum_over(p, jnp.abs, mask))(params)
        assert_trees_close(got, want, rtol=ULPS, atol=ULPS)


def test_l1_and_elastic_net_add_nothing_at_zero():
    params = {"w": jnp.array([0.0, 2.0, -3.0])}
    grads = {"w": jnp.array([0.25, 0.25, 0.25])}
    l1 = apply_once(l1_penalty(0.5), grads, params)["w"]
    np.testing.assert_array_equal(l1, [0.25, 0.75, -0.25])
    net = apply_once(elastic_net(0.5, 0.5), grads, params)["w"]
    np.testing.assert_array_equal(net, [0.25, 0.25 + 2.0 + 0.5, 0.25 - 3.0 - 0.5])


@pytest.mark.parametrize("mask", [None, MASK])
def test_elastic_net_is_the_gradient_of_the_lecture_loss(mask):
    with jax.enable_x64(True):
        loss, params = regression()

        def penalized(p):
            l2, l1 = sum_over(p, jnp.square, mask), sum_over(p, jnp.abs, mask)
            return loss(p) + ALPHA * l2 + BETA * l1

        got = apply_once(elastic_net(ALPHA, BETA, mask=mask), jax.grad(loss)(params), params)
        assert_trees_close(got, jax.grad(penalized)(params), rtol=ULPS, atol=ULPS)


def test_elastic_net_contains_l2_and_l1():
    with jax.enable_x64(True):
        loss, params = regression()
        grads = jax.grad(loss)(params)
        pairs = [
            (elastic_net(ALPHA, 0.0), l2_penalty(ALPHA)),
            (elastic_net(0.0, BETA), l1_penalty(BETA)),
        ]
        for net, single in pairs:
            assert_trees_close(
                apply_once(net, grads, params), apply_once(single, grads, params), rtol=0, atol=0
            )


def test_l2_penalty_then_sgd_is_gradient_descent_on_the_penalized_loss():
    # θ ← θ − α·(g + 2λθ), the lecture's weight decay, as a NumPy formula.
    assert_matches_reference(
        optax.chain(l2_penalty(LAM), optlab.sgd(0.1)),
        lambda theta, g, s: (theta - 0.1 * (g + 2 * LAM * theta), s),
        num_steps=8,
        rtol=RTOL,
        atol=ATOL,
    )


def test_elastic_net_then_adam_is_adam_on_the_penalized_gradient():
    params, grads = problem()

    def with_penalty(p, g):
        return {k: g[k] + 2 * ALPHA * p[k] + BETA * np.sign(p[k]) for k in g}

    # Adam on the penalized gradient, evaluated at Adam's own iterates (feedback).
    want, p = [], params
    tx = optlab.adam(0.01)
    with jax.enable_x64(True):
        state = tx.init(jax.tree.map(jnp.asarray, p))
        for g in grads:
            u, state = tx.update(jax.tree.map(jnp.asarray, with_penalty(p, g)), state)
            p = {k: np.asarray(p[k] + u[k]) for k in p}
            want.append(p)
    got = jax_rollout(optax.chain(elastic_net(ALPHA, BETA), optlab.adam(0.01)), params, grads)
    assert_same_trajectory(got, want, rtol=RTOL, atol=ATOL)


# --- decoupled weight decay is AdamW's decay ------------------------------------------------


def schedule(count):
    return 0.02 * 0.9**count + 0.001


@pytest.mark.parametrize("rate", [0.01, schedule], ids=["constant", "schedule"])
@pytest.mark.parametrize("mask", [None, MASK, lambda p: MASK], ids=["all", "tree", "fn"])
def test_adam_then_decoupled_decay_is_adamw(rate, mask):
    params, grads = problem(num_steps=15)
    chained = optax.chain(
        optlab.adam(rate, 0.9, 0.99, 1e-6),
        decoupled_weight_decay(WD, learning_rate=rate, mask=mask),
    )
    adamw = optlab.adamw(rate, 0.9, 0.99, 1e-6, WD, mask=mask)
    # The same products and sums as −(α·d + α·λ·θ), regrouped as (−α·d) − α·λ·θ: equal up to
    # XLA's choice of fused multiply-adds (1 ulp seen), so the house trajectory tolerance.
    assert_same_trajectory(
        jax_rollout(chained, params, grads), jax_rollout(adamw, params, grads), rtol=RTOL, atol=ATOL
    )


def test_decoupled_decay_with_the_schedule_multiplier_is_the_papers_adamw():
    params, grads = problem(num_steps=15)
    chained = optax.chain(
        optlab.adam(schedule),
        decoupled_weight_decay(WD, learning_rate=lambda t: schedule(t) / 0.021),
    )
    paper = optlab.adamw(schedule, weight_decay=WD, decay_scaling="schedule")
    assert_same_trajectory(
        jax_rollout(chained, params, grads), jax_rollout(paper, params, grads), rtol=RTOL, atol=ATOL
    )


# --- clipping --------------------------------------------------------------------------------


def test_clip_by_value_matches_optax():
    with jax.enable_x64(True):
        _, params = regression()
        grads = jax.tree.map(lambda p: 3 * p, params)
        want = apply_once(optax.clip(0.5), grads, params)
        assert_trees_close(apply_once(clip_by_value(0.5), grads, params), want, rtol=0, atol=0)


@pytest.mark.parametrize("max_norm", [0.5, 1e3], ids=["clips", "below"])
def test_clip_by_global_norm_matches_optax(max_norm):
    with jax.enable_x64(True):
        _, params = regression()
        want = apply_once(optax.clip_by_global_norm(max_norm), params, params)
        got = apply_once(clip_by_global_norm(max_norm), params, params)
        assert_trees_close(got, want, rtol=ULPS, atol=0)
        norm = float(optax.tree.norm(got))
        assert norm == pytest.approx(min(max_norm, float(optax.tree.norm(params))), rel=ULPS)


def test_masked_global_norm_measures_and_clips_only_the_selected_leaves():
    with jax.enable_x64(True):
        _, params = regression()
        for mask in (MASK, lambda p: MASK):
            got = apply_once(clip_by_global_norm(0.5, mask=mask), params, params)
            want = apply_once(optax.masked(optax.clip_by_global_norm(0.5), MASK), params, params)
            assert_trees_close(got, want, rtol=ULPS, atol=0)
            np.testing.assert_array_equal(got["b"], params["b"])


def test_global_norm_of_a_zero_gradient_is_no_nan():
    tx = clip_by_global_norm(1.0)
    zeros = {"w": jnp.zeros((3, 4)), "b": jnp.zeros(4)}
    state = tx.init(zeros)
    got = jax.jit(tx.update)(zeros, state)[0]
    np.testing.assert_array_equal(got["w"], zeros["w"])
    # and differentiating through the update at g = 0 gives the identity's derivative, 1
    d = jax.grad(lambda g: sum(jnp.sum(u) for u in jax.tree.leaves(tx.update(g, state)[0])))(zeros)
    np.testing.assert_array_equal(d["w"], np.ones((3, 4)))


def torch_clipped(torch, clip, grads):
    tensors = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for t, g in zip(tensors, grads, strict=True):
        t.grad = torch.tensor(g)
    clip(tensors)
    return [t.grad.numpy() for t in tensors]


def test_clip_by_value_parity_torch(torch):
    grads = [2 * np.random.default_rng(2).standard_normal(s) for s in [(3, 4), (4,)]]
    want = torch_clipped(torch, lambda ts: torch.nn.utils.clip_grad_value_(ts, 0.5), grads)
    with jax.enable_x64(True):
        got = apply_once(clip_by_value(0.5), [jnp.asarray(g) for g in grads], None)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_clip_by_global_norm_parity_torch(torch):
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal(s) for s in [(3, 4), (4,)]]
    norm = float(np.sqrt(sum(np.sum(g * g) for g in grads)))  # about 4.7
    with jax.enable_x64(True):
        for max_norm in (1.0, 10.0):
            want = torch_clipped(
                torch, lambda ts, c=max_norm: torch.nn.utils.clip_grad_norm_(ts, c), grads
            )
            got = apply_once(clip_by_global_norm(max_norm), [jnp.asarray(g) for g in grads], None)
            # torch multiplies by min(1, c/(‖g‖ + 1e-6)): below c both leave g as it is;
            # above c, torch's result is ours · ‖g‖/(‖g‖ + 1e-6).
            shrink = norm / (norm + 1e-6) if norm > max_norm else 1.0
            for g, w in zip(got, want, strict=True):
                np.testing.assert_allclose(w, np.asarray(g) * shrink, rtol=ULPS, atol=0)
                if norm > max_norm:  # the difference is real, and is the documented one
                    rel = np.abs(w - np.asarray(g)) / np.abs(np.asarray(g))
                    np.testing.assert_allclose(rel, 1e-6 / (norm + 1e-6), rtol=1e-6)


# --- PyTorch's and optax's weight decay ------------------------------------------------------


def test_torch_sgd_weight_decay_is_l2_penalty_of_half_and_decoupled_decay(torch):
    params, grads = problem()
    want = torch_rollout(lambda ps: torch.optim.SGD(ps, lr=0.1, weight_decay=WD), params, grads)
    coupled = optax.chain(l2_penalty(WD / 2), optlab.sgd(0.1))
    decoupled = optax.chain(optlab.sgd(0.1), decoupled_weight_decay(WD, learning_rate=0.1))
    for tx in (coupled, decoupled):
        assert_same_trajectory(jax_rollout(tx, params, grads), want, rtol=RTOL, atol=ATOL)


def test_torch_adam_weight_decay_is_l2_penalty_of_half(torch):
    params, grads = problem()
    want = torch_rollout(
        lambda ps: torch.optim.Adam(ps, lr=0.01, eps=1e-6, weight_decay=WD), params, grads
    )
    got = jax_rollout(optax.chain(l2_penalty(WD / 2), optlab.adam(0.01, eps=1e-6)), params, grads)
    assert_same_trajectory(got, want, rtol=RTOL, atol=ATOL)


def test_optax_add_decayed_weights_is_l2_penalty_of_half():
    with jax.enable_x64(True):
        loss, params = regression()
        grads = jax.grad(loss)(params)
        want = apply_once(optax.add_decayed_weights(WD, mask=MASK), grads, params)
        got = apply_once(l2_penalty(WD / 2, mask=MASK), grads, params)
        assert_trees_close(got, want, rtol=0, atol=0)


# --- masks, jit, dtypes, errors: every transformation ----------------------------------------


def small_tree(dtype=jnp.float32, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "w": jnp.asarray(3 * rng.standard_normal((3, 4)), dtype),
        "b": jnp.asarray(3 * rng.standard_normal(4), dtype),
    }


@pytest.mark.parametrize("name", MAKERS)
def test_masked_out_leaves_are_untouched(name):
    params, grads = small_tree(seed=0), small_tree(seed=1)
    everything = apply_once(MAKERS[name](None), grads, params)
    for mask in (MASK, lambda p: MASK):
        got = apply_once(MAKERS[name](mask), grads, params)
        np.testing.assert_array_equal(got["b"], grads["b"])
        if name != "clip_by_global_norm":  # its norm depends on which leaves it sees
            np.testing.assert_array_equal(got["w"], everything["w"])
        assert not np.array_equal(got["w"], grads["w"]), f"{name} did nothing to w"


@pytest.mark.parametrize("name", MAKERS)
def test_jit_does_not_recompile(name):
    tx = MAKERS[name](lambda p: MASK)
    traces = [0]

    def update(g, s, p):
        traces[0] += 1
        return tx.update(g, s, p)

    update = jax.jit(update)
    params = small_tree()
    state = tx.init(params)
    for seed in range(3):
        _, state = update(small_tree(seed=seed), state, params)
    assert traces[0] == 1


@pytest.mark.parametrize("name", MAKERS)
def test_bfloat16_in_bfloat16_out(name):
    tx = MAKERS[name](None)
    params, grads = small_tree(jnp.bfloat16), small_tree(jnp.bfloat16, seed=1)
    state = tx.init(params)
    updates, new_state = jax.jit(tx.update)(grads, state, params)
    for u in jax.tree.leaves(updates):
        assert u.dtype == jnp.bfloat16
        assert bool(jnp.all(jnp.isfinite(u)))
    assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(lambda x: x.dtype, state)


@pytest.mark.parametrize("name", NEEDS_PARAMS)
def test_update_without_params_names_the_transformation(name):
    tx = MAKERS[name](None)
    with pytest.raises(ValueError, match=f"^{name}: `update` needs `params`"):
        tx.update(small_tree(), tx.init(small_tree()))


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: clip_by_value(0.0), "max_abs"),
        (lambda: clip_by_value(-1.0), "max_abs"),
        (lambda: clip_by_global_norm(0.0), "max_norm"),
        (lambda: clip_by_global_norm(float("nan")), "max_norm"),
        (lambda: l2_penalty(-1e-4), "lam"),
        (lambda: l1_penalty(float("inf")), "lam"),
        (lambda: elastic_net(-1.0, 0.1), "alpha"),
        (lambda: elastic_net(0.1, -1.0), "beta"),
        (lambda: decoupled_weight_decay(-0.01), "weight_decay"),
        (lambda: decoupled_weight_decay(0.01, learning_rate=-1.0), "learning_rate"),
    ],
)
def test_bad_hyperparameters_name_the_argument(make, argument):
    with pytest.raises(ValueError, match=f"`{argument}` must be"):
        make()


def test_traced_hyperparameters_are_not_checked_in_python():
    tx = optax.inject_hyperparams(l2_penalty)(lam=0.1)
    params = small_tree()
    updates, _ = jax.jit(tx.update)(small_tree(seed=1), tx.init(params), params)
    np.testing.assert_allclose(updates["w"], small_tree(seed=1)["w"] + 0.2 * params["w"], rtol=1e-6)


# --- the shared contract (optlab.testing) on chains with an optimizer ------------------------

test_contract = contract_suite(
    [
        OptimizerSpec(
            "l2_penalty+sgd",
            lambda learning_rate: optax.chain(l2_penalty(1e-3), optlab.sgd(learning_rate)),
            1e-2,
            complex_ok=False,
        ),
        OptimizerSpec(
            "clip_by_global_norm+adam",
            lambda learning_rate: optax.chain(clip_by_global_norm(1.0), optlab.adam(learning_rate)),
            1e-1,
            complex_ok=False,
        ),
        OptimizerSpec(
            "adam+decoupled_weight_decay",
            lambda learning_rate: optax.chain(
                optlab.adam(learning_rate),
                decoupled_weight_decay(1e-2, learning_rate=learning_rate),
            ),
            1e-1,
            complex_ok=False,
        ),
    ],
    checks=[
        "no_recompile",
        "dtypes",
        "inject_hyperparams",
        "masked",
        "abstract_init",
        "extra_args",
    ],
)
