import dataclasses

import pytest

from conftest import REPO, tiny_config
from tfapp.cli import SHORTCUTS
from tfapp.core.config import (apply_overrides, build_config, read_yaml)
from tfapp.core.task import available, get_task
from tfapp.core.errors import ConfigError

SentimentConfig = get_task("sentiment").Config


@pytest.mark.parametrize("task", available())
def test_shipped_yaml_matches_dataclass_defaults(task):
    config_cls = get_task(task).Config
    cfg = build_config(read_yaml(REPO / "configs" / f"{task}.yaml"), config_cls, "yaml")
    default = build_config({"task": task}, config_cls, "defaults")
    # Every knob in the YAML is a real field, and the YAML documents the defaults.
    assert cfg.to_dict() == default.to_dict()


def test_overrides_are_typed(tmp_path):
    cfg = tiny_config(tmp_path)
    raw = apply_overrides(cfg.to_dict(), [
        "train.epochs=7", "train.learning_rate=3e-5", "data.cache=false",
        "sentiment.class_weights={negative: 2.0}", "sentiment.labels=[a, b]",
        "sentiment.topic_column=null", "data.split=[0.7, 0.2, 0.1]"])
    cfg = build_config(raw, SentimentConfig, "test")
    assert cfg.train.epochs == 7 and isinstance(cfg.train.epochs, int)
    assert cfg.train.learning_rate == pytest.approx(3e-5)
    assert cfg.data.cache is False
    assert cfg.params.class_weights == {"negative": 2.0}
    assert cfg.params.labels == ["a", "b"]
    assert cfg.params.topic_column is None
    assert cfg.data.split == [0.7, 0.2, 0.1]


@pytest.mark.parametrize("override, message", [
    ("train.lr=0.1", "unknown key 'lr'"),
    ("sentiment.nope=1", "unknown key 'nope'"),
    ("bogus.key=1", "unknown key 'bogus'"),
    ("train.epochs=three", "train.epochs: expected an integer"),
    ("train.strategy=fast", "train.strategy must be"),
    ("data.split=[0.5, 0.1]", "data.split must be"),
    ("train", "expected section.key=value"),
])
def test_bad_overrides_fail_with_one_line(tmp_path, override, message):
    raw = tiny_config(tmp_path).to_dict()
    with pytest.raises(ConfigError) as err:
        build_config(apply_overrides(raw, [override]), SentimentConfig, "test")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_key_in_yaml_file_names_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("task: sentiment\ntrain:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: train: unknown key 'epochz'"):
        build_config(read_yaml(path), SentimentConfig, str(path))


def test_invalid_yaml_names_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("task: sentiment\ntrain: [\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: line \d+: not valid YAML"):
        read_yaml(path)


def test_unknown_task_lists_available():
    with pytest.raises(ConfigError, match=r"unknown task 'nope' \(available: .*sentiment"):
        get_task("nope")


def test_cli_shortcuts_map_to_real_fields():
    cfg = build_config({"task": "sentiment"}, SentimentConfig, "defaults").to_dict()
    for key in SHORTCUTS.values():
        section, name = key.split(".")
        assert name in cfg[section]


def test_config_round_trips_through_yaml(tmp_path):
    import yaml

    cfg = tiny_config(tmp_path, **{"sentiment.class_weights": "balanced"})
    again = build_config(yaml.safe_load(cfg.to_yaml()), SentimentConfig, "again")
    assert dataclasses.asdict(again.params) == dataclasses.asdict(cfg.params)
    assert again.to_dict() == cfg.to_dict()


@pytest.mark.parametrize("legacy, precision", [(True, "float32"), (False, "trained")])
def test_configs_from_before_export_precision_still_load(legacy, precision):
    from tasks.sentiment.task import SentimentTask

    raw = {"task": "sentiment", "export": {"enabled": True, "float32": legacy}}
    cfg = build_config(raw, SentimentTask.Config, "old run/config.yaml")
    assert cfg.export.precision == precision
    assert "float32:" not in cfg.to_yaml()  # written back in the new form
