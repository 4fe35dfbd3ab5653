"""TF Serving contract tests (the server binary is not installable here): a fresh process
with only tensorflow + tensorflow_text + serving protos must get the in-memory outputs for
every warmup record, every README curl body and the Classify API."""
import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfapp.core.serving_api import CLASSIFY_METHOD
from tfapp.serving.server_contract import SERVING_TF_TEXT_OPS, saved_model_ops, unsupported_ops
from tfapp.training.restore import restore_run

from conftest import REPO, run_cli


def decode(value):
    if isinstance(value, dict) and "b64" in value:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


@pytest.fixture(scope="module")
def contract(tiny_run):
    run_dir, _ = tiny_run
    export = run_dir / "export" / "sentiment" / "1"
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "serving_contract.py"), str(export),
         str(REPO / "docs" / "export-and-serving.md")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, json.loads(result.stdout.strip().splitlines()[-1])


def test_fresh_process_matches_in_memory_model_for_every_call(contract):
    run_dir, calls = contract
    restored = restore_run(run_dir)
    _, task, _, packer = restored
    signatures = task.serving_signatures(restored.served(), packer)
    sources = [c["source"] for c in calls]
    assert sum(s.startswith("warmup") for s in sources) == 2  # one per signature
    assert sum(s.startswith("docs curl") for s in sources) == 4
    for call in calls:
        feed = {k: tf.constant(decode(v)) for k, v in call["feed"].items()}
        local = signatures[call["signature"]](**feed)
        assert set(local) == set(call["outputs"]), call["source"]
        for key, value in local.items():
            served = decode(call["outputs"][key])
            if value.dtype == tf.string:
                assert served == value.numpy().tolist(), (call["source"], key)
            else:
                np.testing.assert_allclose(served, value.numpy(), atol=1e-5, rtol=0,
                                           err_msg=f"{call['source']} {key}")


def test_classify_api_contract(contract):
    _, calls = contract
    classify = [c for c in calls if c["verb"] == "classify"]
    assert classify and all(c["method"] == CLASSIFY_METHOD for c in classify)
    for call in classify:
        classes = decode(call["outputs"]["classes"])
        scores = np.array(call["outputs"]["scores"])
        assert classes[0] == [b"negative", b"neutral", b"positive"]
        np.testing.assert_allclose(scores.sum(axis=1), 1, atol=1e-5)
    predicts = [c for c in calls if c["verb"] == "predict"]
    assert all(c["method"] == "tensorflow/serving/predict" for c in predicts)


def test_export_uses_only_ops_the_server_links(tiny_run):
    run_dir, _ = tiny_run
    ops = saved_model_ops(run_dir / "export" / "sentiment" / "1")
    assert unsupported_ops(ops) == []
    assert {"FastWordpieceTokenizeWithOffsets", "RegexSplitWithOffsets"} <= ops
    assert ops & SERVING_TF_TEXT_OPS and "RoundRobinTrim" not in ops
    assert unsupported_ops({"MatMul", "RoundRobinTrim"}) == ["RoundRobinTrim"]


def test_crash_mid_export_publishes_nothing(tiny_run, tmp_path, monkeypatch):
    run_dir, _ = tiny_run
    _, task, model, packer = restore_run(run_dir)
    import tfapp.serving.saved_model as export_mod

    def crash(path, records):
        (Path(path) / "assets.extra").mkdir()
        (Path(path) / "assets.extra" / "partial").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(export_mod, "write_warmup", crash)
    base = tmp_path / "sentiment"
    with pytest.raises(OSError, match="disk full"):
        export_mod.export_saved_model(task, model, packer, base)
    assert list(base.iterdir()) == []  # no version, no temp dir left behind


def test_reexport_cli_and_serving_config(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    base = tmp_path / "models"
    for expected in ("1", "2"):
        result = run_cli("tfapp.export", "--run", run_dir, "--base", base)
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"{base}/sentiment/{expected} (" in result.stdout
    result = run_cli("tfapp.export", "--run", run_dir, "--base", base, "--version", "2")
    assert result.returncode == 2 and "already exists" in result.stderr
    (base / "sentiment" / ".tmp-3-dead").mkdir()  # an interrupted export is not a version
    result = run_cli("tfapp.serving_config", "--base", base, "--model-base-path", "/models",
                     "--num-versions", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (base / "models.config").read_text() == (
        'model_config_list {\n'
        '  config {\n'
        '    name: "sentiment"\n'
        '    base_path: "/models/sentiment"\n'
        '    model_platform: "tensorflow"\n'
        '    model_version_policy {\n'
        '      latest {\n'
        '        num_versions: 2\n'
        '      }\n'
        '    }\n'
        '  }\n'
        '}\n')
    batching = (base / "batching_parameters.txt").read_text()
    assert "max_batch_size { value: 32 }" in batching
    assert "batch_timeout_micros { value: 5000 }" in batching
    assert "model sentiment: versions 1, 2" in result.stdout
    # The config parses as the server's own proto.
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    parsed = text_format.Parse((base / "models.config").read_text(),
                               model_server_config_pb2.ModelServerConfig())
    assert parsed.model_config_list.config[0].base_path == "/models/sentiment"


def test_models_config_escapes_names_and_paths():
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    from tfapp.serving.model_server_files import models_config

    name = 'news"} config { name: "evil'
    text = models_config({name: None}, '/models/a "quoted"\\dir', 1)
    parsed = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    (entry,) = parsed.model_config_list.config  # one entry: nothing injected
    assert entry.name == name
    assert entry.base_path == '/models/a "quoted"\\dir/' + name


def test_serving_config_on_empty_base_is_one_line(tmp_path):
    result = run_cli("tfapp.serving_config", "--base", tmp_path)
    assert result.returncode == 2
    assert f"error: {tmp_path}: no exported models" in result.stderr
