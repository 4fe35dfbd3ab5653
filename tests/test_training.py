import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfapp.core import distribute
from tfapp.core.backbone import TextPacker, load_backbone
from tfapp.core.task_contract import get_task
from tfapp.training.driver import build_compiled_model

from conftest import run_cli, sample_rows, tiny_config, write_csv


def test_one_training_step_lowers_the_loss(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    # A modest step: at 3e-3 one Adam step overshoots for some random initialisations.
    # float32: resolve() sets the process-wide dtype policy, which later in-process tests
    # would otherwise inherit on bf16-capable CPUs.
    cfg = tiny_config(tmp_path, **{"optimizer.learning_rate": 3e-4, "optimizer.warmup_ratio": 0.0,
                                   "runtime.precision": "float32"})
    placement = distribute.resolve(cfg.runtime)
    task = get_task("sentiment")(cfg)
    splits = task.load_splits()
    with placement.strategy.scope():
        loaded = load_backbone("tiny")
        model = build_compiled_model(task, cfg, loaded, placement, total_steps=10)
    packer = TextPacker(loaded.tokenizer, 64)
    x, y, w = next(iter(task.dataset(splits["train"], packer, 64, training=True)))
    before = model.test_on_batch(x, y, return_dict=True)["loss"]
    model.train_on_batch(x, y, sample_weight=w)
    after = model.test_on_batch(x, y, return_dict=True)["loss"]
    assert after < before - 1e-3, (before, after)


def _event_tags(log_dir: Path) -> set[str]:
    tags = set()
    for path in log_dir.rglob("events.out.tfevents*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            tags.update(v.tag for v in event.summary.value)
    return tags


def test_cli_end_to_end_writes_a_complete_run(tiny_run):
    run_dir, stdout = tiny_run
    assert "[tfapp] epoch 1:" in stdout and "[tfapp] epoch 2:" in stdout
    assert f"run dir {run_dir}" in stdout
    expected = "mixed_bfloat16" if distribute.cpu_supports_bf16() else "float32"
    assert "strategy default (OneDeviceStrategy" in stdout and f"precision {expected}" in stdout
    for name in ("config.yaml", "metrics.json", "MODEL_CARD.md", "model.weights.h5",
                 "checkpoints/best.weights.h5", "export/sentiment/1/saved_model.pb"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "backup").exists()  # BackupAndRestore cleans up after success
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["history"]["loss"]) == 2
    test = metrics["test"]["sentiment"]
    assert set(test["per_class"]) == {"negative", "neutral", "positive"}
    assert 0 <= test["macro_f1"] <= 1 and test["examples"] == 59
    card = (run_dir / "MODEL_CARD.md").read_text()
    assert "tiny" in card and "macro-F1" in card and "474 examples" in card
    tags = _event_tags(run_dir / "logs")
    for tag in ("epoch_loss", "epoch_learning_rate", "epoch_examples_per_second",
                "epoch_train_examples_per_second",
                "epoch_sentiment_macro_f1", "sentiment/confusion_matrix",
                "sentiment/misclassified", "topic/confusion_matrix",
                "sentiment/precision/negative", "sentiment/recall/positive",
                "sentiment/pr/negative/pr_curves", "topic/pr/markets/pr_curves",
                "final/test/sentiment/macro_f1", "final/validation/topic/accuracy"):
        assert tag in tags, (tag, sorted(tags))


def test_every_run_writes_its_hparams_for_tensorboard(tiny_run):
    from tensorboard.plugins.hparams import plugin_data_pb2

    run_dir, _ = tiny_run
    hparams = {}
    for path in (run_dir / "logs").glob("events.out.tfevents*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_data_pb2.HParamsPluginData.FromString(
                        value.metadata.plugin_data.content)
                    if data.HasField("session_start_info"):
                        hparams = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
                                   for k, v in data.session_start_info.hparams.items()}
    assert hparams["task"] == "sentiment" and hparams["backbone"] == "tiny"
    assert hparams["epochs"] == 2 and hparams["layer_decay"] == 1.0
    assert hparams["levers.ema.momentum"] == 0.0 and hparams["truncation"] == "head"
    assert hparams["levers.weight_soup.enabled"] is False


