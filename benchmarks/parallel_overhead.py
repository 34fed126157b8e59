"""Communication and step time of optlab's parallel strategies on simulated devices.

On simulated CPU devices absolute speed means little (the 8 "devices" share the same cores
and their "collectives" are memory copies), so this reports what carries over to real
hardware:

(a) Bytes communicated per train step under each strategy, read from the compiled program:
    the trainer's own jitted step (``optlab.train.setup.build_setup(cfg).train_step``, built
    from a config with ``--mesh``/``--strategy``) is lowered and compiled, and every
    all-reduce, all-gather, reduce-scatter, all-to-all and collective-permute in
    ``compiled.as_text()`` is counted with its shapes and dtypes. An op's bytes are those of
    the logical (unsharded) array it moves: an all-reduce's operand, an all-gather's output,
    a reduce-scatter's input, an all-to-all's or collective-permute's operand. These are
    printed against the theoretical count for the strategy (P = the parameters' bytes):

    - dp: one all-reduce of the gradients: P;
    - fsdp: all-gather of the params for the forward/backward pass + reduce-scatter of the
      gradients: 2P (XLA may gather a layer's params twice, for forward and backward);
    - zero1: all-reduce of the gradients + all-gather of the updated params from the state
      shards: 2P;
    - tp (model axis only): the activations; our estimate for column-parallel Dense layers is
      one all-gather of each layer's (B, width) output in the forward pass and one reduction
      of the same size in the backward pass (the params' gradients stay sharded);
    - dp+tp: tp's activations over ``model`` + dp's all-reduce of the per-device params
      (P / model) over ``data``.

    The scalar all-reduces of the loss and metrics are in the measured numbers (a few bytes).
    The measured bytes can be *below* the theory: the mesh axes are Auto, so XLA's SPMD
    partitioner picks the cheaper exchange. For fsdp on the default MLP (batch 256, widths
    512) it all-gathers the (256, 512) activations and all-reduces partial products instead
    of gathering the (512, 512) kernels (seen in ``--show-hlo``), hence a ratio near 0.5.
    For tp it exchanges one (256, 512) activation forward and one backward, not one per layer
    as the column-parallel estimate assumes: a kernel whose input arrives split on its
    contracting dimension is computed row-parallel (Megatron's column/row pairing).

(a') The same for the GPT (``--model gpt``: by default 2 layers, 8 heads, width 128, block
    64, the byte vocabulary, global batch 16, on a small generated text corpus), on the
    strategies' usual meshes (tp: data=1,model=8; dp+tp: data=4,model=2), against the theory
    for a transformer. N = parameters, so P = 4N bytes in float32; B·T·d the activations
    of one residual stream (global batch B, block T, width d), A = 4·B·T·d bytes; L blocks:

    - dp: one all-reduce of the gradients, P (logical bytes; a ring all-reduce sends
      2·(n−1)/n·P per device, n = devices);
    - fsdp: all-gather of the params in the forward pass and again in the backward pass,
      and a reduce-scatter of the gradients: 3P (2P if XLA keeps the forward gathers);
    - tp (Megatron-LM, Shoeybi et al. 2019, §3): per block 2 all-reduces of the (B, T, d)
      activations forward (after the row-parallel attention ``out`` and ``mlp_out``) and 2
      backward (the gradients at the column-parallel q/k/v and ``mlp_in`` inputs): 4·L·A,
      plus the vocabulary-parallel token table: its lookup is all-reduced forward and,
      tied as the head, the gradient of the final activations backward (2·A); the
      cross-entropy over vocabulary-split logits adds a few (B, T) reductions;
    - dp+tp: tp's (4·L + 2)·A at the per-device batch B/data over ``model``, plus an
      all-reduce over ``data`` of each device's parameter shard's gradients (P_shard).

(b) Step time of dp(8) on 8 simulated devices against one device running the same global
    batch: the two compiled steps alternate in windows, the order switching every round,
    and the medians and the median of the per-round ratios are printed. On a 2-core CPU
    expect dp(8) to be *slower* (8 programs share 2 cores, plus the copies): the number is
    the overhead of the SPMD machinery, not a speed-up.

Run it as a script; it sets ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` itself
before importing jax (unless ``XLA_FLAGS`` already holds a device count, or an accelerator
is to be used: ``--no-simulate``):

    .venv/bin/python benchmarks/parallel_overhead.py           # ~30 s on 2 CPU cores
    .venv/bin/python benchmarks/parallel_overhead.py --quick   # ~15 s
    .venv/bin/python benchmarks/parallel_overhead.py --model gpt --quick   # ~40 s, (a') only
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time

if __name__ == "__main__" and "--no-simulate" not in sys.argv:
    if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
        ).strip()

import jax
import numpy as np

from optlab import config as config_lib
from optlab.parallel import make_mesh, mesh_str
from optlab.train.loop import _put_batch
from optlab.train.setup import build_setup

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
DTYPE_BYTES = {
    "pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4,
    "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16,
}  # fmt: skip
_SHAPE = re.compile(r"\b(pred|[suf]\d+|bf16|c64|c128)\[([\d,]*)\]")
# `%name = SHAPE op-name(operands), attributes`; async pairs appear as op-start / op-done.
_OP = re.compile(
    r"=\s*(?P<out>\(.*?\)|\S+)\s+(?P<op>" + "|".join(COLLECTIVES) + r")(?P<start>-start)?\("
    r"(?P<args>[^)]*)\)"
)


def _shape_bytes(text: str) -> int:
    total = 0
    for dtype, dims in _SHAPE.findall(text):
        n = 1
        for d in filter(None, dims.split(",")):
            n *= int(d)
        total += n * DTYPE_BYTES[dtype]
    return total


def _replicas(line: str) -> int:
    """The size of one replica group of a collective (1 if the groups cannot be read)."""
    m = re.search(r"replica_groups=\{\{([\d,]+)\}", line)
    if m:
        return len(m.group(1).split(","))
    m = re.search(r"replica_groups=\[(\d+),(\d+)\]", line)  # iota form [groups,size]
    return int(m.group(2)) if m else 1


def collective_bytes(hlo: str) -> dict[str, int]:
    """Bytes of the logical arrays each kind of collective moves, summed over the program.

    The per-device shapes in the HLO are scaled to the logical array: an all-gather's output
    and a reduce-scatter's input are the whole array; an all-reduce's, all-to-all's or
    collective-permute's operand is what each device sends.
    """
    out = dict.fromkeys(COLLECTIVES, 0)
    for line in hlo.splitlines():
        m = _OP.search(line)
        if not m:
            continue
        op, result = m.group("op"), _shape_bytes(m.group("out"))
        if m.group("start"):  # async start: the result tuple holds operands and results
            result //= 2 if op != "all-reduce" else 1
        if op == "reduce-scatter":
            result *= _replicas(line)  # the result is one shard of the reduced array
        out[op] += result
    return out


def make_cfg(args, mesh: str | None, strategy: str) -> config_lib.RunConfig:
    cfg = config_lib.RunConfig(out=tempfile.mkdtemp())
    cfg.data.dataset, cfg.data.batch_size = "digits", args.batch_size
    cfg.model.model = "mlp"
    cfg.model.options = {"widths": list(args.widths)}
    cfg.train.steps, cfg.train.mesh, cfg.train.strategy = 10_000, mesh, strategy
    return cfg


def make_gpt_cfg(args, mesh: str | None, strategy: str) -> config_lib.RunConfig:
    """The GPT on a small generated corpus (``--dataset text``; its tokens cached in a
    temporary ``OPTLAB_CACHE`` unless one is set)."""
    folder = tempfile.mkdtemp()
    corpus = os.path.join(folder, "corpus")
    os.makedirs(corpus)
    for i in range(24):
        with open(os.path.join(corpus, f"mod_{i}.py"), "w", encoding="utf-8") as f:
            f.write("".join(f"def f{i}_{j}(x):\n    return x * {j} + {i}\n\n" for j in range(60)))
    os.environ.setdefault("OPTLAB_CACHE", os.path.join(folder, "cache"))
    cfg = config_lib.RunConfig(out=os.path.join(folder, "run"))
    cfg.data.dataset, cfg.data.data_dir, cfg.data.batch_size = "text", corpus, args.batch_size
    cfg.model.model = "gpt"
    cfg.model.options = {
        "n_layer": args.n_layer, "n_head": args.n_head, "d_model": args.d_model,
        "block_size": args.block_size, "dropout": 0.0,
    }  # fmt: skip
    cfg.train.steps, cfg.train.mesh, cfg.train.strategy = 10_000, mesh, strategy
    return cfg


class GPTBench:
    """The GPT's compiled trainer step under one strategy (its own token batches)."""

    def __init__(self, args, mesh: str | None, strategy: str):
        self.setup = build_setup(make_gpt_cfg(args, mesh, strategy))
        self.mesh = self.setup.mesh
        self.state = self.setup.init_state()
        self.batch = _put_batch(self.setup.next_batch(), self.setup.batch_sharding, 1)
        self.compiled = self.setup.train_step.lower(self.state, self.batch).compile()

    def hlo(self) -> str:
        return self.compiled.as_text()


