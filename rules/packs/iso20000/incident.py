"""Incident management (8.6.1) and service level (8.3.3) rules: INC001-INC006."""

from __future__ import annotations

from datetime import timedelta

from ticketlint.mapping.model import IncidentRecord, has_value, is_empty
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
    DONE,
    duration,
    earliest,
    is_time,
    label,
    latest,
    person_set,
    resolved_major_incident_scope,
    stale,
    unmapped_state,
    unreadable,
    utc,
)
from ticketlint.rules.registry import RuleContext, rule

_NO_END = "source provides no time in incident.resolved_at or incident.closed_at"


@rule(
    code="INC001",
    name="incident-closure-record-missing",
    title="Resolved incident without resolution code and notes",
    severity="high",
    clause="8.6.1",
    applies_to=("incident",),
)
def incident_closure_record_missing(record: IncidentRecord, ctx: RuleContext) -> Outcome:
    """A resolved or closed incident must record how it was resolved.

    **Why**
    Incident records must show what was done to restore the service; the resolution feeds
    problem management, the knowledge base and trend analysis.

    **Fails when**
    The incident is resolved or closed and its resolution code or resolution notes are
    empty. Example: resolved incident INC0010001 with resolution_code "Solved (Work
    Around)" and resolution_notes "\\u00a0".

    **Passes when**
    Both are filled. Example: resolution_code "Solved (Permanently)", resolution_notes
    "Restarted the app pool; root cause tracked in PRB0040001".

    **Remediation**
    Fill in the resolution code and describe the resolution in the notes before resolving.

    **Decisions**
    One empty field fails even if the other is not provided.
    """
    state = record.state
    if state is None:
        return unmapped_state(record)
    if state not in DONE:
        return NOT_APPLICABLE
    code, notes = record.resolution_code, record.resolution_notes
    fields = (("resolution code", code), ("resolution notes", notes))
    missing = [n for n, v in fields if is_empty(v)]
    if missing:
        return fail(
            f"{label(record)} is {state} but has no {' and no '.join(missing)}",
            resolution_code=code,
            resolution_notes=notes,
            state=state,
        )
    if code is None or notes is None:
        return missing_field(*[f"incident.{n.replace(' ', '_')}" for n, v in fields if v is None])
    return PASS


@rule(
    code="INC002",
    name="incident-priority-missing",
    title="Incident without a priority",
    severity="medium",
    clause="8.6.1",
    applies_to=("incident",),
)
def incident_priority_missing(record: IncidentRecord, ctx: RuleContext) -> Outcome:
    """Every incident must be prioritised.

    **Why**
    Incidents are to be prioritised by impact and urgency; the priority drives the
    resolution target, escalation and the order of work.

    **Fails when**
    The incident is not cancelled and its priority field exists but is empty. Example: a
    Jira incident whose Priority is null (priority "").

    **Passes when**
    The priority holds a value. Example: priority 2.

    **Remediation**
    Set the priority from the impact and urgency matrix.

    **Decisions**
    An incident whose status is not mapped is still evaluated; only a known cancelled
    state takes it out of scope.
    """
    if record.state == CANCELLED:
        return NOT_APPLICABLE
    priority = record.priority
    if priority is None:
        return missing_field("incident.priority")
    if priority == "":
        return fail(f"{label(record)} has no priority", priority=priority, state=record.state)
    return PASS


