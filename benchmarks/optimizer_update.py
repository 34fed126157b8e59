"""One jitted, donated optimizer step on a ~20M-parameter float32 pytree: optlab vs optax.

For every optlab optimizer with an optax (or optax.contrib) equivalent, the two steps are
timed alternately in one process (A, B, B, A, ...) and the medians compared; the target is
optlab/optax <= 1.10. Both sides compute the same formula with the same switches: where
optlab's default (the paper's box) differs from optax's update, the optlab side is
``like="optax"``. Adam is also compared with a step that moves the same bytes with trivial
arithmetic (reads θ, g, m, v; writes θ, m, v: 28 bytes a parameter), reported as
information: it shows whether the update is bound by memory or by arithmetic.

Muon, Shampoo and SOAP multiply matrices (seconds a step at 20M): their steps are timed
``--heavy-reps`` times after one warm-up step (the one that compiles), and their extra
FLOPs per step (analytic, the docstrings' formulas) are printed against the gradient's
size. Muon is compared with optax.contrib.muon. Shampoo and SOAP have no optax peer: they
are timed interleaved with optlab.adam, under ``optax.inject_hyperparams``, one state and
one compiled step alternating the interval of their inverse roots (eigenbasis refresh)
between 1 (a refresh on every timed step) and 2**30 (none): the difference is the
refresh's cost, amortized over the default interval. SOAP's one-time eigh is timed alone.

    python benchmarks/optimizer_update.py            # ~25 minutes on a 2-core CPU
    python benchmarks/optimizer_update.py --reps 31 --params 5e6
    python benchmarks/optimizer_update.py --quick --only adam,muon   # a few seconds
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import optax
import optax.contrib

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
    """Holds one optimizer's donated params and state, and times one step.

    ``warmup`` untimed steps first (the first one compiles). ``run(hyper)`` writes
    ``hyper`` ({name: value}) into an ``optax.inject_hyperparams`` state first, outside the
    timer, as fresh arrays (the state is donated) of the state's dtypes and weak types (no
    recompile).
    """

    def __init__(self, tx, params, grads, warmup: int = 2):
        self.step = compiled_step(tx)
        self.params = jax.tree.map(jnp.copy, params)
        self.state = jax.tree.map(jnp.copy, jax.jit(tx.init)(self.params))  # own buffers
        self.grads = grads
        for _ in range(warmup):  # compile and warm up
            self.run()

    def run(self, hyper: dict | None = None) -> float:
        if hyper:
            old = self.state.hyperparams
            fresh = {k: jnp.full_like(old[k], v) for k, v in hyper.items()}  # weak types too
            self.state = self.state._replace(hyperparams={**old, **fresh})
        start = time.perf_counter()
        self.params, self.state = self.step(self.params, self.state, self.grads)
        jax.block_until_ready((self.params, self.state))
        return time.perf_counter() - start


def interleaved(slots: list[tuple[Runner, dict | None]], reps: int) -> list[float]:
    """Median seconds of each (runner, hyper) slot; each round runs every slot once, the
    order rotated (A B, B A, ... for two): none always runs first."""
    times: list[list[float]] = [[] for _ in slots]
    for i in range(reps):
        k = i % len(slots)
        for j in [*range(k, len(slots)), *range(k)]:
            runner, hyper = slots[j]
            times[j].append(runner.run(hyper))
    return [statistics.median(t) for t in times]


def paired(make_a, make_b, params, grads, reps: int, warmup: int = 2) -> tuple[float, float]:
    a, b = (Runner(make(), params, grads, warmup) for make in (make_a, make_b))
    ta, tb = interleaved([(a, None), (b, None)], reps)
    return ta, tb


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
    # From here on optlab runs optax's formula (like="optax") with both libraries' defaults.
    "amsgrad": (lambda: optlab.amsgrad(LR, like="optax"), lambda: optax.amsgrad(LR)),
    "adamax": (lambda: optlab.adamax(LR, like="optax"), lambda: optax.adamax(LR)),
    "radam": (lambda: optlab.radam(LR, like="optax"), lambda: optax.radam(LR)),
    "adabelief": (lambda: optlab.adabelief(LR, like="optax"), lambda: optax.adabelief(LR)),
    "yogi": (lambda: optlab.yogi(LR, like="optax"), lambda: optax.yogi(LR)),
    "adadelta": (lambda: optlab.adadelta(LR, like="optax"), lambda: optax.adadelta(LR)),
    "rprop": (lambda: optlab.rprop(LR, like="optax"), lambda: optax.rprop(LR)),
    "novograd": (lambda: optlab.novograd(LR, like="optax"), lambda: optax.novograd(LR)),
    "lars": (lambda: optlab.lars(LR, like="optax"), lambda: optax.lars(LR)),
    "lamb": (lambda: optlab.lamb(LR, like="optax"), lambda: optax.lamb(LR)),
    "adafactor": (lambda: optlab.adafactor(LR, like="optax"), lambda: optax.adafactor(LR)),
    "lion": (lambda: optlab.lion(LR, like="optax"), lambda: optax.lion(LR)),
    "adopt": (lambda: optlab.adopt(LR, like="optax"), lambda: optax.contrib.adopt(LR)),
    "ademamix": (
        lambda: optlab.ademamix(LR, like="optax"),
        lambda: optax.contrib.ademamix(LR),
    ),
    "adan": (lambda: optlab.adan(LR, like="optax"), lambda: optax.adan(LR)),
    "muon": (lambda: optlab.muon(LR, like="optax"), lambda: optax.contrib.muon(LR)),
    "schedule_free_sgd": (
        lambda: optlab.schedule_free_sgd(LR, like="optax"),
        lambda: optax.contrib.schedule_free_sgd(LR),
    ),
    "schedule_free_adamw": (
        lambda: optlab.schedule_free_adamw(LR, like="optax"),
        lambda: optax.contrib.schedule_free_adamw(LR),
    ),
    "prodigy": (  # Prodigy's learning rate is a multiplier of its estimate: 1.0
        lambda: optlab.prodigy(1.0, like="optax"),
        lambda: optax.contrib.prodigy(1.0),
    ),
}
HEAVY = {"muon"}  # rows timed --heavy-reps times (matrix products, seconds a step)
SECTIONS = ("shampoo", "soap")  # no optax peer: timed against optlab.adam
SHAMPOO_EVERY, SHAMPOO_BLOCK = 1, 128  # optlab.shampoo's precondition_every, block_size
SOAP_EVERY, SOAP_MAX_DIM = 10, 10000  # optlab.soap's precondition_frequency, max_precond_dim
NEVER = 2**30  # an interval no timed step reaches


def key(name: str) -> str:
    """What ``--only`` matches: a row's first word ("momentum" selects all three)."""
    return name.split()[0].rstrip(":")


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


