"""The checkpoint folder as files (no orbax here): the metadata's digest, moving a bad
checkpoint aside, the temporary folders of saves that never finished, a write probe, and
the one-line error of a checkpoint that cannot be written.

``optlab.train.checkpoint`` (the only module that imports orbax) calls these; they are
kept apart so each module stays one topic.

The metadata's digest. Every checkpoint's metadata (step, data position, progress, the
per-leaf checksums of the state, ...) carries ``meta_sha256``: the SHA-256 of its canonical
JSON (sorted keys, no spaces) without that field. A restore checks it, and checks that the
metadata's ``step`` is the step of the folder it lies in; so an edited or bit-flipped
metadata file is caught like a corrupted array. Checkpoints written before the digest
existed (no ``meta_sha256``) are still accepted: their state is verified by its checksums
as before and their ``step`` must match the folder, but the rest of their metadata cannot
be checked; the next checkpoint the run writes has a digest.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import pathlib
import re
import shutil
import sys
import time

import jax
import numpy as np

from optlab.errors import CheckpointWriteError

DIGEST = "meta_sha256"
"""The metadata field holding the digest of the rest of the metadata."""

TEMPORARY = ".orbax-checkpoint-tmp"
"""orbax writes step ``N`` into ``N.orbax-checkpoint-tmp...`` and renames it when complete."""


def _canonical(meta: dict) -> str:
    body = {k: v for k, v in meta.items() if k != DIGEST}
    # a round trip first: tuples become lists and integer keys strings, as on disk
    return json.dumps(json.loads(json.dumps(body)), sort_keys=True, separators=(",", ":"))


def digest(meta: dict) -> str:
    """SHA-256 (hex) of ``meta``'s canonical JSON, ``meta_sha256`` left out."""
    return hashlib.sha256(_canonical(meta).encode()).hexdigest()


def seal(meta: dict, checksums: list[list[int]]) -> dict:
    """``meta`` with the state's ``checksums`` and the digest of both (what is saved)."""
    body = json.loads(json.dumps({**meta, "checksums": checksums}))
    body.pop(DIGEST, None)
    return {**body, DIGEST: digest(body)}


def meta_problem(step: int, meta: object) -> str | None:
    """Why the metadata read from step folder ``step`` is not to be trusted (None: fine)."""
    if not isinstance(meta, dict):
        return "has metadata that is not a JSON object"
    if DIGEST in meta and meta[DIGEST] != digest(meta):
        return "has metadata that does not match its digest (edited or corrupted on disk)"
    stored = meta.get("step")
    if type(stored) is not int or stored != step:
        return f"has metadata for step {stored!r}, not for the step of its folder"
    return None


def quarantine_dir(directory: pathlib.Path) -> pathlib.Path:
    """Where bad checkpoints of ``OUT/checkpoints`` go: ``OUT/checkpoints-quarantine``."""
    return directory.parent / f"{directory.name}-quarantine"


def move_aside(directory: pathlib.Path, name: str) -> str:
    """Moves ``directory/name`` into the quarantine folder (``name.1``, ``name.2``, ... when
    that name is taken) and says where; deletes it when it cannot be moved there (another
    filesystem without room for a copy).

    Raises:
      CheckpointWriteError: it can be neither moved nor deleted (a read-only folder).
    """
    source = directory / name
    target_dir = quarantine_dir(directory)
    try:
        target_dir.mkdir(exist_ok=True)
        target, n = target_dir / name, 0
        while target.exists():
            n += 1
            target = target_dir / f"{name}.{n}"
        try:
            os.rename(source, target)
        except OSError as err:
            if err.errno != errno.EXDEV:
                raise
            _copy_then_delete(source, target)
        return f"moved to {target}"
    except OSError as err:
        try:
            _remove(source)
        except OSError:
            raise CheckpointWriteError(
                f"cannot move the bad checkpoint {source} aside: {describe(err)}; make "
                "the folder writable, or move it away yourself, and run again"
            ) from err
        return f"deleted (it could not be moved to {target_dir}: {describe(err)})"


def _copy_then_delete(source: pathlib.Path, target: pathlib.Path) -> None:
    try:
        if source.is_dir() and not source.is_symlink():
            shutil.copytree(source, target, symlinks=True)
        else:
            shutil.copy2(source, target, follow_symlinks=False)
    except OSError:
        with contextlib.suppress(OSError):
            _remove(target)
        raise
    _remove(source)