def gpt_theory(name: str, bench: GPTBench, args) -> tuple[int, str]:
    """The transformer's theoretical bytes per step (the module docstring, (a'))."""
    params = jax.tree.leaves(bench.state.params)
    p_bytes = sum(x.size * x.dtype.itemsize for x in params)
    shard = sum(x.addressable_shards[0].data.nbytes for x in params)
    data = bench.mesh.shape.get("data", 1)
    acts = 4 * args.batch_size * args.block_size * args.d_model  # A, float32
    if name == "dp":
        return p_bytes, "grads all-reduce = P"
    if name == "fsdp":
        return 3 * p_bytes, "gather fwd + gather bwd + reduce-scatter = 3P"
    if name == "tp":
        return (4 * args.n_layer + 2) * acts, "(4L+2)·A"
    return (4 * args.n_layer + 2) * acts // data + shard, "(4L+2)·A/data + P_shard"


def gpt_main(args) -> None:
    """(a') for the GPT: each strategy's measured bytes against the transformer theory."""
    size = f"{args.n_layer} layers × {args.n_head} heads × {args.d_model}, block {args.block_size}"
    print(f"GPT {size}, vocabulary 256 (tied), global batch {args.batch_size}, AdamW")
    cases = {
        "dp": ("data=8", "dp"),
        "fsdp": ("data=8", "fsdp"),
        "tp": ("data=1,model=8", "tp"),
        "dp+tp": ("data=4,model=2", "dp+tp"),
    }
    print("\n(a') bytes communicated per step, from the compiled program's collectives")
    print(f"{'strategy':<9}{'mesh':<16}{'all-red':>10}{'all-gath':>10}{'red-scat':>10}"
          f"{'other':>9}{'measured':>11}{'theory':>11}{'ratio':>7}  theory is")  # fmt: skip
    for name, (mesh, strategy) in cases.items():
        bench = GPTBench(args, mesh, strategy)
        got = collective_bytes(bench.hlo())
        total, (want, how) = sum(got.values()), gpt_theory(name, bench, args)
        other = got["all-to-all"] + got["collective-permute"]
        if args.show_hlo:
            for line in bench.hlo().splitlines():
                if _OP.search(line):
                    print(f"    {line.strip()[:160]}")
        print(
            f"{name:<9}{mesh_str(bench.mesh):<16}{fmt(got['all-reduce']):>10}"
            f"{fmt(got['all-gather']):>10}{fmt(got['reduce-scatter']):>10}{fmt(other):>9}"
            f"{fmt(total):>11}{fmt(want):>11}{total / want:>7.2f}  {how}"
        )
        params = jax.tree.leaves(bench.state.params)
    n = sum(x.size for x in params)
    acts = 4 * args.batch_size * args.block_size * args.d_model
    print(f"N = {n:,} parameters, P = {fmt(4 * n)}; A = 4·B·T·d = {fmt(acts)}")


