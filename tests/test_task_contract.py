"""The task contract, checked on every registered task: its config section, reading its
built-in sample into the shared examples type, building on the tiny backbone, one training
step, whole-set evaluation, export and reload with only TensorFlow, and its signatures."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from tfapp.core.config import apply_overrides, build_config, read_yaml
from tfapp.core.task_contract import (
    Calibrated,
    ClassLogits,
    Examples,
    Refittable,
    Task,
    available,
    capabilities,
    get_task,
)

from conftest import REPO


def tiny_task(name: str, tmp_path):
    raw = apply_overrides(read_yaml(REPO / "configs" / f"{name}.yaml"),
                          ["backbone.name=tiny", "trainer.epochs=1",
                           "trainer.global_batch_size=8", f"run.root={tmp_path}"])
    cfg = build_config(raw, get_task(name).Config, "contract")
    return cfg, get_task(name)(cfg)


def test_every_task_implements_the_abstract_core_and_declares_its_capabilities():
    assert set(available()) >= {"sentiment", "qa", "recommend"}
    for name in available():
        cls = get_task(name)
        assert issubclass(cls, Task) and cls.name == name
        assert not getattr(cls, "__abstractmethods__", None), name
        assert dataclasses.is_dataclass(cls.Config)
    assert capabilities(get_task("qa")) == ["Calibrated", "ClassLogits", "Transferable"]
    assert capabilities(get_task("sentiment")) == ["Refittable", "ClassLogits",
                                                   "Transferable"]


def test_a_task_missing_part_of_the_core_cannot_be_made():
    class Partial(Task):
        name = "partial"

        def load_splits(self):
            return {}

    with pytest.raises(TypeError, match="abstract"):
        Partial(None)


@pytest.mark.parametrize("name", ["sentiment", "qa", "recommend"])
def test_the_contract_end_to_end_on_the_tiny_backbone(name, tmp_path):
    import keras
    import tensorflow as tf

    from tfapp.core import distribute
    from tfapp.core.backbone import TextPacker, load_backbone
    from tfapp.serving.saved_model import export_saved_model
    from tfapp.training.driver import build_compiled_model

    cfg, task = tiny_task(name, tmp_path)
    splits = task.load_splits()
    assert set(splits) == {"train", "validation", "test"}
    for examples in splits.values():
        assert isinstance(examples, Examples) and isinstance(examples.source, str)
    train = splits["train"]
    assert len(train) > 0 and len(train.subset([0, 1], "two")) == 2
    assert task.texts(train) and all(isinstance(t, str) for t in task.texts(train))

    loaded = load_backbone("tiny")
    packer = TextPacker.from_config(loaded.tokenizer, cfg)
    placement = distribute.resolve(cfg.runtime)
    model = build_compiled_model(task, cfg, loaded, placement, total_steps=10)
    dataset = task.dataset(train, packer, 8, training=True)
    logs = model.fit(dataset.take(1), epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0])
    monitor, mode = task.monitor()
    assert monitor.startswith("val_") and mode in ("max", "min")

    metrics = task.evaluate(model, splits["validation"], packer)
    json.dumps(metrics)  # JSON-serialisable
    assert isinstance(task.format_metrics(metrics), str) and metrics
    if isinstance(task, Calibrated):
        calibration = task.calibrate(model, splits["validation"], packer)
        if calibration is not None:
            json.dumps(calibration)
            task.set_calibration(calibration)
    if isinstance(task, Refittable):
        both = task.combine(train, splits["validation"])
        assert len(both) == len(train) + len(splits["validation"])
    if isinstance(task, ClassLogits):
        assert isinstance(task.consistency_outputs(), list)

    export = export_saved_model(task, model, packer, tmp_path / "export" / name)
    assert export.name == "1" and (export / "saved_model.pb").is_file()
    keras.backend.clear_session()
    reloaded = tf.saved_model.load(str(export))
    assert "serving_default" in reloaded.signatures
    for signature, inputs in task.example_inputs().items():
        outputs = reloaded.signatures[signature](
            **{k: tf.constant(v) for k, v in inputs.items()})
        assert outputs, signature
        for value in outputs.values():
            if value.dtype.is_floating:
                assert np.all(np.isfinite(value.numpy())), signature


def test_a_foreign_top_level_tasks_package_is_refused(monkeypatch):
    import sys
    import types

    from tfapp.core.errors import ConfigError

    foreign = types.ModuleType("tasks")
    foreign.__path__ = []
    monkeypatch.setitem(sys.modules, "tasks", foreign)
    with pytest.raises(ConfigError, match="is not tfapp's task package"):
        available()
