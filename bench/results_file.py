"""Writing a benchmark's results into the repository: its table replaces the section
between two markers of a Markdown file (or is appended under a heading the first time),
and its raw JSON goes beside it; both written to a temporary name, then renamed."""
from __future__ import annotations

import json
from pathlib import Path


def replace_section(path: Path, begin: str, end: str, section: str, heading: str) -> None:
    """`section` (which starts with `begin` and ends with `end`) in place of the text
    between the markers in `path`, or appended under `heading` when they are absent."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + f"{heading}\n\n{section}\n"
    write_text(path, text)


def write_section(bench_dir: Path, begin: str, end: str, heading: str, body: str,
                  json_name: str, result: dict) -> None:
    """A bench's results in the repository: `body` between the markers of
    bench_dir/RESULTS.md (under `heading` the first time) and the raw `result` as
    bench_dir/json_name."""
    replace_section(Path(bench_dir) / "RESULTS.md", begin, end,
                    f"{begin}\n{body.rstrip()}\n{end}", heading)
    write_json(Path(bench_dir) / json_name, result)


def section(path: Path, begin: str, end: str) -> str | None:
    """The text from `begin` to `end` (markers included) in `path`, or None."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if begin in text and end in text:
        return text[text.index(begin):text.index(end) + len(end)]
    return None


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_json(path: Path, result: dict) -> None:
    write_text(path, json.dumps(result, indent=2) + "\n")


def write_outputs(out_dir, stem: str, result, table: str) -> None:
    """`--out DIR`: the raw results as DIR/<stem>.json and the table as DIR/<stem>.md."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{stem}.json", result)
    write_text(out / f"{stem}.md", table + "\n")