def _remove(path: pathlib.Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def remove_temporaries(directory: pathlib.Path, step: int | None = None) -> list[str]:
    """Deletes the temporary folders of saves that never finished (of ``step`` only, or
    all); returns their names. Only the folder's one writer may call this."""
    pattern = f"{step if step is not None else '*'}{TEMPORARY}*"
    removed = []
    with contextlib.suppress(OSError):
        for path in sorted(directory.glob(pattern)):
            with contextlib.suppress(OSError):
                _remove(path)
                removed.append(path.name)
    return removed


def remove_temporaries_settled(
    directory: pathlib.Path, step: int, *, quiet: float = 0.5, timeout: float = 10.0
) -> None:
    """``remove_temporaries(directory, step)`` until the folder stays gone for ``quiet``
    seconds (or ``timeout`` passed): after a failed save, tensorstore may still finish
    writes of the other items in its own threads, which neither orbax's ``close`` nor its
    futures wait for, and it creates the folders of a file it writes."""
    deadline, last_seen = time.monotonic() + timeout, time.monotonic()
    while time.monotonic() < deadline:
        if remove_temporaries(directory, step) or any(directory.glob(f"{step}{TEMPORARY}*")):
            last_seen = time.monotonic()
        elif time.monotonic() - last_seen >= quiet:
            return
        time.sleep(0.05)


def probe(directory: pathlib.Path, nbytes: int = 0) -> None:
    """Writes, syncs and deletes a 4 KiB file in ``directory``, and checks the filesystem
    has room for a checkpoint of ``nbytes`` (plus 16 blocks for its small files): a
    read-only folder, one without permission, a full disk or an exhausted quota raises
    ``OSError`` here, before orbax starts a save that would fail in its threads."""
    path = directory / f".optlab-write-probe-{os.getpid()}-{jax.process_index()}"
    try:
        with open(path, "wb") as f:
            f.write(b"\0" * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:  # named by the folder, not by the probe's file
        raise OSError(err.errno, err.strerror, str(directory)) from err
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
    fs = os.statvfs(directory)
    free, needed = fs.f_bavail * fs.f_frsize, nbytes + 16 * fs.f_frsize
    if free < needed:
        raise OSError(
            errno.ENOSPC,
            f"{os.strerror(errno.ENOSPC)}: the checkpoint needs about {_size(needed)}, "
            f"{_size(free)} are free",
            str(directory),
        )


def _size(n: float) -> str:
    unit = "bytes"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if n < 1024:
            break
        n, unit = n / 1024, bigger
    return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"


def probe_everywhere(directory: pathlib.Path, nbytes: int = 0) -> None:
    """``probe`` on every process; when it failed on any, it raises on all (so no process
    starts a save its peers gave up, to wait for them in orbax's barriers)."""
    error = None
    try:
        probe(directory, nbytes)
    except OSError as err:
        error = err
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        ok = np.asarray(multihost_utils.process_allgather(np.asarray([error is None])))
        if error is None and not bool(ok.all()):
            bad = [int(i) for i in np.flatnonzero(~ok.reshape(-1))]
            error = OSError(f"processes {bad} cannot write their probe file in {directory}")
    if error is not None:
        raise error


def barrier(name: str) -> None:
    """All processes meet here (nothing when single-process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


_TS_ERRNO = re.compile(r"os_error_code='(\d+)'")
_TS_PATH = re.compile(r'(?:Failed writing|local file): "([^"]+)"')


def _tensorstore_os_error(err: BaseException) -> OSError | None:
    """The ``OSError`` a tensorstore error (a ``ValueError`` such as ``RESOURCE_EXHAUSTED:
    ... No space left on device [os_error_code='28']``) reports, if it reports one."""
    text = str(err)
    code = _TS_ERRNO.search(text)
    if code is None:
        return None
    path = _TS_PATH.findall(text)
    number = int(code.group(1))
    return OSError(number, os.strerror(number), path[-1] if path else None)


def os_cause(err: BaseException) -> OSError | None:
    """The ``OSError`` behind ``err`` (itself, its cause or context, at any depth; also
    one that tensorstore, which writes orbax's arrays, reports inside a ``ValueError``)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, CheckpointWriteError):
            return e
        if isinstance(e, OSError) and not isinstance(e, TimeoutError):
            return e
        if isinstance(e, ValueError) and (found := _tensorstore_os_error(e)) is not None:
            return found
        todo.extend([e.__cause__, e.__context__, *getattr(e, "exceptions", ())])
    return None


def describe(err: OSError) -> str:
    """``No space left on device (ENOSPC)``: the cause of ``err`` in a few words."""
    if err.errno is None:
        return str(err)
    name = errno.errorcode.get(err.errno, str(err.errno))
    standard, text = os.strerror(err.errno), err.strerror or os.strerror(err.errno)
    if text.startswith(standard):  # the standard words, then the code, then any detail
        return f"{standard} ({name}){text[len(standard) :]}"
    return f"{text} ({name})"


def write_error(
    step: int, directory: pathlib.Path, cause: OSError, previous: int | None
) -> CheckpointWriteError:
    """The one-line error of checkpoint ``step`` that could not be written."""
    if isinstance(cause, CheckpointWriteError):
        return cause
    path = cause.filename or directory
    if TEMPORARY in str(path):  # a file inside orbax's temporary folder: name the step's
        path = directory / str(step)
    kept = (
        f"the checkpoints up to step {previous} are intact"
        if previous is not None
        else "no earlier checkpoint exists"
    )
    hint = {
        errno.ENOSPC: "free some space",
        errno.EDQUOT: "free some space or raise the quota",
        errno.EROFS: "make the folder writable (it is on a read-only filesystem)",
        errno.EACCES: "make the folder writable",
        errno.EPERM: "make the folder writable",
    }.get(cause.errno, "fix the folder")
    error = CheckpointWriteError(
        f"cannot write checkpoint {step} to {path}: {describe(cause)}; {kept}; {hint} "
        "and run the same command again to resume"
    )
    error.errno, error.path = cause.errno, str(path)
    return error


_READ_ONLY_NOTICES = (
    "CheckpointManagerOptions.read_only=True",
    "Given directory is read only",
)


class _OrbaxWriteErrors(logging.Filter):
    """Drops the records of a failed checkpoint write (an ``OSError``, which
    ``Checkpointer`` reports in one line itself) that orbax logs, or asyncio logs for
    orbax's writes, and of orbax's threads timing out, orbax's warning that a save
    between evaluations has no metrics, and its two notices that a read-only manager (a
    restore: ``optlab generate``, ``restore_run``) saves nothing; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if f"{os.sep}orbax{os.sep}" in record.pathname:
            if record.getMessage().startswith("Requested `tracked_metric`"):
                return False  # a save between evaluations, which has no metrics: by design
            if record.getMessage().startswith(_READ_ONLY_NOTICES):
                return False  # a restore opens the folder read-only: by design
            if error is None:
                return not (record.levelno >= logging.ERROR and "Errno" in record.getMessage())
            return os_cause(error) is None and not isinstance(error, TimeoutError)
        return error is None or os_cause(error) is None or not _from_orbax(error)


def _from_orbax(error: BaseException) -> bool:
    tb = error.__traceback__
    while tb is not None:
        if f"{os.sep}orbax{os.sep}" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def _orbax_straggler(unraisable: object) -> bool:
    """An unraisable exception a failed orbax save leaves behind: tensorstore finishing a
    write for an event loop orbax already closed (``Event loop is closed`` in asyncio's
    ``call_soon_threadsafe``), or an orbax coroutine closed as the interpreter exits."""
    error = getattr(unraisable, "exc_value", None)
    thing = getattr(unraisable, "object", None)
    code = getattr(thing, "cr_code", None)
    if code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename:
        return True
    if not isinstance(error, RuntimeError) or str(error) != "Event loop is closed":
        return False
    tb, names = error.__traceback__, []
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return "call_soon_threadsafe" in names


def silence_orbax_write_errors() -> None:
    """Installs, once, ``_OrbaxWriteErrors`` on orbax's logger (absl's) and asyncio's,
    and an unraisable-exception hook that drops ``_orbax_straggler``s (and passes every
    other one to the hook there was)."""
    for name in ("absl", "asyncio"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _OrbaxWriteErrors) for f in logger.filters):
            logger.addFilter(_OrbaxWriteErrors())
    previous = sys.unraisablehook
    if getattr(previous, "_optlab_orbax", False):
        return

    def hook(unraisable: object) -> None:
        if not _orbax_straggler(unraisable):
            previous(unraisable)

    hook._optlab_orbax = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook
