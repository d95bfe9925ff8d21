"""Checking a live read while it runs: batches are evaluated as the sources deliver them.

``check --source`` reads every source in a thread of its own and used to evaluate the
records once the slowest source had finished; the servers sat idle while the rules ran.
:class:`LiveEvaluation` takes each batch as it arrives (in the caller's thread) and feeds
it to :meth:`Engine.stream`, so the evaluation overlaps the reads it waits for.

What a record rule reads of other records while records stream is the configuration
items of the record's own source (CFG003, see :data:`~ticketlint.rules.engine.RAW_FREE_PACKS`);
releases read the changes they link and are checked last
(:data:`~ticketlint.rules.engine.STREAM_DEFERRED_PROCESSES`). So a source's batches are
held until its CI streams are read (ServiceNow reads ``ci`` first; a Jira ``assets``
stream comes last, and then that source's records wait for it), and every record is
indexed before it is fed.

The answer must be the one :meth:`Engine.evaluate` gives on the records the read
returns, so the streamed evaluation is given up (:meth:`result` is None and the caller
evaluates the records whole) whenever that cannot be guaranteed: a record read twice
(the caller checks its latest version only), a configuration item after its source's
records started to be checked, sources that read configuration items other than the
ones declared at the start, or a rule error (its order in the list follows the feed).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from ticketlint.mapping.common import gc_paused
from ticketlint.mapping.model import BaseRecord
from ticketlint.rules.engine import (
    Engine,
    Evaluation,
    EvaluationStream,
    Finding,
    RecordIndex,
    index_and_defer,
    sort_findings,
)

log = logging.getLogger(__name__)


class LiveEvaluation:
    """One live check's evaluation, fed batch by batch (see the module docstring).

    Each source is announced (:meth:`begin`: its streams in the order its connector
    reads them, and whether the run reads its configuration items, which CFG003 needs)
    before its batches are added; ``ci_streams`` names the streams of configuration
    items."""

    def __init__(self, engine: Engine, *, as_of: datetime, ci_streams: Iterable[str]) -> None:
        if not engine.streams:
            raise ValueError("a selected rule may read any record: evaluate the records whole")
        self.ci_sources: set[str] = set()
        self._ci_streams = frozenset(ci_streams)
        self._streams: dict[str, list[str]] = {}
        index = RecordIndex(self.ci_sources, slim_cis=not engine.reads_index_records)
        self._stream: EvaluationStream | None = engine.stream(as_of=as_of, index=index)
        self._stream.defer_logs = True  # a rule error gives up: the whole evaluation logs it
        self._index = index
        self._held: dict[str, list[Sequence[BaseRecord]]] = {}
        self._open: set[str] = set()
        self._seen: set[tuple[str, str]] = set()
        self._findings: list[Finding] = []
        self._deferred: list[BaseRecord] = []
        self.given_up: str | None = None

    def begin(self, source: str, streams: Sequence[str], *, reads_cis: bool) -> None:
        """``source`` is about to be read: its ``streams`` in read order; ``reads_cis``
        when its configuration items are read (CFG003 judges its references)."""
        self._streams[source] = list(streams)
        self._held.setdefault(source, [])
        if reads_cis:
            self.ci_sources.add(source)
            self._index.declare_ci_source(source)

    def add(self, source: str, stream: str, records: Sequence[BaseRecord]) -> None:
        """A batch of ``stream`` of ``source`` (announced by :meth:`begin`), in the
        order the source read it."""
        if self._stream is None:
            return
        seen = self._seen
        for record in records:
            ident = (record.source, record.key)
            if ident in seen:
                return self._give_up(f"{ident[0]}/{ident[1]} read twice")
            seen.add(ident)
        if source in self._open:
            if any(record.process == "ci" for record in records):
                return self._give_up(f"{source}: a configuration item in its {stream} stream")
            self._feed(records)
            return
        self._held.setdefault(source, []).append(records)
        if self._cis_read(source, stream):
            self._open_source(source)

    def result(self, sources_reading_cis: Iterable[str]) -> Evaluation | None:
        """The evaluation once every source is read; None when it was given up (the
        caller evaluates the records whole). ``sources_reading_cis``: the sources that
        read configuration items, as the read found them."""
        if self._stream is not None and set(sources_reading_cis) != self.ci_sources:
            self._give_up("the sources reading configuration items are not the declared ones")
        for source in list(self._held):
            if self._stream is not None and source not in self._open:
                self._open_source(source)
        stream = self._stream
        if stream is None:
            return None
        with gc_paused(promote=True):  # as Engine.evaluate_streamed: no full collection
            self._findings.extend(stream.feed(self._deferred))
            self._findings.extend(stream.finish())
            result = stream.result
            if result.rule_errors:  # their order would follow the feed, not the records
                self._give_up("a rule failed")
                return None
            result.findings = sort_findings(self._findings)
        return result

    def _cis_read(self, source: str, stream: str) -> bool:
        """Whether every CI stream of ``source`` comes before ``stream`` (read already)."""
        order = self._streams.get(source, [])
        if stream not in order:
            return False
        position = order.index(stream)
        return not any(s in self._ci_streams for s in order[position:])

    def _open_source(self, source: str) -> None:
        """Index the held configuration items of ``source``, then check its held batches."""
        held, self._held[source] = self._held.get(source, []), []
        self._open.add(source)
        for batch in held:
            for record in batch:
                if record.process == "ci":
                    self._index.add(record)
        for batch in held:
            self._feed(batch)

    def _feed(self, records: Sequence[BaseRecord]) -> None:
        assert self._stream is not None
        now = index_and_defer(self._index, records, self._deferred)
        self._findings.extend(self._stream.feed(now))
        if self._stream.result.rule_errors:  # no use checking on: see result()
            self._give_up("a rule failed")

    def _give_up(self, why: str) -> None:
        log.debug("the live check evaluates the records whole: %s", why)
        self.given_up = why
        self._stream = None
        self._held.clear()
        self._findings.clear()
        self._deferred.clear()
