"""Tokens per second of optlab's trainer on its GPT against a bare flax + optax loop and
the same model in PyTorch, eager and ``torch.compile``-d (issue 12, "Speed").

Two sizes, the LM recipe's optimizer (AdamW, lr 1e-3 with 100 warm-up steps and a cosine
decay to 0.1× over the recipe's 2,000 steps, β = (0.9, 0.99), weight decay 0.1 on the
matrices only, gradients clipped at global norm 1.0), dropout 0, byte-level tokens of the
``pystdlib`` corpus (prepared into a temporary folder, ~2 s; ``--data-dir`` another):

- ``small``: 4 layers × 4 heads × 128 wide, block 64, batch 12 (nanoGPT's CPU scale, the
  default LM recipe);
- ``medium``: 6 × 6 × 384, block 256, batch 8.

Contestants, all on the same batches (the trainer's own stream: the benchmark draws the
same seeded windows from a second ``TokenBatchIterator`` and checks that the first batch
the trainer's step receives is its first):

- ``optlab``: ``optlab.train.loop.run(cfg)``, the real host loop, with ``log_every``,
  ``eval_every`` and ``checkpoint_every`` past the end, timed inside the run by wrapping
  ``setup.train_step`` (``trainer_overhead.Probe``: every ``window`` steps it blocks on
  the state, records the time and runs the other contestants' windows). The run has one
  step more than the timed windows: the loop's last step is the monitored one (gradient
  norms), compiled then, so its compilation falls outside every window.
- ``bare``: the same module (``optlab.models.create_model("gpt", ...)``), the same
  initialization, a ``jax.jit``-ed donated step with the mean next-token cross-entropy and
  ``optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(...))`` with the same
  schedule, betas, ε and decay mask (the trainer runs ``optlab.clip_by_global_norm`` and
  ``optlab.adamw``: both are AdamW with the decay scaled by the learning rate).
- ``eager``: PyTorch, the same architecture written here as nanoGPT's ``model.py`` writes
  it (pre-LN blocks, fused ``c_attn`` q/k/v projection, causal
  ``scaled_dot_product_attention``, MLP 4× with GELU (tanh form, as ``jax.nn.gelu``), head
  tied to the token embedding, GPT-2's init), ``torch.optim.AdamW`` with the same groups
  and per-step learning rates, ``clip_grad_norm_(1.0)``; ``torch.set_num_threads(cpu
  count)`` (``--torch-threads``).
- ``compile``: the same with the model ``torch.compile``-d (as nanoGPT does; the
  optimizer step stays eager). Both skipped with a note when torch is missing.

The first window of each contestant is warm-up (compilation) and is not counted; then
``rounds`` rounds run one window of each, the order rotating every round; tokens/s are
medians over rounds and each ratio is the median of the per-round ratios (paired). Each
contestant's model FLOP rate (``optlab.train.lm.flops_per_token``: 6·N + 12·L·d·T per
token, the same for the PyTorch copy, whose parameter count is asserted equal) is set
against ``optlab.train.throughput.cpu_peak()``, a float32 1024² matmul probe: a share far
below it means the step is bound by per-operation overhead and memory traffic, not by
matrix arithmetic. Targets: optlab/bare >= 0.95 at both sizes, optlab/compile >= 1.1
(small) and >= 1.3 (medium). Each size prints the load average and the share of the CPUs
that other processes used during its timed rounds (after the warm-up, so that
``torch.compile``'s worker processes do not count): PyTorch's threads suffer most on a
shared CPU.

    python benchmarks/lm_throughput.py --size small   # ~1.5 min on a 2-core CPU
    python benchmarks/lm_throughput.py --quick        # small size, 2 rounds of 4 steps, ~1 min
    python benchmarks/lm_throughput.py                # both sizes: several minutes
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optlab.data
from optlab import config as config_lib
from optlab.models import create_model
from optlab.train import lm, loop, throughput

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from lm_torch import Torch, torch_matmul
from trainer_overhead import Probe, _cpu_seconds, bare_step, others_share


@dataclasses.dataclass(frozen=True)
class Size:
    name: str
    title: str
    n_layer: int
    n_head: int
    d_model: int
    block: int
    batch: int
    window: int  # steps a contestant runs per timed window
    target_compile: float
    target_bare: float = 0.95

    @property
    def options(self) -> dict:
        shape = {"n_layer": self.n_layer, "n_head": self.n_head, "d_model": self.d_model}
        return {**shape, "block_size": self.block, "dropout": 0.0}


SIZES = {
    "small": Size("small", "(a) GPT 4x4x128, block 64, batch 12", 4, 4, 128, 64, 12, 24, 1.1),
    "medium": Size("medium", "(b) GPT 6x6x384, block 256, batch 8", 6, 6, 384, 256, 8, 4, 1.3),
}
ORDER = ("optlab", "bare", "eager", "compile")


def make_config(size: Size, steps: int, data_dir: str, out: str) -> config_lib.RunConfig:
    """The trainer's run: token data, the GPT, the LM recipe's optimizer (filled in by the
    recipe; its schedule spans the recipe's 2,000 steps, not this short run), no metric
    pulls, evaluations or checkpoints before the end."""
    recipe = config_lib.RECIPES["tokens", "gpt"].values
    horizon = {"steps": recipe["train.steps"], **recipe["optimizer.schedule_args"]}
    never = steps + 1
    return config_lib.RunConfig(
        data=config_lib.DataConfig(dataset="tokens", data_dir=data_dir, batch_size=size.batch),
        model=config_lib.ModelConfig(model="gpt", options=size.options),
        optimizer=config_lib.OptimizerConfig(schedule_args=horizon),
        train=config_lib.TrainConfig(
            epochs=None, steps=steps, log_every=never, eval_every=never, checkpoint_every=never
        ),
        out=out,
    )


def same_batches(data: lm.TokenData, cfg: config_lib.RunConfig, count: int) -> list:
    """The trainer's first ``count`` batches as NumPy ``(x, y)``: the same seeded windows."""
    it = optlab.data.TokenBatchIterator(
        data.tokens("train"),
        block_size=data.block_size,
        batch_size=cfg.data.batch_size,
        seed=cfg.train.seed,
        prefetch=0,
    )
    return [(b["x"], b["y"]) for b in (next(it) for _ in range(count))]


@dataclasses.dataclass(frozen=True)
class AdamW:
    """The resolved recipe's AdamW, for the contestants that build their own."""

    learning_rate: float
    b1: float
    b2: float
    eps: float
    weight_decay: float
    clip: float
    rates: np.ndarray  # the learning rate of every step, from the same schedule

    @classmethod
    def of(cls, oc: config_lib.OptimizerConfig, steps: int) -> AdamW:
        assert oc.optimizer == "adamw" and oc.clip_norm, (oc.optimizer, oc.clip_norm)
        schedule = config_lib.build_schedule(oc, steps)
        count = jnp.arange(steps + 1)
        rates = np.asarray(
            jax.vmap(schedule)(count) if callable(schedule) else 0 * count + schedule
        )
        b1, b2, eps = (oc.args.get(k, v) for k, v in (("b1", 0.9), ("b2", 0.999), ("eps", 1e-8)))
        return cls(oc.learning_rate, b1, b2, eps, oc.weight_decay, oc.clip_norm, rates)

    def optax(self) -> optax.GradientTransformation:
        rates = jnp.asarray(self.rates, jnp.float32)
        schedule = lambda t: rates[jnp.minimum(t, len(rates) - 1)]  # noqa: E731
        return optax.chain(
            optax.clip_by_global_norm(self.clip),
            optax.adamw(
                schedule, self.b1, self.b2, self.eps, weight_decay=self.weight_decay,
                mask=lm.decay_mask,
            ),
        )  # fmt: skip


class Bare:
    """A plain jit + optax loop on the same flax GPT and initialization."""

    def __init__(self, size: Size, vocab: int, adamw: AdamW, batches: list, seed: int):
        options = {k: v for k, v in size.options.items() if k != "block_size"}
        self.model = create_model("gpt", num_classes=vocab, input_shape=(size.block,), **options)
        key = jax.random.PRNGKey(seed)
        sample = jnp.zeros((1, size.block), jnp.int32)
        self.params = self.model.init({"params": key, "dropout": key}, sample, train=False)[
            "params"
        ]
        self.tx = adamw.optax()
        self.opt_state = self.tx.init(self.params)
        self.batches, self.i, self.losses = batches, 0, []
        self.step = bare_step(self.model, self.tx)

    def window(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            x, y = jax.device_put(self.batches[self.i % len(self.batches)])
            self.i += 1
            self.params, self.opt_state, loss = self.step(self.params, self.opt_state, x, y)
            self.losses.append(loss)  # a device scalar: read after the run, no sync here
        jax.block_until_ready((self.params, self.opt_state, loss))
        return time.perf_counter() - start

    @property
    def loss(self) -> float:
        """The mean train loss over every step so far (as optlab logs its train_loss)."""
        return float(np.mean(jax.device_get(self.losses)))


# -- the paired run -------------------------------------------------------------------------
def _checked(step_fn: Callable, first_x: np.ndarray) -> Callable:
    """``step_fn``, asserting once that the trainer's first batch is the contestants'."""
    seen = []

    def step(state, batch):
        if not seen:
            seen.append(True)
            assert np.array_equal(np.asarray(batch["x"]), first_x), "not the same batches"
        return step_fn(state, batch)

    return step


def run_size(size: Size, rounds: int, data_dir: str, torch_threads: int | None) -> dict:
    """Times ``rounds`` windows of each contestant, alternating, in this process."""
    window = size.window
    order = list(ORDER if torch_threads is not None else ORDER[:2])
    schedule = [order[r % len(order) :] + order[: r % len(order)] for r in range(rounds + 1)]
    flat = [name for names in schedule for name in names]
    optlab_at = [i for i, name in enumerate(flat) if name == "optlab"]
    others: dict = {}
    times: dict[str, list[float]] = {name: [] for name in order}
    # the CPU's load over the timed rounds only (torch.compile's workers are other processes)
    cpu: dict = {}

    def run_others(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            times[flat[i]].append(others[flat[i]].window(window))
            if i == len(order) - 1:  # the warm-up round is over (it starts with optlab)
                cpu.update(start=_cpu_seconds(), wall=time.perf_counter(), load=os.getloadavg())

    def between(k: int) -> None:  # after optlab's k-th window (1-based)
        hi = optlab_at[k] if k < len(optlab_at) else len(flat)
        run_others(optlab_at[k - 1] + 1, hi)
        if k == len(optlab_at):  # every window has run
            cpu["share"] = others_share(cpu["start"], time.perf_counter() - cpu["wall"])
            cpu["load"] = (cpu["load"], os.getloadavg())

    timed = (rounds + 1) * window
    steps = timed + 1  # the last (monitored, compiled then) step falls outside the windows
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_config(size, steps, data_dir, os.path.join(tmp, size.name))
        real_build = loop.build_setup

        def build_setup(cfg, **kwargs):
            setup = real_build(cfg, **kwargs)
            batches = same_batches(setup.dataset, setup.cfg, timed)
            adamw = AdamW.of(setup.cfg.optimizer, steps)
            vocab = setup.dataset.num_classes
            others["bare"] = Bare(size, vocab, adamw, batches, setup.cfg.train.seed)
            for name in order[2:]:
                others[name] = Torch(size, vocab, adamw, batches, compiled=name == "compile")
            run_others(0, optlab_at[0])
            probe = Probe(_checked(setup.train_step, batches[0][0]), window, between)
            others["probe"] = probe
            return dataclasses.replace(
                setup, train_step=probe, monitored_step=probe.wrap(setup.monitored_step)
            )

        with mock.patch.object(loop, "build_setup", build_setup):
            result = loop.run(cfg, progress=False)
        times["optlab"] = others["probe"].times[: rounds + 1]
    assert result.summary["steps"] == steps, result.summary
    assert all(len(t) == rounds + 1 for t in times.values()), {k: len(v) for k, v in times.items()}
    bare = others["bare"]
    flops = lm.flops_per_token(bare.model, bare.params, size.block)
    n_flax = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(bare.params))
    for name in order[2:]:
        assert others[name].count() == n_flax, (name, others[name].count(), n_flax)
    tokens = window * size.batch * size.block
    return {
        "rates": {name: [tokens / t for t in ts[1:]] for name, ts in times.items()},
        "order": order,
        "flops": flops,
        "params": n_flax,
        "vocab": bare.model.vocab_size,
        "losses": {
            "optlab": result.summary.get("train_loss"),
            **{name: others[name].loss for name in order[1:]},
        },
        "others": cpu["share"],
        "load": cpu["load"],
    }


def report(size: Size, res: dict, peak: float, note: str) -> list[str]:
    rates, others = res["rates"], res["others"]
    med = {name: statistics.median(r) for name, r in rates.items()}
    (a1, _, _), (b1, _, _) = res["load"]
    busy = "" if others is None else f", other processes used {others:.0%} of the CPUs then"
    lines = [
        f"{size.title}  [{res['params'] / 1e6:.2f}M params, {res['flops'] / 1e6:.1f} MFLOP a "
        f"token, {size.window} steps a window; timed rounds: load {a1:.2f} -> {b1:.2f}{busy}]"
    ]
    if others is not None and others > 0.15:
        lines.append("  note: the CPU was shared; ratios stay paired, PyTorch suffers most")
    for name in res["order"]:
        r = rates[name]
        share = med[name] * res["flops"] / peak
        lines.append(
            f"  {name:8s} {med[name]:8.0f} tokens/s  (rounds {min(r):.0f}..{max(r):.0f})  "
            f"{med[name] * res['flops'] / 1e9:6.2f} GFLOP/s = {share:5.1%} of the matmul probe"
        )
    losses = ", ".join(f"{k} {v:.3f}" for k, v in res["losses"].items() if v is not None)
    steps = (len(rates["bare"]) + 1) * size.window
    lines.append(
        f"  mean train loss over the run, {steps} steps (optlab {steps + 1}: its logged "
        f"train_loss, the mean since the last log): {losses}"
    )
    rows = size.batch * size.block
    lines.append(
        f"  (the probe: {peak / 1e9:.0f} GFLOP/s on 1024x1024 matmuls; this step's matmuls are "
        f"{rows}x{size.d_model} by {size.d_model}x(up to {4 * size.d_model}) and the head's "
        f"{rows}x{size.d_model} by {size.d_model}x{res['vocab']}; a share far below 100% means "
        "per-operation overhead and memory traffic bound the step, not arithmetic)"
    )
    pairs = [("optlab", "bare", size.target_bare), ("optlab", "eager", None)]
    pairs += [("optlab", "compile", size.target_compile), ("bare", "eager", None)]
    pairs += [("bare", "compile", None)]
    for a, b, target in pairs:
        if b not in rates:
            lines.append(f"  {a}/{b}: skipped ({note})")
            continue
        ratios = [x / y for x, y in zip(rates[a], rates[b], strict=True)]
        ratio = statistics.median(ratios)
        verdict = (
            ""
            if target is None
            else f"   target >= {target:.2f}: " + ("MET" if ratio >= target else "MISSED")
        )
        lines.append(
            f"  {a + '/' + b:15s} {ratio:6.3f}  (per-round {min(ratios):.3f}..{max(ratios):.3f})"
            + verdict
        )
    return lines


def prepared_pystdlib(tmp: str) -> str:
    """Byte-level tokens of the Python standard library (``optlab.data.prepare_pystdlib``,
    ~2 s)."""
    return str(optlab.data.prepare_pystdlib(os.path.join(tmp, "pystdlib"), "byte"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small size, 2 rounds of 4 steps")
    parser.add_argument("--size", choices=[*SIZES, "both"], default="both")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 7)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch columns")
    parser.add_argument("--torch-threads", type=int, default=None, help="default: CPU count")
    parser.add_argument(
        "--data-dir", default=None, help="a prepared token folder (default: pystdlib, bytes)"
    )
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    rounds = args.rounds or (2 if args.quick else 7)
    use_torch = importlib.util.find_spec("torch") is not None and not args.no_torch
    threads = (args.torch_threads or os.cpu_count() or 1) if use_torch else None
    note = "--no-torch" if args.no_torch else "torch is not installed"
    peak = throughput.cpu_peak()
    if use_torch:
        __import__("torch").set_num_threads(threads)
        print(f"torch's own 1024x1024 float32 matmul: {torch_matmul() / 1e9:.1f} GFLOP/s")
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs, matmul "
        f"probe {peak / 1e9:.1f} GFLOP/s; "
        + (
            f"torch {__import__('torch').__version__}, torch.set_num_threads({threads})"
            if use_torch
            else f"torch skipped ({note})"
        )
        + f"; {rounds} rounds, order rotating",
        flush=True,
    )
    names = ["small"] if args.quick else list(SIZES) if args.size == "both" else [args.size]
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or prepared_pystdlib(tmp)
        print(f"data: {data_dir} (byte-level tokens, the trainer's random windows)", flush=True)
        for name in names:
            size = SIZES[name]
            if args.quick:
                size = dataclasses.replace(size, window=4)
            res = run_size(size, rounds, data_dir, threads)
            print("\n".join(report(size, res, peak, note)), flush=True)


if __name__ == "__main__":
    main()
