"""The findings lifecycle as a pure function: stored states + this run's findings -> changes.

No database, no clock: :func:`diff` gets the stored findings of one source, the engine's
findings for that source, the waivers and the evaluation instant, and says for every
fingerprint what happens and which history events to record:

=============  ==================================  =========================================
stored state   in this run's findings?             result (kind -> new state; events)
=============  ==================================  =========================================
none           yes, no active waiver               new -> open; opened
none           yes, active waiver                  waived -> waived; opened, waived
open           yes, no active waiver               open -> open
open           yes, active waiver                  waived -> waived; waived
waived         yes, waiver still active            still_waived -> waived
waived         yes, waiver expired or removed      reopened -> open; unwaived (says which)
resolved       yes                                 reopened -> open (or waived); reopened
open / waived  no, its record is gone               gone -> gone; gone (why)
open / waived  no                                  resolved -> resolved; resolved (why)
gone           yes                                 reopened -> open (or waived); reopened
resolved/gone  no                                  (nothing)
=============  ==================================  =========================================

A finding whose record is gone (deleted at the source, or no longer matched by the
configured JQL / encoded query; seen by a full reconcile) ends as **gone**, never as
resolved: nobody fixed it, the record just left what ticketlint reads. Why a finding
resolved: "rule not selected" when the rule left the selection, otherwise "no longer fails".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ticketlint.rules.engine import Finding
from ticketlint.store.waivers import WaiverRule, find_waiver

OPEN, RESOLVED, WAIVED, GONE = "open", "resolved", "waived", "gone"
STATES = (OPEN, RESOLVED, WAIVED, GONE)
ENDED = frozenset({RESOLVED, GONE})
"""States a finding is no longer open in (a later run may reopen it)."""
KINDS = ("new", "open", "resolved", "gone", "reopened", "waived", "still_waived")

RECORD_GONE = "record gone: deleted at the source or no longer in the configured scope"
RECORD_DELETED = RECORD_GONE  # the name before "gone" was its own state
RULE_NOT_SELECTED = "rule not selected"
NO_LONGER_FAILS = "no longer fails"


@dataclass(frozen=True)
class StoredFinding:
    """What the diff needs to know about a finding already in the store."""

    fingerprint: str
    rule: str
    source: str
    key: str
    state: str
    waiver: str | None = None


@dataclass(frozen=True)
class Event:
    kind: str
    """opened | resolved | reopened | waived | unwaived"""
    detail: str = ""


@dataclass
class Change:
    fingerprint: str
    kind: str
    state: str
    """The state after this run."""
    finding: Finding | None
    """This run's finding (None when it resolved)."""
    previous: StoredFinding | None
    events: list[Event] = field(default_factory=list)
    waiver: str | None = None
    resolution: str | None = None

    @property
    def reopens(self) -> bool:
        """True when a resolved or gone finding came back (counted in ``reopened``)."""
        return (
            self.previous is not None and self.previous.state in ENDED and self.finding is not None
        )


@dataclass
class Diff:
    changes: list[Change] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    def counts(self) -> Counter[str]:
        return Counter(c.kind for c in self.changes)

    def open_by_severity(self) -> Counter[str]:
        return Counter(c.finding.severity for c in self.changes if c.state == OPEN and c.finding)


def diff(
    stored: Mapping[str, StoredFinding],
    current: Iterable[Finding],
    *,
    waivers: Sequence[WaiverRule],
    as_of: datetime,
    deleted_keys: Collection[tuple[str, str]] = (),
    selected_rules: Collection[str] | None = None,
) -> Diff:
    """Compare the stored findings of a source with this run's findings of that source."""
    on = as_of.date()
    result = Diff()
    seen: set[str] = set()
    for finding in current:
        if finding.fingerprint in seen:  # an aggregate rule may name a subject twice
            continue
        seen.add(finding.fingerprint)
        before = stored.get(finding.fingerprint)
        active, expired = find_waiver(waivers, finding.code, finding.source, finding.key, on)
        result.changes.append(_current(finding, before, active, expired))
    for fp, before in stored.items():
        if fp in seen or before.state in ENDED:
            continue
        if (before.source, before.key) in deleted_keys:
            result.changes.append(
                Change(
                    fp,
                    "gone",
                    GONE,
                    None,
                    before,
                    [Event("gone", RECORD_GONE)],
                    resolution=RECORD_GONE,
                )
            )
            continue
        if selected_rules is not None and before.rule not in selected_rules:
            why = RULE_NOT_SELECTED
        else:
            why = NO_LONGER_FAILS
        result.changes.append(
            Change(fp, "resolved", RESOLVED, None, before, [Event("resolved", why)], resolution=why)
        )
    return result


def _waived_by(waiver: WaiverRule) -> Event:
    return Event("waived", f"by {waiver.describe()}: {waiver.reason}")


def _current(
    finding: Finding,
    before: StoredFinding | None,
    active: WaiverRule | None,
    expired: WaiverRule | None,
) -> Change:
    fp = finding.fingerprint
    if before is None:
        if active:
            return Change(
                fp,
                "waived",
                WAIVED,
                finding,
                None,
                [Event("opened"), _waived_by(active)],
                waiver=active.id,
            )
        note = f"waiver {expired.id} expired on {expired.expires.isoformat()}" if expired else ""
        return Change(fp, "new", OPEN, finding, None, [Event("opened", note)])
    if before.state in ENDED:
        events = [Event("reopened", "its record is back" if before.state == GONE else "")]
        if active:
            return Change(
                fp,
                "waived",
                WAIVED,
                finding,
                before,
                [*events, _waived_by(active)],
                waiver=active.id,
            )
        return Change(fp, "reopened", OPEN, finding, before, events)
    if before.state == WAIVED:
        if active:
            return Change(fp, "still_waived", WAIVED, finding, before, [], waiver=active.id)
        if expired:
            why = f"waiver {expired.id} expired on {expired.expires.isoformat()}"
        else:
            why = f"waiver {before.waiver or ''} was removed".replace("  ", " ")
        return Change(fp, "reopened", OPEN, finding, before, [Event("unwaived", why)])
    if active:
        return Change(fp, "waived", WAIVED, finding, before, [_waived_by(active)], waiver=active.id)
    return Change(fp, "open", OPEN, finding, before, [])
