"""Repository functions over the store: records, watermarks, findings and runs.

Every function takes a :class:`~sqlalchemy.orm.Session` and leaves committing to the
caller, so the runner decides the transaction boundaries (one per upsert batch, one per
source for findings + watermarks). Record upserts are idempotent
(``INSERT .. ON CONFLICT DO UPDATE``): re-reading a page after a crash is harmless.

Our own write-back is not activity on a ticket. A Jira label or comment, a ServiceNow work
note moves the ticket's ``updated`` / ``sys_updated_on``, so a stale incident or problem
would look active on the next read and INC006 / PRB003 would resolve because of
ticketlint's own comment. The write-back log notes, per written ticket, the activity time
before our writes (``updated_before``) and the source's update time right after them
(``updated_after``). :func:`upsert_records` stores a record whose ``updated_at`` equals (to
the second) the ``updated_after`` of the newest done write-back of that ticket with
``updated_before`` instead: the only activity since was ours. Any later update by a
person gives another time and wins; records without write-back are stored as read.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import pairwise
from typing import Any

from pydantic_core import PydanticSerializationError
from sqlalchemy import Table, Text, cast, func, insert, select, text, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from ticketlint.mapping.model import BaseRecord, record_from_dict, record_from_json
from ticketlint.store.db import postgres_since, rows_matched
from ticketlint.store.jsontext import EncodedJSON, serialize
from ticketlint.store.lifecycle import ENDED, OPEN, RESOLVED, Change, Diff, StoredFinding
from ticketlint.store.models import (
    FindingEventRow,
    FindingRow,
    RecordRow,
    RunRow,
    UTCDateTime,
    WatermarkRow,
    WritebackRow,
)

UPSERT_CHUNK = 500  # rows per statement: well under SQLite's bound-parameter limit
RECORDS: Table = RecordRow.__table__  # type: ignore[assignment]  # a declarative class's Table
FINDINGS: Table = FindingRow.__table__  # type: ignore[assignment]
FINDING_EVENTS: Table = FindingEventRow.__table__  # type: ignore[assignment]
_FINDING_COLUMNS = {a.key: a.columns[0].key for a in FindingRow.__mapper__.column_attrs}
"""A finding row's column by attribute name: Core silently drops a key it does not know."""
FINDING_CHUNK = 500  # findings loaded and written per step of apply_diff_chunked


# --- records -------------------------------------------------------------------------


def record_row(record: BaseRecord, seen_at: datetime) -> dict[str, Any]:
    data: Any
    try:  # pydantic's own encoder: the same JSON as model_dump + json.dumps, in half the time
        data = EncodedJSON(record.model_dump_json(exclude={"raw"}))
    except PydanticSerializationError:  # a lone surrogate: the serializer escapes it
        data = record.model_dump(mode="json", exclude={"raw"})
    updated = record.updated_at if isinstance(record.updated_at, datetime) else None
    return {
        "source": record.source,
        "key": record.key,
        "process": record.process,
        "data": data,
        "raw": record.raw or {},
        "updated_at": updated,
        "seen_at": seen_at,
        "deleted": False,
    }


