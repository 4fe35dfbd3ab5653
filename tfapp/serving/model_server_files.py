"""TF Serving's server-side files for an export base: models.config (one entry per model)
and batching_parameters.txt."""
from __future__ import annotations

from pathlib import Path


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


def batching_parameters(max_batch_size: int, timeout_micros: int, threads: int,
                        max_enqueued: int) -> str:
    """Server-side batching (--enable_batching): merge concurrent requests into one run."""
    return (f"max_batch_size {{ value: {max_batch_size} }}\n"
            f"batch_timeout_micros {{ value: {timeout_micros} }}\n"
            f"num_batch_threads {{ value: {threads} }}\n"
            f"max_enqueued_batches {{ value: {max_enqueued} }}\n"
            "pad_variable_length_inputs: true\n")


def uses_xla(version_dir: Path) -> bool:
    """Whether an export holds XLA-compiled functions (export.xla_batch_buckets), which TF
    Serving runs only when started with --xla_cpu_compilation_enabled=true."""
    return b"_XlaMustCompile" in (Path(version_dir) / "saved_model.pb").read_bytes()
