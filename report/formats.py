"""Output formats of ``ticketlint check`` and ``ticketlint rules``: pure functions to text.

Every formatter takes a :class:`CheckResult` (or rules) and returns a string; nothing here
reads a clock, a file or the terminal, so the same input always renders the same bytes
(the snapshot tests depend on it). Colour is a parameter of the text format, decided by
the caller (TTY and ``NO_COLOR``).

Stable interface (docs/cli.md): the finding keys of ``json`` / ``jsonl`` / ``csv``
(:data:`FINDING_KEYS`) and the top-level keys of ``json``
(``findings``, ``summary``, ``not_evaluated``).

Records not checked (settled readings 17 and 21: mapping errors such as a record
without identity, and records skipped because their type maps to no process) are listed
with key and reason in every format but ``csv``: ``json`` in a top-level ``not_checked``
array, ``jsonl`` in one last line ``{"not_checked": [...]}`` (only when there are any),
``junit`` as errors of a ``mapping`` suite, ``text`` and ``markdown`` in a section with
the first :data:`LISTED_UNCHECKED` and the count. ``csv`` carries findings only (the CLI
lists those records on stderr). Fields that could not be read (the records were still
checked) are counted per field and reason in the summary of every format but ``csv``.
"""

from __future__ import annotations

import csv
import io
import json
import operator
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ticketlint.connectors.base import DoctorCheck, DoctorReport
from ticketlint.escaping import csv_row, link_url, markdown_text, plain_text, xml_text
from ticketlint.mapping.common import MappingReport, gc_paused
from ticketlint.rules.engine import STABLE_FINDING_KEYS, Evaluation, Finding
from ticketlint.rules.outcome import Status
from ticketlint.rules.registry import SEVERITIES, SEVERITY_RANK, Rule

FORMATS: tuple[str, ...] = ("text", "json", "jsonl", "csv", "junit", "markdown")
RULE_FORMATS: tuple[str, ...] = ("text", "json", "markdown")

FINDING_KEYS: tuple[str, ...] = (
    *STABLE_FINDING_KEYS,
    "remediation",
    "record_title",
    "assignee_id",
    "assignee_email",
    "pack",
    "evidence",
)
"""The keys of one finding in ``json``, ``jsonl`` and ``csv``, in this order."""

STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
LISTED_UNCHECKED = 20
"""How many records not checked the text and markdown formats list before the count."""
_SEVERITY_COLOUR = {
    "critical": "magenta",
    "high": "red",
    "medium": "yellow",
    "low": "cyan",
    "info": "blue",
}


@dataclass
class CheckResult:
    """Everything one ``check`` run produced, ready to render."""

    evaluation: Evaluation
    report: MappingReport = field(default_factory=MappingReport)
    sources: list[str] = field(default_factory=list)
    finding_texts: FindingTexts | None = None
    """``json``'s text of findings written while the workers still checked records."""


# --- shared pieces --------------------------------------------------------------------


