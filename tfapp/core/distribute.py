"""The one place that turns --strategy / --precision into a tf.distribute strategy and a Keras
dtype policy, and says why."""
from __future__ import annotations

import dataclasses
import json
import os
import re

import keras
import tensorflow as tf

from tfapp.core.errors import ConfigError, TfappError


@dataclasses.dataclass
class Placement:
    strategy: tf.distribute.Strategy
    strategy_name: str
    precision: str
    reasons: list[str]

    @property
    def num_replicas(self) -> int:
        return self.strategy.num_replicas_in_sync


def _gpu_compute_capabilities() -> list[tuple[int, int]]:
    caps = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        caps.append(tuple(details.get("compute_capability", (0, 0))))
    return caps


def choose_strategy_name(requested: str, tpu: str | None, tf_config: str | None,
                         num_gpus: int) -> tuple[str, str]:
    """(strategy name, reason) for `auto`, or the requested name checked for what it needs."""
    if requested == "auto":
        if tpu:
            return "tpu", f"a TPU address is configured (runtime.tpu={tpu})"
        if tf_config:
            return "multiworker", "TF_CONFIG is set"
        if num_gpus > 1:
            return "mirrored", f"{num_gpus} GPUs visible"
        return "default", f"{num_gpus} GPU(s) visible, no TPU address, no TF_CONFIG"
    if requested == "tpu" and not tpu:
        raise ConfigError("--strategy tpu needs a TPU name or grpc:// address: pass --tpu "
                          "NAME_OR_ADDRESS (runtime.tpu)")
    if requested == "multiworker" and not tf_config:
        raise ConfigError("--strategy multiworker needs the TF_CONFIG environment variable "
                          "(cluster spec and this worker's task), as set by Kubernetes or a "
                          "managed trainer")
    return requested, "requested"


def cpuinfo_text() -> str:
    """/proc/cpuinfo, or '' where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def cpu_supports_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the host CPU has bfloat16 instructions (AVX512-BF16 or AMX-BF16)."""
    if cpuinfo is None:
        cpuinfo = cpuinfo_text()
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", cpuinfo))


def choose_precision(requested: str, strategy_name: str,
                     gpu_caps: list[tuple[int, int]],
                     cpu_bf16: bool = False) -> tuple[str, str]:
    """(dtype policy name, reason)."""
    if requested != "auto":
        if requested == "mixed_float16" and not gpu_caps:
            return requested, ("requested; no GPU visible, so float16 math is emulated on the "
                               "CPU and will be slow")
        return requested, "requested"
    if strategy_name == "tpu":
        return "mixed_bfloat16", "TPUs compute natively in bfloat16"
    if gpu_caps and min(gpu_caps) >= (7, 0):
        return "mixed_float16", f"GPU compute capability {min(gpu_caps)} has tensor cores"
    if gpu_caps:
        return "float32", f"GPU compute capability {min(gpu_caps)} < 7.0"
    if cpu_bf16:
        # Measured 8-25% faster training than float32 on an AVX-512-BF16 CPU
        # (bench/RESULTS.md); the export's precision is chosen apart (export.precision).
        return "mixed_bfloat16", "CPU has bfloat16 instructions (avx512_bf16 / amx_bf16)"
    return "float32", "CPU only, without bfloat16 instructions"


def choose_export_precision(requested: str, trained: str, gpu: bool, cpu_bf16: bool,
                            xla: bool) -> tuple[str, str]:
    """(Keras dtype policy the export computes in, reason) for export.precision."""
    if requested == "trained":
        return trained, "the training precision, as requested"
    if requested != "auto":
        return requested, "requested"
    if gpu:
        return "float32", "trained on a GPU; float32 serves the same on any machine"
    if xla:
        # XLA:CPU ran bfloat16 models slower than float32 (bench/RESULTS.md).
        return "float32", "XLA serving (export.xla_batch_buckets) computes fastest in float32"
    if cpu_bf16:
        # Measured on an AVX512-BF16 CPU: batch-32 +48%, single requests +7% over float32,
        # the same predictions on TFNS (bench/RESULTS.md).
        return "bfloat16", ("CPU has bfloat16 instructions (avx512_bf16 / amx_bf16); serve "
                            "it on such a CPU, or set export.precision=float32")
    return "float32", "CPU without bfloat16 instructions"


def export_precision(export_cfg, trained: str) -> tuple[str, str]:
    """choose_export_precision for this machine."""
    gpu = bool(tf.config.list_physical_devices("GPU"))
    return choose_export_precision(export_cfg.precision, trained, gpu,
                                   not gpu and cpu_supports_bf16(),
                                   bool(export_cfg.xla_batch_buckets))


