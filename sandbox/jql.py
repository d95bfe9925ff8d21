"""The JQL subset the ticketlint connector sends, parsed into a predicate and an order.

Clauses joined by ``AND`` (optionally parenthesised): ``project in (A, B)`` /
``project = A``, ``issuetype in ("A", "B")`` / ``issuetype = A``, ``key in (...)`` /
``key = K``, ``labels = L`` / ``labels in (L1, L2)`` (case-insensitive, as Jira's label
search is), ``updated >= "yyyy/MM/dd HH:mm"`` (also ``>``, ``<``, ``<=``; interpreted in
the API user's time zone, as Jira does), then ``ORDER BY field [ASC|DESC], ...``. A query
with no restriction is unbounded and refused, as ``/search/jql`` refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo


class JqlError(ValueError):
    """Jira answers these with HTTP 400 and the message in ``errorMessages``."""


@dataclass
class Jql:
    projects: set[str] | None = None
    types: set[str] | None = None
    keys: set[str] | None = None
    labels: set[str] | None = None
    updated: list[tuple[str, int]] = field(default_factory=list)  # (op, epoch ms)
    order: tuple[tuple[str, bool], ...] = (("created", False),)

    @property
    def bounded(self) -> bool:
        return any(
            x is not None for x in (self.projects, self.types, self.keys, self.labels)
        ) or bool(self.updated)


_TOKEN = re.compile(r'\s*(\(|\)|,|>=|<=|!=|=|>|<|"(?:[^"\\]|\\.)*"|\'[^\']*\'|[^\s(),=<>!"]+)')
_ORDER_FIELDS = {"updated", "created", "key"}


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise JqlError(
                f"Error in the JQL Query: the character '{text[pos]}' is a reserved JQL character."
            )
        out.append(m.group(1))
        pos = m.end()
    return out


def _value(tok: str) -> str:
    if tok[:1] in "\"'":
        return tok[1:-1].replace('\\"', '"')
    return tok


def parse(text: str | None, zone: ZoneInfo) -> Jql:
    if not text or not text.strip():
        return Jql()
    toks = _tokens(text)
    q = Jql()
    upper = [t.upper() for t in toks]
    cut = next(
        (i for i in range(len(toks) - 1) if upper[i] == "ORDER" and upper[i + 1] == "BY"), len(toks)
    )
    where, order = toks[:cut], toks[cut + 2 :]
    i = 0
    while i < len(where):
        tok = where[i]
        if tok in ("(", ")") or tok.upper() == "AND":
            i += 1
            continue
        if tok.upper() in ("OR", "NOT"):
            raise JqlError(f"Error in the JQL Query: the sandbox supports AND only (got {tok}).")
        name = tok.lower()
        if i + 1 >= len(where):
            raise JqlError(
                "Error in the JQL Query: Expecting operator but got the end of the query."
            )
        op = where[i + 1].lower()
        if op == "in":
            if where[i + 2 : i + 3] != ["("]:
                raise JqlError("Error in the JQL Query: Expecting '(' after 'in'.")
            j = i + 3
            values = []
            while j < len(where) and where[j] != ")":
                if where[j] != ",":
                    values.append(_value(where[j]))
                j += 1
            if j >= len(where):
                raise JqlError("Error in the JQL Query: Expecting ')' to close the list.")
            i = j + 1
        else:
            if i + 2 >= len(where):
                raise JqlError(f"Error in the JQL Query: Expecting a value after '{op}'.")
            values = [_value(where[i + 2])]
            i += 3
        if name == "project" and op in ("in", "="):
            q.projects = (q.projects or {v.upper() for v in values}) & {v.upper() for v in values}
        elif name in ("issuetype", "type") and op in ("in", "="):
            q.types = (
                {v.lower() for v in values}
                if q.types is None
                else q.types & {v.lower() for v in values}
            )
        elif name in ("key", "issuekey", "id") and op in ("in", "="):
            q.keys = {v.upper() for v in values}
        elif name == "labels" and op in ("in", "="):
            wanted = {v.casefold() for v in values}
            q.labels = wanted if q.labels is None else q.labels & wanted
        elif name == "updated" and op in (">=", ">", "<=", "<"):
            q.updated.append((op, _when(values[0], zone)))
        else:
            raise JqlError(
                f"Error in the JQL Query: field '{tok}' with operator '{op}' is not supported by the sandbox."
            )
    if order:
        parsed = []
        k = 0
        while k < len(order):
            fname = order[k].lower()
            if fname == ",":
                k += 1
                continue
            if fname not in _ORDER_FIELDS:
                raise JqlError(
                    f"Error in the JQL Query: Not able to sort using field '{order[k]}'."
                )
            asc = True
            if k + 1 < len(order) and order[k + 1].upper() in ("ASC", "DESC"):
                asc = order[k + 1].upper() == "ASC"
                k += 1
            parsed.append((fname, asc))
            k += 1
        q.order = tuple(parsed)
    return q


def _when(text: str, zone: ZoneInfo) -> int:
    for fmt in ("%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M", "%Y/%m/%d", "%Y-%m-%d"):
        try:
            dt = datetime.strptime(text.strip(), fmt).replace(tzinfo=zone)
            return int(dt.timestamp() * 1000)
        except ValueError:
            continue
    raise JqlError(
        f"Error in the JQL Query: Date value '{text}' for field 'updated' is invalid. "
        "Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd'."
    )


def matches(
    q: Jql,
    key: str,
    project: str,
    type_name: str,
    updated: int,
    labels: Callable[[], list[str]] | None = None,
) -> bool:
    """Whether an issue matches; ``labels`` is asked only when the query names labels."""
    if q.projects is not None and project not in q.projects:
        return False
    if q.types is not None and type_name.lower() not in q.types:
        return False
    if q.keys is not None and key not in q.keys:
        return False
    if q.labels is not None and not q.labels & {
        str(v).casefold() for v in (labels() if labels else [])
    }:
        return False
    for op, ms in q.updated:
        # JQL compares at minute precision in the user's zone
        u = updated // 60_000 * 60_000
        if not {">=": u >= ms, ">": u > ms, "<=": u <= ms, "<": u < ms}[op]:
            return False
    return True