def iso(value: datetime) -> str:
    """UTC ISO 8601 with a ``Z`` (how every format writes instants)."""
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def sorted_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Severity (highest first), then source, key and code: the order of every list."""
    return sorted(findings, key=lambda f: (-SEVERITY_RANK[f.severity], f.source, f.key, f.code))


def finding_dict(finding: Finding) -> dict[str, Any]:
    """The finding's :data:`FINDING_KEYS`, read straight off it (its evidence is plain JSON
    values already, and no format changes it in place: no deep copy is needed)."""
    return {key: getattr(finding, key, None) for key in FINDING_KEYS}


def summary_dict(result: CheckResult) -> dict[str, Any]:
    """Counts of the run: the ``summary`` object of ``json``."""
    ev, report = result.evaluation, result.report
    severities = ev.severity_counts()
    rules: dict[str, Any] = {}
    for r in sorted(ev.rules, key=lambda r: r.code):
        counts = ev.counts.get(r.code, Counter())
        conformity = ev.conformity(r.code)
        rules[r.code] = {
            **{status: counts.get(status, 0) for status in STATUSES},
            "conformity": None if conformity is None else round(conformity, 4),
        }
    mapping = report.to_dict()
    return {
        "as_of": iso(ev.as_of),
        "sources": sorted(result.sources),
        "records": ev.records,
        "rules_selected": len(ev.rules),
        "findings": len(ev.findings),
        "by_severity": {sev: severities.get(sev, 0) for sev in reversed(SEVERITIES)},
        "rules": rules,
        "mapping": {
            "rows": mapping["rows"],
            "mapped": mapping["mapped"],
            "skipped_empty": mapping["skipped_empty"],
            "warnings": mapping["warnings"],
        },
        "mapping_errors": sorted(
            mapping["errors"], key=lambda e: (e["source"], e["key"] or "", e["reason"])
        ),
        "unknown_statuses": mapping["unknown_statuses"],
        "unreadable": mapping["unreadable"],
        "not_checked": len(report.not_checked()),
        "rule_errors": list(ev.rule_errors),
    }


def not_evaluated_dict(ev: Evaluation) -> dict[str, dict[str, int]]:
    return {
        code: dict(sorted(reasons.items()))
        for code, reasons in sorted(ev.not_evaluated.items())
        if sum(reasons.values())
    }


# --- the formats ----------------------------------------------------------------------


def render_json(result: CheckResult) -> str:
    """``json.dumps(payload, indent=2)``, the findings encoded one at a time by
    :func:`indented_json`: the standard encoder indents in pure Python (its C encoder
    only writes compact text), half as fast, and holds millions of small pieces of text
    before joining them (five times the output's size at 40,000 findings). One process:
    encoding on forked workers cost more in forking and sending the text back than it
    saved."""
    payload = {
        "findings": [],
        "summary": summary_dict(result),
        "not_evaluated": not_evaluated_dict(result.evaluation),
        "not_checked": result.report.not_checked(),
    }
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    findings = sorted_findings(result.evaluation.findings)
    if not findings:
        return text + "\n"
    head = '{\n  "findings": ['
    assert text.startswith(head + "],")  # "findings" is the first key
    write = result.finding_texts.take if result.finding_texts is not None else _finding_json
    items = [write(f) for f in findings]
    # One join of the whole text: the head and the rest ride on the first and last items
    # (joining the items first, then the parts, copied the findings' text twice).
    items[0] = head + "\n    " + items[0]
    items[-1] = items[-1] + "\n  ]" + text[len(head) + 1 :] + "\n"
    return ",\n    ".join(items)


def indented_json(value: Any, newline: str = "\n") -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False)`` with every line break followed
    by ``newline``'s indentation, for values made of dicts with string keys, lists,
    tuples, strings, numbers, booleans and None: strings are escaped by the C encoder and
    the rest written here in one recursion (tests compare it with ``json.dumps`` on
    generated values). Anything else falls back to ``json.dumps`` itself."""
    try:
        return _indented(value, newline)
    except _NotPlain:
        return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", newline)


def _finding_json(finding: Finding) -> str:
    """``indented_json(finding_dict(finding), "\\n    ")`` (an item of ``findings``), its
    keys' text written once for all findings: most values are strings or None."""
    try:
        values = _finding_values(finding)
    except AttributeError:  # a key the finding lacks is null: finding_dict's reading
        values = tuple(getattr(finding, key, None) for key in FINDING_KEYS)
    parts = []
    try:
        for prefix, value in zip(_FINDING_ITEM_PREFIXES, values, strict=True):
            if value.__class__ is str:
                parts.append(prefix + _encode_string(value))
            elif value is None:
                parts.append(prefix + "null")
            else:
                parts.append(prefix + _indented(value, "\n      "))
    except _NotPlain:
        return indented_json(finding_dict(finding), "\n    ")
    return "{\n      " + ",\n      ".join(parts) + "\n    }"


class FindingTexts:
    """Findings written as items of ``json``'s ``findings`` list ahead of the render:
    ``check --input`` writes each task's findings as they come back from the workers,
    while the workers go on (the main process waits on them otherwise, and the render at
    the end runs on one core). :func:`render_json` takes each finding's text, or writes
    it then. The findings must not change in between (no part of a check changes one)."""

    def __init__(self) -> None:
        self._texts: dict[int, tuple[Finding, str]] = {}

    def add(self, findings: Iterable[Finding]) -> None:
        texts = self._texts
        for finding in findings:
            # The finding is kept with its text: its id names no other object meanwhile.
            texts[id(finding)] = (finding, _finding_json(finding))

    def take(self, finding: Finding) -> str:
        """The finding's text, written ahead or now (and forgotten here)."""
        entry = self._texts.pop(id(finding), None)
        if entry is not None and entry[0] is finding:
            return entry[1]
        return _finding_json(finding)


class _NotPlain(Exception):
    """A value :func:`_indented` leaves to ``json.dumps`` (a non-string key, a subclass)."""


_encode_string = json.encoder.encode_basestring


def _indented(value: Any, newline: str) -> str:
    kind = value.__class__
    if kind is str:
        return _encode_string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        if value != value:
            return "NaN"
        if value in (_INFINITY, -_INFINITY):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    inner = newline + "  "
    if kind is dict:
        if not value:
            return "{}"
        parts = []
        for key, item in value.items():
            if key.__class__ is not str:
                raise _NotPlain
            parts.append(_encode_string(key) + ": " + _indented(item, inner))
        return "{" + inner + ("," + inner).join(parts) + newline + "}"
    if kind is list or kind is tuple:
        if not value:
            return "[]"
        return (
            "[" + inner + ("," + inner).join([_indented(v, inner) for v in value]) + newline + "]"
        )
    raise _NotPlain


_INFINITY = float("inf")
_FINDING_ITEM_PREFIXES = tuple(_encode_string(key) + ": " for key in FINDING_KEYS)
_finding_values = operator.attrgetter(*FINDING_KEYS)


def render_jsonl(result: CheckResult) -> str:
    lines = [
        json.dumps(finding_dict(f), ensure_ascii=False, separators=(",", ":"))
        for f in sorted_findings(result.evaluation.findings)
    ]
    unchecked = result.report.not_checked()
    if unchecked:  # one last line, so a reader of findings can tell it apart by its key
        lines.append(
            json.dumps({"not_checked": unchecked}, ensure_ascii=False, separators=(",", ":"))
        )
    return "".join(line + "\n" for line in lines)


def render_csv(result: CheckResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FINDING_KEYS)
    for f in sorted_findings(result.evaluation.findings):
        row = finding_dict(f)
        row["evidence"] = json.dumps(row["evidence"], ensure_ascii=False, sort_keys=True)
        writer.writerow(csv_row(row[k] for k in FINDING_KEYS))
    return out.getvalue()


def render_junit(result: CheckResult) -> str:
    """One testsuite per rule: a failing testcase per finding and one passing case that
    counts the rest; a ``mapping`` suite holds the records that could not be mapped."""
    ev = result.evaluation
    by_rule: dict[str, list[Finding]] = defaultdict(list)
    for f in sorted_findings(ev.findings):
        by_rule[f.code].append(f)
    root = ET.Element("testsuites", name="ticketlint")
    total_tests = total_failures = 0
    for r in sorted(ev.rules, key=lambda r: r.code):
        counts = ev.counts.get(r.code, Counter())
        failures = by_rule.get(r.code, [])
        suite = ET.SubElement(
            root,
            "testsuite",
            name=f"{r.code} {r.name}",
            tests=str(len(failures) + 1),
            failures=str(len(failures)),
            errors="0",
            skipped="0",
        )
        for f in failures:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"ticketlint.{f.code}",
                name=xml_text(f"{f.source}/{f.key}"),
            )
            failure = ET.SubElement(case, "failure", message=xml_text(f.message), type=f.severity)
            failure.text = xml_text(_finding_details(f))
        ET.SubElement(
            suite,
            "testcase",
            classname=f"ticketlint.{r.code}",
            name=(
                f"{counts.get('PASS', 0)} passed, {counts.get('NOT_APPLICABLE', 0)} not applicable, "
                f"{counts.get('NOT_EVALUATED', 0)} not evaluated"
            ),
        )
        total_tests += len(failures) + 1
        total_failures += len(failures)
    errors = result.report.not_checked()
    if errors:
        suite = ET.SubElement(
            root,
            "testsuite",
            name="mapping",
            tests=str(len(errors)),
            failures="0",
            errors=str(len(errors)),
            skipped="0",
        )
        for e in errors:
            case = ET.SubElement(
                suite,
                "testcase",
                classname="ticketlint.mapping",
                name=xml_text(f"{e['source']}/{e['key'] or '(no key)'}"),
            )
            kind = "mapping-error" if e["kind"] == "error" else "skipped-record"
            ET.SubElement(case, "error", message=xml_text(e["reason"]), type=kind)
        total_tests += len(errors)
    root.set("tests", str(total_tests))
    root.set("failures", str(total_failures))
    root.set("errors", str(len(errors)))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _finding_details(f: Finding) -> str:
    lines = [f"{f.code} {f.name} ({f.severity}, clause {f.clause})", f.message]
    if f.url:
        lines.append(f"link: {f.url}")
    who = _who(f)
    if who:
        lines.append(f"fix: {who}")
    if f.remediation:
        lines.append(f"remediation: {f.remediation}")
    return "\n".join(lines)


