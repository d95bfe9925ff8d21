"""Shared helpers of the CLI tests: a tiny rule pack (so outputs do not change when the
real pack changes) and snapshot comparison. Imported by conftest.py and the tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from snapshot_support import assert_snapshot as shared_assert_snapshot

from ticketlint.mapping.model import is_empty
from ticketlint.rules.outcome import (
    NOT_APPLICABLE,
    PASS,
    Outcome,
    fail,
    missing_field,
    not_evaluated,
)
from ticketlint.rules.registry import Pack, RuleContext, rule

AS_OF = "2026-03-31T00:00:00Z"

_DOC = """Test rule.

**Why**

Because the test says so.

**Fails when**

The field is empty.

**Passes when**

The field holds something.

**Remediation**

Fill in the field.
"""


def _doc(func: Callable[..., Any]) -> Callable[..., Any]:
    func.__doc__ = _DOC
    return func


@rule(
    code="TST001",
    name="test-backout-missing",
    title="Change without a backout plan",
    severity="high",
    clause="8.5.1.3",
    applies_to=["change"],
)
@_doc
def tst001(record: Any, ctx: RuleContext) -> Outcome:
    if record.state is None:
        return not_evaluated(f"status {record.raw_state!r} is not mapped")
    if record.backout_plan is None:
        return missing_field("backout_plan")
    if is_empty(record.backout_plan):
        return fail(f"change {record.key} has no backout plan", backout_plan=record.backout_plan)
    return PASS


@rule(
    code="TST002",
    name="test-priority-missing",
    title="Incident without a priority",
    severity="medium",
    clause="8.6.1",
    applies_to=["incident"],
)
@_doc
def tst002(record: Any, ctx: RuleContext) -> Outcome:
    if record.state == "cancelled":
        return NOT_APPLICABLE
    if record.priority is None:
        return missing_field("priority")
    if record.priority == "":
        return fail(f"incident {record.key} has no priority", priority=record.priority)
    return PASS


@rule(
    code="TST003",
    name="test-incident-stale",
    title="Open incident not updated",
    severity="low",
    clause="8.6.1",
    applies_to=["incident"],
    params={"stale_days": 14},
)
@_doc
def tst003(record: Any, ctx: RuleContext) -> Outcome:
    if record.state not in ("new", "in_progress", "on_hold"):
        return NOT_APPLICABLE
    if not record.updated_at:
        return missing_field("updated_at")
    if ctx.as_of - record.updated_at > timedelta(days=ctx.params["stale_days"]):
        return fail(
            f"incident {record.key} was last updated on {record.updated_at:%Y-%m-%d}",
            updated_at=record.updated_at,
        )
    return PASS


@rule(
    code="TST004",
    name="test-ci-owner-missing",
    title="CI without an owner",
    severity="medium",
    clause="8.2.6",
    applies_to=["ci"],
)
@_doc
def tst004(record: Any, ctx: RuleContext) -> Outcome:
    if record.owner is None and record.support_group is None:
        return missing_field("owner", "support_group")
    if record.owner is None and is_empty(record.support_group):
        return fail(f"CI {record.key} has no owner")
    return PASS


TEST_PACK = Pack(
    name="testpack", rules=tuple(r.with_pack("testpack") for r in (tst001, tst002, tst003, tst004))
)


def assert_snapshot(name: str, actual: str) -> None:
    """Compare with tests/snapshots/<name>; UPDATE_SNAPSHOTS=1 rewrites it instead."""
    shared_assert_snapshot(name, actual)
