"""Change management rules (ISO/IEC 20000-1:2018 8.5.1 and 8.2.6): CHG001-CHG012.

Each rule checks scope first (cancelled, change type, state), answers NOT_APPLICABLE as
soon as a *known* value puts the record out of scope, NOT_EVALUATED when a value the
verdict depends on is not provided (None), and only then PASS or FAIL.
"""

from __future__ import annotations

from datetime import timedelta

from ticketlint.mapping.model import ChangeRecord, is_empty
from ticketlint.rules.outcome import (
    NOT_APPLICABLE,
    PASS,
    Outcome,
    fail,
    missing_field,
    not_evaluated,
)
from ticketlint.rules.packs.iso20000._helpers import (
    CANCELLED,
    GATED,
    PAST_AUTHORIZE,
    PAST_SCHEDULED,
    change_type,
    earliest,
    is_time,
    label,
    latest,
    unmapped_state,
    unreadable,
    utc,
)
from ticketlint.rules.registry import RuleContext, rule

_EMERGENCY_REVIEWED = frozenset({"review", "closed"})
_BAD_OUTCOMES = frozenset({"unsuccessful", "successful_with_issues"})


def _gated_scope(record: ChangeRecord, states: frozenset[str]) -> Outcome | None:
    """Shared scope for "gated change with state in ``states``": an Outcome to return
    (NOT_APPLICABLE / NOT_EVALUATED) or None when the record is in scope."""
    state = record.state
    if state == CANCELLED:
        return NOT_APPLICABLE
    ctype = change_type(record)
    if ctype is not None and ctype not in GATED:
        return NOT_APPLICABLE  # standard, another type, or "" (CHG011 reports that)
    if state is not None and state not in states:
        return NOT_APPLICABLE
    if ctype is None:
        return missing_field("change.change_type")
    if state is None:
        return not_evaluated(f"status {record.raw_state!r} is not mapped to a change state")
    return None


@rule(
    code="CHG001",
    name="change-approval-missing",
    title="Gated change implemented without approval",
    severity="high",
    clause="8.5.1.3",
    applies_to=("change",),
)
def change_approval_missing(record: ChangeRecord, ctx: RuleContext) -> Outcome:
    """A normal change that reached scheduling, or an emergency change that reached review,
    must carry at least one approved approval.

    **Why**
    The standard expects every change that can affect services to be authorised by the
    appropriate authority before it is deployed. Emergency changes may be deployed first
    but must still be authorised, at the latest when they are reviewed.

    **Fails when**
    The change is normal and in scheduled, implement, review or closed, or emergency and in
    review or closed, and no approval entry has the decision approved. Example: normal
    change CHG0030041 in state closed with one approval, decision rejected.

    **Passes when**
    At least one approval entry is approved. Example: normal change CHG0030042, state
    implement, approvals [{approver: cab.chair, decision: approved}].

    **Remediation**
    Obtain and record the authorisation from the change authority (CAB or delegated
    approver) on the ticket; if the change went ahead without it, record it as an
    unauthorised change and raise it in the next change review.

    **Decisions**
    A change type that is not provided (None) gives NOT_EVALUATED; an empty change type is
    NOT_APPLICABLE here because CHG011 reports it. Approvals not provided (None) give
    NOT_EVALUATED; an empty approval list fails. The message uses ``actual_start`` when
    it is known.
    """
    ctype = change_type(record)
    scope = _gated_scope(record, PAST_SCHEDULED)
    if scope is not None:
        return scope
    if ctype == "emergency" and record.state not in _EMERGENCY_REVIEWED:
        return NOT_APPLICABLE
    if record.approvals is None:
        return missing_field("change.approvals")
    for approval in record.approvals:
        if approval.decision == "approved":
            return PASS
    decisions = sorted({a.decision for a in record.approvals})
    when = (
        f"was implemented on {utc(record.actual_start)}"
        if is_time(record.actual_start)
        else f"is in state {record.state}"
    )
    return fail(
        f"{ctype} {label(record)} {when} but has no approved approval",
        change_type=ctype,
        state=record.state,
        actual_start=record.actual_start,
        approval_decisions=decisions,
    )


