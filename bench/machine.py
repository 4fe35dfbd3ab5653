"""Which machine a benchmark ran on: CPU model, core count and the instruction-set flags
that change which code paths are fast (bf16 / int8 matrix units), plus library versions.
Every bench JSON records it and every table names it, so results from different CPUs are
never mixed up."""
from __future__ import annotations

import os
import platform

# Flags that decide speed on CPU here: AVX-512 (and its VNNI int8 dot products), bfloat16
# instructions (avx512_bf16) and Intel AMX tiles (amx_bf16, amx_int8).
RELEVANT_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
                  "amx_int8")
PACKAGES = ("tensorflow", "keras", "keras-hub", "tensorflow-text", "torch", "transformers")


def cpu_facts(cpuinfo: str | None = None) -> dict:
    """{'cpu': model name, 'flags': the relevant flags present} from /proc/cpuinfo text."""
    if cpuinfo is None:
        from tfapp.core.distribute import cpuinfo_text

        cpuinfo = cpuinfo_text()
    model, flags = platform.processor() or "unknown CPU", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            model = value.strip()
        elif key.strip() == "flags":
            flags |= set(value.split())
    return {"cpu": model, "flags": [f for f in RELEVANT_FLAGS if f in flags]}


def describe(cpuinfo: str | None = None) -> dict:
    """Everything a result needs to name its machine."""
    import importlib.metadata as md

    info = {**cpu_facts(cpuinfo), "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}
    for pkg in PACKAGES:
        try:
            info[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            info[pkg] = None
    return info


def label(info: dict) -> str:
    """'AMD EPYC, 2 cores, avx512_bf16 ...' for table headers."""
    if "flags" not in info:  # results recorded before flags were
        return f"{info['cpu']}, {info.get('cores', info.get('cpu_count'))} cores"
    flags = " ".join(info["flags"]) or "no avx512/amx flags"
    return f"{info['cpu']}, {info.get('cores', info.get('cpu_count'))} cores, flags: {flags}"
