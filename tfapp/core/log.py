"""The one progress printer every command and workflow uses."""
from __future__ import annotations


def say(message: str) -> None:
    """Prints a `[tfapp]`-prefixed progress line, flushed at once (logs are often tailed)."""
    print(f"[tfapp] {message}", flush=True)
