"""Batch scoring as an Apache Beam pipeline: input shards → records (bad rows to a dead
letter) → RunInference over the export → every input field plus the outputs, sharded
JSONL or CSV. The same pipeline runs on the local DirectRunner or on Dataflow, Flink or
Spark; only the pipeline options change."""
from __future__ import annotations

import csv
import dataclasses
import io
import json

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.ml.inference.base import RunInference

from tfapp.scoring.model_handler import ExportModelHandler, Prepared
from tfapp.scoring.records import BadRow, Record, format_of, read_records
from tfapp.scoring.signature_io import RecordError, SignatureIO

NAMESPACE = "tfapp_score"
POSITION = ("_file", "_row")  # where each output row came from, added to its fields


@dataclasses.dataclass
class ScoreJob:
    export: str
    input: str
    output: str
    specs: dict  # the signature's inputs, SignatureIO's plain form
    signature: str = "serving_default"
    column: str = "text"
    input_format: str = "auto"
    output_format: str = "jsonl"
    columns: list | None = None  # CSV output: the header (input fields + outputs)
    max_batch_size: int = 64
    threads: int | None = None
    num_shards: int = 0  # 0: the runner's choice


class ReadShard(beam.DoFn):
    """One matched file → its records; unreadable rows go to the `bad` output."""

    def __init__(self, fmt: str):
        self.fmt = fmt
        self.read = beam.metrics.Metrics.counter(NAMESPACE, "read")

    def process(self, readable):
        path = readable.metadata.path
        try:
            fmt = format_of(path, self.fmt)
        except ValueError as e:
            self.read.inc()
            yield beam.pvalue.TaggedOutput("bad", BadRow(path, None, str(e)))
            return
        with readable.open() as raw:
            for item in read_records(raw, path, fmt):
                self.read.inc()
                yield beam.pvalue.TaggedOutput("bad", item) if isinstance(item, BadRow) else item


class PrepareRecord(beam.DoFn):
    """A record → the signature's inputs (`Prepared`), or a BadRow naming the field."""

    def __init__(self, specs: dict, column: str, columns: list | None):
        self.specs, self.column, self.columns = specs, column, columns

    def setup(self):
        self.io = SignatureIO(self.specs, self.column)

    def process(self, record: Record):
        try:
            inputs = self.io.inputs_of(record.fields)
        except RecordError as e:
            yield beam.pvalue.TaggedOutput("bad", BadRow(record.file, record.row, str(e),
                                                         e.field))
            return
        if self.columns is not None:
            extra = next((k for k in record.fields if k not in self.columns), None)
            if extra is not None:
                yield beam.pvalue.TaggedOutput("bad", BadRow(
                    record.file, record.row, f"field '{extra}' is not a column of the CSV "
                    f"output (its header comes from the first input file); write "
                    f"--output-format jsonl", extra))
                return
        yield Prepared(record, inputs)


def output_row(result) -> dict:
    """Input fields, position and outputs of one PredictionResult."""
    record = result.example.record
    return {**record.fields, POSITION[0]: record.file, POSITION[1]: record.row,
            **result.inference}


def csv_line(row: dict, columns: list) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(
        [json.dumps(row[c], ensure_ascii=False) if isinstance(row.get(c), (dict, list))
         else row.get(c, "") for c in columns])
    return buffer.getvalue()


def failed_batch(item) -> list[BadRow]:
    """RunInference's dead letter (a failed batch and its exception) as one BadRow per
    record, so a batch that crashes the model loses no row from the count."""
    batch, error = item
    reason = f"inference failed: {type(error).__name__}: {str(error).strip()[:300]}"
    return [BadRow(p.record.file, p.record.row, reason) for p in batch]


def input_size(prepared: Prepared) -> int:
    """Characters of a record's text inputs: the proxy for its token count."""
    return sum(len(v) if isinstance(v, str) else sum(len(str(x)) for x in v)
               for v in prepared.inputs.values())