def matrices(params) -> list[tuple[int, int]]:
    """The (rows, columns) of the 2-D leaves (the only matrices in ``make_tree``)."""
    return [p.shape for p in jax.tree.leaves(params) if p.ndim == 2]


def muon_flops(params, steps: int = 5) -> float:
    """Newton–Schulz on (m, n), m <= n: a step is X·Xᵀ (2m²n), A² (2m³), B·X (2m²n)."""
    return sum(steps * (4 * m * m * n + 2 * m**3) for m, n in map(sorted, matrices(params)))


def shampoo_flops(params, block_size: int) -> tuple[float, float]:
    """(every step, per refresh): per block of b_r × b_c (padded), 4·b_r·b_c·(b_r + b_c)
    for L, R and D = P_L·m̂·P_R, and 11·(b_r³ + b_c³) for the two inverse roots."""
    step = roots = 0.0
    for m, n in matrices(params):
        br, bc = min(block_size, m), min(block_size, n)
        blocks = -(-m // br) * -(-n // bc)
        step += blocks * 4 * br * bc * (br + bc)
        roots += blocks * 11 * (br**3 + bc**3)
    return step, roots


def soap_flops(params, max_dim: int) -> tuple[float, float, float]:
    """(every step, per refresh, once), per rotated side s of an (m, n) leaf: 6·m·n·s
    (G', N and the statistic), (2 + 8/3)·s³ (P·Q and QR) plus 4·m·n·s (M' into the new
    basis) every refresh, 9·s³ (eigh) on the first update."""
    step = refresh = once = 0.0
    for m, n in matrices(params):
        for s in (m, n):
            if s <= max_dim:
                step += 6 * m * n * s
                refresh += (2 + 8 / 3) * s**3 + 4 * m * n * s
                once += 9 * s**3
    return step, refresh, once


def refresh_rows(name, make, interval, default, static, params, grads, reps) -> dict[str, float]:
    """Median seconds of optlab.adam's step and of ``make``'s with its ``interval`` set to 1
    (a refresh every step) and to NEVER (none), interleaved: ONE state and compiled step
    (under inject_hyperparams; ``static``: the arguments that set shapes) alternate the
    two settings; one warm-up step (the first update, which also refreshes)."""
    tx = optax.inject_hyperparams(make, static_args=static)(learning_rate=LR, **{interval: default})
    adam, pre = Runner(optlab.adam(LR), params, grads), Runner(tx, params, grads, warmup=1)
    slots = [(adam, None), (pre, {interval: 1}), (pre, {interval: NEVER})]
    times = dict(zip(("adam", "every", "never"), interleaved(slots, reps), strict=True))
    if pre.step._cache_size() != 1:  # the interval must not have recompiled the step
        raise RuntimeError(f"{name}: setting `{interval}` recompiled the step")
    return times


def time_eigh(params, max_dim: int, reps: int) -> dict[int, float]:
    """``jnp.linalg.eigh`` of a side × side Gram matrix, per side of the leaves (median)."""
    out = {}
    eigh = jax.jit(jnp.linalg.eigh)
    for m, n in matrices(params):
        for s in (m, n):
            if s <= max_dim and s not in out:
                x = jax.random.normal(jax.random.key(s), (s, 2 * s), jnp.float32)
                gram = jax.block_until_ready(x @ x.T)
                jax.block_until_ready(eigh(gram))  # compile
                times = []
                for _ in range(reps):
                    start = time.perf_counter()
                    jax.block_until_ready(eigh(gram))
                    times.append(time.perf_counter() - start)
                out[s] = statistics.median(times)
    return out


def print_refresh(name, label, k, times, step_flops, refresh_flops, count) -> None:
    amortized = times["never"] + (times["every"] - times["never"]) / k
    for what, t in (
        (f"{label} every step", times["every"]),
        (f"{label} never", times["never"]),
        (f"{name} default ({k}), amortized", amortized),
    ):
        print(f"{what:<36}{1e3 * t:>11.1f}{1e3 * times['adam']:>10.2f}{t / times['adam']:>9.1f}")
    extra = step_flops + refresh_flops / k
    cost = times["every"] - times["never"]
    print(
        f"  extra FLOPs a step: {step_flops:.3g} + {refresh_flops:.3g}/{k} = {extra:.3g}, "
        f"{extra / count:,.0f} per parameter; {label}: {1e3 * cost:.1f} ms a refresh, "
        f"{1e3 * cost / k:.1f} ms a step amortized"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, help="parameters (default 20M; --quick 0.2M)")
    parser.add_argument("--reps", type=int, help="timed steps per optimizer (41; --quick 3)")
    parser.add_argument("--heavy-reps", type=int, help="for muon, shampoo, soap (3; --quick 2)")
    parser.add_argument("--only", help="comma-separated rows, e.g. adam,muon (a row's first word)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: small, few reps")
    args = parser.parse_args(argv)
    names = {key(n) for n in PAIRS} | set(SECTIONS)
    only = set(args.only.split(",")) if args.only else names
    if only - names:
        parser.error(f"--only: unknown {sorted(only - names)}; choose from {sorted(names)}")
    total = args.params or (2e5 if args.quick else 20e6)
    reps = args.reps or (3 if args.quick else 41)
    heavy_reps = args.heavy_reps or (2 if args.quick else 3)

    params = make_tree(total)
    grads = jax.tree.map(lambda p: 0.01 * p, params)
    count = sum(p.size for p in jax.tree.leaves(params))
    print(
        f"{count / 1e6:.1f}M float32 parameters, {jax.devices()[0].platform}, reps={reps} "
        f"(muon, shampoo, soap: {heavy_reps})"
    )
    rows = [name for name in PAIRS if key(name) in only]
    if rows:
        print(f"{'optimizer':<28}{'optlab ms':>10}{'optax ms':>10}{'ratio':>8}")
    worst, results = 0.0, {}
    for name in rows:
        ours, theirs = PAIRS[name]
        n, warmup = (heavy_reps, 1) if name in HEAVY else (reps, 2)
        a, b = results[name] = paired(ours, theirs, params, grads, n, warmup)
        if not name.startswith("control"):
            worst = max(worst, a / b)
        flag = "" if a / b <= 1.10 else "  > 1.10"
        print(f"{name:<28}{1e3 * a:>10.2f}{1e3 * b:>10.2f}{a / b:>8.3f}{flag}")
    if "adam" in only:
        floor = memory_floor(params, grads, reps)
        adam_time, _ = paired(lambda: optlab.adam(LR), lambda: optax.adam(LR), params, grads, reps)
        gbps = 28 * count / floor / 1e9
        print(
            f"\nadam step {1e3 * adam_time:.2f} ms vs moving the same 28 B/param "
            f"{1e3 * floor:.2f} ms ({gbps:.1f} GB/s): ratio {adam_time / floor:.2f}"
        )
    if "muon" in only:
        a, b = results["muon"]
        flops = muon_flops(params)
        print(
            f"\nmuon: Newton–Schulz (5 steps) on {', '.join(map(str, matrices(params)))}: "
            f"extra FLOPs a step {flops:.3g}, {flops / count:,.0f} per parameter "
            f"({flops / a / 1e9:.1f} GFLOP/s); optlab {1e3 * a:.1f} ms vs "
            f"optax.contrib.muon {1e3 * b:.1f} ms: ratio {a / b:.3f}"
        )
    if only & set(SECTIONS):
        print(f"\nno optax peer, interleaved with optlab.adam (reps={heavy_reps})")
        print(f"{'optimizer':<36}{'step ms':>11}{'adam ms':>10}{'/ adam':>9}")
    if "shampoo" in only:
        times = refresh_rows(
            "shampoo", optlab.shampoo, "precondition_every", SHAMPOO_EVERY, "block_size",
            params, grads, heavy_reps,
        )  # fmt: skip
        step_flops, root_flops = shampoo_flops(params, SHAMPOO_BLOCK)
        print_refresh(
            "shampoo", "shampoo roots", SHAMPOO_EVERY, times, step_flops, root_flops, count
        )
    if "soap" in only:
        times = refresh_rows(
            "soap", optlab.soap, "precondition_frequency", SOAP_EVERY, "max_precond_dim",
            params, grads, heavy_reps,
        )  # fmt: skip
        step_flops, refresh_flops, once = soap_flops(params, SOAP_MAX_DIM)
        print_refresh("soap", "soap basis", SOAP_EVERY, times, step_flops, refresh_flops, count)
        eighs = time_eigh(params, SOAP_MAX_DIM, heavy_reps)
        print(
            f"  first update only: eigh per side, {once:.3g} FLOPs; timed alone: "
            + ", ".join(f"{s}×{s} {1e3 * t:.0f} ms" for s, t in eighs.items())
        )
    if rows:
        print(f"\nworst optlab/optax ratio: {worst:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