def test_evaluate_cli_prints_table_and_writes_metrics(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    data = write_csv(tmp_path / "holdout.csv", sample_rows(40))
    result = run_cli("tfapp.evaluate", "--run", run_dir, "--data", data)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "sentiment: accuracy" in result.stdout and "precision" in result.stdout
    metrics = json.loads((run_dir / "eval" / "holdout" / "metrics.json").read_text())
    assert metrics["sentiment"]["examples"] == 40


def test_bad_evaluation_file_is_one_line_and_leaves_run_intact(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    rows = sample_rows(5)
    rows[3]["label"] = "bullish"
    data = write_csv(tmp_path / "bad.csv", rows)
    result = run_cli("tfapp.evaluate", "--run", run_dir, "--data", data)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {data}: row 5: field 'label': unknown label 'bullish' "
                      f"(expected one of negative, neutral, positive)"]
    after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before


def test_predict_cli_prints_label_and_probabilities(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    texts = tmp_path / "texts.txt"
    texts.write_text("Stocks rallied to a record high.\n\nThe bank cut its dividend.\n")
    result = run_cli("tfapp.predict", "--model", run_dir / "export" / "sentiment",
                     "--text", "Shares of Vega Motors slumped 9%.", "--file", texts)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["Shares of Vega Motors slumped 9%.",
                                         "Stocks rallied to a record high.",
                                         "The bank cut its dividend."]
    for r in rows:
        assert r["label"] in ("negative", "neutral", "positive")
        assert set(r["probabilities"]) == {"negative", "neutral", "positive"}
        assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        assert r["probabilities"][r["label"]] == pytest.approx(r["score"], abs=1e-5)


@pytest.mark.parametrize("args, message", [
    (["--task", "nope"], "error: unknown task 'nope' (available: "),
    (["--task", "sentiment", "--set", "train.lr=1"], "unknown key 'lr'"),
    (["--task", "sentiment", "--backbone", "/no/such/dir"],
     "error: backbone '/no/such/dir': not 'default', 'tiny' or an existing directory"),
    (["--task", "sentiment", "--strategy", "multiworker"], "needs the TF_CONFIG"),
    (["--task", "sentiment", "--strategy", "tpu"], "--strategy tpu needs a TPU name"),
])
def test_train_cli_errors_are_one_line_with_exit_2(args, message, tmp_path):
    result = run_cli("tfapp.train", *args, "--set", f"run.root={tmp_path}")
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())  # nothing written


def test_bad_data_in_existing_run_dir_changes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("previous run's config\n")
    rows = sample_rows(30)
    rows[7]["text"] = ""
    data = write_csv(tmp_path / "news.csv", rows)
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny",
                     "--set", f"data.train_file={data}", "--run-dir", run_dir)
    assert result.returncode == 2
    assert f"error: {data}: row 9: field 'text': empty text" in result.stderr
    assert (run_dir / "config.yaml").read_text() == "previous run's config\n"
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml"]


def test_distribute_auto_choices():
    choose = distribute.choose_strategy_name
    assert choose("auto", None, None, 0)[0] == "default"
    assert choose("auto", None, None, 2)[0] == "mirrored"
    assert choose("auto", None, '{"cluster": {}}', 0)[0] == "multiworker"
    assert choose("auto", "grpc://10.0.0.1:8470", None, 0)[0] == "tpu"
    prec = distribute.choose_precision
    assert prec("auto", "default", [])[0] == "float32"
    assert prec("auto", "default", [(8, 0)])[0] == "mixed_float16"
    assert prec("auto", "default", [(6, 1)])[0] == "float32"
    assert prec("auto", "tpu", [])[0] == "mixed_bfloat16"
    assert "emulated" in prec("mixed_float16", "default", [])[1]
    # CPUs with bfloat16 instructions train in mixed_bfloat16; GPUs decide when present.
    assert prec("auto", "default", [], cpu_bf16=True)[0] == "mixed_bfloat16"
    assert prec("auto", "default", [(8, 0)], cpu_bf16=True)[0] == "mixed_float16"
    assert prec("float32", "default", [], cpu_bf16=True)[0] == "float32"
    assert distribute.cpu_supports_bf16("flags : fpu avx512f avx512_bf16 avx512_vnni")
    assert distribute.cpu_supports_bf16("flags : fpu amx_bf16 amx_tile")
    assert not distribute.cpu_supports_bf16("flags : fpu avx2 avx512f avx512_vnni")


@pytest.mark.integration  # a whole CLI job under the profiler
def test_profile_steps_capture_a_trace(tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny", "--epochs", "1",
                     "--profile_steps", "2,3", "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "profile_steps:\n  - 2\n  - 3" in result.stdout  # printed with the config
    assert list((run_dir / "logs").rglob("*.xplane.pb")), sorted(
        str(p) for p in (run_dir / "logs").rglob("*"))


@pytest.mark.integration  # a minute of multi-process or large-model training
def test_mirrored_on_two_logical_cpus_matches_one_device(tmp_path):
    """Same seed and global batch: MirroredStrategy over 2 CPU replicas follows the
    single-device loss curve (uneven splits of odd-sized batches explain the residue)."""
    losses = {}
    for strategy, replicas in (("default", 1), ("mirrored", 2)):
        run_dir = tmp_path / strategy
        result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny",
                         "--epochs", "2", "--strategy", strategy,
                         "--set", f"runtime.cpu_replicas={replicas}", "--set", "backbone.dropout=0",
                         "--set", "sentiment.head_dropout=0", "--set", "export.enabled=false",
                         # float32: the comparison is about the strategy, not bf16 rounding.
                         "--precision", "float32", "--run-dir", run_dir)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f", {replicas} replica(s))" in result.stdout
        losses[strategy] = json.loads((run_dir / "metrics.json").read_text())["history"]
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose(losses["mirrored"][key], losses["default"][key], rtol=3e-3)
    assert losses["default"]["loss"][1] < losses["default"]["loss"][0]