def _who(f: Finding) -> str:
    if f.assignee and f.group:
        return f"{f.assignee} ({f.group})"
    return f.assignee or (f"group {f.group}" if f.group else "")


def _md(text: Any) -> str:
    """A markdown table cell: no pipes or newlines breaking the table, no link, mention
    or HTML from ticket text (:func:`ticketlint.escaping.markdown_text`)."""
    return markdown_text(text)


def _trusted_cell(text: str) -> str:
    """A table cell of ticketlint's own text (rule titles): pipes and newlines only."""
    return " ".join(text.split()).replace("|", "\\|")


def _md_record(key: Any, url: Any) -> str:
    """The record's key, linked to its URL when that is an http(s) address."""
    href = link_url(url)
    return f"[{_md(key)}]({href})" if href else _md(key)


def render_markdown(result: CheckResult) -> str:
    ev = result.evaluation
    summary = summary_dict(result)
    lines = ["# ticketlint check", ""]
    lines.append(
        f"{_n(summary['records'], 'record')}, {_n(summary['rules_selected'], 'rule')}, as of {summary['as_of']}: "
        f"**{_count_phrase(summary['by_severity'], summary['findings'])}**."
    )
    lines.append("")
    if ev.findings:
        lines += [
            "| Severity | Code | Record | Message | Assignee | Group |",
            "|---|---|---|---|---|---|",
        ]
        for f in sorted_findings(ev.findings):
            record = _md_record(f.key, f.url)
            lines.append(
                f"| {f.severity} | {f.code} {_md(f.name)} | {_md(f.source)}/{record} | {_md(f.message)} "
                f"| {_md(f.assignee)} | {_md(f.group)} |"
            )
        lines.append("")
    not_eval = not_evaluated_dict(ev)
    if not_eval:
        lines += ["## Not evaluated", "", "| Code | Reason | Records |", "|---|---|---|"]
        for code, reasons in not_eval.items():
            lines += [f"| {code} | {_md(reason)} | {n} |" for reason, n in reasons.items()]
        lines.append("")
    unchecked = result.report.not_checked()
    if unchecked:
        lines += [
            f"## Not checked ({_n(len(unchecked), 'record')})",
            "",
            "| Source | Key | Kind | Reason |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {_md(e['source'])} | {_md(e['key'] or '(no key)')} | {e['kind']} | {_md(e['reason'])} |"
            for e in unchecked[:LISTED_UNCHECKED]
        ]
        if len(unchecked) > LISTED_UNCHECKED:
            lines += ["", f"... and {len(unchecked) - LISTED_UNCHECKED} more (all in -f json)."]
        lines.append("")
    if summary["unreadable"]:
        lines += [
            "## Values that could not be read (field unknown, record checked)",
            "",
            "| Field | Reason | Records |",
            "|---|---|---|",
        ]
        lines += [
            f"| {_md(u['field'])} | {_md(u['reason'])} | {u['count']} |"
            for u in summary["unreadable"]
        ]
        lines.append("")
    if summary["unknown_statuses"]:
        lines += ["## Unknown statuses", "", "| Process | Status | Records |", "|---|---|---|"]
        lines += [
            f"| {u['process']} | {_md(u['status'])} | {u['count']} |"
            for u in summary["unknown_statuses"]
        ]
        lines.append("")
    if summary["rule_errors"]:
        lines += ["## Rule errors", ""] + [f"- {_md(e)}" for e in summary["rule_errors"]] + [""]
    return "\n".join(lines)


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _count_phrase(by_severity: dict[str, int], total: int) -> str:
    if not total:
        return "no findings"
    parts = [f"{n} {sev}" for sev, n in by_severity.items() if n]
    return f"{total} finding{'s' if total != 1 else ''} ({', '.join(parts)})"


