"""Evaluate selected rules over records: outcomes, counts and findings.

The engine makes two passes over the records of a run: the first builds the
:class:`RecordIndex` that cross-record rules read (configuration items, changes,
incidents per CI); the second calls each rule on each record of its processes, then the
aggregate rules once. Only FAIL becomes a :class:`Finding`; all four outcomes are
counted per rule for conformity rates and the mapping-coverage report.

:meth:`Engine.evaluate` takes a list. A caller with more records than it wants in memory
(the nightly sync) uses the same two passes in pieces: it fills an index from only the
processes the index reads (:attr:`RecordIndex.PROCESSES`, loaded without raw JSON), then
feeds the records chunk by chunk to :meth:`Engine.stream` and calls
:meth:`EvaluationStream.finish` once; :meth:`Engine.evaluate` itself runs through the
same stream, so both give identical outcomes, counts and findings.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from ticketlint.mapping.common import gc_paused
from ticketlint.mapping.model import (
    BaseRecord,
    ChangeRecord,
    CIRecord,
    IncidentRecord,
    Person,
    approved_entries,
)
from ticketlint.rules.outcome import Outcome, Status
from ticketlint.rules.registry import SEVERITY_RANK, Rule, RuleContext, RuleSelectionError

log = logging.getLogger(__name__)


def fingerprint(code: str, source: str, subject: str) -> str:
    """Stable identity of a finding across runs: sha256(rule code | source | subject key)."""
    return hashlib.sha256(f"{code}|{source}|{subject}".encode()).hexdigest()


STABLE_FINDING_KEYS: tuple[str, ...] = (
    "code",
    "name",
    "title",
    "severity",
    "clause",
    "source",
    "key",
    "process",
    "url",
    "message",
    "assignee",
    "group",
    "fingerprint",
)
"""The keys every finding carries in every output, of ``check`` and of stored findings
alike; scripts may rely on them."""


@dataclass(frozen=True, slots=True)
class ChangeFacts:
    key: str
    change_type: str | None
    has_approved: bool
    state: str | None

    def __reduce__(self) -> tuple[Any, ...]:
        # check --input's workers send these back by the ten thousand: the fields as a
        # tuple pickle in a third of the time of a slotted dataclass's state functions.
        return (ChangeFacts, (self.key, self.change_type, self.has_approved, self.state))


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    key: str
    created_at: datetime
    links_problem: bool

    def __reduce__(self) -> tuple[Any, ...]:
        return (IncidentFacts, (self.key, self.created_at, self.links_problem))  # as above


@dataclass(frozen=True, slots=True)
class CISubject:
    """What a finding that names a configuration item reads of it (``Engine._finding``):
    the slim index's CI. A CI record built with these fields alone cost ~830 bytes (its
    model's field dict and fields-set); this ~80, people shared between CIs. At 200,000
    records the sandbox has 26,400 CIs: ~22 MB held through the rest of the source's read."""

    url: str | None
    title: str | None
    assignee: Person | None
    group: str | None
    owner: Person | None
    support_group: str | None


IndexedCI = CIRecord | CISubject
"""A CI as the index holds it: whole, or only what findings read (``slim_cis``)."""


