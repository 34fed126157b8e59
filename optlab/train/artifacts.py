"""The run folder: config.json, metrics.jsonl, summary.json, PNG curves (docs/architecture.md).

Only process 0 writes these; every write of a whole file is atomic (temp file + rename)
and metrics.jsonl is trimmed back to a checkpoint's step on resume.
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
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=_jsonable)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(f.name, 0o644)  # NamedTemporaryFile makes owner-only files
    os.replace(f.name, path)


def _jsonable(x: Any) -> Any:
    if hasattr(x, "tolist"):
        return x.tolist()
    return str(x)


def identity_differences(old: dict, new: dict) -> list[str]:
    """The identity fields in which two configs differ, as ``section.field`` names."""
    diffs = []
    for section, fields in IDENTITY.items():
        for field in fields:
            if old.get(section, {}).get(field) != new.get(section, {}).get(field):
                diffs.append(f"{section}.{field}")
    return diffs


class MetricsLog:
    """Appends one JSON object a line; ``trim(step)`` drops lines after ``step`` and any
    half-written last line (a run killed mid-write)."""

    def __init__(self, path: pathlib.Path):
        self.path = path

    def trim(self, step: int) -> None:
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("step", 0) <= step:
                kept.append(line)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(k + "\n" for k in kept))
        os.replace(tmp, self.path)

    def write(self, record: dict) -> None:
        clean = {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in record.items()
        }
        with self.path.open("a") as f:
            f.write(json.dumps(clean, default=_jsonable) + "\n")
            f.flush()

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


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
