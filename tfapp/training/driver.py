"""The fine-tuning driver: one training job in fixed phases.

    prepare   levers that act before the run starts (task-adaptive pretraining)
    read      read and validate every split; levers check what they cannot serve
    backbone  load the backbone in the strategy's scope; choose the max length
    run dir   open (or resume) the run directory; save the resolved config and backbone
    datasets  tokenise in graph, bucket by length; levers may transform the training data
    build     the task's model on the backbone (+ distiller, levers' training wrappers)
    fit       RunContext.fit with the standard callbacks and the levers'
    after fit levers act on the fitted run (weight soup, refit)
    serve     the served model (export precision), calibration, validation + test metrics
    publish   weights, export, metrics.json (with each lever's record), HParams, model card

Talks to tasks only through the Task contract and to levers only through the Lever
contract (tfapp.core.lever); it names neither a task nor a lever."""
from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

from tfapp.core.backbone import TextPacker
from tfapp.core.config import Config
from tfapp.core.lever import CALLBACK_SLOTS, active_levers, model_builder
from tfapp.core.log import say
from tfapp.training.inputs import (
    check_export_version,
    choose_max_length,
    make_datasets,
    read_splits,
    report_truncation,
)
from tfapp.training.optimizer import compile_with_optimizer
from tfapp.training.publish import evaluate_served, publish, served_model
from tfapp.training.restore import save_run_backbone
from tfapp.training.run_context import RunContext


def build_models(task, loaded, levers: list, prepare: Optional[Callable] = None) -> tuple:
    """The one build path: (the task's model on `loaded`, the model that is fitted: the
    task's model, or `prepare(model)` (a distiller), wrapped by the levers). Call inside
    the strategy's scope."""
    model = task.build_model(loaded)
    for lever in levers:
        lever.on_model(model, loaded)
    fitted = prepare(model) if prepare else model
    for lever in levers:
        fitted = lever.training_model(model, fitted, task)
    return model, fitted


def optimizer_options(levers: list) -> dict:
    """The levers' optimizer options, merged."""
    out = {}
    for lever in levers:
        out.update(lever.optimizer_options())
    return out


def build_compiled_model(task, cfg: Config, loaded, placement, total_steps: int):
    """Task head on the backbone with the configured levers, compiled; call inside the
    strategy's scope (for tests and benchmarks that fit outside the driver)."""
    levers = active_levers(cfg)
    model, fitted = build_models(task, loaded, levers)
    compile_with_optimizer(fitted, cfg, placement.precision, total_steps,
                           optimizer_options(levers), **task.compile_args())
    return fitted


@dataclasses.dataclass
class TrainingRun:
    """What the phases share. Lever hooks read it and may replace `model` and `loaded`
    (a refit), set `kept_epochs` (the epochs the model's weights come from) or
    `validation` (metrics measured before the model changed)."""

    cfg: Config
    ctx: RunContext
    task: Any
    levers: list
    prepare: Optional[Callable] = None
    splits: dict = dataclasses.field(default_factory=dict)
    loaded: Any = None
    packer: Optional[TextPacker] = None
    model: Any = None  # the task's model: evaluated, saved and exported
    fitted: Any = None  # the model fitted (the task's model or a wrapper of it)
    train_ds: Any = None
    val_ds: Any = None
    steps: int = 0  # training steps per epoch
    monitor: tuple = ("val_loss", "min")
    task_callbacks: list = dataclasses.field(default_factory=list)
    history: Any = None
    kept_epochs: Optional[list] = None
    validation: Optional[dict] = None
    records: dict = dataclasses.field(default_factory=dict)

    @property
    def distilling(self) -> bool:
        return self.prepare is not None

    def build(self, loaded) -> tuple:
        """(task model, fitted model) on `loaded`, in the strategy's scope."""
        with self.ctx.scope():
            return build_models(self.task, loaded, self.levers, self.prepare)

    def training_data(self, dataset):
        for lever in self.levers:
            dataset = lever.training_data(dataset)
        return dataset

    def compile(self, fitted, steps_per_epoch: int, sample_data) -> None:
        self.ctx.compile(fitted, steps_per_epoch * self.cfg.trainer.epochs, sample_data,
                         optimizer_options(self.levers), **self.task.compile_args())

    def served(self):
        return served_model(self.ctx, self.task, self.loaded, self.model,
                            model_builder(self.levers, self.task))


