"""The lifecycle diff as a table: stored state x this run's findings x waivers -> change."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from ticketlint.rules.engine import Finding, fingerprint
from ticketlint.store.lifecycle import RECORD_GONE, RULE_NOT_SELECTED, StoredFinding, diff
from ticketlint.store.waivers import WaiverRule

AS_OF = datetime(2026, 3, 10, 12, tzinfo=timezone.utc)
ACTIVE = WaiverRule("W1", "CHG006", "OPS-1*", "plans in Confluence", "j.doe", date(2026, 3, 10))
EXPIRED = WaiverRule("W2", "CHG006", "OPS-1*", "plans in Confluence", "j.doe", date(2026, 3, 9))


def finding(key: str = "OPS-12", code: str = "CHG006", source: str = "jira") -> Finding:
    return Finding(
        code=code,
        name="n",
        title="t",
        severity="high",
        clause="8.5",
        source=source,
        key=key,
        process="change",
        url=None,
        message="missing",
        assignee=None,
        group=None,
        fingerprint=fingerprint(code, source, key),
        remediation="",
    )


def stored(state: str, key: str = "OPS-12", waiver: str | None = None) -> dict[str, StoredFinding]:
    fp = fingerprint("CHG006", "jira", key)
    return {fp: StoredFinding(fp, "CHG006", "jira", key, state, waiver)}


CASES = [
    # id, stored state, fails now, waivers, kind, new state, events
    ("new", None, True, [], "new", "open", ["opened"]),
    ("new-waived", None, True, [ACTIVE], "waived", "waived", ["opened", "waived"]),
    ("still-open", "open", True, [], "open", "open", []),
    ("open-now-waived", "open", True, [ACTIVE], "waived", "waived", ["waived"]),
    ("still-waived", "waived", True, [ACTIVE], "still_waived", "waived", []),
    ("waiver-expired", "waived", True, [EXPIRED], "reopened", "open", ["unwaived"]),
    ("waiver-removed", "waived", True, [], "reopened", "open", ["unwaived"]),
    ("resolved", "open", False, [], "resolved", "resolved", ["resolved"]),
    ("waived-then-fixed", "waived", False, [ACTIVE], "resolved", "resolved", ["resolved"]),
    ("reopened", "resolved", True, [], "reopened", "open", ["reopened"]),
    ("reopened-waived", "resolved", True, [ACTIVE], "waived", "waived", ["reopened", "waived"]),
    ("back-from-gone", "gone", True, [], "reopened", "open", ["reopened"]),
    ("back-from-gone-waived", "gone", True, [ACTIVE], "waived", "waived", ["reopened", "waived"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_transition_table(case: tuple) -> None:  # type: ignore[type-arg]
    _, before, fails, waivers, kind, state, kinds = case
    result = diff(
        stored(before, waiver="W1" if before == "waived" else None) if before else {},
        [finding()] if fails else [],
        waivers=waivers,
        as_of=AS_OF,
    )
    assert len(result.changes) == 1
    change = result.changes[0]
    assert (change.kind, change.state, [e.kind for e in change.events]) == (kind, state, kinds)


def test_resolved_and_gone_is_no_change() -> None:
    assert diff(stored("resolved"), [], waivers=[], as_of=AS_OF).changes == []
    gone = {("jira", "OPS-12")}
    assert diff(stored("gone"), [], waivers=[], as_of=AS_OF, deleted_keys=gone).changes == []


def test_expired_waiver_says_so() -> None:
    change = diff(
        stored("waived", waiver="W2"), [finding()], waivers=[EXPIRED], as_of=AS_OF
    ).changes[0]
    assert change.events[0].detail == "waiver W2 expired on 2026-03-09"
    removed = diff(stored("waived", waiver="W7"), [finding()], waivers=[], as_of=AS_OF).changes[0]
    assert removed.events[0].detail == "waiver W7 was removed"


def test_waiver_is_active_through_its_expiry_day_and_matches_globs_and_source() -> None:
    assert diff({}, [finding()], waivers=[ACTIVE], as_of=AS_OF).changes[0].waiver == "W1"
    other_key = diff({}, [finding("OPS-2")], waivers=[ACTIVE], as_of=AS_OF).changes[0]
    assert other_key.kind == "new"
    scoped = WaiverRule("W3", "CHG006", "*", "r", "o", date(2027, 1, 1), source="snow")
    assert diff({}, [finding()], waivers=[scoped], as_of=AS_OF).changes[0].kind == "new"


def test_record_gone_and_rule_not_selected_reasons() -> None:
    for state in ("open", "waived"):
        gone = {("jira", "OPS-12")}
        result = diff(stored(state), [], waivers=[], as_of=AS_OF, deleted_keys=gone)
        change = result.changes[0]
        assert (change.kind, change.state, change.resolution) == ("gone", "gone", RECORD_GONE)
        assert [(e.kind, e.detail) for e in change.events] == [("gone", RECORD_GONE)]
        assert result.counts() == {"gone": 1}  # never counted as resolved
    result = diff(stored("open"), [], waivers=[], as_of=AS_OF, selected_rules={"CHG001"})
    assert result.changes[0].resolution == RULE_NOT_SELECTED
    result = diff(stored("open"), [], waivers=[], as_of=AS_OF, selected_rules={"CHG006"})
    assert result.changes[0].resolution == "no longer fails"


def test_duplicate_fingerprints_in_one_run_count_once() -> None:
    result = diff({}, [finding(), finding()], waivers=[], as_of=AS_OF)
    assert result.counts() == {"new": 1}
