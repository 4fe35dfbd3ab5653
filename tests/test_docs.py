"""The README and docs/ stay current with the code: every config key is documented, every
link resolves, every command they name exists, and the README stays short."""
from __future__ import annotations

import dataclasses
import re

import pytest

from tfapp.core.config import build_config
from tfapp.core.task_contract import get_task

from conftest import REPO

PAGES = sorted((REPO / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def config_keys(node: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in node.items():
        if isinstance(value, dict) and value:
            out += config_keys(value, f"{prefix}{key}.")
        else:
            out.append(prefix + key)
    return out


def test_every_framework_and_lever_key_is_in_the_configuration_page():
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    cfg = build_config({"task": "sentiment"}, get_task("sentiment").Config, "defaults")
    framework = {k: v for k, v in cfg.to_dict().items() if k not in ("task", "seed",
                                                                       "sentiment")}
    missing = [k for k in config_keys(framework) if f"`{k}`" not in page]
    assert missing == []


@pytest.mark.parametrize("task", ["sentiment", "qa", "recommend"])
def test_every_task_key_is_named_in_its_task_page(task):
    page = (REPO / "docs" / f"{task}.md").read_text(encoding="utf-8")
    fields = [f.name for f in dataclasses.fields(get_task(task).Config)]
    missing = [name for name in fields if name not in page]
    assert missing == [], f"docs/{task}.md does not mention {missing}"


@pytest.mark.parametrize("page", [REPO / "README.md", *PAGES], ids=lambda p: p.name)
def test_links_resolve_and_named_commands_exist(page):
    text = page.read_text(encoding="utf-8")
    for target, _ in LINK.findall(text):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name}: broken link {target}"
    for module in set(re.findall(r"python3? -m (tfapp\.[a-z_]+|bench\.[a-z_]+)", text)):
        assert (REPO / (module.replace(".", "/") + ".py")).is_file(), f"{page.name}: {module}"


def test_the_readme_is_short_and_links_every_docs_page():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    for page in PAGES:
        assert f"(docs/{page.name})" in readme, page.name


def test_the_layout_page_names_every_module():
    page = (REPO / "docs" / "layout.md").read_text(encoding="utf-8")
    missing = sorted({p.stem for root in ("tfapp", "tasks") for p in (REPO / root).rglob("*.py")
                      if p.stem != "__init__" and "samples" not in p.parts
                      and p.stem not in page})
    assert missing == []
