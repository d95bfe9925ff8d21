"""The sync run: lock, incremental read per source and stream, evaluation, lifecycle diff.

Crash safety rests on one ordering rule: a stream's watermark moves only in the same
transaction that commits the source's findings, after all its records are stored. Record
batches are committed as they arrive (idempotent upserts), so a process killed anywhere
re-reads from the old watermark next time and produces exactly the findings an
uninterrupted run would. A failed source keeps its watermark and findings; the others
commit. Notification and write-back hooks run after the commits (see :func:`_after_run`).

Memory stays flat in the number of stored records: evaluation streams them from the store
(:func:`_evaluate_source`): a light first pass fills the engine's cross-record index from
only the processes it reads, without raw JSON; a second pass feeds the records to the
engine in chunks of :data:`EVAL_CHUNK` (with raw JSON only when a selected rule reads it).
A full read (a first sync, a reconcile) needs neither pass: every live record of the
source is one it just stored, so they are checked as they are stored (:class:`_ReadCheck`)
unless only the store can answer exactly (a ticket read twice, a CI after other records,
rules that may read any record, ``--dry-run``).
Only the source's findings are kept, and the diff reads the stored findings as plain
values and writes them back in chunks (:func:`ticketlint.store.repository.apply_diff_chunked`).

Test hooks (read from the environment, used only by tests that run a real subprocess):
``TICKETLINT_TEST_CONNECTOR=module:factory`` builds connectors (``factory(source_cfg)``),
``TICKETLINT_TEST_ENGINE=module:factory`` builds the engine (``factory(cfg)``) and
``TICKETLINT_TEST_CRASH_AT=after-upsert|before-commit|after-commit|mid-notify[:N]`` ends
the process with ``os._exit(137)`` at that point (the Nth time it is passed; default the
first), as a kill would: between pages, mid-store, after the commit, mid-notify.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ticketlint.config import Config, ConfigError, JiraSource, ServiceNowSource
from ticketlint.connectors.base import Connector, SourceError, StreamBatch, plan_reads
from ticketlint.connectors.readahead import ReadAhead, reader_switching
from ticketlint.mapping.common import MappingReport
from ticketlint.mapping.model import PROCESSES, BaseRecord
from ticketlint.packing import pack, unpack
from ticketlint.rules.engine import (
    Engine,
    Evaluation,
    Finding,
    RecordIndex,
    index_and_defer,
    sort_findings,
)
from ticketlint.store import lifecycle
from ticketlint.store import repository as repo
from ticketlint.store.db import Store, open_reader, open_store, retry_locked
from ticketlint.store.lifecycle import Diff
from ticketlint.store.waivers import all_waivers
from ticketlint.sync import reconcile
from ticketlint.sync.hooks import RunHooks
from ticketlint.sync.lock import LockBusy, SyncLock
from ticketlint.sync.progress import Progress, StreamStats, SummaryRow

log = logging.getLogger(__name__)

CRASH_ENV = "TICKETLINT_TEST_CRASH_AT"
CONNECTOR_ENV = "TICKETLINT_TEST_CONNECTOR"
ENGINE_ENV = "TICKETLINT_TEST_ENGINE"
CRASH_POINTS = ("after-upsert", "before-commit", "after-commit", "mid-notify")
EVAL_CHUNK = 500  # records per engine step: bounded memory, negligible per-chunk overhead
READ_AHEAD = 2  # batches read and mapped ahead of the one being stored
PARALLEL_EVAL_RECORDS = 2_000
"""An evaluation from the store of at least this many records runs on every CPU by default.
Forking the workers costs ~0.05 s; loading and checking a stored record ~60 us of one
CPU. An incremental sync (1% changed, SQLite, 2 CPUs; medians of 4 runs alternating) took
3.78 s -> 3.44 s at 20,415 records (a 9,000-record Jira source had run in one process
under the former 10,000) and 2.61 s -> 2.51 s at 6,000."""
EVAL_TASK_RECORDS = 5_000  # at most this many records a task (what a worker loads at once)
NOT_CHECKED_STORED = 20  # records not checked listed in the run row (all are counted)

SourceConfig = JiraSource | ServiceNowSource
ConnectorFactory = Callable[[SourceConfig], Connector]
EngineFactory = Callable[[Config], Engine]


@dataclass
class SyncOptions:
    source: str | None = None
    full: bool = False
    as_of: datetime | None = None
    dry_run: bool = False
    notify: bool = True
    writeback: bool = True
    jobs: int | None = None
    """Processes that evaluate the stored records (None: :meth:`SyncRunner._evaluation_jobs`)."""


@dataclass
class SourceResult:
    name: str
    status: str = "ok"
    """ok | failed"""
    error: str | None = None
    streams: dict[str, StreamStats] = field(default_factory=dict)
    report: MappingReport = field(default_factory=MappingReport)
    records_read: int = 0
    requests: int = 0
    evaluated: int = 0
    rule_errors: list[str] = field(default_factory=list)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per rule code: outcome status -> count (PASS, FAIL, NOT_APPLICABLE, NOT_EVALUATED)."""
    not_evaluated: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per rule code: why it could not be evaluated -> count."""
    deleted: list[str] = field(default_factory=list)
    """Keys of records gone since the last read (a full reconcile only)."""
    full: bool = False
    """Read whole (``--full``, a first read, or the periodic reconcile): gone records seen."""
    changed: int = 0
    """Records read whose stored version differed (or that were new)."""
    watermarks: dict[str, datetime] = field(default_factory=dict)
    """Per stream, where the watermark moved to (only streams it moved for)."""
    diff: Diff = field(default_factory=Diff)
    seconds: float = 0.0

    @property
    def not_checked(self) -> list[dict[str, Any]]:
        """Records read that were not checked (no identity, not an object, a type that
        maps to no process), with key and reason: :meth:`MappingReport.not_checked`."""
        return self.report.not_checked()

    @property
    def none_checked(self) -> bool:
        """The source returned records and not one of them could be checked: the run
        says so with exit code 2, as ``check`` does (a mapping that fits nothing must
        never read as "no findings")."""
        return (
            self.status == "ok"
            and self.records_read == 0
            and bool(self.report.errors or self.report.skipped)
        )

    @property
    def unchanged(self) -> int:
        return max(0, self.records_read - self.changed)

    def reads_text(self) -> str:
        """One line: what was read and where the watermark moved (``sync`` prints it)."""
        marks = ", ".join(
            f"{stream} {value.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}"
            for stream, value in sorted(self.watermarks.items())
        )
        return (
            f"{self.name}: {'full reconcile' if self.full else 'incremental'}: "
            f"{self.records_read} records read, {self.changed} changed, "
            f"{self.unchanged} unchanged, {len(self.deleted)} gone; "
            f"watermark {('moved to ' + marks) if marks else 'unchanged'}"
        )

    def summary(self) -> SummaryRow:
        counts = self.diff.counts()
        return SummaryRow(
            source=self.name,
            status=self.status,
            read=self.report.rows or self.records_read,
            mapped=self.report.mapped or self.records_read,
            not_checked=len(self.report.errors) + len(self.report.skipped),
            unreadable=sum(self.report.unreadable.values()),
            new=counts["new"],
            resolved=counts["resolved"],
            reopened=counts["reopened"],
            waived=counts["waived"],
            open_by_severity=dict(self.diff.open_by_severity()),
            seconds=self.seconds,
        )

    def to_dict(self, not_checked_limit: int | None = NOT_CHECKED_STORED) -> dict[str, Any]:
        """The source's part of the run: stored in the run row (``not_checked`` lists the
        first ``not_checked_limit`` records not checked) and, with every record not
        checked (``None``), in ``sync``'s JSON summary line."""
        unchecked = self.not_checked
        return {
            "status": self.status,
            "error": self.error,
            "records_read": self.records_read,
            "requests": self.requests,
            "evaluated": self.evaluated,
            "streams": {
                k: {"records": v.records, "pages": v.pages, "seconds": round(v.seconds, 3)}
                for k, v in self.streams.items()
            },
            "mapping": {
                "rows": self.report.rows,
                "mapped": self.report.mapped,
                "errors": len(self.report.errors),
                "skipped_empty": self.report.skipped_empty,
                "skipped": len(self.report.skipped),
                "not_checked": len(unchecked),
                "unreadable": [
                    {"field": f, "reason": r, "count": n}
                    for (f, r), n in sorted(self.report.unreadable.items())
                ],
            },
            "not_checked": unchecked[:not_checked_limit],
            "findings": dict(self.diff.counts()),
            "open_by_severity": dict(self.diff.open_by_severity()),
            "deleted": len(self.deleted),
            "gone": len(self.deleted),
            "full": self.full,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "watermarks": {
                k: v.astimezone(timezone.utc).isoformat() for k, v in self.watermarks.items()
            },
            "rule_errors": self.rule_errors[:20],
            "outcomes": self.outcomes,
            "not_evaluated": self.not_evaluated,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class SyncResult:
    run_id: int | None
    as_of: datetime
    dry_run: bool
    sources: list[SourceResult] = field(default_factory=list)
    busy: str | None = None
    """Set when another sync held the lock: nothing was done."""
    interrupted: str | None = None
    """The source being synced when Ctrl-C (or SIGTERM) stopped the run: its work of
    this run was rolled back; the sources in :attr:`sources` before it are committed."""
    pending: list[str] = field(default_factory=list)
    """Sources an interrupted run did not reach (or was in): unchanged in the store."""

    @property
    def exit_code(self) -> int:
        if self.interrupted is not None:
            return 130
        failed = any(s.status == "failed" or s.none_checked for s in self.sources)
        return 2 if failed else 0


# --- factories and test hooks --------------------------------------------------------


def _from_spec(spec: str) -> Any:
    """The attribute a ``module:attr`` test hook names; the caller declares its type."""
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def default_connector_factory(source_cfg: SourceConfig) -> Connector:
    if os.environ.get(CONNECTOR_ENV):
        factory: ConnectorFactory = _from_spec(os.environ[CONNECTOR_ENV])
        return factory(source_cfg)
    from ticketlint.connectors import open_connector

    return open_connector(source_cfg)


def default_engine_factory(cfg: Config) -> Engine:
    if os.environ.get(ENGINE_ENV):
        engine_factory: EngineFactory = _from_spec(os.environ[ENGINE_ENV])
        return engine_factory(cfg)
    from ticketlint.rules.selection import engine_from_config

    return engine_from_config(cfg)


_crash_passes: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """Die here, as ``kill -9`` would, when a test asks for it (``name`` or ``name:N``)."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _crash_passes[name] += 1
    if _crash_passes[name] >= int(nth or 1):
        os._exit(137)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --- the run -------------------------------------------------------------------------


class SyncRunner:
    def __init__(
        self,
        cfg: Config,
        options: SyncOptions,
        *,
        store: Store | None = None,
        connector_factory: ConnectorFactory | None = None,
        engine_factory: EngineFactory | None = None,
        progress: Progress | None = None,
        clock: Callable[[], datetime] = _utcnow,
        hooks: RunHooks | None = None,
    ) -> None:
        self.cfg, self.options = cfg, options
        self.hooks = hooks or RunHooks()
        self.sources: list[SourceConfig] = (
            [cfg.source(options.source)] if options.source else list(cfg.sources)
        )
        if not self.sources:
            raise ConfigError(cfg.path, ["sources: no source is configured; nothing to sync"])
        self.engine = (engine_factory or default_engine_factory)(cfg)
        self.store = store or open_store(cfg.database)
        self.connector_factory = connector_factory or default_connector_factory
        self.progress = progress or Progress()
        self.clock = clock
        self._ahead: _SourceRead | None = None
        """The next source's read, started while the last one's stored records are checked."""
        self._full = options.full
        """Whether the source being synced is read whole (see :meth:`_reconcile_due`)."""

    def run(self) -> SyncResult:
        started = self.clock()
        as_of = self.options.as_of or started
        result = SyncResult(run_id=None, as_of=as_of, dry_run=self.options.dry_run)
        try:
            lock = SyncLock(self.store, [s.name for s in self.sources]).__enter__()
        except LockBusy as exc:
            result.busy = str(exc)
            return result
        try:
            if not self.options.dry_run:
                result.run_id = self._start_run(started, as_of)
            for i, source_cfg in enumerate(self.sources):
                following = self.sources[i + 1] if i + 1 < len(self.sources) else None
                try:
                    res = self._sync_source(source_cfg, started, as_of, result.run_id, following)
                except KeyboardInterrupt:
                    # The source's open transaction was rolled back on the way out; the
                    # sources before it are committed. Say so in the store at once.
                    result.interrupted = source_cfg.name
                    result.pending = [s.name for s in self.sources[i:]]
                    if result.run_id is not None:
                        self._finish_run(result)
                    return result
                result.sources.append(res)
            if not self.options.dry_run:
                self._finish_run(result)
        finally:
            if self._ahead is not None:  # an interrupted run: stop the next source's reader
                self._ahead.close()
                self._ahead = None
            lock.__exit__(None, None, None)
        if not self.options.dry_run:
            _after_run(self.store, self.cfg, result, self.options, self.hooks, self.progress)
        elif self.options.writeback:
            _preview_writeback(self.store, self.cfg, result, self.hooks, self.progress)
        return result

    @retry_locked
    def _start_run(self, started: datetime, as_of: datetime) -> int:
        opts = self.options
        with self.store.session() as s, s.begin():
            if self.store.dialect != "postgresql" or opts.source is None:
                repo.mark_interrupted(s, started)
            run = repo.start_run(
                s,
                started_at=started,
                as_of=as_of,
                options={
                    "source": opts.source,
                    "full": opts.full,
                    "dry_run": opts.dry_run,
                    "notify": opts.notify,
                    "writeback": opts.writeback,
                    "sources": [src.name for src in self.sources],
                },
            )
            return run.id

    @retry_locked
    def _finish_run(self, result: SyncResult) -> None:
        assert result.run_id is not None
        with self.store.session() as s, s.begin():
            status = "failed" if result.exit_code else "ok"
            if result.interrupted is not None:
                status = "interrupted"
            repo.finish_run(
                s,
                result.run_id,
                status=status,
                sources={r.name: r.to_dict() for r in result.sources},
                finished_at=self.clock(),
            )
            if (
                self.options.notify
                and self.hooks.enqueue is not None
                and result.interrupted is None
            ):
                # Outbox rows commit with the run's completion: a digest is queued once.
                self.hooks.enqueue(s, self.cfg, result)

    def _sync_source(
        self,
        source_cfg: SourceConfig,
        started: datetime,
        as_of: datetime,
        run_id: int | None,
        following: SourceConfig | None = None,
    ) -> SourceResult:
        """Sync one source, through the read the source before it started
        (:attr:`_ahead`) if it did. When this source's records are checked from the store
        (an incremental run), the read of the source ``following`` it starts as that
        check does (on workers: once they are forked, as they are only while no other
        thread runs), so that its requests go out while this source's stored records are
        checked and its diff committed. A full read checks its records as it stores them
        and leaves the next read to its turn (starting it early there was no faster)."""
        res = SourceResult(source_cfg.name)
        t0 = time.monotonic()
        reading, self._ahead = self._ahead, None
        self._full = res.full = (
            reading.plan.full if reading is not None else self._full_read(res.name)
        )
        self.progress.event(
            "source_start",
            f"{res.name}: syncing" + (" (full reconcile)" if self._full else ""),
            source=res.name,
        )
        checked: _ReadCheck | None = None
        try:
            reading = reading or self._open_read(self._plan(source_cfg, self._full))
            old_marks = reading.plan.old_marks
            checked = (
                _ReadCheck(self.engine, res.name, as_of)
                if self._full and not self.options.dry_run and self.engine.streams
                else None
            )
            marks, pending = self._read(reading, res, started, checked)
            if checked is not None and checked.valid:
                findings, evaluation = checked.finish()
            else:
                # What the next read starts from is read here, not inside the evaluation's
                # session (on SQLite a second session would wait for its lock).
                following_plan = self._plan_ahead(following)
                findings, evaluation = self._evaluate_source(
                    res.name,
                    started,
                    as_of,
                    pending,
                    on_start=partial(self._start_ahead, following_plan) if following_plan else None,
                )
            res.evaluated, res.rule_errors = evaluation.records, evaluation.rule_errors
            res.outcomes = {code: dict(c) for code, c in evaluation.counts.items()}
            res.not_evaluated = {code: dict(c) for code, c in evaluation.not_evaluated.items()}
            read_keys = set(pending) if pending is not None else None
            del pending  # the dry run's records: the diff needs only their keys
            if self.options.dry_run:
                res.diff, res.deleted = self._dry_diff(res.name, findings, as_of, read_keys)
            else:
                res.diff, res.deleted = self._commit(
                    res.name, findings, marks, started, as_of, run_id
                )
                res.watermarks = self._moved(res.name, marks, old_marks)
        except Exception as exc:  # one failed source never stops the others
            if checked is not None and checked.valid:  # no evaluation follows to log them
                checked.log_rule_errors()
            log.debug("source %s failed", res.name, exc_info=True)
            # A SourceError already names the source, URL and status; others get their type.
            text = str(exc) if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
            res.status, res.error = "failed", text
            self.progress.event(
                "source_failed",
                f"{res.name}: FAILED: {res.error}",
                level="error",
                source=res.name,
                error=res.error,
            )
        finally:
            if reading is not None:  # _read closed it, unless the source failed before
                reading.close()
        res.seconds = time.monotonic() - t0
        if res.status == "ok":
            counts = res.diff.counts()
            self.progress.event(
                "source_done",
                f"{res.name}: {res.records_read} records read, "
                f"{res.evaluated} evaluated, {counts['new']} new, "
                f"{counts['resolved']} resolved"
                + (f", {counts['gone']} gone" if counts["gone"] else ""),
                source=res.name,
                **{
                    k: v
                    for k, v in res.to_dict().items()
                    if k in ("records_read", "evaluated", "findings", "changed", "gone", "full")
                },
            )
        return res

    def _full_read(self, source: str) -> bool:
        """:meth:`_reconcile_due`, or ``--full`` when the store cannot say (its error is
        reported where the store is used next)."""
        try:
            return self._reconcile_due(source)
        except SQLAlchemyError:
            return self.options.full

    def _plan(self, source_cfg: SourceConfig, full: bool) -> _ReadPlan:
        with self.store.session() as s:
            return _ReadPlan(source_cfg, full, repo.get_watermarks(s, source_cfg.name))

    def _plan_ahead(self, source_cfg: SourceConfig | None) -> _ReadPlan | None:
        """What the read of ``source_cfg`` starts from, to start it early (None without
        one, or when the store cannot say: the source then fails in its own turn)."""
        if source_cfg is None:
            return None
        try:
            return self._plan(source_cfg, self._full_read(source_cfg.name))
        except SQLAlchemyError:
            log.debug("%s: not read ahead", source_cfg.name, exc_info=True)
            return None

    def _start_ahead(self, plan: _ReadPlan) -> None:
        """Start the next source's read (:attr:`_ahead`), once; no store access."""
        if self._ahead is not None:
            return
        try:
            self._ahead = self._open_read(plan)
        except Exception:  # no thread to start: the source is read in its turn
            log.debug("%s: not read ahead", plan.source_cfg.name, exc_info=True)

    def _open_read(self, plan: _ReadPlan) -> _SourceRead:
        """Start reading every stream of the source in a background thread: the connector
        is made there, told what this run reads and read stream by stream, at most
        :data:`READ_AHEAD` batches ahead of the caller (:class:`_SourceRead`), with the
        short switch interval (``reader_switching``) until the read is closed."""
        source_cfg, full, old_marks = plan.source_cfg, plan.full, plan.old_marks
        made: list[Connector] = []

        def batches() -> Iterator[tuple[str, float, StreamBatch | None]]:
            connector = self.connector_factory(source_cfg)
            made.append(connector)
            try:
                since_of = {
                    stream: None if full else old_marks.get(stream) for stream in connector.streams
                }
                plan_reads(connector, since_of)
                for stream in connector.streams:
                    t0 = time.monotonic()
                    for batch in connector.read(stream, since=since_of[stream]):
                        yield stream, t0, batch
                    yield stream, t0, None  # the stream is done
            finally:
                connector.close()

        exits = ExitStack()
        exits.enter_context(reader_switching())
        try:
            ahead = ReadAhead(batches(), READ_AHEAD)
        except BaseException:
            exits.close()
            raise
        exits.callback(ahead.close)  # first: the reader joined, then the interval back
        return _SourceRead(plan, made, ahead, exits)

    def _read(
        self,
        reading: _SourceRead,
        res: SourceResult,
        started: datetime,
        checked: _ReadCheck | None = None,
    ) -> tuple[dict[str, datetime], dict[str, BaseRecord] | None]:
        """Take the source's batches from ``reading``; store them (or keep them in memory
        for --dry-run), and feed each stored batch to ``checked``."""
        pending: dict[str, BaseRecord] | None = {} if self.options.dry_run else None
        marks: dict[str, datetime] = {}
        # The next batch is read and mapped in a background thread while this one stores
        # the last (the only writer); closing() joins that thread, which closes the
        # connector, also when storing fails.
        with closing(reading):
            for stream, t0, item in reading.batches:
                stats = res.streams.setdefault(stream, StreamStats())
                stats.seconds = time.monotonic() - t0
                if item is None:
                    self.progress.stream_done(res.name, stream, stats)
                    continue
                stats.pages += 1
                stats.records += len(item.records)
                stats.requests += item.requests
                res.records_read += len(item.records)
                res.report.merge(item.report)
                if pending is not None:  # as upsert_records would store them
                    with self.store.session() as s:
                        mine = repo.without_own_writes(
                            s, [r for r in item.records if r.source == res.name]
                        )
                    pending.update({r.key: r for r in mine})
                elif item.records:
                    changed, stored, reread = self._upsert(item.records, started, checked)
                    res.changed += changed
                    crash_point("after-upsert")
                    if checked is not None:
                        checked.feed(stored, reread=reread)
                if item.watermark is not None:
                    marks[stream] = max(item.watermark, marks.get(stream, item.watermark))
                self.progress.page(res.name, stream, stats)
        res.requests = reading.requests
        return marks, pending

    @retry_locked
    def _upsert(
        self, records: Sequence[BaseRecord], seen_at: datetime, checked: _ReadCheck | None = None
    ) -> tuple[int, list[BaseRecord], bool]:
        """Store a batch: how many of its records changed (or are new), the records as
        stored (our own write-back's activity time taken back: ``without_own_writes``),
        and whether one of ``checked``'s source was already stored by this run."""
        with self.store.session() as s, s.begin():
            stored = repo.without_own_writes(s, records)
            # One read of the batch's stored versions answers both questions (on
            # PostgreSQL each read of a thousand keys cost ~8 ms of its CPU in a first sync).
            versions = repo.stored_versions(s, {(r.source, r.key) for r in stored})
            names = {src.name for src in self.sources}
            mine = [r for r in stored if r.source in names]
            changed = repo.changed_count(s, mine, own_writes_taken=True, stored=versions)
            reread = (
                checked is not None
                and checked.valid
                and repo.stored_since(
                    s,
                    checked.source,
                    [r.key for r in stored if r.source == checked.source],
                    seen_at,
                    stored=versions,
                )
            )
            repo.upsert_records(s, stored, seen_at, own_writes_taken=True, existing=versions)
            return changed, stored, reread

    def _reconcile_due(self, source: str) -> bool:
        """Whether this run reads ``source`` whole: ``--full``, a first read (no
        watermark), or every ``sync.reconcile_every``-th completed run of the source."""
        if self.options.full:
            return True
        with self.store.session() as s:
            return reconcile.state(s, self.cfg, source).due

    def _moved(
        self, source: str, marks: dict[str, datetime], old: dict[str, datetime]
    ) -> dict[str, datetime]:
        return {k: v for k, v in marks.items() if k not in old or v > old[k]}

    def _evaluate_source(
        self,
        source: str,
        started: datetime,
        as_of: datetime,
        pending: dict[str, BaseRecord] | None,
        *,
        on_start: Callable[[], None] | None = None,
    ) -> tuple[list[Finding], Evaluation]:
        """Evaluate every live record of the source, streamed; its findings, sorted.

        Two passes over the store: the index, then the records in chunks. The same
        outcomes as ``engine.evaluate`` on the whole list. With built-in rules only
        (``Engine.streams``) the first pass reads just the configuration items (what
        record rules read through the index): the second indexes the rest as it goes and
        checks releases last, as ``Engine.evaluate_streamed`` does; other packs may read
        any indexed fact, so the first pass indexes every process the index keeps.
        """
        with self.store.session() as s:
            gone: set[str] = set()
            if self._full and pending is None:
                gone = set(repo.unseen_keys(s, source, started))
            # Raw JSON only when a rule may read it; the index holds CI records whole, so
            # such a rule sees the same CIs through it as in a whole-list evaluation.
            with_raw = self.engine.reads_raw
            streams = self.engine.streams
            jobs = self._evaluation_jobs(s, source, pending)
            if jobs > 1:
                return self._evaluate_on_workers(
                    s, source, gone, as_of, jobs, with_raw=with_raw, on_start=on_start
                )
            if on_start is not None:
                on_start()
            index = RecordIndex(slim_cis=not self.engine.reads_index_records)
            indexed_first = CI_ONLY if streams else RecordIndex.PROCESSES
            for record in self._records(
                s, source, pending, gone, with_raw=with_raw, processes=indexed_first
            ):
                index.add(record)
            stream = self.engine.stream(as_of=as_of, index=index)
            findings: list[Finding] = []
            deferred: list[BaseRecord] = []
            records = self._records(s, source, pending, gone, with_raw=with_raw)
            for chunk in _chunks(records, EVAL_CHUNK):
                if streams:
                    chunk = index_and_defer(index, chunk, deferred, indexed=indexed_first)
                findings.extend(f for f in stream.feed(chunk) if f.source == source)
            findings.extend(f for f in stream.feed(deferred) if f.source == source)
            findings.extend(f for f in stream.finish() if f.source == source)
        return sort_findings(findings), stream.result

    def _evaluation_jobs(self, s: Any, source: str, pending: dict[str, BaseRecord] | None) -> int:
        """Processes for :meth:`_evaluate_source`: ``--jobs``, else one per CPU from
        :data:`PARALLEL_EVAL_RECORDS` stored records. One where workers cannot be forked
        safely or cannot answer exactly: a dry run (its records are in memory), rules
        that may read any record, an in-memory database (a child would open another),
        other threads alive (``serve``)."""
        from ticketlint.workers import can_fork, default_jobs

        if (
            pending is not None
            or not self.engine.streams
            or not can_fork()
            or _other_threads_alive()
            or self.store.engine.url.database in (None, "", ":memory:")
        ):
            return 1
        if self.options.jobs is not None:
            return self.options.jobs
        jobs = default_jobs()
        if jobs < 2 or repo.count_live(s, source) < PARALLEL_EVAL_RECORDS:
            return 1
        return jobs

    def _evaluate_on_workers(
        self,
        s: Any,
        source: str,
        gone: set[str],
        as_of: datetime,
        jobs: int,
        *,
        with_raw: bool,
        on_start: Callable[[], None] | None = None,
    ) -> tuple[list[Finding], Evaluation]:
        """:meth:`_evaluate_source` on ``jobs`` forked processes
        (``Engine.evaluate_tasks``): the configuration items are loaded here and indexed
        before the fork; the other records go out by id range, as many to each worker
        and at most :data:`EVAL_TASK_RECORDS` a task; a worker loads them with a database
        connection of its own, checks them and sends back the findings, counts and the
        facts the aggregate rules index (releases come back to be checked here, last).
        The same outcomes, in the same order."""
        cis = [
            r
            for r in repo.load_records(s, source, with_raw=with_raw, processes=CI_ONLY)
            if r.key not in gone
        ]
        others = frozenset(PROCESSES) - CI_ONLY
        ranges = repo.id_ranges(s, source, others, EVAL_TASK_RECORDS, multiple=jobs)
        url, parent = self.store.url, os.getpid()

        def load(session: Any, number: int) -> Iterator[_Loaded]:
            records = repo.load_records(
                session, source, with_raw=with_raw, processes=others, ids=ranges[number]
            )
            for chunk in _chunks(records, EVAL_CHUNK):
                yield _Loaded([r for r in chunk if r.key not in gone])

        def task(number: int) -> Iterator[_Loaded]:
            if os.getpid() == parent:
                # A task run here (one task, no fork) reads through this evaluation's own
                # session: another session of the writer would wait for this one's write
                # lock (SQLite) until the busy timeout failed the source.
                yield from load(s, number)
                return
            with _child_store(url).session() as child:
                yield from load(child, number)

        def accept(_idents: list[tuple[str, str]], streamed_ci: bool) -> None:
            assert not streamed_ci  # the tasks load no configuration item

        log.debug("%s: evaluating on %d worker processes", source, jobs)
        evaluation = self.engine.evaluate_tasks(
            cis,
            [partial(task, n) for n in range(len(ranges))],
            as_of=as_of,
            ci_sources=None,
            jobs=jobs,
            take=lambda _piece: None,
            accept=accept,
            on_start=on_start,
        )
        findings = [f for f in evaluation.findings if f.source == source]
        return findings, evaluation

    def _records(
        self,
        s: Any,
        source: str,
        pending: dict[str, BaseRecord] | None,
        gone: set[str],
        *,
        with_raw: bool,
        processes: frozenset[str] | None = None,
    ) -> Iterator[BaseRecord]:
        """The records to evaluate: stored ones (less those gone after a full read) or, in
        a dry run, stored ones overlaid with what was read (only what was read if --full)."""
        if pending is None:
            for record in repo.load_records(s, source, with_raw=with_raw, processes=processes):
                if record.key not in gone:
                    yield record
            return
        if not self._full:
            for record in repo.load_records(s, source, with_raw=with_raw, processes=processes):
                if record.key not in pending:
                    yield record
        for record in pending.values():
            if processes is None or record.process in processes:
                yield record

    @retry_locked
    def _commit(
        self,
        source: str,
        findings: list[Finding],
        marks: dict[str, datetime],
        started: datetime,
        as_of: datetime,
        run_id: int | None,
    ) -> tuple[Diff, list[str]]:
        with self.store.session() as s, s.begin():
            deleted = repo.mark_unseen_deleted(s, source, started) if self._full else []
            diff = lifecycle.diff(
                repo.stored_findings(s, source),
                findings,
                waivers=all_waivers(s, self.cfg),
                as_of=as_of,
                deleted_keys={(source, k) for k in deleted},
                selected_rules={r.code for r in self.engine.rules},
            )
            repo.apply_diff_chunked(s, source, diff, run_id=run_id, now=self.clock())
            for stream, value in marks.items():
                repo.set_watermark(s, source, stream, value, run_id)
            crash_point("before-commit")
        crash_point("after-commit")
        return diff, deleted

    def _dry_diff(
        self, source: str, findings: list[Finding], as_of: datetime, read_keys: set[str] | None
    ) -> tuple[Diff, list[str]]:
        with self.store.session() as s:
            deleted: list[str] = []
            if self._full and read_keys is not None:
                deleted = sorted(repo.stored_keys(s, source) - read_keys)
            diff = lifecycle.diff(
                repo.stored_findings(s, source),
                findings,
                waivers=all_waivers(s, self.cfg),
                as_of=as_of,
                deleted_keys={(source, k) for k in deleted},
                selected_rules={r.code for r in self.engine.rules},
            )
            s.rollback()
        return diff, deleted


class _ReadCheck:
    """A full read's records checked as they are stored (a first sync, a reconcile):
    what :meth:`SyncRunner._evaluate_source` answers with its two passes over the store
    (every live record of the source is one this read stored; the ones it did not see
    are gone), without reading the records back. It is fed the records as stored. For
    rules that stream (``Engine.streams``): releases are checked last (they read the
    changes they link), the aggregate rules at the end. Gives up (:attr:`valid` False,
    the store answers) where only the store is exact: a ticket read twice (keyset
    paging reads a ticket updated mid-read again; the store keeps the later copy) or a
    configuration item read after another record (record rules need every CI indexed
    first). Memory: the index and the findings grow during the read, so the findings are
    held packed (:mod:`ticketlint.packing`, :data:`FINDINGS_PACKED` at a time) until it ends."""

    def __init__(self, engine: Engine, source: str, as_of: datetime) -> None:
        self.source = source
        self.valid = True
        self._index = RecordIndex(slim_cis=not engine.reads_index_records)
        self._stream = engine.stream(as_of=as_of, index=self._index)
        self._stream.defer_logs = True  # given up, the store's evaluation logs them
        self._findings: list[Finding] = []
        self._packed: list[bytes] = []
        self._deferred: list[BaseRecord] = []
        self._past_cis = False

    def feed(self, records: Sequence[BaseRecord], *, reread: bool) -> None:
        """A stored batch; ``reread``: one of its records was stored earlier in this read."""
        if not self.valid:
            return
        mine = [r for r in records if r.source == self.source]
        if reread or len({r.key for r in mine}) < len(mine):
            self._give_up()
            return
        for record in mine:
            is_ci = record.process == "ci"
            if is_ci and self._past_cis:
                self._give_up()
                return
            self._past_cis = self._past_cis or not is_ci
        self._keep(self._stream.feed(index_and_defer(self._index, mine, self._deferred)))

    def finish(self) -> tuple[list[Finding], Evaluation]:
        """The source's findings, sorted, and the evaluation (once, when :attr:`valid`)."""
        self._keep(self._stream.feed(self._deferred))
        self._keep(self._stream.finish())
        self.log_rule_errors()
        findings: list[Finding] = []
        for blob in self._packed:
            findings.extend(unpack(blob))
        findings.extend(self._findings)
        self._packed, self._findings = [], []
        return sort_findings(findings), self._stream.result

    def log_rule_errors(self) -> None:
        """Log the rule errors of the records checked so far (once: see ``defer_logs``)."""
        self._stream.log_rule_errors()

    def _keep(self, findings: Iterable[Finding]) -> None:
        self._findings.extend(f for f in findings if f.source == self.source)
        if len(self._findings) >= FINDINGS_PACKED:
            self._packed.append(pack(self._findings))
            self._findings = []

    def _give_up(self) -> None:
        log.debug("%s: evaluated from the store (a record the stream cannot place)", self.source)
        self.valid = False
        self._findings, self._packed, self._deferred = [], [], []


@dataclass(frozen=True)
class _ReadPlan:
    """What a source's read starts from: whether it reads the source whole, and the
    streams' watermarks."""

    source_cfg: SourceConfig
    full: bool
    old_marks: dict[str, datetime]


@dataclass
class _SourceRead:
    """A source's read, begun: its plan, and its batches (``(stream, stream start,
    batch)``, ``None`` closing a stream) coming from a background thread that makes the
    connector and closes it."""

    plan: _ReadPlan
    connector: list[Connector]
    """The connector, once the reader has made it (none when making it failed)."""
    batches: ReadAhead[tuple[str, float, StreamBatch | None]]
    exits: ExitStack
    """Joins the reader (which closes the connector), then gives the switch interval back."""

    @property
    def requests(self) -> int:
        return sum(getattr(c, "request_count", 0) for c in self.connector)

    def close(self) -> None:
        """Stop and join the reader, then give the switch interval back (idempotent)."""
        self.exits.close()


@dataclass
class _Loaded:
    """Records a worker of a parallel evaluation loaded (a piece of ``evaluate_tasks``)."""

    records: list[BaseRecord]


def _other_threads_alive() -> bool:
    """Whether a fork would copy threads of this process mid-work (``serve``'s)."""
    return threading.active_count() > 1


_CHILD_STORES: dict[int, Store] = {}


def _child_store(url: str) -> Store:
    """A forked worker's own store (engine and connections): never the parent's
    connections, which stay untouched (and open) in the child."""
    store = _CHILD_STORES.get(os.getpid())
    if store is None:
        store = _CHILD_STORES[os.getpid()] = open_reader(url)
    return store


CI_ONLY = frozenset({"ci"})
"""What a streamed evaluation indexes before the first record is checked."""

FINDINGS_PACKED = 1000
"""Findings of a full read's check packed together (a few kilobytes each unpacked)."""


def run_sync(cfg: Config, options: SyncOptions, **kwargs: Any) -> SyncResult:
    return SyncRunner(cfg, options, **kwargs).run()


# --- hooks for notification and write-back ------------------------------------------


def _chunks(items: Iterable[BaseRecord], size: int) -> Iterator[list[BaseRecord]]:
    chunk: list[BaseRecord] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _preview_writeback(
    store: Store, cfg: Config, result: SyncResult, hooks: RunHooks, progress: Progress
) -> None:
    """A dry run says what write-back would write (see :class:`RunHooks`)."""
    if hooks.preview is None:
        progress.event(
            "hook_missing", "write-back preview is not wired: nothing to show", level="warning"
        )
        return
    try:
        planned = hooks.preview(store, cfg, result)
    except Exception as exc:
        log.debug("write-back preview failed", exc_info=True)
        progress.event("hook_failed", f"write-back preview failed: {exc}", level="warning")
        return
    progress.event(
        "writeback_preview",
        f"write-back would make {len(planned)} write(s)" + (":" if planned else ""),
        planned=len(planned),
    )
    for item in planned:
        text = item if isinstance(item, str) else item.describe()
        progress.event("writeback_planned", f"  {text}", write=text)


def _after_run(
    store: Store,
    cfg: Config,
    result: SyncResult,
    options: SyncOptions,
    hooks: RunHooks,
    progress: Progress,
) -> None:
    """After every commit: drain the notification outbox, then run write-back."""
    crash_point("mid-notify")
    if options.notify:
        if hooks.drain is None:
            progress.event(
                "hook_missing", "notifications are not wired: nothing sent", level="warning"
            )
        else:
            try:
                sent = hooks.drain(store, cfg, result)
            except Exception as exc:
                log.debug("notification drain failed", exc_info=True)
                progress.event("hook_failed", f"notifications failed: {exc}", level="warning")
            else:
                _report_notify(progress, sent)
    if options.writeback:
        if hooks.writeback is None:
            progress.event(
                "hook_missing", "write-back is not wired: nothing written", level="warning"
            )
            return
        try:
            summary = hooks.writeback(store, cfg, result)
        except Exception as exc:
            log.debug("write-back failed", exc_info=True)
            progress.event("hook_failed", f"write-back failed: {exc}", level="warning")
            return
        _report_writeback(progress, summary)


def _report_notify(progress: Progress, outcome: dict[str, int] | None) -> None:
    """One line on stderr for what notification did (nothing when idle)."""
    if isinstance(outcome, dict) and any(outcome.values()):
        level = "warning" if outcome.get("failed") or outcome.get("unconfirmed") else "info"
        progress.event(
            "notify_done",
            "notifications: " + ", ".join(f"{n} {state}" for state, n in outcome.items() if n),
            level=level,
            **outcome,
        )


def _report_writeback(progress: Progress, summary: Any) -> None:
    """One line on stderr for what write-back did (nothing when disabled)."""
    if summary is None or getattr(summary, "disabled", True):
        return
    failed = bool(getattr(summary, "failed", 0) or getattr(summary, "errors", None))
    progress.event(
        "writeback_done",
        summary.text(),
        level="warning" if failed else "info",
        **(summary.to_dict() if hasattr(summary, "to_dict") else {}),
    )


def open_by_severity(results: Sequence[SourceResult]) -> Counter[str]:
    total: Counter[str] = Counter()
    for r in results:
        total.update(r.diff.open_by_severity())
    return total
