"""bench.compression on a data directory: every variant is made by the user-facing commands
and measured; the table and the goal verdicts follow from the measured rows."""
import json

import pytest

from bench.compression import data_table, goal

from conftest import keyword_sentiment_csv, run_cli


def row(name, size, p50, f1):
    stats = lambda v: {"mean": v, "std": 0.01, "values": [v, v]}  # noqa: E731
    return {"model": name, "size_mb": size, "latency_p50_ms": p50, "latency_p99_ms": p50 * 2,
            "batch32_examples_per_s": 100.0, "accuracy": stats(f1), "macro_f1": stats(f1),
            "seeds": [1, 2]}


def test_goal_needs_speed_size_and_accuracy_together():
    rows = [row("teacher", 90.0, 6.0, 0.850), row("fast small good", 20.0, 2.9, 0.845),
            row("too slow", 20.0, 3.5, 0.849), row("too big", 40.0, 2.0, 0.849),
            row("too lossy", 20.0, 2.0, 0.835)]
    verdicts = goal(rows).splitlines()
    assert verdicts[0].endswith("**meets**") and "2.07x faster, 4.50x smaller" in verdicts[0]
    assert all(v.endswith("**misses**") for v in verdicts[1:])
    table = data_table(rows)
    assert "| fast small good | 20.0 | 4.50x | 2.9 | 5.8 | 2.07x | 100.0 |" in table
    assert "| too lossy |" in table and "-1.50 |" in table
    # A row measured on fewer seeds is compared with the teacher of those seeds only.
    rows[0]["macro_f1"]["values"] = [0.860, 0.840]
    one_seed = row("one seed", 20.0, 2.9, 0.851)
    one_seed["seeds"] = [1]
    assert "-0.90 pt macro-F1 lost" not in goal([rows[0], one_seed])
    assert "+0.90 pt macro-F1 lost" in goal([rows[0], one_seed])


@pytest.mark.integration
def test_compression_bench_makes_and_measures_every_variant(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    keyword_sentiment_csv(data / "train.csv", n=240, seed=0)
    keyword_sentiment_csv(data / "validation.csv", n=96, seed=1)
    work, out = tmp_path / "work", tmp_path / "out"
    result = run_cli("bench.compression", "--data", data, "--seeds", 1, "--backbone", "tiny",
                     "--teacher-epochs", 2, "--student-layers", 1, "--work", work,
                     "--requests", 10, "--out", out, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "compression.json").read_text())
    names = [r["model"] for r in report["rows"]]
    assert names[0] == "teacher" and "chain: student, pruned, int8 (folded)" in names
    assert {f"teacher int8 ({m})" for m in ("folded", "weights", "dynamic", "ffn",
                                           "embeddings")} <= set(names)
    for r in report["rows"]:
        assert r["size_mb"] > 0 and 0 < r["latency_p50_ms"] <= r["latency_p99_ms"]
        assert r["batch32_examples_per_s"] > 0 and 0 <= r["macro_f1"]["mean"] <= 1
    assert (work / "runs" / "chain" / "seed1" / "pruning.json").is_file()
    assert (work / "runs" / "chain" / "seed1" / "quantization.json").is_file()
    assert report["machine"]["cpu"] and "goal" not in report
    assert (out / "compression.md").read_text().count("**m") == len(names) - 1
