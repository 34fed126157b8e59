"""Checkpoint faults (issue 11): retention keeps the good ones, the metadata is covered by a
digest, and a full, read-only disk ends the run in one line with nothing lost.

Bad checkpoints (bit flips, truncations, junk step folders, edited metadata) are made on
real orbax checkpoints. Full and read-only disks are real tmpfs mounts when this process
may mount (root): ``mount -t tmpfs -o size=...`` and ``mount -o remount,ro``; otherwise an
``OSError(ENOSPC / EROFS)`` is injected at the same place (the write probe, or orbax's
background write of the metadata). Each such test prints which way it ran
(``fault: tmpfs ...`` or ``fault: injected ...``); ``OPTLAB_TEST_NO_MOUNT=1`` forces the
injected way.
"""

import contextlib
import errno
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optlab
from optlab import cli
from optlab.cli._flags import config_from_args
from optlab.errors import CheckpointWriteError
from optlab.train import checkpoint_files, loop
from optlab.train.checkpoint import Checkpointer
from optlab.train.state import create_state

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Large enough that orbax writes the arrays to a data file of their own: OCDBT inlines
# values of under ~100 bytes into its b-tree nodes (whose CRC-32C catches a flip), and
# the per-process node files it merged are never read again.
PARAMS = {"Dense_0": {"kernel": jnp.arange(4096.0).reshape(64, 64), "bias": jnp.ones(64)}}
TX = optlab.adam(1e-3)


def _state(step: int):
    params = jax.tree.map(lambda p: p + step, PARAMS)
    return create_state(params, TX.init(params), seed=0)._replace(step=jnp.asarray(step, jnp.int32))


def _abstract():
    return jax.eval_shape(lambda: _state(0))


def _save_all(directory, steps, *, keep_last=2, metrics=None, **kw):
    ck = Checkpointer(str(directory), keep_last=keep_last, async_save=False, **kw)
    for step in steps:
        m = None if metrics is None else {"val_accuracy": metrics[step]}
        assert ck.save(step, _state(step), {"step": step, "data": {"epoch": step}}, m)
    ck.close()


def _open_and_restore(directory, **kw):
    """(restored step or None, the report lines, the steps left) of a fresh checkpointer."""
    reports: list[str] = []
    ck = Checkpointer(str(directory), async_save=False, **kw)
    restored = ck.restore_latest_good(_abstract(), report=reports.append)
    steps = ck.steps()
    ck.close()
    return (None if restored is None else restored[1]["step"]), reports, steps


def _assert_all_good(directory, **kw):
    """Every checkpoint left in ``directory`` restores and holds its own step's state."""
    ck = Checkpointer(str(directory), async_save=False, read_only=True, **kw)
    for step in ck.steps():
        problem, restored = ck._check(step, _abstract())
        assert problem is None, f"checkpoint {step} {problem}"
        got_leaves, want_leaves = jax.tree.leaves(restored[0]), jax.tree.leaves(_state(step))
        for got, want in zip(got_leaves, want_leaves, strict=True):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    ck.close()


def _data_files(step_dir: pathlib.Path) -> list[pathlib.Path]:
    files = [p for p in step_dir.rglob("*") if p.is_file() and "/d/" in str(p)]
    return sorted(files, key=lambda p: p.stat().st_size, reverse=True)


