"""User-facing errors: one clear line, naming the file, row and field where there is one."""
from __future__ import annotations

import functools
import sys


def one_line(text: str) -> str:
    """`text` with line breaks shown as escapes, so an error stays on one line even when it
    quotes a value (a header cell, a field) that itself holds a newline."""
    return str(text).replace("\r", "\\r").replace("\n", "\\n")


class TfappError(Exception):
    """An error caused by the user's input; the CLIs print it as one line and exit 2."""


class ConfigError(TfappError):
    """A bad config file, key, value or command-line option."""


class DataError(TfappError):
    """A bad data file or row."""

    def __init__(self, path, message, row=None, field=None):
        where = str(path)
        if row is not None:
            where += f": row {row}"
        if field is not None:
            where += f": field '{field}'"
        super().__init__(one_line(f"{where}: {message}"))
        self.path, self.row, self.field = str(path), row, field


class BackboneError(TfappError):
    """A backbone that cannot be resolved or loaded."""


def cli_main(fn):
    """Wraps a CLI entry point: user errors become one `error: ...` line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(argv=None):
        try:
            return fn(argv)
        except TfappError as e:
            print(f"error: {one_line(e)}", file=sys.stderr)
            sys.exit(2)
        except (PermissionError, IsADirectoryError, NotADirectoryError) as e:
            # File-system refusals the commands did not foresee: still one line.
            print(f"error: {e.filename or ''}: {e.strerror}", file=sys.stderr)
            sys.exit(2)

    return wrapper
