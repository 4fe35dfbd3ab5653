"""Writes tasks/samples/sentiment_stream.jsonl: 48 hours of financial news records with a
planted surge of negative earnings news, for `python -m tfapp.monitor` (README example).

    python tasks/samples/make_sentiment_stream.py

Flat topics carry ~6 texts an hour (20% negative); hours 30-31 of `earnings` carry a burst
of 24 texts, 80% negative. A few malformed, duplicate and late lines test robustness.
"""
import datetime as dt
import json
import os
import random
import tempfile
from pathlib import Path

from make_sentiment_sample import TEMPLATES, fill

START = dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc)
TOPICS = ["analyst", "deals", "earnings", "markets"]
SURGE_TOPIC, SURGE_HOURS = "earnings", (30,)


def iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def generate(seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    records = []
    for hour in range(48):
        for topic in TOPICS:
            surge = topic == SURGE_TOPIC and hour in SURGE_HOURS
            n = 24 if surge else rng.randint(4, 8)
            for _ in range(n):
                if surge:
                    label = "negative" if rng.random() < 0.8 else "neutral"
                else:
                    label = rng.choices(["negative", "neutral", "positive"], [0.2, 0.5, 0.3])[0]
                at = START + dt.timedelta(hours=hour, seconds=rng.uniform(0, 3599))
                record = {"id": f"n{len(records):05d}", "timestamp": iso(at),
                          "source": rng.choice(["wire-a", "wire-b", "blog"]),
                          "text": fill(rng.choice(TEMPLATES[(label, topic)]), rng)}
                if rng.random() < 0.7:  # the rest get their topic from the model
                    record["topic"] = topic
                records.append(record)
    records.sort(key=lambda r: r["timestamp"])
    lines = [json.dumps(r) for r in records]
    # Real feeds are messy: a broken line, a record without text, a duplicate id, and a
    # record that arrives a day late.
    lines.insert(100, '{"id": "broken", "timestamp": "2026-11-02T03:00:00Z", "text": "Shar')
    lines.insert(200, json.dumps({"id": "empty", "timestamp": iso(START), "text": ""}))
    lines.insert(300, lines[299])
    late = {"id": "late-1", "timestamp": iso(START + dt.timedelta(hours=1)),
            "text": "Quarry Steel cut its full-year revenue guidance.", "topic": "earnings"}
    lines.insert(len(lines) // 2, json.dumps(late))
    return lines


def main() -> None:
    out = Path(__file__).with_name("sentiment_stream.jsonl")
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(generate()) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
