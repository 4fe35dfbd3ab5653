"""python -m bench.run --suite quick|full [--out DIR]

Side-by-side measurements of tfapp (keras-hub / TensorFlow) and Hugging Face transformers
(PyTorch) on the same checkpoint, batches and optimizer, in one process:

  * training throughput (examples/s and real tokens/s, warm-up excluded), ours vs a plain
    transformers + torch loop fed the very same padded batches;
  * inference: single-request latency p50/p99 through our exported SavedModel (tokenisation
    included) vs a transformers text-classification pipeline; batch-32 throughput for both;
  * achieved training FLOP/s vs a measured dense-matmul peak of this CPU;
  * padding waste with and without length bucketing;
  * an ablation of our training speed knobs (bucketing, XLA, steps_per_execution, bf16).

`quick` uses the tiny backbone and a few steps (it proves the harness works; its numbers
mean nothing). `full` uses the packaged all-MiniLM-L6-v2. Writes JSON and a markdown table.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import tempfile
import time
import warnings
from pathlib import Path

import keras
import tensorflow as tf

import tfapp  # noqa: F401
from bench.measure import latency, rates
from bench.run_results import markdown, write, write_results
from bench.transformers_reference import hf_model_dir, infer_theirs, train_theirs
from tfapp.core import distribute
from tfapp.core.backbone import TextPacker, load_backbone
from tfapp.core.config import apply_overrides, build_config, read_yaml
from tfapp.core.task_contract import get_task
from tfapp.serving.saved_model import export_saved_model
from tfapp.training.driver import build_compiled_model
from tfapp.training.serving_precision import model_to_serve

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Suite:
    backbone: str
    batch: int
    warmup_steps: int
    timed_steps: int
    latency_requests: int
    throughput_batches: int
    matmul_size: int
    ablation: bool


SUITES = {
    "quick": Suite("tiny", 16, 2, 4, 20, 2, 512, False),
    "full": Suite("default", 32, 3, 30, 200, 10, 2048, True),
}


def sentiment_config(backbone: str, **overrides):
    raw = read_yaml(REPO / "configs" / "sentiment.yaml")
    sets = {"backbone.name": backbone, "sentiment.topic_column": None, **overrides}
    raw = apply_overrides(raw, [f"{k}={json.dumps(v)}" for k, v in sets.items()])
    return build_config(raw, get_task("sentiment").Config, "bench")


def batches(task, splits, packer, batch: int, bucketing: bool, n: int) -> list:
    """`n` training batches (cycled), materialised so both frameworks see identical data."""
    data_cfg = task.config.data
    boundaries = data_cfg.bucket_boundaries
    data_cfg.bucket_boundaries = boundaries if bucketing else []
    try:
        ds = task.dataset(splits["train"], packer, batch, training=True).repeat()
        return [b for b in ds.take(n)]
    finally:
        data_cfg.bucket_boundaries = boundaries


def padding_waste(task, splits, packer, batch: int) -> dict:
    out = {}
    for bucketing in (False, True):
        data = batches(task, splits, packer, batch, bucketing,
                       -(-len(splits["train"]) // batch))
        pad = sum(int((x["padding_mask"].numpy() == 0).sum()) for x, *_ in data)
        total = sum(int(x["padding_mask"].numpy().size) for x, *_ in data)
        out["bucketed" if bucketing else "padded_to_batch_max"] = round(100 * pad / total, 1)
    return out


def training_precision(cfg) -> str:
    """The policy tfapp.train would choose here (precision auto follows the CPU's flags;
    this harness runs on the CPU only)."""
    precision, _ = distribute.choose_precision(cfg.runtime.precision, "default", [],
                                               cpu_bf16=distribute.cpu_supports_bf16())
    return precision if precision in ("float32", "mixed_bfloat16") else "float32"


def train_ours(cfg, suite: Suite, data: list) -> dict:
    """examples/s and real tokens/s of keras fit on fixed batches, after warm-up."""
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy(training_precision(cfg))
    placement = distribute.Placement(tf.distribute.get_strategy(), "default",
                                     keras.mixed_precision.global_policy().name, [])
    task = get_task("sentiment")(cfg)
    loaded = load_backbone(cfg.backbone.name, cfg.backbone.exact_gelu)
    model = build_compiled_model(task, cfg, loaded, placement, total_steps=10_000)

    x0, *rest0 = data[0]
    # Inputs vary in batch and length; targets and weights only in batch.
    signature = (tf.nest.map_structure(lambda t: tf.TensorSpec([None, None], t.dtype), x0),
                 *tf.nest.map_structure(
                     lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), rest0))

    def run(items):
        ds = tf.data.Dataset.from_generator(lambda: (tuple(b) for b in items),
                                            output_signature=signature)
        start = time.perf_counter()
        model.fit(ds, epochs=1, verbose=0)
        return time.perf_counter() - start

    # Warm-up traces and compiles; it also meets every batch shape of the timed steps
    # once, so XLA (jit_compile) is timed compiled, as in a long run.
    warmup, seen = list(data[: suite.warmup_steps]), set()
    for x, *_ in warmup:
        seen.add(tuple(x["token_ids"].shape))
    for batch in data[suite.warmup_steps:]:
        if tuple(batch[0]["token_ids"].shape) not in seen:
            seen.add(tuple(batch[0]["token_ids"].shape))
            warmup.append(batch)
    run(warmup)
    seconds = run(data[suite.warmup_steps:])
    timed = data[suite.warmup_steps:]
    keras.mixed_precision.set_global_policy("float32")
    return rates(timed, seconds) | {"params": loaded.backbone.count_params()}


def infer_ours(export_dir: Path, texts: list[str], suite: Suite) -> dict:
    import tensorflow_text  # noqa: F401

    fn = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    for t in texts[:5]:
        fn(text=tf.constant([t]))
    fn(text=tf.constant(texts[:32]))
    lat = []
    for i in range(suite.latency_requests):
        start = time.perf_counter()
        fn(text=tf.constant([texts[i % len(texts)]]))
        lat.append(time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(suite.throughput_batches):
        fn(text=tf.constant(texts[(i * 32) % len(texts):][:32] or texts[:32]))
    return latency(lat) | {"batch32_examples_per_s": round(
        32 * suite.throughput_batches / (time.perf_counter() - start), 1)}


def matmul_peak(n: int) -> float:
    """FLOP/s of float32 n×n matmuls on this CPU (best of several runs)."""
    a = tf.random.normal([n, n])
    b = tf.random.normal([n, n])
    mm = tf.function(lambda: tf.linalg.matmul(a, b))
    mm()
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(3):
            mm().numpy()
        best = max(best, 3 * 2 * n ** 3 / (time.perf_counter() - start))
    return best


def train_flops(bb, timed: list) -> float:
    """Forward+backward FLOPs of the encoder on the padded batches: 6·N per token for the
    dense weights plus the attention score/context matmuls (12·L·H·T per token)."""
    layers, hidden, inter = bb.num_layers, bb.hidden_dim, bb.intermediate_dim
    dense_params = layers * (4 * hidden * hidden + 2 * hidden * inter)
    total = 0.0
    for x, *_ in timed:
        batch, length = x["token_ids"].shape
        tokens = batch * length
        total += 6 * dense_params * tokens + 12 * layers * hidden * length * tokens
    return total


def machine() -> dict:
    from bench.machine import describe

    return describe()


def run_suite(name: str, out_dir: Path) -> dict:
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
    warnings.filterwarnings("ignore", message=".*ran out of data.*")
    suite = SUITES[name]
    cfg = sentiment_config(suite.backbone, **{"trainer.global_batch_size": suite.batch})
    task = get_task("sentiment")(cfg)
    splits = task.load_splits()
    loaded = load_backbone(cfg.backbone.name, cfg.backbone.exact_gelu)
    packer = TextPacker(loaded.tokenizer, cfg.backbone.max_seq_length)
    n = suite.warmup_steps + suite.timed_steps
    result = {"suite": name, "date": dt.datetime.now().isoformat(timespec="seconds"),
              "machine": machine(), "backbone": suite.backbone, "batch": suite.batch}

    result["padding_waste_pct"] = padding_waste(task, splits, packer, suite.batch)
    data = batches(task, splits, packer, suite.batch, bucketing=True, n=n)
    ours = train_ours(cfg, suite, data)
    model_dir = hf_model_dir(loaded, suite.backbone, len(task.params.labels))
    theirs = train_theirs(model_dir, len(task.params.labels), cfg, suite, data)
    result["train"] = {"ours": ours, "theirs": theirs,
                       "ratio": round(ours["examples_per_s"] / theirs["examples_per_s"], 2)}

    peak = matmul_peak(suite.matmul_size)
    flops = train_flops(loaded.backbone, data[suite.warmup_steps:])
    achieved = flops / ours["seconds"]
    result["flops"] = {"matmul_peak_gflops": round(peak / 1e9, 1),
                       "train_achieved_gflops": round(achieved / 1e9, 1),
                       "fraction_of_peak": round(achieved / peak, 3)}

    # Export a model (untrained head: latency does not depend on the weights' values).
    export_base = Path(tempfile.mkdtemp(prefix="bench_export_"))
    keras.utils.set_random_seed(0)
    model, export_precision = model_to_serve(task, loaded, task.build_model(loaded), "float32",
                                             cfg.export)  # the default export's precision
    export_dir = export_saved_model(task, model, packer, export_base / "sentiment")
    result["precision"] = {"train": training_precision(cfg), "export": export_precision}
    texts = splits["test"].texts + splits["validation"].texts
    inf_ours, inf_theirs = infer_ours(export_dir, texts, suite), infer_theirs(
        model_dir, texts, suite)
    result["inference"] = {
        "ours": inf_ours, "theirs": inf_theirs,
        "p50_ratio": round(inf_ours["p50_ms"] / inf_theirs["p50_ms"], 2),
        "batch32_ratio": round(inf_ours["batch32_examples_per_s"]
                               / inf_theirs["batch32_examples_per_s"], 2)}

    if suite.ablation:
        variants = {
            "padded to batch max": ({}, False),
            "bucketed (default)": ({}, True),
            "bucketed + jit_compile": ({"runtime.jit_compile": True}, True),
            "bucketed + steps_per_execution=4": ({"runtime.steps_per_execution": 4}, True),
            "bucketed + mixed_bfloat16": ({"runtime.precision": "mixed_bfloat16"}, True),
            "bucketed + float32": ({"runtime.precision": "float32"}, True),
            # Fixed bucket shapes, so XLA compiles a handful of programs once.
            "static shapes + jit_compile": ({"runtime.jit_compile": True,
                                             "data.static_shapes": True}, True),
            "static shapes + jit_compile + float32": ({"runtime.jit_compile": True,
                                                       "data.static_shapes": True,
                                                       "runtime.precision": "float32"}, True),
        }
        result["ablation"] = {}
        for label, (overrides, bucketing) in variants.items():
            vcfg = sentiment_config(suite.backbone, **{"trainer.global_batch_size": suite.batch,
                                                       **overrides})
            vtask = get_task("sentiment")(vcfg)
            vdata = batches(vtask, splits, packer, suite.batch, bucketing, n)
            result["ablation"][label] = train_ours(vcfg, suite, vdata)
        # tf.data through tfapp's own pipeline (in-graph tokenisation each epoch vs cached).
        for cache in (False, True):
            vcfg = sentiment_config(suite.backbone, **{"trainer.global_batch_size": suite.batch,
                                                       "data.cache": cache})
            vtask = get_task("sentiment")(vcfg)
            ds = vtask.dataset(splits["train"], packer, suite.batch, training=True).repeat()
            label = f"tfapp tf.data pipeline, cache={'on' if cache else 'off'}"
            result["ablation"][label] = train_ours_on_dataset(vcfg, suite, ds)
        # The cache only pays from the second pass: time each epoch of two.
        for cache in (False, True):
            vcfg = sentiment_config(suite.backbone, **{"trainer.global_batch_size": suite.batch,
                                                       "data.cache": cache})
            vtask = get_task("sentiment")(vcfg)
            per_epoch = train_epochs_on_dataset(vcfg, suite, vtask, splits, packer)
            for epoch, rate in enumerate(per_epoch, 1):
                label = f"tfapp tf.data pipeline, cache={'on' if cache else 'off'}, epoch {epoch}"
                result["ablation"][label] = rate
        # Thread pools must be sized before TensorFlow starts: one fresh process each.
        import concurrent.futures
        import multiprocessing

        for intra, inter in ((1, 1), (2, 1), (1, 2), (2, 2)):
            with concurrent.futures.ProcessPoolExecutor(
                    1, mp_context=multiprocessing.get_context("spawn")) as pool:
                label = f"threads intra={intra} inter={inter} (fresh process)"
                result["ablation"][label] = pool.submit(_threaded_train, suite, intra,
                                                        inter).result()
    write(result, out_dir)
    return result


def train_ours_on_dataset(cfg, suite: Suite, ds: tf.data.Dataset) -> dict:
    """Like train_ours, but fed by a live tf.data pipeline (tokenising, caching)."""
    keras.utils.set_random_seed(0)
    placement = distribute.Placement(tf.distribute.get_strategy(), "default", "float32", [])
    task = get_task("sentiment")(cfg)
    loaded = load_backbone(cfg.backbone.name, cfg.backbone.exact_gelu)
    model = build_compiled_model(task, cfg, loaded, placement, total_steps=10_000)
    model.fit(ds.take(suite.warmup_steps), epochs=1, verbose=0)
    timed = list(ds.skip(suite.warmup_steps).take(suite.timed_steps))
    start = time.perf_counter()
    model.fit(ds.skip(suite.warmup_steps).take(suite.timed_steps), epochs=1, verbose=0)
    return rates(timed, time.perf_counter() - start)


def train_epochs_on_dataset(cfg, suite: Suite, task, splits, packer, epochs: int = 2) -> list:
    """Rates of each of `epochs` epochs of keras fit over the task's own training pipeline
    (a fresh dataset, so the first epoch tokenises and, with data.cache, fills the cache);
    the model is traced beforehand on another dataset, so no epoch pays for tracing."""
    keras.utils.set_random_seed(0)
    placement = distribute.Placement(tf.distribute.get_strategy(), "default", "float32", [])
    loaded = load_backbone(cfg.backbone.name, cfg.backbone.exact_gelu)
    model = build_compiled_model(task, cfg, loaded, placement, total_steps=10_000)
    warm = task.dataset(splits["train"], packer, suite.batch, training=True)
    model.fit(warm.take(suite.warmup_steps), epochs=1, verbose=0)
    ds = task.dataset(splits["train"], packer, suite.batch, training=True)
    timed = list(ds)  # one epoch's batches, only for counting examples and tokens

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    seconds: list = []
    ds = task.dataset(splits["train"], packer, suite.batch, training=True)
    model.fit(ds, epochs=epochs, verbose=0, callbacks=[EpochTimer()])
    return [rates(timed, s) for s in seconds]


def _threaded_train(suite: Suite, intra: int, inter: int) -> dict:
    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    warnings.filterwarnings("ignore")
    cfg = sentiment_config(suite.backbone, **{"trainer.global_batch_size": suite.batch})
    task = get_task("sentiment")(cfg)
    splits = task.load_splits()
    packer = TextPacker(load_backbone(cfg.backbone.name).tokenizer, cfg.backbone.max_seq_length)
    data = batches(task, splits, packer, suite.batch, True,
                   suite.warmup_steps + suite.timed_steps)
    return train_ours(cfg, suite, data)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(SUITES), default="quick")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    parser.add_argument("--write", action="store_true",
                        help="put the table into bench/RESULTS.md (one section per machine "
                             "kind) and the raw JSON beside it as bench/run-<machine>.json")
    args = parser.parse_args(argv)
    result = run_suite(args.suite, Path(args.out))
    print(markdown(result))
    if args.write:
        write_results(result)


if __name__ == "__main__":
    main()
