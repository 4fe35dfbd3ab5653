"""python -m tfapp.monitor --model EXPORT --input FILE [--follow | --engine beam]

Scores a stream of texts with an exported sentiment(/topic) model, aggregates per topic in
time windows, and raises an alert when a window's negative volume or share surges above
its rolling baseline. Writes alerts.jsonl, windows.csv, negative_share.png, summary.json
and TensorBoard scalars under --out. --engine beam runs the same analysis of a file as an
Apache Beam pipeline (RunInference, event-time windows, a stateful surge step; the [beam]
extra); further arguments are Beam pipeline options (--runner, --direct_num_workers, ...).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
from pathlib import Path

import tfapp  # noqa: F401
from tasks.sentiment.opinion_monitor import Outputs, Scorer, parse_duration, run_monitor
from tasks.sentiment.stream import StreamFields, StreamReader
from tasks.sentiment.surge import SurgeConfig, SurgeDetector
from tfapp.core.errors import ConfigError, cli_main


def check_options(args) -> None:
    """One-line errors for option values that would crash the loop or silently switch
    alerting off."""
    if parse_duration(args.window) <= 0:
        raise ConfigError(f"--window must be longer than 0, got {args.window!r}")
    checks = [
        (args.baseline_windows >= 1, "--baseline-windows must be >= 1"),
        (1 <= args.min_baseline_windows <= args.baseline_windows,
         "--min-baseline-windows must be in [1, --baseline-windows]"),
        (math.isfinite(args.threshold) and args.threshold > 0,
         "--threshold must be a finite number > 0"),
        (args.min_count >= 0, "--min-count must be >= 0"),
        (args.cooldown_windows >= 0, "--cooldown-windows must be >= 0"),
        (args.examples >= 0, "--examples must be >= 0"),
        (args.batch_size >= 1, "--batch-size must be >= 1"),
        (math.isfinite(args.max_latency) and args.max_latency > 0,
         "--max-latency must be a number of seconds > 0"),
        (math.isfinite(args.poll_interval) and args.poll_interval > 0,
         "--poll-interval must be a number of seconds > 0"),
        (args.idle_exit is None or (math.isfinite(args.idle_exit) and args.idle_exit > 0),
         "--idle-exit must be a number of seconds > 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def beam_scoring(export: Path, batch_size: int, threads: int | None):
    """The Beam engine's scoring step: stream Records → RunInference over the export →
    (Record, the monitor's fields of its outputs)."""
    import apache_beam as beam
    from apache_beam.ml.inference.base import RunInference

    from tasks.sentiment.beam_monitor import monitor_fields
    from tfapp.scoring.model_handler import ExportModelHandler, Prepared

    handler = ExportModelHandler(str(export), min_batch_size=max(1, batch_size // 4),
                                 max_batch_size=batch_size, threads=threads)

    def fields_of(result):
        out = result.inference
        return result.example.record, monitor_fields(out["label"], out["probabilities"],
                                                     out.get("topic_label"))

    return ("Inputs" >> beam.Map(lambda r: Prepared(r, {"text": r.text}))
            | "RunInference" >> RunInference(handler)
            | "MonitorFields" >> beam.Map(fields_of))


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfapp.monitor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    d = SurgeConfig()
    parser.add_argument("--model", required=True, help="sentiment export (version or base)")
    parser.add_argument("--input", required=True, help="JSONL or CSV stream")
    parser.add_argument("--out", help="output dir (default: monitor/<input stem>-<time>)")
    parser.add_argument("--window", default="1h", help="window length (default 1h)")
    parser.add_argument("--baseline-windows", type=int, default=d.baseline_windows)
    parser.add_argument("--min-baseline-windows", type=int, default=d.min_baseline_windows)
    parser.add_argument("--method", choices=["zscore", "ratio"], default=d.method)
    parser.add_argument("--threshold", type=float, default=d.threshold,
                        help=f"robust z-score, or ratio for --method ratio ({d.threshold})")
    parser.add_argument("--metric", choices=["count", "share", "either"], default=d.metric)
    parser.add_argument("--min-count", type=int, default=d.min_count)
    parser.add_argument("--cooldown-windows", type=int, default=d.cooldown_windows)
    parser.add_argument("--lateness", default="10m", help="allowed lateness (default 10m)")
    parser.add_argument("--examples", type=int, default=d.examples)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--follow", action="store_true", help="keep tailing the input")
    parser.add_argument("--engine", choices=["inprocess", "beam"], default="inprocess",
                        help="inprocess (default; --follow needs it) or beam")
    parser.add_argument("--max-latency", type=float, default=2.0,
                        help="--follow: score a partial batch after this many seconds")
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--idle-exit", type=float, default=None,
                        help="--follow: stop after this many seconds without new lines")
    for field in dataclasses.fields(StreamFields):
        parser.add_argument(f"--{field.name}-field", default=field.default)
    args, beam_args = parser.parse_known_args(argv)
    if beam_args and args.engine != "beam":
        parser.error(f"unrecognized arguments: {' '.join(beam_args)}")
    if args.engine == "beam" and args.follow:
        raise ConfigError("--follow tails a file in this process: use --engine inprocess "
                          "(a Beam pipeline reads a stream source instead: docs/sentiment.md)")
    check_options(args)

    cfg = SurgeConfig(
        window_seconds=parse_duration(args.window), baseline_windows=args.baseline_windows,
        min_baseline_windows=args.min_baseline_windows, method=args.method,
        threshold=args.threshold, metric=args.metric, min_count=args.min_count,
        cooldown_windows=args.cooldown_windows, lateness_seconds=parse_duration(args.lateness),
        examples=args.examples)
    fields = StreamFields(**{f.name: getattr(args, f"{f.name}_field")
                             for f in dataclasses.fields(StreamFields)})
    reader = StreamReader(args.input, fields)
    from tfapp.core.log import say

    scorer = Scorer(Path(args.model))
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("monitor") / f"{Path(args.input).stem}-{stamp}"
    say(f"monitor config: {json.dumps(dataclasses.asdict(cfg))}")
    say(f"model {scorer.export} (topic head: {scorer.has_topic}); writing {out}")
    if args.engine == "beam":
        from tasks.sentiment.beam_monitor import run_beam_monitor
        from tfapp.score import beam_options

        reader.check_header()  # in a worker it would surface as a long pipeline error
        options, threads = beam_options(beam_args)
        say(f"beam options: {' '.join(options)}")
        summary = run_beam_monitor(args.input, fields, cfg,
                                   beam_scoring(scorer.export, args.batch_size, threads),
                                   Outputs(out), options, say=say)
    else:
        summary = run_monitor(scorer, reader, SurgeDetector(cfg), Outputs(out),
                              batch_size=args.batch_size, follow=args.follow,
                              max_latency=args.max_latency, poll_interval=args.poll_interval,
                              idle_exit=args.idle_exit, say=say)
    say(f"summary: {json.dumps(summary)}")
    chart = ", negative_share.png" if (out / "negative_share.png").is_file() else ""
    say(f"wrote {out}/alerts.jsonl, windows.csv{chart}, summary.json, logs/")


if __name__ == "__main__":
    main()
