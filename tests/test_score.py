"""python -m tfapp.score: each task's tiny export scored through Beam's DirectRunner gives
tfapp.predict's outputs row by row; bad rows land in the dead letter with file, row and
reason, and read = scored + bad."""
from __future__ import annotations

import csv
import glob
import json
import math
import random

import pytest

from conftest import REPO, run_cli, sample_rows, write_csv, write_jsonl


def _export(run_dir, task="sentiment"):
    return run_dir / "export" / task


def _jsonl(pattern: str) -> list[dict]:
    return [json.loads(line) for path in sorted(glob.glob(pattern))
            for line in open(path, encoding="utf-8") if line.strip()]


def _predict(export, file) -> list[dict]:
    result = run_cli("tfapp.predict", "--model", export, "--file", file)
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def assert_same_outputs(ours: dict, theirs: dict):
    """Equal labels, ids and texts; numbers equal up to float32 round-off of a different
    batch composition (batches pad to their longest text)."""
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        if isinstance(value, dict):
            assert_same_outputs(ours[key], value)
        elif isinstance(value, list):
            assert len(ours[key]) == len(value), key
            for a, b in zip(ours[key], value):
                assert (math.isclose(a, b, abs_tol=2e-5) if isinstance(b, float)
                        else a == b), (key, ours[key], value)
        elif isinstance(value, float):
            assert math.isclose(ours[key], value, abs_tol=2e-5), (key, ours[key], value)
        else:
            assert ours[key] == value, key


