"""Unified diffs of node scripts and specs as pages show them: each line classed (head,
hunk, add, del, ctx) for its colour. The node page's version diff and the restore
diff both use them."""

import difflib
import json
from collections.abc import Iterable
from typing import Any


def content_text(content: Any) -> str:
    """A node's content as text: a script as it is; an http node's request as indented
    JSON, one key a line, so a changed header reads as one changed line."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    return json.dumps(content, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def unified_diff(before: list[str], after: list[str], *, fromfile: str, tofile: str) -> list[str]:
    return list(
        difflib.unified_diff(before, after, fromfile=fromfile, tofile=tofile, lineterm="", n=3)
    )


def line_kind(line: str) -> str:
    if line.startswith(("---", "+++")):
        return "head"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    return "ctx"


def classified(lines: Iterable[str]) -> list[dict]:
    """[{"kind", "text"}] for each line of a unified diff."""
    return [{"kind": line_kind(line), "text": line} for line in lines]
