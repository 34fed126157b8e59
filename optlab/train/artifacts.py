"""The run folder: config.json, metrics.jsonl, summary.json, PNG curves (docs/architecture.md).

Only process 0 writes these; every write of a whole file is atomic (temp file + rename)
and metrics.jsonl is trimmed back to a checkpoint's step on resume.

Every file is strict JSON (RFC 8259): a non-finite number (NaN, ±Inf), which Python's
``json`` would write as the bare tokens ``NaN``/``Infinity`` that other readers reject, is
written as ``null`` and its key listed under ``"nonfinite"`` (``strict``), so a reader can
tell "not finite" from "not measured".
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import tempfile
from typing import Any

# The parts of a config that define *which* run a folder holds; the rest (length,
# cadences) may change when a run is resumed or extended.
IDENTITY = {
    "data": (
        "dataset",
        "tokenizer",
        "vocab_size",
        "batch_size",
        "val_fraction",
        "mode",
        "replacement",
        "batch_growth",
        "augment",
    ),
    "model": ("model", "activation", "init", "options"),
    "optimizer": (
        "optimizer",
        "learning_rate",
        "schedule",
        "schedule_args",
        "args",
        "weight_decay",
        "clip_norm",
        "state_dtype",
    ),
    "train": ("seed", "accumulate", "precision"),
}


def write_json_atomic(path: pathlib.Path, obj: Any) -> None:
    """``obj`` as strict JSON (``strict``), written to a temporary file and renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(strict(obj), indent=2, sort_keys=True, default=_jsonable, allow_nan=False)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        try:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            os.unlink(f.name)
            raise
    os.chmod(f.name, 0o644)  # NamedTemporaryFile makes owner-only files
    os.replace(f.name, path)


def _jsonable(x: Any) -> Any:
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def strict(record: Any) -> Any:
    """``record`` with every non-finite float replaced by None; a mapping with such values
    gains ``"nonfinite": [their keys]`` (dotted for nested mappings), so the reason is kept."""
    found: list[str] = []

    def clean(x: Any, where: str) -> Any:
        if hasattr(x, "tolist"):  # NumPy and JAX scalars and arrays
            x = x.tolist()
        if isinstance(x, float) and not math.isfinite(x):
            found.append(where)
            return None
        if isinstance(x, dict):
            return {k: clean(v, f"{where}.{k}" if where else str(k)) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v, where) for v in x]
        return x

    if not isinstance(record, dict):
        return clean(record, "")
    out = clean(record, "")
    if found:
        out["nonfinite"] = sorted(set(found) | set(record.get("nonfinite") or []))
    return out


class MetricsLog:
    """Appends one JSON object a line; ``trim(step)`` drops lines after ``step`` and any
    half-written last line (a run killed mid-write)."""

    def __init__(self, path: pathlib.Path):
        self.path = path

    def trim(self, step: int) -> None:
        """Keeps the valid records up to ``step``: a half-written line, bytes that are not
        UTF-8 or a line that is not a JSON object (a crash, a disk fault) are dropped, every
        valid record is kept."""
        if not self.path.exists():
            return
        kept = [raw for raw, r in self._lines() if _step_of(r) <= step]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(k + b"\n" for k in kept))
        os.replace(tmp, self.path)

    def write(self, record: dict) -> None:
        line = json.dumps(strict(record), default=_jsonable, allow_nan=False)
        with self.path.open("a") as f:
            f.write(line + "\n")
            f.flush()

    def records(self) -> list[dict]:
        """Every valid record (a line that is not UTF-8 or not a JSON object is skipped)."""
        return [r for _, r in self._lines()]

    def _lines(self) -> list[tuple[bytes, dict]]:
        if not self.path.exists():
            return []
        found = []
        for raw in self.path.read_bytes().splitlines():
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(record, dict):
                found.append((raw, record))
        return found


def _step_of(record: dict) -> float:
    step = record.get("step", 0)
    return step if isinstance(step, int | float) else math.inf


def plot_curves(records: list[dict], out_dir: pathlib.Path) -> list[pathlib.Path]:
    """loss.png and accuracy.png: train against validation over steps.

    Each figure is a ``matplotlib.figure.Figure`` on its own Agg canvas, never pyplot: the
    process's matplotlib backend and pyplot's figure list are left untouched (a notebook's
    later ``plt.show()`` still shows).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    written = []
    for metric in ("loss", "accuracy"):
        train = [
            (r["step"], r[f"train_{metric}"])
            for r in records
            if r.get(f"train_{metric}") is not None
        ]
        val = [
            (r["step"], r[f"val_{metric}"]) for r in records if r.get(f"val_{metric}") is not None
        ]
        if not train and not val:
            continue
        fig = Figure(figsize=(6, 4))
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        for points, label in ((train, "train"), (val, "validation")):
            if points:
                ax.plot(*zip(*points, strict=True), label=label)
        ax.set(xlabel="step", ylabel=metric, title=f"{metric}: train vs validation")
        if metric == "loss":
            ax.set_yscale("log")
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"{metric}.png"
        fig.savefig(path, dpi=100)
        written.append(path)
    return written


class TensorBoard:
    """Mirrors every metrics.jsonl record into TensorBoard event files (tensorboardX)."""

    def __init__(self, log_dir: pathlib.Path):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(log_dir))

    def write(self, record: dict) -> None:
        step = int(record["step"])
        for key, value in record.items():
            if key in ("step", "epoch"):
                continue
            if isinstance(value, dict):
                for name, v in value.items():
                    self.writer.add_scalar(f"{key}/{name}", float(v), step)
            elif isinstance(value, int | float) and math.isfinite(value):
                self.writer.add_scalar(key, float(value), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
