"""The shared hostile corpus (tests/fixtures/hostile.txt) and the rule each sink must keep.

Every checker returns the offending fragments (empty when the sink kept its rule), so a
failing assertion shows what got through.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timezone
from pathlib import Path

from ticketlint import safejson
from ticketlint.escaping import FORMULA_PREFIXES
from ticketlint.rules.engine import Finding

CORPUS_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "hostile.txt"
AS_OF = datetime(2026, 3, 31, tzinfo=timezone.utc)
SAFE_URL = "https://example.atlassian.net/browse/OPS-1"


def corpus() -> list[str]:
    """Every hostile string (one JSON string literal a line; ``#`` lines are comments),
    read the way ticket text reaches ticketlint: through its JSON parser (which turns a
    lone surrogate into U+FFFD, as connectors, files and serve do)."""
    out: list[str] = []
    for line in CORPUS_PATH.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            out.append(safejson.loads(line))
    return out


def hostile_finding(n: int, text: str, *, url: str | None = SAFE_URL) -> Finding:
    """A finding whose every ticket-derived field holds ``text``."""
    return Finding(
        code="CHG006",
        name="change-backout-plan",
        title="A change has a backout plan",
        severity="high",
        clause="8.5.1.3",
        source="jira-prod",
        key=f"OPS-{n}",
        process="change",
        url=url,
        message=f"change has no backout plan: {text}",
        assignee=text,
        group=text,
        fingerprint=f"fp-{n}",
        remediation="Write one.",
        evidence={"backout_plan": text},
        record_title=text,
        assignee_id=text,
        assignee_email=text,
        pack="iso20000",
    )


def hostile_findings(*, url: str | None = SAFE_URL) -> list[Finding]:
    return [hostile_finding(n, text, url=url) for n, text in enumerate(corpus(), start=1)]


# --- sink rules ---------------------------------------------------------------------------


def formula_cells(text: str) -> list[str]:
    """CSV cells a spreadsheet would run as a formula."""
    bad = []
    for row in csv.reader(io.StringIO(text, newline="")):
        for cell in row:
            if cell[:1] in ("\t", "\r", "\n") or cell.lstrip(" \u00a0\u3000")[:1] in (
                FORMULA_PREFIXES
            ):
                bad.append(cell[:60])
    return bad


_LIVE_MENTION = re.compile(r"(?<![\w\\\u2060])@(here|channel|all|everyone|U[0-9A-Z]+)\b")
_SLACK_LIKE = re.compile(r"<(!channel|!here|!everyone|@[UW][0-9A-Z]+|users/all)")
_MD_LINK = re.compile(r"(?<!\\)\[(?:[^\[\]\\\n]|\\.)*(?<!\\)\]\(")
_AUTOLINK = re.compile(r"(?i)(?<!\\)<(https?|javascript|mailto):")
_BARE_URL = re.compile(r"(?i)\b(https?|javascript)://|\bwww\.")


def live_mentions(text: str, *, angle_syntax: bool = True) -> list[str]:
    """``@here``-style mentions; with ``angle_syntax`` also Slack's ``<!channel>`` /
    ``<@U…>`` and Google Chat's ``<users/all>`` (inert on markdown platforms, where a
    backslashed ``\\<`` is literal text)."""
    found = [m.group(0) for m in _LIVE_MENTION.finditer(text)]
    if angle_syntax:
        found += [m.group(0) for m in _SLACK_LIKE.finditer(text)]
    return found


def markdown_links(text: str, *, allowed: tuple[str, ...] = ()) -> list[str]:
    """``[x](`` links, ``<scheme:`` autolinks and bare addresses not in ``allowed``."""
    for url in allowed:
        text = text.replace(url, "")
    found = [m.group(0) for m in _MD_LINK.finditer(text) if not m.group(0).startswith("[OPS-")]
    found += [m.group(0) for m in _AUTOLINK.finditer(text)]
    found += [m.group(0) for m in _BARE_URL.finditer(text)]
    return found


_TERMINAL_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def bare_links(text: str, *, allowed: tuple[str, ...] = ()) -> list[str]:
    """Addresses a client would turn into links by itself (``https://``, ``www.``)."""
    for url in allowed:
        text = text.replace(url, "")
    return [m.group(0) for m in _BARE_URL.finditer(text)]


_LIVE_HTML = re.compile(r"(?i)(?<!\\)<(script|img|a\s|svg|iframe)")


def live_html(text: str) -> list[str]:
    """HTML tags that a markdown renderer would pass through (unescaped ``<``)."""
    return [m.group(0) for m in _LIVE_HTML.finditer(text)]


def terminal_unsafe(text: str) -> list[str]:
    return [repr(m.group(0)) for m in _TERMINAL_UNSAFE.finditer(text)]
