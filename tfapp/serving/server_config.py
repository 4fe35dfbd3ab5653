"""TF Serving's server-side files for an export base: models.config (one entry per model)
and batching_parameters.txt."""
from __future__ import annotations


def models_config(models: dict, base_path: str, num_versions: int) -> str:
    """model_config_list in protobuf text format; serves the newest `num_versions`."""
    entries = []
    for name in models:
        entries.append(
            "  config {\n"
            f'    name: "{name}"\n'
            f'    base_path: "{base_path.rstrip("/")}/{name}"\n'
            '    model_platform: "tensorflow"\n'
            f"    model_version_policy {{ latest {{ num_versions: {num_versions} }} }}\n"
            "  }\n")
    return "model_config_list {\n" + "".join(entries) + "}\n"


def batching_parameters(max_batch_size: int, timeout_micros: int, threads: int,
                        max_enqueued: int) -> str:
    """Server-side batching (--enable_batching): merge concurrent requests into one run."""
    return (f"max_batch_size {{ value: {max_batch_size} }}\n"
            f"batch_timeout_micros {{ value: {timeout_micros} }}\n"
            f"num_batch_threads {{ value: {threads} }}\n"
            f"max_enqueued_batches {{ value: {max_enqueued} }}\n"
            "pad_variable_length_inputs: true\n")
