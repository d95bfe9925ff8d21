"""ServiceNow Table API rows -> normalised ISO/IEC 20000 records (docs/mapping.md "ServiceNow").

Pure functions of JSON rows: no HTTP. The connector (or ``ticketlint check --input``)
hands :meth:`ServiceNowMapper.map_rows` the rows of one table plus, optionally, the bulk
``sysapproval_approver`` and ``task_ci`` rows of the same records.

Value shapes accepted (raw values, ``sysparm_display_value=false``):

- every column is a string: ``""`` empty, ``"true"``/``"false"``, numbers as text,
  datetimes ``yyyy-MM-dd HH:mm:ss`` in UTC;
- a reference column is a sys_id string (``sysparm_exclude_reference_link=true``), or
  ``{"link": ..., "value": sys_id}`` (without it), or
  ``{"display_value": ..., "value": ..., "link": ...}`` (``sysparm_display_value=all``,
  which wraps every column that way; the ``value`` is read, ``display_value`` only
  names a reference that lacks a dot-walked name);
- dot-walked columns are separate keys: ``"assigned_to.name"``.

None versus empty (docs/record-model.md; docs/mapping.md, reading 2). A canonical field reads its column
from the row:

- the column is **absent** from the row (the instance lacks it, so the Table API did
  not return it although ``sysparm_fields`` asked for it) -> ``None`` (not provided: rules
  that need it answer NOT_EVALUATED);
- the column is present but ``""`` -> empty (``""`` for text, times and the priority,
  ``False`` for booleans, ``[]`` for lists, ``Review(completed=False)``);
- otherwise the value.

Exceptions the contract spells out: ``major`` is False when ``major_incident_state`` is
absent (the Major Incident Management plugin is off: nothing is major); a negated
boolean column (``"!made_sla"``) that is present but ``""`` gives None (cannot tell), so
INC005 falls back on elapsed time.

Decisions where docs/mapping.md is silent:

- requester: the process's own column (``requested_by`` / ``caller_id``), falling back
  on ``opened_by`` when that is empty;
- ``resolved_at`` is read from the ``resolved_at`` column of incident and problem (the
  only tables that have one); change and request leave it None;
- ``approvals`` is None when no approval rows were read (``approvals=None``), ``[]``
  when they were read and none belong to the record;
- group / support group: the dot-walked ``.name``, else the display value, else the raw
  sys_id; ``""`` when the reference is empty;
- CIs: ``status`` from ``install_status`` (codes outside the map become ``other`` and
  are counted); ``state`` stays None (CIs have no lifecycle ladder);
- the key is ``number`` (CI: ``name``); a row without one is keyed by its sys_id and
  counted as a warning; a row with a number but no sys_id is checked (no url); a row
  with neither is a mapping error (settled reading 17).

Overrides (``MappingOptions``): ``fields`` maps ``<process>.<field>`` to a column (a
leading ``!`` negates a boolean column; a column mapped to ``review`` is completed when
it holds a true boolean, a non-empty text or a date, and a date there is ``review.at``);
``status_map`` maps state codes (as strings) to normalised states over the defaults;
``tables`` renames the table of a process.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from ticketlint.mapping.common import (
    MappingError,
    MappingOptions,
    MappingReport,
    Unreadable,
    gc_paused,
    html_to_text,
    maybe_html_text,
    parse_int,
    parse_servicenow_time,
)
from ticketlint.mapping.model import (
    CHANGE_STATES,
    CI_STATUSES,
    TICKET_STATES,
    Approval,
    BaseRecord,
    ChangeRecord,
    CIRecord,
    IncidentRecord,
    Link,
    Person,
    ProblemRecord,
    Review,
    ServiceRequestRecord,
    build,
    builder,
)
from ticketlint.mapping.servicenow_types import (
    BOOLEAN_TYPES,
    DATE_TYPES,
    DATETIME_TYPES,
    HTML_TYPES,
    NUMBER_TYPES,
    REFERENCE_TYPES,
    TIME_TYPES,
    ColumnTypes,
)

SYSTEM = "servicenow"

DEFAULT_TABLES: dict[str, str] = {
    "incident": "incident",
    "change": "change_request",
    "problem": "problem",
    "service_request": "sc_req_item",
    "ci": "cmdb_ci",
}
APPROVAL_TABLE = "sysapproval_approver"
TASK_CI_TABLE = "task_ci"

APPROVAL_FIELDS: list[str] = [
    "sys_id",
    "sysapproval",
    "document_id",
    "source_table",
    "approver",
    "approver.name",
    "approver.email",
    "approver.user_name",
    "state",
    "sys_created_on",
    "sys_updated_on",
]
TASK_CI_FIELDS: list[str] = ["sys_id", "task", "ci_item", "ci_item.name"]

# --- state maps (docs/mapping.md table) ------------------------------------------------------

DEFAULT_STATE_MAPS: dict[str, dict[str, str]] = {
    "incident": {
        "1": "new",
        "2": "in_progress",
        "3": "on_hold",
        "6": "resolved",
        "7": "closed",
        "8": "cancelled",
    },
    "change": {
        "-5": "new",
        "-4": "assess",
        "-3": "authorize",
        "-2": "scheduled",
        "-1": "implement",
        "0": "review",
        "3": "closed",
        "4": "cancelled",
    },
    "problem": {
        "101": "new",
        "102": "in_progress",
        "103": "in_progress",
        "104": "in_progress",
        "106": "resolved",
        "107": "closed",
        # legacy (pre-Madrid) problem states
        "1": "new",
        "2": "in_progress",
        "3": "in_progress",
        "4": "closed",
    },
    "service_request": {
        "-5": "new",
        "1": "new",
        "2": "in_progress",
        "3": "closed",
        "4": "closed",
        "7": "cancelled",
    },
    "ci": {
        "1": "installed",
        "2": "planned",
        "4": "planned",
        "6": "planned",
        "3": "in_maintenance",
        "5": "in_maintenance",
        "7": "retired",
        "8": "retired",
    },
}
_VALID_STATES: dict[str, tuple[str, ...]] = {
    "incident": TICKET_STATES,
    "problem": TICKET_STATES,
    "service_request": TICKET_STATES,
    "change": CHANGE_STATES,
    "ci": CI_STATUSES,
}
_PROBLEM_CANCELLING_CODES = frozenset({"canceled", "cancelled", "duplicate"})  # settled 14

RISK_NAMES = {"1": "very high", "2": "high", "3": "moderate", "4": "low"}
IMPACT_NAMES = {"1": "high", "2": "medium", "3": "low"}
_OUTCOMES = {
    "successful": "successful",
    "successful_issues": "successful_with_issues",
    "unsuccessful": "unsuccessful",
}
# sysapproval_approver.state -> decision; settled 13: the other states are not approvals
_APPROVAL_DECISIONS = {
    "approved": "approved",
    "rejected": "rejected",
    "requested": "pending",
    "cancelled": "cancelled",
}
_NOT_APPROVALS = frozenset({"not requested", "not_requested", "not_required", "duplicate"})
_APPROVAL_REQUIRED = frozenset({"requested", "approved", "rejected"})  # settled 13

_RECORD_CLASSES: dict[str, type[BaseRecord]] = {
    "incident": IncidentRecord,
    "change": ChangeRecord,
    "problem": ProblemRecord,
    "service_request": ServiceRequestRecord,
    "ci": CIRecord,
}

_ABSENT: Any = object()


# --- value helpers -------------------------------------------------------------------------


def _scalar(value: Any, column: str) -> str:
    """A raw column value as text; unwraps ``{"value": ...}`` objects.

    ``{"display_value": ..., "link": ...}`` without ``value`` (an export made with
    ``sysparm_display_value=true``) carries no raw value: :class:`Unreadable`, so the
    field is unknown, never empty. A number is its text (``4`` -> ``"4"``, ``4.0`` ->
    ``"4"``)."""
    if isinstance(value, dict):
        if "value" not in value:
            raise Unreadable(
                "display value without raw value",
                f"column {column!r} (export with sysparm_display_value=false or all)",
            )
        value = value["value"]
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    raise Unreadable("unexpected value shape", f"column {column!r} holds a {type(value).__name__}")


def _get(row: Mapping[str, Any], column: str) -> Any:
    """The column's text, or ``_ABSENT`` when the row does not carry the column."""
    value = row.get(column, _ABSENT)
    if value.__class__ is str or value is _ABSENT:  # raw Table API values: the hot path
        return value
    return _scalar(value, column)


