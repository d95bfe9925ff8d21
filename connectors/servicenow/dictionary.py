"""The instance's data dictionary: the declared type of each column the mapper reads.

Read once per run, before the first stream (and cached on the connector, like the state
values doctor reads from ``sys_choice``): one Table API read of ``sys_dictionary``
restricted to the mapped tables, the tables they inherit from (``task``, ``cmdb_ci``,
``cmdb``) and the mapped columns, with ``sysparm_fields=name,element,internal_type,
max_length`` (and ``sys_id``, the paging key), in pages of 1,000 rows whatever the
source's page size. The first page is counted, so a dictionary that fits one page (about
60 rows for the default mapping) costs one request.

``internal_type`` references ``sys_glide_object`` by name, so a raw row holds
``"glide_date"`` (``sysparm_exclude_reference_link=true``) or ``{"link": ...,
"value": "glide_date"}``; both are read (:meth:`ColumnTypes.from_rows`).

Decision: reading the dictionary never fails the run. When it is refused (HTTP 403: the
API user needs the ``personalize_dictionary`` role, or a read ACL on ``sys_dictionary``)
or fails otherwise, the connector warns once, names what to grant, and the mapper keeps
guessing each column's type from its values, exactly as without a dictionary.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ticketlint.connectors.base import SourceError
from ticketlint.connectors.servicenow.client import TableAPI
from ticketlint.connectors.servicenow.paging import BY_ID
from ticketlint.mapping.servicenow_types import ColumnTypes, parents_of

log = logging.getLogger(__name__)

DICTIONARY_TABLE = "sys_dictionary"
DICTIONARY_FIELDS = ("sys_id", "name", "element", "internal_type", "max_length")
DICTIONARY_PAGE = 1000
"""Rows per dictionary page, whatever the source's page size (the read is small)."""
ROLE_HINT = (
    "grant the API user the personalize_dictionary role (or a read ACL on sys_dictionary) "
    "to read columns by their declared types"
)
FALLBACK = "column types are guessed from the values"


@dataclass(frozen=True)
class DictionaryRead:
    """What one read of ``sys_dictionary`` gave."""

    types: ColumnTypes | None
    """None when the dictionary could not be read."""
    problem: str | None = None
    """Why it could not be read (one line, with what to grant), or None."""
    rows: int = 0
    unusable: int = 0
    """Rows an ACL hid (``{}``) or without table, column or type."""


def dictionary_query(columns: Mapping[str, Sequence[str]]) -> str:
    """The encoded query: the mapped tables and their parents, the mapped columns."""
    tables: dict[str, None] = {}
    elements: dict[str, None] = {}
    for table, names in columns.items():
        tables[table] = None
        tables.update(dict.fromkeys(parents_of(table)))
        elements.update(dict.fromkeys(n for n in names if n and "." not in n))
    return f"nameIN{','.join(tables)}^elementIN{','.join(sorted(elements))}"


def read_dictionary(api: TableAPI, columns: Mapping[str, Sequence[str]]) -> DictionaryRead:
    """Read the declared types of ``columns`` (table -> column names); never raises for
    a refused or failed read (module docstring)."""
    query = dictionary_query(columns)
    rows: list[object] = []
    hidden = 0
    try:
        for page in api.pages(
            DICTIONARY_TABLE,
            DICTIONARY_FIELDS,
            query,
            keyset=BY_ID,
            counted=True,
            page_size=DICTIONARY_PAGE,
        ):
            rows.extend(page.rows)
            hidden += page.inaccessible
    except SourceError as exc:
        if exc.status == 403:
            problem = f"{DICTIONARY_TABLE} was refused (HTTP 403): {ROLE_HINT}"
        else:
            problem = f"{DICTIONARY_TABLE} could not be read: {exc}"
        log.warning("%s: %s; %s", api.source, problem, FALLBACK)
        return DictionaryRead(None, problem)
    types, unusable = ColumnTypes.from_rows(rows)
    unusable += hidden
    if not len(types):
        problem = (
            f"{DICTIONARY_TABLE} returned no usable row for the mapped columns "
            f"({len(rows) + hidden} rows, {unusable} hidden or incomplete): {ROLE_HINT}"
        )
        log.warning("%s: %s; %s", api.source, problem, FALLBACK)
        return DictionaryRead(None, problem, len(rows) + hidden, unusable)
    return DictionaryRead(types, None, len(rows) + hidden, unusable)