@rule(
    code="CHG002",
    name="change-started-before-approval",
    title="Change started before it was approved",
    severity="high",
    clause="8.5.1.3",
    applies_to=("change",),
)
def change_started_before_approval(record: ChangeRecord, ctx: RuleContext) -> Outcome:
    """Work on a normal change must not start before its first approval was given.

    **Why**
    Authorisation is meant to come before deployment: an approval recorded after the work
    began is a retrospective rubber stamp, not a control.

    **Fails when**
    A normal change has an actual start, at least one approved entry carries a decision
    time, and the actual start is earlier than the earliest such decision time. Example:
    actual_start 2026-03-02 14:10 UTC, approved at 2026-03-02 16:00 UTC.

    **Passes when**
    The work started at or after the earliest approval. Example: approved 2026-03-01
    09:00 UTC, actual_start 2026-03-02 14:10 UTC.

    **Remediation**
    Record why work began before authorisation; treat it as an unauthorised change in the
    change review, and make sure the implementation status is only set after approval.

    **Decisions**
    An actual start that exists but is empty means the work has not started:
    NOT_APPLICABLE. A change without approved entries is NOT_APPLICABLE (CHG001 reports
    it). Approved entries that all lack a decision time give NOT_EVALUATED: the source
    does not say when they were approved. An actual start that is a date (a date-only
    source value) means its whole UTC day: it fails only when that day ends before the
    first approval.
    """
    if record.state == CANCELLED:
        return NOT_APPLICABLE
    ctype = change_type(record)
    if ctype is None:
        return missing_field("change.change_type")
    if ctype != "normal":
        return NOT_APPLICABLE
    start = record.actual_start
    if start is None:
        return missing_field("change.actual_start")
    if start == "":
        return NOT_APPLICABLE
    if record.approvals is None:
        return missing_field("change.approvals")
    earliest_approval = None
    approved = 0
    for approval in record.approvals:
        if approval.decision != "approved":
            continue
        approved += 1
        at = approval.decided_at
        if at is not None and (earliest_approval is None or at < earliest_approval):
            earliest_approval = at
    if not approved:
        return NOT_APPLICABLE
    if earliest_approval is None:
        return not_evaluated("source does not provide the decision time of change.approvals")
    if latest(start) < earliest_approval:
        return fail(
            f"{label(record)} started on {utc(start)} before its first approval on {utc(earliest_approval)}",
            actual_start=start,
            earliest_approval=earliest_approval,
        )
    return PASS


@rule(
    code="CHG003",
    name="change-self-approved",
    title="Change approved by its own requester or assignee",
    severity="high",
    clause="8.5.1.3",
    applies_to=("change",),
)
def change_self_approved(record: ChangeRecord, ctx: RuleContext) -> Outcome:
    """Nobody may approve a change they requested or are implementing.

    **Why**
    Authorisation is only an independent control when the approver is not the person who
    asks for the change or carries it out (segregation of duties).

    **Fails when**
    An approved entry's approver id equals the requester's id or the assignee's id.
    Example: requester u-42, approvals [{approver: u-42, decision: approved}].

    **Passes when**
    Every approved entry comes from someone else. Example: requester u-42, assignee
    u-7, approved by u-99.

    **Remediation**
    Have the change re-authorised by an independent approver and record it; configure the
    approval workflow so the requester and assignee are excluded as approvers.

    **Decisions**
    People are compared by native account id only (names are not unique); a missing id
    is ignored. Approvals not provided give NOT_EVALUATED; no approved entry is
    NOT_APPLICABLE. When no approved entry carries an approver id, or neither requester
    nor assignee carries one, there is nothing to compare: NOT_EVALUATED. Applies to every
    change type, standard included.
    A requester or assignee that could not be read (settled reading 17) turns what would
    be a PASS into NOT_EVALUATED: the unread one may be the approver.
    """
    if record.state == CANCELLED:
        return NOT_APPLICABLE
    approvals = record.approvals
    if approvals is None:
        return missing_field("change.approvals")
    approver_ids = [a.approver.id for a in approvals if a.decision == "approved"]
    if not approver_ids:
        return NOT_APPLICABLE
    requester = record.requester.id if record.requester is not None else None
    assignee = record.assignee.id if record.assignee is not None else None
    if requester is None and assignee is None:
        return missing_field("change.requester", "change.assignee")
    if all(a is None for a in approver_ids):
        return not_evaluated("source does not provide approver ids of change.approvals")
    for entry in approvals:
        approver = entry.approver.id
        if entry.decision != "approved" or approver is None:
            continue
        if approver in (requester, assignee):
            role = "requester" if approver == requester else "assignee"
            return fail(  # name the person: a sys_id or accountId means nothing to a reader
                f"{label(record)} was approved by its own {role} ({entry.approver.label()})",
                approver_id=approver,
                requester_id=requester,
                assignee_id=assignee,
            )
    return unreadable(record, "requester", "assignee") or PASS


