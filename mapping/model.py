"""Normalised ISO/IEC 20000 process records: what every rule reads (docs/record-model.md).

None versus empty is the heart of this model:

- ``None``: the source does not provide the field at all (not mapped, absent on the
  instance). A rule that needs it answers NOT_EVALUATED.
- empty: the field exists and holds nothing. Text is ``""`` (or blank after
  ``str.strip()``), lists are ``[]``, booleans ``False``, a review is
  ``Review(completed=False)``. Typed scalars (datetimes, the priority) that exist on the
  source but hold no value are ``""`` too: the one empty marker that JSON can carry and
  that no real value can be mistaken for.
- a value.

Times are timezone-aware UTC datetimes. A source value that is a date without a time
(ServiceNow ``glide_date`` such as ``change_request.cab_date``, Jira date pickers) is a
``datetime.date``: it is set when present, and a rule that compares it with an instant
treats it as the whole UTC day (:func:`day_start`, :func:`day_end`; settled reading 18).

``unreadable`` lists the fields whose source value could not be read as their type
(settled reading 17): each is None on the record, with the reason here.

Records are immutable once mapped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

Process = Literal["incident", "service_request", "problem", "change", "release", "ci"]
PROCESSES: tuple[str, ...] = ("incident", "service_request", "problem", "change", "release", "ci")

TICKET_STATES: tuple[str, ...] = (
    "new",
    "in_progress",
    "on_hold",
    "resolved",
    "closed",
    "cancelled",
)
CHANGE_STATES: tuple[str, ...] = (
    "new",
    "assess",
    "authorize",
    "scheduled",
    "implement",
    "review",
    "closed",
    "cancelled",
)
CIStatus = Literal["planned", "installed", "in_maintenance", "retired", "other"]
CI_STATUSES: tuple[CIStatus, ...] = ("planned", "installed", "in_maintenance", "retired", "other")

Decision = Literal["approved", "rejected", "pending", "cancelled"]
LinkKind = Literal["incident", "problem", "change", "release", "review", "other"]
Outcome = Literal["successful", "successful_with_issues", "unsuccessful"]

_M = TypeVar("_M", bound=BaseModel)

Empty = Literal[""]
"""The empty marker of a typed field that exists on the source but holds no value."""


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise PydanticCustomError("datetime_type", "datetime must carry a time zone")
    return value.astimezone(timezone.utc)


def _not_a_number(value: Any) -> Any:
    """A time is ISO 8601 text: a bare number (pydantic would read seconds since 1970) is not."""
    if isinstance(value, (int, float)):
        raise PydanticCustomError(
            "datetime_type", "expected an ISO 8601 date or time, got a number"
        )
    return value


def _date_text(value: Any) -> Any:
    """``"2026-03-03"`` (a date as JSON carries it) -> a date, before the union decides."""
    _not_a_number(value)
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    return value


def _date_only(value: Any) -> Any:
    if isinstance(value, datetime):
        raise ValueError("expected a date without a time")
    return value


def _not_bool(value: Any) -> Any:
    """A boolean is not a priority (pydantic would read ``true`` as 1)."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "expected a number, got a boolean")
    return value


UtcDatetime = Annotated[datetime, BeforeValidator(_not_a_number), AfterValidator(_as_utc)]
DateOnly = Annotated[date, BeforeValidator(_date_only)]
OptionalTime = Annotated[UtcDatetime | DateOnly | Empty | None, BeforeValidator(_date_text)]
"""A datetime, a date (date-only source value), ``""`` (field exists, no value) or None
(field not provided)."""


def day_start(value: datetime | date) -> datetime:
    """The earliest instant a time-or-date value can mean (a date: 00:00 UTC that day)."""
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time.min, tzinfo=timezone.utc)


def day_end(value: datetime | date) -> datetime:
    """The latest instant a time-or-date value can mean (a date: the end of its UTC day)."""
    if isinstance(value, datetime):
        return value
    return datetime.combine(value, time.min, tzinfo=timezone.utc) + timedelta(
        days=1, microseconds=-1
    )


class _Frozen(BaseModel):
    # The validator is built when a record is first validated (a stored record, a JSON
    # line), not at import: mappers build records unvalidated (``build``), so a check of
    # exports never needs it, and every command started ~15 ms sooner.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Person(_Frozen):
    """A person as the source knows them; ``id`` is the native account id."""

    id: str | None = None
    name: str | None = None
    email: str | None = None

    def label(self) -> str:
        return self.name or self.email or self.id or "?"


