"""Knowledge distillation of a finished classification run into a smaller student: the same
backbone architecture with N transformer layers, initialised from the teacher's embeddings,
evenly spaced encoder layers (0, L/N, 2L/N, ...) and head. It trains on the teacher run's
data with alpha * T^2 * KL(teacher || student at temperature T) + (1 - alpha) * the task's
hard-label loss, then evaluates and exports like any run (its own run directory).
"""
from __future__ import annotations

from pathlib import Path

from tfapp.core.errors import ConfigError


def student_layers(teacher_layers: int, n: int) -> list[int]:
    """Evenly spaced teacher layers to initialise an n-layer student from."""
    if not 1 <= n <= teacher_layers:
        raise ConfigError(f"--student-layers must be between 1 and the teacher's "
                          f"{teacher_layers} layers, got {n}")
    return [i * teacher_layers // n for i in range(n)]


def make_student(teacher, n: int):
    """A LoadedBackbone with n layers copied from `teacher` (a LoadedBackbone)."""
    from tfapp.core.backbone import LoadedBackbone, use_exact_gelu
    from tfapp.core.pruned_bert import backbone_with_layers

    chosen = student_layers(teacher.backbone.num_layers, n)
    student = backbone_with_layers(teacher.backbone, chosen)
    for layer in student.layers:
        if not layer.weights:
            continue
        name = layer.name
        if name.startswith("transformer_layer_"):
            name = f"transformer_layer_{chosen[int(name.rsplit('_', 1)[1])]}"
        layer.set_weights(teacher.backbone.get_layer(name).get_weights())
    if teacher.exact_gelu:
        use_exact_gelu(student)
    return LoadedBackbone(student, teacher.tokenizer,
                          f"{n}-layer student (teacher layers {chosen}) of {teacher.source}",
                          teacher.exact_gelu), chosen


def copy_head_weights(student_model, teacher_model) -> int:
    """Copies every non-backbone layer's weights by name; returns how many were copied."""
    import keras_hub

    copied = 0
    for layer in student_model.layers:
        if isinstance(layer, keras_hub.models.Backbone) or not layer.weights:
            continue
        layer.set_weights(teacher_model.get_layer(layer.name).get_weights())
        copied += 1
    return copied


def make_distiller(teacher_model, temperature: float, alpha: float):
    import keras
    import tensorflow as tf

    class Distiller(keras.Model):
        """Fits `student` on alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * the
        compiled hard-label loss, for every softmax output (logits) of the task model."""

        def __init__(self, student, **kwargs):
            super().__init__(**kwargs)
            self.student = student
            self.teacher = teacher_model
            self.teacher.trainable = False

        def call(self, x, training=False):
            return self.student(x, training=training)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                         training=True):
            hard = super().compute_loss(x, y, y_pred, sample_weight, training)
            teacher = self.teacher(x, training=False)
            soft = 0.0
            for s, t in zip(tf.nest.flatten(y_pred), tf.nest.flatten(teacher)):
                p_t = tf.nn.softmax(tf.cast(t, tf.float32) / temperature, axis=-1)
                log_s = tf.nn.log_softmax(tf.cast(s, tf.float32) / temperature, axis=-1)
                log_t = tf.nn.log_softmax(tf.cast(t, tf.float32) / temperature, axis=-1)
                soft += tf.reduce_mean(tf.reduce_sum(p_t * (log_t - log_s), axis=-1))
            return alpha * temperature ** 2 * soft + (1 - alpha) * hard

    return Distiller


def distill(teacher_run: str | Path, student_layers_n: int, temperature: float = 2.0,
            alpha: float = 0.5, epochs=None, learning_rate=None, run_dir=None) -> Path:
    """Distils a finished run into an n-layer student run; returns the student's run dir."""
    import keras

    from tfapp.core.backbone import save_preset
    from tfapp.core.log import say
    from tfapp.core.rundir import new_run_dir
    from tfapp.training.driver import train
    from tfapp.training.restore import restore_run

    if temperature <= 0 or not 0 <= alpha <= 1:
        raise ConfigError("--temperature must be > 0 and --alpha in [0, 1]")
    teacher = restore_run(teacher_run)
    cfg, teacher_model = teacher.cfg, teacher.model
    if not isinstance(teacher_model, keras.Model) or type(teacher_model).__name__ != \
            "Functional":
        raise ConfigError(f"{teacher_run}: distillation supports classification runs with "
                          f"a functional Keras model (e.g. sentiment, qa intent mode); this "
                          f"run's model is a {type(teacher_model).__name__}")
    # teacher.loaded's backbone is the teacher model's, with its fine-tuned weights.
    student, chosen = make_student(teacher.loaded, student_layers_n)
    run_dir = Path(run_dir or new_run_dir(cfg.run.root, cfg.task))
    # The student's initial weights are saved as a backbone directory the student run
    # starts from (and resumes from, when an interrupted distillation is re-run).
    student_dir = run_dir / "student_backbone"
    if not student_dir.exists():
        save_preset(student, student_dir,
                    {"distilled_from": str(teacher_run), "teacher_layers": chosen})
    say(f"student: {student.source}, {student.backbone.count_params():,} parameters; "
        f"temperature {temperature}, alpha {alpha}")
    cfg.backbone.name = str(student_dir)
    cfg.backbone.exact_gelu = "auto"
    cfg.run.dir = None
    cfg.export.version = None
    if epochs:
        cfg.trainer.epochs = epochs
    if learning_rate:
        cfg.optimizer.learning_rate = learning_rate
    distiller_cls = make_distiller(teacher_model, temperature, alpha)

    def prepare(model):
        copied = copy_head_weights(model, teacher_model)
        say(f"student head initialised from the teacher ({copied} layer(s))")
        return distiller_cls(model, name="distiller")

    return train(cfg, type(teacher.task), str(run_dir), prepare=prepare)
