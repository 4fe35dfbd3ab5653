"""TF Serving's directory layout: BASE/<model name>/<integer version>/saved_model.pb.

The one place that scans version directories, for the exporter, the server config, the
predict / monitor / re-index commands and the benchmarks."""
from __future__ import annotations

from pathlib import Path

from tfapp.core.errors import TfappError


def existing_versions(model_base: Path, complete_only: bool = False) -> list[int]:
    """Integer version directories under `model_base`, ascending; with `complete_only`,
    only those holding a saved_model.pb (what a server would load)."""
    model_base = Path(model_base)
    if not model_base.is_dir():
        return []
    return sorted(int(p.name) for p in model_base.iterdir()
                  if p.is_dir() and p.name.isdigit()
                  and (not complete_only or (p / "saved_model.pb").is_file()))


def next_version(model_base: Path) -> int:
    versions = existing_versions(model_base)
    return versions[-1] + 1 if versions else 1


def resolve_export(path: Path) -> Path:
    """A SavedModel directory, or a model base whose highest complete version is used."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    versions = existing_versions(path, complete_only=True)
    if versions:
        return path / str(versions[-1])
    raise TfappError(f"{path}: not a SavedModel directory or a base of numbered versions")


def exported_models(base: Path) -> dict[str, list[int]]:
    """{model name: complete versions} for each BASE/<name>/ holding version directories."""
    base = Path(base)
    if not base.is_dir():
        raise TfappError(f"{base}: export base directory not found")
    models = {child.name: existing_versions(child, complete_only=True)
              for child in sorted(base.iterdir()) if child.is_dir()}
    models = {name: versions for name, versions in models.items() if versions}
    if not models:
        raise TfappError(f"{base}: no exported models (expected BASE/<model>/<version>/)")
    return models
