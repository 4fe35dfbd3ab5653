"""TF Serving's server-side files for an export base: models.config (one entry per model),
batching_parameters.txt and the server flags of the exports' serving profile.

Serving profiles (export.profile), each a combination of existing levers, recorded in the
export (assets.extra/tfapp_serving_profile.json) and turned into tensorflow_model_server
flags by `tfapp.serving_config`:
  auto        the export's own settings; TF Serving's default thread pools, no batching
  latency     single interactive requests: XLA-compiled small batches (the export's
              xla_batch_buckets, [1, 2, 4, 8] unless set), one intra-op thread per request
              so concurrent requests run side by side, no server batching
  throughput  bulk traffic: the plain (uncompiled) path over every core for each batch,
              one batch at a time, concurrent requests merged by server-side batching"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

PROFILE_FILE = Path("assets.extra") / "tfapp_serving_profile.json"
LATENCY_BUCKETS = [1, 2, 4, 8]
PROFILES = {
    "auto": {"server_flags": {}, "batching": None},
    "latency": {"server_flags": {"tensorflow_intra_op_parallelism": 1}, "batching": None},
    "throughput": {"server_flags": {"tensorflow_inter_op_parallelism": 1,
                                    "enable_batching": "true"},
                   "batching": {"max_batch_size": 32, "batch_timeout_micros": 5000,
                                "num_batch_threads": 1, "max_enqueued_batches": 100}},
}


def profile_files(profile: str) -> dict:
    """{relative path: text}: the export's record of its serving profile."""
    return {str(PROFILE_FILE): json.dumps({"profile": profile, **PROFILES[profile]},
                                          indent=2)}


def read_profile(version_dir: Path) -> Optional[dict]:
    """The serving profile an export recorded (None: exported before profiles existed)."""
    path = Path(version_dir) / PROFILE_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def models_config(models: dict, base_path: str, num_versions: int) -> str:
    """model_config_list in protobuf text format; serves the newest `num_versions`. Written
    through the server's own proto, so any name or path is escaped as the server parses it."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    for name in models:
        entry = config.model_config_list.config.add()
        entry.name = name
        entry.base_path = f"{base_path.rstrip('/')}/{name}"
        entry.model_platform = "tensorflow"
        entry.model_version_policy.latest.num_versions = num_versions
    return text_format.MessageToString(config)


def batching_parameters(max_batch_size: int, batch_timeout_micros: int,
                        num_batch_threads: int, max_enqueued_batches: int) -> str:
    """Server-side batching (--enable_batching): merge concurrent requests into one run."""
    return (f"max_batch_size {{ value: {max_batch_size} }}\n"
            f"batch_timeout_micros {{ value: {batch_timeout_micros} }}\n"
            f"num_batch_threads {{ value: {num_batch_threads} }}\n"
            f"max_enqueued_batches {{ value: {max_enqueued_batches} }}\n"
            "pad_variable_length_inputs: true\n")


def server_flags(profile: dict, xla: bool, config_file: Path, batching_file: Path) -> list:
    """tensorflow_model_server flags for a serving profile (read_profile's record); `xla`:
    the served exports hold XLA-compiled functions."""
    flags = [f"--model_config_file={config_file}"]
    flags += [f"--{k}={v}" for k, v in profile["server_flags"].items()]
    if xla:
        flags.append("--xla_cpu_compilation_enabled=true")
    if profile["server_flags"].get("enable_batching") == "true":
        flags.append(f"--batching_parameters_file={batching_file}")
    return flags


def uses_xla(version_dir: Path) -> bool:
    """Whether an export holds XLA-compiled functions (export.xla_batch_buckets), which TF
    Serving runs only when started with --xla_cpu_compilation_enabled=true."""
    return b"_XlaMustCompile" in (Path(version_dir) / "saved_model.pb").read_bytes()
