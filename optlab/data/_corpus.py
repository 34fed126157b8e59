"""Text corpora: the built-in Python standard library corpus and user text files (issue 12).

``--dataset pystdlib`` trains on the ``.py`` sources of the running Python's own standard
library, found through ``sysconfig.get_paths()["stdlib"]``: nothing to download, nothing
shipped. Test suites (any ``test``/``tests``/``idle_test`` folder), ``site-packages`` and
files that are not UTF-8 text (or hold a NUL byte) are left out. Each file is one document
and goes to train, val or test by a stable hash of its relative path (`split_of`), so the
split does not depend on the order files are found in or on which other files exist.

Different Python versions ship different files: `corpus_fingerprint` (Python version,
file count and a digest of the sorted file list) is recorded in the run folder, and figures
are comparable only between runs whose fingerprints match.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import os
import platform
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optlab.errors import ConfigError

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.90, 0.05, 0.05)
_EXCLUDED_DIRS = frozenset(
    {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
)


def pystdlib_root() -> Path:
    """The folder of the running Python's standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def pystdlib_files() -> tuple[str, ...]:
    """The standard library's ``.py`` files as sorted POSIX paths relative to `pystdlib_root`.

    Left out: anything under a ``test``, ``tests``, ``idle_test``, ``site-packages``,
    ``dist-packages`` or ``__pycache__`` folder, and files that are not valid UTF-8 or
    contain a NUL byte. The list is computed once per process.
    """
    return _pystdlib_files(str(pystdlib_root()))


@functools.cache
def _pystdlib_files(root: str) -> tuple[str, ...]:
    base = Path(root)
    if not base.is_dir():
        raise ConfigError(
            f"--dataset pystdlib: the standard library folder {base} (sysconfig) does not "
            "exist; use a text folder as --dataset instead."
        )
    found = []
    for folder, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if d not in _EXCLUDED_DIRS)
        for name in files:
            if name.endswith(".py"):
                path = Path(folder) / name
                if _is_text(path.read_bytes()):
                    found.append(path.relative_to(base).as_posix())
    return tuple(sorted(found))


def split_of(relative_path: str, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for a file, from the SHA-256 of its path.

    ``u = int(sha256(relative_path.encode()).hexdigest()[:16], 16) / 2**64`` is uniform on
    [0, 1); the file is train when ``u < f_train``, val when ``u < f_train + f_val``, else
    test (``fractions`` = (f_train, f_val, f_test), default 90/5/5).

    Example:
      >>> split_of("json/decoder.py") in ("train", "val", "test")
      True
    """
    f_train, f_val, _ = _check_fractions(fractions)
    digest = hashlib.sha256(relative_path.encode("utf-8")).hexdigest()
    u = int(digest[:16], 16) / 2.0**64
    return "train" if u < f_train else "val" if u < f_train + f_val else "test"


def corpus_fingerprint() -> dict[str, Any]:
    """``{"name": "pystdlib", "python", "files", "digest"}`` of the built-in corpus.

    ``digest`` is the SHA-256 of the sorted relative file names joined by newlines; the run
    folder records the fingerprint, and numbers are comparable only where it matches.
    """
    files = pystdlib_files()
    return {
        "name": "pystdlib",
        "python": platform.python_version(),
        "files": len(files),
        "digest": list_digest(files),
    }


def list_digest(names: Sequence[str]) -> str:
    """SHA-256 (hex) of ``names`` joined by newlines."""
    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()


def text_files(path: str | Path, *, flag: str = "SRC") -> list[Path]:
    """``path`` itself (a file) or the text files under it (a folder, recursive, sorted).

    Hidden files and folders (names starting with ``.``) are skipped. Every file is read
    once to check it: a file that is not valid UTF-8 or contains a NUL byte is refused as
    binary. Errors are one-line ConfigErrors naming ``flag`` and the file: a missing path,
    a folder without files, an empty file or a binary one.
    """
    root = Path(path)
    if not root.exists():
        raise ConfigError(f"{flag}: {root} does not exist; give a text file or a folder of them.")
    if root.is_file():
        files = [root]
    else:
        files = sorted(
            p
            for p in root.rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
        if not files:
            raise ConfigError(f"{flag}: the folder {root} holds no text files.")
    total = 0
    for file in files:
        size = check_text_file(file, flag=flag)
        total += size
    if total == 0:
        raise ConfigError(f"{flag}: {root} is empty; give a corpus with some text.")
    return files


def check_text_file(path: Path, *, flag: str = "SRC") -> int:
    """The size in bytes of ``path`` after checking, in 1 MiB chunks, that it is UTF-8 text
    without NUL bytes (ConfigError ``"{flag}: FILE is not UTF-8 text ..."`` otherwise)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                size += len(chunk)
                if b"\x00" in chunk:
                    raise ValueError("NUL")
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except ValueError:  # UnicodeDecodeError is a ValueError
        raise ConfigError(
            f"{flag}: {path} is not UTF-8 text (a binary file?); remove it from the corpus."
        ) from None
    except OSError as err:
        raise ConfigError(f"{flag}: cannot read {path}: {err.strerror or err}.") from None
    return size


def read_text(path: Path, *, flag: str = "SRC") -> str:
    """The text of a file that `check_text_file` accepts (same errors)."""
    data = path.read_bytes()
    if not _is_text(data):
        check_text_file(path, flag=flag)  # raises the one-line error
    return data.decode("utf-8")


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1.0) > 1e-9 or values[0] == 0:
        raise ConfigError(
            f"splits must be three fractions (train, val, test) >= 0 summing to 1 with "
            f"train > 0, got {tuple(fractions)!r}; e.g. (0.9, 0.05, 0.05)."
        )
    return values  # type: ignore[return-value]
