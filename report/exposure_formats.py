"""The exposure table as text, JSON, markdown and CSV rows (pure functions, no I/O).

JSON: ``{"processes": {"change": {"population", "nonconforming", "unknown", "waived",
"sample", "exposure", "exposure_pessimistic", "fixes_to_target"}, ...}, "overall",
"target", ...}``; probabilities are the nearest double of the exact fraction. Text and
markdown show them as percentages (:func:`ticketlint.report.exposure.percent`).
Ticket-derived strings (keys, assignees, groups) are escaped for markdown tables.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from ticketlint.escaping import plain_text
from ticketlint.report.exposure import FORMULA, ExposureRow, ExposureTable, percent

FORMATS = ("text", "json", "markdown")
CSV_KEYS = (
    "scope",
    "name",
    "title",
    "population_N",
    "nonconforming_k",
    "unknown",
    "waived",
    "sample_n",
    "exposure",
    "exposure_pessimistic",
    "fixes_to_target",
    "exposure_after_fixes",
    "target",
    "formula",
)
FIX_CSV_KEYS = (
    "process",
    "rank",
    "source",
    "key",
    "severity",
    "created_at",
    "group",
    "assignee",
    "rules",
    "url",
)


def row_json(row: ExposureRow) -> dict[str, Any]:
    return {
        "population": row.population,
        "nonconforming": row.nonconforming,
        "unknown": row.unknown,
        "waived": row.waived,
        "sample": row.sample,
        "exposure": float(row.exposure),
        "exposure_pessimistic": float(row.pessimistic),
        "fixes_to_target": row.fixes,
    }


def fix_json(row: ExposureRow) -> list[dict[str, Any]]:
    return [
        {
            "group": group,
            "assignee": assignee,
            "records": [
                {
                    "source": r.source,
                    "key": r.key,
                    "severity": r.worst_severity,
                    "created_at": _iso(r),
                    "rules": sorted({f.code for f in r.failing}),
                    "url": r.url,
                }
                for r in records
            ],
        }
        for group, assignee, records in row.fix_groups()
    ]


def to_json(table: ExposureTable) -> dict[str, Any]:
    return {
        "processes": {r.name: row_json(r) for r in table.processes},
        "overall": float(table.overall),
        "target": float(table.target),
        "overall_pessimistic": float(table.overall_pessimistic),
        "overall_after_fixes": float(table.overall_after),
        "clauses": {r.name: {"title": r.title, **row_json(r)} for r in table.clauses},
        "fix_first": {r.name: fix_json(r) for r in table.processes if r.fix_first},
        "period": table.period,
        "formula": FORMULA,
    }


def _iso(r: Any) -> str | None:
    return r.created_at.isoformat().replace("+00:00", "Z") if r.created_at else None


def _fixes(row: ExposureRow) -> str:
    if not row.nonconforming or not row.fixes:
        return "0"
    return f"{row.fixes} → {percent(row.after_fixes)}"


def render_text(table: ExposureTable) -> str:
    head = ("", "N", "k", "unknown", "waived", "n", "exposure", "pessimistic", "fixes → after")
    lines = [
        f"Audit exposure, {table.period} (target under {percent(table.target)})",
        (
            f"{FORMULA}: the chance that a random sample of n of the N records holds at least "
            "one of the k nonconforming ones"
        ),
        "",
    ]

    def block(title: str, rows: list[ExposureRow]) -> list[str]:
        cells = [
            (
                r.name,
                str(r.population),
                str(r.nonconforming),
                str(r.unknown),
                str(r.waived),
                str(r.sample),
                percent(r.exposure),
                percent(r.pessimistic),
                _fixes(r),
            )
            for r in rows
        ]
        widths = [max(len(c[i]) for c in [(title, *head[1:]), *cells]) for i in range(len(head))]
        out = [
            "  ".join(
                (h.ljust(w) if i == 0 else h.rjust(w))
                for i, (h, w) in enumerate(zip((title, *head[1:]), widths, strict=True))
            ).rstrip()
        ]
        for c in cells:
            out.append(
                "  ".join(
                    (v.ljust(w) if i == 0 else v.rjust(w))
                    for i, (v, w) in enumerate(zip(c, widths, strict=True))
                ).rstrip()
            )
        return out

    if not table.processes:
        lines.append("No records in the period.")
    else:
        lines += block("process", table.processes)
        lines.append(
            f"overall: {percent(table.overall)} (pessimistic {percent(table.overall_pessimistic)},"
            f" after the fixes {percent(table.overall_after)})"
        )
    if table.clauses:
        lines += ["", *block("clause", table.clauses)]
    todo = [r for r in table.processes if r.fix_first]
    if todo:
        lines += ["", "Fix first (oldest high-severity first), by group and assignee:"]
        for r in todo:
            lines.append(f"  {r.name}: {r.fixes} of {r.nonconforming} records")
            for group, assignee, records in r.fix_groups():
                keys = ", ".join(f"{x.key} ({x.worst_severity})" for x in records)
                # ticket text never reaches the terminal raw (escape sequences, bidi)
                lines.append(plain_text(f"    {group} / {assignee}: {keys}"))
    lines += [f"note: {n}" for n in table.notes]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """A table cell: pipes, backslashes, markup and line breaks made literal."""
    out = text.replace("\\", "\\\\")
    for ch in "|*_`[]<>#~":
        out = out.replace(ch, "\\" + ch)
    return " ".join(out.split())


def _http(url: str | None) -> bool:
    """Only http(s) ticket links are written: a record cannot smuggle in ``javascript:``."""
    return bool(url) and urlsplit(url or "").scheme in ("http", "https")


def render_markdown(table: ExposureTable) -> str:
    lines = [
        f"## Audit exposure, {_md(table.period)}",
        "",
        f"`{FORMULA}`; target under {percent(table.target)}.",
        "",
    ]

    def block(title: str, rows: list[ExposureRow]) -> list[str]:
        out = [
            f"| {title} | N | k | unknown | waived | n | exposure | pessimistic | fixes to target |",
            "|---|--:|--:|--:|--:|--:|--:|--:|---|",
        ]
        for r in rows:
            name = _md(r.name) + (f" {_md(r.title)}" if r.title else "")
            out.append(
                f"| {name} | {r.population} | {r.nonconforming} | {r.unknown} | {r.waived} | "
                f"{r.sample} | {percent(r.exposure)} | {percent(r.pessimistic)} | {_fixes(r)} |"
            )
        return out

    if not table.processes:
        lines.append("No records in the period.")
    else:
        lines += block("process", table.processes)
        lines += [
            "",
            (
                f"Overall: **{percent(table.overall)}** (pessimistic "
                f"{percent(table.overall_pessimistic)}, after the fixes {percent(table.overall_after)})."
            ),
        ]
    if table.clauses:
        lines += ["", *block("clause", table.clauses)]
    todo = [r for r in table.processes if r.fix_first]
    if todo:
        lines += ["", "### Fix first", ""]
        for r in todo:
            for group, assignee, records in r.fix_groups():
                keys = ", ".join(
                    (
                        f"[{_md(x.key)}](<{(x.url or '').replace('>', '%3E')}>)"
                        if _http(x.url)
                        else _md(x.key)
                    )
                    + f" ({x.worst_severity})"
                    for x in records
                )
                lines.append(f"- {_md(r.name)}, {_md(group)} / {_md(assignee)}: {keys}")
    lines += [f"\n_Note: {_md(n)}_" for n in table.notes]
    return "\n".join(lines) + "\n"


def render(table: ExposureTable, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(to_json(table), indent=2, ensure_ascii=False) + "\n"
    if fmt == "markdown":
        return render_markdown(table)
    if fmt == "text":
        return render_text(table)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def csv_rows(table: ExposureTable) -> list[dict[str, Any]]:
    """The table as CSV rows (the evidence pack's ``exposure.csv``), probabilities with
    six decimals, the formula on every row so a row read alone still says what it is."""
    rows = []
    for scope, items in (("process", table.processes), ("clause", table.clauses)):
        for r in items:
            rows.append(
                {
                    "scope": scope,
                    "name": r.name,
                    "title": r.title,
                    "population_N": r.population,
                    "nonconforming_k": r.nonconforming,
                    "unknown": r.unknown,
                    "waived": r.waived,
                    "sample_n": r.sample,
                    "exposure": f"{float(r.exposure):.6f}",
                    "exposure_pessimistic": f"{float(r.pessimistic):.6f}",
                    "fixes_to_target": r.fixes,
                    "exposure_after_fixes": f"{float(r.after_fixes):.6f}",
                    "target": f"{float(table.target):.6f}",
                    "formula": FORMULA,
                }
            )
    rows.append(
        {
            "scope": "overall",
            "name": "all processes",
            "title": "1 - product over processes of (1 - P)",
            "exposure": f"{float(table.overall):.6f}",
            "exposure_pessimistic": f"{float(table.overall_pessimistic):.6f}",
            "exposure_after_fixes": f"{float(table.overall_after):.6f}",
            "target": f"{float(table.target):.6f}",
            "formula": "1 - prod(1 - P_process)",
        }
    )
    return rows


def fix_csv_rows(table: ExposureTable) -> list[dict[str, Any]]:
    return [
        {
            "process": r.name,
            "rank": i + 1,
            "source": x.source,
            "key": x.key,
            "severity": x.worst_severity,
            "created_at": _iso(x),
            "group": x.group,
            "assignee": x.assignee,
            "rules": " ".join(sorted({f.code for f in x.failing})),
            "url": x.url,
        }
        for r in table.processes
        for i, x in enumerate(r.fix_first)
    ]
