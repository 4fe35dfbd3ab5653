"""MultiWorkerMirroredStrategy through `tfapp.launch` (2 local workers on 127.0.0.1), and
the one-line error for an unreachable TPU address."""
import json
import socket
import time

import pytest

from tfapp.launch import tf_configs

from conftest import run_cli


def test_tf_configs_describe_one_local_cluster():
    configs = [json.loads(c) for c in tf_configs([2001, 2002])]
    assert [c["task"] for c in configs] == [{"type": "worker", "index": 0},
                                            {"type": "worker", "index": 1}]
    assert configs[0]["cluster"] == configs[1]["cluster"] == {
        "worker": ["127.0.0.1:2001", "127.0.0.1:2002"]}


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("multiworker") / "run"
    result = run_cli("tfapp.launch", "--workers", 2, "--", "--task", "sentiment",
                     "--backbone", "tiny", "--epochs", 2, "--run-dir", run_dir, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return run_dir, result.stdout


def _test_block(text: str) -> str:
    return text.split("[tfapp] test metrics:")[1].split("[tfapp]")[0]


@pytest.mark.integration  # a minute of multi-process or large-model training
def test_two_local_workers_train_end_to_end_and_only_the_chief_writes(two_workers):
    run_dir, stdout = two_workers
    assert "strategy multiworker (CollectiveAllReduceStrategy, 2 replica(s))" in stdout
    assert "this worker: worker 0" in stdout
    worker1 = (run_dir / ".launch" / "worker-1.log").read_text()
    assert "this worker: worker 1" in worker1 and "done in" in worker1
    for name in ("metrics.json", "MODEL_CARD.md", "model.weights.h5",
                 "export/sentiment/1/saved_model.pb", "checkpoints/best.weights.h5"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "logs").rglob("events.out.tfevents*"))
    # The other worker wrote only to its scratch dir, removed when it finished.
    assert not list(run_dir.glob(".worker-*")) and not (run_dir / "backup").exists()
    # Same weights on both workers: identical held-out metrics.
    assert _test_block(worker1) == _test_block(stdout)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["history"]["loss"]) == 2


def test_a_failing_worker_fails_the_launch(tmp_path):
    result = run_cli("tfapp.launch", "--workers", 2, "--", "--task", "sentiment",
                     "--backbone", "tiny", "--set", "trainer.epochs=0",
                     "--run-dir", tmp_path / "run")
    assert result.returncode == 2
    assert "trainer.epochs must be >= 1" in result.stderr + (
        tmp_path / "run" / ".launch" / "worker-1.log").read_text()


def test_unreachable_tpu_address_is_a_fast_one_line_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.time()
    result = run_cli("tfapp.train", "--task", "sentiment", "--backbone", "tiny",
                     "--tpu", f"grpc://127.0.0.1:{port}", timeout=120)
    assert result.returncode == 2 and time.time() - start < 60
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert errors == [f"error: cannot reach TPU at grpc://127.0.0.1:{port}: Connection "
                      f"refused (no TPU worker is listening there; check --tpu and that the "
                      f"TPU VM is up)"]