def _reference(row: Mapping[str, Any], column: str) -> tuple[Any, str | None]:
    """(sys_id text or ``_ABSENT``, display value from a ``display_value=all`` object)."""
    value = row.get(column, _ABSENT)
    if value.__class__ is str:
        return value, None
    if value is _ABSENT:
        return _ABSENT, None
    if isinstance(value, dict):
        display = value.get("display_value")
        return _scalar(value, column), display if isinstance(display, str) else None
    return _scalar(value, column), None


def _dotted(row: Mapping[str, Any], column: str) -> str | None:
    """A dot-walked display column (``assigned_to.name``); None when absent or unreadable
    (it only names what the reference itself identifies)."""
    value = row.get(column)
    if value is None:
        return None
    if value.__class__ is str:
        return value or None
    if isinstance(value, dict) and isinstance(value.get("display_value"), str):
        return value["display_value"] or None
    try:
        return _scalar(value, column) or None
    except Unreadable:
        return None


def _time(text: str, column: str) -> datetime | date | str:
    """``yyyy-MM-dd HH:mm:ss`` UTC (``glide_date_time``), or ``yyyy-MM-dd``
    (``glide_date``, e.g. ``cab_date`` on current releases): a date (settled reading 18).
    An ISO 8601 time with an explicit offset is read too. The strict shape is checked
    here, then the C parser ``fromisoformat`` does the work (``strptime`` costs most of
    the mapping budget). Anything else is :class:`Unreadable` (the field is unknown)."""
    value = text.strip()
    if not value:
        return ""
    if len(value) == 19 and value[10] == " " and value[4] == "-" and value[13] == ":":
        try:  # parsing the UTC offset costs less than ``replace(tzinfo=...)`` afterwards
            return _fromisoformat(value + "+00:00")
        except ValueError:
            pass  # e.g. the value carries an offset of its own: the old way decides
        try:
            return _fromisoformat(value).replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    elif len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    elif len(value) > 19 and value[10] in "T " and value[4] == "-":
        try:
            parsed = _fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.astimezone(timezone.utc)
    raise Unreadable("not a date or time", f"column {column!r}: {text[:40]!r}")


_fromisoformat = datetime.fromisoformat


def _declared(kind: str, column: str, text: str) -> Unreadable:
    """A value that contradicts its column's declared type (sys_dictionary)."""
    return Unreadable(f"not a {kind} (sys_dictionary type)", f"column {column!r}: {text[:40]!r}")


def _glide_date(text: str, column: str) -> date | str:
    """A ``glide_date`` column: ``yyyy-MM-dd`` (a whole day, settled reading 18)."""
    value = text.strip()
    if not value:
        return ""
    if len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise _declared("glide_date", column, text)


def _glide_date_time(text: str, column: str) -> datetime | str:
    """A ``glide_date_time`` column: ``yyyy-MM-dd HH:mm:ss`` UTC (or ISO 8601 with an
    offset); a date alone contradicts the declared type."""
    if len(text) == 19 and text[10] == " " and text[4] == "-" and text[13] == ":":
        try:  # the Table API's own shape: the hot path, as in _time
            return _fromisoformat(text + "+00:00")
        except ValueError:
            pass
    try:
        value = _time(text, column)
    except Unreadable:
        raise _declared("glide_date_time", column, text) from None
    if isinstance(value, (datetime, str)):  # a time, or "" (empty)
        return value
    raise _declared("glide_date_time", column, text)  # a date alone


_TIME_PARSERS: dict[str, Callable[[str, str], Any]] = {
    **dict.fromkeys(DATE_TYPES, _glide_date),
    **dict.fromkeys(DATETIME_TYPES, _glide_date_time),
}