class Approval(_Frozen):
    approver: Person
    decision: Decision
    decided_at: UtcDatetime | None = None


class Review(_Frozen):
    """A post-implementation or post-incident review."""

    completed: bool
    at: OptionalTime = None
    notes: str | None = None


class Transition(_Frozen):
    """One status change from the history, oldest first; states are normalised."""

    at: UtcDatetime
    from_state: str | None = None
    to_state: str | None = None
    from_raw: str | None = None
    to_raw: str | None = None
    by: Person | None = None


class Link(_Frozen):
    kind: LinkKind
    key: str


class BaseRecord(_Frozen):
    """Fields common to every process."""

    source: str
    system: Literal["jira", "servicenow", "file"]
    key: str
    native_id: str | None = None
    url: str | None = None
    process: Process
    title: str | None = None
    state: str | None = None
    """Normalised lifecycle state; None when the source's status could not be mapped."""
    raw_state: str | None = None
    priority: Annotated[int | Empty | None, BeforeValidator(_not_bool)] = None
    created_at: OptionalTime = None
    updated_at: OptionalTime = None
    resolved_at: OptionalTime = None
    closed_at: OptionalTime = None
    requester: Person | None = None
    assignee: Person | None = None
    group: str | None = None
    ci_refs: list[str] | None = None
    links: list[Link] | None = None
    approvals: list[Approval] | None = None
    review: Review | None = None
    transitions: list[Transition] | None = None
    """None when no history was read; [] when the history holds no status change."""
    unreadable: dict[str, str] | None = None
    """Canonical field -> why its source value could not be read (settled reading 17).
    Each such field is None. None when every mapped value was read."""
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)


class ChangeRecord(BaseRecord):
    process: Literal["change"] = "change"
    change_type: str | None = None
    """standard, normal, emergency (or another type the source uses), "" or None."""
    risk: str | None = None
    impact: str | None = None
    implementation_plan: str | None = None
    backout_plan: str | None = None
    test_plan: str | None = None
    planned_start: OptionalTime = None
    planned_end: OptionalTime = None
    actual_start: OptionalTime = None
    actual_end: OptionalTime = None
    close_code: str | None = None
    close_notes: str | None = None
    outcome: Outcome | None = None
    cab_required: bool | None = None
    cab_date: OptionalTime = None


class IncidentRecord(BaseRecord):
    process: Literal["incident"] = "incident"
    major: bool | None = None
    category: str | None = None
    resolution_code: str | None = None
    resolution_notes: str | None = None
    sla_breached: bool | None = None


class ServiceRequestRecord(BaseRecord):
    process: Literal["service_request"] = "service_request"
    approval_required: bool | None = None
    resolution_notes: str | None = None


class ProblemRecord(BaseRecord):
    process: Literal["problem"] = "problem"
    root_cause: str | None = None
    workaround: str | None = None
    known_error: bool | None = None
    resolution_code: str | None = None


class ReleaseRecord(BaseRecord):
    process: Literal["release"] = "release"


class CIRecord(BaseRecord):
    process: Literal["ci"] = "ci"
    ci_class: str | None = None
    status: CIStatus | None = None
    owner: Person | None = None
    support_group: str | None = None
    last_verified_at: OptionalTime = None


Record = Annotated[
    ChangeRecord | IncidentRecord | ServiceRequestRecord | ProblemRecord | ReleaseRecord | CIRecord,
    Field(discriminator="process"),
]

RECORD_CLASSES: dict[str, type[BaseRecord]] = {
    "change": ChangeRecord,
    "incident": IncidentRecord,
    "service_request": ServiceRequestRecord,
    "problem": ProblemRecord,
    "release": ReleaseRecord,
    "ci": CIRecord,
}


def record_from_dict(data: dict[str, Any]) -> BaseRecord:
    """Validate a normalised record (e.g. one JSON line) into its process's model."""
    process = data.get("process")
    cls = RECORD_CLASSES.get(process) if isinstance(process, str) else None
    if cls is None:
        raise ValueError(f"unknown process {process!r}; expected one of {', '.join(PROCESSES)}")
    return cls.model_validate(data)


def record_from_json(text: str, process: str) -> BaseRecord:
    """:func:`record_from_dict` of a normalised record's JSON text whose process is known
    (a stored record): parsed and validated by pydantic in one pass, a quarter less CPU
    than ``json.loads`` and a validation of its dict. Text that pydantic's parser refuses
    (a lone UTF-16 surrogate's escape, which ``json`` reads) or that does not validate as
    ``process`` goes the ``json`` way: the same record, or the same error."""
    cls = RECORD_CLASSES.get(process)
    if cls is not None:
        try:
            return cls.model_validate_json(text)
        except ValueError:
            pass
    return record_from_dict(json.loads(text))


