"""Checks of a run config's values: each field's type against its dataclass annotation, and
the one rule on import paths.

The types are checked when a config is read from a file (every value there is data someone
typed, or a file someone sent) and by ``RunConfig.validate`` for a config built in Python,
so that a mistake is one line naming the field, not a traceback from deep inside JAX:
``optimizer.learning_rate: "1e-3"`` (a string) is refused, ``true`` is not a whole number,
a whole number is accepted where a number is expected.

The import rule (``check_imports``): an *import path* (``package.module:function``) imports
that module, which runs its top-level code. One is honoured only when the user gives it on
the command line (``--optimizer mod:fn``), from Python (a config built in code, a factory
passed), or from a config file loaded with an explicit opt-in (``--allow-imports``,
``allow_imports=True``). A config file or a run folder's ``config.json`` is data: without
that opt-in an import path in it is refused before anything is imported.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import types
import typing
from collections.abc import Mapping
from typing import Any

from optlab.errors import ConfigError

INT64 = 2**63  # whole numbers must fit in a signed 64-bit integer (JAX's and NumPy's)
# jax.random.PRNGKey keeps a seed's low 32 bits (with 64-bit mode off, as optlab runs):
# 2**32 + 5 gives the key of 5, and -1 that of 2**32 - 1. NumPy's generators refuse a
# negative seed. So a seed is a whole number in [0, 2**32), each giving its own run.
SEED_LIMIT = 2**32


def check_seed(seed: Any, where: str = "") -> None:
    """Refuses a seed that is not a whole number in ``[0, SEED_LIMIT)``."""
    whole = isinstance(seed, numbers.Integral) and not isinstance(seed, bool)
    if not whole or not 0 <= int(seed) < SEED_LIMIT:
        raise ConfigError(
            f"{where + ': ' if where else ''}train.seed must be a whole number in "
            f"[0, 2**32), got {shown(seed)}: jax.random.PRNGKey keeps only a seed's low 32 "
            "bits (2**32 would train exactly as seed 0) and NumPy refuses negative seeds; "
            "e.g. train.seed 0"
        )


_SHOWN = 60  # characters of a value's repr shown in a message


def is_import_path(value: Any) -> bool:
    """Whether a config's ``optimizer`` names a module to import (``"module:function"``)."""
    return isinstance(value, str) and ":" in value


def check_imports(raw: dict, where: str, *, allow_imports: bool) -> None:
    """Refuses an import path in ``raw`` (a config read from ``where``, a file) unless
    ``allow_imports``. Imports nothing either way."""
    section = raw.get("optimizer")
    value = section.get("optimizer") if isinstance(section, dict) else None
    if allow_imports or not is_import_path(value):
        return
    raise ConfigError(
        f"{where}: optimizer.optimizer is an import path ({shown(value)}), and a config file "
        f"is data: it imports nothing. Give it on the command line as --optimizer "
        f"{as_typed(value)}, "
        "or pass --allow-imports (from Python: allow_imports=True) if you trust this file"
    )


def as_typed(value: Any) -> str:
    """``value`` as the user would type it after ``--optimizer``: itself when it is plain
    printable text, else its (escaped, one-line) repr."""
    plain = isinstance(value, str) and value.isprintable() and not any(c.isspace() for c in value)
    return value if plain and len(value) <= 200 else shown(value)


def shown(value: Any) -> str:
    """``repr(value)``, cut short: a message stays one readable line."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 5] + "…" + text[-4:]


def kind(value: Any) -> str:
    """What ``value`` is, in the words of a config file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, numbers.Integral):
        return "a whole number"
    if isinstance(value, numbers.Real):
        return "a number"
    for cls, name in ((str, "a string"), (list, "a list"), (tuple, "a list"), (dict, "a mapping")):
        if isinstance(value, cls):
            return name
    return f"a {type(value).__name__}"


def _expected(hint: Any) -> str:
    """The annotation ``hint`` in words: ``int | None`` → "a whole number or null"."""
    if hint is Any:
        return "any value"
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_expected(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) is list:
        return f"a list of {_plural(typing.get_args(hint)[0])}"
    if typing.get_origin(hint) is dict:
        return "a mapping of names to values"
    words = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    return words.get(hint, {list: "a list", dict: "a mapping"}.get(hint, str(hint)))


def _plural(hint: Any) -> str:
    """``list[hint]``'s items in words: "strings", "lists of whole numbers"."""
    if typing.get_origin(hint) is list:
        return f"lists of {_plural(typing.get_args(hint)[0])}"
    return {int: "whole numbers", float: "numbers", str: "strings"}.get(hint, str(hint))


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the type ``hint`` (a bool is not a number; an int is a float)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is list or origin is list:
        item = (typing.get_args(hint) or (Any,))[0]
        return isinstance(value, list | tuple) and all(_matches(v, item) for v in value)
    if hint is dict or origin is dict:
        return isinstance(value, Mapping) and all(isinstance(k, str) for k in value)
    return isinstance(value, hint)


def _hint(value: Any, hint: Any) -> str:
    """The fix for the common slips: a number in quotes, 3.0 for 3, "true" in quotes."""
    wants = {a for a in typing.get_args(hint)} or {hint}
    if isinstance(value, str) and wants & {int, float}:
        try:
            float(value)
        except ValueError:
            return ""
        return f"; write {value} without quotes"
    if isinstance(value, str) and bool in wants and value.lower() in ("true", "false"):
        return f"; write {value.lower()} without quotes"
    if isinstance(value, float) and int in wants and value.is_integer():
        return f"; write {int(value)}"
    return ""


def check_value(name: str, value: Any, hint: Any, where: str = "") -> None:
    """Refuses ``value`` for the field ``name`` unless it has the type ``hint``; numbers must
    also be finite, and whole numbers fit in 64 bits."""
    prefix = f"{where}: " if where else ""
    if not _matches(value, hint):
        raise ConfigError(
            f"{prefix}{name} must be {_expected(hint)}, got {shown(value)} ({kind(value)})"
            + _hint(value, hint)
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return
    if isinstance(value, numbers.Integral) and not -INT64 <= int(value) < INT64:
        raise ConfigError(f"{prefix}{name} is too large, got {shown(value)}; it must be < 2**63")
    if not math.isfinite(float(value)):
        raise ConfigError(f"{prefix}{name} must be a finite number, got {value!r}")


def check_section(section: Any, name: str, hints: dict[str, Any], where: str = "") -> None:
    """Checks every field of the section ``section`` (called ``name``) against ``hints``."""
    for field in dataclasses.fields(section):
        value = getattr(section, field.name)
        if name == "optimizer" and field.name == "optimizer":
            if not (isinstance(value, str) or callable(value)):
                raise ConfigError(
                    f"{where + ': ' if where else ''}optimizer.optimizer must be a name or "
                    f"module:function, got {shown(value)} ({kind(value)})"
                )
            continue
        check_value(f"{name}.{field.name}", value, hints[field.name], where)
        if name == "train" and field.name == "seed":
            check_seed(value, where)


def check_out(out: Any, where: str = "") -> None:
    """The run folder's type: text (or, from Python, a path)."""
    if not isinstance(out, str | os.PathLike):
        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}out must be a folder's name, got {shown(out)} ({kind(out)})")
