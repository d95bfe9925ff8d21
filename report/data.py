"""The report's numbers, read from the store into plain values (no HTML here).

Two kinds of number, from two places:

- *Now*: open findings, their severities, groups and rules come from the findings table
  with the same query as ``ticketlint findings`` (``ticketlint.store.repository.query_findings``), so the
  report and the command always agree.
- *Runs*: conformity (PASS / (PASS + FAIL)), NOT_EVALUATED reasons and the trends come
  from ``runs.sources`` JSON: per source, the newest successful run in the period holds
  the current conformity; every run in the period is a trend point (a source missing from
  a run, e.g. ``sync --source``, keeps its previous values so totals do not dip).

A rule that applies to several processes (CFG003) is counted under one row named after
all of them: its outcome counts are not split per process in the run record.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketlint.config import Config
from ticketlint.report.exposure import ExposureTable
from ticketlint.report.period import Period
from ticketlint.rules.registry import SEVERITIES, SEVERITY_RANK, Registry, Rule
from ticketlint.store import repository as repo
from ticketlint.store.findings_view import finding_view
from ticketlint.store.models import FindingRow, RunRow
from ticketlint.store.waivers import WaiverRule, all_waivers

SEVERITY_ORDER: tuple[str, ...] = tuple(reversed(SEVERITIES))
"""critical first: how every table and chart lists severities."""
RUN_STATES = ("ok", "failed")
"""Finished runs; in a failed run only the sources whose own status is ok count."""


@dataclass(frozen=True)
class Rate:
    """PASS / (PASS + FAIL) of one row (a process, a clause or a rule)."""

    label: str
    passed: int
    failed: int
    title: str = ""

    @property
    def checked(self) -> int:
        return self.passed + self.failed

    @property
    def rate(self) -> float | None:
        return self.passed / self.checked if self.checked else None


@dataclass(frozen=True)
class SourceSnapshot:
    """One source as of its newest successful run in the period."""

    name: str
    run_id: int
    as_of: datetime
    records: int
    outcomes: Mapping[str, Mapping[str, int]]
    not_evaluated: Mapping[str, Mapping[str, int]]


@dataclass(frozen=True)
class TrendPoint:
    run_id: int
    as_of: datetime
    open_by_severity: Mapping[str, int]
    passed: int
    failed: int

    @property
    def open_total(self) -> int:
        return sum(self.open_by_severity.values())

    @property
    def rate(self) -> float | None:
        return self.passed / (self.passed + self.failed) if self.passed + self.failed else None


@dataclass(frozen=True)
class WaiverView:
    waiver: WaiverRule
    days_left: int
    """Days until expiry from the report date (negative: expired)."""
    holds: int
    """Findings currently waived by it."""


@dataclass(frozen=True)
class ClauseRow:
    clause: str
    title: str
    declared: str
    """automated | partly | manual, as the clause map says."""
    effective: str
    """What this store shows: rules unselected or never evaluated make it ``partly``."""
    rules: tuple[str, ...]
    passed: int
    failed: int
    note: str = ""

    @property
    def rate(self) -> float | None:
        return self.passed / (self.passed + self.failed) if self.passed + self.failed else None


@dataclass
class ReportData:
    generated_at: datetime
    period: Period
    source: str | None
    group: str | None
    snapshots: list[SourceSnapshot]
    rules: dict[str, Rule]
    open_findings: list[dict[str, Any]]
    open_by_severity: dict[str, int]
    by_group: list[tuple[str, dict[str, int]]]
    by_rule: list[tuple[str, dict[str, int]]]
    conformity_by_process: list[Rate]
    conformity_by_clause: list[Rate]
    conformity_by_rule: list[Rate]
    trend: list[TrendPoint]
    waivers: list[WaiverView]
    not_evaluated: list[tuple[str, str, str, int]]
    """(source, rule code, reason, records)"""
    clause_matrix: list[ClauseRow]
    framework: str = ""
    warnings: list[str] = field(default_factory=list)
    exposure: ExposureTable | None = None
    """The audit exposure of the period (set by the report command)."""

    @property
    def overall(self) -> Rate:
        passed = sum(r.passed for r in self.conformity_by_rule)
        failed = sum(r.failed for r in self.conformity_by_rule)
        return Rate("all", passed, failed)


# --- runs ------------------------------------------------------------------------------


def runs_in_period(session: Session, period: Period) -> list[RunRow]:
    """Finished runs whose as-of instant lies in the period, oldest first."""
    stmt = select(RunRow).where(RunRow.status.in_(RUN_STATES), RunRow.finished_at.is_not(None))
    if period.since is not None:
        stmt = stmt.where(RunRow.as_of >= period.since)
    if period.until is not None:
        stmt = stmt.where(RunRow.as_of < period.until)
    return list(session.scalars(stmt.order_by(RunRow.as_of, RunRow.id)))


def _ok_sources(run: RunRow, source: str | None) -> Iterable[tuple[str, dict[str, Any]]]:
    for name, data in sorted((run.sources or {}).items()):
        if source and name != source:
            continue
        if isinstance(data, dict) and data.get("status") == "ok":
            yield name, data


def newest_snapshots(runs: Sequence[RunRow], source: str | None = None) -> list[SourceSnapshot]:
    latest: dict[str, SourceSnapshot] = {}
    for run in runs:  # oldest first: later runs overwrite
        for name, data in _ok_sources(run, source):
            latest[name] = SourceSnapshot(
                name=name,
                run_id=run.id,
                as_of=run.as_of,
                records=int(data.get("evaluated") or data.get("records_read") or 0),
                outcomes=data.get("outcomes") or {},
                not_evaluated=data.get("not_evaluated") or {},
            )
    return [latest[k] for k in sorted(latest)]


def _pass_fail(outcomes: Mapping[str, Mapping[str, int]]) -> tuple[int, int]:
    passed = sum(int(c.get("PASS", 0)) for c in outcomes.values())
    failed = sum(int(c.get("FAIL", 0)) for c in outcomes.values())
    return passed, failed


def trend(runs: Sequence[RunRow], source: str | None = None) -> list[TrendPoint]:
    """One point per run; a source not in a run carries its last values forward."""
    known: dict[str, dict[str, Any]] = {}
    points: list[TrendPoint] = []
    for run in runs:
        seen = False
        for name, data in _ok_sources(run, source):
            known[name], seen = data, True
        if not seen:
            continue
        sev: Counter[str] = Counter()
        passed = failed = 0
        for data in known.values():
            sev.update({k: int(v) for k, v in (data.get("open_by_severity") or {}).items()})
            p, f = _pass_fail(data.get("outcomes") or {})
            passed, failed = passed + p, failed + f
        points.append(
            TrendPoint(
                run.id, run.as_of, {s: sev.get(s, 0) for s in SEVERITY_ORDER}, passed, failed
            )
        )
    return points


# --- conformity --------------------------------------------------------------------------


def _merged_outcomes(snapshots: Sequence[SourceSnapshot]) -> dict[str, Counter[str]]:
    merged: dict[str, Counter[str]] = defaultdict(Counter)
    for snap in snapshots:
        for code, counts in snap.outcomes.items():
            merged[code].update({k: int(v) for k, v in counts.items()})
    return merged


def process_label(rule: Rule | None) -> str:
    return ", ".join(rule.applies_to) if rule is not None else "(unknown rule)"


def conformity(
    snapshots: Sequence[SourceSnapshot], rules: Mapping[str, Rule], clause_titles: Mapping[str, str]
) -> tuple[list[Rate], list[Rate], list[Rate]]:
    """(per process, per clause, per rule); rows with nothing checked are kept (rate None)."""
    merged = _merged_outcomes(snapshots)
    by_rule = [
        Rate(
            code,
            c.get("PASS", 0),
            c.get("FAIL", 0),
            title=rules[code].title if code in rules else "",
        )
        for code, c in sorted(merged.items())
    ]
    by_process: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_clause: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in by_rule:
        rule = rules.get(r.label)
        for bucket in (by_process[process_label(rule)], by_clause[rule.clause if rule else "?"]):
            bucket[0] += r.passed
            bucket[1] += r.failed
    processes = [Rate(k, p, f) for k, (p, f) in sorted(by_process.items())]
    clauses = [
        Rate(k, p, f, title=clause_titles.get(k, ""))
        for k, (p, f) in sorted(by_clause.items(), key=lambda kv: clause_sort_key(kv[0]))
    ]
    return processes, clauses, by_rule


def clause_sort_key(clause: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else 10_000 for p in clause.split("."))


# --- clause coverage matrix ------------------------------------------------------------


def clause_map(registry: Registry) -> tuple[str, dict[str, dict[str, Any]]]:
    """(framework name, clause -> {title, rules, coverage}) merged over every pack."""
    framework, clauses = "", {}
    for pack in registry.packs.values():
        data = pack.clause_map or {}
        framework = framework or str(data.get("framework") or "")
        for clause, entry in (data.get("clauses") or {}).items():
            clauses[str(clause)] = dict(entry or {})
    return framework, clauses


def clause_matrix(
    clauses: Mapping[str, Mapping[str, Any]],
    selected: set[str],
    snapshots: Sequence[SourceSnapshot],
) -> list[ClauseRow]:
    merged = _merged_outcomes(snapshots)
    rows = []
    for clause in sorted(clauses, key=clause_sort_key):
        entry = clauses[clause]
        codes = tuple(entry.get("rules") or ())
        declared = str(entry.get("coverage") or ("automated" if codes else "manual"))
        passed = sum(merged[c].get("PASS", 0) for c in codes if c in merged)
        failed = sum(merged[c].get("FAIL", 0) for c in codes if c in merged)
        unselected = [c for c in codes if c not in selected]
        # A rule that judged nothing (all NOT_EVALUATED / NOT_APPLICABLE / never run) gives
        # no evidence for the clause on this store.
        silent = (
            [
                c
                for c in codes
                if c in selected and not (merged[c].get("PASS", 0) + merged[c].get("FAIL", 0))
            ]
            if snapshots
            else []
        )
        notes = []
        if unselected:
            notes.append("not selected: " + ", ".join(unselected))
        if silent:
            notes.append("judged no record: " + ", ".join(silent))
        if declared == "manual" or not codes or len(unselected) + len(silent) >= len(codes):
            effective = "manual"
        elif unselected or silent or declared == "partly":
            effective = "partly"
        else:
            effective = "automated"
        rows.append(
            ClauseRow(
                clause,
                str(entry.get("title") or ""),
                declared,
                effective,
                codes,
                passed,
                failed,
                "; ".join(notes),
            )
        )
    return rows


# --- findings now ------------------------------------------------------------------------


def _count_by(views: Sequence[dict[str, Any]], key: str) -> list[tuple[str, dict[str, int]]]:
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for v in views:
        table[v[key] or "(none)"][v["severity"]] += 1
    rows = [(k, {s: c.get(s, 0) for s in SEVERITY_ORDER}) for k, c in table.items()]
    return sorted(rows, key=lambda kv: (-sum(kv[1].values()), kv[0]))


def waiver_views(waivers: Sequence[WaiverRule], session: Session, today: date) -> list[WaiverView]:
    held = Counter(session.scalars(select(FindingRow.waiver).where(FindingRow.state == "waived")))
    views = [WaiverView(w, (w.expires - today).days, held.get(w.id, 0)) for w in waivers]
    return sorted(views, key=lambda v: (v.waiver.expires, v.waiver.id))


def _gone_in_period(session: Session, period: Period, source: str | None, group: str | None) -> int:
    """Findings that ended as gone (record deleted or out of scope) within the period."""
    rows = repo.query_findings(session, state="gone", source=source, group=group)
    return sum(
        1
        for r in rows
        if r.resolved_at is not None
        and (period.start is None or r.resolved_at.date() >= period.start)
        and (period.end is None or r.resolved_at.date() <= period.end)
    )


def collect(
    session: Session,
    cfg: Config,
    registry: Registry,
    selected: set[str],
    *,
    period: Period,
    source: str | None = None,
    group: str | None = None,
    now: datetime,
) -> ReportData:
    """Everything the report shows, from one session."""
    runs = runs_in_period(session, period)
    snapshots = newest_snapshots(runs, source)
    framework, clauses = clause_map(registry)
    titles = {k: str(v.get("title") or "") for k, v in clauses.items()}
    by_process, by_clause, by_rule = conformity(snapshots, registry.rules, titles)
    rows = repo.query_findings(session, state="open", source=source, group=group)
    views = sorted(
        (finding_view(r) for r in rows),
        key=lambda v: (-SEVERITY_RANK.get(v["severity"], 0), v["source"], v["key"], v["code"]),
    )
    severity = Counter(v["severity"] for v in views)
    not_eval = [
        (snap.name, code, reason, int(n))
        for snap in snapshots
        for code, reasons in sorted(snap.not_evaluated.items())
        for reason, n in sorted(reasons.items())
        if n
    ]
    warnings = []
    if not runs:
        warnings.append(
            f"no finished sync run in the period ({period.label()}): conformity and "
            "trends are empty; run `ticketlint sync` first"
        )
    gone = _gone_in_period(session, period, source, group)
    if gone:
        warnings.append(
            f"{gone} finding(s) ended as gone in the period: their records were deleted at the "
            "source or left the configured scope (seen by a full reconcile); they are not "
            "counted as resolved (`ticketlint findings --state gone`)"
        )
    if group:
        warnings.append(
            f"--group {group}: findings are of this group only; conformity and trends "
            "are per source (runs do not record them per group)"
        )
    return ReportData(
        generated_at=now,
        period=period,
        source=source,
        group=group,
        snapshots=snapshots,
        rules=dict(registry.rules),
        open_findings=views,
        open_by_severity={s: severity.get(s, 0) for s in SEVERITY_ORDER},
        by_group=_count_by(views, "group"),
        by_rule=_count_by(views, "code"),
        conformity_by_process=by_process,
        conformity_by_clause=by_clause,
        conformity_by_rule=by_rule,
        trend=trend(runs, source),
        waivers=waiver_views(all_waivers(session, cfg), session, now.date()),
        not_evaluated=not_eval,
        clause_matrix=clause_matrix(clauses, selected, snapshots),
        framework=framework,
        warnings=warnings,
    )
