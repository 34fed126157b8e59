"""Kill a GPT run (SIGKILL) and resume it: exactly the uninterrupted result (issue 12).

The same pattern as ``test_resume.py`` for classifiers, on a tiny GPT over a text corpus:
the final parameters bit for bit and every metrics.jsonl record (the logged training losses,
the evaluations) equal, with the Grain iterator's position restored from the checkpoint.
With ``--tokenizer bpe`` the tokenizer trained for the run is reused on resume: its file in
the run folder is unchanged and the losses are bit-identical.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import NamedTuple

import jax
import numpy as np
import pytest

from optlab import cli
from optlab.cli._flags import config_from_args
from optlab.train import loop
from tests.train.test_lm import TINY, assert_one_line_error, run_cli, snapshot, write_corpus

pytestmark = pytest.mark.slow  # trainer subprocesses killed at several moments

# 110 steps (the recipe warms up for 100); dropout on, so the restored rng matters too;
# checkpoints every 20 steps fall between log lines every 7
STEPS = 110
LOOP = [
    "--steps", str(STEPS), "--checkpoint-every", "20", "--eval-every", "55", "--log-every", "7",
    "--model-arg", "dropout=0.1",
]  # fmt: skip
CLOCK = {"steps_per_second", "step_seconds", "tokens_per_second", "mfu"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPTLAB_CACHE", str(root))  # the subprocesses inherit it
        yield root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus") / "src", per_split=(8, 2, 2))


def _flags(corpus, tokenizer: str):
    extra = ["--tokenizer", "bpe", "--vocab-size", "300"] if tokenizer == "bpe" else []
    return [*TINY, *LOOP, "--dataset", "text", "--data-dir", str(corpus), *extra]


def _cfg(flags, out):
    return config_from_args(cli.parser().parse_args(["train", *flags, "--out", str(out)]))


class _Reference(NamedTuple):
    state: object
    summary: dict
    out: object


def _reference(tmp_path_factory, corpus, tokenizer):
    out = tmp_path_factory.mktemp(f"ref-{tokenizer}")
    result = loop.run(_cfg(_flags(corpus, tokenizer), out), progress=False)
    return _Reference(result.state, result.summary, out)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache, corpus):
    """The uninterrupted byte-tokenizer run."""
    return _reference(tmp_path_factory, corpus, "byte")


def _start(flags, out, kill_at_save=0):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.train.runner", str(kill_at_save), "--", *flags,
         "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _train_lines(out):
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if '"train_loss"' in x]


def _records(out):
    """metrics.jsonl without the wall-clock fields."""
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in CLOCK} for x in lines]


def _assert_same_as_reference(result, reference, out):
    for got, want in zip(
        jax.tree.leaves(result.state.params), jax.tree.leaves(reference.state.params), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))  # bit for bit
    steps = [r["step"] for r in _train_lines(out)]
    assert steps == sorted(set(steps)), f"duplicated or out-of-order metric lines: {steps}"
    assert steps[-1] == STEPS
    assert _records(out) == _records(reference.out)  # every logged loss equal, no extra line
    for key in ("train_loss", "val_loss", "test_loss", "val_bits_per_byte", "test_bits_per_byte"):
        assert result.summary[key] == reference.summary[key], key


def _kill_after_lines(proc, out, lines: int, delay: float = 0.0) -> None:
    deadline = time.time() + 180
    while len(_train_lines(out)) < lines and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.005)
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.parametrize("kill_at_save", [40, -40], ids=["save_in_flight", "save_on_disk"])
def test_gpt_killed_at_a_save_resumes_bit_identical(tmp_path, corpus, reference, kill_at_save):
    flags = _flags(corpus, "byte")
    proc = _start(flags, tmp_path, kill_at_save)
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == -signal.SIGKILL, stderr
    result = loop.run(_cfg(flags, tmp_path), progress=False)
    _assert_same_as_reference(result, reference, tmp_path)


@pytest.mark.parametrize("seed", range(3))
def test_gpt_killed_at_random_moments_resumes_bit_identical(tmp_path, corpus, reference, seed):
    # seed 0 draws 0 lines: killed while still compiling (nothing saved yet, or the folder
    # half made); the others land before, during or after the saves every 20 steps
    rng = np.random.default_rng(seed)
    lines, delay = int(rng.integers(0, 15)) if seed else 0, float(rng.uniform(0, 0.02))
    flags = _flags(corpus, "byte")
    proc = _start(flags, tmp_path)
    _kill_after_lines(proc, tmp_path, lines, delay)
    print(f"seed {seed}: killed after {len(_train_lines(tmp_path))} log lines")
    result = loop.run(_cfg(flags, tmp_path), progress=False)
    _assert_same_as_reference(result, reference, tmp_path)


def test_bpe_run_killed_and_resumed_reuses_its_tokenizer(
    tmp_path_factory, tmp_path, capsys, cache, corpus
):
    bpe_reference = _reference(tmp_path_factory, corpus, "bpe")
    flags = _flags(corpus, "bpe")
    proc = _start(flags, tmp_path, kill_at_save=-60)  # step 60 on disk, then SIGKILL
    _, stderr = proc.communicate(timeout=180)
    assert proc.returncode == -signal.SIGKILL, stderr
    tokenizer = snapshot(tmp_path / "tokenizer")
    assert tokenizer  # saved with the run, before the kill
    assert tokenizer == snapshot(bpe_reference.out / "tokenizer")  # same corpus, same merges
    result = loop.run(_cfg(flags, tmp_path), progress=False)
    assert snapshot(tmp_path / "tokenizer") == tokenizer  # reused, not retrained or rewritten
    _assert_same_as_reference(result, bpe_reference, tmp_path)
    from optlab.train.generate import generate

    text = generate(tmp_path, "def ", max_tokens=12, seed=0)  # decoded by the run's own BPE
    assert text.startswith("def ") and text == generate(bpe_reference.out, "def ", max_tokens=12)

    # the finished folder resumed with another vocabulary, or the byte tokenizer: refused
    before = snapshot(tmp_path)
    capsys.readouterr()  # the resume's own "resuming from step 60" line
    for other in (["--tokenizer", "bpe", "--vocab-size", "320"], []):
        argv = [*TINY, *LOOP, "--dataset", "text", "--data-dir", corpus, *other]
        code, _, err = run_cli(capsys, "train", *argv, "--out", tmp_path)
        assert_one_line_error(code, err, "--out", "--vocab-size" if other else "--tokenizer")
        assert snapshot(tmp_path) == before
