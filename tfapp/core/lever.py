"""The training-lever contract and the registry that finds lever plugins by name.

A lever (R-Drop, EMA, weight soup, refit, ...) is one module in the `tfapp.levers`
package that registers a `Lever` subclass. Its `Config` dataclass is the config section
`levers.<name>`; the training driver calls its hooks at fixed phases and never names a
lever itself. Removing a lever is deleting its module, its test and its docs line.

Hooks, in the order the driver calls them (every one optional; `run` is the driver's
TrainingRun: config, run context, task, splits, models, datasets, monitor, records):
  prepare(cfg, task_cls, run_dir)        before the run starts (e.g. adapt the backbone)
  check(run)                             refuse what it cannot serve (one-line ConfigError)
  on_model(model, loaded)                the task's model was built on `loaded`
  training_model(model, fitted, task)    wrap the model that is fitted
  training_data(dataset)                 transform the training tf.data pipeline
  optimizer_options()                    keyword options for the optimizer
  callbacks(run)                         {"before_task" | "after_summary": [callbacks]}
  after_fit(run)                         act on the fitted run; returns a record or None
  model_card_lines(metrics)              lines for the model card
  model_structure(task)                  when the final model is not the task's model:
                                         how to build it on a backbone (served copy, restore)
What `after_fit` returns is stored in metrics.json under the lever's name.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, ClassVar, Optional

LEVER_PACKAGE = "tfapp.levers"
_REGISTRY: dict[str, type] = {}
CALLBACK_SLOTS = ("before_task", "after_summary")


class Lever:
    """One training lever: a config section and hooks. `Config` must have defaults that
    leave the lever off; `enabled` says whether this run uses it."""

    name: ClassVar[str]
    Config: ClassVar[type]
    # Flat keys of the old `train:` section this lever's keys replace: {old: new}
    # (new None: the old key held the whole section as a mapping).
    legacy_train_keys: ClassVar[dict[str, Optional[str]]] = {}
    # True: after_fit replaces the run's model (two such levers cannot both run).
    replaces_model: ClassVar[bool] = False
    # Levers run in this order at every phase (lower first): a refit that reads the
    # soup's epochs must come after the soup.
    order: ClassVar[int] = 50

    def __init__(self, cfg, section):
        self.cfg = cfg
        self.config = section

    @property
    def enabled(self) -> bool:
        raise NotImplementedError

    def prepare(self, cfg, task_cls, run_dir: Optional[str]) -> Optional[str]:
        """Before the run context starts; may return the run directory it chose."""
        return run_dir

    def check(self, run) -> None:
        """Raises ConfigError for a combination this lever cannot serve; `run` (the
        driver's TrainingRun) has the task, the splits, `distilling` and the other levers.
        Called before anything is written."""

    def on_model(self, model, loaded) -> None:
        pass

    def training_model(self, model, fitted, task):
        return fitted

    def training_data(self, dataset):
        return dataset

    def optimizer_options(self) -> dict:
        return {}

    def callbacks(self, run) -> dict[str, list]:
        return {}

    def after_fit(self, run) -> Optional[dict]:
        return None

    def model_card_lines(self, metrics: dict) -> list[str]:
        return []

    def model_structure(self, task) -> Optional[Callable]:
        """None, or `build(loaded) -> keras.Model`: the structure of the model this lever
        leaves as the run's model when it is not `task.build_model`'s (e.g. an ensemble),
        used for the served-precision copy and by restore_run."""
        return None


def register_lever(cls):
    """Class decorator: makes a Lever available under `levers.<cls.name>`."""
    _REGISTRY[cls.name] = cls
    return cls


def lever_classes() -> dict[str, type]:
    """{name: Lever class} of every lever plugin, in their running order."""
    package = importlib.import_module(LEVER_PACKAGE)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{LEVER_PACKAGE}.{info.name}")
    return dict(sorted(_REGISTRY.items(), key=lambda item: (item[1].order, item[0])))


def model_builder(levers: list, task) -> Callable:
    """How the run's final model is built on a backbone: the first lever's
    `model_structure`, else the task's own `build_model`."""
    for lever in levers:
        build = lever.model_structure(task)
        if build is not None:
            return build
    return task.build_model


def active_levers(cfg) -> list[Any]:
    """The enabled levers of `cfg`, instantiated, in running order."""
    out = []
    for name, cls in lever_classes().items():
        lever = cls(cfg, getattr(cfg.levers, name))
        if lever.enabled:
            out.append(lever)
    return out
