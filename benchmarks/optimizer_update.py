"""One jitted, donated optimizer step on a ~20M-parameter float32 pytree: optlab vs optax.

For every optlab optimizer with an optax equivalent (same formula, same switches), the
two steps are timed alternately in one process (A, B, A, B, ...) and the medians compared;
the target is optlab/optax <= 1.10. Adam is also compared with a step that moves the same
bytes with trivial arithmetic (reads θ, g, m, v; writes θ, m, v: 28 bytes a parameter),
reported as information: it shows whether the update is bound by memory or by arithmetic.

    python benchmarks/optimizer_update.py            # ~1-2 minutes on a 2-core CPU
    python benchmarks/optimizer_update.py --reps 31 --params 5e6
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import optax

import optlab


def make_tree(total: float) -> dict[str, jax.Array]:
    """A pytree of float32 leaves with about ``total`` parameters, shaped like an MLP."""
    width = int((total / 2.4) ** 0.5)
    shapes = {
        "layer1": {"kernel": (width, width), "bias": (width,)},
        "layer2": {"kernel": (width, width), "bias": (width,)},
        "head": {"kernel": (width, int(0.4 * width)), "bias": (int(0.4 * width),)},
    }
    key = jax.random.key(0)
    leaves, treedef = jax.tree.flatten(shapes, is_leaf=lambda x: isinstance(x, tuple))
    keys = jax.random.split(key, len(leaves))
    return treedef.unflatten(
        [jax.random.normal(k, s, jnp.float32) for k, s in zip(keys, leaves, strict=True)]
    )


def compiled_step(tx: optax.GradientTransformation):
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return jax.jit(step, donate_argnums=(0, 1))


class Runner:
    """Holds one optimizer's donated params and state, and times one step."""

    def __init__(self, tx, params, grads):
        self.step = compiled_step(tx)
        self.params = jax.tree.map(jnp.copy, params)
        self.state = jax.jit(tx.init)(self.params)
        self.grads = grads
        self.times: list[float] = []
        for _ in range(2):  # compile and warm up
            self.run(record=False)

    def run(self, record: bool = True) -> None:
        start = time.perf_counter()
        self.params, self.state = self.step(self.params, self.state, self.grads)
        jax.block_until_ready((self.params, self.state))
        if record:
            self.times.append(time.perf_counter() - start)


def paired(make_a, make_b, params, grads, reps: int) -> tuple[float, float]:
    a, b = Runner(make_a(), params, grads), Runner(make_b(), params, grads)
    for i in range(reps):  # A B, B A, A B, ...: neither side always runs first
        first, second = (a, b) if i % 2 == 0 else (b, a)
        first.run()
        second.run()
    return statistics.median(a.times), statistics.median(b.times)


LR = 1e-3
PAIRS = {
    # A control: the same optax step on both sides shows the noise floor of a ratio.
    "control: optax.sgd vs itself": (lambda: optax.sgd(LR), lambda: optax.sgd(LR)),
    "sgd": (lambda: optlab.sgd(LR), lambda: optax.sgd(LR)),
    "momentum heavy_ball": (
        lambda: optlab.momentum(LR, 0.9),
        lambda: optax.sgd(LR, momentum=0.9),
    ),
    "momentum ema": (
        lambda: optlab.momentum(LR, 0.9, form="ema"),
        lambda: optax.chain(optax.ema(0.9, debias=False), optax.scale(-LR)),
    ),
    "momentum velocity": (
        lambda: optlab.momentum(LR, 0.9, form="velocity"),
        lambda: optax.chain(optax.scale_by_learning_rate(LR), optax.trace(0.9)),
    ),
    "nesterov": (
        lambda: optlab.nesterov(LR, 0.9),
        lambda: optax.sgd(LR, momentum=0.9, nesterov=True),
    ),
    "adagrad": (
        lambda: optlab.adagrad(LR, 1e-7, initial_accumulator=0.1),
        lambda: optax.adagrad(LR, initial_accumulator_value=0.1, eps=1e-7),
    ),
    "rmsprop": (lambda: optlab.rmsprop(LR), lambda: optax.rmsprop(LR, 0.9, 1e-8)),
    "rmsprop centered+momentum": (
        lambda: optlab.rmsprop(LR, centered=True, momentum=0.9),
        lambda: optax.rmsprop(LR, 0.9, 1e-8, centered=True, momentum=0.9),
    ),
    "adam": (lambda: optlab.adam(LR), lambda: optax.adam(LR)),
    "nadam (constant μ)": (
        lambda: optlab.nadam(LR, momentum_schedule=False),
        lambda: optax.nadam(LR),
    ),
    "adamw": (
        lambda: optlab.adamw(LR, weight_decay=0.01),
        lambda: optax.adamw(LR, weight_decay=0.01),
    ),
}


def memory_floor(params, grads, reps: int) -> float:
    """A step that moves Adam's bytes (read θ, g, m, v; write θ, m, v) with adds only."""

    def traffic(p, m, v, g):
        return (
            jax.tree.map(jnp.add, p, g),
            jax.tree.map(jnp.add, m, g),
            jax.tree.map(jnp.add, v, g),
        )

    step = jax.jit(traffic, donate_argnums=(0, 1, 2))
    p, m, v = (jax.tree.map(jnp.copy, params) for _ in range(3))
    times = []
    for i in range(reps + 2):
        start = time.perf_counter()
        p, m, v = step(p, m, v, grads)
        jax.block_until_ready(p)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, default=20e6, help="parameters (default 20M)")
    parser.add_argument("--reps", type=int, default=41, help="timed steps per optimizer")
    args = parser.parse_args()

    params = make_tree(args.params)
    grads = jax.tree.map(lambda p: 0.01 * p, params)
    count = sum(p.size for p in jax.tree.leaves(params))
    print(f"{count / 1e6:.1f}M float32 parameters, {jax.devices()[0].platform}, reps={args.reps}")
    print(f"{'optimizer':<28}{'optlab ms':>10}{'optax ms':>10}{'ratio':>8}")
    worst = 0.0
    for name, (ours, theirs) in PAIRS.items():
        a, b = paired(ours, theirs, params, grads, args.reps)
        if not name.startswith("control"):
            worst = max(worst, a / b)
        flag = "" if a / b <= 1.10 else "  > 1.10"
        print(f"{name:<28}{1e3 * a:>10.2f}{1e3 * b:>10.2f}{a / b:>8.3f}{flag}")
    floor = memory_floor(params, grads, args.reps)
    adam_time, _ = paired(lambda: optlab.adam(LR), lambda: optax.adam(LR), params, grads, args.reps)
    gbps = 28 * count / floor / 1e9
    print(
        f"\nadam step {1e3 * adam_time:.2f} ms vs moving the same 28 B/param "
        f"{1e3 * floor:.2f} ms ({gbps:.1f} GB/s): ratio {adam_time / floor:.2f}"
    )
    print(f"worst optlab/optax ratio: {worst:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