_TRUE = frozenset({"true", "1", "yes", "y"})
_FALSE = frozenset({"false", "0", "no", "n", ""})


def _flag(text: str) -> bool:
    """A boolean column: true / false (any case), 1 / 0, yes / no; "" is False (empty).
    Anything else is :class:`Unreadable` (the field is unknown, not False)."""
    folded = text.strip().lower()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    raise Unreadable("not a boolean", repr(text[:40]))


def _set_flag(text: str) -> bool:
    """A review-like column: set when a true boolean, a non-empty text or a date."""
    v = text.strip()
    return bool(v) and v.lower() not in ("false", "0", "no")


# --- readers: one per canonical field, built once per process --------------------------


@dataclass
class _Ctx:
    """What a reader may need besides the row."""

    ci_names: Mapping[str, str]
    people: dict[tuple[Any, ...], Person] = field(default_factory=dict)
    """One immutable Person per (sys_id, name, email), shared across records (fewer
    objects to build and for the garbage collector to scan)."""


Declared = Callable[[str], "str | None"]
"""A column of the plan's table -> its declared type (sys_dictionary), None when unknown."""


class _Reader:
    """Reads one canonical field from a row; ``columns`` feed ``sysparm_fields``.

    :meth:`typed` gives the reader specialised to its columns' declared types (once per
    plan, never per row); :meth:`usable` says whether a declared type is one this reader
    can read (``ticketlint doctor`` lists the columns where it is not)."""

    columns: tuple[str, ...] = ()

    def read(self, row: Mapping[str, Any], ctx: _Ctx) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def typed(self, declared: Declared) -> _Reader:
        return self

    def usable(self, column: str, declared: str) -> bool:
        return True


class _Text(_Reader):
    """A text column. HTML (``html`` columns such as ``problem.cause_notes``, or any
    value holding tags) is made text first (settled reading 19), so ``<p><br></p>`` is
    empty. With a declared type: ``html`` / ``journal`` columns are always made text,
    any other type is literal text (a ``string`` holding ``<p>`` keeps it)."""

    html: bool | None = None
    """True: declared HTML; False: declared plain text; None: guessed from the value."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.columns = (column,)

    def read(self, row: Mapping[str, Any], ctx: _Ctx) -> Any:
        value = row.get(self.column, _ABSENT)
        if value.__class__ is not str:
            if value is _ABSENT:
                return None
            value = _scalar(value, self.column)
        html = self.html
        if html is None:
            return maybe_html_text(value) if "<" in value else value
        if html and ("<" in value or "&" in value):
            return html_to_text(value)
        return value

    def typed(self, declared: Declared) -> _Reader:
        kind = declared(self.column)
        if kind is None:
            return self
        clone = copy.copy(self)
        clone.html = kind in HTML_TYPES
        return clone

    def usable(self, column: str, declared: str) -> bool:
        return declared not in REFERENCE_TYPES


class _Choice(_Text):
    """A choice code turned into its name (risk, impact); unknown text is kept."""

    def __init__(self, column: str, names: Mapping[str, str]) -> None:
        super().__init__(column)
        self.names = names

    def read(self, row: Mapping[str, Any], ctx: _Ctx) -> Any:
        text = super().read(row, ctx)
        if text is None:
            return None
        return self.names.get(text.strip(), text)


class _Outcome(_Text):
    def read(self, row: Mapping[str, Any], ctx: _Ctx) -> Any:
        text = super().read(row, ctx)
        return None if text is None else _OUTCOMES.get(text.strip().lower())


class _Time(_Reader):
    """A datetime column, with optional fallbacks used when the first is empty. Each
    column is read as its declared type (``glide_date`` a date, ``glide_date_time`` a
    time), else by its value's shape (:func:`_time`)."""

    def __init__(self, *columns: str) -> None:
        self.columns = columns
        self.parsers: tuple[Callable[[str, str], Any], ...] = (_time,) * len(columns)
        self.single = columns[0] if len(columns) == 1 else None
        self.parse: Callable[[str, str], Any] = _time

    def read(self, row: Mapping[str, Any], ctx: _Ctx) -> Any:
        column = self.single
        if column is not None:
            text = row.get(column, _ABSENT)
            if text.__class__ is not str:
                if text is _ABSENT:
                    return None
                text = _scalar(text, column)
            return self.parse(text, column)
        result: Any = None
        for column, parse in zip(self.columns, self.parsers, strict=True):
            text = _get(row, column)
            if text is _ABSENT:
                continue
            value = parse(text, column)
            if value != "":
                return value
            result = ""
        return result

    def typed(self, declared: Declared) -> _Reader:
        parsers = tuple(_TIME_PARSERS.get(declared(column) or "", _time) for column in self.columns)
        if parsers == self.parsers:
            return self
        clone = copy.copy(self)
        clone.parsers = parsers
        clone.parse = parsers[0]
        return clone

    def usable(self, column: str, declared: str) -> bool:
        return declared in TIME_TYPES


class _Bool(_Reader):
    """A boolean column; declared ``boolean``, only ``true`` / ``false`` (and ``""``,
    empty) are read, anything else contradicts the type."""

    strict = False

    def __init__(self, column: str, negate: bool = False) -> None:
        self.column = column
        self.negate = negate
        self.columns = (column,)

    def read(self, row: Mapping[str, Any], ctx: _Ctx) -> Any:
        text = _get(row, self.column)
        if text is _ABSENT:
            return None
        if self.strict and text.strip().lower() not in _BOOLEAN_VALUES:
            raise _declared("boolean", self.column, text)
        if self.negate:
            return None if not text.strip() else not _flag(text)
        return _flag(text)

    def typed(self, declared: Declared) -> _Reader:
        if declared(self.column) not in BOOLEAN_TYPES:
            return self
        clone = copy.copy(self)
        clone.strict = True
        return clone

    def usable(self, column: str, declared: str) -> bool:
        return declared in BOOLEAN_TYPES


_BOOLEAN_VALUES = frozenset({"true", "false", ""})