class Bench:
    """A strategy's compiled trainer step, its state and a device batch."""

    def __init__(self, args, mesh: str | None, strategy: str):
        cfg = make_cfg(args, mesh, strategy)
        # Batches from an iterator (not a device-resident dataset): then `train_step` is the
        # plain `jax.jit(step, in_shardings=(state, batch), ...)` and can be lowered.
        from optlab.data import load_dataset

        ds = load_dataset("digits", seed=0)
        rng = np.random.default_rng(0)

        def batches():
            while True:
                idx = rng.integers(0, len(ds.x_train), args.batch_size)
                yield ds.x_train[idx], ds.y_train[idx]

        self.setup = build_setup(cfg, dataset=ds, train_batches=batches())
        self.mesh = self.setup.mesh
        self.state = self.setup.init_state()
        self.batch = _put_batch(self.setup.next_batch(), self.setup.batch_sharding, 1)
        self.compiled = self.setup.train_step.lower(self.state, self.batch).compile()

    def hlo(self) -> str:
        return self.compiled.as_text()

    def run(self, steps: int) -> float:
        t0 = time.perf_counter()
        state = self.state
        for _ in range(steps):
            state, _ = self.compiled(state, self.batch)
        jax.block_until_ready(state)
        self.state = state
        return (time.perf_counter() - t0) / steps


def theory(name: str, bench: Bench, args) -> tuple[int, str]:
    params = bench.state.params
    p_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params))
    model = bench.mesh.shape.get("model", 1)
    widths = [*args.widths, 10]
    acts = 2 * sum(args.batch_size * w * 4 for w in widths)  # fwd gather + bwd reduce, f32
    if name == "dp":
        return p_bytes, "grads all-reduce = P"
    if name in ("fsdp", "zero1"):
        how = "gather params + reduce-scatter grads" if name == "fsdp" else "grads + gather params"
        return 2 * p_bytes, f"{how} = 2P"
    if name == "tp":
        return acts, "activations 2·B·Σwidth·4"
    return acts + p_bytes // model, "activations + P/model all-reduce"