class SortByLength(beam.DoFn):
    """Emits records shortest first, `chunk` at a time: RunInference batches records in
    arrival order and an export pads each batch to its longest text, so batches of
    similar lengths spend less time on padding."""

    def __init__(self, chunk: int = 4096):
        self.chunk = chunk

    def start_bundle(self):
        self.buffer = []

    def process(self, prepared, timestamp=beam.DoFn.TimestampParam,
                window=beam.DoFn.WindowParam):
        self.buffer.append((prepared, timestamp, window))
        if len(self.buffer) >= self.chunk:
            yield from self._drain()

    def finish_bundle(self):
        yield from self._drain()

    def _drain(self):
        from apache_beam.utils.windowed_value import WindowedValue

        buffer, self.buffer = self.buffer, []
        for prepared, timestamp, window in sorted(buffer, key=lambda b: input_size(b[0])):
            yield WindowedValue(prepared, timestamp, [window])


class Count(beam.DoFn):
    def __init__(self, name: str):
        self.counter = beam.metrics.Metrics.counter(NAMESPACE, name)

    def process(self, item):
        self.counter.inc()
        yield item


def build(pipeline: beam.Pipeline, job: ScoreJob) -> None:
    """Adds the scoring job's transforms to `pipeline`."""
    handler = ExportModelHandler(job.export, signature=job.signature, column=job.column,
                                 min_batch_size=max(1, job.max_batch_size // 4),
                                 max_batch_size=job.max_batch_size, threads=job.threads)
    read = (pipeline
            | "Match" >> fileio.MatchFiles(job.input)
            | "Open" >> fileio.ReadMatches()
            | "Read" >> beam.ParDo(ReadShard(job.input_format)).with_outputs("bad",
                                                                             main="records"))
    prepared = (read.records
                | "Prepare" >> beam.ParDo(PrepareRecord(job.specs, job.column, job.columns)
                                          ).with_outputs("bad", main="ok"))
    # A fusion break: the records of one big file spread over every worker.
    scored, dead = (prepared.ok
                    | "Spread" >> beam.Reshuffle()
                    | "SortByLength" >> beam.ParDo(SortByLength())
                    | "Score" >> RunInference(handler).with_exception_handling())
    rows = scored | "Row" >> beam.Map(output_row) | "CountScored" >> beam.ParDo(Count("scored"))
    if job.output_format == "csv":
        lines = rows | "CSV" >> beam.Map(csv_line, job.columns)
        header, suffix = csv_line({c: c for c in job.columns}, job.columns), ".csv"
    else:
        lines = rows | "JSON" >> beam.Map(lambda r: json.dumps(r, ensure_ascii=False))
        header, suffix = None, ".jsonl"
    lines | "Write" >> beam.io.WriteToText(job.output, file_name_suffix=suffix,
                                           num_shards=job.num_shards, header=header)
    failed = dead.failed_inferences | "Unbatch" >> beam.FlatMap(failed_batch)
    ((read.bad, prepared.bad, failed)
     | "Bad" >> beam.Flatten()
     | "CountBad" >> beam.ParDo(Count("bad"))
     | "BadJSON" >> beam.Map(lambda b: json.dumps(b.as_dict(), ensure_ascii=False))
     | "WriteBad" >> beam.io.WriteToText(job.output + "-errors", file_name_suffix=".jsonl",
                                         num_shards=1))


def summary(result, seconds: float) -> dict:
    """Counts (read = scored + bad) and RunInference's batch sizes from the job's metrics."""
    metrics = result.metrics().query(beam.metrics.MetricsFilter())
    counts = {}
    for c in metrics["counters"]:
        counts[c.key.metric.name] = counts.get(c.key.metric.name, 0) + c.committed
    batches = {}
    for d in metrics["distributions"]:
        if d.key.metric.name.endswith("inference_request_batch_size") and d.committed:
            v = d.committed
            batches = {"batches": v.count, "min": v.min, "max": v.max,
                       "mean": round(v.mean, 1) if v.count else None}
    scored, bad = counts.get("scored", 0), counts.get("bad", 0)
    return {"read": counts.get("read", 0), "scored": scored, "bad": bad,
            "seconds": round(seconds, 1),
            "texts_per_second": round(scored / seconds, 1) if seconds else None,
            "batch_sizes": batches}
