"""Bad input and faults: a diverged run publishes nothing, bad options and data are
one-line errors before anything is written, a run dir takes one training at a time."""
import json
import os
import stat

import numpy as np
import pytest

from tfapp.core.errors import ConfigError, DataError, TfappError
from tfapp.core.task_contract import get_task

from conftest import run_cli, sample_rows, tiny_config, write_csv, write_jsonl


def last_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# --- config -------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "inf", "nan"])
def test_config_floats_must_be_finite(tmp_path, value):
    import yaml

    with pytest.raises(ConfigError, match="optimizer.learning_rate: expected a finite number"):
        tiny_config(tmp_path, **{"optimizer.learning_rate": yaml.safe_load(value)
                                 if value.startswith((".", "-.")) else value})


def test_export_version_must_be_positive(tmp_path):
    with pytest.raises(ConfigError, match="export.version must be >= 1"):
        tiny_config(tmp_path, **{"export.version": 0})


# --- divergence ---------------------------------------------------------------------------

def test_a_diverging_run_stops_and_publishes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny", "--epochs", 2,
                     "--set", "optimizer.learning_rate=1e6", "--set", "optimizer.warmup_ratio=0",
                     "--set", "runtime.precision=float32", "--run-dir", run_dir)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert last_error(result).startswith("error: training diverged: loss is ")
    assert not (run_dir / "export").exists() and not (run_dir / "metrics.json").exists()
    assert not (run_dir / "model.weights.h5").exists()


def test_the_export_check_refuses_non_finite_outputs():
    import tensorflow as tf

    from tfapp.serving.saved_model import _compare

    good = {"probabilities": tf.constant([[0.5, 0.5]])}
    bad = {"probabilities": tf.constant([[np.nan, 0.5]])}
    _compare("serving_default", good, good)
    with pytest.raises(TfappError, match="non-finite values"):
        _compare("serving_default", bad, bad)


# --- one training per run dir -----------------------------------------------------------

def test_a_second_training_into_a_locked_run_dir_is_refused(tmp_path):
    from tfapp.training.run_context import lock_run_dir

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    held = lock_run_dir(run_dir)
    try:
        result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny",
                         "--epochs", 1, "--run-dir", run_dir)
    finally:
        held.close()
    assert result.returncode == 2
    assert "is in use by another training" in last_error(result)
    assert not (run_dir / "config.yaml").exists()


# --- commands -----------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["tfapp.predict", "--model", "nowhere", "--text", "hi", "--batch-size", "0"],
     "error: --batch-size must be >= 1, got 0"),
    (["tfapp.predict", "--model", "nowhere", "--text", "hi", "--batch-size", "-1"],
     "error: --batch-size must be >= 1, got -1"),
    (["tfapp.export", "--run", "nowhere", "--version", "-3"],
     "error: --version must be >= 1 (TF Serving loads positive integer versions), got -3"),
    (["tfapp.quantize", "--run", "nowhere", "--version", "0"],
     "error: --version must be >= 1 (TF Serving loads positive integer versions), got 0"),
    (["tfapp.qa_index", "--model", "nowhere", "--answers", "a.csv", "--target-precision", "7"],
     "error: --target-precision must be in (0, 1], got 7.0"),
    (["tfapp.qa_index", "--model", "nowhere", "--answers", "a.csv", "--target-precision", "-1"],
     "error: --target-precision must be in (0, 1], got -1.0"),
    (["tfapp.serving_config", "--base", "nowhere", "--num-versions", "0"],
     "error: --num-versions must be >= 1, got 0"),
])
def test_bad_command_options_are_one_line_errors(args, message):
    result = run_cli(*args, timeout=120)
    assert result.returncode == 2 and last_error(result) == message


def test_publish_refuses_a_version_below_one(tmp_path):
    from tfapp.serving.saved_model import publish_saved_model

    with pytest.raises(TfappError, match="export version must be >= 1"):
        publish_saved_model(None, {}, {}, {}, tmp_path / "model", version=0)
    assert not (tmp_path / "model").exists()


# --- data ---------------------------------------------------------------------------------

def sentiment_task(tmp_path, **overrides):
    return get_task("sentiment")(tiny_config(tmp_path, **overrides))


def test_blank_labels_are_errors_not_classes(tmp_path):
    rows = sample_rows(40)
    rows[5]["topic"] = " "
    path = write_csv(tmp_path / "train.csv", rows)
    task = sentiment_task(tmp_path, **{"data.train_file": str(path)})
    with pytest.raises(DataError, match=r"train.csv: row 7: field 'topic': empty label"):
        task.load_splits()


def test_jsonl_null_and_nan_labels_are_blank(tmp_path):
    rows = [{"text": r["text"], "label": r["label"], "topic": r["topic"]}
            for r in sample_rows(40)]
    path = tmp_path / "train.jsonl"
    write_jsonl(path, rows)
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace(f'"topic": "{rows[2]["topic"]}"', '"topic": NaN')
    path.write_text("\n".join(lines) + "\n")
    task = sentiment_task(tmp_path, **{"data.train_file": str(path)})
    with pytest.raises(DataError, match=r"train.jsonl: row 3: field 'topic': empty label"):
        task.load_splits()


def test_a_training_file_with_one_class_is_an_error(tmp_path):
    rows = [r for r in sample_rows() if r["label"] == "positive"]
    path = write_csv(tmp_path / "train.csv", rows)
    task = sentiment_task(tmp_path, **{"data.train_file": str(path)})
    with pytest.raises(DataError, match="only 1 distinct value.*needs at least two"):
        task.load_splits()


