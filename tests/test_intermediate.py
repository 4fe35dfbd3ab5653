"""levers.intermediate: fine-tune on a related labelled file first, then on the run's data,
keeping the backbone (and the class head where the labels match)."""
import csv
import json

import numpy as np
import pytest

from conftest import keyword_sentiment_csv, run_cli, tiny_config

RENAMED = {"negative": "bearish", "positive": "bullish", "neutral": "flat"}


def _renamed_file(tmp_path):
    rows = list(csv.DictReader(open(keyword_sentiment_csv(tmp_path / "kw.csv", n=120))))
    path = tmp_path / "related.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "label": RENAMED[r["label"]]} for r in rows)
    return path


def _train(run_dir, *sets, task="sentiment"):
    args = ["--task", task, "--backbone", "tiny", "--epochs", "1", "--run-dir", run_dir]
    for s in sets:
        args += ["--set", s]
    return run_cli("tfapp.train", *args)


@pytest.fixture(scope="module")
def related(tmp_path_factory):
    return _renamed_file(tmp_path_factory.mktemp("related"))


@pytest.mark.parametrize("mapped", [True, False])
def test_the_run_starts_from_the_intermediate_fine_tune(tmp_path, related, mapped):
    run_dir = tmp_path / "run"
    label_map = "{" + ", ".join(f"{v}: {k}" for k, v in RENAMED.items()) + "}"
    sets = [f"levers.intermediate.train_file={related}", "levers.intermediate.epochs=1"]
    result = _train(run_dir, *sets, *([f"levers.intermediate.label_map={label_map}"]
                                      if mapped else []))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    inner = run_dir / "intermediate"
    inner_metrics = json.loads((inner / "run" / "metrics.json").read_text())
    assert inner_metrics["train_examples"] > 0 and "export" not in inner_metrics
    written = list(csv.DictReader(open(inner / "train.csv")))
    assert {r["label"] for r in written} == (set(RENAMED) if mapped else set(RENAMED.values()))
    assert (inner / "tuned_backbone").is_dir()
    config = (run_dir / "config.yaml").read_text()
    assert str(inner / "tuned_backbone") in config
    record = json.loads((run_dir / "metrics.json").read_text())["intermediate"]
    assert record["head_kept"] is mapped
    card = (run_dir / "MODEL_CARD.md").read_text()
    assert "intermediate task: fine-tuned first on" in card
    assert ("class head kept" in card) is mapped


def test_matching_head_layers_are_copied_and_the_rest_kept():
    import keras

    from tfapp.levers.intermediate import copy_matching_head

    def model(outputs, seed):
        inputs = keras.Input((3,))
        init = keras.initializers.GlorotUniform(seed)
        return keras.Model(inputs, [keras.layers.Dense(n, name=name, kernel_initializer=init)(
            inputs) for name, n in outputs])

    ours = model([("sentiment", 3), ("topic", 5)], 1)
    theirs = model([("sentiment", 3), ("topic", 4)], 2)
    topic = ours.get_layer("topic").kernel.numpy().copy()
    assert copy_matching_head(ours, theirs) == ["sentiment"]
    np.testing.assert_array_equal(ours.get_layer("sentiment").kernel.numpy(),
                                  theirs.get_layer("sentiment").kernel.numpy())
    np.testing.assert_array_equal(ours.get_layer("topic").kernel.numpy(), topic)


def test_the_old_train_intermediate_mapping_is_the_levers_section(tmp_path, related):
    from tfapp.core.config import build_config, read_yaml
    from tfapp.core.task_contract import get_task

    from conftest import REPO

    raw = read_yaml(REPO / "configs" / "sentiment.yaml")
    raw["train"] = {"intermediate": {"train_file": str(related), "epochs": 3,
                                     "label_map": {"bullish": "positive"}}}
    cfg = build_config(raw, get_task("sentiment").Config, "test")
    section = cfg.levers.intermediate
    assert (section.train_file, section.epochs, section.label_map) == (
        str(related), 3, {"bullish": "positive"})


@pytest.mark.parametrize("key, value, message", [
    ("epochs", 0, "levers.intermediate.epochs must be >= 1"),
    ("train_file", "/nonexistent/related.csv", "train_file /nonexistent/related.csv: no such"),
])
def test_bad_intermediate_values_are_one_line_config_errors(tmp_path, key, value, message):
    from tfapp.core.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        tiny_config(tmp_path, **{f"levers.intermediate.{key}": value})


def test_a_task_without_transfer_is_refused_before_anything_is_written(tmp_path, related):
    result = _train(tmp_path / "run", f"levers.intermediate.train_file={related}",
                    task="recommend")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "the recommend task cannot fine-tune on an intermediate file" in \
        result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "run").exists()


@pytest.mark.integration  # two QA trainings
def test_a_support_bot_fine_tunes_on_another_bots_intents_first(tmp_path):
    from conftest import REPO

    related = REPO / "tasks" / "samples" / "qa_train.csv"
    run_dir = tmp_path / "run"
    result = _train(run_dir, f"levers.intermediate.train_file={related}", "qa.mode=intent",
                    task="qa")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (run_dir / "intermediate" / "run" / "metrics.json").is_file()
    assert "intermediate" in json.loads((run_dir / "metrics.json").read_text())


def test_validation_is_held_out_per_label_and_never_a_labels_last_row(tmp_path):
    from tfapp.core.errors import DataError
    from tfapp.levers.intermediate import relabelled_files

    from conftest import write_csv

    rows = ([{"text": f"big {i}", "label": "big"} for i in range(50)]
            + [{"text": "alone", "label": "single"}])
    train, validation = relabelled_files(str(write_csv(tmp_path / "in.csv", rows)),
                                         ("text", "label"), {"big": "large"}, "auto",
                                         tmp_path / "out", seed=1)
    train_rows = list(csv.DictReader(open(train)))
    held = list(csv.DictReader(open(validation)))
    assert {r["label"] for r in held} == {"large"} and 1 <= len(held) <= 10
    assert {r["label"] for r in train_rows} == {"large", "single"}
    assert len(train_rows) + len(held) == 51
    with pytest.raises(DataError, match="no label has two rows"):
        relabelled_files(str(write_csv(tmp_path / "one.csv", rows[-1:])), ("text", "label"),
                         {}, "auto", tmp_path / "out2", seed=1)