class _Major(_Reader):
    """``major_incident_state`` = accepted; an absent column means the plugin is off."""

    columns = ("major_incident_state",)

    def read(self, row: Mapping[str, Any], ctx: _Ctx) -> Any:
        text = _get(row, "major_incident_state")
        return text is not _ABSENT and text.strip().lower() == "accepted"


class _ApprovalRequired(_Text):
    def read(self, row: Mapping[str, Any], ctx: _Ctx) -> Any:
        text = super().read(row, ctx)
        return None if text is None else text.strip().lower() in _APPROVAL_REQUIRED


class _Priority(_Text):
    """The priority, 1..5. Declared ``integer`` / ``decimal``: only a number (``"4"``,
    ``"4.0"``, ``4``); a display value (``"2 - High"``) then contradicts the type."""

    number: str | None = None
    """The declared number type, or None (the value's shape decides)."""

    def read(self, row: Mapping[str, Any], ctx: _Ctx) -> Any:
        text = super().read(row, ctx)
        if text is None or not text.strip():
            return text
        if self.number is not None:
            value = _whole_number(text)
            if value is None:
                raise _declared(self.number, self.column, text)
        else:
            value = parse_int(text)  # "4", "4.0", "2 - High" (a display value)
        if value is None or not 1 <= value <= 5:
            raise Unreadable("priority outside 1..5", f"column {self.column!r}: {text[:40]!r}")
        return value

    def typed(self, declared: Declared) -> _Reader:
        kind = declared(self.column)
        if kind is None:
            return self
        clone = copy.copy(self)
        clone.html = False
        clone.number = kind if kind in NUMBER_TYPES else None
        return clone

    def usable(self, column: str, declared: str) -> bool:
        return declared in NUMBER_TYPES


def _whole_number(text: str) -> int | None:
    """``"4"`` / ``"4.0"`` -> 4; None for anything else (``"4.5"``, ``"2 - High"``)."""
    try:
        number = float(text.strip())
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")) or number != int(number):
        return None
    return int(number)


class _PersonRef(_Reader):
    """A sys_user reference (first non-empty of the columns) with dot-walked name/email."""

    def __init__(self, *columns: str) -> None:
        self.refs = columns
        self.columns = tuple(
            c for col in columns for c in (col, f"{col}.name", f"{col}.email", f"{col}.user_name")
        )

    def read(self, row: Mapping[str, Any], ctx: _Ctx) -> Any:
        for column in self.refs:
            sys_id, display = _reference(row, column)
            if sys_id is _ABSENT or not sys_id.strip():
                continue
            name = _dotted(row, f"{column}.name") or display or _dotted(row, f"{column}.user_name")
            email = _dotted(row, f"{column}.email")
            token = (sys_id, name, email)
            person = ctx.people.get(token)
            if person is None:
                if len(ctx.people) > 100_000:  # bounded, as in the Jira mapper
                    ctx.people.clear()
                person = ctx.people[token] = _PERSON(sys_id, name, email)
            return person
        return None

    def usable(self, column: str, declared: str) -> bool:
        return declared in REFERENCE_TYPES


class _GroupRef(_Reader):
    def __init__(self, column: str) -> None:
        self.column = column
        self.columns = (column, f"{column}.name")

    def read(self, row: Mapping[str, Any], ctx: _Ctx) -> Any:
        sys_id, display = _reference(row, self.column)
        if sys_id is _ABSENT:
            return None
        if not sys_id.strip():
            return ""
        return _dotted(row, f"{self.column}.name") or display or sys_id

    def usable(self, column: str, declared: str) -> bool:
        return declared in REFERENCE_TYPES


