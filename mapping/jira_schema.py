"""Jira custom field values checked against their ``schema.type`` (the field list,
``/rest/api/2/field``, or a search export's ``expand=schema``).

The mapper reads a text or flag field that it reads alone by its schema when the schema
says one of the shapes below; a value of another shape contradicts the schema and is
:class:`~ticketlint.mapping.common.Unreadable` (the field is None, the reason names the
schema type). ``None`` is the field left blank (empty), never unreadable.

=========  ====================================================  =========================
schema     a value that fits                                     read as
=========  ====================================================  =========================
option     ``{"value": "High", "id": "10021"}``                  its ``value``
number     ``4``, ``4.0``, ``"4"``, ``"4.0"`` (finite)           the number (text ``"4"``)
array      a list; items ``option``/``string``/``user`` checked  the items' texts joined
user       ``{"accountId": ...}`` (Cloud), ``{"name"|"key"}``    its display name
=========  ====================================================  =========================

A string ``"4"`` in a ``number`` field is read as the number: exports made through
other tools (CSV round trips, scripts) write numbers as text, and ServiceNow's numbers
are read the same way; ``"high"`` or ``true`` there is unreadable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ticketlint.mapping.common import Unreadable

CHECKED_TYPES = frozenset({"option", "number", "array", "user"})
"""Schema types whose values are checked here (``date``, ``datetime`` and ``string`` are
read by the mapper's own typed readers)."""

_USER_KEYS = ("accountId", "name", "key")


def schema_error(kind: str, field_id: str, value: Any) -> Unreadable:
    """A value that contradicts its field's ``schema.type``."""
    shown = repr(value[:40]) if isinstance(value, str) else f"a {type(value).__name__}"
    article = "an" if kind.startswith(("option", "array")) else "a"
    return Unreadable(f"not {article} {kind} (field schema)", f"field {field_id!r}: {shown}")


def _is_option(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("value"), str)


def _is_user(value: Any) -> bool:
    return isinstance(value, dict) and any(
        isinstance(value.get(k), str) and value[k].strip() for k in _USER_KEYS
    )


def number_of(value: Any) -> float | None:
    """A JSON number or a numeric string, finite; None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            parsed = float(value.strip())
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


def number_text(number: float) -> str:
    """``4`` and ``4.0`` -> ``"4"``; ``4.5`` -> ``"4.5"``."""
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return str(number)


def user_text(value: dict[str, Any]) -> str:
    """A user's visible name: ``displayName``, else ``name``, ``key`` or ``accountId``."""
    for key in ("displayName", *_USER_KEYS):
        text = value.get(key)
        if isinstance(text, str) and text.strip():
            return text
    return ""


def typed_value(schema_type: str, items: str | None) -> Callable[[str, Any], Any]:
    """The check of one schema type: ``check(field_id, value)`` returns the value in the
    shape the text and flag readers take (a number as its text, a user as its name, an
    array as a list of those), or raises :class:`Unreadable`. ``None`` stays ``None``."""
    if schema_type == "option":

        def check_option(field_id: str, value: Any) -> Any:
            if value is None or _is_option(value):
                return value
            raise schema_error("option", field_id, value)

        return check_option
    if schema_type == "number":

        def check_number(field_id: str, value: Any) -> Any:
            if value is None:
                return None
            number = number_of(value)
            if number is None:
                raise schema_error("number", field_id, value)
            return number_text(number)

        return check_number
    if schema_type == "user":

        def check_user(field_id: str, value: Any) -> Any:
            if value is None:
                return None
            if _is_user(value):
                return user_text(value)
            raise schema_error("user", field_id, value)

        return check_user
    if schema_type == "array":
        item_check = typed_value(items, None) if items in CHECKED_TYPES - {"array"} else None

        def check_array(field_id: str, value: Any) -> Any:
            if value is None:
                return None
            if not isinstance(value, list):
                raise schema_error("array", field_id, value)
            if items == "string":
                if not all(isinstance(v, str) for v in value):
                    raise schema_error("array of string", field_id, value)
                return value
            if item_check is not None:
                try:
                    return [item_check(field_id, v) for v in value if v is not None]
                except Unreadable:
                    raise schema_error(f"array of {items}", field_id, value) from None
            return value

        return check_array
    raise ValueError(f"schema type {schema_type!r} is not checked here")
