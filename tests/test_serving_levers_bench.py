"""bench.serving_levers on the tiny backbone: every lever is exported, timed and compared
with float32 on the run's validation texts. No speed asserts: numbers from the tiny model
mean nothing."""
import json

import pytest

from conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_levers_table_from_the_run(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    result = run_cli("bench.serving_levers", "--run", run_dir, "--requests", 5,
                     "--out", tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads((tmp_path / "serving_levers.json").read_text())
    rows = data["rows"]
    assert {"float32", "bfloat16", "xla"} <= set(rows)
    assert sum(name.startswith("float32, threads") for name in rows) == 3
    assert rows["float32"]["argmax_agreement"] == 1.0
    assert rows["xla"]["max_probability_difference"] < 1e-4
    assert rows["bfloat16"]["max_probability_difference"] < 0.05
    assert data["machine"]["cores"] >= 1
    table = (tmp_path / "serving_levers.md").read_text()
    assert "| bfloat16 |" in table and "| xla |" in table


def test_a_run_of_another_task_is_a_one_line_error(tmp_path):
    result = run_cli("bench.serving_levers", "--run", tmp_path / "nowhere")
    assert result.returncode != 0 and "Traceback" not in result.stderr