class _CiRefs(_Reader):
    """The task's own CI reference; ``task_ci`` rows are merged in by the mapper."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.columns = (column, f"{column}.name")

    def read(self, row: Mapping[str, Any], ctx: _Ctx) -> Any:
        sys_id, display = _reference(row, self.column)
        if sys_id is _ABSENT:
            return None
        if not sys_id.strip():
            return []
        # settled 12: dot-walked name, lookup, else the raw sys_id (CFG003 then fires)
        return [
            _dotted(row, f"{self.column}.name") or display or ctx.ci_names.get(sys_id) or sys_id
        ]

    def usable(self, column: str, declared: str) -> bool:
        return declared in REFERENCE_TYPES


class _Links(_Reader):
    """Task references that are links: (column, kind); key = dot-walked number."""

    def __init__(self, pairs: tuple[tuple[str, str], ...]) -> None:
        self.pairs = pairs
        self.columns = tuple(c for col, _ in pairs for c in (col, f"{col}.number"))

    def read(self, row: Mapping[str, Any], ctx: _Ctx) -> Any:
        links: list[Link] | None = None
        for column, kind in self.pairs:
            sys_id, display = _reference(row, column)
            if sys_id is _ABSENT:
                continue
            links = links if links is not None else []
            if sys_id.strip():
                key = _dotted(row, f"{column}.number") or display or sys_id
                links.append(build(Link, kind=kind, key=key))
        return links

    def usable(self, column: str, declared: str) -> bool:
        return declared in REFERENCE_TYPES


class _ChangeReview(_Reader):
    """Completed when ``review_date`` is set or ``review_comments`` is not empty."""

    columns = ("review_date", "review_comments")

    def __init__(self) -> None:
        self.parse: Callable[[str, str], Any] = _time

    def read(self, row: Mapping[str, Any], ctx: _Ctx) -> Any:
        date_text = _get(row, "review_date")
        notes = _get(row, "review_comments")
        if date_text is _ABSENT and notes is _ABSENT:
            return None
        at = None if date_text is _ABSENT else self.parse(date_text, "review_date")
        notes_text = None if notes is _ABSENT else notes
        completed = bool(at) or bool(notes_text and notes_text.strip())
        return build(Review, completed=completed, at=at, notes=notes_text)

    def typed(self, declared: Declared) -> _Reader:
        parse = _TIME_PARSERS.get(declared("review_date") or "")
        if parse is None:
            return self
        clone = copy.copy(self)
        clone.parse = parse
        return clone

    def usable(self, column: str, declared: str) -> bool:
        return column != "review_date" or declared in TIME_TYPES


class _ReviewColumn(_Bool):
    """A configured review column: true boolean, non-empty text or a date = completed."""

    def typed(self, declared: Declared) -> _Reader:
        return self

    def usable(self, column: str, declared: str) -> bool:
        return True

    def read(self, row: Mapping[str, Any], ctx: _Ctx) -> Any:
        text = _get(row, self.column)
        if text is _ABSENT:
            return None
        completed = _set_flag(text)
        if self.negate:
            completed = bool(text.strip()) and not completed
        at: datetime | None = None
        try:
            at = parse_servicenow_time(text) if text.strip() else None
        except ValueError:
            at = None  # not a date: a flag or a text
        return build(Review, completed=completed, at=at if completed else None)


_TIME_FIELDS = frozenset(
    {
        "created_at",
        "updated_at",
        "resolved_at",
        "closed_at",
        "planned_start",
        "planned_end",
        "actual_start",
        "actual_end",
        "cab_date",
        "last_verified_at",
    }
)
_BOOL_FIELDS = frozenset(
    {"cab_required", "major", "sla_breached", "known_error", "approval_required"}
)
_PERSON_FIELDS = frozenset({"requester", "assignee", "owner"})
_GROUP_FIELDS = frozenset({"group", "support_group"})
_FIXED_FIELDS = frozenset(
    {
        "source",
        "system",
        "key",
        "native_id",
        "url",
        "process",
        "raw_state",
        "links",
        "approvals",
        "transitions",
        "raw",
    }
)


def _override_reader(field_name: str, column: str, negate: bool) -> _Reader:
    """A reader of the kind the canonical field needs, on the configured column."""
    if field_name in _TIME_FIELDS:
        return _Time(column)
    if field_name in _BOOL_FIELDS:
        return _Bool(column, negate)
    if field_name == "review":
        return _ReviewColumn(column, negate)
    if field_name in _PERSON_FIELDS:
        return _PersonRef(column)
    if field_name in _GROUP_FIELDS:
        return _GroupRef(column)
    if field_name == "priority":
        return _Priority(column)
    if field_name == "ci_refs":
        return _CiRefs(column)
    if field_name == "risk":
        return _Choice(column, RISK_NAMES)
    if field_name == "impact":
        return _Choice(column, IMPACT_NAMES)
    if field_name == "outcome":
        return _Outcome(column)
    return _Text(column)


def _default_readers(process: str) -> dict[str, _Reader]:
    if process == "ci":
        return {
            "title": _Text("name"),
            "assignee": _PersonRef("assigned_to"),
            "created_at": _Time("sys_created_on"),
            "updated_at": _Time("sys_updated_on"),
            "ci_class": _Text("sys_class_name"),
            "owner": _PersonRef("owned_by", "managed_by"),
            "support_group": _GroupRef("support_group"),
            "last_verified_at": _Time("last_discovered"),
        }
    requester = {"change": "requested_by", "incident": "caller_id"}.get(process)
    readers: dict[str, _Reader] = {
        "title": _Text("short_description"),
        "requester": _PersonRef(requester, "opened_by") if requester else _PersonRef("opened_by"),
        "assignee": _PersonRef("assigned_to"),
        "group": _GroupRef("assignment_group"),
        "created_at": _Time("opened_at", "sys_created_on"),
        "updated_at": _Time("sys_updated_on"),
        "closed_at": _Time("closed_at"),
        "priority": _Priority("priority"),
        "ci_refs": _CiRefs("cmdb_ci"),
    }
    if process in ("incident", "problem"):
        readers["resolved_at"] = _Time("resolved_at")
    if process == "change":
        readers.update(
            {
                "change_type": _Text("type"),
                "risk": _Choice("risk", RISK_NAMES),
                "impact": _Choice("impact", IMPACT_NAMES),
                "implementation_plan": _Text("implementation_plan"),
                "backout_plan": _Text("backout_plan"),
                "test_plan": _Text("test_plan"),
                "planned_start": _Time("start_date"),
                "planned_end": _Time("end_date"),
                "actual_start": _Time("work_start"),
                "actual_end": _Time("work_end"),
                "close_code": _Text("close_code"),
                "close_notes": _Text("close_notes"),
                "outcome": _Outcome("close_code"),
                "cab_required": _Bool("cab_required"),
                "cab_date": _Time("cab_date"),
                "review": _ChangeReview(),
            }
        )
    elif process == "incident":
        readers.update(
            {
                "major": _Major(),
                "category": _Text("category"),
                "resolution_code": _Text("close_code"),
                "resolution_notes": _Text("close_notes"),
                "links": _Links(
                    (("problem_id", "problem"), ("rfc", "change"), ("caused_by", "change"))
                ),
            }
        )
    elif process == "problem":
        readers.update(
            {
                "root_cause": _Text("cause_notes"),
                "workaround": _Text("workaround"),
                "known_error": _Bool("known_error"),
                "resolution_code": _Text("resolution_code"),
            }
        )
    elif process == "service_request":
        readers.update(
            {
                "approval_required": _ApprovalRequired("approval"),
                "resolution_notes": _Text("close_notes"),
            }
        )
    return readers


@dataclass
class _Plan:
    """Everything precomputed for one process: readers, columns, state handling."""

    process: str
    table: str
    cls: type[BaseRecord]
    readers: list[tuple[str, _Reader]]
    state_column: str
    state_map: dict[str, str]
    key_column: str
    fields: list[str]
    warnings: list[str]
    type_problems: list[ColumnTypeProblem] = field(default_factory=list)


@dataclass(frozen=True)
class ColumnTypeProblem:
    """A mapped column whose declared type (sys_dictionary) the mapper cannot read as
    its field needs; it is then read by its value's shape."""

    process: str
    field: str
    table: str
    column: str
    declared: str

    def __str__(self) -> str:
        return (
            f"{self.process}.{self.field}: {self.table}.{self.column} is declared "
            f"{self.declared!r}, which the {self.field} field cannot use"
        )


# --- the mapper ----------------------------------------------------------------------------


