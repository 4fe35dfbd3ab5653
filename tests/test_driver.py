"""The training driver talks to levers only through the Lever contract: a lever plugin
registered from outside the framework gets its config section and every hook, in phase
order, and its record lands in metrics.json and the model card; the run dir follows
tfapp.core.run_layout."""
from __future__ import annotations

import dataclasses
import json

from conftest import keyword_sentiment_csv, tiny_config


def test_a_new_lever_plugs_in_without_touching_the_driver(tmp_path, monkeypatch):
    from tfapp.core import lever as lever_contract
    from tfapp.core import run_layout as layout
    from tfapp.core.task_contract import get_task
    from tfapp.training.driver import train

    calls = []

    @dataclasses.dataclass
    class ProbeConfig:
        enabled: bool = False
        tag: str = "x"

    class Probe(lever_contract.Lever):
        name = "probe"
        Config = ProbeConfig

        @property
        def enabled(self):
            return self.config.enabled

        def prepare(self, cfg, task_cls, run_dir):
            calls.append("prepare")
            return run_dir

        def check(self, run):
            calls.append(("check", len(run.splits["train"]) > 0, run.distilling))

        def on_model(self, model, loaded):
            calls.append("on_model")

        def training_model(self, model, fitted, task):
            calls.append("training_model")
            return fitted

        def training_data(self, dataset):
            calls.append("training_data")
            return dataset

        def optimizer_options(self):
            calls.append("optimizer_options")
            return {}

        def callbacks(self, run):
            calls.append("callbacks")
            return {}

        def after_fit(self, run):
            calls.append(("after_fit", run.history is not None))
            return {"tag": self.config.tag}

        def model_card_lines(self, metrics):
            return [f"- probe: {metrics['probe']['tag']}"]

    monkeypatch.setitem(lever_contract._REGISTRY, "probe", Probe)
    data = keyword_sentiment_csv(tmp_path / "train.csv", n=90)
    cfg = tiny_config(tmp_path, **{"levers.probe.enabled": True, "levers.probe.tag": "seen",
                                   "data.train_file": str(data),
                                   "sentiment.topic_column": None})
    run_dir = train(cfg, get_task("sentiment"), str(tmp_path / "run"))

    phases = [c if isinstance(c, str) else c[0] for c in calls]
    assert phases == ["prepare", "check", "on_model", "training_model", "training_data",
                      "optimizer_options", "callbacks", "after_fit"]
    assert ("check", True, False) in calls and ("after_fit", True) in calls
    metrics = json.loads((run_dir / layout.METRICS_FILE).read_text())
    assert metrics["probe"] == {"tag": "seen"}
    assert "- probe: seen" in (run_dir / layout.MODEL_CARD_FILE).read_text()
    saved = (run_dir / layout.CONFIG_FILE).read_text()
    assert "probe:\n    enabled: true\n    tag: seen" in saved
    for path in (layout.WEIGHTS_FILE, layout.BACKBONE_DIR, layout.BEST_CHECKPOINT,
                 layout.LOGS_DIR):
        assert (run_dir / path).exists(), path
    assert (layout.export_base(run_dir, "sentiment") / "1" / "saved_model.pb").is_file()
    assert not (run_dir / layout.BACKUP_DIR).exists()  # removed when training ends