@rule(
    code="CHG004",
    name="change-risk-assessment-missing",
    title="Gated change without risk and impact assessment",
    severity="medium",
    clause="8.5.1.3",
    applies_to=("change",),
)
def change_risk_assessment_missing(record: ChangeRecord, ctx: RuleContext) -> Outcome:
    """A normal or emergency change that reached authorisation must record its risk and impact.

    **Why**
    Change decisions are expected to weigh the risk and the potential impact on services
    and customers; without a recorded assessment the authorisation has nothing to rest on.

    **Fails when**
    A gated change is in authorize or later and its risk or its impact is empty. Example:
    normal change in authorize with risk "High" and impact "".

    **Passes when**
    Both risk and impact hold a value. Example: risk "Moderate", impact "2 - Medium".

    **Remediation**
    Fill in the risk and impact assessment on the change before (re)submitting it for
    authorisation.

    **Decisions**
    When one of the two is empty the change fails even if the other is not provided;
    NOT_EVALUATED only when nothing empty was seen and one of them is not provided.
    """
    scope = _gated_scope(record, PAST_AUTHORIZE)
    if scope is not None:
        return scope
    risk, impact = record.risk, record.impact
    missing = [name for name, value in (("risk", risk), ("impact", impact)) if is_empty(value)]
    if missing:
        return fail(
            f"{change_type(record)} {label(record)} in state {record.state} has no "
            f"{' and no '.join(missing)} assessment",
            risk=risk,
            impact=impact,
            state=record.state,
        )
    if risk is None or impact is None:
        return missing_field(
            *[f"change.{n}" for n, v in (("risk", risk), ("impact", impact)) if v is None]
        )
    return PASS


def _plan_rule(record: ChangeRecord, field: str, types: frozenset[str]) -> Outcome:
    scope = _gated_scope(record, PAST_SCHEDULED)
    if scope is not None:
        return scope
    if change_type(record) not in types:
        return NOT_APPLICABLE
    value = getattr(record, field)
    if value is None:
        return missing_field(f"change.{field}")
    if is_empty(value):
        plan = field.replace("_", " ")
        return fail(
            f"{change_type(record)} {label(record)} is in state {record.state} but has no {plan}",
            **{field: value, "state": record.state},
        )
    return PASS


@rule(
    code="CHG005",
    name="change-backout-plan-missing",
    title="Gated change without a backout plan",
    severity="high",
    clause="8.5.1.3",
    applies_to=("change",),
)
def change_backout_plan_missing(record: ChangeRecord, ctx: RuleContext) -> Outcome:
    """A normal or emergency change that is scheduled or later must say how to undo it.

    **Why**
    Planning a change includes deciding how to reverse or remedy it if it fails, so the
    service can be restored without improvising during an outage.

    **Fails when**
    A gated change is in scheduled, implement, review or closed and its backout plan is
    empty (blank or whitespace only). Example: emergency change in implement with
    backout_plan "\\t ".

    **Passes when**
    The backout plan holds text. Example: backout_plan "Restore snapshot db-01 taken at
    T-1h".

    **Remediation**
    Write the backout (remediation) steps into the change before implementation.
    """
    return _plan_rule(record, "backout_plan", GATED)


