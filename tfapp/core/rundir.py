"""The run directory: where a run's config, metrics, model card, logs and exports live.
Every file is written to a temporary name and renamed, so a crash never leaves half a file."""
from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path


def new_run_dir(root: str, task: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / task / stamp
    n = 1
    while path.exists():
        n += 1
        path = Path(root) / task / f"{stamp}-{n}"
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600; published files are read by other users (a TF Serving
        # container reading models.config), so give them the usual mode.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def dir_size_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def check_writable(path: Path, what: str = "output directory") -> Path:
    """Creates `path` if needed and proves a file can be written in it, so a run stops
    with one line before training rather than after it."""
    from tfapp.core.errors import TfappError

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as e:
        where = e.filename or path
        raise TfappError(f"{where}: cannot write the {what} here ({e.strerror or e})") from None
    return path
