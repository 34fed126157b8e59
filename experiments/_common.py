"""What every experiment script shares: its flags, its output folder, CSV rows, the verdict.

An experiment is ``experiments/NN_name.py`` with a module docstring (the claim, the
command, the expected result, the run time on a 2-core CPU) and ``main(argv) -> dict``.
``--quick`` shrinks it to a smoke test (seconds); ``--out`` chooses the folder (default
``experiments/out/NN_name``). The verdict is computed from the run's own numbers.
"""

from __future__ import annotations

import argparse
import csv
import pathlib
import time
from collections.abc import Sequence
from typing import Any


def parser(doc: str | None, default_out: str) -> argparse.ArgumentParser:
    """The shared flags: ``--out`` and ``--quick``; an experiment adds its own."""
    summary = (doc or "").strip().splitlines()[0] if doc else None
    p = argparse.ArgumentParser(description=summary)
    p.add_argument(
        "--out", default=f"experiments/out/{default_out}", help="folder for PNG and CSV files"
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test in seconds")
    return p


def out_dir(path: str) -> pathlib.Path:
    folder = pathlib.Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_csv(path: pathlib.Path, rows: Sequence[dict[str, Any]]) -> pathlib.Path:
    """Rows of dicts (their keys, in first-seen order, are the header)."""
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def verdict(claim: str, holds: bool, evidence: str) -> str:
    """The line an experiment ends with: whether its numbers support the lecture's claim."""
    line = f"VERDICT: {'SUPPORTED' if holds else 'NOT SUPPORTED'}: {claim} ({evidence})"
    print(line)
    return line


class Timer:
    """``with Timer() as t: ...; t.seconds``."""

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start