class RecordIndex:
    """Compact facts about every record of a run, per source, for cross-record rules."""

    PROCESSES: frozenset[str] = frozenset({"ci", "change", "incident"})
    """The only processes :meth:`add` reads: a streaming caller indexes just these."""

    def __init__(self, ci_sources: Iterable[str] | None = None, *, slim_cis: bool = False) -> None:
        self._declared_ci_sources = set(ci_sources) if ci_sources is not None else None
        self._slim_cis = slim_cis
        self._people: dict[Person, Person] = {}
        self.cis: dict[str, dict[str, IndexedCI]] = defaultdict(dict)
        self._ci_ids: dict[str, set[str]] = defaultdict(set)
        self.changes: dict[str, dict[str, ChangeFacts]] = defaultdict(dict)
        self.incidents_by_ci: dict[str, dict[str, list[IncidentFacts]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.sources: set[str] = set()

    def add(self, record: BaseRecord) -> None:
        source = record.source
        self.sources.add(source)
        if isinstance(record, CIRecord):
            self.cis[source][record.key] = self._slim(record) if self._slim_cis else record
            if record.native_id:
                self._ci_ids[source].add(record.native_id)
        elif isinstance(record, ChangeRecord):
            self.changes[source][record.key] = ChangeFacts(
                record.key, record.change_type, bool(approved_entries(record)), record.state
            )
        elif isinstance(record, IncidentRecord):
            if record.state != "cancelled" and isinstance(record.created_at, datetime):
                facts = IncidentFacts(
                    record.key,
                    record.created_at,
                    any(link.kind == "problem" for link in record.links or []),
                )
                for ci in set(record.ci_refs or []):
                    self.incidents_by_ci[source][ci].append(facts)

    def _slim(self, ci: CIRecord) -> CISubject:
        """The CI with only what findings read of it (see ``Engine._finding``), people
        shared between CIs. Only for rules known to read no more."""
        people = self._people
        owner = people.setdefault(ci.owner, ci.owner) if ci.owner is not None else None
        assignee = people.setdefault(ci.assignee, ci.assignee) if ci.assignee is not None else None
        return CISubject(ci.url, ci.title, assignee, ci.group, owner, ci.support_group)

    def declare_ci_source(self, source: str) -> None:
        """Add ``source`` to the declared sources that read configuration items (a live
        check learns them source by source, before any record of that source is read)."""
        if self._declared_ci_sources is None:
            self._declared_ci_sources = set()
        self._declared_ci_sources.add(source)

    def syncs_cis(self, source: str) -> bool:
        """Whether the run read configuration items for this source (CFG003 needs it)."""
        if self._declared_ci_sources is not None:
            return source in self._declared_ci_sources
        return bool(self.cis.get(source))

    def ci_known(self, source: str, ref: str) -> bool:
        return ref in self.cis.get(source, {}) or ref in self._ci_ids.get(source, set())

    def ci(self, source: str, key: str) -> IndexedCI | None:
        return self.cis.get(source, {}).get(key)

    def change(self, source: str, key: str) -> ChangeFacts | None:
        return self.changes.get(source, {}).get(key)


@dataclass
class Finding:
    """A FAIL outcome with everything a person needs to fix it."""

    code: str
    name: str
    title: str
    severity: str
    clause: str
    source: str
    key: str
    process: str
    url: str | None
    message: str
    assignee: str | None
    group: str | None
    fingerprint: str
    remediation: str
    evidence: dict[str, Any] = field(default_factory=dict)
    record_title: str | None = None
    assignee_id: str | None = None
    assignee_email: str | None = None
    pack: str = ""

    def to_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict(self)``: the fields, the evidence copied (its dicts, lists
        and tuples; what they hold is immutable or deep-copied), in a tenth of asdict's
        time (1.8 against 22.6 us a finding: asdict deep-copies every string and walks
        every field, and the store calls this once per finding it writes)."""
        return {**self.__dict__, "evidence": _copied(self.evidence)}


def _copied(value: Any) -> Any:
    """``value`` with its dicts, lists and tuples copied all the way down."""
    kind = type(value)
    if kind is dict:
        return {k: _copied(v) for k, v in value.items()}
    if kind is list:
        return [_copied(v) for v in value]
    if kind is tuple:
        return tuple(_copied(v) for v in value)
    return copy.deepcopy(value) if kind not in _IMMUTABLE else value


_IMMUTABLE = frozenset({str, int, float, bool, type(None), datetime, date})


DEFERRED_TRACEBACKS = 100
"""Rule errors whose traceback a deferring :class:`EvaluationStream` keeps (a rule that
fails on every record of a large sync would otherwise hold a traceback per record)."""


@dataclass
class Evaluation:
    """The result of one run of the engine."""

    as_of: datetime
    rules: list[Rule]
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    not_evaluated: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    records: int = 0
    rule_errors: list[str] = field(default_factory=list)

    def conformity(self, code: str) -> float | None:
        c = self.counts.get(code, Counter())
        denominator = c[Status.PASS.value] + c[Status.FAIL.value]
        return c[Status.PASS.value] / denominator if denominator else None

    def severity_counts(self) -> Counter[str]:
        return Counter(f.severity for f in self.findings)


class Engine:
    """Runs a selection of rules with their parameters and severity overrides."""

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        params: Mapping[str, Mapping[str, Any]] | None = None,
        severity: Mapping[str, str] | None = None,
    ) -> None:
        self.rules = list(rules)
        by_code = {r.code: r for r in self.rules}
        for code in [*(params or {}), *(severity or {})]:
            if code not in by_code:
                raise RuleSelectionError(
                    f"rule {code!r} in the config is not selected or does not exist"
                )
        self.params = {r.code: r.resolve_params((params or {}).get(r.code)) for r in self.rules}
        self.severity = {r.code: r.severity for r in self.rules}
        for code, sev in (severity or {}).items():
            if sev not in SEVERITY_RANK:
                raise RuleSelectionError(
                    f"severity of {code}: {sev!r} is not one of {', '.join(SEVERITY_RANK)}"
                )
            self.severity[code] = sev
        self._record_rules: dict[str, list[Rule]] = defaultdict(list)
        self._aggregate_rules: list[Rule] = []
        for r in self.rules:
            if r.kind == "aggregate":
                self._aggregate_rules.append(r)
            else:
                for process in r.applies_to:
                    self._record_rules[process].append(r)

    def evaluate(
        self,
        records: Iterable[BaseRecord],
        *,
        as_of: datetime,
        ci_sources: Iterable[str] | None = None,
    ) -> Evaluation:
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        records = records if isinstance(records, (list, tuple)) else list(records)
        with gc_paused():
            return self._evaluate(records, as_of, ci_sources)

    def _evaluate(
        self, records: Sequence[BaseRecord], as_of: datetime, ci_sources: Iterable[str] | None
    ) -> Evaluation:
        index = RecordIndex(ci_sources)
        for record in records:
            index.add(record)
        stream = self.stream(as_of=as_of, index=index)
        findings = stream.feed(records)
        findings.extend(stream.finish())
        result = stream.result
        result.findings = sort_findings(findings)
        return result

    def evaluate_streamed(
        self,
        held: Sequence[BaseRecord],
        batches: Iterable[Sequence[BaseRecord]],
        *,
        as_of: datetime,
        ci_sources: Iterable[str],
    ) -> Evaluation:
        """:meth:`evaluate` over ``held`` and then ``batches``, holding only the index,
        the findings and the records of :data:`STREAM_DEFERRED_PROCESSES`: each batch is
        indexed, checked and let go before the next is read.

        ``held`` must hold every configuration item of the run (record rules read them
        through the index: CFG003). Only for rules of :data:`RAW_FREE_PACKS`
        (:attr:`streams`): the built-in rules read no other cross-record facts while
        records stream, except the changes a release links (releases are checked last).
        Outcomes, counts and findings are those of :meth:`evaluate` on the same records."""
        stream = self._streaming(as_of, ci_sources)
        index = stream.index
        findings: list[Finding] = []
        deferred: list[BaseRecord] = []
        # promote: what the run built is scanned by no collection on the way out (the
        # sort of tens of thousands of findings used to trigger a full one: 0.35 s).
        with gc_paused(promote=True):
            findings.extend(stream.feed(index_and_defer(index, held, deferred)))
            for batch in batches:
                findings.extend(stream.feed(index_and_defer(index, batch, deferred)))
            findings.extend(stream.feed(deferred))
            findings.extend(stream.finish())
            result = stream.result
            result.findings = sort_findings(findings)
        return result

    def evaluate_tasks(
        self,
        held: Sequence[BaseRecord],
        tasks: Sequence[Callable[[], Iterable[Any]]],
        *,
        as_of: datetime,
        ci_sources: Iterable[str] | None,
        jobs: int,
        take: Callable[[Any], None],
        accept: Callable[[list[tuple[str, str]], bool], None],
        weights: Sequence[float] | None = None,
        on_findings: Callable[[list[Finding]], None] | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> Evaluation:
        """:meth:`evaluate_streamed` with the batches made and checked by ``jobs`` forked
        workers (:func:`ticketlint.workers.run_ordered`; here when ``jobs`` < 2).

        Each task yields pieces (objects with a ``records`` list). A worker inherits the
        index of ``held`` (every configuration item: what record rules read), checks a
        task's records with a stream of its own, and sends back the pieces without their
        records, the findings, the outcome counts, the facts the aggregate rules index
        and the deferred records. Here, in task order: ``accept(idents, streamed_ci)``
        (the (source, key) of each record read; whether one was a configuration item)
        may raise to stop the run; ``take(piece)`` gets each piece; the results merge.
        The workers start with the heaviest ``weights``. ``on_findings`` gets each
        task's findings here as they arrive (in any order), while the workers go on: a
        caller may write their output meanwhile. ``on_start`` is called here once the
        workers are forked (a caller may start threads then). Outcomes, counts and
        findings are those of :meth:`evaluate_streamed`."""
        from ticketlint.workers import run_ordered

        stream = self._streaming(as_of, ci_sources)
        index, result = stream.index, stream.result
        findings: list[Finding] = []
        deferred: list[BaseRecord] = []
        with gc_paused(promote=True):  # as in evaluate_streamed
            held_now = index_and_defer(index, held, deferred)  # the workers inherit the index

            def meanwhile() -> None:
                if on_start is not None:
                    on_start()  # the workers are forked: the caller may start threads now
                # The held records are checked here while the workers start on the tasks.
                findings.extend(stream.feed(held_now))

            outcomes = run_ordered(
                lambda number: _TaskOutcome.of(self, tasks[number], index, as_of),
                len(tasks),
                jobs,
                weights=weights,
                arrived=(lambda outcome: on_findings(outcome.findings)) if on_findings else None,
                meanwhile=meanwhile,
            )
            for outcome in outcomes:
                accept(outcome.idents, outcome.streamed_ci)
                for piece in outcome.pieces:
                    take(piece)
                outcome.merge_into(result, index)
                findings.extend(outcome.findings)
                deferred.extend(outcome.deferred)
            findings.extend(stream.feed(deferred))
            findings.extend(stream.finish())
            result.findings = sort_findings(findings)
        return result

    def _streaming(self, as_of: datetime, ci_sources: Iterable[str] | None) -> EvaluationStream:
        """The stream of a streamed evaluation, over an empty index for ``ci_sources``
        (None: the sources whose configuration items it indexes, as ``RecordIndex``)."""
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        if not self.streams:
            raise ValueError("a selected rule may read any record: use evaluate()")
        index = RecordIndex(ci_sources, slim_cis=not self.reads_index_records)
        return self.stream(as_of=as_of, index=index)

    @property
    def streams(self) -> bool:
        """Whether :meth:`evaluate_streamed` may run these rules (all built in)."""
        return all(r.pack in RAW_FREE_PACKS for r in self.rules)

    @property
    def reads_raw(self) -> bool:
        """Whether any selected rule may read ``record.raw`` (the source's JSON).

        A streaming caller loads records without their raw JSON (most of their size) when
        this is False. Unknown packs count as reading it: only the built-in pack (checked
        by a test) and declarative rules whose fields do not start with ``raw`` are known
        not to.
        """
        return any(_rule_reads_raw(r) for r in self.rules)

    @property
    def reads_index_records(self) -> bool:
        """Whether a selected rule may read more of an indexed CI than its key, native id
        and what findings show (owner, group, url, title): unknown packs may. When False,
        a streaming caller builds ``RecordIndex(slim_cis=True)``."""
        return any(
            r.pack not in RAW_FREE_PACKS and _declarative_spec(r) is None for r in self.rules
        )

    def stream(self, *, as_of: datetime, index: RecordIndex) -> EvaluationStream:
        """Evaluate records in pieces against an index built beforehand from all of them."""
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        return EvaluationStream(self, index, as_of)

    def _rule_error(
        self, r: Rule, result: Evaluation, record: BaseRecord, exc: Exception
    ) -> Outcome:
        result.rule_errors.append(
            f"{r.code} on {record.source}/{record.key}: {type(exc).__name__}: {exc}"
        )
        return Outcome(Status.NOT_EVALUATED, reason=f"rule error: {type(exc).__name__}")

    def _finding(
        self, r: Rule, record: BaseRecord | None, outcome: Outcome, index: RecordIndex
    ) -> Finding:
        if outcome.subject is not None:
            source = (record.source if record else outcome.evidence.get("source")) or ""
            subject_key = outcome.subject
            subject_record: BaseRecord | CISubject | None = record
            if outcome.subject_process == "ci":
                subject_record = index.ci(source, subject_key)
            process = outcome.subject_process or (record.process if record else "")
        else:
            assert record is not None
            source, subject_key, subject_record, process = (
                record.source,
                record.key,
                record,
                record.process,
            )
        person = None
        group = None
        if subject_record is not None:
            person = subject_record.assignee
            group = subject_record.group
            if isinstance(subject_record, (CIRecord, CISubject)):
                person = subject_record.owner or person
                group = subject_record.support_group or group
        return Finding(
            code=r.code,
            name=r.name,
            title=r.title,
            severity=self.severity[r.code],
            clause=r.clause,
            source=source,
            key=subject_key,
            process=process,
            url=subject_record.url if subject_record else None,
            message=outcome.message,
            assignee=person.label() if person else None,
            group=group or None,
            fingerprint=fingerprint(r.code, source, subject_key),
            remediation=r.remediation,
            evidence=_jsonable(outcome.evidence),
            record_title=subject_record.title if subject_record else None,
            assignee_id=person.id if person else None,
            assignee_email=person.email if person else None,
            pack=r.pack,
        )


class EvaluationStream:
    """One evaluation fed chunk by chunk: :meth:`feed` the records (each exactly once),
    then :meth:`finish` once for the aggregate rules. Outcome counts, NOT_EVALUATED
    reasons, rule errors and the record count accumulate in :attr:`result`; findings are
    returned to the caller (``result.findings`` stays empty), who keeps what it needs.

    The index must already hold every record of the run (:meth:`RecordIndex.add` on
    each, or at least on those of :attr:`RecordIndex.PROCESSES`): record rules read it
    while the chunks stream, aggregate rules at :meth:`finish`.
    """

    def __init__(self, engine: Engine, index: RecordIndex, as_of: datetime) -> None:
        self.engine, self.index, self.as_of = engine, index, as_of
        self.result = Evaluation(as_of=as_of, rules=engine.rules)
        self._contexts = {
            r.code: RuleContext(as_of, engine.params[r.code], index) for r in engine.rules
        }
        counts = self.result.counts
        # Bind each rule's function, context and counter once: the loop in feed() runs
        # records x rules times and is the hot path of every nightly run.
        self._plan = {
            process: [(r, r.func, self._contexts[r.code], counts[r.code]) for r in rules]
            for process, rules in engine._record_rules.items()
        }
        self._finished = False
        self.defer_logs = False
        """True: a rule error is not logged when it happens but kept until
        :meth:`log_rule_errors`, for an owner that may throw this evaluation away and
        evaluate the records again (whose own errors are logged then: once, not twice)."""
        self._unlogged: list[tuple[str, Exception | None]] = []

    def log_rule_errors(self) -> None:
        """Log the rule errors kept while :attr:`defer_logs`: the first
        :data:`DEFERRED_TRACEBACKS` with their tracebacks, the rest as one line each."""
        for message, exc in self._unlogged:
            log.error(message, exc_info=exc)
        self._unlogged.clear()

    def _log_rule_error(self, message: str, exc: Exception) -> None:
        if not self.defer_logs:
            log.error(message, exc_info=exc)
        elif len(self._unlogged) < DEFERRED_TRACEBACKS:
            # The rule's frames let go of their locals (the record, its index): a
            # traceback kept to be printed later must not keep a run's records alive.
            traceback.clear_frames(exc.__traceback__)
            self._unlogged.append((message, exc))
        else:
            self._unlogged.append((f"{message}: {type(exc).__name__}: {exc}", None))

    def feed(self, records: Iterable[BaseRecord]) -> list[Finding]:
        """Run the record rules on these records; their findings, in record order."""
        if self._finished:
            raise RuntimeError("records fed after finish()")
        engine, result, index, plan = self.engine, self.result, self.index, self._plan
        not_eval, sources = result.not_evaluated, index.sources
        found: list[Finding] = []
        fail_status, not_evaluated_status = Status.FAIL, Status.NOT_EVALUATED
        n = 0
        with gc_paused():
            for record in records:
                n += 1
                sources.add(record.source)  # as a full index would have it
                for r, func, ctx, counter in plan.get(record.process, ()):
                    try:
                        outcome = func(record, ctx)
                        status = outcome.status
                    except Exception as exc:  # noqa: BLE001 - counted and reported, never a crash of the run
                        outcome = engine._rule_error(r, result, record, exc)
                        self._log_rule_error(
                            f"rule {r.code} failed on {record.source} {record.key}", exc
                        )
                        status = outcome.status
                    counter[status.value] += 1
                    if status is fail_status:
                        found.append(engine._finding(r, record, outcome, index))
                    elif status is not_evaluated_status:
                        reason = outcome.reason
                        if record.unreadable:
                            reason = unreadable_reason(record, reason)
                        not_eval[r.code][reason] += 1
        result.records += n
        return found

    def finish(self) -> list[Finding]:
        """Run the aggregate rules once over the index; their findings."""
        if self._finished:
            raise RuntimeError("finish() called twice")
        self._finished = True
        engine, result, index = self.engine, self.result, self.index
        counts, not_eval = result.counts, result.not_evaluated
        found: list[Finding] = []
        for r in engine._aggregate_rules:
            try:
                outcomes = list(r.func(index, self._contexts[r.code]))
            except Exception as exc:  # noqa: BLE001 - logged, reported, never hides the rest
                self._log_rule_error(f"rule {r.code} failed", exc)
                result.rule_errors.append(f"{r.code}: {type(exc).__name__}: {exc}")
                continue
            for outcome in outcomes:
                counts[r.code][outcome.status.value] += 1
                if outcome.status is Status.FAIL:
                    found.append(engine._finding(r, None, outcome, index))
                elif outcome.status is Status.NOT_EVALUATED:
                    not_eval[r.code][outcome.reason] += 1
        return found


@dataclass
class _TaskOutcome:
    """What a worker of :meth:`Engine.evaluate_tasks` sends back for one task."""

    pieces: list[Any] = field(default_factory=list)
    idents: list[tuple[str, str]] = field(default_factory=list)
    streamed_ci: bool = False
    findings: list[Finding] = field(default_factory=list)
    deferred: list[BaseRecord] = field(default_factory=list)
    records: int = 0
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    not_evaluated: dict[str, Counter[str]] = field(default_factory=dict)
    rule_errors: list[str] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)
    changes: dict[str, dict[str, ChangeFacts]] = field(default_factory=dict)
    incidents_by_ci: dict[str, dict[str, list[IncidentFacts]]] = field(default_factory=dict)

    @classmethod
    def of(
        cls, engine: Engine, task: Callable[[], Iterable[Any]], index: RecordIndex, as_of: datetime
    ) -> _TaskOutcome:
        """Run ``task`` and check its records against ``index`` (held records only)."""
        out = cls()
        stream = EvaluationStream(engine, index, as_of)
        facts = RecordIndex()
        with gc_paused():
            for piece in task():
                records, piece.records = piece.records, []
                now: list[BaseRecord] = []
                for record in records:
                    out.idents.append((record.source, record.key))
                    if record.process == "ci":
                        out.streamed_ci = True  # the caller refuses it: not indexed
                    else:
                        facts.add(record)
                    if record.process in STREAM_DEFERRED_PROCESSES:
                        out.deferred.append(record)
                    else:
                        now.append(record)
                out.findings.extend(stream.feed(now))
                out.pieces.append(piece)
        result = stream.result
        out.records, out.rule_errors = result.records, result.rule_errors
        out.counts = {code: counter for code, counter in result.counts.items() if counter}
        out.not_evaluated = dict(result.not_evaluated)
        out.sources = facts.sources
        out.changes = dict(facts.changes)
        out.incidents_by_ci = {s: dict(by_ci) for s, by_ci in facts.incidents_by_ci.items()}
        return out

    def merge_into(self, result: Evaluation, index: RecordIndex) -> None:
        """Add the outcome to the run's, as feeding its records there would have."""
        result.records += self.records
        result.rule_errors.extend(self.rule_errors)
        for code, counter in self.counts.items():
            result.counts[code].update(counter)
        for code, reasons in self.not_evaluated.items():
            result.not_evaluated[code].update(reasons)
        index.sources.update(self.sources)
        for source, changes in self.changes.items():
            index.changes[source].update(changes)
        for source, by_ci in self.incidents_by_ci.items():
            into = index.incidents_by_ci[source]
            for ci, incidents in by_ci.items():
                into[ci].extend(incidents)


def index_and_defer(
    index: RecordIndex,
    records: Sequence[BaseRecord],
    deferred: list[BaseRecord],
    *,
    indexed: frozenset[str] = frozenset(),
) -> list[BaseRecord]:
    """One batch of a streamed evaluation (rules of :data:`RAW_FREE_PACKS`): every
    record indexed (unless its process is in ``indexed``: indexed already), those of
    :data:`STREAM_DEFERRED_PROCESSES` put aside in ``deferred`` (checked after every
    other record); the rest, to check now. The whole batch is indexed before it is fed."""
    now: list[BaseRecord] = []
    for record in records:
        if record.process not in indexed:
            index.add(record)
        if record.process in STREAM_DEFERRED_PROCESSES:
            deferred.append(record)
        else:
            now.append(record)
    return now


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """The report order of findings: severity (highest first), source, key, rule (in place)."""
    findings.sort(key=lambda f: (-SEVERITY_RANK[f.severity], f.source, f.key, f.code))
    return findings


STREAM_DEFERRED_PROCESSES = frozenset({"release"})
"""Processes whose built-in rules read other records than configuration items while
records are checked (a release's linked changes, REL001): :meth:`Engine.evaluate_streamed`
checks them after every other record is indexed (tests/rules guard the list)."""

RAW_FREE_PACKS = frozenset({"iso20000"})
"""Packs whose rules never read ``record.raw`` (tests/foundation checks the built-in one)."""


def _rule_reads_raw(r: Rule) -> bool:
    if r.pack in RAW_FREE_PACKS:
        return False
    spec = _declarative_spec(r)
    if spec is None:
        return True  # an unknown rule may read anything
    return any(path.split(".", 1)[0] == "raw" for path in _condition_fields(spec))


def _declarative_spec(r: Rule) -> Any:
    """The YAML spec behind a declarative rule (held by its function's closure), or None."""
    if r.pack != "custom":
        return None
    for cell in getattr(r.func, "__closure__", None) or ():
        value = cell.cell_contents
        if hasattr(value, "require") and hasattr(value, "processes"):
            return value
    return None


def _condition_fields(spec: Any) -> list[str]:
    fields: list[str] = []
    pending = [spec.when, spec.require]
    while pending:
        cond = pending.pop()
        if cond is None:
            continue
        if cond.field:
            fields.append(cond.field)
        pending.extend(cond.all_ or ())
        pending.extend(cond.any_ or ())
        pending.append(cond.not_)
    return fields


_NOT_PROVIDED = "source does not provide "


def unreadable_reason(record: BaseRecord, reason: str) -> str:
    """A NOT_EVALUATED reason that names a field the record could not read says so
    (settled reading 17): "could not read change.cab_date (not a date or time)" instead
    of "source does not provide change.cab_date". Other reasons pass through."""
    if not reason.startswith(_NOT_PROVIDED) or not record.unreadable:
        return reason
    parts = []
    for name in reason[len(_NOT_PROVIDED) :].split(", "):
        field_name = name.rpartition(".")[2]
        why = record.unreadable.get(field_name)
        if why is None:
            parts.append(f"source does not provide {name}")
        else:
            parts.append(f"could not read {name} ({why.split(': ', 1)[0]})")
    return "; ".join(parts)


def _jsonable(value: Any) -> Any:
    """Evidence as plain JSON values (datetimes as ISO 8601 UTC, dates as yyyy-mm-dd)."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "model_dump"):
        return _jsonable(value.model_dump(exclude_none=True))
    return value
