"""Related rows (approvals, CI links): the bulk prefetch, the join, late parents, id lists.

One bulk stream per related table, joined in memory. ``sysapproval_approver`` (change,
service_request) and ``task_ci`` (incident, change, problem) are read *before* the parent
stream that needs them, as one keyset-paged stream (``ORDERBYsys_id``, the page size of
the parents) filtered by dot-walked conditions on the parent::

    sysapproval.sys_class_nameINSTANCEOFchange_request^sysapproval.sys_updated_on>=S[^sysapproval.<scope>]
    ^NQsysapproval.sys_class_nameINSTANCEOFsc_req_item^sysapproval.sys_updated_on>=S'...^ORDERBYsys_id

Encoded queries dot-walk reference fields (``task.sys_class_name=incident`` on
``task_sla`` / ``task_ci`` is the usual example), ``INSTANCEOF`` keeps records of tables
that extend the configured one, and ``sysparm_fields`` dot-walks too: each related row
also brings ``<ref>.sys_updated_on``, the parent's update time *as the related read saw
it*. One stream serves every process that uses the table (``^NQ`` per class, each with
its own window and its scope dot-walked by :func:`.query.walk_query`), so the approvals of
changes and requests cost ``ceil(A / page)`` pages, not one partial page per process,
and never one request per parent page. Windows: a process's own ``since - lookback``;
the windows of processes not read yet come from :meth:`RelatedRows.plan` (the runner
knows every stream's watermark) or else from the current one minus
:data:`RELATED_SLACK`; a later stream whose window the prefetch does not cover reads its
own. The index is dropped once every process that uses it has been read.

Memory: related rows are kept as tuples of the requested columns with repeated strings
(parent ids, approvers, states, names) shared: about 0.2 KB per approval, 20 MB per
100k approvals (measured with tracemalloc in ``tests/connectors/test_servicenow_connector.py``),
held only while the processes that need them are read.

Races (a parent or its related rows changing between the two reads). A parent row is
joined with the prefetched rows only when it is certainly unchanged since they were read:
every prefetched row of it recorded the same ``<ref>.sys_updated_on`` the parent stream
now shows, or it has no prefetched rows and its update time is before ``R`` = the
server's ``Date`` at the start of the related read minus the lookback (commit delays and
clock skew, as for watermarks). Any other parent ("late": changed during or after the
related read, or a row the window did not hold then) is held back and has its related
rows read by id (``<ref>IN...``, :data:`RELATED_CHUNK` ids a request): once per related
table for the late parents of every stream, after the last stream that uses related rows
(:meth:`RelatedRows.plan` says which will be read; without it, after each stream).
They are few, since keyset order puts recently changed parents at the end, and their
records come out in a batch of their own (``watermark`` None: their stream's batches
already counted their update times; the runner commits watermarks only with the source's
findings, after every batch is stored). A related row added *without* its parent
changing is seen when the parent next changes (as with per-page reads). ``{}`` related
rows are counted as warnings; related rows of parents never read (deleted, out of scope)
are dropped with the index.

Fallback. If the instance refuses the dot-walked query (HTTP 400 / 403: query ACLs on
``task`` fields, a proxy), the connector switches to the ``...IN`` id lists per page of
parents for the rest of its life, and says so (``related_path``, ``doctor``). An instance
with ``glide.invalid_query.returns_no_rows=true`` that cannot evaluate the dot-walk answers
with *no rows* instead: an empty bulk answer is believed only once the server has shown it
resolves dot-walks (a row with ``<ref>.sys_updated_on``, or one probe row matching
``<ref>.sys_idISNOTEMPTY``) or the table is empty (one plain probe row); else the id lists.
``--key`` and ``--query`` reads, and processes whose scope cannot be dot-walked, always
use ids.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ticketlint.connectors.base import SourceError
from ticketlint.connectors.servicenow.client import TableAPI, table_params
from ticketlint.connectors.servicenow.paging import BY_ID, Keyset
from ticketlint.connectors.servicenow.query import (
    ORDER_BY_ID,
    check_scope,
    format_time,
    join_query,
    walk_query,
)
from ticketlint.mapping.common import MappingReport, parse_servicenow_time
from ticketlint.mapping.servicenow import (
    APPROVAL_FIELDS,
    APPROVAL_TABLE,
    TASK_CI_FIELDS,
    TASK_CI_TABLE,
)

log = logging.getLogger(__name__)

RELATED_CHUNK = 300
"""Default ids per ``...IN`` query. 300 sys_ids make a ~10 KB URL, under Tomcat's header
limit that long ServiceNow filters are known to hit (~16 KB), and the instance's Link
header, which repeats that URL up to four times, stays under the 64 KB line limit of
HTTP clients (Python's http.client among them). More ids per query would save requests
but fail on real instances."""

RELATED_SLACK = timedelta(hours=2)
"""Without :meth:`RelatedRows.plan`, the related prefetch reaches this much further
back for the processes not read yet than for the current one: their watermarks are
unknown, and on a busy instance they lie close together."""
BULK_REFUSED = (400, 403)

APPROVAL_PROCESSES = frozenset({"change", "service_request"})
TASK_CI_PROCESSES = frozenset({"change", "incident", "problem"})


@dataclass(frozen=True)
class RelatedSpec:
    """A related table: its columns, the reference to the parent task, who uses it."""

    table: str
    fields: tuple[str, ...]
    ref: str
    processes: frozenset[str]

    @property
    def parent_time(self) -> str:
        return f"{self.ref}.sys_updated_on"


RELATED = (
    RelatedSpec(APPROVAL_TABLE, tuple(APPROVAL_FIELDS), "sysapproval", APPROVAL_PROCESSES),
    RelatedSpec(TASK_CI_TABLE, tuple(TASK_CI_FIELDS), "task", TASK_CI_PROCESSES),
)
SPECS = {spec.table: spec for spec in RELATED}
SILENT_EMPTY = "matched no row although the table has rows"
_ABSENT = object()
_MIXED = "\x00mixed"

Rows = list[dict[str, Any]]


def ref_value(row: dict[str, Any], ref: str) -> str:
    """The parent sys_id a related row points at (a reference link object, if sent)."""
    value = row.get(ref)
    if isinstance(value, dict):
        value = value.get("value")
    return value if isinstance(value, str) else ""


def by_parent(rows: Sequence[dict[str, Any]], ref: str) -> dict[str, Rows]:
    out: dict[str, Rows] = {}
    for row in rows:
        out.setdefault(ref_value(row, ref), []).append(row)
    return out


@dataclass
class Late:
    """A parent row held back because its prefetched related rows may be out of date."""

    row: dict[str, Any]
    known: dict[str, Rows]
    """Related rows that are current (tables where the parent was fresh, or read by id)."""
    stale: tuple[str, ...]
    """Related tables to read by id before the parent can be mapped."""


class RelatedIndex:
    """Prefetched related rows of one table, keyed by parent sys_id (module docstring).

    Rows are tuples of the requested columns (``_ABSENT`` where the row lacks one, so
    the mapper still tells absent from empty); repeated strings are shared."""

    def __init__(
        self, spec: RelatedSpec, windows: dict[str, datetime | None], ready: datetime
    ) -> None:
        self.spec = spec
        self.columns = tuple(f for f in spec.fields if f != spec.ref)
        self.windows = windows
        """process -> the start of the window read (None: all time)."""
        self.ready = ready
        """R: parents updated before this and without related rows have none."""
        self.by_parent: dict[str, list[tuple[Any, ...]]] = {}
        self.parent_seen: dict[str, str] = {}
        """parent sys_id -> its sys_updated_on as the related rows showed it (_MIXED if they
        disagree, "" if the server did not return the dot-walked column)."""
        self.rows = 0
        self._strings: dict[str, str] = {}

    def covers(self, process: str, start: datetime | None) -> bool:
        if process not in self.windows:
            return False
        have = self.windows[process]
        return have is None or (start is not None and have <= start)

    def add(self, row: dict[str, Any]) -> None:
        parent = ref_value(row, self.spec.ref)
        if not parent:
            return
        share = self._strings.setdefault
        parent = share(parent, parent)
        values = tuple(
            share(v, v) if isinstance(v, str) else v
            for v in (row.get(c, _ABSENT) for c in self.columns)
        )
        self.by_parent.setdefault(parent, []).append(values)
        self.rows += 1
        seen = row.get(self.spec.parent_time)
        seen = share(seen, seen) if isinstance(seen, str) else ""
        before = self.parent_seen.setdefault(parent, seen)
        if before != seen:
            self.parent_seen[parent] = _MIXED

    def fresh(self, row: dict[str, Any]) -> bool:
        """True when the prefetched rows of this parent row are certainly current."""
        updated = row.get("sys_updated_on")
        seen = self.parent_seen.get(row["sys_id"])
        if seen == _MIXED:
            return False  # the parent changed while its related rows were being read
        if seen:
            return seen == updated
        try:
            when = parse_servicenow_time(updated)
        except ValueError:
            return False
        return isinstance(when, datetime) and when < self.ready

    def rows_for(self, parent: str) -> Rows:
        ref = self.spec.ref
        return [
            {
                ref: parent,
                **{c: v for c, v in zip(self.columns, values, strict=False) if v is not _ABSENT},
            }
            for values in self.by_parent.get(parent, ())
        ]


class RelatedRows:
    """How one connector reads related rows: bulk streams while the instance takes the
    dot-walked queries, else id lists; the held late parents (module docstring)."""

    def __init__(
        self,
        api: TableAPI,
        *,
        source: str,
        tables: Mapping[str, str],
        scopes: Mapping[str, str],
        lookback: timedelta,
        chunk: int,
        bulk: bool,
    ) -> None:
        self.api = api
        self.source = source
        self.tables = tables
        """process -> its table, in stream order (the streams this connector reads)."""
        self.streams = tuple(tables)
        self.scopes = scopes
        self.lookback = lookback
        self.chunk = chunk
        self.path = "bulk" if bulk else "in-list (configured)"
        """How related rows are read: "bulk" (dot-walked streams) or "in-list (why)"."""
        self.bulk_ok = bulk
        self.dotwalk_proven = False
        """The server has answered a dot-walked column or condition (see dotwalk_answers)."""
        self.planned: dict[str, datetime | None] | None = None
        self.indexes: dict[str, RelatedIndex] = {}
        self.late: dict[str, list[Late]] = {}
        """process -> parents held until their related rows are read by id (take_late)."""
        self.read_done: set[str] = set()

    # -- plan and windows
    def plan(self, since: Mapping[str, datetime | None]) -> None:
        """The streams that will be read, and each one's ``since`` (see the connector)."""
        self.planned = dict(since)

    def walked_scope(self, spec: RelatedSpec, process: str) -> str | None:
        """The process's scope as conditions on ``spec``'s table (None: not possible)."""
        try:
            scope = check_scope(self.scopes.get(process), f"sources[].query.{process}")
        except ValueError:
            return None
        return walk_query(scope, spec.ref)

    def _window(self, process: str, current: str, start: datetime | None) -> datetime | None:
        """The start of the related window for ``process`` when ``current`` is being read."""
        if process == current:
            return start
        if self.planned is not None and process in self.planned:
            since = self.planned[process]
            return None if since is None else since - self.lookback
        return None if start is None else start - RELATED_SLACK

    def use_bulk(self, spec: RelatedSpec, process: str, *, selective: bool) -> bool:
        """Whether ``process`` reads ``spec`` from a bulk stream (``selective``: a
        ``--query`` or ``--key`` read, which always reads by id)."""
        return self.bulk_ok and not selective and self.walked_scope(spec, process) is not None

    # -- the bulk stream
    def prefetch(
        self, spec: RelatedSpec, process: str, start: datetime | None, report: MappingReport
    ) -> RelatedIndex | None:
        """The bulk related stream covering ``process`` from ``start`` (reused when an
        earlier prefetch covers it); None when the instance refuses it (use id lists)."""
        index = self.indexes.get(spec.table)
        if index is not None and index.covers(process, start):
            return index
        windows: dict[str, datetime | None] = {}
        groups: list[str] = []
        for p in self.streams:
            if p not in spec.processes or (p != process and p in self.read_done):
                continue
            scope = self.walked_scope(spec, p)
            if scope is None:
                continue
            windows[p] = self._window(p, process, start)
            since = windows[p]
            groups.append(
                join_query(
                    f"{spec.ref}.sys_class_nameINSTANCEOF{self.tables[p]}",
                    None if since is None else f"{spec.parent_time}>={format_time(since)}",
                    scope,
                )
            )
        self.indexes.pop(spec.table, None)  # one index per table: free the old one first
        fields = [*spec.fields, spec.parent_time]

        def first(_: str) -> str:
            return f"{'^NQ'.join(groups)}^{ORDER_BY_ID}"

        def after(_: str, key: tuple[str, ...]) -> str:
            return "^NQ".join(join_query(g, f"sys_id>{key[0]}") for g in groups) + f"^{ORDER_BY_ID}"

        self.api.server_time = None
        index = None
        try:
            for page in self.api.pages(
                spec.table, fields, "", keyset=Keyset(("sys_id",), first, after)
            ):
                if index is None:
                    # R: the instance's clock when the read began, minus the lookback
                    began = self.api.server_time or datetime.now(timezone.utc)
                    index = RelatedIndex(spec, windows, began - self.lookback)
                    if page.rows:
                        self.api.check_fields(report, spec.table, page.rows, spec.fields)
                if page.inaccessible:
                    report.warnings[f"{spec.table}: inaccessible rows skipped"] += page.inaccessible
                for row in page.rows:
                    index.add(row)
        except SourceError as exc:
            if exc.status not in BULK_REFUSED:
                raise
            self.use_id_lists(
                f"the dot-walked query on {spec.table} was refused: HTTP {exc.status}"
            )
            report.warnings[
                f"{spec.table}: dot-walked query refused (HTTP {exc.status}); read by id"
            ] += 1
            return None
        if index is None:  # no related row at all: every parent read before now has none
            began = self.api.server_time or datetime.now(timezone.utc)
            index = RelatedIndex(spec, windows, began - self.lookback)
        if any(index.parent_seen.values()):
            self.dotwalk_proven = True  # the server resolved the dot-walked column
        elif not index.rows and not self.dotwalk_proven and not self.dotwalk_answers(spec):
            self.use_id_lists(f"the dot-walked query on {spec.table} {SILENT_EMPTY}")
            report.warnings[
                f"{spec.table}: dot-walked query answered with no rows; read by id"
            ] += 1
            return None
        self.indexes[spec.table] = index
        return index

    def use_id_lists(self, why: str) -> None:
        """Read related rows by id lists per page of parents from now on, and say why."""
        self.bulk_ok = False
        self.indexes.clear()
        self.path = f"in-list ({why})"
        log.warning("%s: %s; reading related rows by id lists per page", self.source, self.path)

    def dotwalk_answers(self, spec: RelatedSpec) -> bool:
        """Whether an empty bulk answer can be believed. An instance with
        ``glide.invalid_query.returns_no_rows=true`` that cannot evaluate the dot-walked
        terms (query ACLs on the parent's fields) answers *no rows* instead of an error,
        which would map every approval and CI link as absent. One probe row with a
        dot-walked condition that any linked row meets; if none, one plain probe row:
        rows there mean the dot-walk is what failed."""
        walked = self.api.get_result(
            spec.table, table_params([spec.ref], f"{spec.ref}.sys_idISNOTEMPTY^{ORDER_BY_ID}", 1)
        )
        if any(isinstance(r, dict) and r for r in walked):
            self.dotwalk_proven = True
            return True
        plain = self.api.get_result(spec.table, table_params([spec.ref], ORDER_BY_ID, 1))
        return not plain  # an empty table: nothing to miss

    # -- id lists
    def read_by_id(
        self,
        spec: RelatedSpec,
        ids: Sequence[str],
        report: MappingReport,
        checked: set[str],
    ) -> Rows:
        """Rows of ``spec``'s table whose reference is one of ``ids``: bulk, keyset-paged
        on sys_id, never one request per record."""
        table, fields = spec.table, spec.fields
        out: Rows = []
        size = self.chunk
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            for page in self.api.pages(
                table, fields, f"{spec.ref}IN{','.join(chunk)}", keyset=BY_ID, counted=True
            ):
                if page.rows and table not in checked:
                    checked.add(table)
                    self.api.check_fields(report, table, page.rows, fields)
                if page.inaccessible:
                    report.warnings[f"{table}: inaccessible rows skipped"] += page.inaccessible
                out.extend(page.rows)
        return out

    # -- the join
    def join(
        self,
        process: str,
        indexes: Mapping[str, RelatedIndex | None],
        rows: Sequence[dict[str, Any]],
        report: MappingReport,
        checked: set[str],
    ) -> tuple[Rows, dict[str, Rows]]:
        """Split a page of parents: those whose prefetched related rows are certainly current
        (returned with them) and the late ones (held in :attr:`late` for :meth:`take_late`).
        Tables read by id lists (no index) are read for the whole page here."""
        ids = [r["sys_id"] for r in rows]
        joined: dict[str, Rows] = {
            t: [] if index is not None else self.read_by_id(SPECS[t], ids, report, checked)
            for t, index in indexes.items()
        }  # the mapper joins by parent id
        by_id = {
            t: by_parent(joined[t], SPECS[t].ref) for t, index in indexes.items() if index is None
        }
        ready: Rows = []
        for row in rows:
            stale = tuple(
                t for t, index in indexes.items() if index is not None and not index.fresh(row)
            )
            if not stale:
                ready.append(row)
                for t, index in indexes.items():
                    if index is not None:
                        joined[t].extend(index.rows_for(row["sys_id"]))
                continue
            known = {
                t: index.rows_for(row["sys_id"])
                for t, index in indexes.items()
                if index is not None and t not in stale
            }
            known.update((t, grouped.get(row["sys_id"], [])) for t, grouped in by_id.items())
            self.late.setdefault(process, []).append(Late(row, known, stale))
        return ready, joined

    # -- late parents
    def last_reader(self, process: str) -> bool:
        """Whether no stream after ``process`` that the consumer will read (``plan``) uses
        related rows: the late parents are then read now. Without a plan, after each stream."""
        if self.planned is None or process not in self.streams:
            return True
        later = self.streams[self.streams.index(process) + 1 :]
        return not any(p in self.planned and p in spec.processes for p in later for spec in RELATED)

    def take_late(self, report: MappingReport) -> list[tuple[str, Rows, dict[str, Rows]]]:
        """The held late parents of every stream read so far (process, parent rows, related
        rows by table), their related rows read by id: one ``...IN`` read per related
        table for all of them (module docstring). The reads' warnings go to ``report``."""
        late, self.late = self.late, {}
        fetched: dict[str, dict[str, Rows]] = {}
        for spec in RELATED:
            ids = list(
                dict.fromkeys(
                    h.row["sys_id"] for held in late.values() for h in held if spec.table in h.stale
                )
            )
            if not ids:
                continue
            report.warnings[
                f"{spec.table}: related rows re-read for parents changed since the bulk read"
            ] += len(ids)
            fetched[spec.table] = by_parent(self.read_by_id(spec, ids, report, set()), spec.ref)
        out: list[tuple[str, Rows, dict[str, Rows]]] = []
        for process, held in late.items():
            related: dict[str, Rows] = {}
            for spec in RELATED:
                if process in spec.processes:
                    per_parent: dict[str, Rows] = {}  # a parent held twice: once
                    for h in held:
                        per_parent[h.row["sys_id"]] = (
                            fetched.get(spec.table, {}).get(h.row["sys_id"], [])
                            if spec.table in h.stale
                            else h.known.get(spec.table, [])
                        )
                    related[spec.table] = [x for rows in per_parent.values() for x in rows]
            out.append((process, [h.row for h in held], related))
        return out

    def finish(self, process: str, *, selective: bool) -> None:
        """After a stream: drop related indexes no process still to be read needs
        (``selective``: a ``--query`` or ``--key`` read, which changes nothing)."""
        if selective:
            return
        self.read_done.add(process)
        for table, index in list(self.indexes.items()):
            if all(p in self.read_done for p in index.windows):
                del self.indexes[table]
