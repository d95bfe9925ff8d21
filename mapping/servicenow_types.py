"""Declared types of ServiceNow columns (``sys_dictionary.internal_type``), as plain data.

The connector reads ``sys_dictionary`` once per run for the columns the mapper reads
(``connectors/servicenow/dictionary.py``) and hands the mapper a :class:`ColumnTypes`.
The mapper then reads each column as its declared type (docs/mapping.md, "Column
types"): a ``glide_date`` is a date, a ``glide_date_time`` a UTC time, ``html`` and
``journal`` columns are made text, a ``string`` holding ``<p>`` is literal text, an
``integer`` or ``decimal`` reads ``"4"``, ``"4.0"`` and ``4``; a value that contradicts
its declared type is unreadable (the field is None, the reason names the type).
Without a :class:`ColumnTypes` (an export without ``sys_dictionary.json``, a refused
read) the mapper guesses each column's type from the value's shape, as it always did.

A column is declared on its own table or inherited: task tables (incident,
change_request, problem, sc_req_item) inherit from ``task``, CI classes from
``cmdb_ci`` and ``cmdb`` (:func:`parents_of`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

DATE_TYPES = frozenset({"glide_date"})
DATETIME_TYPES = frozenset({"glide_date_time", "due_date"})
TIME_TYPES = DATE_TYPES | DATETIME_TYPES
NUMBER_TYPES = frozenset({"integer", "decimal", "float", "longint"})
BOOLEAN_TYPES = frozenset({"boolean"})
HTML_TYPES = frozenset({"html", "translated_html", "journal", "journal_input", "journal_list"})
"""Columns whose values are HTML (or journal text that may hold it): made text first."""
REFERENCE_TYPES = frozenset({"reference", "document_id"})


def parents_of(table: str) -> tuple[str, ...]:
    """The tables ``table`` inherits columns from, nearest first (the ones the mapper's
    tables extend on every release: ``task`` and the CMDB base classes)."""
    if table == "cmdb":
        return ()
    if table == "cmdb_ci":
        return ("cmdb",)
    if table.startswith("cmdb_ci_"):
        return ("cmdb_ci", "cmdb")
    if table == "task":
        return ()
    return ("task",)


def _text(value: Any) -> str | None:
    """A raw sys_dictionary value: a string, or a reference ``{"link", "value"}``
    (``internal_type`` references ``sys_glide_object`` by name)."""
    if isinstance(value, dict):
        value = value.get("value")
    return value.strip() if isinstance(value, str) and value.strip() else None


class ColumnTypes:
    """``(table, column) -> internal_type`` of one instance; looked up with inheritance."""

    __slots__ = ("_types",)

    def __init__(self, types: Mapping[tuple[str, str], str]) -> None:
        self._types = {k: v.strip().lower() for k, v in types.items() if v and v.strip()}

    @classmethod
    def from_rows(cls, rows: Iterable[object]) -> tuple[ColumnTypes, int]:
        """From Table API ``sys_dictionary`` rows (raw values, with or without reference
        links): the types, and how many rows could not be used (``{}`` rows an ACL hid,
        rows without a table, column or type)."""
        types: dict[tuple[str, str], str] = {}
        unusable = 0
        for row in rows:
            if not isinstance(row, dict):
                unusable += 1
                continue
            table, column = _text(row.get("name")), _text(row.get("element"))
            declared = _text(row.get("internal_type"))
            if table is None or column is None or declared is None:
                unusable += 1
                continue
            types[(table, column)] = declared
        return cls(types), unusable

    def declared(self, table: str, column: str) -> str | None:
        """The column's declared type on ``table`` or the nearest table it inherits from;
        None when the dictionary does not say (a dot-walked column, a column it lacks)."""
        types = self._types
        found = types.get((table, column))
        if found is not None:
            return found
        for parent in parents_of(table):
            found = types.get((parent, column))
            if found is not None:
                return found
        return None

    def as_dict(self) -> dict[tuple[str, str], str]:
        return dict(self._types)

    def __len__(self) -> int:
        return len(self._types)