class ServiceNowMapper:
    """Maps Table API rows of one source with its overrides; build once, reuse per page."""

    def __init__(self, options: MappingOptions, column_types: ColumnTypes | None = None) -> None:
        self.options = options
        self.tables = {**DEFAULT_TABLES, **dict(options.tables)}
        self._by_table = {table: process for process, table in self.tables.items()}
        self.column_types = column_types
        """Declared column types (sys_dictionary); None: types guessed from values."""
        self._plans = {process: self._plan(process) for process in DEFAULT_TABLES}
        self._people: dict[tuple[Any, ...], Person] = {}

    def use_column_types(self, column_types: ColumnTypes | None) -> None:
        """Read each column as its declared type from now on (None: guess from values);
        the readers are specialised here, once, never per row."""
        self.column_types = column_types
        self._plans = {process: self._plan(process) for process in DEFAULT_TABLES}

    def dictionary_columns(self) -> dict[str, list[str]]:
        """Table -> the columns of it the mapping reads (dot-walked ones excluded): what
        to ask ``sys_dictionary`` about."""
        out: dict[str, list[str]] = {}
        for plan in self._plans.values():
            columns = out.setdefault(plan.table, [])
            columns.extend(c for c in plan.fields if "." not in c and c not in columns)
        return out

    def type_problems(self) -> list[ColumnTypeProblem]:
        """Mapped columns whose declared type the mapper cannot use (empty without types)."""
        return [p for plan in self._plans.values() for p in plan.type_problems]

    # public lookups
    def table(self, process: str) -> str:
        try:
            return self.tables[process]
        except KeyError:
            raise ValueError(f"ServiceNow has no table for process {process!r}") from None

    def process_for_table(self, table: str) -> str | None:
        return self._by_table.get(table)

    def fields_for(self, process: str) -> list[str]:
        """``sysparm_fields`` for the process's table: only what the mapping reads."""
        return list(self._get_plan(process).fields)

    def _get_plan(self, process: str) -> _Plan:
        plan = self._plans.get(process)
        if plan is None:
            raise ValueError(f"ServiceNow maps no process {process!r}")
        return plan

    def _plan(self, process: str) -> _Plan:
        readers = _default_readers(process)
        cls = _RECORD_CLASSES[process]
        warnings: list[str] = []
        state_column = "install_status" if process == "ci" else "state"
        for canonical, column in self.options.fields.items():
            proc, _, field_name = canonical.partition(".")
            if proc != process:
                continue
            negate = column.startswith("!")
            column = column[1:].strip() if negate else column.strip()
            if field_name in ("state", "status"):
                state_column = column
                continue
            if field_name in _FIXED_FIELDS or field_name not in cls.model_fields:
                warnings.append(f"field override {canonical!r} ignored: not a mappable field")
                continue
            if negate and field_name not in _BOOL_FIELDS and field_name != "review":
                warnings.append(f"field override {canonical!r}: '!' only negates booleans")
                negate = False
            readers[field_name] = _override_reader(field_name, column, negate)
        state_map = dict(DEFAULT_STATE_MAPS[process])
        for code, state in self.options.status_map.get(process, {}).items():
            if state not in _VALID_STATES[process]:
                warnings.append(
                    f"status_map {process}.{code} -> {state!r} ignored: not a {process} state"
                )
                continue
            state_map[str(code).strip()] = state
        key_column = "name" if process == "ci" else "number"
        fields = ["sys_id", "sys_updated_on", key_column, state_column]
        if process == "problem":
            fields.append("resolution_code")  # settled 14 reads it even when remapped
        if process == "ci":
            fields.append("sys_class_name")  # the url names the CI's own class table
        for reader in readers.values():
            fields.extend(reader.columns)
        table = self.tables[process]
        problems: list[ColumnTypeProblem] = []
        types = self.column_types
        if types is not None:

            def declared(column: str) -> str | None:
                return types.declared(table, column)

            for name, reader in readers.items():
                for column in reader.columns:
                    kind = declared(column)
                    if kind is not None and not reader.usable(column, kind):
                        problems.append(ColumnTypeProblem(process, name, table, column, kind))
            readers = {name: reader.typed(declared) for name, reader in readers.items()}
        return _Plan(
            process=process,
            table=table,
            cls=cls,
            readers=list(readers.items()),
            state_column=state_column,
            state_map=state_map,
            key_column=key_column,
            fields=list(dict.fromkeys(fields)),
            warnings=warnings,
            type_problems=problems,
        )

    def map_rows(
        self,
        process: str,
        rows: Iterable[dict[str, Any]],
        *,
        approvals: Iterable[dict[str, Any]] | None = None,
        task_ci: Iterable[dict[str, Any]] | None = None,
        ci_names: Mapping[str, str] | None = None,
    ) -> tuple[list[BaseRecord], MappingReport]:
        """Map the rows of one table; never raises for bad rows (they become errors)."""
        with gc_paused(promote=True):
            return self._map_rows_unpaused(
                process, rows, approvals=approvals, task_ci=task_ci, ci_names=ci_names
            )

    def map_row_chunks(
        self,
        process: str,
        chunks: Iterable[Iterable[dict[str, Any]]],
        *,
        approvals: Iterable[dict[str, Any]] | None = None,
        task_ci: Iterable[dict[str, Any]] | None = None,
        ci_names: Mapping[str, str] | None = None,
    ) -> Iterator[tuple[list[BaseRecord], MappingReport]]:
        """:meth:`map_rows` of one table whose rows come in pieces (a large file read row
        by row): the approvals and CI links are indexed once, and each piece's records
        and report are yielded as it is mapped. The reports add up to :meth:`map_rows`'s."""
        with gc_paused(promote=True):
            plan, report, ctx, approvals_by_task, cis_by_task = self._prepare(
                process, approvals, task_ci, ci_names
            )
        for rows in chunks:
            with gc_paused(promote=True):
                records = self._map_rows_of(plan, rows, ctx, approvals_by_task, cis_by_task, report)
            yield records, report
            report = MappingReport()

    def _map_rows_unpaused(
        self,
        process: str,
        rows: Iterable[dict[str, Any]],
        *,
        approvals: Iterable[dict[str, Any]] | None = None,
        task_ci: Iterable[dict[str, Any]] | None = None,
        ci_names: Mapping[str, str] | None = None,
    ) -> tuple[list[BaseRecord], MappingReport]:
        """Map the rows of one table; never raises for bad rows (they become errors)."""
        plan, report, ctx, approvals_by_task, cis_by_task = self._prepare(
            process, approvals, task_ci, ci_names
        )
        records = self._map_rows_of(plan, rows, ctx, approvals_by_task, cis_by_task, report)
        return records, report

    def _prepare(
        self,
        process: str,
        approvals: Iterable[dict[str, Any]] | None,
        task_ci: Iterable[dict[str, Any]] | None,
        ci_names: Mapping[str, str] | None,
    ) -> tuple[
        _Plan,
        MappingReport,
        _Ctx,
        dict[str, list[Approval]] | None,
        dict[str, list[str]] | None,
    ]:
        """What mapping a table's rows needs once: its plan, a report holding the plan's
        warnings, the context, and the approvals and CI links indexed by task."""
        plan = self._get_plan(process)
        report = MappingReport()
        for warning in plan.warnings:
            report.warnings[warning] += 1
        ctx = _Ctx(ci_names=ci_names or {}, people=self._people)
        approvals_by_task = (
            _index_approvals(approvals, report, ctx) if approvals is not None else None
        )
        cis_by_task = _index_task_ci(task_ci, ctx, report) if task_ci is not None else None
        return plan, report, ctx, approvals_by_task, cis_by_task

    def _map_rows_of(
        self,
        plan: _Plan,
        rows: Iterable[dict[str, Any]],
        ctx: _Ctx,
        approvals_by_task: dict[str, list[Approval]] | None,
        cis_by_task: dict[str, list[str]] | None,
        report: MappingReport,
    ) -> list[BaseRecord]:
        records: list[BaseRecord] = []
        source = self.options.source
        for row in rows:
            if isinstance(row, dict) and not row:
                report.skipped_empty += 1  # ACL-filtered row: the API hides its content
                continue
            report.rows += 1
            key: str | None = None
            try:
                if not isinstance(row, dict):
                    raise ValueError(f"row is a {type(row).__name__}, not an object")
                key = _key_hint(row, plan.key_column)
                record = self._map_row(plan, row, ctx, approvals_by_task, cis_by_task, report)
            except Exception as exc:  # noqa: BLE001 - one bad row must not stop the source
                report.errors.append(MappingError(source, key, _reason(exc)))
                continue
            records.append(record)
            report.mapped += 1
        return records

    def _map_row(
        self,
        plan: _Plan,
        row: dict[str, Any],
        ctx: _Ctx,
        approvals_by_task: dict[str, list[Approval]] | None,
        cis_by_task: dict[str, list[str]] | None,
        report: MappingReport,
    ) -> BaseRecord:
        try:
            sys_id, _ = _reference(row, "sys_id")
        except Unreadable:
            sys_id = _ABSENT
        try:
            key = _get(row, plan.key_column)
        except Unreadable:
            key = _ABSENT
        has_sys_id = sys_id is not _ABSENT and bool(sys_id.strip())
        if key is _ABSENT or not key.strip():
            if not has_sys_id:  # settled reading 17: no identity, the one row not checked
                raise ValueError(f"row has neither {plan.key_column} nor sys_id")
            report.warnings[f"{plan.process} row without {plan.key_column}: keyed by sys_id"] += 1
            key = sys_id
        if not has_sys_id:
            report.warnings[f"{plan.process} row without sys_id: keyed by {plan.key_column}"] += 1
            sys_id = ""
        values: dict[str, Any] = {
            "source": self.options.source,
            "system": SYSTEM,
            "key": key.strip(),
            "native_id": sys_id or None,
            "url": self._url(plan, row, sys_id) if sys_id else None,
            "raw": row,
        }
        unreadable: dict[str, str] = {}
        for name, reader in plan.readers:
            try:
                values[name] = reader.read(row, ctx)
            except (ValueError, TypeError, AttributeError) as exc:
                # settled reading 17: this field is unknown, the record is still checked
                values[name] = None
                report.note_unreadable(unreadable, plan.process, name, exc)
        try:
            self._state(plan, row, values, report)
        except (ValueError, TypeError, AttributeError) as exc:
            values["state" if plan.process != "ci" else "status"] = None
            values["raw_state"] = None
            report.note_unreadable(
                unreadable, plan.process, "state" if plan.process != "ci" else "status", exc
            )
        if unreadable:
            values["unreadable"] = unreadable
        if plan.process != "ci":
            if cis_by_task is not None:
                extra = cis_by_task.get(sys_id, [])
                own = values.get("ci_refs") or []
                values["ci_refs"] = list(dict.fromkeys([*own, *extra]))
            if approvals_by_task is not None:
                values["approvals"] = approvals_by_task.get(sys_id, [])
        # Every value above is already of its model type (aware UTC datetimes, Person,
        # Link, Review...), so validation would only cost time: construct directly. The
        # tests round-trip mapped records through ``record_from_dict`` to keep this honest.
        return build(plan.cls, **values)

    def _state(
        self, plan: _Plan, row: dict[str, Any], values: dict[str, Any], report: MappingReport
    ) -> None:
        code = _get(row, plan.state_column)
        raw = "" if code is _ABSENT else code.strip()
        values["raw_state"] = None if code is _ABSENT else raw
        state = plan.state_map.get(raw)
        if state is None and raw.endswith(".0"):  # 7.0: a number the way some APIs send it
            state = plan.state_map.get(raw[:-2])
        if plan.process == "ci":
            if state is None and raw:
                state = "other"  # docs/mapping.md: other install_status codes -> other (counted)
                report.unknown_statuses[(plan.process, raw)] += 1
            elif state is None:
                report.unknown_statuses[(plan.process, raw)] += 1
            values["status"] = state
            return
        if state is None:
            report.unknown_statuses[(plan.process, raw)] += 1
        elif plan.process == "problem" and state == "closed":
            resolution = _get(row, "resolution_code")
            if (
                resolution is not _ABSENT
                and resolution.strip().lower() in _PROBLEM_CANCELLING_CODES
            ):
                state = "cancelled"  # settled 14
        values["state"] = state

    def _url(self, plan: _Plan, row: dict[str, Any], sys_id: str) -> str | None:
        base = self.options.base_url.rstrip("/")
        if not base:
            return None
        table = plan.table
        if plan.process == "ci":
            try:
                cls_name = _get(row, "sys_class_name")
            except Unreadable:
                cls_name = _ABSENT  # the link then names the base table, which also works
            if cls_name is not _ABSENT and cls_name.strip():
                table = cls_name.strip()
        return f"{base}/nav_to.do?uri={table}.do?sys_id={sys_id}"


