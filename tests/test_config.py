import dataclasses

import pytest

from tfapp.cli import SHORTCUTS
from tfapp.core.config import apply_overrides, build_config, read_yaml
from tfapp.core.errors import ConfigError
from tfapp.core.task_contract import available, get_task

from conftest import REPO, tiny_config

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
        "trainer.epochs=7", "optimizer.learning_rate=3e-5", "data.cache=false",
        "sentiment.class_weights={negative: 2.0}", "sentiment.labels=[a, b]",
        "sentiment.topic_column=null", "data.split=[0.7, 0.2, 0.1]"])
    cfg = build_config(raw, SentimentConfig, "test")
    assert cfg.trainer.epochs == 7 and isinstance(cfg.trainer.epochs, int)
    assert cfg.optimizer.learning_rate == pytest.approx(3e-5)
    assert cfg.data.cache is False
    assert cfg.params.class_weights == {"negative": 2.0}
    assert cfg.params.labels == ["a", "b"]
    assert cfg.params.topic_column is None
    assert cfg.data.split == [0.7, 0.2, 0.1]


@pytest.mark.parametrize("override, message", [
    ("train.lr=0.1", "unknown key 'lr'"),
    ("sentiment.nope=1", "unknown key 'nope'"),
    ("bogus.key=1", "unknown key 'bogus'"),
    ("trainer.epochs=three", "trainer.epochs: expected an integer"),
    ("runtime.strategy=fast", "runtime.strategy must be"),
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
    path.write_text("task: sentiment\ntrainer:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: trainer: unknown key 'epochz'"):
        build_config(read_yaml(path), SentimentConfig, str(path))
    path.write_text("task: sentiment\ntrain:\n  epochz: 3\n")  # the old section's keys too
    with pytest.raises(ConfigError, match=r"train: unknown key 'epochz'"):
        build_config(apply_overrides(read_yaml(path), []), SentimentConfig, str(path))


def test_each_section_validates_itself_and_names_the_key():
    with pytest.raises(ConfigError, match=r"^f.yaml: levers.ema.momentum must be in \[0, 1\)$"):
        build_config({"task": "sentiment", "levers": {"ema": {"momentum": 1.5}}},
                     SentimentConfig, "f.yaml")
    with pytest.raises(ConfigError, match=r"^f.yaml: optimizer.learning_rate must be > 0$"):
        build_config({"task": "sentiment", "optimizer": {"learning_rate": 0}},
                     SentimentConfig, "f.yaml")
    with pytest.raises(ConfigError, match=r"unknown key 'nope' \(known: .*rdrop"):
        build_config({"task": "sentiment", "levers": {"nope": {}}}, SentimentConfig, "f.yaml")


OLD_FLAT_TRAIN = {"epochs": 3, "global_batch_size": 16, "learning_rate": 5e-5,
                  "strategy": "default", "precision": "float32", "label_smoothing": 0.0,
                  "rdrop_alpha": 1.0, "ema_momentum": 0.0, "weight_soup": True,
                  "freeze_token_embeddings": True, "refit": False, "tapt_epochs": 2,
                  "tapt_corpus": ["extra.txt"], "profile_steps": None}


def test_configs_and_run_dirs_with_the_old_train_section_still_load():
    cfg = build_config({"task": "sentiment", "train": dict(OLD_FLAT_TRAIN)}, SentimentConfig,
                       "old run/config.yaml")
    assert (cfg.trainer.epochs, cfg.trainer.global_batch_size) == (3, 16)
    assert cfg.optimizer.learning_rate == pytest.approx(5e-5)
    assert (cfg.runtime.strategy, cfg.runtime.precision) == ("default", "float32")
    assert cfg.levers.rdrop.alpha == 1.0 and cfg.levers.weight_soup.enabled
    assert cfg.levers.frozen_embeddings.enabled and not cfg.levers.refit.enabled
    assert (cfg.levers.tapt.epochs, cfg.levers.tapt.corpus) == (2, ["extra.txt"])
    assert "train" not in cfg.to_dict()  # written back in today's sections


def test_old_keys_on_the_command_line_set_todays_keys_and_win_over_the_file():
    raw = {"task": "sentiment", "trainer": {"epochs": 4}, "levers": {"rdrop": {"alpha": 0.5}}}
    cfg = build_config(apply_overrides(raw, ["train.epochs=1", "train.rdrop_alpha=2",
                                             "train.weight_soup=true"]),
                       SentimentConfig, "test")
    assert cfg.trainer.epochs == 1 and cfg.levers.rdrop.alpha == 2.0
    assert cfg.levers.weight_soup.enabled
    old_file = {"task": "sentiment", "train": {"epochs": 4}}
    cfg = build_config(apply_overrides(old_file, ["trainer.epochs=2"]), SentimentConfig, "t")
    assert cfg.trainer.epochs == 2


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_yamls_hold_only_what_differs_from_the_defaults(path):
    raw = read_yaml(path)
    task = raw["task"]
    config_cls = get_task(task).Config
    default = build_config({"task": task}, config_cls, "defaults").to_dict()
    build_config(raw, config_cls, str(path))  # loads
    for section, values in raw.items():
        if isinstance(values, dict):
            for key, value in values.items():
                assert not isinstance(value, dict), f"{section}.{key}: nested"
                assert default[section][key] != value, f"{path.name}: {section}.{key} is a default"


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
