"""The run folder's identity and checks: which run a folder holds, and whether this
process may train into it.

A folder is a run's: its ``config.json`` records the config, and every checkpoint's
metadata records the run's *identity* (the config fields that define which run it is,
``artifacts.IDENTITY``, and a digest of the data), so a resumed run can only continue the
run it belongs to, even when ``config.json`` was deleted or damaged. Rules:

* ``--out`` must name a folder that can be created and written (not ``""``, not a file, not
  below a file, not on a read-only filesystem): checked before anything is written.
* A folder with checkpoints is protected: a config (or data set) that differs in an identity
  field is refused in one line; so is a folder whose ``config.json`` is missing or
  unreadable and whose checkpoints record no identity to check against.
* A folder whose run never reached a checkpoint (it crashed while starting) holds nothing to
  protect: a corrected command starts it over.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import pathlib
from typing import Any

import numpy as np

from optlab import config as config_lib
from optlab.config import is_import_path
from optlab.errors import ConfigError
from optlab.train import artifacts

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"


def check_out(out: Any, example: str = "runs/first") -> pathlib.Path:
    """``--out`` as a path, refused in one line when no folder can be written there: ``""``,
    a file, below a file, or below a folder that is not writable (a read-only filesystem).
    Writes nothing. Shared by ``optlab train`` and the commands that write tables (sweep,
    lr-find)."""
    if not isinstance(out, str | os.PathLike) or not str(out).strip():
        raise ConfigError(f"--out must name a folder, got {out!r}; e.g. --out {example}")
    path = pathlib.Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out: {path} is a file, not a folder; choose a folder")
    for parent in (path, *path.absolute().parents):
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"--out: {parent} is a file, so {path} cannot be a folder")
            _check_writable(parent)
            break
    return path


def create(out: pathlib.Path) -> None:
    """Creates the folder, or one line naming the path and the cause (read-only filesystem,
    no permission, disk full). Nothing else is written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _refuse(out, err)
    _check_writable(out)


def _check_writable(folder: pathlib.Path) -> None:
    if not os.access(folder, os.W_OK):  # access(2) reports EROFS even for root
        _refuse(folder, OSError(errno.EROFS if _read_only(folder) else errno.EACCES, ""))


def _refuse(folder: pathlib.Path, err: OSError) -> None:
    cause = os.strerror(err.errno) if err.errno else str(err)
    hint = "free space" if err.errno in (errno.ENOSPC, errno.EDQUOT) else "a writable folder"
    raise ConfigError(f"--out: cannot write to {folder} ({cause}); choose {hint}") from None


def _read_only(path: pathlib.Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def data_digest(dataset: Any) -> str | None:
    """A digest of a dataset's splits (their arrays' dtypes, shapes and bytes): two data sets
    with other examples, labels or order differ. None when there is no dataset to hash."""
    if dataset is None:
        return None
    if isinstance(getattr(dataset, "digest", None), str):  # token data: its own digest
        return dataset.digest
    h = hashlib.blake2b(digest_size=16)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        a = getattr(dataset, name, None)
        if a is None:
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        if a.size:
            h.update(memoryview(a).cast("B"))
    return h.hexdigest()


@functools.cache
def _defaults() -> dict:
    return config_lib.RunConfig().to_dict()


def identity(config: dict, digest: str | None) -> dict:
    """The identity of a run: its identity fields (``artifacts.IDENTITY``) and data digest.
    A field missing from ``config`` (a run folder older than the field) has its default."""
    defaults = _defaults()
    fields = {
        f"{section}.{field}": config.get(section, {}).get(field, defaults[section].get(field))
        for section, names in artifacts.IDENTITY.items()
        for field in names
    }
    return {"config": fields, "data_digest": digest}


def differences(old: dict, new: dict) -> list[str]:
    """The identity entries in which two identities differ (``data`` for the data set)."""
    keys = sorted(set(old.get("config", {})) | set(new.get("config", {})))
    diffs = [k for k in keys if old.get("config", {}).get(k) != new.get("config", {}).get(k)]
    if old.get("data_digest") != new.get("data_digest"):
        diffs.append("the data (another data set or --data-dir)")
    return diffs


def _step_folders(out: pathlib.Path) -> list[pathlib.Path]:
    folder = out / CHECKPOINTS
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and p.name.isdigit()),
        key=lambda p: int(p.name),
        reverse=True,
    )


def has_checkpoints(out: pathlib.Path) -> bool:
    """Whether the folder holds a finished checkpoint (a step folder orbax committed)."""
    return bool(_step_folders(out))


def checkpoint_identity(out: pathlib.Path) -> dict | None:
    """The identity recorded in the newest checkpoint whose metadata reads back, or None."""
    for step in _step_folders(out):
        try:
            meta = json.loads((step / "meta" / "metadata").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and isinstance(meta.get("identity"), dict):
            return meta["identity"]
    return None


def read_config(out: pathlib.Path) -> dict | None:
    """``config.json`` as a mapping; None when it is missing or unreadable (not UTF-8, not
    JSON, not a mapping), in which case the checkpoints' identity is used instead."""
    path = out / CONFIG
    if path.is_dir():
        raise ConfigError(f"--out: {path} is a folder; remove it (config.json is a file)")
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):  # missing, unreadable; UnicodeDecodeError is a ValueError
        return None
    return raw if isinstance(raw, dict) else None


def check_identity(out: pathlib.Path, new: dict) -> str | None:
    """Refuses a folder that holds another run (``ConfigError``); returns a note to print
    when the folder's config was unusable but its checkpoints vouched for this run."""
    if not has_checkpoints(out):
        return None  # nothing to protect: a fresh folder, or a run that never checkpointed
    raw = read_config(out)
    note = None
    if raw is not None:  # a config.json written before the digest was recorded: no digest
        old = identity(raw, raw.get("data_digest", new["data_digest"]))
    else:
        old = checkpoint_identity(out)
        if old is None:
            raise ConfigError(
                f"--out: {out} holds checkpoints but its config.json is missing or unreadable "
                "and the checkpoints record no identity, so the run they belong to cannot be "
                "checked; restore config.json, or choose another --out (delete the folder to "
                "start over)"
            )
        note = f"{out / CONFIG} was missing or unreadable; the checkpoints' identity matches"
    diffs = differences(old, new)
    stored = old.get("config", {}).get("optimizer.optimizer")
    if "optimizer.optimizer" in diffs and is_import_path(stored):
        raise ConfigError(
            f"--out: {out} holds a run made with --optimizer {stored}; pass --optimizer "
            f"{stored} again to resume it, or choose another --out"
        )
    if diffs:
        raise ConfigError(
            f"--out: {out} holds a different run ({', '.join(diffs)} differ). "
            "Choose another --out, or delete the folder to start over."
        )
    return note


def check_metrics_file(out: pathlib.Path) -> None:
    path = out / "metrics.jsonl"
    if path.exists() and not path.is_file():
        raise ConfigError(f"--out: {path} is not a file; remove it (the metrics log is a file)")