def split_cpu(replicas: int) -> None:
    """Makes the host CPU appear as `replicas` logical devices (before TF initialises)."""
    if replicas <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError as e:
        raise TfappError(f"runtime.cpu_replicas={replicas}: TensorFlow already started "
                         f"({e})") from None


def check_tpu_address(tpu: str, timeout: float = 5.0) -> None:
    """Fails fast, in one line, when a grpc:// TPU address does not answer: TensorFlow's
    own initialisation waits for minutes on an unreachable address."""
    import socket
    from urllib.parse import urlparse

    if not tpu.startswith("grpc://"):
        return  # a TPU name: resolved through the cloud metadata server by TensorFlow
    address = urlparse(tpu)
    if not address.hostname or not address.port:
        raise TfappError(f"TPU address '{tpu}' needs a host and port (grpc://HOST:8470)")
    try:
        with socket.create_connection((address.hostname, address.port), timeout=timeout):
            pass
    except OSError as e:
        raise TfappError(f"cannot reach TPU at {tpu}: {e.strerror or e} (no TPU worker is "
                         f"listening there; check --tpu and that the TPU VM is up)") from None


def _make_strategy(name: str, tpu: str | None) -> tf.distribute.Strategy:
    if name == "tpu":
        check_tpu_address(tpu)
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except Exception as e:  # the resolver raises several types for unreachable TPUs
            raise TfappError(f"cannot reach TPU '{tpu}': {str(e).splitlines()[0][:200]}") \
                from None
        return tf.distribute.TPUStrategy(resolver)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        if not tf.config.list_logical_devices("GPU"):
            cpus = tf.config.list_logical_devices("CPU")
            return tf.distribute.MirroredStrategy([d.name for d in cpus])
        return tf.distribute.MirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")


def resolve(train_cfg) -> Placement:
    """Creates the strategy and sets the global Keras dtype policy; call once, early."""
    split_cpu(train_cfg.cpu_replicas)
    caps = _gpu_compute_capabilities()
    name, why = choose_strategy_name(train_cfg.strategy, train_cfg.tpu,
                                     os.environ.get("TF_CONFIG"), len(caps))
    strategy = _make_strategy(name, train_cfg.tpu)
    precision, pwhy = choose_precision(train_cfg.precision, name, caps,
                                       cpu_bf16=not caps and cpu_supports_bf16())
    keras.mixed_precision.set_global_policy(precision)
    reasons = [f"strategy {name} ({type(strategy).__name__}, "
               f"{strategy.num_replicas_in_sync} replica(s)): {why}",
               f"precision {precision}: {pwhy}"]
    if name == "multiworker":
        task = json.loads(os.environ["TF_CONFIG"]).get("task", {})
        reasons.append(f"this worker: {task.get('type')} {task.get('index')}")
    return Placement(strategy, name, precision, reasons)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes shared outputs (exports, summaries): the chief only."""
    return bool(getattr(strategy.extended, "should_checkpoint", True))


def worker_index() -> int:
    """This process's index in TF_CONFIG's task (0 without TF_CONFIG)."""
    raw = os.environ.get("TF_CONFIG")
    return int(json.loads(raw).get("task", {}).get("index", 0)) if raw else 0


_KERAS_MULTIWORKER_PATCHED = False


def _patch_keras_metric_reduction() -> None:
    """Keras 3 reduces per-replica metric values across workers with axis=0, which fails
    for the scalar values `fit` logs ("Invalid reduction dimension 0 for input with 0
    dimensions", keras-team/keras#20585); reduce them without an axis instead."""
    global _KERAS_MULTIWORKER_PATCHED
    if _KERAS_MULTIWORKER_PATCHED:
        return
    from keras.src.backend.tensorflow import trainer as keras_trainer

    original = keras_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if (keras_trainer._collective_all_reduce_multi_worker(strategy)
                and reduction in ("auto", "mean")):
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None)
                if keras_trainer._is_per_replica_instance(v) else v, values)
        return original(values, strategy, reduction)

    keras_trainer.reduce_per_replica = reduce_per_replica
    _KERAS_MULTIWORKER_PATCHED = True


def prepare_multiworker_fit(model: keras.Model, dataset: tf.data.Dataset) -> None:
    """Makes Keras 3 `fit` work under MultiWorkerMirroredStrategy (keras-team/keras#20585).

    Before its first step `fit` builds the model symbolically from a sample batch that it
    averages across replicas with `strategy.reduce`, which MultiWorkerMirroredStrategy
    cannot do eagerly; build from a local (undistributed) batch instead. Also patches the
    metric reduction (see _patch_keras_metric_reduction). Both are no-ops for other
    strategies, which never call this.
    """
    _patch_keras_metric_reduction()
    sample = next(iter(dataset))
    build = model._maybe_symbolic_build
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: build(
        data_batch=sample)
