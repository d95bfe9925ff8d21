"""Read one normalised record from JSON (a ``.jsonl`` line) field by field (settled reading 17).

A value that cannot be read as its field's type (text where a time belongs, an object
where text belongs, an unknown approval decision) makes that one field None, named with
the reason in the record's ``unreadable`` map and counted per field and reason in the
:class:`~ticketlint.mapping.common.MappingReport`, exactly as the Jira and ServiceNow
mappers do; the rest of the record is read and checked. A field the model does not know
is ignored and counted in the warnings. The line's own ``unreadable`` map (a record
ticketlint mapped and wrote out) is kept: each field in it is None and counted too.

Only a record without identity is not checked: no ``key`` (or a blank one), an unknown
``process``, or a ``source`` / ``system`` that cannot be read. :func:`read_record` raises
``ValueError`` for those, and the caller lists the line as a mapping error.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ticketlint.mapping.common import MappingReport, Unreadable
from ticketlint.mapping.model import PROCESSES, RECORD_CLASSES, BaseRecord

IDENTITY_FIELDS: tuple[str, ...] = ("source", "system", "key", "process")
"""Without these a record cannot be placed: a line whose identity is unreadable is not checked."""

_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("datetime", "date", "time", "timezone"), "not a date or time"),
    (("int", "float", "decimal", "finite_number", "greater", "less"), "not a number"),
    (("bool",), "not a boolean"),
    (("string",), "not text"),
    (("literal", "enum"), "not an allowed value"),
    (("list", "tuple", "set"), "not a list"),
    (("dict", "model"), "not an object"),
    (("missing",), "required part missing"),
    (("extra_forbidden",), "unexpected part"),
)


_NOT_FIELDS = (*IDENTITY_FIELDS, "raw", "unreadable")
_SHAPES = {"raw": "an object", "unreadable": "a map of field to reason"}


def _reason(error_type: str) -> str:
    for prefixes, reason in _REASONS:
        if error_type.startswith(prefixes):
            return reason
    return "value cannot be read"


def _path(loc: tuple[Any, ...]) -> str:
    """``approvals.0.decision``: the location without pydantic's validator tags."""
    return ".".join(str(p) for p in loc if isinstance(p, int) or str(p).isidentifier())


def _problems(exc: ValidationError) -> dict[str, tuple[str, str]]:
    """Top-level field -> (reason, detail) of its first error; ``""`` for the record itself."""
    out: dict[str, tuple[str, str]] = {}
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        name = str(loc[0]) if loc else ""
        if name in out:
            continue
        where = _path(loc[1:])
        detail = f"{where}: {err.get('msg')}" if where else str(err.get("msg"))
        out[name] = (_reason(str(err.get("type", ""))), detail)
    return out


def read_record(data: dict[str, Any], report: MappingReport, *, where: str = "") -> BaseRecord:
    """The record a normalised JSON object describes; unreadable fields None and noted in
    ``report`` (``where``, e.g. the file name, prefixes the warnings it counts).

    Raises ``ValueError`` (naming the field) when the record has no identity."""
    process = data.get("process")
    if not isinstance(process, str) or process not in RECORD_CLASSES:
        raise ValueError(f"unknown process {process!r}; expected one of {', '.join(PROCESSES)}")
    cls = RECORD_CLASSES[process]
    key = data.get("key")
    if isinstance(key, str) and not key.strip():
        raise ValueError("key: blank (a record without a key is not checked)")
    values = dict(data)
    unreadable: dict[str, str] = {}
    # Each pass sets the fields it could not read to None; a field once None validates,
    # so this ends after at most one pass per field.
    for _ in range(len(values) + 1):
        try:
            record = cls.model_validate(values)
            break
        except ValidationError as exc:
            problems = _problems(exc)
        identity = [n for n in (*IDENTITY_FIELDS, "") if n in problems]
        if identity:
            raise ValueError(
                "; ".join(f"{n or 'record'}: {problems[n][1]}" for n in identity)
            ) from None
        for name, (reason, detail) in problems.items():
            if name not in cls.model_fields:
                values.pop(name, None)
                report.warnings[f"{where}unknown field {name[:60]!r} ignored"] += 1
            elif name in ("raw", "unreadable"):
                values.pop(name, None)
                report.warnings[f"{where}{name} is not {_SHAPES[name]}: ignored"] += 1
            else:
                values[name] = None
                report.note_unreadable(unreadable, process, name, Unreadable(reason, detail))
    else:  # pragma: no cover - each pass clears at least one field
        raise ValueError("record cannot be read")
    update: dict[str, Any] = {}
    for name, why in (record.unreadable or {}).items():
        # The line's own list (a record ticketlint mapped and wrote out): each field in it
        # is unknown, so None, and counted like the ones read here.
        if name in unreadable or name not in cls.model_fields or name in _NOT_FIELDS:
            continue
        report.unreadable[(f"{process}.{name}", why.split(": ", 1)[0])] += 1
        if getattr(record, name) is not None:
            update[name] = None
    if unreadable:
        update["unreadable"] = {**(record.unreadable or {}), **unreadable}
    return record.model_copy(update=update) if update else record
