"""Audit exposure: the odds that an auditor's sample holds a nonconforming record (pure).

An auditor draws ``n`` records of a process at random, without replacement, from the
``N`` records of the period; one nonconforming record in the sample is a finding. With
``k`` nonconforming records the chance that the sample holds at least one is the
hypergeometric

    P = 1 - C(N - k, n) / C(N, n)

computed here with exact integers (:func:`math.comb`) and returned as a
:class:`~fractions.Fraction`: no floating point until a figure is shown. The pessimistic
figure counts the records whose checks could not be evaluated (unknown) as
nonconforming too. :func:`fixes_to_target` is the fewest records to fix so that the
exposure falls under a target, and :func:`build_table` turns the records of a period
into the per-process and per-clause table with the records to fix first.

No I/O and no clock: the store query is ``ticketlint.report.exposure_data``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from math import comb, prod

DEFAULT_SAMPLE = 25
"""Records an auditor samples per process unless ``audit.sample`` says otherwise."""
DEFAULT_TARGET = Fraction(1, 10)
FORMULA = "P = 1 - C(N-k, n) / C(N, n)"
"""The model as stated in every output (N population, k nonconforming, n sample)."""
SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
_LATEST = datetime.max.replace(tzinfo=timezone.utc)

ZERO, ONE = Fraction(0), Fraction(1)


# --- the formula ---------------------------------------------------------------------------


def sample_size(population: int, requested: int) -> int:
    """The sample actually drawn: ``requested``, never more than the population."""
    return max(0, min(population, requested))


def exposure(population: int, nonconforming: int, sample: int) -> Fraction:
    """P(at least one of ``nonconforming`` records in a sample of ``sample`` drawn from
    ``population`` without replacement), exact. A sample larger than the population is
    capped at it; no nonconforming record or an empty sample gives 0."""
    if population < 0 or nonconforming < 0 or sample < 0:
        raise ValueError("population, nonconforming and sample must not be negative")
    if nonconforming > population:
        raise ValueError(f"{nonconforming} nonconforming records in a population of {population}")
    n = sample_size(population, sample)
    if nonconforming == 0 or n == 0:
        return ZERO
    if n > population - nonconforming:
        return ONE  # every sample of n must hold a nonconforming record
    return ONE - Fraction(comb(population - nonconforming, n), comb(population, n))


def overall_exposure(exposures: Iterable[Fraction]) -> Fraction:
    """The chance that at least one process's sample holds a finding, samples drawn
    independently: ``1 - prod(1 - P_process)``."""
    return ONE - prod((ONE - p for p in exposures), start=ONE)


def fixes_to_target(population: int, nonconforming: int, sample: int, target: Fraction) -> int:
    """The fewest of the ``nonconforming`` records to fix so that the exposure falls
    strictly under ``target`` (0 when it already is). The exposure never rises as ``k``
    falls, so a binary search over ``0..k`` finds it; fixing all k always reaches 0."""
    if not ZERO < target <= ONE:
        raise ValueError(f"target must be in (0, 1], got {target}")
    lo, hi = 0, nonconforming  # exposure(k - hi) < target holds: k - k = 0 gives 0
    while lo < hi:
        mid = (lo + hi) // 2
        if exposure(population, nonconforming - mid, sample) < target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def parse_target(text: str | float | Fraction) -> Fraction:
    """``0.1``, ``10%`` or ``1/10`` as an exact fraction in (0, 1]."""
    raw = str(text).strip()
    try:
        value = Fraction(raw[:-1]) / 100 if raw.endswith("%") else Fraction(raw)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{text!r} is not a probability (0.1, 10% or 1/10)") from None
    if not ZERO < value <= ONE:
        raise ValueError(f"{text!r} must be above 0 and at most 1 (100%)")
    return value


# --- the records of a period ----------------------------------------------------------------


@dataclass(frozen=True)
class Failing:
    """One rule's verdict on a record at the end of the period."""

    code: str
    clause: str
    severity: str = "low"


@dataclass(frozen=True)
class PopulationRecord:
    """One record of the period with what its checks say at the end of it.

    ``failing``: open FAILs; ``waived``: FAILs held by a waiver; ``unknown``: rules that
    could not evaluate it (NOT_EVALUATED, the source lacks a field)."""

    source: str
    key: str
    process: str
    created_at: datetime | None = None
    assignee: str | None = None
    group: str | None = None
    url: str | None = None
    failing: tuple[Failing, ...] = ()
    waived: tuple[Failing, ...] = ()
    unknown: tuple[Failing, ...] = ()

    def status(self, clause: str | None = None) -> str:
        """nonconforming | waived | unknown | conforming, over all rules or one clause's."""

        def any_in(items: tuple[Failing, ...]) -> bool:
            return any(clause is None or f.clause == clause for f in items)

        if any_in(self.failing):
            return "nonconforming"
        if any_in(self.waived):
            return "waived"
        if any_in(self.unknown):
            return "unknown"
        return "conforming"

    @property
    def worst_severity(self) -> str:
        return max((f.severity for f in self.failing), key=lambda s: SEVERITY_RANK.get(s, -1))

    def priority(self) -> tuple[int, datetime, str, str]:
        """Oldest high-severity first: severity descending, then creation, then key."""
        return (
            -SEVERITY_RANK.get(self.worst_severity, -1),
            self.created_at or _LATEST,
            self.source,
            self.key,
        )