# --- the vocabulary rules use to read fields (docs/record-model.md "None versus empty") -------------------


def is_empty(value: Any) -> bool:
    """True for a provided field that holds nothing: "" (after strip), [], False, ""-marker.

    None is *not* empty: it means the source does not provide the field.
    """
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, (list, tuple, set, dict)):
        return len(value) == 0
    if isinstance(value, bool):
        return value is False
    if isinstance(value, Review):
        return not value.completed
    return False


def has_value(value: Any) -> bool:
    """True when the field is provided and not empty."""
    return value is not None and not is_empty(value)


def approved_entries(record: BaseRecord) -> list[Approval]:
    return [a for a in (record.approvals or []) if a.decision == "approved"]


# --- fast construction for mappers -----------------------------------------------------

_BUILD_SPECS: dict[type, tuple[dict[str, Any], tuple[tuple[str, Any], ...]]] = {}


def _build_spec(cls: type[BaseModel]) -> tuple[dict[str, Any], tuple[tuple[str, Any], ...]]:
    static: dict[str, Any] = {}
    factories: list[tuple[str, Any]] = []
    for name, info in cls.model_fields.items():
        if info.default_factory is not None:
            factories.append((name, info.default_factory))
        else:
            static[name] = info.default
    spec = (static, tuple(factories))
    _BUILD_SPECS[cls] = spec
    return spec


def build(cls: type[_M], **values: Any) -> _M:
    """Construct a model from values that are already of the right types, unvalidated.

    Mappers produce typed values themselves and map tens of thousands of records a
    second; pydantic's ``model_construct`` costs ~25 us a call, this ~2 us. Tests
    re-validate mapped records with :func:`record_from_dict` to keep mappers honest.
    """
    static, factories = _BUILD_SPECS.get(cls) or _build_spec(cls)
    data = static.copy()
    data.update(values)
    for name, factory in factories:
        if name not in values:
            data[name] = factory()
    model = cls.__new__(cls)
    object.__setattr__(model, "__dict__", data)
    object.__setattr__(model, "__pydantic_fields_set__", set(values))
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model


def builder(cls: type[_M], names: tuple[str, ...]) -> Callable[..., _M]:
    """A positional constructor for the hot loops of mappers:
    ``builder(cls, names)(*values)`` builds what ``build(cls, **dict(zip(names, values)))``
    builds (same ``__dict__`` in field order, same fields set) at about half the cost:
    the function is generated once with the record's dict as a literal, so no keyword
    dict, spec lookup, copy or factory scan is paid per record."""
    unknown = [n for n in names if n not in cls.model_fields]
    if unknown or len(set(names)) != len(names):
        raise ValueError(
            f"{cls.__name__}: unknown or repeated field names {unknown or list(names)}"
        )
    static, factories = _BUILD_SPECS.get(cls) or _build_spec(cls)
    factory_of = dict(factories)
    namespace: dict[str, Any] = {
        "_new": cls.__new__,
        "_cls": cls,
        "_set": object.__setattr__,
        "_fields_set": set(names),
    }
    args = {name: f"v{i}" for i, name in enumerate(names)}
    # The key order build() produces: the static fields, then given factory fields in
    # the order given, then the missing factory fields.
    order = [
        *static,
        *(n for n in names if n not in static),
        *(n for n, _ in factories if n not in args),
    ]
    entries = []
    for i, name in enumerate(order):
        if name in args:
            value = args[name]
        elif name in factory_of:
            namespace[f"_f{i}"] = factory_of[name]
            value = f"_f{i}()"
        else:
            namespace[f"_d{i}"] = static[name]
            value = f"_d{i}"
        entries.append(f"{name!r}: {value}")
    source = (
        f"def make({', '.join(args.values())}):\n"
        f"    model = _new(_cls)\n"
        f"    _set(model, '__dict__', {{{', '.join(entries)}}})\n"
        f"    _set(model, '__pydantic_fields_set__', _fields_set.copy())\n"
        f"    _set(model, '__pydantic_extra__', None)\n"
        f"    _set(model, '__pydantic_private__', None)\n"
        f"    return model\n"
    )
    exec(source, namespace)
    # exec leaves the generated function in the namespace, typed only by the source above.
    make: Callable[..., _M] = namespace["make"]
    make.__name__ = make.__qualname__ = f"build_{cls.__name__}"
    return make
