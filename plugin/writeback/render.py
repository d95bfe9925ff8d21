"""What write-back puts on a ticket: the comment / work note text, its ADF form and the marker.

Every text ends with a marker line, ``[ticketlint-writeback r<rev> <digest12>]``. The
digest names the exact set of open findings the text describes, so reading a ticket's
comment or journal tells what was last written there (crash recovery compares it with
what should be there). Jira Cloud (REST v3) takes comment bodies as Atlassian Document
Format; Data Center (REST v2) and ServiceNow take plain text.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ticketlint.escaping import adf_text, jira_wiki_text, journal_text
from ticketlint.mapping.common import WRITEBACK_MARKER

MARKER_PREFIX = WRITEBACK_MARKER
MARKER_RE = re.compile(r"\[" + MARKER_PREFIX + r" r(?P<rev>\d+) (?P<digest>[0-9a-f]{12})\]")
EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()
"""The digest of "no open findings" (the resolved state)."""
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


@dataclass(frozen=True)
class OpenFinding:
    """What a comment says about one open finding."""

    fingerprint: str
    code: str
    name: str
    severity: str
    message: str
    remediation: str

    @classmethod
    def from_detail(
        cls,
        fingerprint: str,
        detail: dict[str, Any],
        *,
        code: str = "",
        severity: str = "",
        message: str = "",
    ) -> OpenFinding:
        """From a stored finding's ``detail`` (the engine's Finding as a dict)."""
        return cls(
            fingerprint=fingerprint,
            code=str(detail.get("code") or code),
            name=str(detail.get("title") or detail.get("name") or ""),
            severity=str(detail.get("severity") or severity),
            message=str(detail.get("message") or message),
            remediation=str(detail.get("remediation") or ""),
        )


def digest(fingerprints: Iterable[str]) -> str:
    """The identity of a set of open findings: sha256 of the sorted fingerprints."""
    return hashlib.sha256("\n".join(sorted(set(fingerprints))).encode()).hexdigest()


def marker(rev: int, set_digest: str) -> str:
    return f"[{MARKER_PREFIX} r{rev} {set_digest[:12]}]"


def read_marker(text: str) -> tuple[int, str] | None:
    """(rev, digest12) of the last marker in ``text``, or None when it holds none."""
    found = list(MARKER_RE.finditer(text or ""))
    if not found:
        return None
    m = found[-1]
    return int(m.group("rev")), m.group("digest")


def ordered(findings: Sequence[OpenFinding]) -> list[OpenFinding]:
    return sorted(
        findings, key=lambda f: (SEVERITY_ORDER.get(f.severity, 9), f.code, f.fingerprint)
    )


def _one_line(text: str) -> str:
    return " ".join((text or "").split())


def lines(
    key: str, findings: Sequence[OpenFinding], rev: int, set_digest: str
) -> list[tuple[str, str]]:
    """The text as (kind, text) lines: ``head``, ``item`` (one per finding), ``fix`` or ``marker``."""
    out: list[tuple[str, str]] = []
    if not findings:
        out.append(("head", f"ticketlint: every finding on {key} is resolved. Thank you!"))
    else:
        n = len(findings)
        out.append(
            (
                "head",
                (
                    f"ticketlint: {key} has {n} open finding{'s' if n != 1 else ''} "
                    "(this note is updated when they change):"
                ),
            )
        )
        for f in ordered(findings):
            out.append(("item", f"{f.code} {f.name} ({f.severity}): {_one_line(f.message)}"))
            if f.remediation:
                out.append(("fix", f"How to fix: {_one_line(f.remediation)}"))
    out.append(
        ("marker", f"{marker(rev, set_digest)} written by ticketlint; edits here are overwritten.")
    )
    return out


def plain_text(
    key: str,
    findings: Sequence[OpenFinding],
    rev: int,
    set_digest: str,
    *,
    markup: str = "journal",
) -> str:
    """Jira Data Center (``markup="wiki"``) and ServiceNow work note (``"journal"``) text.
    Ticket text is escaped for that markup; the marker line is ours and stays as is."""
    escape = jira_wiki_text if markup == "wiki" else journal_text
    rendered = []
    for kind, text in lines(key, findings, rev, set_digest):
        shown = text if kind == "marker" else escape(text)
        rendered.append({"item": f"* {shown}", "fix": f"  {shown}"}.get(kind, shown))
    return "\n".join(rendered)


def adf(key: str, findings: Sequence[OpenFinding], rev: int, set_digest: str) -> dict[str, Any]:
    """The same text as an Atlassian Document Format document (Jira Cloud REST v3)."""
    content: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for kind, text in lines(key, findings, rev, set_digest):
        if kind == "item":
            code, _, rest = text.partition(" ")
            items.append(
                {
                    "type": "listItem",
                    "content": [
                        {
                            "type": "paragraph",
                            "content": [
                                {"type": "text", "text": code, "marks": [{"type": "strong"}]},
                                {"type": "text", "text": " " + adf_text(rest)},
                            ],
                        }
                    ],
                }
            )
        elif kind == "fix":
            items[-1]["content"].append(
                {
                    "type": "paragraph",
                    "content": [
                        {"type": "text", "text": adf_text(text), "marks": [{"type": "em"}]}
                    ],
                }
            )
        else:
            if items:
                content.append({"type": "bulletList", "content": items})
                items = []
            para: dict[str, Any] = {
                "type": "text",
                "text": text if kind == "marker" else adf_text(text),
            }
            if kind == "marker":  # small print: grey, so people read past it
                para["marks"] = [{"type": "textColor", "attrs": {"color": "#97a0af"}}]
            content.append({"type": "paragraph", "content": [para]})
    return {"type": "doc", "version": 1, "content": content}
