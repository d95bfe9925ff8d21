"""Service request management rules (ISO/IEC 20000-1:2018 8.6.2): REQ001-REQ002."""

from __future__ import annotations

from ticketlint.mapping.model import ServiceRequestRecord
from ticketlint.rules.outcome import NOT_APPLICABLE, PASS, Outcome, fail, missing_field
from ticketlint.rules.packs.iso20000._helpers import DONE, done_without_text, label, unmapped_state
from ticketlint.rules.registry import RuleContext, rule


@rule(
    code="REQ001",
    name="request-approval-missing",
    title="Request needing approval fulfilled without one",
    severity="high",
    clause="8.6.2",
    applies_to=("service_request",),
)
def request_approval_missing(record: ServiceRequestRecord, ctx: RuleContext) -> Outcome:
    """A service request that needs approval must not be fulfilled without an approved entry.

    **Why**
    Service requests are fulfilled according to agreed procedures; where a request type
    requires authorisation (access, purchases), fulfilment without it bypasses the control.

    **Fails when**
    ``approval_required`` is true, the request is resolved or closed, and no approval has
    the decision approved. Example: access request RITM0010001 closed with approvals
    [{approver: mgr, decision: pending}].

    **Passes when**
    At least one approval entry is approved. Example: approvals [{approver: mgr,
    decision: approved}].

    **Remediation**
    Obtain and record the approval; if the request was fulfilled without it, review (and
    where needed revoke) what was delivered.

    **Decisions**
    ``approval_required`` or the approvals not provided give NOT_EVALUATED; an empty
    approval list fails.
    """
    state = record.state
    if state is None:
        return unmapped_state(record)
    if state not in DONE:
        return NOT_APPLICABLE
    required = record.approval_required
    if required is None:
        return missing_field("service_request.approval_required")
    if not required:
        return NOT_APPLICABLE
    approvals = record.approvals
    if approvals is None:
        return missing_field("service_request.approvals")
    for approval in approvals:
        if approval.decision == "approved":
            return PASS
    return fail(
        f"{label(record)} needs approval and is {state} but has no approved approval",
        approval_required=True,
        approval_decisions=sorted({a.decision for a in approvals}),
        state=state,
    )


@rule(
    code="REQ002",
    name="request-closure-record-missing",
    title="Fulfilled request without resolution notes",
    severity="low",
    clause="8.6.2",
    applies_to=("service_request",),
)
def request_closure_record_missing(record: ServiceRequestRecord, ctx: RuleContext) -> Outcome:
    """A fulfilled service request must say what was delivered.

    **Why**
    Records of service requests show that each request was fulfilled as agreed; the notes
    are the evidence of what was done for the requester.

    **Fails when**
    The request is resolved or closed and its resolution notes are empty. Example: closed
    request with resolution_notes "\\n\\t".

    **Passes when**
    The notes hold text. Example: resolution_notes "Laptop LT-1234 handed over".

    **Remediation**
    Describe the fulfilment in the resolution (close) notes.
    """
    return done_without_text(record, "resolution_notes", "resolution notes")
