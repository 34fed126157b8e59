"""The errors a user can cause. A leaf module: it imports nothing of optlab, so every layer
(optimizers, data, models, parallel, train, config, cli) can raise them."""


class ConfigError(ValueError):
    """A mistake in the run configuration or the command line; the message names the field
    (in Python, the config field such as ``optimizer.learning_rate``; on the command line,
    the flag) and the fix. ``optlab`` prints it in one line and exits with status 2."""


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the pip command (e.g.
    ``pip install 'optlab[data]'``). The command line prints it in one line (exit 2)."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a read-only folder, an exhausted
    quota, no permission): the message names the path, the cause, what is left intact and
    what to do. The run stops (a run that cannot checkpoint would lose its progress
    unnoticed); ``optlab`` prints the message in one line and exits with status 1, as a
    run that failed rather than a command given wrongly. ``errno`` is the cause's, ``path``
    the path that could not be written."""

    path: str | None = None


__all__ = ["CheckpointWriteError", "ConfigError", "MissingExtraError"]