def render_text(result: CheckResult, *, color: bool = False) -> str:
    """Findings grouped by record, like ruff groups by file; then the counts."""
    ev = result.evaluation
    summary = summary_dict(result)

    def style(text: str, **kw: Any) -> str:
        if not color:
            return text
        import click  # only the text format on a terminal needs it

        return click.style(text, **kw)

    groups: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for f in ev.findings:
        groups[(f.source, f.key)].append(f)
    lines: list[str] = []
    for (source, key), findings in sorted(groups.items()):
        findings.sort(key=lambda f: (-SEVERITY_RANK[f.severity], f.code))
        first = findings[0]
        # Ticket text never reaches the terminal raw: no escape sequence, no bidi override.
        head = style(plain_text(f"{source}/{key}"), bold=True)
        if first.record_title:
            head += f"  {plain_text(first.record_title)}"
        lines.append(head)
        who = plain_text(_who(first))
        lines.append(f"  fix: {who or 'unassigned'}")
        if first.url:
            url = plain_text(first.url)
            lines.append(f"  {style(url, underline=True) if color else url}")
        for f in findings:
            sev = style(f"{f.severity:<8}", fg=_SEVERITY_COLOUR.get(f.severity), bold=True)
            lines.append(f"  {sev} {style(f.code, bold=True)} {plain_text(f.message)}  [{f.name}]")
        lines.append("")
    lines.append(
        f"{_count_phrase(summary['by_severity'], summary['findings']).capitalize()} in "
        f"{len(groups)} of {_n(summary['records'], 'record')} "
        f"({_n(summary['rules_selected'], 'rule')}, as of {summary['as_of']})."
    )
    not_eval = not_evaluated_dict(ev)
    if not_eval:
        lines += ["", "Not evaluated (rule, records, why):"]
        for code, reasons in not_eval.items():
            for reason, n in reasons.items():
                lines.append(f"  {code}  {n:>5}  {plain_text(reason)}")
    unchecked = result.report.not_checked()
    if unchecked:
        lines += ["", style(f"Not checked ({_n(len(unchecked), 'record')}):", fg="red")]
        lines += [
            plain_text(f"  {e['source']}/{e['key'] or '(no key)'} ({e['kind']}): {e['reason']}")
            for e in unchecked[:LISTED_UNCHECKED]
        ]
        if len(unchecked) > LISTED_UNCHECKED:
            lines.append(f"  ... and {len(unchecked) - LISTED_UNCHECKED} more (all in -f json)")
    if summary["unreadable"]:
        lines += ["", "Values that could not be read (field unknown, record still checked):"]
        lines += [
            plain_text(f"  {u['field']}: {u['reason']} x{u['count']}")
            for u in summary["unreadable"]
        ]
    if summary["unknown_statuses"]:
        lines += ["", "Unknown statuses (records marked NOT_EVALUATED; add them to status_map):"]
        lines += [
            f"  {u['process']}: {u['status']!r} x{u['count']}" for u in summary["unknown_statuses"]
        ]
    if summary["rule_errors"]:
        lines += ["", style("Rule errors (a bug in a rule; please report):", fg="red")]
        lines += [f"  {plain_text(e)}" for e in summary["rule_errors"]]
    return "\n".join(lines) + "\n"


