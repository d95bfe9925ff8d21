"""Atlassian Document Format (Jira Cloud REST v3 rich text) to plain text.

Jira Cloud v3 returns comment bodies, descriptions and multi-line text custom fields
("Backout plan", "Resolution notes", ...) as ADF documents; v2 and Data Center return
plain strings. Rules only need to know whether there is text and show a snippet of it,
so this walks the node tree and keeps the words: block nodes end a line, inline nodes
(text, mentions, emoji, links, status lozenges, dates) contribute their text. A document
holding only empty paragraphs becomes ``""``, which the model reads as empty.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

# Nodes whose children form one line each (their text ends with a newline).
_BLOCKS = frozenset(
    {
        "paragraph",
        "heading",
        "codeBlock",
        "blockquote",
        "listItem",
        "panel",
        "tableCell",
        "tableHeader",
        "expand",
        "nestedExpand",
        "taskItem",
        "decisionItem",
        "mediaSingle",
        "blockCard",
        "rule",
        "layoutColumn",
    }
)


def is_adf(value: Any) -> bool:
    """True for an ADF document (``{"type": "doc", "content": [...]}``)."""
    return isinstance(value, dict) and value.get("type") == "doc" and "content" in value


def adf_to_text(doc: Any) -> str:
    """Plain text of an ADF document (or node); lines joined with ``\\n``, ends stripped."""
    parts = _simple_parts(doc)
    if parts is None:
        parts = []
        _walk(doc, parts)
    elif len(parts) == 2 and "\n" not in parts[0]:
        return parts[0].strip()  # one line of text: what the general path below yields
    lines = [line.rstrip() for line in "".join(parts).split("\n")]
    # Keep paragraph structure but drop the empty lines that empty paragraphs leave.
    return "\n".join(line for line in lines if line.strip()).strip()


def _simple_parts(doc: Any) -> list[str] | None:
    """The pieces :func:`_walk` would collect, for the common document made of
    paragraphs holding only text nodes; None for anything else (then ``_walk`` runs).
    Most fields and comment bodies have this shape, and the recursion costs more than
    the text."""
    if not isinstance(doc, dict) or doc.get("type") != "doc":
        return None
    content = doc.get("content")
    if content.__class__ is not list:
        return None
    parts: list[str] = []
    for para in content:
        if para.__class__ is not dict or para.get("type") != "paragraph":
            return None
        children = para.get("content")
        if children is not None:
            if children.__class__ is not list:
                return None
            for child in children:
                if child.__class__ is not dict or child.get("type") != "text":
                    return None
                text = child.get("text")
                if isinstance(text, str):
                    parts.append(text)
        parts.append("\n")
    return parts


def _walk(node: Any, out: list[str]) -> None:
    if isinstance(node, list):
        for child in node:
            _walk(child, out)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind == "text":
        text = node.get("text")
        if isinstance(text, str):
            out.append(text)
        return
    if kind == "hardBreak":
        out.append("\n")
        return
    attrs = node.get("attrs")
    inline = _inline_text(kind, attrs if isinstance(attrs, dict) else {})
    if inline is not None:
        out.append(inline)
        return
    _walk(node.get("content"), out)
    if kind in _BLOCKS:
        out.append("\n")


def _inline_text(kind: Any, attrs: dict[str, Any]) -> str | None:
    """Text of an inline node that carries its text in ``attrs``; None for other nodes."""
    if kind == "mention":
        return str(attrs.get("text") or "")
    if kind == "emoji":
        return str(attrs.get("text") or attrs.get("shortName") or "")
    if kind in ("inlineCard", "blockCard", "embedCard"):
        url = attrs.get("url")
        return f"{url}\n" if kind != "inlineCard" and url else str(url or "")
    if kind == "status":
        return str(attrs.get("text") or "")
    if kind == "date":
        stamp = attrs.get("timestamp")
        if not isinstance(stamp, (str, int, float)):
            return ""
        try:
            return datetime.fromtimestamp(int(stamp) / 1000, tz=timezone.utc).date().isoformat()
        except (TypeError, ValueError, OverflowError, OSError):
            return ""
    return None
