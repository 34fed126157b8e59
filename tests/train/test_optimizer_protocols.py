"""What the trainer does for optimizers that need more than a gradient: the step hands
``obj_fn`` (params -> the batch's mean loss, as optax.contrib's SAM and Sophia expect) and
``value``; evaluation and export use the evaluation point (Schedule-Free's x, Lookahead's
slow weights, the EMA of the weights); skip_spikes' count is a metric; resume is exact."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.train import StepSpec, create_state, make_train_step


class Seen(NamedTuple):
    at_params: jax.Array  # obj_fn(params)
    at_zero: jax.Array  # obj_fn(0)
    value: jax.Array


def recorder():
    """Moves nothing; records what obj_fn and value said."""

    def init(params):
        del params
        return Seen(jnp.zeros([]), jnp.zeros([]), jnp.zeros([]))

    def update(updates, state, params=None, *, obj_fn=None, value=None, **extra):
        del state, extra
        zero = jax.tree.map(jnp.zeros_like, params)
        seen = Seen(obj_fn(params), obj_fn(zero), value)
        return jax.tree.map(jnp.zeros_like, updates), seen

    return optax.GradientTransformationExtraArgs(init, update)


def apply(variables, x, train=False, rngs=None):
    del train, rngs
    return x @ variables["params"]["w"]


@pytest.mark.parametrize("accumulate", [1, 2])
def test_obj_fn_is_the_batch_loss_at_any_params(accumulate):
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.standard_normal((3, 4)), jnp.float32)}
    x = jnp.asarray(rng.standard_normal((8, 3)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 4, 8))
    batch = {"x": x, "y": y, "mask": jnp.ones(8)}
    if accumulate == 2:
        batch = jax.tree.map(lambda a: a.reshape(2, 4, *a.shape[1:]), batch)
    tx = recorder()
    step = jax.jit(
        make_train_step(apply, tx, StepSpec(loss="cross_entropy", accumulate=accumulate))
    )
    state, metrics = step(create_state(params, tx.init(params), seed=0), batch)
    seen = state.opt_state
    logits = np.asarray(x @ params["w"], np.float64)
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    want = -np.mean(log_softmax[np.arange(8), np.asarray(y)])
    np.testing.assert_allclose(float(seen.at_params), want, rtol=1e-5)
    np.testing.assert_allclose(float(seen.value), want, rtol=1e-5)
    np.testing.assert_allclose(float(seen.at_zero), np.log(4.0), rtol=1e-6)  # uniform logits
    np.testing.assert_allclose(float(metrics["loss"]), want, rtol=1e-5)


def test_eval_step_evaluates_at_the_evaluation_point():
    import optlab
    from optlab.train import make_eval_step

    rng = np.random.default_rng(1)
    params = {"w": jnp.asarray(rng.standard_normal((3, 4)), jnp.float32)}
    tx = optlab.ema_params(optlab.sgd(0.5), decay=0.5)
    state = create_state(params, tx.init(params), seed=0)
    opt_state = state.opt_state
    for _ in range(2):  # after one step the debiased average is θ_1 itself
        updates, opt_state = tx.update({"w": jnp.ones((3, 4))}, opt_state, params)
        params = optax.apply_updates(params, updates)
    state = state._replace(params=params, opt_state=opt_state)
    average = optlab.evaluation_point(state.opt_state, state.params)
    assert not np.allclose(average["w"], state.params["w"])  # the average lags the params
    batch = {"x": jnp.asarray(rng.standard_normal((8, 3)), jnp.float32),
             "y": jnp.asarray(rng.integers(0, 4, 8)), "mask": jnp.ones(8)}  # fmt: skip
    eval_step = make_eval_step(apply, loss="cross_entropy", num_classes=4)
    got = eval_step(state, batch)
    want = eval_step(state._replace(params=average, opt_state=optax.EmptyState()), batch)
    for key in want:
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(want[key]), rtol=1e-6)


def _run(tmp_path, factory, steps, **train):
    from optlab import config
    from optlab.train import loop

    cfg = config.RunConfig()
    cfg.data.dataset, cfg.data.batch_size = "digits", 32
    cfg.model.options = {"widths": [32]}
    cfg.optimizer.optimizer, cfg.optimizer.learning_rate = factory, 0.05
    cfg.train.steps, cfg.train.checkpoint_every, cfg.out = steps, 10, str(tmp_path)
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return loop.run(cfg, progress=False)


@pytest.mark.slow  # three short training runs and their resumes
@pytest.mark.parametrize(
    "name",
    ["schedule_free_adamw", "lookahead", "ema_params"],
)
def test_wrapped_optimizers_train_evaluate_at_their_point_and_resume_exactly(tmp_path, name):
    import optlab

    factories = {
        "schedule_free_adamw": optlab.schedule_free_adamw,
        "lookahead": lambda learning_rate: optlab.lookahead(optlab.adam(learning_rate)),
        "ema_params": lambda learning_rate: optlab.ema_params(optlab.adam(learning_rate), 0.9),
    }
    # log_every=1: every step is the monitored one in both runs (the stopped run's last step
    # is monitored; a second compiled variant may round differently in float32).
    first = _run(tmp_path / "straight", factories[name], 20, log_every=1)
    point = optlab.evaluation_point(first.state.opt_state, first.state.params)
    # (SAM and Sophia take obj_fn from the step: see test_obj_fn_optimizers_train_and_resume)
    assert any(  # the evaluated point is not the held params
        not np.allclose(a, b) for a, b in zip(jax.tree.leaves(point),
                                              jax.tree.leaves(first.state.params), strict=True)
    )  # fmt: skip
    assert first.summary["test_accuracy"] > 0.5
    _run(tmp_path / "resumed", factories[name], 10, log_every=1)  # stops at 10, checkpointed
    resumed = _run(tmp_path / "resumed", factories[name], 20, log_every=1)  # resumes from 10
    for a, b in zip(jax.tree.leaves(first.state), jax.tree.leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert resumed.summary["test_accuracy"] == first.summary["test_accuracy"]


@pytest.mark.slow  # a training run
def test_skip_spikes_count_is_a_metric(tmp_path):
    import json

    import optlab

    def factory(learning_rate):
        return optlab.skip_spikes(optlab.adam(learning_rate), warmup=0, k=1e-3)

    _run(tmp_path, factory, 12, log_every=4)
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    skipped = [r["skipped_spikes"] for r in records if "skipped_spikes" in r]
    assert skipped and skipped == sorted(skipped)  # a running count
    assert skipped[-1] > 0  # k = 0.001 standard deviations: rises in the loss are skipped


@pytest.mark.slow  # two short training runs and their resumes
@pytest.mark.parametrize("name", ["sam", "sophia"])
def test_obj_fn_optimizers_train_and_resume_exactly(tmp_path, name):
    import optlab

    factories = {
        "sam": lambda learning_rate: optlab.sam(optlab.adam(learning_rate), rho=0.05),
        "sophia": lambda learning_rate: optlab.sophia(learning_rate, update_interval=2),
    }
    straight = _run(tmp_path / "straight", factories[name], 20)
    assert straight.summary["test_accuracy"] > 0.5
    _run(tmp_path / "resumed", factories[name], 10)  # stops at 10, checkpointed
    resumed = _run(tmp_path / "resumed", factories[name], 20)  # resumes from 10
    for a, b in zip(jax.tree.leaves(straight.state), jax.tree.leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