_RENDERERS: dict[str, Callable[[CheckResult], str]] = {
    "json": render_json,
    "jsonl": render_jsonl,
    "csv": render_csv,
    "junit": render_junit,
    "markdown": render_markdown,
}


def render(result: CheckResult, fmt: str, *, color: bool = False) -> str:
    """Render a check result in one of :data:`FORMATS`. The collector is paused: the
    text is made of many small objects that hold no cycles, and each burst of them would
    set off collections that scan every record and finding of the run."""
    renderer = _RENDERERS.get(fmt)
    if renderer is None and fmt != "text":
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    with gc_paused():
        return render_text(result, color=color) if renderer is None else renderer(result)


# --- rules ----------------------------------------------------------------------------


def rule_dict(r: Rule) -> dict[str, Any]:
    return {
        "code": r.code,
        "name": r.name,
        "title": r.title,
        "severity": r.severity,
        "clause": r.clause,
        "processes": list(r.applies_to),
        "pack": r.pack,
        "kind": r.kind,
        "params": dict(r.params),
        "sections": r.sections,
    }


def rules_markdown_table(rules: Sequence[Rule]) -> str:
    """The README's rule table (between ``<!-- rules:start -->`` and ``<!-- rules:end -->``)."""
    lines = ["| Code | Name | Severity | Clause | Processes | Title |", "|---|---|---|---|---|---|"]
    for r in sorted(rules, key=lambda r: r.code):
        lines.append(
            f"| {r.code} | {r.name} | {r.severity} | {r.clause} | {', '.join(r.applies_to)} | {_trusted_cell(r.title)} |"
        )
    if not rules:
        lines.append("| | *(no rules registered)* | | | | |")
    return "\n".join(lines) + "\n"


