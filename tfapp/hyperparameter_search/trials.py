"""Hyperparameter search with KerasTuner whose trials are normal training runs.

Every trial is `tfapp.train` with the trial's values applied as `--set` overrides, into
OUT/trials/trial_<id>/ (config, metrics, TensorBoard logs with HParams, export), judged
on its best validation value of the task's monitored metric; test data is never looked
at. KerasTuner's oracle state lives in OUT/keras_tuner/, so a killed search started again
with the same command resumes: finished trials are kept, the interrupted one resumes
from its own backup. The best trial's resolved config is written to OUT/best.yaml."""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Optional

import keras
import keras_tuner as kt
import yaml

from tfapp.core import run_layout as layout
from tfapp.core.config import Config, apply_overrides, build_config
from tfapp.core.errors import ConfigError
from tfapp.core.log import say
from tfapp.core.rundir import atomic_write_text
from tfapp.hyperparameter_search.space import Range, overrides
from tfapp.training.driver import train

ALGORITHMS = ("bayesian", "random")
SEARCH_FILE = "search.json"
BEST_FILE = "best.yaml"


@dataclasses.dataclass
class SearchSettings:
    trials: int
    algorithm: str = "bayesian"
    max_minutes: Optional[float] = None  # no new trial starts after this many minutes
    out: Path = Path("runs/tune")


def trial_objective(run_dir: Path, key: str, mode: str) -> float:
    """The best finite validation value of `key` over the run's epochs."""
    history = json.loads((run_dir / layout.METRICS_FILE).read_text())["history"].get(key, [])
    finite = [v for v in history if v is not None and math.isfinite(v)]
    if not finite:
        raise kt.errors.FailedTrialError(f"{run_dir}: no finite {key} in its history")
    return max(finite) if mode == "max" else min(finite)


def _values_line(values: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in values.items())


class RunTuner(kt.engine.base_tuner.BaseTuner):
    """A KerasTuner tuner whose trial is one tfapp training run."""

    def __init__(self, oracle, base: dict, task_cls, space: list[Range], objective: str,
                 mode: str, out: Path, deadline: Optional[float]):
        super().__init__(oracle, directory=str(out), project_name="keras_tuner")
        self.base, self.task_cls, self.space = base, task_cls, space
        self.objective, self.mode, self.deadline = objective, mode, deadline
        self.trials_dir = out / "trials"

    def trial_config(self, values: dict, trial_id: str) -> Config:
        raw = apply_overrides(copy.deepcopy(self.base), overrides(self.space, values))
        return build_config(raw, self.task_cls.Config, f"trial {trial_id}")

    def run_trial(self, trial, *args, **kwargs):
        values = trial.hyperparameters.values
        cfg = self.trial_config(values, trial.trial_id)
        run_dir = self.trials_dir / f"trial_{trial.trial_id}"
        say(f"trial {trial.trial_id}: " + _values_line(values))
        if not (run_dir / layout.METRICS_FILE).is_file():  # finished before a kill: keep it
            keras.backend.clear_session()
            train(cfg, self.task_cls, str(run_dir))
        return {self.objective: trial_objective(run_dir, self.objective, self.mode)}

    def pre_create_trial(self):
        if self.deadline is not None and time.monotonic() > self.deadline \
                and self.oracle.max_trials > len(self.oracle.trials):
            say("search time is up: no new trials")
            self.oracle.max_trials = len(self.oracle.trials)

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        if trial.status != kt.engine.trial.TrialStatus.COMPLETED:
            reason = (trial.message or "").strip().splitlines()
            say(f"trial {trial.trial_id} failed: {reason[-1] if reason else trial.status}")


def _check_same_search(out: Path, search: dict) -> None:
    """A resumed search must search what it started with."""
    path = out / SEARCH_FILE
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        if saved != search:
            differ = sorted(k for k in saved.keys() | search.keys()
                            if saved.get(k) != search.get(k))
            raise ConfigError(f"{path}: cannot resume a search with different settings "
                              f"({', '.join(differ)}); use the same command or another --out")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(search, indent=1))


def search(base_cfg: Config, task_cls, space: list[Range], settings: SearchSettings) -> Path:
    """Runs (or resumes) the search; returns the path of the best trial's config."""
    if settings.algorithm not in ALGORITHMS:
        raise ConfigError(f"--algorithm must be one of {', '.join(ALGORITHMS)}")
    out = Path(settings.out)
    base_cfg.run.dir = None
    base = base_cfg.to_dict()
    objective, mode = task_cls(base_cfg).monitor()
    _check_same_search(out, {"task": base_cfg.task, "base": base,
                             "space": [[r.key, r.kind, list(r.values)] for r in space],
                             "algorithm": settings.algorithm})
    hp = kt.HyperParameters()
    for r in space:
        r.declare(hp)
    oracle_cls = {"bayesian": kt.oracles.BayesianOptimizationOracle,
                  "random": kt.oracles.RandomSearchOracle}[settings.algorithm]
    oracle = oracle_cls(objective=kt.Objective(objective, mode), max_trials=settings.trials,
                        hyperparameters=hp, seed=base_cfg.seed,
                        max_consecutive_failed_trials=3)
    deadline = (time.monotonic() + 60 * settings.max_minutes
                if settings.max_minutes is not None else None)
    tuner = RunTuner(oracle, base, task_cls, space, objective, mode, out, deadline)
    say(f"searching {len(space)} settings with {settings.algorithm} optimisation, "
        f"{settings.trials} trials, judged on validation {objective} ({mode}); "
        f"TensorBoard: tensorboard --logdir {out / 'trials'}")
    tuner.search()
    return write_results(tuner, out, objective)


def write_results(tuner: RunTuner, out: Path, objective: str) -> Path:
    """OUT/trials.json (every trial) and OUT/best.yaml (the best trial's resolved config,
    ready for `tfapp.train --config`)."""
    rows = []
    for trial in tuner.oracle.trials.values():
        score = trial.metrics.get_best_value(objective) \
            if trial.metrics.exists(objective) else None
        rows.append({"trial": trial.trial_id, "status": trial.status, "objective": score,
                     "values": {r.key: trial.hyperparameters.values.get(r.key)
                                for r in tuner.space}})
    rows.sort(key=lambda r: r["trial"])
    atomic_write_text(out / "trials.json", json.dumps(rows, indent=1))
    best = tuner.oracle.get_best_trials(1)
    if not best:
        raise ConfigError(f"no trial of the search in {out} finished; see the messages above")
    trial = best[0]
    config = yaml.safe_load((tuner.trials_dir / f"trial_{trial.trial_id}" / layout.CONFIG_FILE)
                            .read_text(encoding="utf-8"))
    config["run"]["dir"] = None  # a new run, not the trial's directory
    path = out / BEST_FILE
    atomic_write_text(path, f"# Best of {len(rows)} trials (trial {trial.trial_id}, "
                            f"validation {objective} {trial.score:.4f})\n"
                      + yaml.safe_dump(config, sort_keys=False))
    for row in rows:
        shown = "failed" if row["objective"] is None else f"{row['objective']:.4f}"
        say(f"trial {row['trial']}: {objective} {shown}  " + _values_line(row["values"]))
    say(f"best: trial {trial.trial_id} ({objective} {trial.score:.4f}); its config: {path}")
    return path
