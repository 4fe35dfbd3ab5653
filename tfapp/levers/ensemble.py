"""levers.ensemble.members: a seed ensemble, distilled into one model. The run's model is
the first of K members; after it, K - 1 more train from the same pretrained backbone with
seeds seed+1 .. seed+K-1 (their own initialisation, dropout and data order), each stopped
early on validation like the first. Then one model of the same size trains from the
pretrained backbone on alpha * T^2 * KL(the members' averaged soft labels || student) +
(1 - alpha) * the task's loss on the true labels (the distiller of tfapp.compression), and
that student is evaluated and exported: serving cost is one model, training about K + 1
models. `levers.ensemble.export: ensemble` serves the K members themselves instead, their
logits averaged in one graph (K times the serving cost, no student trained).

The run's metrics.json records, per candidate (single: the first member, ensemble,
distilled), its validation and test metrics and the seconds each stage took; nothing is
chosen on test. Members and the student are not resumable: a run killed after the first
member's training trains them again."""
from __future__ import annotations

import contextlib
import dataclasses
import time

import keras
import tensorflow as tf

from tfapp.core import run_layout as layout
from tfapp.core.datasets import with_counted_steps
from tfapp.core.errors import ConfigError
from tfapp.core.lever import Lever, register_lever
from tfapp.core.log import say
from tfapp.core.task_contract import Calibrated, ClassLogits
from tfapp.training.driver import lever_callbacks
from tfapp.training.progress import TrainingStats

EXPORTS = ("distilled", "ensemble")


@dataclasses.dataclass
class EnsembleConfig:
    members: int = 0  # K >= 2: K seeds trained, distilled into one model (0 or 1: off)
    temperature: float = 2.0  # softening of the members' and the student's logits
    alpha: float = 0.5  # weight of the soft-label loss (1 - alpha: the true labels)
    export: str = "distilled"  # distilled | ensemble (the K members, logits averaged)

    def problems(self) -> list[str]:
        out = []
        if not 0 <= self.members <= 16:
            out.append("members must be between 0 and 16")
        if self.temperature <= 0:
            out.append("temperature must be > 0")
        if not 0 <= self.alpha <= 1:
            out.append("alpha must be in [0, 1]")
        if self.export not in EXPORTS:
            out.append(f"export must be one of {', '.join(EXPORTS)}, got '{self.export}'")
        return out


def _views(members: list) -> tuple:
    """(the shared inputs, each member called on them under a name of its own)."""
    inputs = members[0].input
    return inputs, [keras.Model(m.input, m.output, name=f"member_{k}")(inputs)
                    for k, m in enumerate(members)]


def average_logits_model(members: list, name: str = "ensemble") -> keras.Model:
    """One functional model whose outputs (same structure as a member's) are the members'
    logits averaged, so the export graph and the task's serving code stay as they are."""
    inputs, outputs = _views(members)
    averaged = tf.nest.map_structure(
        lambda *xs: keras.layers.Average(dtype="float32")(
            [keras.ops.cast(x, "float32") for x in xs]), *outputs)
    return keras.Model(inputs, averaged, name=name)