def _damage(step_dir: pathlib.Path, how: str) -> None:
    if how == "meta_bit_flip":  # one bit of the metadata's JSON (its digest catches it)
        target = step_dir / "meta" / "metadata"
        raw = bytearray(target.read_bytes())
        raw[raw.index(b'"epoch": ') + 9] ^= 0x01
        target.write_bytes(bytes(raw))
        return
    target = _data_files(step_dir)[0]
    raw = bytearray(target.read_bytes())
    if how == "bit_flip":
        raw[len(raw) // 2] ^= 0x10
        target.write_bytes(bytes(raw))
    else:  # truncate
        target.write_bytes(bytes(raw[: len(raw) // 2]))


def _quarantine(directory: pathlib.Path) -> list[str]:
    q = checkpoint_files.quarantine_dir(directory)
    return sorted(p.name for p in q.iterdir()) if q.exists() else []


def _temporaries(directory: pathlib.Path) -> list[str]:
    return sorted(p.name for p in directory.glob(f"*{checkpoint_files.TEMPORARY}*"))


# -- retention counts only good checkpoints ------------------------------------------


# orbax leaves a read coroutine behind when a truncated file fails to restore.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("how", ["bit_flip", "truncate", "meta_bit_flip"])
def test_a_damaged_newest_checkpoint_is_set_aside_and_the_good_one_kept(tmp_path, how):
    ck_dir = tmp_path / "checkpoints"
    _save_all(ck_dir, [1, 2, 3])  # keeps 2 and 3
    _damage(ck_dir / "3", how)
    step, reports, steps = _open_and_restore(ck_dir)
    assert step == 2 and steps == [2], (reports, steps)
    assert len(reports) == 1 and reports[0].startswith("checkpoint 3 ") and "moved to" in reports[0]
    assert _quarantine(ck_dir) == ["3"]
    # The rerun writes step 3 again (no "already saved") and retention then prunes by
    # good checkpoints only: the good 2 goes when 4 arrives, never for the bad 3.
    _save_all(ck_dir, [3, 4])
    assert Checkpointer(str(ck_dir), read_only=True).steps() == [3, 4]
    _assert_all_good(ck_dir)
    _damage(ck_dir / "4", how)  # set aside a second time: no name collision
    assert _open_and_restore(ck_dir)[0] == 3
    assert _quarantine(ck_dir) == ["3", "4"]
    _damage(ck_dir / "3", how)
    _open_and_restore(ck_dir)
    assert _quarantine(ck_dir) == ["3", "3.1", "4"]


def _junk(ck_dir: pathlib.Path, kind: str) -> None:
    junk = ck_dir / "999999"
    if kind == "empty_folder":
        junk.mkdir()
    elif kind == "garbage_files":
        junk.mkdir()
        (junk / "state").write_text("not a checkpoint")
        (junk / "_CHECKPOINT_METADATA").write_text("{broken")
    else:  # half a checkpoint: a real one without its arrays
        shutil.copytree(ck_dir / "2", junk)
        shutil.rmtree(junk / "state")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("kind", ["empty_folder", "garbage_files", "half_a_checkpoint"])
def test_a_junk_step_folder_never_takes_a_keep_slot(tmp_path, kind):
    ck_dir = tmp_path / "checkpoints"
    _save_all(ck_dir, [1, 2])
    _junk(ck_dir, kind)
    assert 999999 in Checkpointer(str(ck_dir), read_only=True).steps()  # orbax counts it
    step, reports, steps = _open_and_restore(ck_dir)
    assert step == 2 and steps == [1, 2]
    assert len(reports) == 1 and "checkpoint 999999 is unreadable" in reports[0]
    _save_all(ck_dir, [3, 4])
    assert Checkpointer(str(ck_dir), read_only=True).steps() == [3, 4]  # no junk slot
    assert _quarantine(ck_dir) == ["999999"]


def test_a_junk_folder_is_set_aside_even_when_the_first_call_is_a_save(tmp_path):
    ck_dir = tmp_path / "checkpoints"
    _save_all(ck_dir, [1, 2])
    _junk(ck_dir, "empty_folder")
    _save_all(ck_dir, [3])  # no restore_latest_good first: save verifies before pruning
    assert Checkpointer(str(ck_dir), read_only=True).steps() == [2, 3]
    assert _quarantine(ck_dir) == ["999999"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_best_slot_counts_only_good_checkpoints(tmp_path):
    ck_dir = tmp_path / "checkpoints"
    best = {"best_metric": "val_accuracy", "best_mode": "max"}
    accuracy = {1: 0.9, 2: 0.5, 3: 0.6, 4: 0.55}
    _save_all(ck_dir, [1, 2, 3], keep_last=1, metrics=accuracy, **best)
    assert Checkpointer(str(ck_dir), read_only=True).steps() == [1, 3]  # best + last
    _damage(ck_dir / "1", "truncate")  # the best is bad
    step, reports, _ = _open_and_restore(ck_dir, keep_last=1, **best)
    assert step == 3 and "checkpoint 1 " in reports[0]
    _save_all(ck_dir, [4], keep_last=1, metrics=accuracy, **best)
    # 3 is now the best of the good ones (0.6 > 0.55), and 4 the last
    assert Checkpointer(str(ck_dir), read_only=True).steps() == [3, 4]
    _assert_all_good(ck_dir)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_when_every_checkpoint_is_bad_one_line_says_the_run_starts_over(tmp_path):
    ck_dir = tmp_path / "checkpoints"
    _save_all(ck_dir, [1, 2])
    _damage(ck_dir / "1", "truncate")
    _damage(ck_dir / "2", "meta_bit_flip")
    step, reports, steps = _open_and_restore(ck_dir)
    assert step is None and steps == []
    assert len(reports) == 3 and "starts over from step 0" in reports[-1]
    assert all("\n" not in r for r in reports)
    assert _quarantine(ck_dir) == ["1", "2"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_read_only_reports_bad_checkpoints_and_moves_nothing(tmp_path):
    ck_dir = tmp_path / "checkpoints"
    _save_all(ck_dir, [1, 2])
    _damage(ck_dir / "2", "truncate")
    step, reports, steps = _open_and_restore(ck_dir, read_only=True)
    assert step == 1 and steps == [1, 2] and _quarantine(ck_dir) == []
    assert "checkpoint 2 " in reports[0] and "trying the previous one" in reports[0]


# -- the metadata is covered by a digest ----------------------------------------------


def _edit_meta(step_dir: pathlib.Path, edit) -> None:
    path = step_dir / "meta" / "metadata"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


EDITS = {
    "step": lambda m: m.update(step=5),
    "data_position": lambda m: m["data"].update(epoch=7),
    "digest": lambda m: m.update(meta_sha256="0" * 64),
}


@pytest.mark.parametrize("field", list(EDITS))
def test_an_edited_metadata_is_refused_by_its_digest(tmp_path, field):
    ck_dir = tmp_path / "checkpoints"
    _save_all(ck_dir, [3, 42])
    _edit_meta(ck_dir / "42", EDITS[field])
    step, reports, _ = _open_and_restore(ck_dir)
    assert step == 3  # not "step 5" with step 42's state
    assert "checkpoint 42 has metadata that does not match its digest" in reports[0]


def test_a_checkpoint_from_before_the_digest_is_accepted_but_its_step_checked(tmp_path):
    ck_dir = tmp_path / "checkpoints"
    _save_all(ck_dir, [3, 7, 42])  # keep_last=3 below
    _edit_meta(ck_dir / "7", lambda m: m.pop("meta_sha256"))  # as written before digests
    _edit_meta(ck_dir / "42", lambda m: (m.pop("meta_sha256"), m.update(step=5)))
    reports: list[str] = []
    ck = Checkpointer(str(ck_dir), keep_last=3, async_save=False)
    state, meta = ck.restore_latest_good(_abstract(), report=reports.append)
    ck.close()
    assert meta["step"] == 7 and int(state.step) == 7  # the old one: accepted
    assert len(reports) == 1 and "checkpoint 42 has metadata for step 5" in reports[0]


def test_the_digest_is_of_the_canonical_json():
    meta = {"step": 3, "data": {"b": [1, 2], "a": (3,)}, "progress": {"best": 0.1}}
    sealed = checkpoint_files.seal(meta, [[1, 2]])
    assert checkpoint_files.meta_problem(3, sealed) is None
    reordered = json.loads(json.dumps(sealed, sort_keys=True))  # key order does not count
    assert checkpoint_files.meta_problem(3, dict(reversed(list(reordered.items())))) is None
    assert checkpoint_files.meta_problem(4, sealed) is not None  # another folder's step
    assert checkpoint_files.seal(sealed, [[1, 2]]) == sealed  # resealing is stable
    tampered = {**sealed, "progress": {"best": 0.2}}
    assert "digest" in checkpoint_files.meta_problem(3, tampered)


# -- full and read-only disks -----------------------------------------------------------


@contextlib.contextmanager
def _tmpfs(path: pathlib.Path, size_kb: int):
    """A tmpfs of ``size_kb`` mounted at ``path``; yields False where mounting is not
    possible (not root, no mount, or ``OPTLAB_TEST_NO_MOUNT=1``)."""
    path.mkdir(parents=True, exist_ok=True)
    ok = False
    if os.environ.get("OPTLAB_TEST_NO_MOUNT") != "1" and shutil.which("mount"):
        cmd = ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)]
        ok = subprocess.run(cmd, capture_output=True).returncode == 0
    try:
        yield ok
    finally:
        if ok and subprocess.run(["umount", str(path)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _remount(path: pathlib.Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


def _fill(path: pathlib.Path, leave_kb: int) -> None:
    fs = os.statvfs(path)
    fill = fs.f_bavail * fs.f_frsize - leave_kb * 1024
    with open(path / "filler", "wb") as f:
        f.write(b"\0" * max(fill, 0))


def _inject(monkeypatch, code: int, where: str) -> None:
    """``OSError(code)`` from the write probe or from orbax's background metadata write."""
    error = OSError(code, os.strerror(code))
    if where == "probe":

        def probe(directory, nbytes=0):
            raise OSError(code, os.strerror(code), str(directory))

        monkeypatch.setattr(checkpoint_files, "probe", probe)
    else:
        from orbax.checkpoint._src.handlers import json_checkpoint_handler as jch

        async def save_fn(self, x, directory):
            raise OSError(error.errno, error.strerror, str(directory / "metadata"))

        monkeypatch.setattr(jch.JsonCheckpointHandler, "_save_fn", save_fn)


def _no_probe(monkeypatch):
    """The probe passes: the failure then happens in orbax's own writes (a disk that
    fills between the probe and the write)."""
    monkeypatch.setattr(checkpoint_files, "probe", lambda *a, **k: None)


READ_ONLY = ["probe", "orbax_mkdir"]


def _save_step_2_failing(ck_dir):
    """(the closed checkpointer, the ``CheckpointWriteError`` of its save of step 2, the
    seconds from the save to the end of ``close``) in a folder that cannot take it."""
    ck = Checkpointer(str(ck_dir), async_save=True)
    start = time.monotonic()
    with pytest.raises(CheckpointWriteError) as err:
        ck.save(2, _state(2), {"step": 2, "data": {}})
        ck.wait()  # an error of orbax's thread surfaces here
    ck.close()  # after a failed save: at once, no second error
    return ck, err, time.monotonic() - start


@pytest.mark.parametrize("stage", READ_ONLY)
def test_a_read_only_checkpoint_folder_fails_in_one_error_fast(
    tmp_path, monkeypatch, capsys, stage
):
    ck_dir = tmp_path / "checkpoints"
    with _tmpfs(ck_dir, 2048) as mounted:
        _save_all(ck_dir, [1])
        if mounted:
            print(f"fault: tmpfs remounted read-only ({stage})")
            _remount(ck_dir, "ro")
            if stage == "orbax_mkdir":
                _no_probe(monkeypatch)
        else:
            print(f"fault: injected EROFS ({stage})")
            _inject(monkeypatch, errno.EROFS, "probe" if stage == "probe" else "background")
        capsys.readouterr()
        ck, err, elapsed = _save_step_2_failing(ck_dir)
        with pytest.raises(CheckpointWriteError):
            ck.save(3, _state(3), {"step": 3, "data": {}})  # the run is over
        message = str(err.value)
        assert err.value.errno == errno.EROFS and "\n" not in message
        assert f"cannot write checkpoint 2 to {ck_dir}" in message and "EROFS" in message
        assert "the checkpoints up to step 1 are intact" in message
        assert elapsed < 30, f"{elapsed:.0f} s: a hang"
        assert "Traceback" not in capsys.readouterr().err
        assert Checkpointer(str(ck_dir), read_only=True).steps() == [1]
        assert _temporaries(ck_dir) == []
        if mounted:
            _remount(ck_dir, "rw")
        monkeypatch.undo()
        _save_all(ck_dir, [2])  # writable again: the next save works
        _assert_all_good(ck_dir)


FULL = ["probe_no_room", "orbax_mid_write", "orbax_metadata"]


@pytest.mark.parametrize("stage", FULL)
def test_a_full_disk_fails_in_one_error_and_leaves_nothing_behind(
    tmp_path, monkeypatch, capsys, stage
):
    ck_dir = tmp_path / "checkpoints"
    with _tmpfs(ck_dir, 1024) as mounted:
        _save_all(ck_dir, [1])
        if mounted and stage != "orbax_metadata":
            _fill(ck_dir, 8 if stage == "probe_no_room" else 24)
            print(f"fault: tmpfs filled ({stage})")
            if stage == "orbax_mid_write":
                _no_probe(monkeypatch)
        else:
            print(f"fault: injected ENOSPC ({stage})")
            _inject(monkeypatch, errno.ENOSPC, "probe" if stage == "probe_no_room" else "bg")
        capsys.readouterr()
        _, err, elapsed = _save_step_2_failing(ck_dir)
        assert elapsed < 30
        message = str(err.value)
        assert err.value.errno == errno.ENOSPC and "\n" not in message
        assert f"cannot write checkpoint 2 to {ck_dir}" in message and "ENOSPC" in message
        assert "Traceback" not in capsys.readouterr().err
        assert _temporaries(ck_dir) == []  # no *.orbax-checkpoint-tmp left
        _assert_all_good(ck_dir)
        assert Checkpointer(str(ck_dir), read_only=True).steps() == [1]
        (ck_dir / "filler").unlink(missing_ok=True)  # space freed
        monkeypatch.undo()
        _save_all(ck_dir, [2])
        _assert_all_good(ck_dir)


def test_the_cli_prints_a_write_error_in_one_line_and_exits_1(tmp_path, monkeypatch, capsys):
    print("fault: injected EROFS (probe)")
    _inject(monkeypatch, errno.EROFS, "probe")
    code = cli.main(["train", *TINY, "--out", str(tmp_path), "--steps", "12",
                     "--checkpoint-every", "10"])  # fmt: skip
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 1
    assert len(err) == 1 and err[0].startswith("optlab: error: cannot write checkpoint 10 to")
    assert "Read-only file system (EROFS)" in err[0]


# -- whole runs (subprocesses): nothing lost, the rerun equals the uninterrupted run ---

TINY = ["--dataset", "digits", "--model-arg", "widths=[32]", "--batch-size", "32",
        "--no-progress"]  # fmt: skip
FLAGS = [
    "--dataset", "digits", "--model-arg", "widths=[32]", "--model-arg", "dropout=0.1",
    "--batch-size", "32", "--steps", "60", "--checkpoint-every", "10", "--eval-every", "20",
    "--log-every", "5", "--no-progress",
]  # fmt: skip

# `python -c` of a trainer: argv = [fault, flags...]; fault "none", "no_probe" (orbax's own
# writes fail), or "inject:ERRNO:WHERE:FROM" (an OSError from save number FROM on).
TRAINER = """
import errno, os, sys
fault, flags = sys.argv[1], sys.argv[2:]
from optlab.train import checkpoint_files
if fault == "no_probe":
    checkpoint_files.probe = lambda *a, **k: None
elif fault.startswith("inject:"):
    _, code, where, first = fault.split(":")
    code, calls = int(code), [0]
    def probe(directory, nbytes=0):
        calls[0] += 1
        if calls[0] >= int(first):
            raise OSError(code, os.strerror(code), str(directory))
    checkpoint_files.probe = probe
from optlab.cli import main
sys.exit(main(["train", *flags]))
"""


def _train(out, fault="none", timeout=240):
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", TRAINER, fault, *FLAGS, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return proc, time.monotonic() - start


def _cfg(out):
    return config_from_args(cli.parser().parse_args(["train", *FLAGS, "--out", str(out)]))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run's final state."""
    return loop.run(_cfg(tmp_path_factory.mktemp("ref")), progress=False).state


def _assert_same_as(result, reference):
    for got, want in zip(jax.tree.leaves(result.state), jax.tree.leaves(reference), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))  # bit for bit


def _one_error_line(proc) -> str:
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    others = [x for x in lines if not x.startswith("optlab: resuming")]
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert len(others) == 1 and others[0].startswith("optlab: error: cannot write checkpoint")
    return others[0]


@pytest.mark.slow  # two trainer subprocesses and a resumed run
@pytest.mark.parametrize("stage", ["probe", "orbax_writes"])
def test_a_run_on_a_full_disk_ends_in_one_line_and_resumes_bit_for_bit(tmp_path, reference, stage):
    out = tmp_path / "run"
    ck_dir = out / "checkpoints"
    with _tmpfs(ck_dir, 300) as mounted:  # room for 2 checkpoints of this model, not 3
        if mounted:
            print(f"fault: tmpfs of 300 KiB at OUT/checkpoints ({stage})")
            fault = "none" if stage == "probe" else "no_probe"
        else:
            print(f"fault: injected ENOSPC from the 3rd save ({stage})")
            fault = f"inject:{errno.ENOSPC}:probe:3"
        proc, elapsed = _train(out, fault)
        line = _one_error_line(proc)
        assert "No space left on device (ENOSPC)" in line and str(ck_dir) in line
        assert elapsed < 120, f"{elapsed:.0f} s"
        steps = Checkpointer(str(ck_dir), read_only=True).steps()
        assert steps and max(steps) < 60 and _temporaries(ck_dir) == []
        if mounted:
            _remount(ck_dir, "size=8m")  # space freed
        result = loop.run(_cfg(out), progress=False)
        _assert_same_as(result, reference)


@pytest.mark.slow  # two trainer subprocesses and a resumed run
def test_a_read_only_checkpoint_folder_ends_the_run_in_one_line_fast(tmp_path, reference):
    out = tmp_path / "run"
    ck_dir = out / "checkpoints"
    with _tmpfs(ck_dir, 8192) as mounted:
        first = subprocess.run(
            [sys.executable, "-m", "tests.train.runner", "30", "--", *FLAGS, "--out", str(out)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
        )  # fmt: skip  (SIGKILLed right after the save of step 30 started)
        assert first.returncode == -9, first.stderr[-3000:]
        if mounted:
            print("fault: tmpfs at OUT/checkpoints remounted read-only")
            _remount(ck_dir, "ro")
            fault = "none"
        else:
            print("fault: injected EROFS from the 1st save")
            fault = f"inject:{errno.EROFS}:probe:1"
        proc, elapsed = _train(out, fault)
        line = _one_error_line(proc)
        assert "Read-only file system (EROFS)" in line and str(ck_dir) in line
        assert elapsed < 120, f"{elapsed:.0f} s: the ~300 s hang"
        if mounted:
            _remount(ck_dir, "rw")
        result = loop.run(_cfg(out), progress=False)
        _assert_same_as(result, reference)
        assert _temporaries(ck_dir) == []


@pytest.mark.slow  # a killed trainer subprocess and three resumed runs
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_junk_folder_then_a_bit_flip_lose_no_progress(tmp_path, reference, capsys):
    # Today: the junk folder holds a keep slot for good, so after a later bit flip in the
    # newest checkpoint no good one was left and training restarted from step 0.
    out = tmp_path / "run"
    ck_dir = out / "checkpoints"
    first = subprocess.run(
        [sys.executable, "-m", "tests.train.runner", "30", "--", *FLAGS, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert first.returncode == -9
    (ck_dir / "999999").mkdir()
    capsys.readouterr()
    result = loop.run(_cfg(out), progress=False)
    err = capsys.readouterr().err
    assert "checkpoint 999999 is unreadable" in err and "moved to" in err
    _assert_same_as(result, reference)
    # The finished run's newest checkpoint is damaged: the rerun sets it aside, resumes
    # from the one before, and writes step 60 again.
    _damage(ck_dir / "60", "bit_flip")
    result = loop.run(_cfg(out), progress=False)
    err = capsys.readouterr().err
    assert "checkpoint 60 " in err and "resuming" in err and "from step 50" in err
    _assert_same_as(result, reference)
    assert 60 in Checkpointer(str(ck_dir), read_only=True).steps()
    assert _quarantine(ck_dir) == ["60", "999999"]
    result = loop.run(_cfg(out), progress=False)  # and the rewritten 60 is good
    assert "from step 60" in capsys.readouterr().err
    _assert_same_as(result, reference)