@rule(
    code="INC003",
    name="incident-unassigned",
    title="Incident in progress without assignee or group",
    severity="low",
    clause="8.6.1",
    applies_to=("incident",),
)
def incident_unassigned(record: IncidentRecord, ctx: RuleContext) -> Outcome:
    """An incident being worked on must have an owner: a person or at least a group.

    **Why**
    Incidents need someone accountable for driving them to resolution; an incident in
    progress that belongs to nobody is not being managed.

    **Fails when**
    The incident is in progress or on hold, has no assignee and its group is empty.
    Example: state on_hold, assignee None, group "".

    **Passes when**
    It has an assignee or a group. Example: assignee None, group "Service Desk L2".

    **Remediation**
    Assign the incident to the responsible group (and person).

    **Decisions**
    The model cannot tell "no assignee" from "assignee not provided", so a missing
    assignee counts as none; the group must be provided (None gives NOT_EVALUATED when
    there is no assignee either). A Person without id, name or email is no assignee.
    An assignee the source holds but that could not be read (settled reading 17) gives
    NOT_EVALUATED when the group does not decide.
    """
    state = record.state
    if state is None:
        return unmapped_state(record)
    if state not in ("in_progress", "on_hold"):
        return NOT_APPLICABLE
    if person_set(record.assignee) or has_value(record.group):
        return PASS
    if record.assignee is None and (cannot := unreadable(record, "assignee")) is not None:
        return cannot
    if record.group is None:
        return missing_field("incident.group")
    return fail(
        f"{label(record)} is {state} but has no assignee and no group",
        assignee=None,
        group=record.group,
        state=state,
    )


@rule(
    code="INC004",
    name="major-incident-review-missing",
    title="Major incident without a completed review",
    severity="high",
    clause="8.6.1",
    applies_to=("incident",),
    params={"grace_days": 5},
)
def major_incident_review_missing(record: IncidentRecord, ctx: RuleContext) -> Outcome:
    """A resolved major incident must get a post-incident review within a few days.

    **Why**
    Major incidents are to be handled by a documented procedure that includes reviewing
    them afterwards, so the causes and the response are understood and improved.

    **Fails when**
    The incident is major, resolved or closed, its review is not completed, and its
    resolution time (else its closing time) plus grace_days (5) is at or before as_of.
    Example: major incident resolved 2026-03-01 08:00 UTC, review completed false, as_of
    2026-03-06 08:00 UTC.

    **Passes when**
    The review is completed, or the grace period has not elapsed. Example: review
    {completed: true, at: 2026-03-03 10:00 UTC}.

    **Remediation**
    Hold the post-incident review, link or record it on the incident and mark it completed.

    **Decisions**
    ``major`` or ``review`` not provided gives NOT_EVALUATED; so does an incident with
    neither a resolution time nor a closing time (docs/mapping.md, reading 4). Inside the grace period
    the incident PASSes (nothing is overdue yet). A resolution or closing time that is a
    date (a date-only source value) counts from the end of that UTC day.
    """
    out_of_scope = resolved_major_incident_scope(record)
    if out_of_scope is not None:
        return out_of_scope
    review = record.review
    if review is None:
        return missing_field("incident.review")
    if review.completed:
        return PASS
    ended = record.resolved_at if is_time(record.resolved_at) else record.closed_at
    if not is_time(ended):
        return not_evaluated(_NO_END)
    due = latest(ended) + timedelta(days=ctx.params["grace_days"])
    if due <= ctx.as_of:
        return fail(
            f"major {label(record)} was resolved on {utc(ended)} and has no completed review "
            f"(due {utc(due)})",
            resolved_at=record.resolved_at,
            closed_at=record.closed_at,
            review_completed=False,
        )
    return PASS


