"""export.profile: latency | throughput | auto, recorded in the export and turned into
tensorflow_model_server flags and batching parameters by tfapp.serving_config."""
import json

import pytest

from conftest import run_cli, tiny_config


def test_the_latency_profile_serves_small_batches_xla_compiled(tmp_path):
    from tfapp.core.errors import ConfigError

    assert tiny_config(tmp_path, **{"export.profile": "latency"}).export.xla_batch_buckets == \
        [1, 2, 4, 8]
    assert tiny_config(tmp_path, **{"export.profile": "latency",
                                    "export.xla_batch_buckets": [1, 4]}
                       ).export.xla_batch_buckets == [1, 4]
    assert tiny_config(tmp_path).export.xla_batch_buckets == []
    with pytest.raises(ConfigError, match="profile throughput serves the plain"):
        tiny_config(tmp_path, **{"export.profile": "throughput",
                                 "export.xla_batch_buckets": [1]})
    with pytest.raises(ConfigError, match="profile must be auto, latency or throughput"):
        tiny_config(tmp_path, **{"export.profile": "fastest"})


def fake_export(base, name, version, profile, xla=False):
    from tfapp.serving.model_server_files import profile_files

    d = base / name / str(version)
    d.mkdir(parents=True)
    (d / "saved_model.pb").write_bytes(b"graph" + (b"_XlaMustCompile" if xla else b""))
    (d / "variables").mkdir()
    for rel, text in (profile_files(profile) if profile else {}).items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    return d


def _config(base, *args):
    result = run_cli("tfapp.serving_config", "--base", base, *args)
    assert result.returncode == 0, result.stderr[-2000:]
    return ((base / "model_server_flags.txt").read_text().split(),
            (base / "batching_parameters.txt").read_text(), result.stdout + result.stderr)


def test_throughput_turns_on_server_batching_with_its_parameters(tmp_path):
    fake_export(tmp_path, "sentiment", 1, "throughput")
    flags, batching, log = _config(tmp_path)
    assert "--enable_batching=true" in flags and "--tensorflow_inter_op_parallelism=1" in flags
    assert f"--batching_parameters_file={tmp_path / 'batching_parameters.txt'}" in flags
    assert "num_batch_threads { value: 1 }" in batching
    assert "serving profile throughput" in log and "tensorflow_model_server --model_config" in log
    _, batching, _ = _config(tmp_path, "--num-batch-threads", "2")
    assert "num_batch_threads { value: 2 }" in batching  # a flag wins over the profile


def test_latency_runs_one_intra_op_thread_per_request_and_xla(tmp_path):
    fake_export(tmp_path, "qa", 1, "latency", xla=True)
    flags, _, _ = _config(tmp_path)
    assert "--tensorflow_intra_op_parallelism=1" in flags
    assert "--xla_cpu_compilation_enabled=true" in flags
    assert not any(f.startswith("--enable_batching") for f in flags)


def test_exports_without_a_profile_are_auto_and_two_profiles_are_refused(tmp_path):
    fake_export(tmp_path, "old", 1, None)
    flags, _, log = _config(tmp_path)
    assert flags == [f"--model_config_file={tmp_path / 'models.config'}"]
    fake_export(tmp_path, "a", 1, "latency")
    fake_export(tmp_path, "b", 1, "throughput")
    result = run_cli("tfapp.serving_config", "--base", tmp_path)
    assert result.returncode == 2
    assert "different serving profiles (latency, throughput)" in result.stderr


def test_a_real_export_records_its_profile(tiny_run):
    from tfapp.serving.model_server_files import read_profile

    run_dir, _ = tiny_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert read_profile(metrics["export"]["path"])["profile"] == "auto"