def upsert_records(
    session: Session,
    records: Sequence[BaseRecord],
    seen_at: datetime,
    *,
    own_writes_taken: bool = False,
    existing: Collection[tuple[str, str]] | None = None,
) -> int:
    """Insert or replace records by (source, key); un-deletes a record that came back.

    A record whose only activity since the last read was our write-back keeps the
    activity time from before it (see :func:`without_own_writes`; ``own_writes_taken``:
    the caller already passed them through it). ``existing``: the (source, key) pairs of
    these records the store holds, read in this transaction (:func:`stored_versions`);
    on PostgreSQL the others are written with ``COPY`` (:func:`_copy_new`)."""
    if not own_writes_taken:
        records = without_own_writes(session, records)
    rows_by_key = {(r.source, r.key): record_row(r, seen_at) for r in records}  # last wins
    rows = list(rows_by_key.values())
    count = len(rows)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" and existing is not None:
        new = [row for pair, row in rows_by_key.items() if pair not in existing]
        if new and _copy_new(session, new):
            rows = [row for pair, row in rows_by_key.items() if pair in existing]
    insert: Any = sqlite.insert
    if dialect == "postgresql":
        # Imported here: the PostgreSQL dialect (with its asyncpg module) costs a SQLite
        # store ~20-30 ms of every command's start-up.
        from sqlalchemy.dialects import postgresql

        insert = postgresql.insert
    # One statement with a parameter set per row (executemany), compiled once and cached:
    # a multi-row VALUES clause is compiled anew for every chunk (~half the upsert time).
    stmt = insert(RECORDS)
    stmt = stmt.on_conflict_do_update(
        index_elements=["source", "key"],
        set_={
            c: getattr(stmt.excluded, c)
            for c in ("process", "data", "raw", "updated_at", "seen_at", "deleted")
        },
    )
    for start in range(0, len(rows), UPSERT_CHUNK):
        session.execute(stmt, rows[start : start + UPSERT_CHUNK])
    return count


_COPY_COLUMNS = ("source", "key", "process", "data", "raw", "updated_at", "seen_at", "deleted")


