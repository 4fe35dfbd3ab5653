"""bench.concurrency: single requests from concurrent client threads, per serving profile
and for the transformers pipeline."""
import json
import threading
import time

import pytest

from conftest import run_cli


def test_clients_share_the_requests_and_run_at_the_same_time():
    from bench.concurrency import clients_run

    seen, active, peak = [], [0], [0]
    lock = threading.Lock()

    def call(texts):
        with lock:
            seen.append(texts[0])
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1

    out = clients_run(call, [f"t{i}" for i in range(50)], clients=4, requests=22)
    assert len(seen) == 5 + 22  # the warm-up calls, then every request once
    assert peak[0] >= 2  # the clients overlapped
    assert out["p50_ms"] >= 10 and out["requests_per_s"] > 0


def test_bad_clients_is_a_one_line_error(tmp_path):
    result = run_cli("bench.concurrency", "--run", tmp_path, "--clients", "1,x")
    assert result.returncode != 0
    assert "--clients must be comma-separated integers" in result.stderr.strip().splitlines()[-1]


@pytest.mark.integration  # a tiny run, two exports and the pipeline (~1 minute)
def test_profiles_and_the_pipeline_are_timed_per_client_count(tmp_path):
    run = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny", "--epochs", 1,
                  "--run-dir", tmp_path / "run")
    assert run.returncode == 0, run.stderr[-2000:]
    result = run_cli("bench.concurrency", "--run", tmp_path / "run", "--requests", 6,
                     "--clients", "1,2", "--out", tmp_path / "out", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads((tmp_path / "out" / "concurrency.json").read_text())["rows"]
    assert set(rows) == {"tfapp latency", "tfapp throughput", "transformers pipeline"}
    assert all(set(r) == {"1", "2"} for r in rows.values())
    assert "| tfapp latency | 2 |" in (tmp_path / "out" / "concurrency.md").read_text()