def fmt(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (~15 s)")
    parser.add_argument("--model", choices=("mlp", "gpt"), default="mlp")
    parser.add_argument("--batch-size", type=int, default=None, help="256 (MLP), 16 (GPT)")
    parser.add_argument("--n-layer", type=int, default=2, help="the GPT's blocks")
    parser.add_argument("--n-head", type=int, default=8, help="the GPT's heads")
    parser.add_argument("--d-model", type=int, default=128, help="the GPT's width")
    parser.add_argument("--block-size", type=int, default=64, help="the GPT's block")
    parser.add_argument("--widths", type=int, nargs="+", default=[512, 512])
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 15)")
    parser.add_argument("--window", type=int, default=None, help="steps per window (20)")
    parser.add_argument("--no-simulate", action="store_true", help="use the real devices")
    parser.add_argument("--show-hlo", action="store_true", help="print each collective op")
    args = parser.parse_args()
    args.batch_size = args.batch_size or (16 if args.model == "gpt" else 256)
    rounds = args.rounds or (6 if args.quick else 15)
    window = args.window or (10 if args.quick else 20)
    n = jax.device_count()
    if n < 8:
        sys.exit("needs 8 devices: run as a script (it sets XLA_FLAGS) or on 8 accelerators")
    if args.model == "gpt":
        print(f"{n} {jax.default_backend()} devices")
        return gpt_main(args)
    print(f"{n} {jax.default_backend()} devices; MLP 64-{'-'.join(map(str, args.widths))}-10 "
          f"on digits, global batch {args.batch_size}, Adam")  # fmt: skip

    cases = {
        "dp": ("data=8", "dp"),
        "fsdp": ("data=8", "fsdp"),
        "zero1": ("data=8", "zero1"),
        "tp": ("data=1,model=8", "tp"),
        "dp+tp": ("data=4,model=2", "dp+tp"),
    }
    print("\n(a) bytes communicated per step, from the compiled program's collectives")
    print(f"{'strategy':<9}{'mesh':<16}{'all-red':>10}{'all-gath':>10}{'red-scat':>10}"
          f"{'other':>9}{'measured':>11}{'theory':>11}{'ratio':>7}  theory is")  # fmt: skip
    benches = {}
    for name, (mesh, strategy) in cases.items():
        bench = Bench(args, mesh, strategy)
        benches[name] = bench
        got = collective_bytes(bench.hlo())
        total = sum(got.values())
        want, how = theory(name, bench, args)
        other = got["all-to-all"] + got["collective-permute"]
        if args.show_hlo:
            for line in bench.hlo().splitlines():
                if _OP.search(line):
                    print(f"    {line.strip()[:160]}")
        print(
            f"{name:<9}{mesh_str(bench.mesh):<16}{fmt(got['all-reduce']):>10}"
            f"{fmt(got['all-gather']):>10}{fmt(got['reduce-scatter']):>10}{fmt(other):>9}"
            f"{fmt(total):>11}{fmt(want):>11}{total / want:>7.2f}  {how}"
        )
    p_bytes = sum(x.size * 4 for x in jax.tree.leaves(benches["dp"].state.params))
    print(f"P = params bytes = {fmt(p_bytes)}")

    print(f"\n(b) step time, dp(8) vs one device, same global batch {args.batch_size}")
    one = Bench(args, None, "dp")
    assert one.mesh.devices.size == 1 and mesh_str(make_mesh()) == "data=1"
    dp8 = benches["dp"]
    one.run(window), dp8.run(window)  # warm-up
    times: dict[str, list[float]] = {"one": [], "dp8": []}
    ratios = []
    for r in range(rounds):
        order = [("one", one), ("dp8", dp8)][:: 1 if r % 2 == 0 else -1]
        got = {k: b.run(window) for k, b in order}
        for k, v in got.items():
            times[k].append(v)
        ratios.append(got["dp8"] / got["one"])
    t1, t8 = statistics.median(times["one"]), statistics.median(times["dp8"])
    print(f"{'':<22}{'ms/step':>9}{'steps/s':>9}")
    print(f"{'one device':<22}{t1 * 1e3:>9.2f}{1 / t1:>9.0f}")
    print(f"{'dp(8), simulated':<22}{t8 * 1e3:>9.2f}{1 / t8:>9.0f}")
    print(f"dp(8)/one step time (median of {rounds} paired rounds of {window} steps): "
          f"{statistics.median(ratios):.2f}  ({os.cpu_count()} CPU cores)")  # fmt: skip


if __name__ == "__main__":
    main()