@rule(
    code="CHG006",
    name="change-test-plan-missing",
    title="Normal change without a test plan",
    severity="medium",
    clause="8.5.1.3",
    applies_to=("change",),
)
def change_test_plan_missing(record: ChangeRecord, ctx: RuleContext) -> Outcome:
    """A normal change that is scheduled or later must describe how it will be tested.

    **Why**
    Changes are expected to be built and tested before deployment so that their effect on
    the service is known; a plan records what will be verified and how.

    **Fails when**
    A normal change is in scheduled, implement, review or closed and its test plan is
    empty. Example: normal change in scheduled with test_plan "".

    **Passes when**
    The test plan holds text. Example: test_plan "Smoke tests in staging, then canary".

    **Remediation**
    Add the test plan (or a link to it) to the change before it is scheduled.

    **Decisions**
    Emergency changes are not in scope (the catalogue names normal changes only).
    """
    return _plan_rule(record, "test_plan", frozenset({"normal"}))


@rule(
    code="CHG007",
    name="change-closure-record-missing",
    title="Closed change without closure code and notes",
    severity="high",
    clause="8.5.1.3",
    applies_to=("change",),
)
def change_closure_record_missing(record: ChangeRecord, ctx: RuleContext) -> Outcome:
    """A closed change must say how it ended (close code) and what happened (close notes).

    **Why**
    Change records are the evidence that changes were completed as planned; the outcome
    feeds the review of changes and the configuration information.

    **Fails when**
    The change is closed and its close code or its close notes are empty. Example: closed
    change with close_code "successful" and close_notes "\\u2003".

    **Passes when**
    Both are filled. Example: close_code "successful", close_notes "Deployed v2.3, checks
    green".

    **Remediation**
    Record the close code and describe the result of the implementation in the close notes.

    **Decisions**
    One empty field fails even if the other is not provided.
    """
    state = record.state
    if state is None:
        return unmapped_state(record)
    if state != "closed":
        return NOT_APPLICABLE
    code, notes = record.close_code, record.close_notes
    missing = [n for n, v in (("close code", code), ("close notes", notes)) if is_empty(v)]
    if missing:
        return fail(
            f"{label(record)} is closed but has no {' and no '.join(missing)}",
            close_code=code,
            close_notes=notes,
            closed_at=record.closed_at,
        )
    if code is None or notes is None:
        return missing_field(
            *[f"change.{n}" for n, v in (("close_code", code), ("close_notes", notes)) if v is None]
        )
    return PASS


@rule(
    code="CHG008",
    name="change-review-missing",
    title="Emergency or failed change not reviewed",
    severity="high",
    clause="8.5.1.3",
    applies_to=("change",),
    params={"grace_days": 5},
)
def change_review_missing(record: ChangeRecord, ctx: RuleContext) -> Outcome:
    """Emergency changes and changes that did not go cleanly must be reviewed after closure.

    **Why**
    Reviewing emergency and unsuccessful changes is how the organisation learns from them
    and decides on follow-up actions; the review has to happen soon after closure.

    **Fails when**
    The change is closed, it is an emergency change or its outcome is unsuccessful or
    successful with issues, its review is not completed, and ``closed_at`` plus
    grace_days (5) is at or before as_of. Example: emergency change closed 2026-03-01
    10:00 UTC, review completed false, as_of 2026-03-06 10:00 UTC.

    **Passes when**
    The review is completed, or the grace period has not yet elapsed. Example: same
    change with review {completed: true}.

    **Remediation**
    Hold the post-implementation review, record its conclusions on the change and mark the
    review completed.

    **Decisions**
    A successful non-emergency change is NOT_APPLICABLE. When the scope cannot be told
    (change type or outcome not provided and the other does not bring it in scope):
    NOT_EVALUATED. Inside the grace period the change PASSes (nothing is overdue yet).
    A missing or empty ``closed_at`` gives NOT_EVALUATED (docs/mapping.md, reading 4). A ``closed_at``
    that is a date counts from the end of that UTC day.
    """
    state = record.state
    if state is None:
        return unmapped_state(record)
    if state != "closed":
        return NOT_APPLICABLE
    ctype = change_type(record)
    outcome = record.outcome
    if ctype != "emergency" and outcome not in _BAD_OUTCOMES:
        if ctype is None:
            return missing_field("change.change_type")
        if outcome is None:
            return missing_field("change.outcome")
        return NOT_APPLICABLE
    review = record.review
    if review is None:
        return missing_field("change.review")
    if review.completed:
        return PASS
    closed_at = record.closed_at
    if not is_time(closed_at):
        return (
            missing_field("change.closed_at")
            if closed_at is None
            else not_evaluated("change.closed_at holds no value")
        )
    due = latest(closed_at) + timedelta(days=ctx.params["grace_days"])
    if due <= ctx.as_of:
        why = "emergency change" if ctype == "emergency" else f"change with outcome {outcome}"
        return fail(
            f"{why} {record.key} was closed on {utc(closed_at)} and has no completed review "
            f"(due {utc(due)})",
            change_type=ctype,
            outcome=outcome,
            closed_at=closed_at,
            review_completed=False,
        )
    return PASS


