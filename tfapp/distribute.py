"""The one place that turns --strategy / --precision into a tf.distribute strategy and a Keras
dtype policy, and says why."""
from __future__ import annotations

import dataclasses
import json
import os

import keras
import tensorflow as tf

from tfapp.errors import ConfigError, TfappError


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
            return "tpu", f"a TPU address is configured (train.tpu={tpu})"
        if tf_config:
            return "multiworker", "TF_CONFIG is set"
        if num_gpus > 1:
            return "mirrored", f"{num_gpus} GPUs visible"
        return "default", f"{num_gpus} GPU(s) visible, no TPU address, no TF_CONFIG"
    if requested == "tpu" and not tpu:
        raise ConfigError("--strategy tpu needs a TPU name or grpc:// address: pass --tpu "
                          "NAME_OR_ADDRESS (train.tpu)")
    if requested == "multiworker" and not tf_config:
        raise ConfigError("--strategy multiworker needs the TF_CONFIG environment variable "
                          "(cluster spec and this worker's task), as set by Kubernetes or a "
                          "managed trainer")
    return requested, "requested"


def choose_precision(requested: str, strategy_name: str,
                     gpu_caps: list[tuple[int, int]]) -> tuple[str, str]:
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
    # bf16 on CPU was measured slower than float32 on AVX-512-BF16 CPUs without AMX.
    return "float32", "CPU only"


def split_cpu(replicas: int) -> None:
    """Makes the host CPU appear as `replicas` logical devices (before TF initialises)."""
    if replicas <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError as e:
        raise TfappError(f"train.cpu_replicas={replicas}: TensorFlow already started "
                         f"({e})") from None


def _make_strategy(name: str, tpu: str | None) -> tf.distribute.Strategy:
    if name == "tpu":
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
    precision, pwhy = choose_precision(train_cfg.precision, name, caps)
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
