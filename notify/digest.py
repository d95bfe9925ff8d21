"""The digest of one run for one destination: what is new, fixed and still open (pure).

A :class:`Digest` is platform-neutral; the formatters in :mod:`ticketlint.notify.formatters`
turn it into each platform's payload. Building one needs no database and no clock:
:func:`build_digest` gets the run's changes as :class:`Item` values (the outbox module
makes them from the lifecycle diff and, for resolved findings, from the stored rows),
applies the destination's filters and sorts the most severe first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ticketlint.config import NotifyDestination

SEVERITIES = ("critical", "high", "medium", "low", "info")
RANK = {s: i for i, s in enumerate(SEVERITIES)}
"""Lower is more severe."""


@dataclass(frozen=True)
class Item:
    """One finding as a digest shows it (new, reopened or resolved)."""

    fingerprint: str
    kind: str
    """new | reopened | resolved | open"""
    code: str
    severity: str
    source: str
    key: str
    process: str
    name: str = ""
    title: str = ""
    url: str | None = None
    message: str = ""
    assignee: str | None = None
    group: str | None = None
    missing: tuple[str, ...] = ()
    """Fields the finding says are empty (from its evidence)."""
    resolution: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["missing"] = list(self.missing)
        return d


@dataclass(frozen=True)
class ExposureLine:
    """A process whose audit exposure rose since the last run (one line of the digest)."""

    process: str
    before: float
    after: float
    text: str
    """The whole line, e.g. ``change: audit exposure 12.0% → 30.5% (N=120, k=4, n=25)``."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def missing_fields(evidence: dict[str, Any] | None) -> tuple[str, ...]:
    """The evidence keys whose value is empty: what the ticket lacks."""
    if not evidence:
        return ()
    return tuple(k for k, v in evidence.items() if v in ("", None, [], {}, False))


@dataclass
class Digest:
    """What one destination is told about one run (or one ticket, for an immediate post)."""

    destination: str
    dedup_id: str
    """Stable identity of this message: the same for every retry, so a receiver can
    de-duplicate (``ticketlint:run:<run>:<destination>``)."""
    run_id: int | None
    as_of: str
    kind: str = "digest"
    """digest | immediate | sample"""
    new: list[Item] = field(default_factory=list)
    """New and reopened findings, most severe first."""
    resolved: list[Item] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    """new, reopened, resolved (after filters)."""
    open_by_severity: dict[str, int] = field(default_factory=dict)
    failed_sources: list[str] = field(default_factory=list)
    report_url: str | None = None
    max_findings: int = 10
    subject: str | None = None
    """For an immediate post: ``source/key`` of the ticket."""
    exposure: list[ExposureLine] = field(default_factory=list)
    """Processes whose audit exposure rose since the last run."""

    @property
    def has_news(self) -> bool:
        return bool(self.new or self.resolved or self.exposure)

    @property
    def open_total(self) -> int:
        return sum(self.open_by_severity.values())

    def title(self) -> str:
        if self.kind == "immediate":
            return f"ticketlint: {self.subject} newly fails {len(self.new)} check{'s' * (len(self.new) != 1)}"
        c = self.counts
        return (
            f"ticketlint: {c.get('new', 0)} new, {c.get('reopened', 0)} reopened, "
            f"{c.get('resolved', 0)} resolved, {self.open_total} open"
        )

    def footer(self) -> str:
        """Run id and dedup identity: put into every payload."""
        run = f"run {self.run_id}" if self.run_id is not None else self.kind
        return f"ticketlint {run} · as of {self.as_of} · id {self.dedup_id}"

    def severity_line(self) -> str:
        parts = [f"{n} {s}" for s, n in self.open_by_severity.items() if n]
        return ", ".join(parts) if parts else "none"


def passes(item: Item, dest: NotifyDestination) -> bool:
    """The destination's filters: minimum severity, processes, sources, groups, rules."""
    if RANK.get(item.severity, len(SEVERITIES)) > RANK[dest.min_severity]:
        return False
    if dest.processes and item.process not in dest.processes:
        return False
    if dest.sources and item.source not in dest.sources:
        return False
    if dest.groups and (item.group or "") not in dest.groups:
        return False
    return not (dest.rules and item.code not in dest.rules and item.name not in dest.rules)


