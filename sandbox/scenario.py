"""System-neutral ITSM scenarios: what one seeded record *is* before a system formats it.

A scenario is drawn from a per-record ``random.Random`` so record ``i`` of a seed is the
same whatever else is generated (lazy, by index). It fixes the lifecycle state, the
times, the people and which rules of docs/rules.md the record deliberately violates
(``violations``); the Jira and ServiceNow builders only format it. Most records are
clean; each rule is violated in about ``VIOLATION_SHARE`` of the records it applies to.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

VIOLATION_SHARE = 0.05
HOUR = 3_600_000
DAY = 24 * HOUR
TARGET_HOURS = {1: 4, 2: 8, 3: 24, 4: 72, 5: 120}
N_USERS = 48
N_MANAGERS = 10  # users 1..10 approve; user 0 is the API user
N_GROUPS = 12

# state weights per process (normalised states of docs/record-model.md)
_STATES = {
    "incident": [
        ("new", 5),
        ("in_progress", 8),
        ("on_hold", 4),
        ("resolved", 15),
        ("closed", 62),
        ("cancelled", 6),
    ],
    "service_request": [
        ("new", 6),
        ("in_progress", 10),
        ("resolved", 14),
        ("closed", 62),
        ("cancelled", 8),
    ],
    "problem": [
        ("new", 10),
        ("in_progress", 22),
        ("resolved", 15),
        ("closed", 45),
        ("cancelled", 8),
    ],
    "change": [
        ("new", 5),
        ("assess", 5),
        ("authorize", 8),
        ("scheduled", 10),
        ("implement", 5),
        ("review", 7),
        ("closed", 52),
        ("cancelled", 8),
    ],
}
PAST_SCHEDULED = {"scheduled", "implement", "review", "closed"}
PAST_AUTHORIZE = PAST_SCHEDULED | {"authorize"}
OPEN = {"new", "in_progress", "on_hold"}
DONE = {"resolved", "closed"}


@dataclass
class Approval:
    approver: int  # user index
    decision: str  # approved, rejected, pending, cancelled
    decided_at: int | None  # epoch ms
    created_at: int


@dataclass
class Scenario:
    process: str
    state: str
    created: int
    updated: int
    resolved: int | None = None
    closed: int | None = None
    priority: int | None = 3
    requester: int = 11
    assignee: int | None = 12
    group: int | None = 0
    ci_count: int = 1
    hot_ci: bool = False
    violations: set[str] = field(default_factory=set)
    # incident
    major: bool = False
    sla_breached: bool = False
    problem_link: bool = False
    close_code: bool = True
    close_notes: bool = True
    review: bool = False  # a completed review exists
    # change
    change_type: str = ""
    risk: bool = True
    impact: bool = True
    implementation_plan: bool = True
    backout_plan: bool = True
    test_plan: bool = True
    planned_start: int | None = None
    planned_end: int | None = None
    actual_start: int | None = None
    actual_end: int | None = None
    outcome: str | None = None  # successful, successful_with_issues, unsuccessful
    cab_required: bool = False
    cab_date: bool = False
    approvals: list[Approval] = field(default_factory=list)
    # problem
    root_cause: bool = True
    workaround: bool = True
    known_error: bool = False
    # request
    approval_required: bool = False
    # ci
    ci_status: str = ""
    owner: bool = True
    support_group: bool = True
    last_verified: int | None = None
    unknown_ci: bool = False


def _pick(rng: random.Random, weighted: list[tuple[str, int]]) -> str:
    total = sum(w for _, w in weighted)
    x = rng.random() * total
    for value, w in weighted:
        x -= w
        if x < 0:
            return value
    return weighted[-1][0]


def _violate(rng: random.Random, sc: Scenario, code: str, share: float = VIOLATION_SHARE) -> bool:
    if rng.random() < share:
        sc.violations.add(code)
        return True
    return False


def _people(rng: random.Random, sc: Scenario) -> tuple[int, int]:
    """Draws the requester, assignee and group; returns (requester, assignee)."""
    requester = sc.requester = rng.randrange(N_MANAGERS + 1, N_USERS)
    assignee = sc.assignee = rng.randrange(N_MANAGERS + 1, N_USERS)
    sc.group = rng.randrange(N_GROUPS)
    return requester, assignee


def _closed_times(rng: random.Random, sc: Scenario, anchor: int, duration: int) -> int:
    """Sets created, resolved, closed and updated; returns the resolution time."""
    sc.created = anchor - rng.randrange(8 * DAY, 365 * DAY)
    resolved = sc.resolved = sc.created + duration
    sc.closed = resolved + rng.randrange(0, 2 * DAY) if sc.state == "closed" else None
    end = sc.closed or resolved
    sc.updated = min(end + rng.randrange(1000, HOUR), anchor - HOUR)
    return resolved


def incident(rng: random.Random, anchor: int, hot_share: float) -> Scenario:
    state = _pick(rng, _STATES["incident"])
    sc = Scenario("incident", state, 0, 0)
    _people(rng, sc)
    sc.priority = rng.choice((1, 2, 3, 3, 3, 4, 4, 4, 5))
    sc.major = sc.priority == 1 and rng.random() < 0.6
    target = TARGET_HOURS[sc.priority] * HOUR
    sc.ci_count = rng.choice((0, 1, 1, 1, 2))
    if state == "cancelled":
        _closed_times(rng, sc, anchor, rng.randrange(HOUR // 4, target // 2))
        sc.close_code = rng.random() < 0.5
        return sc
    if state in DONE:
        breach = _violate(rng, sc, "INC005")
        sc.sla_breached = breach
        duration = (
            target + rng.randrange(HOUR, 3 * DAY)
            if breach
            else rng.randrange(HOUR // 6, target * 3 // 4)
        )
        resolved = _closed_times(rng, sc, anchor, duration)
        if _violate(rng, sc, "INC001"):
            if rng.random() < 0.5:
                sc.close_code = False
            else:
                sc.close_notes = False
        if sc.major:
            sc.review = not _violate(rng, sc, "INC004", 0.15)
            sc.problem_link = not _violate(rng, sc, "PRB005", 0.15)
            if resolved + 5 * DAY > anchor:
                sc.violations.discard("INC004")
    else:
        if _violate(rng, sc, "INC006"):
            sc.created = anchor - rng.randrange(20 * DAY, 60 * DAY)
            sc.updated = sc.created + rng.randrange(HOUR, 2 * DAY)
            sc.violations.add("INC005")
            sc.sla_breached = True
        else:
            # young enough to be within target for a few hours after the anchor
            sc.created = anchor - rng.randrange(HOUR // 12, max(target // 4, HOUR // 6))
            sc.updated = min(sc.created + rng.randrange(1000, HOUR), anchor - 1000)
        if state != "new" and _violate(rng, sc, "INC003"):
            sc.assignee = None
            sc.group = None
    if _violate(rng, sc, "INC002", 0.04):
        sc.priority = None
        if "INC005" in sc.violations and not sc.sla_breached:
            sc.violations.discard("INC005")
    # recurring incidents on a hot CI (PRB004), created within the last 30 days
    if state != "cancelled" and rng.random() < hot_share:
        sc.hot_ci = True
        sc.ci_count = max(sc.ci_count, 1)
        if sc.created < anchor - 25 * DAY:
            shift = sc.created - (anchor - rng.randrange(2 * DAY, 25 * DAY))
            for name in ("created", "resolved", "closed", "updated"):
                value = getattr(sc, name)
                if value is not None:
                    setattr(sc, name, value - shift)
    return sc


def change(rng: random.Random, anchor: int) -> Scenario:
    state = _pick(rng, _STATES["change"])
    sc = Scenario("change", state, 0, 0)
    people = _people(rng, sc)  # a change keeps both (only an incident loses its assignee)
    sc.change_type = _pick(rng, [("standard", 40), ("normal", 45), ("emergency", 15)])
    sc.priority = rng.choice((2, 3, 3, 4))
    sc.ci_count = rng.choice((1, 1, 1, 2, 3))
    gated = sc.change_type in ("normal", "emergency")
    if state in ("closed", "cancelled"):
        sc.created = anchor - rng.randrange(15 * DAY, 365 * DAY)
    elif state in ("new", "assess", "authorize", "scheduled"):
        sc.created = anchor - rng.randrange(DAY, 20 * DAY)
    else:
        sc.created = anchor - rng.randrange(2 * DAY, 10 * DAY)
    # planned window: after approval lead time
    lead = (
        rng.randrange(DAY, 6 * DAY)
        if sc.change_type != "emergency"
        else rng.randrange(HOUR, 8 * HOUR)
    )
    if state in ("new", "assess", "authorize", "scheduled"):
        sc.planned_start = max(sc.created + lead, anchor + rng.randrange(HOUR, 10 * DAY))
    else:
        sc.planned_start = sc.created + lead
        if state == "implement":
            sc.planned_start = anchor - rng.randrange(HOUR, 3 * HOUR)
    sc.planned_end = sc.planned_start + rng.randrange(HOUR, 6 * HOUR)
    last = sc.created + rng.randrange(HOUR, DAY)
    decided = sc.created + (lead // 2 if state in PAST_SCHEDULED else rng.randrange(HOUR, 2 * HOUR))
    if state in ("implement", "review", "closed"):
        sc.actual_start = sc.planned_start + rng.randrange(0, 20 * 60_000)
        if state != "implement":
            sc.actual_end = min(
                sc.actual_start + rng.randrange(HOUR // 2, 4 * HOUR), sc.planned_end + 20 * 60_000
            )
            last = sc.actual_end + rng.randrange(HOUR, DAY)
        else:
            last = sc.actual_start + 60_000
        if _violate(rng, sc, "CHG010", 0.06):
            if rng.random() < 0.5:
                sc.actual_start = sc.planned_start - rng.randrange(2 * HOUR, 8 * HOUR)
            elif sc.actual_end is not None:
                sc.actual_end = sc.planned_end + rng.randrange(2 * HOUR, 8 * HOUR)
                last = sc.actual_end + HOUR
            else:
                sc.violations.discard("CHG010")
    if state == "closed":
        sc.closed = min(last, anchor - 6 * DAY)
        sc.resolved = sc.closed
        if sc.actual_end is not None and sc.closed < sc.actual_end:
            sc.actual_end = min(sc.actual_end, sc.closed - HOUR)
            sc.actual_start = min(sc.actual_start or sc.closed, sc.actual_end - HOUR // 2)
            sc.violations.discard("CHG010")
        sc.outcome = _pick(
            rng, [("successful", 88), ("successful_with_issues", 7), ("unsuccessful", 5)]
        )
        if _violate(rng, sc, "CHG007"):
            sc.close_notes = False
        if sc.change_type == "emergency" or sc.outcome != "successful":
            sc.review = not _violate(rng, sc, "CHG008", 0.15)
    elif state == "cancelled":
        sc.closed = sc.created + rng.randrange(HOUR, 5 * DAY)
        sc.resolved = sc.closed
        last = sc.closed
    sc.updated = min(max(last, sc.created + 60_000), anchor - 60_000)
    # approvals
    approvers = rng.sample(range(1, N_MANAGERS + 1), 2)
    if (gated and state in PAST_AUTHORIZE) or (sc.change_type == "standard" and rng.random() < 0.2):
        need = (
            gated
            and state != "cancelled"
            and (
                (sc.change_type == "normal" and state in PAST_SCHEDULED)
                or (sc.change_type == "emergency" and state in ("review", "closed"))
            )
        )
        if state == "authorize":
            sc.approvals = [Approval(approvers[0], "pending", None, sc.created + HOUR)]
        elif need and _violate(rng, sc, "CHG001"):
            sc.approvals = [
                Approval(approvers[0], rng.choice(("pending", "rejected")), None, sc.created + HOUR)
            ]
            if sc.approvals[0].decision == "rejected":
                sc.approvals[0].decided_at = decided
        else:
            when = decided
            if sc.change_type == "emergency" and sc.actual_start is not None:
                when = sc.actual_start + HOUR  # retro-approved by the ECAB: allowed
            if (
                sc.change_type == "normal"
                and sc.actual_start is not None
                and _violate(rng, sc, "CHG002")
            ):
                when = sc.actual_start + rng.randrange(HOUR, 6 * HOUR)
            who = approvers[0]
            if state != "cancelled" and _violate(rng, sc, "CHG003", 0.04):
                who = rng.choice(people)
            sc.approvals = [
                Approval(who, "approved", min(when, anchor - 60_000), sc.created + HOUR)
            ]
            if rng.random() < 0.3:
                sc.approvals.append(
                    Approval(
                        approvers[1],
                        "approved",
                        min(when + 600_000, anchor - 60_000),
                        sc.created + HOUR,
                    )
                )
    if state == "cancelled":
        return sc
    if gated and state in PAST_AUTHORIZE and _violate(rng, sc, "CHG004"):
        if rng.random() < 0.5:
            sc.risk = False
        else:
            sc.impact = False
    if gated and state in PAST_SCHEDULED:
        if _violate(rng, sc, "CHG005"):
            sc.backout_plan = False
        if _violate(rng, sc, "CHG009", 0.04):
            sc.ci_count = 0
    if sc.change_type == "normal" and state in PAST_SCHEDULED and _violate(rng, sc, "CHG006"):
        sc.test_plan = False
    if sc.change_type == "normal" and rng.random() < 0.35:
        sc.cab_required = True
        sc.cab_date = True
        if state in PAST_SCHEDULED and _violate(rng, sc, "CHG012", 0.08):
            sc.cab_date = False
    if _violate(rng, sc, "CHG011", 0.04):
        for code in (
            "CHG001",
            "CHG002",
            "CHG004",
            "CHG005",
            "CHG006",
            "CHG009",
            "CHG008",
            "CHG012",
        ):
            sc.violations.discard(code)
        sc.change_type = ""
    return sc


def problem(rng: random.Random, anchor: int) -> Scenario:
    state = _pick(rng, _STATES["problem"])
    sc = Scenario("problem", state, 0, 0)
    _people(rng, sc)
    sc.priority = rng.choice((2, 3, 3, 4))
    sc.known_error = rng.random() < 0.3
    if state in DONE or state == "cancelled":
        _closed_times(rng, sc, anchor, rng.randrange(2 * DAY, 40 * DAY))
        if state != "cancelled" and _violate(rng, sc, "PRB001"):
            sc.root_cause = False
    else:
        sc.created = anchor - rng.randrange(DAY, 50 * DAY)
        sc.updated = anchor - rng.randrange(HOUR, min(40 * DAY, anchor - sc.created))
        sc.root_cause = state == "in_progress" and rng.random() < 0.4
        if _violate(rng, sc, "PRB003"):
            sc.created = anchor - rng.randrange(120 * DAY, 300 * DAY)
            sc.updated = anchor - rng.randrange(70 * DAY, 110 * DAY)
    if sc.known_error and state != "cancelled" and _violate(rng, sc, "PRB002", 0.08):
        sc.workaround = False
    return sc


def request(rng: random.Random, anchor: int, with_approvals_share: float = 0.3) -> Scenario:
    state = _pick(rng, _STATES["service_request"])
    sc = Scenario("service_request", state, 0, 0)
    _people(rng, sc)
    sc.priority = rng.choice((3, 4, 4, 5))
    sc.ci_count = 0
    sc.approval_required = rng.random() < with_approvals_share
    if state in DONE or state == "cancelled":
        _closed_times(rng, sc, anchor, rng.randrange(HOUR, 5 * DAY))
        if state != "cancelled" and _violate(rng, sc, "REQ002"):
            sc.close_notes = False
    else:
        sc.created = anchor - rng.randrange(HOUR, 10 * DAY)
        sc.updated = min(sc.created + rng.randrange(60_000, DAY), anchor - 60_000)
    if sc.approval_required:
        approver = rng.randrange(1, N_MANAGERS + 1)
        if state in DONE and _violate(rng, sc, "REQ001", 0.07):
            sc.approvals = [
                Approval(approver, rng.choice(("pending", "rejected")), None, sc.created + 60_000)
            ]
        elif state == "new":
            sc.approvals = [Approval(approver, "pending", None, sc.created + 60_000)]
        else:
            sc.approvals = [
                Approval(
                    approver, "approved", min(sc.created + HOUR, sc.updated), sc.created + 60_000
                )
            ]
        if sc.approvals[0].decision == "rejected":
            sc.approvals[0].decided_at = min(sc.created + HOUR, sc.updated)
    return sc


def ci(rng: random.Random, anchor: int) -> Scenario:
    status = _pick(rng, [("installed", 78), ("in_maintenance", 6), ("planned", 8), ("retired", 8)])
    sc = Scenario("ci", "", anchor - rng.randrange(200 * DAY, 900 * DAY), 0)
    sc.ci_status = status
    sc.requester = 0
    sc.assignee = rng.randrange(N_MANAGERS + 1, N_USERS)
    sc.group = rng.randrange(N_GROUPS)
    sc.last_verified = anchor - rng.randrange(HOUR, 90 * DAY)
    if status in ("installed", "in_maintenance") and _violate(rng, sc, "CFG001"):
        sc.owner = False
        sc.support_group = False
    if status == "installed" and _violate(rng, sc, "CFG002"):
        sc.last_verified = (
            None if rng.random() < 0.4 else anchor - rng.randrange(200 * DAY, 500 * DAY)
        )
    if status == "planned":
        sc.last_verified = None
    sc.updated = max(sc.created, (sc.last_verified or sc.created)) + rng.randrange(1000, HOUR)
    sc.updated = min(sc.updated, anchor - 1000)
    return sc
