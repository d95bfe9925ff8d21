"""Small, allocation-free helpers shared by the ``iso20000`` rules (terms of docs/record-model.md).

Everything here is called once per (rule, record) on the hot path of a nightly run, so
the helpers avoid pydantic round-trips, regexes and per-call containers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, TypeGuard

from ticketlint.mapping.model import (
    BaseRecord,
    ChangeRecord,
    IncidentRecord,
    Person,
    day_end,
    day_start,
    is_empty,
)
from ticketlint.rules.outcome import (
    NOT_APPLICABLE,
    PASS,
    Outcome,
    fail,
    missing_field,
    not_evaluated,
)
from ticketlint.rules.registry import RuleContext

CANCELLED = "cancelled"
GATED = frozenset({"normal", "emergency"})
PAST_SCHEDULED = frozenset({"scheduled", "implement", "review", "closed"})
PAST_AUTHORIZE = PAST_SCHEDULED | {"authorize"}
DONE = frozenset({"resolved", "closed"})
OPEN = frozenset({"new", "in_progress", "on_hold"})


def unmapped_state(record: BaseRecord) -> Outcome:
    """NOT_EVALUATED for a record whose source status maps to no lifecycle state."""
    noun = record.process.replace("_", " ")
    article = "an" if noun[0] in "aeiou" else "a"
    return not_evaluated(f"status {record.raw_state!r} is not mapped to {article} {noun} state")


def resolved_major_incident_scope(record: IncidentRecord) -> Outcome | None:
    """The shared scope of INC004 and PRB005: a resolved or closed major incident.
    Returns the outcome when the record is out of scope or cannot be judged, else None."""
    state = record.state
    if state is None:
        return unmapped_state(record)
    if state not in DONE:
        return NOT_APPLICABLE
    if record.major is None:
        return missing_field("incident.major")
    if not record.major:
        return NOT_APPLICABLE
    return None


def done_without_text(record: BaseRecord, field: str, what: str) -> Outcome:
    """The shared body of PRB001 and REQ002: a resolved or closed record must hold text
    in ``field`` (``what`` names it in the message)."""
    state = record.state
    if state is None:
        return unmapped_state(record)
    if state not in DONE:
        return NOT_APPLICABLE
    value = getattr(record, field)
    if value is None:
        return missing_field(f"{record.process}.{field}")
    if is_empty(value):
        return fail(
            f"{label(record)} is {state} but has no {what}", **{field: value, "state": state}
        )
    return PASS


def change_type(record: ChangeRecord) -> str | None:
    """The change type normalised for comparison: None (not provided), "" (empty) or a
    lower-case word. Mappers already emit lower case; this keeps a file import with
    "Normal" from slipping through every gated-change rule."""
    value = record.change_type
    if value is None:
        return None
    return value.strip().lower()


def utc(value: Any) -> str:
    """A datetime as the one-line messages show it: ``2026-03-02 14:10 UTC``; a date
    (a date-only source value) as ``2026-03-02 (UTC day)``."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, date):
        return f"{value.isoformat()} (UTC day)"
    return "(no time)"


def is_time(value: object) -> TypeGuard[datetime | date]:
    """True for an actual datetime or date (not None, not the "" empty marker); narrows
    the value for the type checker. A date is a date-only source value (settled reading
    18): compare it through :func:`earliest` / :func:`latest`."""
    return isinstance(value, date)


def earliest(value: Any) -> datetime:
    """The earliest instant a time or a date (its whole UTC day) can mean (settled
    reading 18): rules take the reading that gives the record the benefit of the doubt."""
    return day_start(value)


def latest(value: Any) -> datetime:
    """The latest instant a time or a date (its whole UTC day) can mean."""
    return day_end(value)


def unreadable(record: BaseRecord, *fields: str) -> Outcome | None:
    """NOT_EVALUATED naming the first of ``fields`` the record could not read (settled
    reading 17), for rules whose contract reads None as something else (INC005)."""
    for name in fields:
        why = (record.unreadable or {}).get(name)
        if why is not None:
            return not_evaluated(
                f"could not read {record.process}.{name} ({why.split(': ', 1)[0]})"
            )
    return None


def person_set(person: Person | None) -> bool:
    """A person reference that names somebody (a Person with every field None does not)."""
    return person is not None and bool(person.id or person.name or person.email)


def label(record: BaseRecord) -> str:
    """``change CHG0030041``: how messages name the record."""
    return f"{record.process.replace('_', ' ')} {record.key}"


def duration(seconds: float) -> str:
    """A human duration for messages: ``3d 4h``, ``9h 30m``, ``45m``."""
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins}m"
    return f"{mins}m"


def stale(
    record: BaseRecord, ctx: RuleContext, process: str, unmapped: Callable[[Any], Outcome]
) -> Outcome:
    """Shared body of INC006 and PRB003."""
    state = record.state
    if state is None:
        return unmapped(record)
    if state not in OPEN:
        return NOT_APPLICABLE
    updated = record.updated_at
    if not is_time(updated):
        return (
            missing_field(f"{process}.updated_at")
            if updated is None
            else not_evaluated(f"{process}.updated_at holds no value")
        )
    days = ctx.params["stale_days"]
    if ctx.as_of - latest(updated) > timedelta(days=days):
        return fail(
            f"{label(record)} is {state} and was last updated on {utc(updated)}, "
            f"more than {days} days before {utc(ctx.as_of)}",
            updated_at=updated,
            state=state,
            stale_days=days,
        )
    return PASS
