"""Re-check one ticket: re-read it from its source, evaluate, store, write back, notify.

The webhook only names the ticket; everything evaluated comes from the source itself
(``Connector.read(stream, keys=[...])`` for Jira, ``query="sys_id=..."`` for
ServiceNow). The record is upserted and the findings *of that ticket* are diffed and
applied in one transaction, the same way :meth:`ticketlint.sync.runner.SyncRunner._commit` does for
a whole source:

- the diff is scoped to findings whose subject is this ticket and whose rule is a
  record rule; aggregate findings (PRB004, one per configuration item) need every
  incident of the source and stay with the nightly sync;
- cross-record record rules get what they read from the index: the configuration items
  the ticket references (CFG003) and the changes a release links (REL001), loaded from
  the store, and "does this source sync CIs" answered as the runner would;
- the store never goes backwards: a re-read older than the stored version (Jira's search
  index lags a moment behind an edit) is not written, and the caller tries again shortly.

After the commit: write-back for the ticket (``ticketlint.plugin.writeback.write_for_keys``) when
``writeback.enabled``, and an immediate chat message for newly failing high or critical
findings (``ticketlint.notify.post_immediate``) when destinations are configured. Both modules
are optional; their absence is logged once.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import or_, select

from ticketlint.config import Config
from ticketlint.connectors.base import Connector
from ticketlint.mapping.model import BaseRecord, ReleaseRecord, record_from_dict
from ticketlint.plugin.serve.coalesce import TicketRef
from ticketlint.rules.engine import Engine, Finding
from ticketlint.store import lifecycle
from ticketlint.store import repository as repo
from ticketlint.store.db import Store, retry_locked
from ticketlint.store.lifecycle import Diff
from ticketlint.store.models import FindingRow, RecordRow
from ticketlint.store.waivers import all_waivers
from ticketlint.sync.runner import (
    ConnectorFactory,
    SourceConfig,
    default_connector_factory,
    default_engine_factory,
)

log = logging.getLogger(__name__)

IMMEDIATE_SEVERITIES = frozenset({"high", "critical"})
STALE_TOLERANCE = timedelta(seconds=1)
CONNECTOR_TTL = 900.0
"""Seconds a source's connector (and the field list / statuses it learnt) is reused."""


@dataclass
class RecheckResult:
    source: str
    key: str
    outcome: str
    """updated | unchanged | not_found | deleted | stale"""
    diff: Diff = field(default_factory=Diff)
    immediate: list[Finding] = field(default_factory=list)
    retry_after: float | None = None

    def counts(self) -> Counter[str]:
        return self.diff.counts()


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class _CachedConnector:
    def __init__(self, connector: Connector, opened: float) -> None:
        self.connector, self.opened = connector, opened
        self.lock = threading.Lock()
        self.seeded = False


