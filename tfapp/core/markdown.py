"""User text inside TensorBoard's Markdown text summaries, rendered inert: a training
sentence like `![x](http://...)` must not become an image that fetches an outside URL
when someone opens TensorBoard."""
from __future__ import annotations

import html
import re

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>])")


def escape(text: str) -> str:
    """One table cell / line of plain text: HTML-escaped, Markdown punctuation
    backslash-escaped, line breaks and tabs as spaces."""
    flat = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    return _MARKDOWN.sub(r"\\\1", html.escape(flat, quote=True))


def code_block(text: str) -> str:
    """Text shown verbatim: an indented Markdown code block, which is never parsed."""
    return "\n".join("    " + line for line in text.splitlines())