@pytest.mark.parametrize("labels, message", [
    (["negative", "neutral", "negative"], "sentiment.labels: 'negative' appears more than once"),
    ([], "sentiment.labels: 0 label"),
])
def test_bad_label_lists_are_config_errors_when_the_config_loads(tmp_path, labels, message):
    with pytest.raises(ConfigError, match=message):
        sentiment_task(tmp_path, **{"sentiment.labels": labels})


def test_a_duplicated_header_column_is_an_error(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("text,label,label,topic\nshares rose,positive,negative,markets\n")
    task = sentiment_task(tmp_path, **{"data.train_file": str(path)})
    with pytest.raises(DataError, match=r"row 1: field 'label': column 'label' appears 2 times"):
        task.load_splits()


def test_a_lone_surrogate_in_jsonl_is_a_one_line_error_before_anything_is_written(tmp_path):
    path = tmp_path / "train.jsonl"
    good = [json.dumps({"text": r["text"], "label": r["label"], "topic": r["topic"]})
            for r in sample_rows(30)]
    good[3] = '{"text": "bad \\ud800 text", "label": "positive", "topic": "markets"}'
    path.write_text("\n".join(good) + "\n")
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny",
                     "--set", f"data.train_file={path}", "--run-dir", tmp_path / "run")
    assert result.returncode == 2
    assert "train.jsonl: row 4: field 'text': invalid UTF-8" in last_error(result)
    assert not (tmp_path / "run").exists()


# --- published files ----------------------------------------------------------------------

def test_published_files_are_world_readable(tmp_path):
    from tfapp.core.rundir import write_json

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "metrics.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == 0o644


# --- TensorBoard text summaries ---------------------------------------------------------

def test_user_text_in_markdown_summaries_is_inert():
    from tfapp.core.markdown import code_block, escape

    hostile = 'great ![x](http://evil.example/p.png) <img src="http://evil.example"> | *b*\r\n'
    cell = escape(hostile)
    assert "<img" not in cell and "](" not in cell and "![" not in cell
    assert "\n" not in cell and "\r" not in cell and "| " not in cell.replace("\\|", "")
    block = code_block('{\n "text": "![x](http://evil.example)"\n}')
    assert all(line.startswith("    ") for line in block.splitlines())


def test_projector_metadata_fields_stay_on_one_line():
    from tasks.qa.model import tsv_field

    assert tsv_field("id\r\nwith\tbreaks\r") == "id with breaks"


# --- resume ---------------------------------------------------------------------------------

def test_resume_refuses_a_changed_config_naming_the_keys(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "backup").mkdir(parents=True)  # an interrupted run's BackupAndRestore state
    before = tiny_config(tmp_path, **{"optimizer.learning_rate": 1e-3, "trainer.epochs": 2,
                                      "run.dir": str(run_dir)})
    (run_dir / "config.yaml").write_text(before.to_yaml())
    saved = (run_dir / "config.yaml").read_text()
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny", "--epochs", 2,
                     "--set", f"run.root={tmp_path / 'runs'}",
                     "--set", "sentiment.topic_column=null", "--run-dir", run_dir)
    assert result.returncode == 2
    error = last_error(result)
    assert error.startswith(f"error: {run_dir}: cannot resume with a different config: ")
    assert "optimizer.learning_rate (0.001 -> 0.0001)" in error
    assert "sentiment.topic_column" in error
    assert (run_dir / "config.yaml").read_text() == saved  # the backup's config is kept


def test_resume_keeps_the_best_epoch_and_patience(tmp_path):
    """A kill between epochs, then a worse epoch: the best checkpoint is not overwritten,
    early stopping still knows the best epoch (and its weights), patience keeps counting."""
    import keras

    from tfapp.training.resume import ResumableBest

    def session(model):
        es = keras.callbacks.EarlyStopping(monitor="val_f1", mode="max", patience=3,
                                           restore_best_weights=True)
        ckpt = keras.callbacks.ModelCheckpoint(str(tmp_path / "best.weights.h5"),
                                               monitor="val_f1", mode="max",
                                               save_best_only=True, save_weights_only=True)
        keeper = ResumableBest(tmp_path / "backup", es, ckpt)
        callbacks = keras.callbacks.CallbackList([es, ckpt, keeper], model=model)
        callbacks.on_train_begin()
        return callbacks, es, ckpt, keeper

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    callbacks, *_ = session(model)
    model.layers[0].kernel.assign([[1.0], [1.0]])
    callbacks.on_epoch_end(0, {"loss": 0.5, "val_f1": 0.9})  # the best epoch
    model.layers[0].kernel.assign([[2.0], [2.0]])
    callbacks.on_epoch_end(1, {"loss": 0.4, "val_f1": 0.8})
    best_bytes = (tmp_path / "best.weights.h5").read_bytes()

    # Killed here; a new process resumes (BackupAndRestore brings back the latest weights).
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    callbacks, es, ckpt, keeper = session(model)
    assert es.best == 0.9 and es.best_epoch == 0 and es.wait == 1 and ckpt.best == 0.9
    np.testing.assert_allclose(es.best_weights[0], [[1.0], [1.0]])
    model.layers[0].kernel.assign([[3.0], [3.0]])
    callbacks.on_epoch_end(2, {"loss": 0.3, "val_f1": 0.7})  # worse
    assert (tmp_path / "best.weights.h5").read_bytes() == best_bytes
    assert es.wait == 2 and es.best_epoch == 0
    callbacks.on_train_end()
    np.testing.assert_allclose(model.layers[0].kernel.numpy(), [[1.0], [1.0]])  # epoch 1's
    assert keeper.history()["val_f1"] == [0.9, 0.8, 0.7]