class Rechecker:
    """Callable by :class:`~ticketlint.plugin.serve.coalesce.CoalescingQueue` (returns a retry delay)."""

    def __init__(
        self,
        cfg: Config,
        store: Store,
        *,
        engine: Engine | None = None,
        connector_factory: ConnectorFactory | None = None,
        clock: Callable[[], datetime] = _utcnow,
        connector_ttl: float = CONNECTOR_TTL,
        on_result: Callable[[RecheckResult], None] | None = None,
    ) -> None:
        self.cfg, self.store, self.clock = cfg, store, clock
        self.engine = engine or default_engine_factory(cfg)
        self.connector_factory = connector_factory or default_connector_factory
        self.connector_ttl = connector_ttl
        self.on_result = on_result
        self._record_rules = {r.code for r in self.engine.rules if r.kind != "aggregate"}
        self._aggregate_rules = {r.code for r in self.engine.rules if r.kind == "aggregate"}
        self._connectors: dict[str, _CachedConnector] = {}
        self._connectors_lock = threading.Lock()
        self._missing_logged: set[str] = set()
        self.hook_errors: Counter[str] = Counter()
        """Failed write-back / chat calls by module (``/metrics``)."""

    def __call__(self, ref: TicketRef) -> float | None:
        result = self.recheck(ref)
        if self.on_result is not None:
            self.on_result(result)
        return result.retry_after

    # -- the re-check ----------------------------------------------------------------
    def recheck(self, ref: TicketRef) -> RecheckResult:
        source_cfg = self.cfg.source(ref.source)
        started = time.monotonic()
        with self._connector(source_cfg) as connector:
            records = self._reread(source_cfg, connector, ref)
        result = self._gone(ref) if not records else self._evaluate_and_commit(ref, records[-1])
        if result.outcome in ("updated", "deleted"):
            self._after_commit(result)
        log.info(
            "re-check %s %s: %s %s in %.2fs",
            ref.source,
            ref.key,
            result.outcome,
            dict(result.counts()),
            time.monotonic() - started,
        )
        return result

    def _reread(
        self, source_cfg: SourceConfig, connector: Connector, ref: TicketRef
    ) -> list[BaseRecord]:
        found: list[BaseRecord] = []
        if source_cfg.type == "servicenow":
            process = self._process_of_table(connector, ref.table)
            if process is None:
                log.warning(
                    "%s: table %r is not one ticketlint reads; ignored", ref.source, ref.table
                )
                return []
            self._seed_ci_names(source_cfg.name, connector)
            # sys_id is hexadecimal; anything else never reaches the query (no injection).
            for batch in connector.read(process, query=f"sys_id={ref.key}"):
                found += [r for r in batch.records if r.source == source_cfg.name]
            return found
        # Jira: the stream the ticket was stored under first, then the others (a new
        # ticket, or one whose issue type changed). The Assets CI stream has no keys.
        stored = self._stored_process(source_cfg.name, ref.key)
        streams = [s for s in connector.streams if s != "ci"]
        streams.sort(key=lambda s: s != stored)
        for stream in streams:
            for batch in connector.read(stream, keys=[ref.key]):
                found += [r for r in batch.records if r.source == source_cfg.name]
            if found:
                break
        return found

    def _gone(self, ref: TicketRef) -> RecheckResult:
        """The source does not return the ticket. A deletion event confirmed by the source
        resolves its findings as "record deleted"; anything else (out of scope, no
        permission) changes nothing and is left to the nightly sync."""
        if not ref.deleted:
            return RecheckResult(ref.source, ref.key, "not_found")
        key = self._stored_key(ref)
        diff = self._commit_deleted(ref.source, key) if key is not None else Diff()
        return RecheckResult(
            ref.source, key or ref.key, "deleted" if diff.changes else "not_found", diff
        )

    def _evaluate_and_commit(self, ref: TicketRef, record: BaseRecord) -> RecheckResult:
        result = RecheckResult(ref.source, record.key, "updated")
        stale = (
            ref.hint_updated is not None
            and isinstance(record.updated_at, datetime)
            and record.updated_at < ref.hint_updated - STALE_TOLERANCE
        )
        if stale:
            result.retry_after = 0.3 * (2**ref.attempt)
        as_of = self.clock()
        with self.store.session() as s:  # our own write-back is not the team's activity
            record = repo.without_own_writes(s, [record])[0]
        context, ci_sources = self._context(record)
        evaluation = self.engine.evaluate([record, *context], as_of=as_of, ci_sources=ci_sources)
        findings = [
            f
            for f in evaluation.findings
            if f.source == record.source and f.key == record.key and f.code in self._record_rules
        ]
        diff = self._commit(record, findings, as_of)
        if diff is None:  # the store already holds a newer version
            result.outcome, result.retry_after = (
                "stale",
                result.retry_after or 0.3 * (2**ref.attempt),
            )
            return result
        result.diff = diff
        if not diff.changes or all(c.kind in ("open", "still_waived") for c in diff.changes):
            result.outcome = "unchanged" if not stale else "stale"
        result.immediate = [
            c.finding
            for c in diff.changes
            if c.kind in ("new", "reopened")
            and c.finding is not None
            and c.finding.severity in IMMEDIATE_SEVERITIES
        ]
        return result

    # -- store --------------------------------------------------------------------------
    def _stored_process(self, source: str, key: str) -> str | None:
        with self.store.session() as s:
            return s.scalar(
                select(RecordRow.process).where(RecordRow.source == source, RecordRow.key == key)
            )

    def _stored_key(self, ref: TicketRef) -> str | None:
        """The stored record's key for an event's identifier: the ServiceNow sys_id or a
        Jira issue id is the record's ``native_id``; a Jira issue key is its key."""
        native = RecordRow.data["native_id"].as_string()
        with self.store.session() as s:
            return s.scalar(
                select(RecordRow.key)
                .where(
                    RecordRow.source == ref.source, or_(RecordRow.key == ref.key, native == ref.key)
                )
                .limit(1)
            )

    def _context(self, record: BaseRecord) -> tuple[list[BaseRecord], set[str]]:
        """The stored records the ticket's cross-record rules look up, and the sources
        that sync CIs (the runner's answer: any stored CI of the source)."""
        source = record.source
        refs = [r for r in (getattr(record, "ci_refs", None) or []) if r and r.strip()]
        changes = (
            [link.key for link in record.links or [] if link.kind == "change"]
            if isinstance(record, ReleaseRecord)
            else []
        )
        out: list[BaseRecord] = []
        with self.store.session() as s:
            live = (RecordRow.source == source, RecordRow.deleted.is_(False))
            has_cis = s.scalar(
                select(RecordRow.id).where(*live, RecordRow.process == "ci").limit(1)
            )
            if refs:
                native = RecordRow.data["native_id"].as_string()
                out += [
                    record_from_dict(d)
                    for d in s.scalars(
                        select(RecordRow.data).where(
                            *live,
                            RecordRow.process == "ci",
                            or_(RecordRow.key.in_(refs), native.in_(refs)),
                        )
                    )
                ]
            if changes:
                out += [
                    record_from_dict(d)
                    for d in s.scalars(
                        select(RecordRow.data).where(
                            *live, RecordRow.process == "change", RecordRow.key.in_(changes)
                        )
                    )
                ]
        out = [r for r in out if r.key != record.key]
        if record.process == "ci":
            has_cis = True
        return out, ({source} if has_cis else set())

    def _scoped_rows(self, s: Any, source: str, key: str) -> dict[str, FindingRow]:
        rows = s.scalars(
            select(FindingRow).where(FindingRow.source == source, FindingRow.key == key)
        )
        return {r.fingerprint: r for r in rows if r.rule not in self._aggregate_rules}

    @retry_locked
    def _commit(self, record: BaseRecord, findings: list[Finding], as_of: datetime) -> Diff | None:
        now = self.clock()
        with self.store.session() as s, s.begin():
            stored = repo.get_record(s, record.source, record.key)
            if (
                stored is not None
                and not stored.deleted
                and stored.updated_at is not None
                and isinstance(record.updated_at, datetime)
                and record.updated_at < stored.updated_at
            ):
                return None
            repo.upsert_records(s, [record], now)
            rows = self._scoped_rows(s, record.source, record.key)
            diff = lifecycle.diff(
                repo.stored_view(rows),
                findings,
                waivers=all_waivers(s, self.cfg),
                as_of=as_of,
                selected_rules=self._record_rules,
            )
            repo.apply_diff(s, rows, diff, run_id=None, now=now)
        return diff

    @retry_locked
    def _commit_deleted(self, source: str, key: str) -> Diff:
        now = self.clock()
        with self.store.session() as s, s.begin():
            stored = repo.get_record(s, source, key)
            if stored is None:
                return Diff()
            stored.deleted = True
            rows = self._scoped_rows(s, source, key)
            diff = lifecycle.diff(
                repo.stored_view(rows),
                [],
                waivers=all_waivers(s, self.cfg),
                as_of=now,
                deleted_keys={(source, key)},
                selected_rules=self._record_rules,
            )
            repo.apply_diff(s, rows, diff, run_id=None, now=now)
        return diff

    # -- connectors ---------------------------------------------------------------------
    @contextmanager
    def _connector(self, source_cfg: SourceConfig) -> Iterator[Connector]:
        """One connector per source, reused for ``connector_ttl`` seconds (it caches the
        site's field list and statuses) and used by one re-check at a time."""
        with self._connectors_lock:
            cached = self._connectors.get(source_cfg.name)
            if cached is None or time.monotonic() - cached.opened > self.connector_ttl:
                if cached is not None:
                    self._close_quietly(cached)
                cached = _CachedConnector(self.connector_factory(source_cfg), time.monotonic())
                self._connectors[source_cfg.name] = cached
        with cached.lock:
            try:
                yield cached.connector
            except Exception:
                # A broken session (auth revoked, site moved) is rebuilt next time.
                with self._connectors_lock:
                    if self._connectors.get(source_cfg.name) is cached:
                        del self._connectors[source_cfg.name]
                self._close_quietly(cached)
                raise

    @staticmethod
    def _close_quietly(cached: _CachedConnector) -> None:
        try:
            cached.connector.close()
        except Exception:  # closing is best effort
            log.debug("closing a connector failed", exc_info=True)

    def close(self) -> None:
        with self._connectors_lock:
            for cached in self._connectors.values():
                self._close_quietly(cached)
            self._connectors.clear()

    @staticmethod
    def _process_of_table(connector: Connector, table: str | None) -> str | None:
        table_of = getattr(connector, "table", None)
        for process in connector.streams:
            name = table_of(process) if callable(table_of) else process
            if name == table:
                return process
        return None

    def _seed_ci_names(self, source: str, connector: Connector) -> None:
        """ServiceNow resolves a task's CI sys_ids to names with the CIs it read; a single
        ticket read sees none, so hand it the stored CIs' names (once per connector)."""
        names = getattr(connector, "ci_names", None)
        if not isinstance(names, dict) or names:
            return
        with self.store.session() as s:
            native = RecordRow.data["native_id"].as_string()
            for key, sys_id in s.execute(
                select(RecordRow.key, native).where(
                    RecordRow.source == source,
                    RecordRow.process == "ci",
                    RecordRow.deleted.is_(False),
                )
            ):
                if sys_id:
                    names[sys_id] = key

    # -- write-back and chat --------------------------------------------------------------
    def _after_commit(self, result: RecheckResult) -> None:
        if self.cfg.writeback.enabled:
            self._optional(
                "ticketlint.plugin.writeback",
                "write_for_keys",
                self.store,
                self.cfg,
                result.source,
                [result.key],
            )
        if self.cfg.notify and result.immediate:
            self._optional(
                "ticketlint.notify",
                "post_immediate",
                self.store,
                self.cfg,
                result.immediate,
                source=result.source,
                key=result.key,
            )

    def _optional(self, module: str, func: str, *args: Any, **kwargs: Any) -> Any:
        """Call an optional module's function; a missing module or a failure is logged and
        never undoes the committed re-check."""
        try:
            hook = getattr(importlib.import_module(module), func, None)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module.startswith(exc.name):
                raise
            hook = None
        if not callable(hook):
            if module not in self._missing_logged:
                self._missing_logged.add(module)
                log.warning("%s.%s is not available in this installation; skipped", module, func)
            return None
        try:
            return hook(*args, **kwargs)
        except Exception:
            log.exception("%s.%s failed", module, func)
            self.hook_errors[module] += 1
            return None
