"""The records of an audit period and their verdicts, for the exposure table.

Reads the store (``ticketlint exposure``, the HTML report, the evidence pack, the chat
digest) or a ``check`` run held in memory (``check --exposure``) and hands
:func:`ticketlint.report.exposure.build_table` plain :class:`PopulationRecord` values.

The population of a period (what an auditor samples from): every stored record, not
deleted at the source and not cancelled, whose life meets the period: created on or
before its last day (without ``created_at``, its ``updated_at``) and not closed (or
resolved) before its first day, the rule the evidence pack uses. Its verdicts are those
at the end of the period (or now, for a period still running): a finding counts as
open, waived or resolved by its history events up to that instant. Unknown records (a
rule answered NOT_EVALUATED) are found by running the selected rules again over the
stored records at that instant: the store keeps NOT_EVALUATED as counts only.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ticketlint.config import Config
from ticketlint.mapping.model import BaseRecord
from ticketlint.report.data import clause_map
from ticketlint.report.exposure import (
    ExposureTable,
    Failing,
    PopulationRecord,
    Rise,
    build_table,
    parse_target,
    rises,
)
from ticketlint.report.period import Period, stored_time
from ticketlint.rules.engine import Engine, Finding, RecordIndex
from ticketlint.rules.outcome import Status
from ticketlint.rules.registry import Registry, RuleContext
from ticketlint.store import repository as repo
from ticketlint.store.models import FindingEventRow, FindingRow, RecordRow, RunRow
from ticketlint.store.waivers import WaiverRule, find_waiver

log = logging.getLogger(__name__)
EVENT_STATE = {
    "opened": "open",
    "reopened": "open",
    "unwaived": "open",
    "waived": "waived",
    "resolved": "resolved",
}
"""The state a finding is in after each kind of history event."""
RUN_STATES = ("ok", "failed")


def in_period(
    created: datetime | None, ended: datetime | None, period: Period, end: datetime
) -> bool:
    """Whether a record's life [created, ended] meets the period cut at ``end``."""
    if created is None or created >= end:
        return False  # a record without any date cannot be placed in the period
    return period.overlaps(created, ended)


def period_end(period: Period, now: datetime) -> datetime:
    """The instant whose verdicts count: the period's end, or now while it runs."""
    return period.until if period.until is not None and period.until < now else now


# --- verdicts the store does not keep: NOT_EVALUATED per record ------------------------------


def not_evaluated(
    engine: Engine, records: Iterable[BaseRecord], index: RecordIndex, as_of: datetime
) -> dict[tuple[str, str], list[Failing]]:
    """(source, key) -> the selected rules that answered NOT_EVALUATED on that record.

    Record rules run on the given records; aggregate rules once over the index (their
    NOT_EVALUATED outcomes count for the record they name as subject)."""
    by_process: dict[str, list[Any]] = defaultdict(list)
    contexts = {r.code: RuleContext(as_of, engine.params[r.code], index) for r in engine.rules}
    for r in engine.rules:
        if r.kind != "aggregate":
            for p in r.applies_to:
                by_process[p].append(r)
    out: dict[tuple[str, str], list[Failing]] = defaultdict(list)
    for record in records:
        for r in by_process.get(record.process, ()):
            try:
                status = r.func(record, contexts[r.code]).status
            except Exception:  # noqa: BLE001 - a rule error is NOT_EVALUATED, as in the engine
                status = Status.NOT_EVALUATED
            if status is Status.NOT_EVALUATED:
                out[(record.source, record.key)].append(
                    Failing(r.code, r.clause, engine.severity[r.code])
                )
    for r in engine.rules:
        if r.kind != "aggregate":
            continue
        try:
            outcomes = list(r.func(index, contexts[r.code]))
        except Exception:  # the engine reports rule errors; nothing to add here
            log.debug("rule %s failed while looking for unknown records", r.code, exc_info=True)
            continue
        for o in outcomes:
            source = o.evidence.get("source") if isinstance(o.evidence, dict) else None
            if o.status is Status.NOT_EVALUATED and o.subject and isinstance(source, str):
                out[(source, o.subject)].append(Failing(r.code, r.clause, engine.severity[r.code]))
    return out


# --- the store ---------------------------------------------------------------------------------


