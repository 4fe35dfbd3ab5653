"""Bench results go between their markers in a Markdown file, leaving the rest as it was."""
import json

from bench.results_file import replace_section, section, write_json


def test_section_replaced_between_markers_or_appended_once(tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n\nintro\n")
    replace_section(md, "<!-- b -->", "<!-- e -->", "<!-- b -->\none\n<!-- e -->", "## T")
    assert md.read_text() == "# Results\n\nintro\n\n## T\n\n<!-- b -->\none\n<!-- e -->\n"
    md.write_text(md.read_text() + "\nafter\n")
    replace_section(md, "<!-- b -->", "<!-- e -->", "<!-- b -->\ntwo\n<!-- e -->", "## T")
    assert md.read_text() == ("# Results\n\nintro\n\n## T\n\n<!-- b -->\ntwo\n<!-- e -->\n"
                              "\nafter\n")
    write_json(tmp_path / "r.json", {"a": 1})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RESULTS.md", "r.json"]


def test_a_missing_file_gets_the_section_and_it_reads_back(tmp_path):
    md = tmp_path / "QUALITY.md"
    assert section(md, "<!-- b -->", "<!-- e -->") is None
    replace_section(md, "<!-- b -->", "<!-- e -->", "<!-- b -->\nx\n<!-- e -->", "## T")
    assert md.read_text() == "## T\n\n<!-- b -->\nx\n<!-- e -->\n"
    assert section(md, "<!-- b -->", "<!-- e -->") == "<!-- b -->\nx\n<!-- e -->"
