"""Encoded queries of the ServiceNow Table API: time values, scopes, the keyset forms.

Reads page on the key ``(sys_updated_on, sys_id)``, never by offset over a changing table
(a row updated mid-read moves to the end of an ``ORDERBYsys_updated_on`` result and shifts
every later offset, so one row is skipped and another read twice)::

    first:  <scope>^sys_updated_on>=<since - lookback>^ORDERBYsys_updated_on^ORDERBYsys_id
    next:   <scope>^sys_updated_on>T^NQ<scope>^sys_updated_on=T^sys_id>ID^ORDERBY...

``^NQ`` starts a new OR'ed query, so the scope is repeated in both parts (a scope may not
itself hold ``^NQ`` or ``ORDERBY``: :func:`check_scope` rejects it with a clear error).
Related tables read through a dot-walked reference (``task.active=true``): a scope on the
parent becomes conditions on the related table with :func:`walk_query`.

Pure text: no HTTP here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timezone

from ticketlint.connectors.keys import encoded_query_value

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
UPDATE_KEY = ("sys_updated_on", "sys_id")
"""The key task and CI reads page on: (replication key, primary key)."""


def order_by(*fields: str) -> str:
    return "^".join(f"ORDERBY{f}" for f in fields)


ORDER_BY_KEY = order_by(*UPDATE_KEY)
ORDER_BY_ID = order_by("sys_id")


def format_time(value: datetime) -> str:
    """An instant as the Table API's UTC ``yyyy-MM-dd HH:mm:ss`` (naive means UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime(TIME_FORMAT)


def join_query(*parts: str | None) -> str:
    """AND the non-empty parts of an encoded query."""
    return "^".join(p.strip("^") for p in parts if p and p.strip("^"))


def check_scope(text: str | None, what: str) -> str:
    """A scope or extra query is repeated in each ``^NQ`` part: it may not hold its own
    ``^NQ`` (it would change precedence) or ``ORDERBY`` (paging owns the order)."""
    if not text:
        return ""
    upper = text.upper()
    if "^NQ" in upper or "ORDERBY" in upper:
        raise ValueError(f"{what} {text!r} may not contain ^NQ or ORDERBY (paging adds its own)")
    return text.strip().strip("^")


def first_page_query(
    base: str, since_clause: str = "", *, key: tuple[str, str] = UPDATE_KEY
) -> str:
    return join_query(base, since_clause, order_by(*key))


def next_page_query(
    base: str, last_updated: str, last_id: str, *, key: tuple[str, str] = UPDATE_KEY
) -> str:
    """Rows after ``(last_updated, last_id)``: later update time, or the same time and a
    larger sys_id (``key`` names the two fields). The scope is repeated in each OR'ed part."""
    updated, row_id = key
    after = join_query(base, f"{updated}>{last_updated}")
    same = join_query(base, f"{updated}={last_updated}", f"{row_id}>{last_id}")
    return f"{after}^NQ{same}^{order_by(*key)}"


def first_id_query(base: str) -> str:
    """The first page of a read ordered by sys_id only (related rows)."""
    return join_query(base, ORDER_BY_ID)


def next_id_query(base: str, last_id: str) -> str:
    """Rows of ``base`` after ``last_id`` in sys_id order."""
    return join_query(base, f"sys_id>{last_id}", ORDER_BY_ID)


_CONDITION = re.compile(
    r"^[a-z0-9_][a-z0-9_.]*(?:ISNOTEMPTY|ISEMPTY|INSTANCEOF|NOTIN|IN|STARTSWITH"
    r"|ENDSWITH|NOT LIKE|LIKE|!=|>=|<=|=|>|<|BETWEEN|ON|NOTON|DATEPART|RELATIVE\w*|"
    r"SAMEAS|NSAMEAS|ANYTHING|EMPTYSTRING|VALCHANGES|CHANGESFROM|CHANGESTO)"
)


def walk_query(text: str, ref: str) -> str | None:
    """``text`` (a scope on the parent table) as conditions on a related table that points
    at the parent through ``ref``: every field gets the ``ref.`` prefix (``active=true^ORpriority=1``
    -> ``task.active=true^ORtask.priority=1``). None when a term is not a plain condition
    (``RLQUERY``, ``^EQ`` sub-queries, an escaped ``^^``): the caller then reads by id."""
    if not text:
        return ""
    if "^^" in text:
        return None
    out = []
    for token in text.split("^"):
        if not token or token == "EQ":
            continue
        head = ""
        if token.startswith("OR") and _CONDITION.match(token[2:]):
            head, token = "OR", token[2:]
        if not _CONDITION.match(token):
            return None
        out.append(f"{head}{ref}.{token}")
    return "^".join(out)


def keys_clause(key_field: str, keys: Sequence[str] | None) -> str:
    """The records named on the command line (``--key``), by their key field. The keys
    are checked by :mod:`ticketlint.connectors.keys` before they get here, and each value
    is escaped for the encoded query all the same."""
    if not keys:
        return ""
    return f"{key_field}IN{','.join(encoded_query_value(k.strip()) for k in keys)}"
