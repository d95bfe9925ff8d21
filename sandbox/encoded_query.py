"""A subset of ServiceNow encoded queries: ``^`` (AND), ``^OR`` (binds tighter than AND),
``^NQ`` (OR of whole queries), comparison operators, ``INSTANCEOF`` (a table or one that
extends it, for ``sys_class_name``) and ``ORDERBY`` / ``ORDERBYDESC``. Field names may be
dot-walked (``sysapproval.sys_updated_on``): the getter resolves them.

``parse(text)`` gives a :class:`Query`; ``query.matches(get)`` evaluates it against a
row through ``get(field) -> str | None`` (None = the table has no such field: as on a
real instance with the default ``glide.invalid_query.returns_no_rows=false``, a
condition on an unknown field is ignored).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

OPERATORS = [
    "ISNOTEMPTY",
    "ISEMPTY",
    "INSTANCEOF",
    "NOTIN",
    "IN",
    "STARTSWITH",
    "ENDSWITH",
    "NOT LIKE",
    "LIKE",
    "!=",
    ">=",
    "<=",
    "=",
    ">",
    "<",
]
_TERM = re.compile(
    r"^([a-z0-9_.]+)(" + "|".join(re.escape(o) for o in OPERATORS) + r")(.*)$", re.DOTALL
)
Getter = Callable[[str], "str | None"]

EXTENDS: dict[str, str] = {
    "incident": "task",
    "change_request": "task",
    "problem": "task",
    "sc_req_item": "task",
    "sc_request": "task",
    "sc_task": "task",
    "change_task": "task",
    "cmdb_ci_linux_server": "cmdb_ci_server",
    "cmdb_ci_win_server": "cmdb_ci_server",
    "cmdb_ci_server": "cmdb_ci_computer",
    "cmdb_ci_computer": "cmdb_ci_hardware",
    "cmdb_ci_hardware": "cmdb_ci",
    "cmdb_ci_app_server": "cmdb_ci_appl",
    "cmdb_ci_appl": "cmdb_ci",
    "cmdb_ci_db_instance": "cmdb_ci",
    "cmdb_ci_service": "cmdb_ci",
    "cmdb_ci_netgear": "cmdb_ci",
}
"""Table -> the table it extends (the sandbox's slice of the platform's hierarchy)."""


def instance_of(table: str, base: str) -> bool:
    while table:
        if table == base:
            return True
        table = EXTENDS.get(table, "")
    return False


class QueryError(ValueError):
    """An encoded query the sandbox cannot read."""


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: str

    def test(self, get: Getter) -> bool:
        actual = get(self.field)
        if actual is None:
            return True  # unknown field: ignored, as ServiceNow does by default
        op, value = self.op, self.value
        if op == "ISEMPTY":
            return actual == ""
        if op == "ISNOTEMPTY":
            return actual != ""
        if op == "INSTANCEOF":
            return instance_of(actual, value.strip())
        if op in ("IN", "NOTIN"):
            found = actual in {v.strip() for v in value.split(",")}
            return found if op == "IN" else not found
        if op == "STARTSWITH":
            return actual.lower().startswith(value.lower())
        if op == "ENDSWITH":
            return actual.lower().endswith(value.lower())
        if op == "LIKE":
            return value.lower() in actual.lower()
        if op == "NOT LIKE":
            return value.lower() not in actual.lower()
        if op == "=":
            return actual == value
        if op == "!=":
            return actual != value
        if actual == "":
            return False  # empty never compares greater or less
        try:
            a, b = float(actual), float(value)
        except ValueError:
            return _ordered(op, actual, value)  # yyyy-MM-dd HH:mm:ss compares correctly as text
        return _ordered(op, a, b)


_Ordered = TypeVar("_Ordered", str, float)


def _ordered(op: str, a: _Ordered, b: _Ordered) -> bool:
    return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]


@dataclass
class Query:
    """OR (``^NQ``) of AND-groups, each a list of OR-clauses (``^OR``)."""

    groups: list[list[list[Condition]]] = field(default_factory=list)
    order: list[tuple[str, bool]] = field(default_factory=list)  # (field, ascending)

    def matches(self, get: Getter) -> bool:
        if not self.groups:
            return True
        return any(
            all(any(c.test(get) for c in clause) for clause in group) for group in self.groups
        )

    def fields(self) -> set[str]:
        return {c.field for g in self.groups for clause in g for c in clause}


def parse(text: str | None) -> Query:
    query = Query()
    if not text:
        return query
    for part in text.split("^NQ"):
        group: list[list[Condition]] = []
        for token in part.split("^"):
            if not token or token == "EQ":
                continue
            if token.startswith("ORDERBYDESC"):
                query.order.append((token[len("ORDERBYDESC") :], False))
                continue
            if token.startswith("ORDERBY"):
                query.order.append((token[len("ORDERBY") :], True))
                continue
            is_or = token.startswith("OR") and group and _TERM.match(token[2:]) is not None
            cond = _condition(token[2:] if is_or else token)
            if is_or:
                group[-1].append(cond)
            else:
                group.append([cond])
        if group:
            query.groups.append(group)
    return query


def _condition(token: str) -> Condition:
    m = _TERM.match(token)
    if not m:
        raise QueryError(f"cannot read condition {token!r}")
    return Condition(m.group(1), m.group(2), m.group(3))
