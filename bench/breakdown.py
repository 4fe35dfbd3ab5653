"""python -m bench.breakdown --run RUN_DIR [--requests N] [--write] [--out DIR]

Where the time of one request (and of a batch of 32) goes through a finished sentiment
run's export, with real texts (the run's validation split). Cumulative compiled pipelines
are timed round-robin, and each stage is the difference of two of them:

  dispatch     an empty tf.function call on the string batch (the floor of any call)
  tokenise     the in-graph packer: WordPiece, truncation, [CLS]/[SEP], padding
  encoder      + the BERT backbone on the packed batch
  head         + pooling and the dense heads (the whole task model)
  outputs      + softmax, label lookup, class names (the serving function in process)
  SavedModel   the exported `serving_default` called from Python after a reload, minus
               the same serving function in process: the structured-signature call layer

--write puts the table into bench/RESULTS.md and the raw numbers into bench/breakdown.json.
"""
from __future__ import annotations

import datetime as dt
import statistics
import time
from pathlib import Path

import tfapp  # noqa: F401
from bench.machine import describe as machine
from bench.machine import label
from bench.results_file import write_outputs, write_section
from bench.run_texts import run_bench_parser, sentiment_run_texts
from tfapp.core import run_layout as layout
from tfapp.core.errors import ConfigError, cli_main

REPO = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- breakdown table: begin -->", "<!-- breakdown table: end -->"


def interleaved_ms(fns: dict, args, reps: int) -> dict:
    """Median ms per function, calling them round-robin so drift hits all alike."""
    for fn in fns.values():
        for _ in range(5):
            fn(args)
    times = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(args)
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def stages(run: Path, texts: list[str], reps: int) -> dict:
    """{batch size: {stage: median ms}} for batches of 1 and 32 texts. Each stage is the
    difference of two cumulative compiled pipelines (tokenise; + encoder; + head; + output
    formatting; through the reloaded export)."""
    import keras
    import tensorflow as tf
    import tensorflow_text  # noqa: F401

    from tfapp.core.export_layout import existing_versions
    from tfapp.training.restore import restore_run

    cfg, task, model, packer = restore_run(run)
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    base = layout.export_base(run, cfg.task)
    versions = existing_versions(base, complete_only=True)
    if not versions:
        raise ConfigError(f"{run}: no export under {base}")
    exported = tf.saved_model.load(str(base / str(versions[-1]))).signatures["serving_default"]
    (input_name,) = exported.structured_input_signature[1]
    spec = [tf.TensorSpec([None], tf.string)]

    def features(t):
        f = dict(packer(t))
        f.setdefault("segment_ids", tf.zeros_like(f["token_ids"]))
        return f

    fns = {
        "dispatch": tf.function(lambda t: tf.shape(t), input_signature=spec),
        "tokenise": tf.function(lambda t: features(t), input_signature=spec),
        "+ encoder": tf.function(lambda t: backbone(features(t), training=False),
                                 input_signature=spec),
        "+ head": tf.function(lambda t: model(features(t), training=False),
                              input_signature=spec),
        "+ outputs": task.serving_signatures(model, packer)["serving_default"],
        "exported": lambda t: exported(**{input_name: t}),
    }
    out = {}
    for size in (1, 32):
        batch = tf.constant(texts[:size])
        t = interleaved_ms(fns, batch, reps if size == 1 else max(10, reps // 10))
        mask = features(batch)["padding_mask"]
        out[size] = {
            "dispatch": t["dispatch"], "tokenise": t["tokenise"],
            "encoder": t["+ encoder"] - t["tokenise"], "head": t["+ head"] - t["+ encoder"],
            "outputs": t["+ outputs"] - t["+ head"],
            "SavedModel call layer": t["exported"] - t["+ outputs"],
            "total (exported signature)": t["exported"],
            "tokens per text": float(tf.reduce_mean(tf.reduce_sum(
                tf.cast(mask, tf.float32), axis=1))),
            "cumulative": t}
    return out


def table(result: dict) -> str:
    rows = ["dispatch", "tokenise", "encoder", "head", "outputs", "SavedModel call layer",
            "total (exported signature)"]
    one, batch = result["stages"]["1"], result["stages"]["32"]
    lines = ["| stage | 1 text (ms) | share | batch of 32 (ms) | share |",
             "|---|---|---|---|---|"]
    for name in rows:
        a, b = one[name], batch[name]
        lines.append(f"| {name} | {a:.2f} | {100 * a / one['total (exported signature)']:.0f}% | "
                     f"{b:.2f} | {100 * b / batch['total (exported signature)']:.0f}% |")
    return "\n".join(lines)


def write_results(result: dict) -> None:
    body = "\n".join([
        f"Run of {result['date']} on {label(result['machine'])}: `python -m bench.breakdown "
        f"--run RUN --write` on {result['run_label']} "
        f"(medians of {result['requests']} calls for one "
        f"text, a tenth as many for 32; real validation texts, "
        f"{result['stages']['1']['tokens per text']:.0f} word pieces for the single text, "
        f"{result['stages']['32']['tokens per text']:.1f} on average in the batch); raw "
        f"numbers in bench/breakdown.json. Each stage is the difference of two cumulative "
        f"pipelines timed round-robin, so a stage within noise can come out slightly "
        f"negative.", "", table(result)])
    write_section(REPO / "bench", BEGIN, END, "## Where a request's time goes", body,
                  "breakdown.json", result)


@cli_main
def main(argv=None):
    args = run_bench_parser("python -m bench.breakdown", __doc__, "breakdown").parse_args(argv)
    run = Path(args.run)
    texts = sentiment_run_texts(run)
    result = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
              "run_label": args.run_label or str(run), "requests": args.requests,
              "stages": {str(k): v for k, v in stages(run, texts, args.requests).items()}}
    print(table(result))
    if args.write:
        write_results(result)
    if args.out:
        write_outputs(args.out, "breakdown", result, table(result))


if __name__ == "__main__":
    main()
