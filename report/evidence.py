"""The audit evidence pack of one clause and period: population, exceptions, sample.

Files written into an empty directory:

- ``population.csv``: every stored record of the processes the clause's rules apply to
  whose life meets the period (created on or before its last day and not closed before
  its first day; a record without ``created_at`` uses ``updated_at``);
- ``exceptions.csv``: the findings of the clause's rules on those records, any state,
  each with its history from the finding events;
- ``sample.csv``: a reproducible random sample of the population,
  ``random.Random(seed).sample(population sorted by source and key, n)`` with
  ``n = 25, or the whole population if it is smaller`` unless ``--sample-size`` says;
- ``waivers.csv``: the waivers of those rules in force at some time in the period;
- ``exposure.csv``: the audit exposure of the period per process and clause (every
  row states the formula ``P = 1 - C(N-k, n) / C(N, n)``), and ``exposure_fixes.csv``:
  the records to fix first to bring each process under the target;
- ``rules.json``: the definitions of the rules used (configured severity and parameters);
- ``summary.html``: a printable summary (self-contained, prints to PDF from any browser);
- ``manifest.json``: SHA-256 and size of every other file; :func:`verify_pack` re-checks it.

CSV cells that a spreadsheet would run as a formula (starting with ``= + - @``, a tab or
a line break) get a leading apostrophe (:func:`ticketlint.escaping.csv_cell`, shared by
every CSV writer): ticket titles are user input and auditors open CSVs in Excel.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import json
import random
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from html import escape
from pathlib import Path
from string import Template
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketlint.config import Config
from ticketlint.escaping import csv_row
from ticketlint.report.assets import csp_hash
from ticketlint.report.data import clause_map, clause_sort_key
from ticketlint.report.exposure import FORMULA, percent
from ticketlint.report.exposure_data import exposure_from_store
from ticketlint.report.exposure_formats import CSV_KEYS, FIX_CSV_KEYS, csv_rows, fix_csv_rows
from ticketlint.report.period import Period, stored_time
from ticketlint.rules.engine import Engine
from ticketlint.rules.registry import Registry, Rule
from ticketlint.store.findings_view import iso
from ticketlint.store.models import FindingEventRow, FindingRow, RecordRow, WaiverRow
from ticketlint.store.waivers import all_waivers

DEFAULT_SAMPLE_SIZE = 25
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
POPULATION_KEYS = (
    "source",
    "key",
    "process",
    "title",
    "state",
    "raw_state",
    "created_at",
    "resolved_at",
    "closed_at",
    "updated_at",
    "assignee",
    "group",
    "url",
    "deleted",
    "exceptions",
    "open_exceptions",
)
EXCEPTION_KEYS = (
    "finding_id",
    "rule",
    "severity",
    "source",
    "key",
    "state",
    "message",
    "first_seen",
    "last_seen",
    "resolved_at",
    "resolution",
    "reopened",
    "waiver",
    "assignee",
    "group",
    "url",
    "fingerprint",
    "history",
)
SAMPLE_KEYS = (
    "draw",
    "source",
    "key",
    "process",
    "title",
    "state",
    "created_at",
    "url",
    "exceptions",
    "exception_rules",
)
WAIVER_KEYS = (
    "id",
    "rule",
    "key",
    "source",
    "owner",
    "reason",
    "expires",
    "created_at",
    "findings_held",
)


class EvidenceError(Exception):
    """The pack cannot be written or read (bad clause, non-empty directory, no manifest)."""

    exit_code = 2


@dataclass(frozen=True)
class EvidenceResult:
    population: int
    exceptions: int
    sample: int
    seed: int
    files: int


# --- helpers -----------------------------------------------------------------------------


def _person(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("name") or value.get("email") or value.get("id") or "")
    return "" if value is None else str(value)


def write_csv(path: Path, keys: Sequence[str], rows: Iterable[dict[str, Any]]) -> int:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(keys)
    n = 0
    for row in rows:
        writer.writerow(csv_row(row.get(k) for k in keys))
        n += 1
    path.write_text(out.getvalue(), encoding="utf-8")
    return n


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def clause_rules(rules: Sequence[Rule], clause: str) -> list[Rule]:
    """Rules of the clause and of its sub-clauses (8.5.1 takes 8.5.1.1, 8.5.1.2, ...)."""
    wanted = clause.strip().rstrip(".")
    return sorted(
        (r for r in rules if r.clause == wanted or r.clause.startswith(wanted + ".")),
        key=lambda r: r.code,
    )


def sample_size_for(population: int, requested: int | None) -> int:
    """The documented rule: ``requested`` (-1 = all), else 25, never more than the population."""
    if requested == -1:
        return population
    return min(population, requested or DEFAULT_SAMPLE_SIZE)


def draw_sample(keys: Sequence[tuple[str, str]], seed: int, size: int) -> list[tuple[str, str]]:
    """A reproducible sample: the same seed and population give the same draw, in order."""
    return random.Random(seed).sample(sorted(keys), size)


# --- the parts ---------------------------------------------------------------------------


def population(
    session: Session, processes: set[str], period: Period, source: str | None
) -> list[dict[str, Any]]:
    stmt = select(RecordRow).where(RecordRow.process.in_(sorted(processes)))
    if source:
        stmt = stmt.where(RecordRow.source == source)
    rows = []
    for rec in session.scalars(stmt.order_by(RecordRow.source, RecordRow.key)):
        d = rec.data or {}
        first = (
            stored_time(d.get("created_at")) or stored_time(d.get("updated_at")) or rec.updated_at
        )
        last = stored_time(d.get("closed_at")) or stored_time(d.get("resolved_at"))
        if first is None or not period.overlaps(first, last):
            continue  # without any date the record cannot be placed in the period
        rows.append(
            {
                "source": rec.source,
                "key": rec.key,
                "process": rec.process,
                "title": d.get("title"),
                "state": d.get("state"),
                "raw_state": d.get("raw_state"),
                "created_at": d.get("created_at"),
                "resolved_at": d.get("resolved_at"),
                "closed_at": d.get("closed_at"),
                "updated_at": d.get("updated_at"),
                "assignee": _person(d.get("assignee")),
                "group": d.get("group"),
                "url": d.get("url"),
                "deleted": "yes" if rec.deleted else "no",
            }
        )
    return rows


def exceptions(
    session: Session, codes: set[str], keys: set[tuple[str, str]]
) -> list[dict[str, Any]]:
    rows = [
        f
        for f in session.scalars(
            select(FindingRow)
            .where(FindingRow.rule.in_(sorted(codes)))
            .order_by(FindingRow.source, FindingRow.key, FindingRow.rule, FindingRow.id)
        )
        if (f.source, f.key) in keys
    ]
    events: dict[int, list[FindingEventRow]] = {}
    ids = [f.id for f in rows]
    for start in range(0, len(ids), 500):  # bound the IN list
        for ev in session.scalars(
            select(FindingEventRow)
            .where(FindingEventRow.finding_id.in_(ids[start : start + 500]))
            .order_by(FindingEventRow.at, FindingEventRow.id)
        ):
            events.setdefault(ev.finding_id, []).append(ev)
    out = []
    for f in rows:
        history = "; ".join(
            f"{iso(ev.at)} {ev.kind}"
            + (f" (run {ev.run_id})" if ev.run_id else "")
            + (f": {ev.detail}" if ev.detail else "")
            for ev in events.get(f.id, [])
        )
        out.append(
            {
                "finding_id": f.id,
                "rule": f.rule,
                "severity": f.severity,
                "source": f.source,
                "key": f.key,
                "state": f.state,
                "message": f.message,
                "first_seen": iso(f.first_seen),
                "last_seen": iso(f.last_seen),
                "resolved_at": iso(f.resolved_at),
                "resolution": f.resolution,
                "reopened": f.reopened,
                "waiver": f.waiver,
                "assignee": f.assignee,
                "group": f.group,
                "url": f.url,
                "fingerprint": f.fingerprint,
                "history": history,
            }
        )
    return out


def waivers_in_force(
    session: Session, cfg: Config, codes: set[str], period: Period, source: str | None
) -> list[dict[str, Any]]:
    created = {f"W{w.id}": w.created_at for w in session.scalars(select(WaiverRow))}
    held: dict[str, int] = {}
    for wid in session.scalars(select(FindingRow.waiver).where(FindingRow.state == "waived")):
        if wid is not None:  # a waived finding names its waiver; nothing to count otherwise
            held[wid] = held.get(wid, 0) + 1
    out = []
    for w in all_waivers(session, cfg):
        if not any(fnmatch.fnmatchcase(code, w.rule.upper()) for code in codes):
            continue
        if source and w.source not in (None, source):
            continue
        made = created.get(w.id)
        if (period.start and w.expires < period.start) or (
            made and period.until and made >= period.until
        ):
            continue  # expired before the period, or added after it
        out.append(
            {
                "id": w.id,
                "rule": w.rule,
                "key": w.key,
                "source": w.source or "*",
                "owner": w.owner,
                "reason": w.reason,
                "expires": w.expires.isoformat(),
                "created_at": iso(made) if made else "",
                "findings_held": held.get(w.id, 0),
            }
        )
    return out


def rule_definitions(rules: Sequence[Rule], engine: Engine) -> list[dict[str, Any]]:
    return [
        {
            "code": r.code,
            "name": r.name,
            "title": r.title,
            "clause": r.clause,
            "severity": engine.severity.get(r.code, r.severity),
            "default_severity": r.severity,
            "processes": list(r.applies_to),
            "kind": r.kind,
            "pack": r.pack,
            "params": engine.params.get(r.code, dict(r.params)),
            "sections": r.sections,
            "remediation": r.remediation,
        }
        for r in rules
    ]


# --- the pack ----------------------------------------------------------------------------


def build_evidence(
    session: Session,
    cfg: Config,
    registry: Registry,
    engine: Engine,
    *,
    clause: str,
    period: Period,
    out: Path,
    seed: int | None = None,
    sample_size: int | None = None,
    source: str | None = None,
    now: datetime,
) -> EvidenceResult:
    rules = clause_rules(engine.rules, clause)
    if not rules:
        known = sorted({r.clause for r in engine.rules}, key=clause_sort_key)
        raise EvidenceError(
            f"no selected rule maps to clause {clause!r}; clauses with rules: {', '.join(known)}"
        )
    if out.exists() and any(out.iterdir()):
        raise EvidenceError(f"{out} is not empty; evidence packs are never overwritten")
    out.mkdir(parents=True, exist_ok=True)
    codes = {r.code for r in rules}
    processes = {p for r in rules for p in r.applies_to}
    seed = seed if seed is not None else secrets.randbelow(2**31)

    pop = population(session, processes, period, source)
    exc = exceptions(session, codes, {(p["source"], p["key"]) for p in pop})
    by_record: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for x in exc:
        by_record.setdefault((x["source"], x["key"]), []).append(x)
    for p in pop:
        mine = by_record.get((p["source"], p["key"]), [])
        p["exceptions"] = len(mine)
        p["open_exceptions"] = sum(1 for x in mine if x["state"] == "open")
    size = sample_size_for(len(pop), sample_size)
    index = {(p["source"], p["key"]): p for p in pop}
    drawn = draw_sample(list(index), seed, size)
    sample = [
        {
            **index[key],
            "draw": i + 1,
            "exception_rules": " ".join(sorted({x["rule"] for x in by_record.get(key, [])})),
        }
        for i, key in enumerate(drawn)
    ]
    waivers = waivers_in_force(session, cfg, codes, period, source)
    definitions = rule_definitions(rules, engine)

    write_csv(out / "population.csv", POPULATION_KEYS, pop)
    write_csv(out / "exceptions.csv", EXCEPTION_KEYS, exc)
    write_csv(out / "sample.csv", SAMPLE_KEYS, sample)
    write_csv(out / "waivers.csv", WAIVER_KEYS, waivers)
    table = exposure_from_store(
        session, cfg, registry, engine, period=period, now=now, source=source
    )
    write_csv(out / "exposure.csv", CSV_KEYS, csv_rows(table))
    write_csv(out / "exposure_fixes.csv", FIX_CSV_KEYS, fix_csv_rows(table))
    (out / "rules.json").write_text(
        json.dumps(definitions, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    _, clauses = clause_map(registry)
    meta = {
        "tool": "ticketlint",
        "format": FORMAT_VERSION,
        "clause": clause,
        "clause_titles": {
            c: str(clauses[c].get("title") or "")
            for c in sorted(clauses, key=clause_sort_key)
            if c == clause or c.startswith(clause + ".")
        },
        "period": {
            "from": period.start.isoformat() if period.start else None,
            "to": period.end.isoformat() if period.end else None,
        },
        "source": source,
        "generated_at": iso(now),
        "rules": sorted(codes),
        "processes": sorted(processes),
        "population": len(pop),
        "exceptions": len(exc),
        "sample": {
            "seed": seed,
            "size": size,
            "rule": sample_rule_text(sample_size),
            "method": "random.Random(seed).sample(population sorted by (source, key), size)",
        },
        "waivers": len(waivers),
        "exposure": {
            "formula": FORMULA,
            "model": (
                "simple random sampling without replacement of n of the N records of a "
                "process in the period; one nonconforming record in the sample is a finding"
            ),
            "target": float(table.target),
            "overall": float(table.overall),
            "processes": {
                r.name: {
                    "population": r.population,
                    "nonconforming": r.nonconforming,
                    "sample": r.sample,
                    "exposure": float(r.exposure),
                }
                for r in table.processes
            },
        },
    }
    (out / "summary.html").write_text(
        render_summary(meta, pop, exc, sample, waivers, definitions), encoding="utf-8"
    )
    files = sorted(p for p in out.iterdir() if p.is_file() and p.name != MANIFEST)
    manifest = {
        **meta,
        "files": [
            {"name": p.name, "sha256": sha256_file(p), "bytes": p.stat().st_size} for p in files
        ],
    }
    (out / MANIFEST).write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return EvidenceResult(len(pop), len(exc), len(sample), seed, len(files))


def sample_rule_text(requested: int | None) -> str:
    if requested == -1:
        return "the whole population (--sample-size all)"
    if requested:
        return f"{requested} records (--sample-size), or the whole population if smaller"
    return f"{DEFAULT_SAMPLE_SIZE} records, or the whole population if smaller"


def verify_pack(directory: Path) -> list[str]:
    """Problems found re-checking the manifest (empty: every file matches)."""
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        listed = {f["name"]: f for f in manifest["files"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EvidenceError(f"{path}: not a readable evidence manifest ({exc})") from None
    problems = []
    for name, entry in sorted(listed.items()):
        target = directory / name
        if Path(name).name != name:
            problems.append(f"{name}: a manifest entry must be a plain file name")
        elif not target.is_file():
            problems.append(f"{name}: missing")
        elif sha256_file(target) != entry.get("sha256"):
            problems.append(f"{name}: SHA-256 differs (changed after the pack was made)")
        elif target.stat().st_size != entry.get("bytes"):
            problems.append(f"{name}: size differs")
    for extra in sorted(
        p.name for p in directory.iterdir() if p.name != MANIFEST and p.name not in listed
    ):
        problems.append(f"{extra}: not in the manifest")
    return problems


# --- the printable summary -----------------------------------------------------------

SUMMARY_CSS = """
body{font:13px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:#1c2430;margin:28px auto;max-width:980px;padding:0 18px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:22px 0 8px;border-bottom:1px solid #d9dee7;padding-bottom:3px}
p.meta{color:#5b6777;margin:0 0 12px}
table{border-collapse:collapse;width:100%;font-size:12px;margin:6px 0}
th,td{text-align:left;border-bottom:1px solid #e3e7ee;padding:4px 6px;vertical-align:top}
th{color:#5b6777}td.num{text-align:right}
dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;margin:0}dt{color:#5b6777}dd{margin:0}
code{font-size:12px}
@media print{body{margin:0;max-width:none}h2{break-after:avoid}tr{break-inside:avoid}}
"""

SUMMARY = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src $style_hash; base-uri 'none'; form-action 'none'">
<meta name="referrer" content="no-referrer">
<title>Evidence: clause $clause, $period</title><style>$css</style></head>
<body>
<h1>Audit evidence: ISO/IEC 20000-1 clause $clause</h1>
<p class="meta">Period $period · generated $generated by ticketlint · manifest.json holds the SHA-256 of every file</p>
<h2>Scope</h2><dl>$scope</dl>
<h2>Sample</h2><p>$sample_text</p>$sample
<h2>Exceptions by rule</h2>$by_rule
<h2>Audit exposure</h2><p>$exposure_text</p>$exposure
<h2>Waivers in force</h2>$waivers
<h2>Rules used</h2>$rules
</body></html>
""")


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return "<p>None.</p>"
    return (
        "<table><thead><tr>"
        + "".join(f"<th>{_e(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + body
        + "</tbody></table>"
    )


def render_summary(
    meta: dict[str, Any],
    pop: Sequence[dict[str, Any]],
    exc: Sequence[dict[str, Any]],
    sample: Sequence[dict[str, Any]],
    waivers: Sequence[dict[str, Any]],
    definitions: Sequence[dict[str, Any]],
) -> str:
    period = f"{meta['period']['from'] or '…'} to {meta['period']['to'] or 'now'}"
    titles = "; ".join(f"{c} {t}" for c, t in meta["clause_titles"].items())
    with_exc = sum(1 for p in pop if p["exceptions"])
    scope = [
        ("Clause", f"{meta['clause']}" + (f" ({titles})" if titles else "")),
        ("Processes", ", ".join(meta["processes"])),
        ("Source", meta["source"] or "all sources"),
        ("Population", f"{len(pop)} records (population.csv)"),
        (
            "Exceptions",
            (
                f"{len(exc)} findings on {with_exc} records (exceptions.csv), "
                f"{sum(1 for x in exc if x['state'] == 'open')} still open"
            ),
        ),
        ("Rules", ", ".join(meta["rules"])),
    ]
    s = meta["sample"]
    sample_text = (
        f"{s['size']} records drawn with seed <code>{s['seed']}</code>; size rule: {_e(s['rule'])}; "
        f"method: <code>{_e(s['method'])}</code>. Re-run with <code>--seed {s['seed']}</code> "
        "to draw the same sample."
    )
    counts: dict[str, list[int]] = {}
    for x in exc:
        c = counts.setdefault(x["rule"], [0, 0, 0])
        c[0] += 1
        c[1] += x["state"] == "open"
        c[2] += x["state"] == "waived"
    title = {d["code"]: d["title"] for d in definitions}
    return SUMMARY.substitute(
        style_hash=csp_hash(SUMMARY_CSS),
        css=SUMMARY_CSS,
        clause=_e(meta["clause"]),
        period=_e(period),
        generated=_e(meta["generated_at"]),
        scope="".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in scope),
        sample_text=sample_text,
        sample=_table(
            ("#", "Source", "Key", "State", "Created", "Exceptions"),
            (
                (
                    r["draw"],
                    r["source"],
                    r["key"],
                    r.get("state"),
                    r.get("created_at"),
                    r["exception_rules"] or "none",
                )
                for r in sample
            ),
        ),
        by_rule=_table(
            ("Rule", "Title", "Findings", "Open", "Waived"),
            ((code, title.get(code, ""), *c) for code, c in sorted(counts.items())),
        ),
        exposure_text=(
            f"<code>{_e(meta['exposure']['formula'])}</code>: the chance that a random sample "
            "of n of the N records of a process in the period holds at least one of its k "
            "nonconforming records (exposure.csv). Overall: "
            f"{_e(percent(Fraction(meta['exposure']['overall'])))}."
        ),
        exposure=_table(
            ("Process", "N", "k", "n", "Exposure"),
            (
                (
                    name,
                    x["population"],
                    x["nonconforming"],
                    x["sample"],
                    percent(Fraction(x["exposure"])),
                )
                for name, x in meta["exposure"]["processes"].items()
            ),
        ),
        waivers=_table(
            ("Waiver", "Rule", "Key", "Owner", "Reason", "Expires"),
            (
                (w["id"], w["rule"], w["key"], w["owner"], w["reason"], w["expires"])
                for w in waivers
            ),
        ),
        rules=_table(
            ("Code", "Title", "Clause", "Severity", "Parameters"),
            (
                (
                    d["code"],
                    d["title"],
                    d["clause"],
                    d["severity"],
                    json.dumps(d["params"], default=str, sort_keys=True) if d["params"] else "",
                )
                for d in definitions
            ),
        ),
    )
