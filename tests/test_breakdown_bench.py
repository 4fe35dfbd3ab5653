"""bench.breakdown: the stages of a request through a run's export add up to the time of
the exported signature, for one text and for a batch of 32."""
import json

import pytest

from conftest import run_cli


@pytest.mark.integration  # the bench harness over an export
def test_breakdown_stages_add_up_to_the_exported_call(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    result = run_cli("bench.breakdown", "--run", run_dir, "--requests", 20, "--out", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "breakdown.json").read_text())
    assert report["machine"]["cpu"]
    for size in ("1", "32"):
        s = report["stages"][size]
        parts = s["tokenise"] + s["encoder"] + s["head"] + s["outputs"] + \
            s["SavedModel call layer"]
        assert parts == pytest.approx(s["total (exported signature)"], rel=1e-6)
        assert s["total (exported signature)"] > 0 and s["tokens per text"] >= 3
    assert "| encoder |" in (tmp_path / "breakdown.md").read_text()