# --- approvals and task_ci -----------------------------------------------------------------

_APPROVER = _PersonRef("approver")
_PERSON = builder(Person, ("id", "name", "email"))


def _index_approvals(
    rows: Iterable[dict[str, Any]], report: MappingReport, ctx: _Ctx
) -> dict[str, list[Approval]]:
    """sysapproval_approver rows -> approvals per task sys_id (settled 13)."""
    by_task: dict[str, list[Approval]] = defaultdict(list)
    for row in rows:
        if not isinstance(row, dict) or not row:
            continue
        try:
            task, _ = _reference(row, "sysapproval")
            if task is _ABSENT or not task.strip():
                task, _ = _reference(row, "document_id")
            if task is _ABSENT or not task.strip():
                continue
            state = _get(row, "state")
            state = "" if state is _ABSENT else state.strip().lower()
            if state in _NOT_APPROVALS:
                continue
            decision = _APPROVAL_DECISIONS.get(state)
            if decision is None:
                report.warnings[f"approval state {state!r} skipped"] += 1
                continue
            approver = _APPROVER.read(row, ctx) or build(Person)
            decided_at = None
            if decision in ("approved", "rejected"):
                updated = _get(row, "sys_updated_on")
                decided_at = (
                    None if updated is _ABSENT else (_time(updated, "sys_updated_on") or None)
                )
            by_task[task].append(
                build(Approval, approver=approver, decision=decision, decided_at=decided_at)
            )
        except ValueError as exc:
            sys_id = row.get("sys_id")
            report.warnings[f"approval {sys_id} skipped: {exc}"] += 1
    return by_task


