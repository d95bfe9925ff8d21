"""Configuration management rules (ISO/IEC 20000-1:2018 8.2.6): CFG001-CFG003."""

from __future__ import annotations

from datetime import timedelta

from ticketlint.mapping.model import BaseRecord, CIRecord, has_value
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
    label,
    latest,
    person_set,
    unreadable,
    utc,
)
from ticketlint.rules.registry import RuleContext, rule

_OPERATIONAL = frozenset({"installed", "in_maintenance"})


@rule(
    code="CFG001",
    name="ci-owner-missing",
    title="Operational CI without owner or support group",
    severity="medium",
    clause="8.2.6",
    applies_to=("ci",),
)
def ci_owner_missing(record: CIRecord, ctx: RuleContext) -> Outcome:
    """An installed or maintained configuration item must have an owner or a support group.

    **Why**
    Configuration information has to be controlled; somebody must be accountable for each
    live CI so that incidents and changes reach the right people.

    **Fails when**
    The CI status is installed or in_maintenance, it has no owner and its support group
    is empty. Example: CI web-01, status installed, owner None, support_group "".

    **Passes when**
    It has an owner or a support group. Example: owner None, support_group "Linux Ops".

    **Remediation**
    Set the owner (owned_by / managed_by) or the support group on the CI.

    **Decisions**
    A missing owner counts as no owner (the model cannot tell "no owner" from "not
    provided"); the support group must be provided: None gives NOT_EVALUATED when there
    is no owner either. A Person without id, name or email is no owner.
    An owner the source holds but that could not be read (settled reading 17) gives
    NOT_EVALUATED when the support group does not decide.
    """
    status = record.status
    if status is None:
        return missing_field("ci.status")
    if status not in _OPERATIONAL:
        return NOT_APPLICABLE
    if person_set(record.owner) or has_value(record.support_group):
        return PASS
    if record.owner is None and (cannot := unreadable(record, "owner")) is not None:
        return cannot
    if record.support_group is None:
        return missing_field("ci.support_group")
    return fail(
        f"CI {record.key} is {status} but has no owner and no support group",
        owner=None,
        support_group=record.support_group,
        status=status,
    )


@rule(
    code="CFG002",
    name="ci-verification-overdue",
    title="Installed CI not verified recently",
    severity="low",
    clause="8.2.6",
    applies_to=("ci",),
    params={"max_age_days": 180},
)
def ci_verification_overdue(record: CIRecord, ctx: RuleContext) -> Outcome:
    """An installed configuration item must have been verified (discovered or audited) recently.

    **Why**
    Configuration records are to be verified periodically for accuracy; a CI nobody has
    seen for months may no longer match reality.

    **Fails when**
    The CI is installed and its last verification is empty or more than max_age_days
    (180) before as_of. Example: last_verified_at 2025-08-01 00:00 UTC, as_of 2026-03-01
    00:00 UTC.

    **Passes when**
    It was verified within max_age_days (exactly max_age_days is still fine). Example:
    last_verified_at a week before as_of.

    **Remediation**
    Run discovery or a manual audit of the CI and record the verification date; retire CIs
    that no longer exist.

    **Decisions**
    A verification time that is a date (a date-only source value) counts from the end of
    that UTC day.
    """
    status = record.status
    if status is None:
        return missing_field("ci.status")
    if status != "installed":
        return NOT_APPLICABLE
    verified = record.last_verified_at
    if verified is None:
        return missing_field("ci.last_verified_at")
    days = ctx.params["max_age_days"]
    if verified == "":
        return fail(
            f"CI {record.key} is installed but has never been verified",
            last_verified_at=verified,
            max_age_days=days,
        )
    if ctx.as_of - latest(verified) > timedelta(days=days):
        return fail(
            f"CI {record.key} was last verified on {utc(verified)}, more than {days} days "
            f"before {utc(ctx.as_of)}",
            last_verified_at=verified,
            max_age_days=days,
        )
    return PASS


@rule(
    code="CFG003",
    name="ci-reference-unknown",
    title="Record references a CI the CMDB does not hold",
    severity="low",
    clause="8.2.6",
    applies_to=("change", "incident", "problem"),
)
def ci_reference_unknown(record: BaseRecord, ctx: RuleContext) -> Outcome:
    """Every CI a change, incident or problem references must exist in the source's CMDB.

    **Why**
    Records are expected to point at controlled configuration information; a reference
    to a CI the CMDB does not know means either the CMDB or the ticket is wrong.

    **Fails when**
    The source syncs configuration items and the record's ``ci_refs`` hold a key (or
    sys_id) that is no CI of that source. One finding per record. Example: incident
    INC0010001 with ci_refs ["web-01", "9f2c..."] where only web-01 is a CI.

    **Passes when**
    Every reference resolves to a CI of the same source. Example: ci_refs ["web-01"].

    **Remediation**
    Correct the CI reference on the ticket, or register the missing CI in the CMDB.

    **Decisions**
    Only sources whose CIs were read in the run are judged; others give NOT_EVALUATED
    ("source does not sync configuration items"). ``ci_refs`` not provided give
    NOT_EVALUATED; no (non-blank) references at all is NOT_APPLICABLE (CHG009 covers
    changes that need them).
    """
    if record.state == CANCELLED:
        return NOT_APPLICABLE
    refs = record.ci_refs
    if refs is None:
        return missing_field(f"{record.process}.ci_refs")
    refs = [ref for ref in refs if ref.strip()]
    if not refs:
        return NOT_APPLICABLE
    index = ctx.index
    source = record.source
    if not index.syncs_cis(source):
        return not_evaluated("source does not sync configuration items")
    unknown = [ref for ref in refs if not index.ci_known(source, ref)]
    if unknown:
        return fail(
            f"{label(record)} references {len(unknown)} configuration item(s) unknown to "
            f"{source}: {', '.join(unknown)}",
            ci_refs=refs,
            unknown=unknown,
        )
    return PASS
