"""Task registry. Each module in this package registers one Task class on import."""
from __future__ import annotations

import importlib
import pkgutil

from tfapp.errors import ConfigError

_REGISTRY: dict[str, type] = {}


def register(cls):
    """Class decorator: makes a Task available to the CLIs under `cls.name`."""
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name not in ("base",) and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def available() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def get_task(name: str) -> type:
    """The Task class registered as `name`; unknown names are a one-line ConfigError."""
    _discover()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown task '{name}' (available: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]
