"""Reading a run config from disk: a config file (``--config``, JSON or YAML) or a run
folder's ``config.json``.

Both are data. JSON is parsed by ``json``; YAML by PyYAML's safe loader (no tag builds a
Python object), with YAML 1.2's numbers (``1e-3`` is a number, as in JSON, not the string
YAML 1.1 makes of it). Nothing here imports what a file names (``_validate.check_imports``
decides that). Every way a file can be unreadable is one ``ConfigError`` naming the file,
the line where the parser says, and what to do.
"""

from __future__ import annotations

import functools
import json
import pathlib
import re
from typing import Any

from optlab.errors import ConfigError

YAML_SUFFIXES = (".yaml", ".yml")

# YAML 1.2's floats: 1e-3, 1.5e3, .5, -1., .inf, .nan (YAML 1.1, PyYAML's default, needs a
# dot and a signed exponent, so it reads 1e-3 as the string "1e-3").
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


@functools.cache
def _yaml_loader() -> Any:
    import yaml

    class Loader(yaml.SafeLoader):
        """``yaml.SafeLoader`` with YAML 1.2's floats."""

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
    return Loader


def read_text(path: pathlib.Path, what: str) -> str:
    """The file's text (UTF-8, a byte-order mark allowed), or one line saying why not."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what}: no file {str(path)!r}") from None
    except IsADirectoryError:
        raise ConfigError(f"{what}: {path} is a folder, not a file") from None
    except OSError as err:
        raise ConfigError(f"{what}: cannot read {path} ({err.strerror or err})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{what}: {path} is not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}); "
            "save it as UTF-8"
        ) from None


def parse(text: str, path: pathlib.Path, what: str) -> Any:
    """``text`` as data: YAML for a ``.yaml``/``.yml`` file, else JSON."""
    if path.suffix.lower() in YAML_SUFFIXES:
        import yaml

        try:
            return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader: data only
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = (err.problem or err.context or "unreadable").replace("\n", " ")
            if "constructor for the tag" in problem:
                problem += "; a config holds plain data, no Python tags"
            raise ConfigError(f"{what}: {path} is not valid YAML ({where}{problem})") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{what}: {path} is not valid YAML ({err})") from None
        except RecursionError:
            raise ConfigError(f"{what}: {path} is nested too deeply to be a config") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        yaml_hint = "" if path.suffix.lower() == ".json" else " (a YAML file ends in .yaml)"
        raise ConfigError(
            f"{what}: {path} is not valid JSON (line {err.lineno}, column {err.colno}: "
            f"{err.msg}){yaml_hint}"
        ) from None
    except RecursionError:
        raise ConfigError(f"{what}: {path} is nested too deeply to be a config") from None


def read_mapping(path: pathlib.Path, what: str) -> dict:
    """The file's mapping of sections (``{"optimizer": {...}, ...}``)."""
    raw = parse(read_text(path, what), path, what)
    if not isinstance(raw, dict):
        got = "nothing" if raw is None else type(raw).__name__
        raise ConfigError(
            f"{what}: {path} must hold a mapping of sections (data, model, optimizer, train, "
            f"out), got {got}"
        )
    return raw


def read_run_config(out: Any) -> tuple[pathlib.Path, dict]:
    """(path, mapping) of the run folder ``out``'s ``config.json``; a missing or damaged one
    is one line naming the file and what to do."""
    path = pathlib.Path(out) / "config.json"
    if not path.exists():
        raise ConfigError(f"--run: {out} holds no run (no config.json)")
    damaged = (
        "; it records the run's settings: restore it from a copy, or train a new run with "
        "another --out"
    )
    try:
        raw = read_mapping(path, "--run")
    except ConfigError as err:
        raise ConfigError(f"{err}{damaged}") from None
    return path, raw