def render_rules(rules: Sequence[Rule], fmt: str) -> str:
    ordered = sorted(rules, key=lambda r: r.code)
    if fmt == "json":
        return json.dumps([rule_dict(r) for r in ordered], indent=2, default=str) + "\n"
    if fmt == "markdown":
        return rules_markdown_table(ordered)
    if fmt != "text":
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(RULE_FORMATS)}")
    if not ordered:
        return "No rules registered.\n"
    width = max(len(r.name) for r in ordered)
    return "".join(
        f"{r.code:<8} {r.name:<{width}}  {r.severity:<8} {r.clause:<9} {r.title}\n" for r in ordered
    )


def explain_rule(r: Rule, *, severity: str | None = None) -> str:
    """``rules explain CODE``: reads like ``ruff rule``."""
    lines = [f"# {r.title} ({r.code})", ""]
    lines.append(f"Code: {r.code}   Name: {r.name}   Pack: {r.pack or '-'}")
    sev = (
        r.severity
        if not severity or severity == r.severity
        else f"{severity} (configured; default {r.severity})"
    )
    lines.append(f"Severity: {sev}")
    lines.append(f"Clause: ISO/IEC 20000-1:2018 {r.clause}")
    lines.append(
        f"Processes: {', '.join(r.applies_to)}"
        + ("  (aggregate rule: once per run)" if r.kind == "aggregate" else "")
    )
    if r.params:
        lines.append("Parameters (defaults; override under rules.params." + r.code + "):")
        lines += [f"  {k}: {json.dumps(v, default=str)}" for k, v in r.params.items()]
    else:
        lines.append("Parameters: none")
    sections = r.sections
    for title, body in sections.items():
        lines += ["", f"## {title}", "", body]
    if not sections and r.doc:
        lines += ["", r.doc]
    return "\n".join(lines) + "\n"


# --- doctor ---------------------------------------------------------------------------


def render_doctor(report: DoctorReport, *, color: bool = False) -> str:
    """One source's doctor report: checks with ok / warn / fail marks, facts, and the
    rules that cannot be evaluated on it and why."""

    def mark(check: DoctorCheck) -> str:
        if check.ok:
            text, colour = "ok  ", "green"
        elif check.level == "error":
            text, colour = "FAIL", "red"
        else:
            text, colour = "warn", "yellow"
        if not color:
            return text
        import click

        return click.style(text, fg=colour, bold=True)

    status = "ok" if report.ok else "FAILING"
    lines = [f"{report.source}: {status}"]
    for check in report.checks:
        lines.append(
            f"  [{mark(check)}] {check.name}" + (f": {check.detail}" if check.detail else "")
        )
    for key, value in sorted(report.info.items()):
        lines.append(f"  {key}: {value}")
    if report.not_evaluated:
        lines.append("  rules this source cannot evaluate:")
        lines += _grouped_reasons(report.not_evaluated)
    return "\n".join(lines) + "\n"


def _grouped_reasons(not_evaluated: Mapping[str, str]) -> list[str]:
    """One line per reason, naming its rules: a reason shared by every rule (an auth
    failure) is said once, not once per rule."""
    by_reason: dict[str, list[str]] = {}
    for code, why in sorted(not_evaluated.items()):
        by_reason.setdefault(why, []).append(code)
    out = []
    for why, codes in by_reason.items():
        if len(codes) > 6:
            out.append(f"    {len(codes)} rules ({', '.join(codes)}): {why}")
        else:
            out.append(f"    {', '.join(codes)}: {why}")
    return out


README_RULES_START = "<!-- rules:start -->"
README_RULES_END = "<!-- rules:end -->"


def with_rules_table(readme: str, rules: Sequence[Rule]) -> str:
    """The README text with the block between the rules markers replaced by the table."""
    start, end = readme.index(README_RULES_START), readme.index(README_RULES_END)
    head = readme[: start + len(README_RULES_START)]
    return f"{head}\n{rules_markdown_table(rules)}{readme[end:]}"
