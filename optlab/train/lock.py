"""One writer per run folder: an advisory lock on ``OUT/.lock`` while a run trains into ``OUT``.

``acquire_run_lock(out)`` takes a POSIX record lock (``fcntl.lockf``, i.e. ``fcntl(F_SETLK)``)
on ``OUT/.lock`` without waiting, and writes the holder's PID, host and start time into the
file. A second process asking for the same folder gets a ``ConfigError`` in one line naming
the holder, and changes nothing (it opens the lock file without truncating it). The operating
system drops the lock when the holder's process ends, however it ends (``SIGKILL``, an
out-of-memory kill, a crash): a stale ``.lock`` file never blocks a rerun, so the file is left
in place (removing it would let two processes lock two different files of the same name).

Multi-process runs take the lock once: process 0 (``jax.process_index() == 0``) locks, and the
outcome is broadcast to every process (``multihost_utils.broadcast_one_to_all``), so all of
them raise the same error and none waits for a peer that has given up.

What holds where:

* **Local filesystems** (ext4, xfs, btrfs, tmpfs, ...): full exclusion between processes on
  the machine; released at process death.
* **NFSv4**: byte-range locks are part of the protocol, so exclusion holds between hosts. A
  holder's host that crashes or loses the network keeps the lock until the server's lease
  expires (typically 90 s); then a rerun may take it.
* **NFSv3**: locks go through the separate NLM/lockd service. With it running, exclusion
  holds between hosts (this is why ``lockf``, not ``flock``: ``flock`` locks are local-only
  on some NFS clients). Mounted with ``nolock``, locks are local to each client, so only
  processes on the same host are excluded; without lockd the call fails with ``ENOLCK``.
* **Object-store FUSE mounts** (gcsfuse, s3fs, ...), which multi-host runs often write to:
  they implement no locks. The kernel then keeps the lock on the local machine, so two runs
  on one host are still excluded, but nothing stops two hosts writing into one folder: give
  each run its own ``--out`` there.

A filesystem that refuses locks outright (``ENOLCK``, ``EOPNOTSUPP``, ``ENOSYS``) does not
stop the run: one warning line says the folder is unprotected and the run goes on unlocked.

POSIX record locks belong to a process, not a file descriptor: within one process a second
lock on the same file would succeed, and closing any descriptor of it would drop the lock.
This module therefore keeps a table of the folders this process holds and refuses a second
``acquire_run_lock`` of the same folder (e.g. two ``optlab.train.train`` calls in two threads)
with the same one-line error, and no other code of a holding process may open ``OUT/.lock``.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import pathlib
import socket
import sys
import threading
import time

from optlab.errors import ConfigError

LOCK_FILE = ".lock"
_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}
_MESSAGE_BYTES = 1024  # the error broadcast from process 0, UTF-8, zero-padded

_held: dict[tuple[int, int], str] = {}  # (st_dev, st_ino) of each lock file this process holds
_held_guard = threading.Lock()


class RunLock:
    """A held run-folder lock; ``release()`` (or leaving the ``with`` block) lets it go.

    ``path`` is the lock file; ``locked`` is False on processes other than 0 of a
    multi-process run, and where the filesystem supports no locks."""

    def __init__(self, path: pathlib.Path, fd: int | None = None, key=None):
        self.path, self._fd, self._key = path, fd, key

    @property
    def locked(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Empties the lock file (so no stale holder is named), unlocks and closes it.
        Calling it again is a no-op."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # a full or read-only disk: the OS still drops the lock below
        finally:
            with _held_guard:
                _held.pop(self._key, None)
            os.close(fd)  # closing drops the POSIX lock

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"RunLock({str(self.path)!r}, locked={self.locked})"


def acquire_run_lock(out: pathlib.Path) -> RunLock:
    """Locks the run folder ``out`` for this run, without waiting.

    Creates ``out`` if needed (the caller has validated it). On a multi-process run only
    process 0 locks; every process gets the same outcome.

    Args:
      out: the run folder (``--out``).

    Returns:
      A ``RunLock``; use it as a context manager, or call ``release()``.

    Raises:
      ConfigError: another process (or this one) holds the folder: one line naming the
        holder's PID, host and start time; or the lock file cannot be created.
    """
    out = pathlib.Path(out)
    index, count = _process_index_and_count()
    lock, message = RunLock(out / LOCK_FILE), ""
    if index == 0:
        try:
            lock = _lock(out)
        except ConfigError as err:
            message = str(err)
    if count > 1:
        message = _broadcast(message)
    if message:
        raise ConfigError(message)
    return lock


def _process_index_and_count() -> tuple[int, int]:
    """(index, count) of this process; (0, 1) when JAX is not even imported (then the
    process cannot be part of a multi-process run)."""
    jax = sys.modules.get("jax")
    if jax is None:
        return 0, 1
    return jax.process_index(), jax.process_count()


def _broadcast(message: str) -> str:
    """Process 0's ``message`` on every process."""
    import numpy as np
    from jax.experimental import multihost_utils

    raw = message.encode()[:_MESSAGE_BYTES]
    buffer = np.zeros(_MESSAGE_BYTES, np.uint8)
    buffer[: len(raw)] = np.frombuffer(raw, np.uint8)
    got = np.asarray(multihost_utils.broadcast_one_to_all(buffer), np.uint8)
    return bytes(got).rstrip(b"\0").decode(errors="replace")


