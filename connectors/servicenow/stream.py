"""ServiceNow streams: what each one declares, and the reader that turns pages into batches.

A :class:`TableStream` is a small declaration in the shape of a singer-sdk stream: its
name (the process), table, primary key, replication key, the field that names a record
(``--key``), its state field, the fields it selects and the related tables it joins.
:class:`StreamReader` reads one: the related prefetch first (:mod:`.related`), then
keyset pages of the table (:mod:`.paging`), each page mapped into one
:class:`StreamBatch` whose watermark is the newest replication-key value read so far.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ticketlint.connectors.base import SourceError, StreamBatch
from ticketlint.connectors.readahead import PAGES_AHEAD, prefetched
from ticketlint.connectors.servicenow.client import TableAPI
from ticketlint.connectors.servicenow.paging import BY_ID, by_update
from ticketlint.connectors.servicenow.query import (
    check_scope,
    format_time,
    join_query,
    keys_clause,
)
from ticketlint.connectors.servicenow.related import (
    RELATED,
    RelatedIndex,
    RelatedRows,
    RelatedSpec,
    ref_value,
)
from ticketlint.mapping.common import MappingReport, parse_servicenow_time
from ticketlint.mapping.model import BaseRecord
from ticketlint.mapping.servicenow import (
    APPROVAL_TABLE,
    DEFAULT_TABLES,
    TASK_CI_TABLE,
    ServiceNowMapper,
)

STREAM_ORDER = ("ci", "incident", "change", "problem", "service_request", "release")
"""ci first: the CI names it collects resolve references of the task streams."""
KEY_FIELD = {"ci": "name"}
STATE_FIELD = {"ci": "install_status"}


@dataclass(frozen=True)
class TableStream:
    """One ServiceNow stream: a process read from one table."""

    name: str
    """The process (``incident``, ``change``, ...)."""
    table: str
    fields: tuple[str, ...]
    """``sysparm_fields``: only what the mapping reads."""
    related: tuple[RelatedSpec, ...]
    """Related tables joined to each row (approvals, CI links)."""
    replication_key: str = "sys_updated_on"
    primary_key: str = "sys_id"
    record_key: str = "number"
    """The field ``--key`` names records by."""
    state_field: str = "state"


def declare_streams(mapper: ServiceNowMapper) -> dict[str, TableStream]:
    """Every stream this mapper maps, in read order (ci first)."""
    return {
        process: TableStream(
            name=process,
            table=mapper.table(process),
            fields=tuple(mapper.fields_for(process)),
            related=tuple(spec for spec in RELATED if process in spec.processes),
            record_key=KEY_FIELD.get(process, "number"),
            state_field=STATE_FIELD.get(process, "state"),
        )
        for process in STREAM_ORDER
        if process in DEFAULT_TABLES
    }


def newest(
    rows: Sequence[dict[str, Any]], current: datetime | None, field: str = "sys_updated_on"
) -> datetime | None:
    """The watermark: the largest ``field`` (the replication key) read (bad values are the
    mapper's to report; they cannot move the watermark)."""
    for row in rows:
        try:
            updated = parse_servicenow_time(row.get(field))
        except ValueError:
            continue
        if updated is not None and (current is None or updated > current):
            current = updated
    return current


class StreamReader:
    """Reads the streams of one source into mapped batches (module docstring)."""

    def __init__(
        self,
        *,
        source: str,
        streams: Mapping[str, TableStream],
        api: TableAPI,
        related: RelatedRows,
        mapper: ServiceNowMapper,
        scopes: Mapping[str, str],
        lookback: timedelta,
        ci_names: dict[str, str],
        setup: Callable[[MappingReport], None] | None = None,
    ) -> None:
        self.setup = setup
        """Called before each stream's reads with the report of its first page (the
        connector reads the data dictionary there, once per run)."""
        self.source = source
        self.streams = streams
        self.api = api
        self.related = related
        self.mapper = mapper
        self.scopes = scopes
        self.lookback = lookback
        self.ci_names = ci_names
        """sys_id -> name of every CI read (resolves task references); shared, filled here."""
        self._changed_related: dict[tuple[str, datetime], list[str]] = {}
        """(related table, window start) -> parents of its rows changed since then."""

    def read(
        self,
        name: str,
        *,
        since: datetime | None = None,
        query: str | None = None,
        keys: Sequence[str] | None = None,
    ) -> Iterator[StreamBatch]:
        """Mapped batches, one per page, of stream ``name`` changed since ``since`` minus
        the lookback (``query`` is ANDed with the configured scope; ``keys`` picks records)."""
        stream = self.streams.get(name)
        if stream is None:
            raise SourceError(
                self.source, f"unknown stream {name!r} (streams: {', '.join(self.streams)})"
            )
        process, table, fields = stream.name, stream.table, list(stream.fields)
        try:
            base = join_query(
                check_scope(self.scopes.get(process), f"sources[].query.{process}"),
                check_scope(query, "query"),
                keys_clause(stream.record_key, keys),
            )
        except ValueError as exc:
            raise SourceError(self.source, str(exc)) from exc
        since_clause = ""
        start: datetime | None = None
        if since is not None:
            start = since - self.lookback
            since_clause = f"{stream.replication_key}>={format_time(start)}"
        watermark: datetime | None = None
        checked: set[str] = set()  # tables whose first rows were checked against the fields
        before = self.api.request_count
        pending = MappingReport()  # warnings of the related prefetch, handed out with page 1
        if self.setup is not None:
            self.setup(pending)
        selective = bool(query or keys)
        indexes: dict[str, RelatedIndex | None] = {}
        for spec in stream.related:
            bulk = self.related.use_bulk(spec, process, selective=selective)
            indexes[spec.table] = (
                self.related.prefetch(spec, process, start, pending) if bulk else None
            )
        seen: set[str] = set()  # parents read by this stream (the related re-read skips them)
        try:
            keyset = by_update(since_clause, (stream.replication_key, stream.primary_key))
            # The next page is requested while this one is joined and mapped.
            pages = prefetched(self.api.pages(table, fields, base, keyset=keyset), PAGES_AHEAD)
            for page in pages:
                seen.update(r["sys_id"] for r in page.rows)
                report, pending = pending, MappingReport()
                if page.rows and table not in checked:
                    checked.add(table)
                    self.api.check_fields(report, table, page.rows, fields)
                if page.offset_fallback:
                    report.warnings[
                        f"{table}: a page held only inaccessible rows; paged by offset"
                    ] += 1
                if process == "ci":
                    for row in page.rows:
                        if isinstance(row.get("name"), str) and row["name"]:
                            self.ci_names[row["sys_id"]] = row["name"]
                ready, joined = self.related.join(process, indexes, page.rows, report, checked)
                records = self._map(process, ready, joined, report)
                report.skipped_empty += page.inaccessible  # the mapper's own count for `{}` rows
                # held rows too: see related.Late
                watermark = newest(page.rows, watermark, stream.replication_key)
                now = self.api.request_count
                yield StreamBatch(
                    stream=name,
                    records=records,
                    report=report,
                    watermark=watermark,
                    requests=now - before,
                )
                before = now
            if start is not None and not selective:
                yield from self.read_related_changed(stream, base, start, seen, watermark)
        finally:
            self.related.finish(process, selective=selective)
        if pending.warnings:  # a stream with no rows still reports its prefetch's warnings
            yield StreamBatch(
                stream=name,
                records=[],
                report=pending,
                watermark=watermark,
                requests=self.api.request_count - before,
            )
        if self.related.late and self.related.last_reader(process):
            yield from self.read_late()

    def _map(
        self,
        process: str,
        rows: list[dict[str, Any]],
        related: Mapping[str, Any],
        report: MappingReport,
    ) -> list[BaseRecord]:
        """Rows of one process mapped with their related rows; the mapper's report merged
        into ``report``."""
        records, mapped = self.mapper.map_rows(
            process,
            rows,
            approvals=related.get(APPROVAL_TABLE),
            task_ci=related.get(TASK_CI_TABLE),
            ci_names=self.ci_names,
        )
        report.merge(mapped)
        return records

    def changed_parents(self, spec: RelatedSpec, start: datetime) -> list[str]:
        """Parents of ``spec.table`` rows changed since ``start`` (their own update time):
        one keyset read per related table and window, shared by the processes using it."""
        cache_key = (spec.table, start)
        if cache_key not in self._changed_related:
            parents: dict[str, None] = {}
            query = f"sys_updated_on>={format_time(start)}"
            for page in self.api.pages(spec.table, ["sys_id", spec.ref], query, keyset=BY_ID):
                parents.update((ref_value(r, spec.ref), None) for r in page.rows)
            parents.pop("", None)
            self._changed_related[cache_key] = list(parents)
        return self._changed_related[cache_key]

    def read_related_changed(
        self,
        stream: TableStream,
        base: str,
        start: datetime,
        seen: set[str],
        watermark: datetime | None,
    ) -> Iterator[StreamBatch]:
        """Parents whose approvals or CI links changed since ``start`` without the parent
        itself changing (deciding or resetting an approval, linking a CI touch only their
        own rows): read again by id, within the scope, with all their related rows.

        Without this an incremental read keeps a parent's old approvals until the parent
        next changes, and a finding that still holds (CHG002: work started before the
        approval) is closed as resolved. Related rows *deleted* without their parent
        changing cannot be seen this way; the periodic full reconcile catches them."""
        specs = list(stream.related)
        if not specs:
            return
        process, table, fields = stream.name, stream.table, list(stream.fields)
        before = self.api.request_count
        wanted = list(
            dict.fromkeys(
                p for spec in specs for p in self.changed_parents(spec, start) if p not in seen
            )
        )
        report = MappingReport()
        checked: set[str] = {table, *(spec.table for spec in specs)}
        for i in range(0, len(wanted), self.related.chunk):
            chunk = wanted[i : i + self.related.chunk]
            keyset = by_update("", (stream.replication_key, stream.primary_key))
            rows = [
                row
                for page in self.api.pages(
                    table, fields, join_query(base, f"sys_idIN{','.join(chunk)}"), keyset=keyset
                )
                for row in page.rows
            ]
            if not rows:
                continue
            seen.update(r["sys_id"] for r in rows)
            ids = [r["sys_id"] for r in rows]
            related = {
                spec.table: self.related.read_by_id(spec, ids, report, checked) for spec in specs
            }
            report.warnings[f"{table}: parents re-read because their related rows changed"] += len(
                rows
            )
            records = self._map(process, rows, related, report)
            now = self.api.request_count
            # these parents did not change: the stream's watermark stays what its pages said
            yield StreamBatch(
                stream=process,
                records=records,
                report=report,
                watermark=watermark,
                requests=now - before,
            )
            report, before = MappingReport(), now
        if self.api.request_count > before:  # the changed-rows read found nothing to re-read
            yield StreamBatch(
                stream=process,
                records=[],
                report=report,
                watermark=watermark,
                requests=self.api.request_count - before,
            )

    def read_late(self) -> Iterator[StreamBatch]:
        """The held late parents of every stream read so far, mapped with their related
        rows read by id (:meth:`RelatedRows.take_late`), one batch per process."""
        before = self.api.request_count
        report = MappingReport()
        for process, rows, related in self.related.take_late(report):
            records = self._map(process, rows, related, report)
            now = self.api.request_count
            # watermark None: the parents' own stream already counted their update times
            yield StreamBatch(
                stream=process,
                records=records,
                report=report,
                watermark=None,
                requests=now - before,
            )
            report, before = MappingReport(), now