def run_levers_prepare(cfg: Config, task_cls, run_dir: Optional[str]) -> Optional[str]:
    for lever in active_levers(cfg):
        run_dir = lever.prepare(cfg, task_cls, run_dir)
    return run_dir


def lever_callbacks(run: TrainingRun) -> dict:
    slots = {slot: [] for slot in CALLBACK_SLOTS}
    for lever in run.levers:
        for slot, callbacks in lever.callbacks(run).items():
            slots[slot] += callbacks
    return slots


def train(cfg: Config, task_cls, run_dir: str | None = None, prepare=None) -> Path:
    """Runs one training job end to end; returns the run directory.

    `prepare(model) -> keras.Model`, if given, wraps the task's model into the model that is
    compiled and fitted (e.g. a distiller); evaluation, weights and export use the task's
    model itself."""
    started = time.perf_counter()
    # tf.data input is shuffled by the pipeline itself; Keras' notice about it is noise.
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
    if prepare is None:
        run_dir = run_levers_prepare(cfg, task_cls, run_dir)

    # read
    ctx = RunContext.start(cfg)
    run = TrainingRun(cfg, ctx, task_cls(cfg), active_levers(cfg), prepare)
    run.splits = read_splits(run.task)
    for lever in run.levers:
        lever.check(run)

    # backbone: resolved before writing, so a bad backbone leaves no half-made run
    run.loaded = ctx.load_backbone()
    choose_max_length(cfg, run.task, run.loaded, run.splits)
    check_export_version(cfg, ctx.choose_run_dir(run_dir, cfg.task))

    # run dir
    run_path = ctx.open_run_dir()
    if ctx.chief:
        save_run_backbone(run.loaded, run_path)

    # datasets and build
    run.packer = TextPacker.from_config(run.loaded.tokenizer, cfg)
    report_truncation(run.task, run.packer, run.splits)
    train_ds, run.val_ds, run.steps = make_datasets(run.task, run.splits, run.packer,
                                                    cfg.trainer.global_batch_size)
    run.model, run.fitted = run.build(run.loaded)
    run.train_ds = run.training_data(train_ds)
    run.compile(run.fitted, run.steps, run.train_ds)

    # fit
    run.monitor = run.task.monitor()
    run.task_callbacks = run.task.callbacks(ctx.worker_dir, run.splits["validation"],
                                            run.packer)
    callbacks = ctx.callbacks(run.task.training_size(run.splits["train"]),
                              run.task.summary_keys(), run.monitor,
                              first=run.task_callbacks, extra=lever_callbacks(run))
    say(f"training: {run.steps} steps/epoch, up to {cfg.trainer.epochs} epochs, "
        f"monitoring {run.monitor[0]} ({run.monitor[1]})")
    run.history = ctx.fit(run.fitted, run.train_ds, run.val_ds, callbacks)

    # after fit
    for lever in run.levers:
        record = lever.after_fit(run)
        if record is not None:
            run.records[lever.name] = record
    train_seconds = time.perf_counter() - started

    # serve and publish
    served = run.served()
    metrics = evaluate_served(ctx, run.task, served, run.splits, run.packer, run.history,
                              run.fitted, run.validation)
    metrics.update(run.records)
    if ctx.chief:
        card = [line for lever in run.levers for line in lever.model_card_lines(metrics)]
        publish(ctx, run.task, run.model, served, run.packer, run.loaded, run.splits, metrics,
                started, train_seconds, card)
    ctx.close()
    say(f"done in {time.perf_counter() - started:.0f} s; run dir {run_path}")
    return run_path
