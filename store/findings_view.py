"""How stored findings are shown: ``ticketlint findings`` lists and ``findings show``.

Pure functions from rows to text. The list formats carry the stable finding keys of
``check`` (``code``, ``name``, ``severity``, ``clause``, ``source``, ``key``, ``process``,
``url``, ``message``, ``assignee``, ``group``, ``fingerprint``) plus the lifecycle:
``id``, ``state``, ``first_seen``, ``last_seen``, ``resolved_at``, ``resolution``,
``reopened`` and ``waiver``. (``report/formats.py`` renders a check run, not stored rows.)
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from ticketlint.escaping import csv_row, link_url, markdown_text, plain_text
from ticketlint.rules.engine import STABLE_FINDING_KEYS
from ticketlint.rules.registry import SEVERITIES, SEVERITY_RANK
from ticketlint.store.models import FindingEventRow, FindingRow, RecordRow

FORMATS = ("text", "json", "jsonl", "csv", "markdown")
KEYS = (
    "id",
    "state",
    *STABLE_FINDING_KEYS,
    "first_seen",
    "last_seen",
    "resolved_at",
    "resolution",
    "reopened",
    "waiver",
    "remediation",
    "evidence",
)


def iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if value else None


def finding_view(row: FindingRow) -> dict[str, Any]:
    d = row.detail or {}
    return {
        "id": row.id,
        "state": row.state,
        "code": row.rule,
        "name": d.get("name"),
        "title": d.get("title"),
        "severity": row.severity,
        "clause": d.get("clause"),
        "source": row.source,
        "key": row.key,
        "process": row.process,
        "url": row.url,
        "message": row.message,
        "assignee": row.assignee,
        "group": row.group,
        "fingerprint": row.fingerprint,
        "first_seen": iso(row.first_seen),
        "last_seen": iso(row.last_seen),
        "resolved_at": iso(row.resolved_at),
        "resolution": row.resolution,
        "reopened": row.reopened,
        "waiver": row.waiver,
        "remediation": d.get("remediation"),
        "evidence": row.evidence,
    }


def _ordered(rows: Sequence[FindingRow]) -> list[FindingRow]:
    return sorted(rows, key=lambda r: (-SEVERITY_RANK.get(r.severity, 0), r.source, r.key, r.rule))


def render_findings(rows: Sequence[FindingRow], fmt: str) -> str:
    views = [finding_view(r) for r in _ordered(rows)]
    if fmt == "json":
        return (
            json.dumps({"findings": views, "count": len(views)}, indent=2, ensure_ascii=False)
            + "\n"
        )
    if fmt == "jsonl":
        return "".join(
            json.dumps(v, ensure_ascii=False, separators=(",", ":")) + "\n" for v in views
        )
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(KEYS)
        for v in views:
            v["evidence"] = json.dumps(v["evidence"], ensure_ascii=False, sort_keys=True)
            writer.writerow(csv_row(v[k] for k in KEYS))
        return out.getvalue()
    if fmt == "markdown":
        lines = [
            "| id | state | severity | rule | source | key | assignee | message |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for v in views:
            href = link_url(v["url"])
            key = f"[{markdown_text(v['key'])}]({href})" if href else markdown_text(v["key"])
            cells = [
                markdown_text(v["id"]),
                markdown_text(v["state"]),
                markdown_text(v["severity"]),
                markdown_text(v["code"]),
                markdown_text(v["source"]),
                key,
                markdown_text(v["assignee"]),
                markdown_text(v["message"]),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"
    if fmt != "text":
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not views:
        return "No findings.\n"
    lines = []
    for v in views:
        extra = (
            f" [{v['state']}{' by ' + v['waiver'] if v['waiver'] else ''}]"
            if v["state"] != "open"
            else ""
        )
        people = [p for p in (v["assignee"], v["group"]) if p]
        who = f" ({', '.join(people)})" if people else " (unassigned)"
        lines.append(
            plain_text(
                f"{v['id']:>5}  {v['severity']:<8} {v['code']:<7} {v['source']}/{v['key']}{who}: "
                f"{v['message']}{extra}"
            )
        )
        if v["url"]:
            lines.append(f"{'':>5}  {v['url']}")
    by_sev = Counter(v["severity"] for v in views)
    parts = [f"{by_sev[s]} {s}" for s in reversed(SEVERITIES) if by_sev[s]]
    lines += ["", f"{len(views)} findings ({', '.join(parts)})"]
    return "\n".join(lines) + "\n"


def render_show(
    row: FindingRow, events: Sequence[FindingEventRow], record: RecordRow | None
) -> str:
    v = finding_view(row)
    lines = [
        f"Finding {v['id']}  {v['fingerprint']}",
        f"  rule:        {v['code']} {v['name'] or ''} ({v['severity']}, clause {v['clause'] or '?'})",
        f"  title:       {v['title'] or ''}",
        f"  state:       {v['state']}"
        + (f" (waiver {v['waiver']})" if v["waiver"] else "")
        + (
            f" since {v['resolved_at']}: {v['resolution']}"
            if v["state"] in ("resolved", "gone")
            else ""
        ),
        f"  record:      {v['source']} {v['key']} ({v['process']})"
        + (f"  {v['url']}" if v["url"] else ""),
        f"  assignee:    {v['assignee'] or '-'}    group: {v['group'] or '-'}",
        f"  first seen:  {v['first_seen']}    last seen: {v['last_seen']}    reopened: {v['reopened']}",
        f"  message:     {v['message']}",
    ]
    if v["remediation"]:
        lines.append(f"  remediation: {v['remediation']}")
    if record is not None:
        data = record.data or {}
        lines.append(
            f"  ticket:      {data.get('title') or ''} [state {data.get('state') or '?'}, "
            f"updated {iso(record.updated_at) or '?'}]"
            + ("  DELETED at the source" if record.deleted else "")
        )
    lines.append("  evidence:")
    lines += [
        "    " + line
        for line in json.dumps(
            v["evidence"], indent=2, sort_keys=True, ensure_ascii=False
        ).splitlines()
    ]
    lines.append("  history:")
    for e in events:
        run = f" (run {e.run_id})" if e.run_id else ""
        lines.append(f"    {iso(e.at)}  {e.kind:<9}{run}" + (f"  {e.detail}" if e.detail else ""))
    # Ticket text never reaches the terminal raw: no escape sequence, no bidi override.
    return "\n".join(plain_text(line) for line in lines) + "\n"