def _finding_states(
    session: Session, source: str | None, end: datetime, replay: bool
) -> list[tuple[FindingRow, str]]:
    """Every finding with its state at ``end``: the stored state, or (``replay``) the
    state its history events up to ``end`` leave it in."""
    stmt = select(FindingRow)
    if source:
        stmt = stmt.where(FindingRow.source == source)
    rows = list(session.scalars(stmt.order_by(FindingRow.id)))
    if not replay:
        return [(r, r.state) for r in rows]
    state: dict[int, str] = {}
    events = select(FindingEventRow.finding_id, FindingEventRow.kind).where(
        FindingEventRow.at < end
    )
    for finding_id, kind in session.execute(
        events.order_by(FindingEventRow.at, FindingEventRow.id)
    ):
        if kind in EVENT_STATE:
            state[finding_id] = EVENT_STATE[kind]
    return [(r, state[r.id]) for r in rows if r.id in state]


def population_from_store(
    session: Session,
    *,
    period: Period,
    now: datetime,
    source: str | None = None,
    engine: Engine | None = None,
    registry: Registry | None = None,
    at: datetime | None = None,
) -> list[PopulationRecord]:
    """The period's records with their verdicts at its end (see the module docstring),
    or at ``at`` when that is earlier (the digest's previous run).

    Without ``engine`` no record is unknown (the digest's cheaper reading)."""
    end = period_end(period, now)
    if at is not None and at < end:
        end = at
    d = RecordRow.data
    stmt = select(
        RecordRow.source,
        RecordRow.key,
        RecordRow.process,
        RecordRow.updated_at,
        d["state"].as_string(),
        d["created_at"].as_string(),
        d["updated_at"].as_string(),
        d["closed_at"].as_string(),
        d["resolved_at"].as_string(),
    ).where(RecordRow.deleted.is_(False))
    if source:
        stmt = stmt.where(RecordRow.source == source)
    members: dict[tuple[str, str], tuple[str, datetime]] = {}
    for (
        src,
        key,
        process,
        row_updated,
        state,
        created,
        updated,
        closed,
        resolved,
    ) in session.execute(stmt.order_by(RecordRow.source, RecordRow.key)):
        if state == "cancelled":
            continue
        first = stored_time(created) or stored_time(updated) or row_updated
        if in_period(first, stored_time(closed) or stored_time(resolved), period, end):
            assert first is not None
            members[(src, key)] = (process, first)

    rules = registry.rules if registry is not None else {}
    failing: dict[tuple[str, str], list[Failing]] = defaultdict(list)
    waived: dict[tuple[str, str], list[Failing]] = defaultdict(list)
    who: dict[tuple[str, str], tuple[str | None, str | None, str | None]] = {}
    for row, state in _finding_states(session, source, end, replay=end < now):
        ref = (row.source, row.key)
        if ref not in members or state == "resolved":
            continue
        rule = rules.get(row.rule)
        clause = rule.clause if rule is not None else str((row.detail or {}).get("clause") or "?")
        item = Failing(row.rule, clause, row.severity)
        (failing if state == "open" else waived)[ref].append(item)
        who.setdefault(ref, (row.assignee, row.group, row.url))

    unknown: dict[tuple[str, str], list[Failing]] = {}
    if engine is not None:
        for src in sorted({s for s, _ in members}):
            index = RecordIndex(slim_cis=not engine.reads_index_records)
            for record in repo.load_records(
                session, src, with_raw=engine.reads_raw, processes=RecordIndex.PROCESSES
            ):
                index.add(record)
            wanted = (
                r
                for r in repo.load_records(session, src, with_raw=engine.reads_raw)
                if (r.source, r.key) in members
            )
            unknown.update(not_evaluated(engine, wanted, index, end))

    return [
        PopulationRecord(
            source=src,
            key=key,
            process=process,
            created_at=first,
            assignee=who.get((src, key), (None, None, None))[0],
            group=who.get((src, key), (None, None, None))[1],
            url=who.get((src, key), (None, None, None))[2],
            failing=tuple(failing.get((src, key), ())),
            waived=tuple(waived.get((src, key), ())),
            unknown=tuple(unknown.get((src, key), ())),
        )
        for (src, key), (process, first) in members.items()
    ]


def clause_scope(engine: Engine, registry: Registry) -> tuple[dict[str, set[str]], dict[str, str]]:
    """(clause -> processes its selected rules apply to, clause -> title)."""
    processes: dict[str, set[str]] = defaultdict(set)
    for r in engine.rules:
        processes[r.clause].update(r.applies_to)
    _, clauses = clause_map(registry)
    titles = {c: str((clauses.get(c) or {}).get("title") or "") for c in processes}
    return dict(processes), titles


