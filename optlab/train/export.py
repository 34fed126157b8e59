"""Export a trained run for inference as a serialized ``jax.export`` artifact (lecture 01).

Lecture 01's inference-hardware section: a trained model leaves the training framework as
a fixed function of its input, the weights baked in, lowered once for the machines that
will serve it (CPUs, GPUs, TPUs) and possibly in a narrower number format.
``export_run(out)`` does that with ``jax.export``: the run's newest good checkpoint is
restored, its weights (optionally cast to float16 or bfloat16) are closed over by
``predict(x) -> float32 logits``, and the jitted function is lowered to StableHLO for each
platform and serialized. The folder it writes (``<out>/export/`` by default) holds:

- ``model.jaxexport``: ``Exported.serialize()`` bytes; ``load_exported`` (or
  ``jax.export.deserialize(blob).call(x)``) runs it from any JAX program, no optlab or
  Flax needed, and it stays loadable by later JAX versions (jax.export's compatibility
  guarantee).
- ``model.json``: what a caller must know: the input shape (``"b"`` marks the symbolic
  batch axis), the weights' dtype, the number of classes, the platforms, the run's test
  accuracy, and the standardization the inputs need (``x ← (x − mean) / std`` with the
  training statistics, as ``Dataset.normalize`` applies; the artifact expects
  standardized float32 inputs).

Lowering for ``cuda`` and ``tpu`` happens here, on a CPU-only machine: ``jax.export``
lowers across platforms without their devices. Running the artifact on those platforms
needs those devices (and a JAX with their plugin); ``.call`` picks the platform of the
device it runs on. ONNX and TFLite are out of scope: ``jax.export`` is JAX's own portable
format, and converting to others is left to their converters.

Example::

    from optlab.train.export import export_run, load_exported

    path = export_run("runs/default", dtype="bfloat16")  # runs/default/export/model.jaxexport
    predict = load_exported(path)
    logits = predict(x_test)  # (batch, num_classes) float32, any batch size
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

from optlab import config as config_lib

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
        raise config_lib.ConfigError(f"--dtype: unknown {dtype!r}; choose from {list(DTYPES)}")
    if isinstance(platforms, str):
        platforms = [p for p in platforms.split(",") if p]
    platforms = tuple(platforms)
    bad = [p for p in platforms if p not in PLATFORMS]
    if bad or not platforms:
        raise config_lib.ConfigError(
            f"--platforms: unknown {bad[0] if bad else 'empty list'!r}; use a comma-separated "
            f"subset of {','.join(PLATFORMS)}"
        )
    if len(set(platforms)) != len(platforms):
        raise config_lib.ConfigError(f"--platforms: {','.join(platforms)} repeats a platform")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise config_lib.ConfigError(
            f"--batch must be a positive integer (or unset: any batch size), got {batch!r}"
        )
    if importlib.util.find_spec("flatbuffers") is None:
        raise config_lib.ConfigError(
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


def _stats(dataset: Any) -> dict | None:
    if dataset.stats is None:
        return None
    return {k: np.asarray(v).tolist() for k, v in dataset.stats.items()}


def export_run(
    out: str | os.PathLike,
    *,
    dest: str | os.PathLike | None = None,
    dtype: str = "float32",
    platforms: Sequence[str] | str = ("cpu", "cuda", "tpu"),
    batch: int | None = None,
) -> pathlib.Path:
    """Exports the trained run in folder ``out`` as ``model.jaxexport`` + ``model.json``.

    The exported function is ``predict(x) = model.apply(weights, x.astype(dtype),
    train=False).astype(float32)``: evaluation mode (dropout off, batch norm's running
    averages), the weights, batch statistics included, cast to ``dtype`` and baked in as
    constants, so the whole forward pass runs in ``dtype`` unless the model fixes its own
    compute dtype. Its input is float32 of shape ``(batch, *input_shape)``, standardized
    as in training (``model.json`` records the statistics); its output is float32 logits
    ``(batch, num_classes)`` (``(batch, 1)`` for regression).

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

    Returns:
      The path of ``model.jaxexport``.

    Raises:
      ConfigError: naming the flag, for an unknown ``dtype`` or platform, a bad ``batch``,
        a folder with no run or no readable checkpoint, or no ``flatbuffers`` package.
    """
    platforms = _check(dtype, platforms, batch)
    from optlab.train.loop import restore_run

    cfg, setup, state = restore_run(str(out))
    dataset, model = setup.dataset, setup.model
    compute = DTYPES[dtype]
    variables = _cast({"params": state.params, **state.model_state}, compute)

    def predict(x: jax.Array) -> jax.Array:
        logits = model.apply(variables, x.astype(compute), train=False)
        return logits.astype(jnp.float32)

    batch_dim = batch if batch is not None else jax.export.symbolic_shape("b")[0]
    spec = jax.ShapeDtypeStruct((batch_dim, *dataset.input_shape), jnp.float32)
    exported = jax.export.export(jax.jit(predict), platforms=platforms)(spec)
    blob = exported.serialize()

    dest = pathlib.Path(dest) if dest is not None else pathlib.Path(out) / "export"
    path = dest / ARTIFACT
    _write_bytes_atomic(path, bytes(blob))
    summary_path = pathlib.Path(out) / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    meta = {
        "artifact": ARTIFACT,
        "input_shape": ["b" if batch is None else batch, *dataset.input_shape],
        "input_dtype": "float32",
        "output_shape": ["b" if batch is None else batch, *exported.out_avals[0].shape[1:]],
        "dtype": dtype,
        "task": dataset.task,
        "num_classes": dataset.num_classes,
        "platforms": list(platforms),
        "model": cfg.model.model,
        "dataset": cfg.data.dataset,
        "standardize": _stats(dataset),
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

    Returns ``x -> exported.call(x)``, ``x`` converted to a float32 array first; it runs
    on the platform of JAX's default device, which must be one the artifact was exported
    for.

    Raises:
      ConfigError: when ``path`` holds no artifact.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / ARTIFACT
    if not path.is_file():
        raise config_lib.ConfigError(f"--artifact: no {ARTIFACT} at {path}")
    exported = jax.export.deserialize(bytearray(path.read_bytes()))
    return lambda x: exported.call(jnp.asarray(x, jnp.float32))
