"""Release and deployment management rule (ISO/IEC 20000-1:2018 8.5.3): REL001."""

from __future__ import annotations

from ticketlint.mapping.model import ReleaseRecord
from ticketlint.rules.outcome import (
    NOT_APPLICABLE,
    PASS,
    Outcome,
    fail,
    missing_field,
    not_evaluated,
)
from ticketlint.rules.packs.iso20000._helpers import CANCELLED, label
from ticketlint.rules.registry import RuleContext, rule


@rule(
    code="REL001",
    name="release-change-missing",
    title="Release not backed by an authorised change",
    severity="high",
    clause="8.5.3",
    applies_to=("release",),
)
def release_change_missing(record: ReleaseRecord, ctx: RuleContext) -> Outcome:
    """A release must be deployed under at least one authorised (or standard) change.

    **Why**
    Releases are deployed into the live environment through change management: each
    release is expected to trace back to changes that were authorised for it.

    **Fails when**
    The release is closed and links no change; or every change it links is in the store
    and none of them is a standard change or has an approved approval. Example: closed
    release REL-12 linking CHG-5, a normal change whose only approval was rejected.

    **Passes when**
    At least one linked change is standard or approved. Example: REL-12 links CHG-6,
    approved by the CAB.

    **Remediation**
    Link the release to the change(s) that authorise its deployment, or get the linked
    change approved before deploying.

    **Decisions**
    The second condition is read for releases past new (in progress, on hold, resolved,
    closed): before work starts its changes may rightly still await approval, so a new
    release is NOT_APPLICABLE, as is an open release that links no change yet. Linked
    changes missing from the store give NOT_EVALUATED, unless another linked change in the
    store already settles it as standard or approved (PASS). ``links`` not provided give
    NOT_EVALUATED.
    """
    state = record.state
    if state == CANCELLED:
        return NOT_APPLICABLE
    if state is None:
        return not_evaluated(f"status {record.raw_state!r} is not mapped to a release state")
    if state == "new":
        return NOT_APPLICABLE
    links = record.links
    if links is None:
        return missing_field("release.links")
    keys = [link.key for link in links if link.kind == "change"]
    if not keys:
        if state == "closed":
            return fail(f"{label(record)} is closed but links no change", links=[], state=state)
        return NOT_APPLICABLE
    index = ctx.index
    missing: list[str] = []
    for key in keys:
        facts = index.change(record.source, key)
        if facts is None:
            missing.append(key)
            continue
        ctype = (facts.change_type or "").strip().lower()
        if ctype == "standard" or facts.has_approved:
            return PASS
    if missing:
        return not_evaluated(f"linked changes not in the store: {', '.join(missing)}")
    return fail(
        f"{label(record)} is {state} but none of its changes ({', '.join(keys)}) "
        "is standard or approved",
        changes=keys,
        state=state,
    )