def _lock(out: pathlib.Path) -> RunLock:
    path = out / LOCK_FILE
    with _held_guard:
        key = _key_of(path)
        if key in _held:  # checked before opening: closing any descriptor drops our lock
            raise ConfigError(_in_use(out, _held[key], this_process=True))
        try:
            out.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # never truncates: the holder's
        except OSError as err:
            raise ConfigError(
                f"--out: cannot create the lock file {path} ({os.strerror(err.errno or 0)}); "
                "choose a writable folder"
            ) from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EACCES, errno.EAGAIN):
                raise ConfigError(_in_use(out, _read_holder(path))) from None
            if err.errno in _UNSUPPORTED:
                print(
                    f"optlab: warning: --out {out}: the filesystem supports no file locks "
                    f"({os.strerror(err.errno)}); nothing stops a second run from writing "
                    "into this folder at the same time",
                    file=sys.stderr,
                )
                return RunLock(path)
            raise ConfigError(
                f"--out: cannot lock {path} ({os.strerror(err.errno or 0)}); choose another folder"
            ) from None
        holder = _describe_self()
        key = _key_of(path, fd)
        _held[key] = holder
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode() + b"\n", 0)
    except OSError:
        pass  # a full disk: the lock holds, only the holder's name is missing from the file
    return RunLock(path, fd, key)


def _describe_self() -> str:
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started})


def _read_holder(path: pathlib.Path, wait: float = 0.5) -> str:
    """The holder's record; it writes it right after locking, so an empty file is retried
    for up to ``wait`` seconds. Reading through a new descriptor is safe here: this process
    holds no lock on the file."""
    deadline = time.monotonic() + wait
    while True:
        try:
            text = path.read_text(errors="replace").strip()
        except OSError:
            text = ""
        if text or time.monotonic() > deadline:
            return text
        time.sleep(0.02)


def _in_use(out: pathlib.Path, holder: str, *, this_process: bool = False) -> str:
    if this_process:
        who = f"this process (pid {os.getpid()}): a run in it is still training there"
    else:
        try:
            info = json.loads(holder)
            pid, host, started = int(info["pid"]), info["host"], info["started"]
            who = f"optlab pid {pid} on host {host} (started {started})"
        except (ValueError, TypeError, KeyError):
            who = "another optlab process (it has not written its PID yet)"
    return f"--out {out} is in use by {who}; wait for it to finish or choose another --out"


def _key_of(path: pathlib.Path, fd: int | None = None) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the lock file, None if it does not exist."""
    try:
        stat = os.fstat(fd) if fd is not None else os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)