def _index_task_ci(
    rows: Iterable[dict[str, Any]], ctx: _Ctx, report: MappingReport
) -> dict[str, list[str]]:
    """task_ci rows -> CI keys per task sys_id (settled 12)."""
    by_task: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if not isinstance(row, dict) or not row:
            continue
        try:
            task, _ = _reference(row, "task")
            ci, display = _reference(row, "ci_item")
        except ValueError as exc:
            report.warnings[f"task_ci {row.get('sys_id')} skipped: {exc}"] += 1
            continue
        if task is _ABSENT or ci is _ABSENT or not task.strip() or not ci.strip():
            continue
        name = _dotted(row, "ci_item.name") or display or ctx.ci_names.get(ci) or ci
        by_task[task].append(name)
    return by_task


def _key_hint(row: Mapping[str, Any], key_column: str) -> str | None:
    for column in (key_column, "sys_id"):
        value = row.get(column)
        if isinstance(value, dict):
            value = value.get("value")
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _reason(exc: Exception) -> str:
    errors: Callable[[], Any] | None = getattr(exc, "errors", None)
    if callable(errors):  # pydantic ValidationError: name the fields
        try:
            parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors()]
            return "; ".join(parts)
        except Exception:  # noqa: BLE001, S110 - describing the error must not raise a second one
            pass
    return str(exc) or type(exc).__name__


# --- exports -------------------------------------------------------------------------------


DISPLAY_VALUE_EXPORT = (
    "this export holds display values only (sysparm_display_value=true): times are in the "
    "exporting user's time zone and references carry no sys_id; export with "
    "sysparm_display_value=false (raw values) or sysparm_display_value=all"
)


def refuse_display_values(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows, unless they come from a ``sysparm_display_value=true`` export: its
    references are ``{"display_value", "link"}`` without ``value`` and its times are
    written in the exporting user's time zone, which the file does not say. Reading those
    times as UTC would misread every one of them in silence, so the export is refused
    with :data:`DISPLAY_VALUE_EXPORT` (one line that says how to export instead)."""
    for row in rows[:200]:
        if not isinstance(row, dict):
            continue
        for value in row.values():
            if isinstance(value, dict) and "display_value" in value and "value" not in value:
                raise ValueError(DISPLAY_VALUE_EXPORT)
    return rows


def load_table_export(data: object) -> list[dict[str, Any]]:
    """Rows of a saved Table API response ``{"result": [...]}``, a list of such pages, a
    bare list of rows, or a legacy JSONv2 export ``{"records": [...]}``. An export made
    with ``sysparm_display_value=true`` is refused (:func:`refuse_display_values`);
    ``sysparm_display_value=all`` (``{display_value, value, link}``) is read by its raw
    values."""
    return refuse_display_values(_table_rows(data))


def _table_rows(data: object) -> list[dict[str, Any]]:
    if isinstance(data, dict):
        for wrapper in ("result", "records"):
            if wrapper in data:
                inner = data[wrapper]
                if isinstance(inner, list):
                    return list(inner)
                if isinstance(inner, dict):  # a single-record GET
                    return [inner]
                raise ValueError(f"'{wrapper}' holds a {type(inner).__name__}, not a list of rows")
        raise ValueError("not a Table API response: expected an object with 'result'")
    if isinstance(data, list):
        if data and all(isinstance(p, dict) and isinstance(p.get("result"), list) for p in data):
            return [row for page in data for row in page["result"]]
        if not all(isinstance(r, dict) for r in data):
            raise ValueError("a list export must hold row objects or {'result': [...]} pages")
        return list(data)
    raise ValueError(f"not a Table API export: got {type(data).__name__}")