@rule(
    code="CHG009",
    name="change-ci-missing",
    title="Gated change without affected configuration items",
    severity="medium",
    clause="8.2.6",
    applies_to=("change",),
)
def change_ci_missing(record: ChangeRecord, ctx: RuleContext) -> Outcome:
    """A normal or emergency change that is scheduled or later must name the CIs it affects.

    **Why**
    Configuration information has to stay accurate as changes are deployed, and impact
    assessment needs to know which configuration items a change touches.

    **Fails when**
    A gated change is in scheduled, implement, review or closed and ``ci_refs`` is empty.
    Example: normal change in implement with ci_refs [].

    **Passes when**
    At least one configuration item is referenced. Example: ci_refs ["web-01"].

    **Remediation**
    Add the affected configuration items (CMDB CIs / Assets objects) to the change.
    """
    scope = _gated_scope(record, PAST_SCHEDULED)
    if scope is not None:
        return scope
    refs = record.ci_refs
    if refs is None:
        return missing_field("change.ci_refs")
    for ref in refs:
        if ref.strip():
            return PASS
    return fail(
        f"{change_type(record)} {label(record)} is in state {record.state} "
        "but names no configuration item",
        ci_refs=refs,
        state=record.state,
    )


@rule(
    code="CHG010",
    name="change-outside-planned-window",
    title="Change implemented outside its planned window",
    severity="medium",
    clause="8.5.1.3",
    applies_to=("change",),
    params={"tolerance_minutes": 30},
)
def change_outside_planned_window(record: ChangeRecord, ctx: RuleContext) -> Outcome:
    """A change must be implemented within its planned (authorised) window.

    **Why**
    Authorisation covers a planned window agreed with the people affected; work outside it
    deploys a change at a time nobody approved.

    **Fails when**
    Actual start, planned start and planned end are set, and the actual start is more than
    tolerance_minutes (30) before the planned start, or the actual end is more than the
    tolerance after the planned end. Example: planned 2026-03-02 20:00-22:00 UTC, actual
    end 2026-03-02 23:15 UTC.

    **Passes when**
    The work stayed within the window plus tolerance. Example: actual 20:10-22:20 UTC for
    a 20:00-22:00 UTC window.

    **Remediation**
    Record why the window was missed and whether it was re-authorised; re-plan the change
    if it must run again.

    **Decisions**
    An actual start that exists but is empty means the work has not started, and an empty
    planned start or end means no window was planned: NOT_APPLICABLE. The end is checked
    only once ``actual_end`` holds a time. Applies to every change type. A date (a
    date-only source value) covers its whole UTC day: a planned window of dates runs from
    the start of its first day to the end of its last, and an actual start or end given as
    a date fails only when the whole day lies outside the window.
    An actual end that could not be read (settled reading 17) gives NOT_EVALUATED once
    the start is inside the window.
    """
    if record.state == CANCELLED:
        return NOT_APPLICABLE
    start, p_start, p_end = record.actual_start, record.planned_start, record.planned_end
    if not (is_time(start) and is_time(p_start) and is_time(p_end)):
        if start == "" or p_start == "" or p_end == "":
            return NOT_APPLICABLE
        return missing_field(
            *(
                f"change.{n}"
                for n, v in (
                    ("actual_start", start),
                    ("planned_start", p_start),
                    ("planned_end", p_end),
                )
                if v is None
            )
        )
    tolerance = timedelta(minutes=ctx.params["tolerance_minutes"])
    window = f"{utc(p_start)} - {utc(p_end)}"
    if latest(start) < earliest(p_start) - tolerance:
        return fail(
            f"{label(record)} started on {utc(start)}, before its planned window {window}",
            actual_start=start,
            actual_end=record.actual_end,
            planned_start=p_start,
            planned_end=p_end,
        )
    end = record.actual_end
    if end is None and (cannot := unreadable(record, "actual_end")) is not None:
        return cannot  # the end could be outside the window
    if is_time(end) and earliest(end) > latest(p_end) + tolerance:
        return fail(
            f"{label(record)} ended on {utc(end)}, after its planned window {window}",
            actual_start=start,
            actual_end=end,
            planned_start=p_start,
            planned_end=p_end,
        )
    return PASS