def _score(*args):
    result = run_cli("tfapp.score", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_sentiment_shards_score_as_predict_does_with_a_dead_letter(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    texts = [r["text"] for r in sample_rows(90)]
    (tmp_path / "in").mkdir()
    write_csv(tmp_path / "in" / "a.csv", [{"id": i, "text": t} for i, t in enumerate(texts[:60])])
    with open(tmp_path / "in" / "a.csv", "ab") as f:
        f.write(b"60\n61,\n62,caf\xe9\n")  # too few fields, an empty text, invalid UTF-8
    write_jsonl(tmp_path / "in" / "b.jsonl", [{"id": 100 + i, "text": t, "source": "wire"}
                                              for i, t in enumerate(texts[60:])])
    with open(tmp_path / "in" / "b.jsonl", "a", encoding="utf-8") as f:
        f.write('{"id": 200, "text": \n["not an object"]\n{"id": 201}\n')
    out = tmp_path / "out" / "scored"
    result = _score("--model", _export(run_dir), "--input", tmp_path / "in" / "*", "--output", out)
    assert "direct_running_mode=multi_processing" in result.stderr + result.stdout

    rows = _jsonl(f"{out}-0*.jsonl")
    assert sorted(r["text"] for r in rows) == sorted(texts)
    (tmp_path / "all.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    expected = {r["text"]: r for r in _predict(_export(run_dir), tmp_path / "all.txt")}
    for row in rows:
        assert row["_file"].endswith(("a.csv", "b.jsonl")) and row["_row"] >= 1
        assert (row.get("source") == "wire") == row["_file"].endswith("b.jsonl")
        ours = {k: v for k, v in row.items() if k not in ("id", "source", "_file", "_row")}
        assert_same_outputs(ours, expected[row["text"]])

    bad = sorted((b["file"].rsplit("/", 1)[-1], b["row"], b["field"], b["reason"])
                 for b in _jsonl(f"{out}-errors-*.jsonl"))
    assert bad == [("a.csv", 62, None, "1 fields, header has 2"),
                   ("a.csv", 63, "text", "empty text (nothing to score)"),
                   ("a.csv", 64, "text", "invalid UTF-8"),
                   ("b.jsonl", 31, None, "not valid JSON (Expecting value)"),
                   ("b.jsonl", 32, None, "expected a JSON object per line"),
                   ("b.jsonl", 33, "text", "field 'text' missing")]
    summary = json.loads((tmp_path / "out" / "scored-summary.json").read_text())
    assert (summary["read"], summary["scored"], summary["bad"]) == (96, 90, 6)
    assert 1 <= summary["batch_sizes"]["max"] <= 64 and summary["threads_per_worker"] >= 1


def test_csv_output_keeps_the_input_columns_then_the_outputs(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    write_csv(tmp_path / "t.csv", [{"ticket": i, "body": f"Shares rose {i}%", "x": "y"}
                                   for i in range(5)])
    out = tmp_path / "o"
    _score("--model", _export(run_dir), "--input", tmp_path / "t.csv", "--output", out,
           "--column", "body", "--output-format", "csv", "--num-shards", "1",
           "--direct_running_mode=in_memory", "--direct_num_workers=1")
    with open(f"{out}-00000-of-00001.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:5] == ["ticket", "body", "x", "_file", "_row"]
    assert {"label", "probabilities", "score"} <= set(rows[0]) and "classes" not in rows[0]
    assert sorted(int(r["ticket"]) for r in rows) == list(range(5))
    assert abs(sum(json.loads(rows[0]["probabilities"]).values()) - 1) < 1e-4


def test_score_refuses_what_it_cannot_run(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    for args, message in (
            (["--input", tmp_path / "none*.csv"], "no file matches"),
            (["--input", tmp_path, "--max-batch-size", "0"], "--max-batch-size must be >= 1"),
            (["--input", tmp_path, "--signature", "nope"], "no signature 'nope'")):
        result = run_cli("tfapp.score", "--model", _export(run_dir), "--output",
                         tmp_path / "o", *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr[-1500:]
        assert len(result.stderr.strip().splitlines()[-1]) < 400


def test_a_failed_batch_counts_each_of_its_records_as_bad():
    from tfapp.scoring.batch_pipeline import failed_batch
    from tfapp.scoring.model_handler import Prepared
    from tfapp.scoring.records import Record

    batch = [Prepared(Record("f", row, {}), {}) for row in (2, 3)]
    bad = failed_batch((batch, ValueError("boom\nmore")))
    assert [(b.row, b.reason) for b in bad] == [(2, "inference failed: ValueError: boom\nmore"),
                                               (3, "inference failed: ValueError: boom\nmore")]


@pytest.fixture(scope="module")
def qa_and_recommend_runs(tmp_path_factory):
    runs = {}
    for task in ("qa", "recommend"):
        run_dir = tmp_path_factory.mktemp(task) / "run"
        result = run_cli("tfapp.train", "--task", task, "--backbone", "tiny", "--epochs", "1",
                         "--run-dir", run_dir)
        assert result.returncode == 0, result.stderr[-3000:]
        runs[task] = run_dir
    return runs


@pytest.mark.integration
def test_qa_tickets_score_as_predict_does(qa_and_recommend_runs, tmp_path):
    export = _export(qa_and_recommend_runs["qa"], "qa")
    with open(REPO / "tasks" / "samples" / "qa_test.csv", encoding="utf-8") as f:
        questions = [r["question"] for r in csv.DictReader(f)]
    write_csv(tmp_path / "tickets.csv", [{"ticket": i, "text": q} for i, q in enumerate(questions)])
    _score("--model", export, "--input", tmp_path / "tickets.csv", "--output", tmp_path / "o")
    expected = {r["text"]: r for r in _predict(export, tmp_path / "tickets.csv")}
    rows = _jsonl(f"{tmp_path / 'o'}-0*.jsonl")
    assert len(rows) == len(questions)
    for row in rows:
        assert {"answer_ids", "answer_texts", "confidence", "handoff"} <= set(row)
        ours = {k: v for k, v in row.items() if k not in ("ticket", "_file", "_row")}
        assert_same_outputs(ours, {k: v for k, v in expected[row["text"]].items()
                                   if k != "ticket"})


@pytest.mark.integration
def test_recommend_requests_score_as_predict_does(qa_and_recommend_runs, tmp_path):
    export = _export(qa_and_recommend_runs["recommend"], "recommend")
    with open(REPO / "tasks" / "samples" / "recommend_items.tsv", encoding="utf-8") as f:
        items = [". ".join(v for v in (r["title"], r["category"], r["body"]) if v)
                 for r in csv.DictReader(f, delimiter="\t")]
    rng = random.Random(0)
    requests = [{"user": f"u{i}", "history": rng.sample(items, rng.randint(0, 5)),
                 "candidates": rng.sample(items, rng.randint(1, 9))} for i in range(30)]
    write_jsonl(tmp_path / "requests.jsonl", requests)
    _score("--model", export, "--input", tmp_path / "requests.jsonl", "--output", tmp_path / "o")
    expected = {r["user"]: r for r in _predict(export, tmp_path / "requests.jsonl")}
    rows = _jsonl(f"{tmp_path / 'o'}-0*.jsonl")
    assert sorted(r["user"] for r in rows) == sorted(expected)
    for row in rows:
        assert len(row["scores"]) == len(row["candidates"])
        assert_same_outputs({k: v for k, v in row.items() if k not in ("_file", "_row")},
                            expected[row["user"]])