class SoftLabelMean(keras.layers.Layer):
    """T * log(mean_k softmax(z_k / T)): logits whose softmax at temperature T is the
    members' averaged soft labels (what the distiller's KL reads)."""

    def __init__(self, temperature: float, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.temperature = temperature

    def call(self, logits_list):
        probs = [keras.ops.softmax(keras.ops.cast(z, "float32") / self.temperature, axis=-1)
                 for z in logits_list]
        mean = keras.ops.mean(keras.ops.stack(probs, axis=0), axis=0)
        return self.temperature * keras.ops.log(keras.ops.maximum(mean, 1e-12))


def soft_label_teacher(members: list, temperature: float) -> keras.Model:
    inputs, outputs = _views(members)
    soft = tf.nest.map_structure(lambda *xs: SoftLabelMean(temperature)(list(xs)), *outputs)
    return keras.Model(inputs, soft, name="ensemble_teacher")


@contextlib.contextmanager
def seeded(cfg, seed: int):
    """cfg.seed (the data order's seed, read by the task's datasets) set to `seed`, and the
    global random seed too (initialisation, dropout)."""
    saved = cfg.seed
    cfg.seed = seed
    keras.utils.set_random_seed(seed)
    try:
        yield
    finally:
        cfg.seed = saved


def fit_fresh(run, label: str, seed: int, wrap=None) -> tuple[keras.Model, float]:
    """(a fresh task model trained from the pretrained backbone with `seed`, seconds),
    stopped early on validation with its best epoch restored. `wrap(model)` makes the
    model that is fitted (a distiller) instead of the levers' wrappers."""
    cfg, ctx, task = run.cfg, run.ctx, run.task
    started = time.perf_counter()
    with seeded(cfg, seed):
        loaded = ctx.load_backbone()
        train_ds, steps = with_counted_steps(task.dataset(
            run.splits["train"], run.packer, cfg.trainer.global_batch_size, training=True))
        if wrap is None:
            model, fitted = run.build(loaded)
            train_ds = run.training_data(train_ds)
        else:
            with ctx.scope():
                model = task.build_model(loaded)
                for lever in run.levers:
                    lever.on_model(model, loaded)
                fitted = wrap(model)
        run.compile(fitted, steps, train_ds)
        folder = ctx.path / layout.MEMBERS_DIR / label
        slots = lever_callbacks(run)
        monitor, mode = run.monitor
        callbacks = [ctx.guard, *slots["before_task"],
                     *task.callbacks(folder, run.splits["validation"], run.packer),
                     TrainingStats(task.training_size(run.splits["train"]),
                                   task.summary_keys(), printer=say),
                     *slots["after_summary"],
                     keras.callbacks.EarlyStopping(
                         monitor=monitor, mode=mode, restore_best_weights=True, verbose=1,
                         patience=cfg.trainer.early_stopping_patience)]
        if ctx.chief:
            callbacks.append(keras.callbacks.TensorBoard(str(layout.logs_dir(folder)),
                                                         update_freq="epoch"))
        say(f"ensemble: training {label} (seed {seed}, {steps} steps/epoch)")
        ctx.fit(fitted, train_ds, run.val_ds, callbacks, what=f"ensemble {label}",
                remedy="lower optimizer.learning_rate or set levers.ensemble.members 0")
    return model, round(time.perf_counter() - started, 1)


def scores(run, model) -> dict:
    """Validation and test metrics of `model` (a Calibrated task calibrated on validation
    first, as the served model will be)."""
    task, packer = run.task, run.packer
    if isinstance(task, Calibrated):
        task.set_calibration(task.calibrate(model, run.splits["validation"], packer))
    return {split: task.evaluate(model, run.splits[split], packer)
            for split in ("validation", "test")}


@register_lever
class Ensemble(Lever):
    name = "ensemble"
    Config = EnsembleConfig
    legacy_train_keys = {"ensemble": "members"}
    order = 80
    replaces_model = True

    @property
    def enabled(self) -> bool:
        return self.config.members >= 2

    def check(self, run) -> None:
        if run.distilling:
            raise ConfigError("levers.ensemble: not supported when distilling (the "
                              "distiller, not the task's model, is what trains)")
        if not isinstance(run.task, ClassLogits) or not run.task.consistency_outputs():
            raise ConfigError(f"levers.ensemble: this {run.task.name} model has no class-"
                              f"logit output to average; set levers.ensemble.members 0")
        for other in run.levers:
            if other is not self and other.replaces_model:
                raise ConfigError(f"levers.ensemble: not supported with levers.{other.name} "
                                  f"(both replace the trained model after training); set "
                                  f"one of them off")

    def model_structure(self, task):
        if self.config.export != "ensemble":
            return None
        k = self.config.members

        def build(loaded):
            from tfapp.core.backbone import policy_clone

            policy = keras.mixed_precision.global_policy().name
            members = [task.build_model(loaded if i == 0 else policy_clone(loaded, policy))
                       for i in range(k)]
            return average_logits_model(members)

        return build

    def after_fit(self, run) -> dict:
        cfg, k = run.cfg, self.config.members
        members, seconds = [run.model], []
        for i in range(1, k):
            model, took = fit_fresh(run, f"member_{i + 1}", cfg.seed + i)
            members.append(model)
            seconds.append(took)
        record = {"members": k, "seeds": [cfg.seed + i for i in range(k)],
                  "member_seconds": seconds, "export": self.config.export,
                  "single": scores(run, members[0])}
        with run.ctx.scope():
            ensemble = average_logits_model(members)
        record["ensemble"] = scores(run, ensemble)
        if self.config.export == "ensemble":
            run.model = ensemble
            say(f"ensemble: serving the {k} members, logits averaged")
            return record
        from tfapp.compression.distillation import make_distiller

        with run.ctx.scope():
            teacher = soft_label_teacher(members, self.config.temperature)
        distiller_cls = make_distiller(teacher, self.config.temperature, self.config.alpha)
        student, took = fit_fresh(run, "distilled", cfg.seed + k,
                                  wrap=lambda m: distiller_cls(m, name="distiller"))
        record["distill_seconds"] = took
        record["distilled"] = scores(run, student)
        run.model = student
        return record

    def model_card_lines(self, metrics: dict) -> list[str]:
        r = metrics[self.name]
        if r["export"] == "ensemble":
            return [f"- ensemble: the {r['members']} members (seeds {r['seeds']}) are served, "
                    f"their logits averaged in one graph"]
        return [f"- ensemble: one model distilled from {r['members']} members (seeds "
                f"{r['seeds']}), temperature {self.config.temperature:g}, alpha "
                f"{self.config.alpha:g}"]
