"""ServiceNow streams: what each one declares, and the reader that turns pages into batches.

A :class:`TableStream` is a small declaration in the shape of a singer-sdk stream: its
name (the process), table, primary key, replication key, the field that names a record
(``--key``), its state field, the fields it selects and the related tables it joins.
:class:`StreamReader` reads one: the related prefetch first (:mod:`.related`), then
keyset pages of the table (:mod:`.paging`), each page mapped into one
:class:`StreamBatch` whose watermark is the newest replication-key value read so far.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ticketlint.connectors.base import SourceError, StreamBatch
from ticketlint.connectors.servicenow.client import TableAPI
from ticketlint.connectors.servicenow.paging import by_update
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
)
from ticketlint.mapping.common import MappingReport, parse_servicenow_time
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
    ) -> None:
        self.source = source
        self.streams = streams
        self.api = api
        self.related = related
        self.mapper = mapper
        self.scopes = scopes
        self.lookback = lookback
        self.ci_names = ci_names
        """sys_id -> name of every CI read (resolves task references); shared, filled here."""

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
        selective = bool(query or keys)
        indexes: dict[str, RelatedIndex | None] = {}
        for spec in stream.related:
            bulk = self.related.use_bulk(spec, process, selective=selective)
            indexes[spec.table] = (
                self.related.prefetch(spec, process, start, pending) if bulk else None
            )
        try:
            keyset = by_update(since_clause, (stream.replication_key, stream.primary_key))
            for page in self.api.pages(table, fields, base, keyset=keyset):
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
                records, mapped = self.mapper.map_rows(
                    process,
                    ready,
                    approvals=joined.get(APPROVAL_TABLE),
                    task_ci=joined.get(TASK_CI_TABLE),
                    ci_names=self.ci_names,
                )
                report.merge(mapped)
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

    def read_late(self) -> Iterator[StreamBatch]:
        """The held late parents of every stream read so far, mapped with their related
        rows read by id (:meth:`RelatedRows.take_late`), one batch per process."""
        before = self.api.request_count
        report = MappingReport()
        for process, rows, related in self.related.take_late(report):
            records, mapped = self.mapper.map_rows(
                process,
                rows,
                approvals=related.get(APPROVAL_TABLE),
                task_ci=related.get(TASK_CI_TABLE),
                ci_names=self.ci_names,
            )
            report.merge(mapped)
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