def sort_key(item: Item) -> tuple[Any, ...]:
    return (
        RANK.get(item.severity, len(SEVERITIES)),
        item.kind != "new",
        item.source,
        item.key,
        item.code,
    )


def build_digest(
    dest: NotifyDestination,
    items: Iterable[Item],
    *,
    run_id: int | None,
    as_of: str,
    failed_sources: Sequence[str] = (),
    report_url: str | None = None,
    kind: str = "digest",
    dedup_id: str | None = None,
    subject: str | None = None,
    exposure: Sequence[ExposureLine] = (),
) -> Digest:
    """Filter and sort the run's items for one destination.

    ``items`` holds every change of the run: ``new``, ``reopened`` and ``resolved`` ones
    and the ``open`` ones (still failing, counted in ``open_by_severity`` only).
    ``exposure``: the processes whose audit exposure rose (kept when the destination
    takes that process).
    """
    kept = [i for i in items if passes(i, dest)]
    new = sorted((i for i in kept if i.kind in ("new", "reopened")), key=sort_key)
    resolved = sorted((i for i in kept if i.kind == "resolved"), key=sort_key)
    open_counts = dict.fromkeys(SEVERITIES, 0)
    for i in kept:
        if i.kind in ("new", "reopened", "open"):
            open_counts[i.severity] = open_counts.get(i.severity, 0) + 1
    counts = {
        "new": sum(i.kind == "new" for i in new),
        "reopened": sum(i.kind == "reopened" for i in new),
        "resolved": len(resolved),
    }
    return Digest(
        destination=dest.name,
        dedup_id=dedup_id or f"ticketlint:run:{run_id}:{dest.name}",
        run_id=run_id,
        as_of=as_of,
        kind=kind,
        new=new,
        resolved=resolved,
        counts=counts,
        open_by_severity=open_counts,
        failed_sources=list(failed_sources),
        report_url=dest.report_url or report_url,
        max_findings=dest.max_findings,
        subject=subject,
        exposure=[x for x in exposure if not dest.processes or x.process in dest.processes],
    )


def sample_items() -> list[Item]:
    """A small, realistic digest for ``notify test`` and ``notify preview`` without data."""
    base = "https://example.atlassian.net/browse/"
    return [
        Item(
            "sample-1",
            "new",
            "CHG006",
            "high",
            "jira-prod",
            "CHG-101",
            "change",
            name="change-backout-plan",
            title="A change has a backout plan",
            url=base + "CHG-101",
            message="change CHG-101 has no backout plan",
            assignee="Dana Ops",
            group="CAB",
            missing=("backout_plan",),
        ),
        Item(
            "sample-2",
            "reopened",
            "INC004",
            "medium",
            "snow-prod",
            "INC0010042",
            "incident",
            name="incident-resolution-notes",
            title="Resolved incidents say how",
            url="https://example.service-now.com/nav_to.do?uri=incident.do?sys_id=0042",
            message="incident INC0010042 was resolved without resolution notes",
            assignee=None,
            group="Service Desk",
            missing=("resolution_notes",),
        ),
        Item(
            "sample-3",
            "resolved",
            "PRB002",
            "low",
            "jira-prod",
            "OPS-7",
            "problem",
            name="problem-root-cause",
            title="Problems record a root cause",
            url=base + "OPS-7",
            resolution="no longer fails",
        ),
        Item(
            "sample-4",
            "open",
            "CHG011",
            "low",
            "jira-prod",
            "CHG-99",
            "change",
            name="change-review",
        ),
    ]


def sample_exposure() -> list[ExposureLine]:
    """A realistic "audit exposure rose" line for the sample digest."""
    return [
        ExposureLine(
            "change",
            0.5,
            0.7707536388501043,
            "change: audit exposure 50.0% → 77.1% (N=100, k=5, n=25)",
        )
    ]
