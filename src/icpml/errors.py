"""Exceptions for user-facing problems, each with the exit code the CLI uses.

A user error (bad config, bad data, unreachable tracking store) is reported as
one line naming the key or column and the fix, with no traceback. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import re

__all__ = ["IcpmlError", "ConfigError", "DataError", "TrackingError", "OutputError",
           "ExitCode", "redact"]

_URI_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]+):(?P<pw>[^@/\s]+)@")
_PASSWORD_SETTING = re.compile(r"(?i)(password\s*=\s*)[^\s'\",;&)]+")  # stops at quotes: JSON stays JSON


def redact(text: str) -> str:
    """Hide secrets before a message, log line or logged config shows them.

    Passwords in URIs (``postgresql://user:secret@host`` -> ``user:***@host``) and
    ``password=...`` settings (DuckDB attach strings, connection parameters).
    """
    text = _URI_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))
    return _PASSWORD_SETTING.sub(r"\1***", text)


class ExitCode:
    """Process exit codes of the ``icpml`` command (stable: scripts and cron rely on them)."""

    OK = 0
    BUG = 1  # an unexpected error: please report it
    CONFIG = 2  # the config or the command line is wrong
    DATA = 3  # the input data is wrong
    GATE = 4  # retraining: the challenger failed the promotion gate (worth an alert)
    INFRA = 5  # the tracking store or filesystem is unreachable
    LOCKED = 6  # another retrain is running


class IcpmlError(Exception):
    """Base class: an error the user can fix; ``str(err)`` is the message to show."""

    exit_code = ExitCode.BUG


class ConfigError(IcpmlError, ValueError):
    """The configuration (YAML or command-line options) is invalid."""

    exit_code = ExitCode.CONFIG


class DataError(IcpmlError, ValueError):
    """The account table is invalid. ``problems`` lists every problem found."""

    exit_code = ExitCode.DATA

    def __init__(self, problems: list[str] | str, source: str = "data"):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.source = source
        super().__init__(f"{source}: " + "; ".join(self.problems))


class TrackingError(IcpmlError, RuntimeError):
    """The MLflow tracking store or a registered model cannot be reached."""

    exit_code = ExitCode.INFRA


class OutputError(IcpmlError):
    """An output file or folder cannot be written (permissions, disk full, read-only disk)."""

    exit_code = ExitCode.INFRA


def output_error(path: object, err: OSError) -> OutputError:
    """The one-line :class:`OutputError` for a failed write of ``path``."""
    import os

    code = err.errno
    if code is None and err.args and isinstance(err.args[0], int):
        code = err.args[0]  # OSError(errno.ENOSPC) sets args only
    why = err.strerror or (os.strerror(code) if code else str(err) or type(err).__name__)
    return OutputError(f"cannot write '{path}' ({why}); check free disk space and write "
                       "permission there, or choose another location")