def samples_of(cfg: Config, override: Mapping[str, int] | None = None) -> dict[str, int]:
    """``audit.sample`` with the command line's ``--sample`` on top."""
    return {**cfg.audit.sample, **(override or {})}


def target_of(cfg: Config, override: Fraction | None = None) -> Fraction:
    """``--target``, else ``audit.target`` (0.1), read exactly from its decimal text."""
    return override if override is not None else parse_target(repr(cfg.audit.target))


def exposure_from_store(
    session: Session,
    cfg: Config,
    registry: Registry,
    engine: Engine,
    *,
    period: Period,
    now: datetime,
    source: str | None = None,
    samples: Mapping[str, int] | None = None,
    target: Fraction | None = None,
) -> ExposureTable:
    """The exposure table of the period as ``ticketlint exposure`` shows it."""
    records = population_from_store(
        session, period=period, now=now, source=source, engine=engine, registry=registry
    )
    clause_processes, titles = clause_scope(engine, registry)
    table = build_table(
        records,
        samples=samples_of(cfg, samples),
        target=target_of(cfg, target),
        clause_processes=clause_processes,
        clause_titles=titles,
        period=period.label(),
    )
    if not session.scalar(select(RunRow.id).limit(1)):
        table.notes.append("no sync run in the store yet: run `ticketlint sync` first")
    return table


def exposure_rises(session: Session, cfg: Config, run_id: int, now: datetime) -> list[Rise]:
    """Processes whose exposure is higher now than at the end of the run before
    ``run_id`` (none before the first run). The period is ``audit.period`` (else all
    time); unknown records are not re-evaluated here (the digest compares ``P`` only)."""
    previous = session.scalar(
        select(RunRow.finished_at)
        .where(
            RunRow.id != run_id,
            RunRow.status.in_(RUN_STATES),
            RunRow.finished_at.is_not(None),
            RunRow.finished_at <= now,
        )
        .order_by(RunRow.finished_at.desc(), RunRow.id.desc())
        .limit(1)
    )
    if previous is None:
        return []
    period = Period.parse(cfg.audit.period)
    samples, target = samples_of(cfg), target_of(cfg)
    before = build_table(
        # Just after the previous run finished: its own events (stamped up to its finish
        # instant) count, the replay bound being exclusive.
        population_from_store(
            session, period=period, now=now, at=previous + timedelta(microseconds=1)
        ),
        samples=samples,
        target=target,
    )
    after = build_table(
        population_from_store(session, period=period, now=now), samples=samples, target=target
    )
    return rises(before, after)


# --- a check run held in memory ----------------------------------------------------------------


def population_from_check(
    records: Sequence[BaseRecord],
    findings: Sequence[Finding],
    engine: Engine,
    *,
    as_of: datetime,
    ci_sources: Iterable[str] | None,
    waivers: Sequence[WaiverRule] = (),
) -> list[PopulationRecord]:
    """``check --exposure``: every checked record that is not cancelled is the
    population (the records given are the period); a finding covered by an active
    waiver of the config counts as waived."""
    index = RecordIndex(ci_sources)
    for record in records:
        index.add(record)
    kept = [r for r in records if getattr(r, "state", None) != "cancelled"]
    unknown = not_evaluated(engine, kept, index, as_of)
    failing: dict[tuple[str, str], list[Failing]] = defaultdict(list)
    waived: dict[tuple[str, str], list[Failing]] = defaultdict(list)
    who: dict[tuple[str, str], Finding] = {}
    for f in findings:
        active, _ = find_waiver(waivers, f.code, f.source, f.key, as_of.date())
        (waived if active else failing)[(f.source, f.key)].append(
            Failing(f.code, f.clause, f.severity)
        )
        who.setdefault((f.source, f.key), f)
    out = []
    for r in kept:
        at = (r.source, r.key)
        created = getattr(r, "created_at", None)
        first = who.get(at)
        out.append(
            PopulationRecord(
                source=r.source,
                key=r.key,
                process=r.process,
                created_at=created if isinstance(created, datetime) else None,
                assignee=first.assignee if first else None,
                group=first.group if first else None,
                url=first.url if first else r.url,
                failing=tuple(failing.get(at, ())),
                waived=tuple(waived.get(at, ())),
                unknown=tuple(unknown.get(at, ())),
            )
        )
    return out