def _copy_new(session: Session, rows: Sequence[dict[str, Any]]) -> bool:
    """Write rows of keys the store does not hold with one ``COPY`` (psycopg 3): the
    server parses a stream of rows instead of binding and executing an ``INSERT`` for
    each, most of its CPU in a first sync. Inside a savepoint: False, with nothing
    written, if another writer stored one of the keys since they were read (the
    caller's upsert then writes them all) or the driver is not psycopg 3."""
    dialect = session.get_bind().dialect
    if dialect.driver != "psycopg":
        return False
    from psycopg.errors import UniqueViolation

    stamp = UTCDateTime().process_bind_param
    columns = ", ".join(_COPY_COLUMNS)
    try:
        with session.begin_nested():
            # Asked for inside: the session emits the SAVEPOINT as the connection is taken.
            raw: Any = session.connection().connection.driver_connection  # psycopg's
            with (
                raw.cursor() as cursor,
                cursor.copy(f"COPY {RECORDS.name} ({columns}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(
                        (
                            row["source"],
                            row["key"],
                            row["process"],
                            serialize(row["data"]),
                            serialize(row["raw"]),
                            stamp(row["updated_at"], dialect),
                            stamp(row["seen_at"], dialect),
                            row["deleted"],
                        )
                    )
    except UniqueViolation:
        return False
    return True


@dataclass(frozen=True)
class StoredVersion:
    """What the store holds of a record before a batch is written: its normalised JSON,
    whether it is marked deleted, and when a read last stored it."""

    data: dict[str, Any]
    deleted: bool
    seen_at: datetime


def stored_versions(
    session: Session, pairs: Collection[tuple[str, str]]
) -> dict[tuple[str, str], StoredVersion]:
    """The stored versions of these (source, key) pairs that exist: one query per
    :data:`UPSERT_CHUNK` keys (a batch of the runner: one), which answers both
    :func:`changed_count` and :func:`stored_since` for the batch."""
    wanted = set(pairs)
    keys = sorted({key for _, key in wanted})
    sources = sorted({source for source, _ in wanted})
    out: dict[tuple[str, str], StoredVersion] = {}
    with _custom_plans(session):
        for start in range(0, len(keys), UPSERT_CHUNK):
            stmt = select(
                RecordRow.source,
                RecordRow.key,
                RecordRow.data,
                RecordRow.deleted,
                RecordRow.seen_at,
            ).where(
                RecordRow.source.in_(sources),
                RecordRow.key.in_(keys[start : start + UPSERT_CHUNK]),
            )
            for source, key, data, deleted, seen_at in session.execute(stmt):
                if (source, key) in wanted:
                    out[(source, key)] = StoredVersion(data, deleted, seen_at)
    return out


@contextmanager
def _custom_plans(session: Session) -> Iterator[None]:
    """On PostgreSQL (12 or later), the queries inside are planned for their parameters'
    values (``plan_cache_mode``, for this transaction only). psycopg prepares a statement
    run five times, and PostgreSQL's generic plan for a thousand keys is made without the
    values: before the store's statistics exist (a first sync) it reads every record of
    the source through the (source, deleted) index and compares each with the keys one by
    one, ~9 ms a batch of its CPU; a custom plan folds the keys into a constant, probed
    by hash (1.5 ms). SQLite plans every statement for its values anyway."""
    if not postgres_since(session.get_bind().dialect, (12,)):
        yield
        return
    session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    yield
    # Back to the session's own value (a role's or the server's setting), not to "auto".
    # Not on an error: the transaction is rolled back, and the setting with it.
    session.execute(text("SET LOCAL plan_cache_mode = DEFAULT"))


def changed_count(
    session: Session,
    records: Sequence[BaseRecord],
    *,
    own_writes_taken: bool = False,
    stored: Mapping[tuple[str, str], StoredVersion] | None = None,
) -> int:
    """How many of ``records`` differ from (or are missing in) the store: call it before
    :func:`upsert_records`. ``stored``: their :func:`stored_versions`, when the caller
    read them already (else read here). ``own_writes_taken`` as for
    :func:`upsert_records`."""
    if not own_writes_taken:
        records = without_own_writes(session, records)
    by_key = {(r.source, r.key): r for r in records}
    if stored is None:
        stored = stored_versions(session, by_key)
    changed = 0
    for pair, record in by_key.items():
        before = stored.get(pair)
        if (
            before is None
            or before.deleted
            or before.data != record.model_dump(mode="json", exclude={"raw"})
        ):
            changed += 1
    return changed


def runs_since_full(session: Session, source: str) -> tuple[int, RunRow | None]:
    """Completed runs of ``source`` since its last full read, and that run (None: never).

    A run counts when it finished the source (``sources[source].status == "ok"``); a killed
    run never finished it. Full: ``sources[source].full`` (runs before it was recorded: the
    run's ``--full`` option)."""
    count = 0
    stmt = (
        select(RunRow)
        .where(RunRow.status.in_(("ok", "failed")))
        .order_by(RunRow.id.desc())
        .execution_options(yield_per=200)
    )
    for run in session.scalars(stmt):
        entry = (run.sources or {}).get(source)
        if not isinstance(entry, dict) or entry.get("status") != "ok":
            continue
        if entry.get("full", bool((run.options or {}).get("full"))):
            return count, run
        count += 1
    return count, None


def last_source_run(session: Session, source: str) -> tuple[int, dict[str, Any]] | None:
    """The id of the newest run that finished ``source`` and the source's part of it
    (counts, records not checked, values not read), or None when none did."""
    stmt = (
        select(RunRow)
        .where(RunRow.status.in_(("ok", "failed")))
        .order_by(RunRow.id.desc())
        .execution_options(yield_per=50)
    )
    for run in session.scalars(stmt):
        entry = (run.sources or {}).get(source)
        if isinstance(entry, dict) and entry.get("status") == "ok":
            return run.id, entry
    return None


def _utc_second(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(microsecond=0)


def _parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def own_write_times(
    session: Session, pairs: Collection[tuple[str, str]]
) -> dict[tuple[str, str], tuple[datetime, datetime]]:
    """(updated_before, updated_after) of the newest done write-back that noted them, per
    (source, key). One query per :data:`UPSERT_CHUNK` keys (a batch of the runner: one)."""
    out: dict[tuple[str, str], tuple[int, datetime, datetime]] = {}
    wanted = set(pairs)
    keys = sorted({key for _, key in wanted})
    sources = sorted({source for source, _ in wanted})
    done = WritebackRow.state == "done"
    if (
        session.scalar(
            select(WritebackRow.id).where(done, WritebackRow.source.in_(sources)).limit(1)
        )
        is None
    ):
        return {}  # no write-back at all (most runs): spare the query by keys
    for start in range(0, len(keys), UPSERT_CHUNK):
        stmt = select(
            WritebackRow.id, WritebackRow.source, WritebackRow.key, WritebackRow.detail
        ).where(
            WritebackRow.state == "done",
            WritebackRow.source.in_(sources),
            WritebackRow.key.in_(keys[start : start + UPSERT_CHUNK]),
        )
        for row_id, source, key, detail in session.execute(stmt):
            if (source, key) not in wanted or not isinstance(detail, dict):
                continue
            before, after = (
                _parse_iso(detail.get("updated_before")),
                _parse_iso(detail.get("updated_after")),
            )
            if before is None or after is None:
                continue  # a write that noted no times (nothing sent, or the read failed)
            if (source, key) not in out or row_id > out[(source, key)][0]:
                out[(source, key)] = (row_id, before, after)
    return {pair: (before, after) for pair, (_, before, after) in out.items()}


def without_own_writes(session: Session, records: Sequence[BaseRecord]) -> list[BaseRecord]:
    """The records, each whose ``updated_at`` is (to the second) the time our last
    write-back left on the ticket carrying the activity time from before it instead.

    Use it on records read from a source before rules see them (:func:`upsert_records`
    does). A later human update gives another time: such records, and records without
    write-back, come back unchanged (the same objects)."""
    pairs = {(r.source, r.key) for r in records if isinstance(r.updated_at, datetime)}
    times = own_write_times(session, pairs) if pairs else {}
    if not times:
        return list(records)
    out: list[BaseRecord] = []
    for record in records:
        found = times.get((record.source, record.key))
        updated = record.updated_at
        if (
            found is not None
            and isinstance(updated, datetime)
            and _utc_second(updated) == _utc_second(found[1])
            and found[0] <= updated
        ):
            record = record.model_copy(update={"updated_at": found[0]})
        out.append(record)
    return out


def load_records(
    session: Session,
    source: str,
    *,
    with_raw: bool = True,
    processes: Collection[str] | None = None,
    yield_per: int = 500,
    ids: tuple[int, int] | None = None,
) -> Iterator[BaseRecord]:
    """Every stored, non-deleted record of a source, streamed (memory stays flat).

    ``with_raw=False`` leaves the source JSON out (``raw`` is ``{}``): most of a record's
    size, and no built-in rule reads it. ``processes`` keeps only records of those
    processes (the engine's index pass reads three of the six). ``ids``: only rows whose
    id is in this inclusive range (one of :func:`id_ranges`).
    """
    # The data column as its text: pydantic parses and validates it in one pass.
    data = cast(RecordRow.data, Text)
    columns = (RecordRow.process, data, RecordRow.raw) if with_raw else (RecordRow.process, data)
    stmt = select(*columns).where(RecordRow.source == source, RecordRow.deleted.is_(False))
    if processes is not None:
        stmt = stmt.where(RecordRow.process.in_(sorted(processes)))
    if ids is not None:
        stmt = stmt.where(RecordRow.id.between(*ids))
    stmt = stmt.order_by(RecordRow.id).execution_options(yield_per=yield_per)
    for row in session.execute(stmt):
        if with_raw:
            record = json.loads(row[1])
            record["raw"] = row[2] or {}
            yield record_from_dict(record)
        else:
            yield record_from_json(row[1], row[0])


def id_ranges(
    session: Session, source: str, processes: Collection[str], most: int, *, multiple: int = 1
) -> list[tuple[int, int]]:
    """The ids of a source's stored, non-deleted records of ``processes`` in inclusive
    ranges, in id order: the parts a parallel evaluation loads (``load_records(ids=...)``).
    As few ranges of at most ``most`` records as a multiple of ``multiple`` (the workers)
    allows, their sizes within one record of each other: every worker gets as many
    records, and a source smaller than ``most`` is still split among them."""
    ids = list(
        session.scalars(
            select(RecordRow.id)
            .where(
                RecordRow.source == source,
                RecordRow.deleted.is_(False),
                RecordRow.process.in_(sorted(processes)),
            )
            .order_by(RecordRow.id)
        )
    )
    if not ids:
        return []
    rounds = -(-len(ids) // (max(1, most) * max(1, multiple)))  # ceil
    parts = min(len(ids), rounds * max(1, multiple))
    bounds = [len(ids) * n // parts for n in range(parts + 1)]
    return [(ids[start], ids[end - 1]) for start, end in pairwise(bounds)]


def count_live(session: Session, source: str) -> int:
    """How many stored, non-deleted records the source has."""
    return (
        session.scalar(
            select(func.count())
            .select_from(RecordRow)
            .where(RecordRow.source == source, RecordRow.deleted.is_(False))
        )
        or 0
    )


def stored_keys(session: Session, source: str) -> set[str]:
    return set(
        session.scalars(
            select(RecordRow.key).where(RecordRow.source == source, RecordRow.deleted.is_(False))
        )
    )


def stored_since(
    session: Session,
    source: str,
    keys: Sequence[str],
    since: datetime,
    *,
    stored: Mapping[tuple[str, str], StoredVersion] | None = None,
) -> bool:
    """Whether a record of ``source`` with one of ``keys`` was stored at or after ``since``
    (this run's start: read earlier in the same run). ``stored``: the keys'
    :func:`stored_versions`, when the caller read them already (else read here)."""
    if stored is None:
        stored = stored_versions(session, [(source, key) for key in keys])
    for key in keys:
        version = stored.get((source, key))
        if version is not None and version.seen_at >= since:
            return True
    return False


def unseen_keys(session: Session, source: str, seen_since: datetime) -> list[str]:
    """Keys of live records not upserted since ``seen_since`` (gone, after a full read)."""
    return list(
        session.scalars(
            select(RecordRow.key).where(
                RecordRow.source == source,
                RecordRow.deleted.is_(False),
                RecordRow.seen_at < seen_since,
            )
        )
    )


def mark_unseen_deleted(session: Session, source: str, seen_since: datetime) -> list[str]:
    """After a full read: every record not seen since ``seen_since`` is deleted at the source."""
    keys = unseen_keys(session, source, seen_since)
    if keys:
        session.execute(
            update(RecordRow)
            .where(
                RecordRow.source == source,
                RecordRow.deleted.is_(False),
                RecordRow.seen_at < seen_since,
            )
            .values(deleted=True)
        )
    return keys


def get_record(session: Session, source: str, key: str) -> RecordRow | None:
    return session.scalar(select(RecordRow).where(RecordRow.source == source, RecordRow.key == key))


# --- watermarks ----------------------------------------------------------------------


def get_watermarks(session: Session, source: str) -> dict[str, datetime]:
    rows = session.scalars(select(WatermarkRow).where(WatermarkRow.source == source))
    return {row.stream: row.value for row in rows}


def set_watermark(
    session: Session, source: str, stream: str, value: datetime, run_id: int | None = None
) -> None:
    row = session.get(WatermarkRow, (source, stream))
    if row is None:
        session.add(WatermarkRow(source=source, stream=stream, value=value, run_id=run_id))
    elif value > row.value:  # never move a watermark backwards
        row.value, row.run_id = value, run_id


# --- findings ------------------------------------------------------------------------


def findings_of_source(session: Session, source: str) -> dict[str, FindingRow]:
    rows = session.scalars(select(FindingRow).where(FindingRow.source == source))
    return {row.fingerprint: row for row in rows}


def stored_view(rows: dict[str, FindingRow]) -> dict[str, StoredFinding]:
    return {
        fp: StoredFinding(fp, r.rule, r.source, r.key, r.state, r.waiver) for fp, r in rows.items()
    }


def stored_findings(session: Session, source: str) -> dict[str, StoredFinding]:
    """What the lifecycle diff needs of a source's stored findings, without loading rows.

    The same as ``stored_view(findings_of_source(...))`` at a fraction of the memory: no
    ORM objects, no evidence or detail JSON.
    """
    stmt = select(
        FindingRow.fingerprint,
        FindingRow.rule,
        FindingRow.source,
        FindingRow.key,
        FindingRow.state,
        FindingRow.waiver,
    ).where(FindingRow.source == source)
    return {
        fp: StoredFinding(fp, rule, src, key, state, waiver)
        for fp, rule, src, key, state, waiver in session.execute(stmt)
    }


def apply_diff(
    session: Session, rows: dict[str, FindingRow], diff: Diff, *, run_id: int | None, now: datetime
) -> None:
    """Write a lifecycle diff: new rows, state changes and their history events."""
    _apply_changes(session, rows, diff.changes, run_id=run_id, now=now)


def apply_diff_chunked(
    session: Session,
    source: str,
    diff: Diff,
    *,
    run_id: int | None,
    now: datetime,
    chunk: int = FINDING_CHUNK,
) -> None:
    """:func:`apply_diff` for a whole source without loading its finding rows.

    For ``chunk`` changes at a time, inside the caller's transaction: the ids and reopen
    counts of their stored rows (one query by fingerprint), one UPDATE by id for those
    rows (an executemany; no row, evidence or detail is read back), the new rows and the
    history events as :func:`apply_diff` writes them. The rows end as that leaves them
    (tests compare both); a whole source's ORM rows cost ~90 us a finding (1,800 findings
    of an incremental ServiceNow sync: 0.17 s)."""
    changes = diff.changes
    for start in range(0, len(changes), chunk):
        part = changes[start : start + chunk]
        stored = {
            fingerprint: (finding_id, reopened or 0)
            for finding_id, fingerprint, reopened in session.execute(
                select(FindingRow.id, FindingRow.fingerprint, FindingRow.reopened).where(
                    FindingRow.source == source,
                    FindingRow.fingerprint.in_([c.fingerprint for c in part]),
                )
            )
        }
        updates = [
            {"id": stored[c.fingerprint][0], **_values(c, now, stored[c.fingerprint][1])}
            for c in part
            if c.fingerprint in stored
        ]
        if updates:
            # ORM bulk UPDATE by primary key: one executemany per set of columns.
            session.execute(update(FindingRow), updates)
        ids = {fingerprint: finding_id for fingerprint, (finding_id, _) in stored.items()}
        ids.update(_insert_new(session, [c for c in part if c.fingerprint not in stored], now))
        _insert_events(session, part, ids, run_id=run_id, now=now)


def _apply_changes(
    session: Session,
    rows: dict[str, FindingRow],
    changes: Sequence[Change],
    *,
    run_id: int | None,
    now: datetime,
) -> None:
    """Rows first (new ones inserted at once, for their ids), then the history events
    in change order."""
    new: list[Change] = []
    for change in changes:
        row = rows.get(change.fingerprint)
        if row is None:
            assert change.finding is not None
            new.append(change)
            continue
        _apply(row, change, now)
    ids = _insert_new(session, new, now)
    if any(change.events for change in changes):
        session.flush()  # rows changed above are written before their events
        ids.update(
            (change.fingerprint, rows[change.fingerprint].id)
            for change in changes
            if change.fingerprint not in ids
        )
    _insert_events(session, changes, ids, run_id=run_id, now=now)


def _insert_new(session: Session, new: Sequence[Change], now: datetime) -> dict[str, int]:
    """Insert the rows of ``new`` findings; their ids by fingerprint.

    One executemany through SQLAlchemy Core, then the new ids read back by fingerprint
    (unique) per :data:`FINDING_CHUNK`: a 20,000-record first sync's 3,197 findings took
    ~97 ms where the ORM's bulk INSERT ... RETURNING took ~150 ms (its per-row work, and
    on SQLite one statement a row: RETURNING in parameter order needs a sentinel column
    SQLite lacks). The rows are inserted in ``new``'s order, as the unit of work did."""
    if not new:
        return {}
    column = _FINDING_COLUMNS  # Core takes column names: the attribute `group` is `group_name`
    values = [
        {
            column[name]: value
            for name, value in (
                ("fingerprint", c.fingerprint),
                ("first_seen", now),
                ("reopened", 0),
                *_values(c, now, 0).items(),
            )
        }
        for c in new
    ]
    # Core compiles an executemany from the first row's keys and drops another row's
    # extra keys without a word: every row must set the same columns (_values does).
    if any(row.keys() != values[0].keys() for row in values):
        raise RuntimeError("new finding rows set different columns")
    session.execute(insert(FINDINGS), values)
    ids: dict[str, int] = {}
    for start in range(0, len(new), FINDING_CHUNK):
        part = [c.fingerprint for c in new[start : start + FINDING_CHUNK]]
        found = session.execute(
            select(FindingRow.fingerprint, FindingRow.id).where(FindingRow.fingerprint.in_(part))
        )
        ids.update((fingerprint, finding_id) for fingerprint, finding_id in found)
    return ids


def _insert_events(
    session: Session,
    changes: Sequence[Change],
    ids: dict[str, int],
    *,
    run_id: int | None,
    now: datetime,
) -> None:
    """The history events of ``changes``, in change order, in one executemany."""
    events = [
        {
            "finding_id": ids[change.fingerprint],
            "run_id": run_id,
            "kind": e.kind,
            "at": now,
            "detail": e.detail,
        }
        for change in changes
        for e in change.events
    ]
    if events:  # Core: the attribute names are the column names
        session.execute(insert(FINDING_EVENTS), events)


def _values(change: Change, now: datetime, reopened: int) -> dict[str, Any]:
    """The columns a change sets on its finding row (``reopened``: the row's count so far)."""
    f = change.finding
    values: dict[str, Any] = {"state": change.state}
    if f is not None:
        values.update(
            rule=f.code,
            source=f.source,
            key=f.key,
            process=f.process,
            severity=f.severity,
            message=f.message,
            evidence=f.evidence,
            assignee=f.assignee,
            group=f.group,
            url=f.url,
            detail=f.to_dict(),
            last_seen=now,
            waiver=change.waiver,
        )
        if change.reopens:
            values["reopened"] = reopened + 1
        if change.state not in ENDED:
            values.update(resolved_at=None, resolution=None)
    if change.state in ENDED:
        values.update(resolved_at=now, resolution=change.resolution, waiver=None)
    return values


def _apply(row: FindingRow, change: Change, now: datetime) -> None:
    for name, value in _values(change, now, row.reopened or 0).items():
        setattr(row, name, value)


def finding_events(session: Session, finding_id: int) -> list[FindingEventRow]:
    return list(
        session.scalars(
            select(FindingEventRow)
            .where(FindingEventRow.finding_id == finding_id)
            .order_by(FindingEventRow.at, FindingEventRow.id)
        )
    )


# --- runs ----------------------------------------------------------------------------


def start_run(
    session: Session, *, started_at: datetime, as_of: datetime, options: dict[str, Any]
) -> RunRow:
    run = RunRow(started_at=started_at, as_of=as_of, status="running", options=options, sources={})
    session.add(run)
    session.flush()
    return run


def mark_interrupted(session: Session, before: datetime) -> int:
    """Runs left 'running' by a killed process (we hold the lock, so they are dead)."""
    result = session.execute(
        update(RunRow)
        .where(RunRow.status == "running", RunRow.started_at < before)
        .values(status="interrupted")
    )
    return rows_matched(result)


def finish_run(
    session: Session, run_id: int, *, status: str, sources: dict[str, Any], finished_at: datetime
) -> None:
    run = session.get(RunRow, run_id)
    assert run is not None
    run.status, run.sources, run.finished_at = status, sources, finished_at


__all__ = [
    "OPEN",
    "RESOLVED",
    "StoredVersion",
    "apply_diff",
    "apply_diff_chunked",
    "changed_count",
    "finding_events",
    "findings_of_source",
    "finish_run",
    "get_record",
    "get_watermarks",
    "last_source_run",
    "load_records",
    "mark_interrupted",
    "mark_unseen_deleted",
    "own_write_times",
    "runs_since_full",
    "set_watermark",
    "start_run",
    "stored_findings",
    "stored_keys",
    "stored_since",
    "stored_versions",
    "stored_view",
    "unseen_keys",
    "upsert_records",
    "without_own_writes",
]


# --- reading findings (the ``findings`` command) ----------------------------------------


def query_findings(
    session: Session,
    *,
    state: str = "open",
    rule: str | None = None,
    source: str | None = None,
    assignee: str | None = None,
    group: str | None = None,
    since: datetime | None = None,
) -> list[FindingRow]:
    """Stored findings by filters; ``since`` keeps those with any history event at or after it."""
    stmt = select(FindingRow)
    if state != "all":
        stmt = stmt.where(FindingRow.state == state)
    if rule:
        stmt = stmt.where(FindingRow.rule == rule.upper())
    if source:
        stmt = stmt.where(FindingRow.source == source)
    if assignee:
        stmt = stmt.where(FindingRow.assignee == assignee)
    if group:
        stmt = stmt.where(FindingRow.group == group)
    if since is not None:
        stmt = stmt.where(
            select(FindingEventRow.id)
            .where(FindingEventRow.finding_id == FindingRow.id, FindingEventRow.at >= since)
            .exists()
        )
    return list(session.scalars(stmt.order_by(FindingRow.id)))


class AmbiguousReference(LookupError):
    """A fingerprint prefix matches more than one finding."""


def find_finding(session: Session, ref: str) -> FindingRow | None:
    """A finding by numeric id or by fingerprint prefix (at least 4 hex digits)."""
    ref = ref.strip()
    if ref.isdigit() and len(ref) < 10:
        row = session.get(FindingRow, int(ref))
        if row is not None:
            return row
    if len(ref) < 4:
        return None
    rows = list(
        session.scalars(
            select(FindingRow).where(FindingRow.fingerprint.startswith(ref.lower())).limit(5)
        )
    )
    if len(rows) > 1:
        raise AmbiguousReference(
            f"{ref!r} matches several findings ({', '.join(str(r.id) for r in rows)}"
            f"{', ...' if len(rows) == 5 else ''}); give more of the fingerprint"
        )
    return rows[0] if rows else None


# --- waivers applied at once (``waive add`` / ``waive remove``) ------------------------


def waive_matching(session: Session, waiver: Any, *, today: Any, now: datetime) -> int:
    """Mark the open findings a new waiver covers as waived (the next sync agrees)."""
    count = 0
    for row in session.scalars(select(FindingRow).where(FindingRow.state == OPEN)):
        if waiver.matches(row.rule, row.source, row.key) and waiver.active(today):
            row.state, row.waiver = "waived", waiver.id
            session.add(
                FindingEventRow(
                    finding_id=row.id,
                    run_id=None,
                    kind="waived",
                    at=now,
                    detail=f"by {waiver.describe()}: {waiver.reason}",
                )
            )
            count += 1
    return count


def unwaive(session: Session, waiver_id: str, *, now: datetime) -> int:
    """Reopen the findings a removed waiver held."""
    count = 0
    for row in session.scalars(
        select(FindingRow).where(FindingRow.state == "waived", FindingRow.waiver == waiver_id)
    ):
        row.state, row.waiver = OPEN, None
        session.add(
            FindingEventRow(
                finding_id=row.id,
                run_id=None,
                kind="unwaived",
                at=now,
                detail=f"waiver {waiver_id} was removed",
            )
        )
        count += 1
    return count