@dataclass(frozen=True)
class ExposureRow:
    """One process (or one clause) of the table."""

    name: str
    title: str
    population: int
    nonconforming: int
    unknown: int
    waived: int
    sample: int
    exposure: Fraction
    pessimistic: Fraction
    fixes: int
    after_fixes: Fraction
    fix_first: tuple[PopulationRecord, ...] = ()
    """The ``fixes`` records to start with, oldest high-severity first (process rows)."""

    def fix_groups(self) -> list[tuple[str, str, list[PopulationRecord]]]:
        """``fix_first`` grouped by (group, assignee), in priority order of each group's
        first record, so each list can be handed to its team."""
        groups: dict[tuple[str, str], list[PopulationRecord]] = {}
        for r in self.fix_first:
            groups.setdefault((r.group or "(no group)", r.assignee or "(unassigned)"), []).append(r)
        return [(g, a, rs) for (g, a), rs in groups.items()]


@dataclass(frozen=True)
class ExposureTable:
    processes: list[ExposureRow]
    clauses: list[ExposureRow]
    target: Fraction
    overall: Fraction
    overall_pessimistic: Fraction
    overall_after: Fraction
    period: str = "all time"
    notes: list[str] = field(default_factory=list)

    def process(self, name: str) -> ExposureRow | None:
        return next((r for r in self.processes if r.name == name), None)


def _row(
    name: str,
    title: str,
    records: Sequence[PopulationRecord],
    requested: int,
    target: Fraction,
    clause: str | None,
    with_fixes: bool,
) -> ExposureRow:
    statuses = [r.status(clause) for r in records]
    big_n = len(records)
    k = statuses.count("nonconforming")
    u = statuses.count("unknown")
    n = sample_size(big_n, requested)
    m = fixes_to_target(big_n, k, n, target)
    bad = [r for r, s in zip(records, statuses, strict=True) if s == "nonconforming"]
    first = tuple(sorted(bad, key=PopulationRecord.priority)[:m]) if with_fixes else ()
    return ExposureRow(
        name=name,
        title=title,
        population=big_n,
        nonconforming=k,
        unknown=u,
        waived=statuses.count("waived"),
        sample=n,
        exposure=exposure(big_n, k, n),
        pessimistic=exposure(big_n, k + u, n),
        fixes=m,
        after_fixes=exposure(big_n, k - m, n),
        fix_first=first,
    )


def sample_for(process: str, samples: Mapping[str, int]) -> int:
    return samples.get(process, samples.get("default", DEFAULT_SAMPLE))


def build_table(
    records: Iterable[PopulationRecord],
    *,
    samples: Mapping[str, int],
    target: Fraction = DEFAULT_TARGET,
    clause_processes: Mapping[str, Iterable[str]] | None = None,
    clause_titles: Mapping[str, str] | None = None,
    period: str = "all time",
) -> ExposureTable:
    """The exposure table of a period's records.

    ``samples``: records sampled per process (``default`` for the others; else 25).
    ``clause_processes``: clause -> the processes its selected rules apply to; a clause
    row's population is the records of those processes, its nonconforming records those
    failing a rule of that clause, and its sample the largest of those processes'.
    """
    by_process: dict[str, list[PopulationRecord]] = {}
    for r in records:
        by_process.setdefault(r.process, []).append(r)
    processes = [
        _row(p, "", rs, sample_for(p, samples), target, None, True)
        for p, rs in sorted(by_process.items())
    ]
    clauses = []
    for clause, procs in sorted(
        (clause_processes or {}).items(), key=lambda kv: _clause_key(kv[0])
    ):
        chosen = sorted(set(procs))
        rs = [r for p in chosen for r in by_process.get(p, [])]
        requested = max((sample_for(p, samples) for p in chosen), default=DEFAULT_SAMPLE)
        title = (clause_titles or {}).get(clause, "")
        clauses.append(_row(clause, title, rs, requested, target, clause, False))
    return ExposureTable(
        processes=processes,
        clauses=clauses,
        target=target,
        overall=overall_exposure(r.exposure for r in processes),
        overall_pessimistic=overall_exposure(r.pessimistic for r in processes),
        overall_after=overall_exposure(r.after_fixes for r in processes),
        period=period,
    )


def _clause_key(clause: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 10_000 for p in clause.split("."))


# --- showing a probability -------------------------------------------------------------------


def percent(p: Fraction) -> str:
    """A probability as a percentage with one decimal that never rounds to a lie: a
    tiny exposure is ``<0.1%``, an almost certain one ``>99.9%``, only 0 and 1 exact."""
    if p == ZERO:
        return "0%"
    if p == ONE:
        return "100%"
    shown = f"{float(p) * 100:.1f}%"
    if shown == "0.0%":
        return "<0.1%"
    if shown == "100.0%":
        return ">99.9%"
    return shown


@dataclass(frozen=True)
class Rise:
    """A process whose exposure rose between two runs (for the chat digest)."""

    process: str
    before: Fraction
    after: Fraction
    population: int
    nonconforming: int
    sample: int

    def line(self) -> str:
        return (
            f"{self.process}: audit exposure {percent(self.before)} → {percent(self.after)} "
            f"(N={self.population}, k={self.nonconforming}, n={self.sample})"
        )


def rises(before: ExposureTable, after: ExposureTable) -> list[Rise]:
    """Processes whose exposure is higher in ``after`` (a process new in ``after`` rose
    from 0)."""
    out = []
    for row in after.processes:
        old = before.process(row.name)
        was = old.exposure if old is not None else ZERO
        if row.exposure > was:
            out.append(
                Rise(row.name, was, row.exposure, row.population, row.nonconforming, row.sample)
            )
    return out
