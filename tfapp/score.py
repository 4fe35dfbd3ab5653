"""python -m tfapp.score --model EXPORT --input GLOB --output PREFIX [beam options]

Scores CSV/TSV/JSONL/TXT shards with an export as an Apache Beam pipeline (RunInference):
every input field is kept, the signature's outputs are added, `_file` and `_row` say where
each row came from. Bad rows go to PREFIX-errors-*.jsonl with file, row and reason; the
counts (read = scored + bad) and RunInference's batch sizes go to PREFIX-summary.json.
Runs on the local DirectRunner (one worker process per core) unless --runner says
otherwise; any other Beam pipeline option (--runner DataflowRunner --project ...,
--runner FlinkRunner --flink_master ..., --direct_num_workers N) is passed through.
Needs the [beam] extra: pip install -e ".[beam]".
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import tfapp  # noqa: F401
from tfapp.core.errors import ConfigError, TfappError, cli_main


def beam_options(extra: list[str]) -> tuple[list[str], int | None]:
    """Beam's options with the local default filled in (DirectRunner, multi-processing,
    one worker per core), and TensorFlow threads per worker for a local run (None on
    a remote runner: its workers are machines of their own)."""
    flags = {a.split("=", 1)[0] for a in extra if a.startswith("--")}
    runner = next((a.split("=", 1)[1] if "=" in a else extra[i + 1]
                   for i, a in enumerate(extra) if a.split("=", 1)[0] == "--runner"),
                  "DirectRunner")
    if runner not in ("DirectRunner", "direct"):
        return extra, None
    options = list(extra)
    if "--direct_running_mode" not in flags:
        options.append("--direct_running_mode=multi_processing")
    if "--default_sdk_harness_log_level" not in flags:  # Beam's INFO lines drown the summary
        options.append("--default_sdk_harness_log_level=WARNING")
    if "--direct_num_workers" not in flags:
        options.append(f"--direct_num_workers={os.cpu_count() or 1}")
    workers = next(int(a.split("=", 1)[1] if "=" in a else options[i + 1])
                   for i, a in enumerate(options) if a.split("=", 1)[0] == "--direct_num_workers")
    cores = os.cpu_count() or 1
    return options, max(1, cores // max(1, workers or cores))


def matched_files(pattern: str) -> list[str]:
    """The input shards, checked before any worker starts: a mistyped glob is an error,
    not an empty job."""
    from apache_beam.io.filesystems import FileSystems

    try:
        results = FileSystems.match([pattern])
    except Exception as e:  # BeamIOError: nothing matched, or the file system refused
        raise TfappError(f"--input {pattern}: no file matches") from e
    matches = sorted(m.path for r in results for m in r.metadata_list)
    if not matches:
        raise TfappError(f"--input {pattern}: no file matches")
    return matches


def first_fields(first: str, fmt: str) -> list[str]:
    """The input fields of the first matched file (the CSV output's leading columns)."""
    from apache_beam.io.filesystems import FileSystems

    from tfapp.scoring.records import BadRow, format_of, read_records

    try:
        fmt = format_of(first, fmt)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    with FileSystems.open(first) as raw:
        for item in read_records(raw, first, fmt):
            if not isinstance(item, BadRow):
                return list(item.fields)
    raise TfappError(f"{first}: no readable row to take the CSV output's columns from")


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfapp.score", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="SavedModel dir or model base dir")
    parser.add_argument("--input", required=True, help="file or glob of input shards")
    parser.add_argument("--output", required=True, help="output prefix (shards, errors, "
                                                        "summary)")
    parser.add_argument("--column", default="text",
                        help="field feeding a one-text signature (default text)")
    parser.add_argument("--format", default="auto",
                        choices=["auto", "csv", "tsv", "jsonl", "txt"],
                        help="input format (default: from each file's extension)")
    parser.add_argument("--output-format", default="jsonl", choices=["jsonl", "csv"])
    parser.add_argument("--signature", default="serving_default")
    parser.add_argument("--max-batch-size", type=int, default=64,
                        help="largest batch RunInference may form (it grows batches "
                             "adaptively up to this)")
    parser.add_argument("--num-shards", type=int, default=0,
                        help="output shards (default: the runner's choice)")
    args, extra = parser.parse_known_args(argv)
    if args.max_batch_size < 1:
        raise ConfigError(f"--max-batch-size must be >= 1, got {args.max_batch_size}")
    if args.num_shards < 0:
        raise ConfigError(f"--num-shards must be >= 0, got {args.num_shards}")
    unknown = [a for a in extra if a.startswith("-") and not a.startswith("--")]
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]}")
    try:
        import apache_beam as beam
        from apache_beam.options.pipeline_options import PipelineOptions
    except ImportError:
        raise ConfigError('tfapp.score needs Apache Beam: pip install -e ".[beam]"') from None
    from tfapp.core.log import say
    from tfapp.core.rundir import write_json
    from tfapp.scoring.batch_pipeline import POSITION, ScoreJob, build, summary
    from tfapp.scoring.signature_io import RecordError, SignatureIO, load_signature

    # Worker processes inherit this: TensorFlow's start-up notices, once per worker, are noise.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    shards = matched_files(args.input)
    export, fn = load_signature(args.model, args.signature)
    try:
        io = SignatureIO.of(fn, args.column)
    except RecordError as e:
        raise TfappError(f"{export}: {e}") from None
    outputs = sorted(k for k in fn.structured_outputs if not k.endswith("classes"))
    columns = None
    if args.output_format == "csv":
        columns = first_fields(shards[0], args.format)
        columns += [c for c in (*POSITION, *outputs) if c not in columns]
    options, threads = beam_options(extra)
    job = ScoreJob(export=export, input=args.input, output=args.output, specs=io.specs,
                   signature=args.signature, column=args.column, input_format=args.format,
                   output_format=args.output_format, columns=columns,
                   max_batch_size=args.max_batch_size, threads=threads,
                   num_shards=args.num_shards)
    say(f"scoring {len(shards)} file(s) of {args.input} with {export} "
        f"({args.signature}: {io.describe()}); beam options: {' '.join(options) or '(defaults)'}")
    start = time.perf_counter()
    pipeline = beam.Pipeline(options=PipelineOptions(options))
    build(pipeline, job)
    result = pipeline.run()
    result.wait_until_finish()
    report = {**summary(result, time.perf_counter() - start), "model": export,
              "input": args.input, "output": args.output, "options": options,
              "threads_per_worker": threads}
    write_json(Path(f"{args.output}-summary.json"), report)
    say(f"summary: {json.dumps(report)}")
    if report["bad"]:
        say(f"{report['bad']} bad rows: see {args.output}-errors-*.jsonl")


if __name__ == "__main__":
    main()
