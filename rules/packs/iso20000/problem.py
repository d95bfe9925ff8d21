"""Problem management rules (ISO/IEC 20000-1:2018 8.6.3): PRB001-PRB005.

PRB004 is the one aggregate rule of the pack: it looks at all incidents of a source per
configuration item, through the engine's :class:`~ticketlint.rules.engine.RecordIndex`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

from ticketlint.mapping.model import IncidentRecord, ProblemRecord, is_empty
from ticketlint.rules.outcome import NOT_APPLICABLE, PASS, Outcome, Status, fail, missing_field
from ticketlint.rules.packs.iso20000._helpers import (
    CANCELLED,
    done_without_text,
    label,
    resolved_major_incident_scope,
    stale,
    unmapped_state,
    utc,
)
from ticketlint.rules.registry import RuleContext, rule

if TYPE_CHECKING:  # pragma: no cover
    from ticketlint.rules.engine import RecordIndex


@rule(
    code="PRB001",
    name="problem-root-cause-missing",
    title="Resolved problem without a root cause",
    severity="high",
    clause="8.6.3",
    applies_to=("problem",),
)
def problem_root_cause_missing(record: ProblemRecord, ctx: RuleContext) -> Outcome:
    """A resolved or closed problem must record its root cause.

    **Why**
    Problem management exists to find the underlying causes of incidents; a problem closed
    without a recorded cause leaves nothing to prevent the next incident.

    **Fails when**
    The problem is resolved or closed and its root cause is empty. Example: closed
    problem PRB0040001 with root_cause "".

    **Passes when**
    The root cause holds text. Example: root_cause "Connection pool exhausted by a leak
    in release 4.2".

    **Remediation**
    Record the root cause analysis on the problem (or reopen it if the cause is unknown).
    """
    return done_without_text(record, "root_cause", "root cause")


@rule(
    code="PRB002",
    name="known-error-workaround-missing",
    title="Known error without a workaround",
    severity="medium",
    clause="8.6.3",
    applies_to=("problem",),
)
def known_error_workaround_missing(record: ProblemRecord, ctx: RuleContext) -> Outcome:
    """A known error must document its workaround (or that there is none).

    **Why**
    Known errors are recorded so that incidents they cause can be resolved quickly; the
    workaround is what the service desk needs from the record.

    **Fails when**
    The problem is flagged as a known error, is not cancelled, and its workaround is
    empty. Example: known_error true, workaround "\\u2003".

    **Passes when**
    The workaround holds text. Example: workaround "Fail over to the standby node" (or
    "None available; restart required").

    **Remediation**
    Document the workaround on the known error and share it with the service desk.

    **Decisions**
    A problem whose status is not mapped is still evaluated; only a known cancelled state
    takes it out of scope.
    """
    if record.state == CANCELLED:
        return NOT_APPLICABLE
    known = record.known_error
    if known is None:
        return missing_field("problem.known_error")
    if not known:
        return NOT_APPLICABLE
    workaround = record.workaround
    if workaround is None:
        return missing_field("problem.workaround")
    if is_empty(workaround):
        return fail(
            f"known error {label(record)} has no workaround",
            known_error=True,
            workaround=workaround,
            state=record.state,
        )
    return PASS


@rule(
    code="PRB003",
    name="problem-stale",
    title="Open problem not updated for too long",
    severity="low",
    clause="8.6.3",
    applies_to=("problem",),
    params={"stale_days": 60},
)
def problem_stale(record: ProblemRecord, ctx: RuleContext) -> Outcome:
    """An open problem must show progress at least every stale_days days.

    **Why**
    Problems are to be investigated and their progress reviewed; a problem untouched for
    months has been abandoned rather than managed.

    **Fails when**
    The problem is new, in progress or on hold and was last updated more than
    stale_days (60) before as_of. Example: updated 2026-01-01 00:00 UTC, as_of
    2026-03-05 00:00 UTC.

    **Passes when**
    It was updated within stale_days (exactly stale_days is still fine). Example:
    updated 2026-02-20 00:00 UTC, as_of 2026-03-10 00:00 UTC.

    **Remediation**
    Update the investigation status, or close the problem with its conclusion.

    **Decisions**
    An update time that is not provided or empty gives NOT_EVALUATED. An update time that
    is a date (a date-only source value) counts from the end of that UTC day.
    """
    return stale(record, ctx, "problem", unmapped_state)


@rule(
    code="PRB004",
    name="recurring-incidents-without-problem",
    title="Recurring incidents on a CI without a problem record",
    severity="medium",
    clause="8.6.3",
    applies_to=("incident",),
    kind="aggregate",
    params={"threshold": 3, "window_days": 30},
)
def recurring_incidents_without_problem(index: RecordIndex, ctx: RuleContext) -> Iterator[Outcome]:
    """Repeated incidents on one configuration item must lead to a problem record.

    **Why**
    Problem management is expected to analyse incident trends and identify problems;
    the same configuration item failing again and again is the clearest such trend.

    **Fails when**
    For one source and CI key, at least threshold (3) non-cancelled incidents that
    reference the CI were created in the window (as_of minus window_days (30), as_of] and
    none of them links a problem. One finding per CI, evidence the incident keys. Example:
    INC1, INC2, INC3 on web-01 within 30 days, no problem links.

    **Passes when**
    Fewer incidents fall in the window, or at least one of them links a problem. One PASS
    per CI key with at least one incident in the window. Example: the same three
    incidents, INC2 linked to PRB0040007.

    **Remediation**
    Open a problem record for the CI, link the incidents to it and start root cause
    analysis.

    **Decisions**
    The rule yields outcomes only for CIs with incidents in the window, so it never
    answers NOT_APPLICABLE; incidents without a creation time or without CI references
    never reach the index, so it never answers NOT_EVALUATED either. An incident created
    exactly at as_of minus window_days is outside the window; one created at as_of is
    inside.
    """
    as_of = ctx.as_of
    threshold = ctx.params["threshold"]
    start = as_of - timedelta(days=ctx.params["window_days"])
    for source in sorted(index.incidents_by_ci):
        by_ci = index.incidents_by_ci[source]
        for ci in sorted(by_ci):
            inside = [f for f in by_ci[ci] if start < f.created_at <= as_of]
            if not inside:
                continue
            keys = sorted(f.key for f in inside)
            evidence = {
                "source": source,
                "ci": ci,
                "incidents": keys,
                "window_start": start,
                "window_end": as_of,
            }
            if len(inside) >= threshold and not any(f.links_problem for f in inside):
                yield Outcome(
                    Status.FAIL,
                    message=(
                        f"CI {ci} had {len(keys)} incidents between {utc(start)} and "
                        f"{utc(as_of)} ({', '.join(keys)}) and none links a problem"
                    ),
                    evidence=evidence,
                    subject=ci,
                    subject_process="ci",
                )
            else:
                yield Outcome(Status.PASS, evidence=evidence, subject=ci, subject_process="ci")


@rule(
    code="PRB005",
    name="major-incident-problem-missing",
    title="Major incident not linked to a problem",
    severity="medium",
    clause="8.6.3",
    applies_to=("incident",),
)
def major_incident_problem_missing(record: IncidentRecord, ctx: RuleContext) -> Outcome:
    """Every resolved major incident must be linked to a problem record.

    **Why**
    A major incident almost always has an underlying cause worth investigating; linking a
    problem makes sure the cause is analysed and not just the symptom fixed.

    **Fails when**
    The incident is major, resolved or closed, and has no link of kind problem. Example:
    major incident INC0010009 closed with links [{kind: change, key: CHG0030001}].

    **Passes when**
    It links a problem. Example: links [{kind: problem, key: PRB0040001}].

    **Remediation**
    Raise (or find) the problem record for the major incident and link them.

    **Decisions**
    ``major`` or ``links`` not provided give NOT_EVALUATED.
    """
    out_of_scope = resolved_major_incident_scope(record)
    if out_of_scope is not None:
        return out_of_scope
    state = record.state
    links = record.links
    if links is None:
        return missing_field("incident.links")
    for link in links:
        if link.kind == "problem":
            return PASS
    return fail(
        f"major {label(record)} is {state} but links no problem",
        links=[f"{link.kind}:{link.key}" for link in links],
        state=state,
    )
