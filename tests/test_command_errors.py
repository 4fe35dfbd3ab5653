"""predict and evaluate on bad input: one-line errors naming what is wrong, nothing
overwritten (directories, byte-order marks, empty texts, the Classify signature, damaged
exports and weights, two files of one name, formats the extension does not tell)."""
import json
import shutil

import pytest

from conftest import run_cli, sample_rows, write_csv


def _fails(result, message):
    assert result.returncode != 0, result.stdout[-2000:]
    assert message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def _export(run_dir):
    return run_dir / "export" / "sentiment" / "1"


def test_predict_input_errors(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    _fails(run_cli("tfapp.predict", "--model", _export(run_dir), "--file", tmp_path),
           "is a directory; give a file of texts")
    _fails(run_cli("tfapp.predict", "--model", _export(run_dir), "--text", "  "),
           "--text: an empty text has nothing to score")
    table = write_csv(tmp_path / "t.csv", [{"text": "shares rose"}, {"text": " "}])
    _fails(run_cli("tfapp.predict", "--model", _export(run_dir), "--file", table),
           "t.csv: row 3: field 'text': empty text (nothing to score)")
    _fails(run_cli("tfapp.predict", "--model", _export(run_dir), "--signature", "classify",
                   "--text", "shares rose"), "(serialized tf.Example: the Classify API)")


def test_predict_reads_a_bom_txt_and_a_named_format(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    txt = tmp_path / "texts.txt"
    txt.write_text("\ufeffshares rose\nprofit fell\n", encoding="utf-8")
    result = run_cli("tfapp.predict", "--model", _export(run_dir), "--file", txt)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["shares rose", "profit fell"]
    odd = tmp_path / "texts.dat"
    odd.write_text("text\nshares rose\n", encoding="utf-8")
    _fails(run_cli("tfapp.predict", "--model", _export(run_dir), "--file", odd),
           "--format on the command line")
    named = run_cli("tfapp.predict", "--model", _export(run_dir), "--file", odd,
                    "--format", "csv")
    assert named.returncode == 0 and len(named.stdout.splitlines()) == 1


@pytest.mark.parametrize("damage", ["truncated_pb", "garbage_pb", "no_variables",
                                    "truncated_variables"])
def test_predict_on_a_damaged_export_is_one_line(tiny_run, tmp_path, damage):
    run_dir, _ = tiny_run
    export = tmp_path / "sentiment" / "1"
    shutil.copytree(_export(run_dir), export)
    pb = export / "saved_model.pb"
    if damage == "truncated_pb":
        pb.write_bytes(pb.read_bytes()[:100])
    elif damage == "garbage_pb":
        pb.write_bytes(bytes(range(256)) * 20)
    elif damage == "truncated_variables":
        (data,) = (export / "variables").glob("variables.data-*")
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    else:
        shutil.rmtree(export / "variables")
    _fails(run_cli("tfapp.predict", "--model", export, "--text", "shares rose"),
           "the export is damaged or incomplete")


@pytest.mark.slow
@pytest.mark.integration
def test_evaluate_damaged_weights_same_stem_and_format(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("eval"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    data = write_csv(tmp_path / "a" / "holdout.csv", sample_rows(30))
    other = write_csv(tmp_path / "b" / "holdout.csv", sample_rows(40))
    for path in (data, other, data):
        result = run_cli("tfapp.evaluate", "--run", copy, "--data", path)
        assert result.returncode == 0, result.stderr[-2000:]
    first = json.loads((copy / "eval" / "holdout" / "metrics.json").read_text())
    second = json.loads((copy / "eval" / "holdout-2" / "metrics.json").read_text())
    assert (first["data"], second["data"]) == (str(data), str(other))
    assert not (copy / "eval" / "holdout-3").exists()  # the same file again: same place
    dat = tmp_path / "holdout.dat"
    shutil.copy(data, dat)
    result = run_cli("tfapp.evaluate", "--run", copy, "--data", dat, "--format", "csv")
    assert result.returncode == 0, result.stderr[-2000:]
    (copy / "model.weights.h5").write_bytes(b"not an h5 file")
    _fails(run_cli("tfapp.evaluate", "--run", copy, "--data", data),
           "cannot read the run's weights")


def test_export_cleans_stale_temps_refuses_a_taken_version_and_writes_missing_metrics(
        tiny_run, tmp_path):
    import os
    import time

    run_dir, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("eval"))
    base = copy / "export" / "sentiment"
    stale, fresh = base / ".tmp-7-dead", base / ".tmp-8-busy"
    for d in (stale, fresh):
        d.mkdir(parents=True)
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    (copy / "metrics.json").unlink()  # killed between weights and metrics
    result = run_cli("tfapp.export", "--run", copy)
    assert result.returncode == 0, result.stderr[-2000:]
    assert not stale.exists() and fresh.exists()  # a fresh one may be another export's
    metrics = json.loads((copy / "metrics.json").read_text())
    assert metrics["test"]["sentiment"]["accuracy"] >= 0
    assert metrics["export"]["path"].endswith("sentiment/2")


def test_a_version_taken_during_the_save_is_a_clear_error(tmp_path, monkeypatch):
    import tensorflow as tf

    from tfapp.core.errors import TfappError
    from tfapp.serving import saved_model as export

    root = tf.Module()
    root.v = tf.Variable(1.0)
    fn = tf.function(lambda x: {"y": x * root.v},
                     input_signature=[tf.TensorSpec([None], tf.float32, name="x")])

    def racing_check(tmp):  # another export publishes version 1 meanwhile
        (tmp_path / "m" / "1").mkdir(parents=True)
        (tmp_path / "m" / "1" / "saved_model.pb").write_bytes(b"x")
        return set()

    monkeypatch.setattr(export, "check_serving_ops", racing_check)
    with pytest.raises(TfappError, match="was taken by another export while this one was "
                                         "saving; run again for version 2"):
        export.publish_saved_model(root, {"serving_default": fn}, {}, {}, tmp_path / "m")
    assert [p.name for p in (tmp_path / "m").iterdir()] == ["1"]  # no temp left behind


def test_a_file_too_small_to_split_says_so(tmp_path):
    from tfapp.core.errors import DataError
    from tfapp.core.task_contract import get_task

    from conftest import tiny_config

    rows = [{"text": f"shares {w} today", "label": label, "topic": f"t{len(w)}"}
            for w, label in (("rose", "positive"), ("fell", "negative"),
                             ("moved!", "neutral"))]
    data = write_csv(tmp_path / "tiny.csv", rows)
    cfg = tiny_config(tmp_path, **{"data.train_file": str(data)})
    with pytest.raises(DataError, match=r"tiny.csv: too few rows to split off validation "
                                        r"data \(\d+ left for training\): add rows or set "
                                        r"data.validation_file"):
        get_task("sentiment")(cfg).load_splits()


def test_unwritable_output_places_stop_before_any_work(tiny_run, tmp_path):
    # A path under a regular file cannot be a directory, whoever runs the tests (root
    # ignores permission bits, so chmod would prove nothing).
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny", "--epochs", 1,
                     "--run-dir", blocker / "run")
    _fails(result, "cannot write the run directory here")
    assert "epoch 1" not in result.stdout
    run_dir, _ = tiny_run
    data = write_csv(tmp_path / "holdout.csv", sample_rows(20))
    _fails(run_cli("tfapp.evaluate", "--run", run_dir, "--data", data, "--out", blocker / "ev"),
           "cannot write the evaluation output here")
    _fails(run_cli("tfapp.export", "--run", run_dir, "--base", blocker / "exports"),
           "cannot write the export base here")


def test_rows_in_both_training_and_evaluation_splits_are_reported(tmp_path, capsys):
    from tfapp.core.task_contract import get_task
    from tfapp.training.inputs import read_splits

    from conftest import tiny_config

    rows = sample_rows(60)
    data = write_csv(tmp_path / "dup.csv", rows + rows[:30])  # 30 rows twice
    cfg = tiny_config(tmp_path, **{"data.train_file": str(data)})
    read_splits(get_task("sentiment")(cfg))
    out = capsys.readouterr().out
    assert "validation texts also appear in the training split (duplicated rows)" in out \
        or "test texts also appear in the training split (duplicated rows)" in out
    clean = write_csv(tmp_path / "clean.csv", rows)
    read_splits(get_task("sentiment")(tiny_config(tmp_path, **{"data.train_file": str(clean)})))
    assert "duplicated rows" not in capsys.readouterr().out


def test_an_unterminated_quote_is_named_where_it_opens(tmp_path):
    from tfapp.core.datasets import read_rows
    from tfapp.core.errors import DataError

    path = tmp_path / "q.csv"
    path.write_text('text,label\nok one,positive\n"broken start,negative\nthird,neutral\n'
                    'fourth,positive\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"q.csv: row 3: unterminated quote: a field opened "
                                        r"with \" here never closes"):
        read_rows(path, ["text", "label"])
    fine = tmp_path / "fine.csv"
    fine.write_text('text,label\n"two\nlines, quoted",positive\n"say ""hi""",neutral\n',
                    encoding="utf-8")
    assert [v["text"] for _, v in read_rows(fine, ["text", "label"])] == [
        "two\nlines, quoted", 'say "hi"']
