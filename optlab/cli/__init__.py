"""The ``optlab`` command: one command table, one module per command.

Each command module defines ``add_parser(commands)`` and ``run(args) -> int``; the flags
shared by several commands are defined once in ``optlab.cli._flags``. A user's mistake
(``optlab.errors.ConfigError``) prints one line and exits with status 2; a run that fails
for its machine (``optlab.errors.CheckpointWriteError``: a full disk, a read-only folder)
prints one line and exits with status 1; a bug is a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

import optlab
from optlab.errors import CheckpointWriteError, ConfigError, MissingExtraError

# command -> module of optlab.cli (imported only when that command runs, or for --help)
COMMANDS = {
    "train": "train",
    "demo": "demo",
    "recipes": "recipes",
    "export": "export",
    "summary": "summary",
    "devices": "devices",
    "plan": "plan",
    "doctor": "doctor",
    "lr-find": "lr_find",
    "sweep": "sweep",
    "prepare-text": "prepare_text",
    "generate": "generate",
}


def _module(command: str):
    return importlib.import_module(f"optlab.cli.{COMMANDS[command]}")


def parser() -> argparse.ArgumentParser:
    """The whole command line (every command's parser)."""
    p = argparse.ArgumentParser(
        prog="optlab", description="Optimizers written from their sources, proven by tests."
    )
    p.add_argument("--version", action="version", version=f"optlab {optlab.__version__}")
    commands = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        _module(command).add_parser(commands)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _module(args.command).run(args)
    except (
        ConfigError,
        MissingExtraError,
    ) as err:  # the user's mistakes: one line, exit 2; bugs: a traceback
        from optlab.cli._flags import to_flags

        print(f"optlab: error: {to_flags(str(err))}", file=sys.stderr)
        return 2
    except CheckpointWriteError as err:  # the machine's fault, not the command's: exit 1
        print(f"optlab: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