@rule(
    code="CHG011",
    name="change-unclassified",
    title="Change without a change type",
    severity="medium",
    clause="8.5.1.2",
    applies_to=("change",),
)
def change_unclassified(record: ChangeRecord, ctx: RuleContext) -> Outcome:
    """Every change must be classified (standard, normal, emergency).

    **Why**
    The way a change is assessed and authorised depends on its category, so a change must
    be classified when it is raised; an unclassified change escapes every gate.

    **Fails when**
    The change is not cancelled and its change type is empty. Example: change CHG-7 in
    state new with change_type "".

    **Passes when**
    The change type holds a value. Example: change_type "standard".

    **Remediation**
    Set the change type on the ticket (and make the field mandatory on create).

    **Decisions**
    A change whose status is not mapped (state None) is still evaluated: only a known
    cancelled state takes a change out of scope, and the type does not depend on it.
    """
    if record.state == CANCELLED:
        return NOT_APPLICABLE
    value = record.change_type
    if value is None:
        return missing_field("change.change_type")
    if is_empty(value):
        return fail(f"{label(record)} has no change type", change_type=value, state=record.state)
    return PASS


@rule(
    code="CHG012",
    name="change-cab-review-missing",
    title="CAB-required change scheduled without a CAB date",
    severity="medium",
    clause="8.5.1.1",
    applies_to=("change",),
)
def change_cab_review_missing(record: ChangeRecord, ctx: RuleContext) -> Outcome:
    """A change that needs the change advisory board must record when the board reviewed it.

    **Why**
    The change management policy decides which changes need the change authority (the
    CAB); the record has to show that such changes were actually put before it.

    **Fails when**
    ``cab_required`` is true, the change is scheduled or later, and ``cab_date`` is empty.
    Example: cab_required true, state scheduled, cab_date "".

    **Passes when**
    The CAB date is set. Example: cab_date 2026-03-01 15:00 UTC, or the date 2026-03-01
    (ServiceNow's ``cab_date`` is date-only on current releases: a day is set).

    **Remediation**
    Put the change on the next CAB agenda and record the meeting date on the change.

    **Decisions**
    A ``cab_date`` that is a date (no time of day) is set, like a time.
    """
    if record.state == CANCELLED:
        return NOT_APPLICABLE
    required = record.cab_required
    if required is False:
        return NOT_APPLICABLE
    state = record.state
    if state is not None and state not in PAST_SCHEDULED:
        return NOT_APPLICABLE
    if required is None:
        return missing_field("change.cab_required")
    if state is None:
        return unmapped_state(record)
    cab_date = record.cab_date
    if cab_date is None:
        return missing_field("change.cab_date")
    if cab_date == "":
        return fail(
            f"{label(record)} requires CAB review and is in state {state} but has no CAB date",
            cab_required=True,
            cab_date=cab_date,
            state=state,
        )
    return PASS