@rule(
    code="INC005",
    name="incident-resolution-target-missed",
    title="Incident resolved later than its target",
    severity="medium",
    clause="8.3.3",
    applies_to=("incident",),
    params={"target_hours": {1: 4, 2: 8, 3: 24, 4: 72, 5: 120}},
)
def incident_resolution_target_missed(record: IncidentRecord, ctx: RuleContext) -> Outcome:
    """An incident must be resolved within the target agreed for its priority.

    **Why**
    Service level management sets targets and monitors performance against them;
    resolution time per priority is the most common incident target.

    **Fails when**
    The source's own SLA verdict says breached; or, without a verdict, the incident has a
    priority and the time from creation to resolution (else closure, else as_of for open
    incidents) exceeds target_hours[priority] (1: 4, 2: 8, 3: 24, 4: 72, 5: 120). Example:
    priority 2 created 2026-03-02 08:00 UTC, resolved 2026-03-02 18:30 UTC.

    **Passes when**
    The verdict says not breached (even when the clock says otherwise), or the elapsed
    time is within the target, or there is no priority and no verdict (docs/mapping.md, reading 15).
    Example: priority 3 resolved after 5 hours.

    **Remediation**
    Record the reason for the breach and any agreed exception; raise recurring breaches in
    the service level review.

    **Decisions**
    A creation time not provided (or empty) gives NOT_EVALUATED. A resolved or closed
    incident with no resolution and no closing time gives NOT_EVALUATED rather than being
    measured to as_of. A priority with no configured target gives NOT_EVALUATED. An SLA
    verdict or a priority the source holds but that could not be read (settled reading
    17) gives NOT_EVALUATED, not the fallback for a field the source lacks. Times that are
    dates (date-only source values) cover their whole UTC day: the elapsed time is the
    shortest the days allow (creation at the end of its day, resolution at the start).
    """
    if record.state == CANCELLED:
        return NOT_APPLICABLE
    if record.state is None and (cannot := unreadable(record, "state")) is not None:
        return cannot  # might be cancelled, or resolved at a time we do not know
    breached = record.sla_breached
    if breached is None and (cannot := unreadable(record, "sla_breached")) is not None:
        return cannot
    if breached is not None:
        if breached:
            return fail(
                f"{label(record)} breached its resolution SLA (source verdict)",
                sla_breached=True,
                priority=record.priority,
            )
        return PASS
    priority = record.priority
    if priority is None or priority == "":
        return unreadable(record, "priority") or PASS
    created = record.created_at
    if not is_time(created):
        return (
            missing_field("incident.created_at")
            if created is None
            else not_evaluated("incident.created_at holds no value")
        )
    target = ctx.params["target_hours"].get(priority)
    if target is None:
        return not_evaluated(f"no resolution target configured for priority {priority}")
    if is_time(record.resolved_at):
        end, what = record.resolved_at, "resolved"
    elif is_time(record.closed_at):
        end, what = record.closed_at, "closed"
    elif record.state in DONE:
        return not_evaluated(_NO_END)
    else:
        end, what = ctx.as_of, "still open"
    elapsed = (earliest(end) - latest(created)).total_seconds()
    if elapsed > target * 3600:
        when = f"at {utc(end)}" if what != "still open" else f"as of {utc(end)}"
        return fail(
            f"priority {priority} {label(record)} created {utc(created)} was {what} {when} after "
            f"{duration(elapsed)}, over its {target}h target",
            priority=priority,
            created_at=created,
            end=end,
            elapsed_hours=round(elapsed / 3600, 2),
            target_hours=target,
        )
    return PASS


@rule(
    code="INC006",
    name="incident-stale",
    title="Open incident not updated for too long",
    severity="low",
    clause="8.6.1",
    applies_to=("incident",),
    params={"stale_days": 14},
)
def incident_stale(record: IncidentRecord, ctx: RuleContext) -> Outcome:
    """An open incident must keep moving: a record untouched for weeks is forgotten.

    **Why**
    Incidents are to be managed to resolution with their progress recorded; a record with
    no update for a long time is no longer being actively managed.

    **Fails when**
    The incident is new, in progress or on hold and was last updated more than
    stale_days (14) before as_of. Example: in_progress, updated 2026-02-01 09:00 UTC,
    as_of 2026-03-01 09:00 UTC.

    **Passes when**
    It was updated within stale_days (exactly stale_days is still fine). Example: updated
    three days before as_of.

    **Remediation**
    Update the incident with its current status, resolve it, or close it if no longer
    relevant.

    **Decisions**
    An update time that is not provided or empty gives NOT_EVALUATED. An update time that
    is a date (a date-only source value) counts from the end of that UTC day.
    """
    return stale(record, ctx, "incident", unmapped_state)
