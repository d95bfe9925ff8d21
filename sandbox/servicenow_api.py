"""ServiceNow Table API (``/api/now/table``) and ``/oauth_token.do`` over :class:`ServiceNowData`.

Follows the documented behaviour: ``{"result": [...]}``; ``sysparm_query`` (encoded query),
``sysparm_fields`` (with dot-walking), ``sysparm_limit`` / ``sysparm_offset``, a ``Link``
header (first / prev / next / last) and ``X-Total-Count`` unless ``sysparm_no_count=true``;
``sysparm_display_value`` false / true / all; reference fields as ``{"link", "value"}``
unless ``sysparm_exclude_reference_link=true``; ACL-hidden rows as ``{}``.
"""

from __future__ import annotations

import bisect
import re
import secrets
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlencode

from ticketlint.sandbox import encoded_query as EQ
from ticketlint.sandbox.http import Credentials, Request, Response, json_response
from ticketlint.sandbox.servicenow_data import CHOICES, REFERENCES, TASK_TABLES, ServiceNowData

TABLE_PATH = re.compile(
    r"/api/now/(?:v\d+/)?table/(?P<table>[A-Za-z0-9_]+)(?:/(?P<sys_id>[A-Za-z0-9]+))?"
)
TOKEN_TTL = 1799
CHEAP_ORDER = {"sys_updated_on", "sys_id"}


def failure(status: int, message: str, detail: str | None = None) -> Response:
    return json_response(
        status, {"error": {"message": message, "detail": detail}, "status": "failure"}
    )


class ServiceNowApi:
    def __init__(self, data: ServiceNowData, creds: Credentials) -> None:
        self.data, self.creds = data, creds
        self.tokens: dict[str, float] = {}  # access token -> expiry (epoch s)
        self.refresh: dict[str, str] = {}  # refresh token -> user

    @staticmethod
    def owns(path: str) -> bool:
        return path.startswith("/api/now/") or path == "/oauth_token.do"

    def route(self, req: Request) -> str:
        if req.path == "/oauth_token.do":
            return "POST /oauth_token.do"
        m = TABLE_PATH.fullmatch(req.path)
        if not m:
            return f"{req.method} servicenow-other"
        return f"{req.method} /api/now/table/{m.group('table')}" + (
            "/{sys_id}" if m.group("sys_id") else ""
        )

    def handle(self, req: Request) -> Response:
        if req.path == "/oauth_token.do":
            return self.oauth(req) if req.method == "POST" else Response(405, b"")
        if not self._authorised(req):
            return failure(401, "User Not Authenticated", "Required to provide Auth information")
        m = TABLE_PATH.fullmatch(req.path)
        if not m:
            return failure(400, "Requested URI does not represent any resource", None)
        table, sys_id = m.group("table"), m.group("sys_id")
        if table not in self.data.tables():
            return failure(400, f"Invalid table {table}", None)
        if req.method == "GET":
            return self.get_one(req, table, sys_id) if sys_id else self.list(req, table)
        if req.method in ("PATCH", "PUT") and sys_id:
            return self.update(req, table, sys_id)
        if req.method == "POST" and not sys_id:
            return failure(403, "Operation Failed", "The sandbox does not create records")
        return failure(405, "Method not Supported", f"{req.method} is not supported here")

    # -- auth ----------------------------------------------------------------------------
    def _authorised(self, req: Request) -> bool:
        basic = req.basic_auth()
        if basic:
            return basic == (self.creds.snow_user, self.creds.snow_password)
        token = req.bearer()
        if token is None:
            return False
        expiry = self.tokens.get(token)
        return expiry is not None and expiry > time.time()

    def oauth(self, req: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items()}
        c = self.creds
        if (form.get("client_id"), form.get("client_secret")) != (
            c.oauth_client_id,
            c.oauth_client_secret,
        ):
            return json_response(
                401, {"error_description": "access_denied", "error": "server_error"}
            )
        grant = form.get("grant_type")
        if grant == "password":
            if (form.get("username"), form.get("password")) != (c.snow_user, c.snow_password):
                return json_response(
                    401, {"error_description": "access_denied", "error": "server_error"}
                )
        elif grant == "refresh_token":
            if form.get("refresh_token") not in self.refresh:
                return json_response(
                    401, {"error_description": "access_denied", "error": "server_error"}
                )
        else:
            return json_response(
                400,
                {
                    "error_description": f"unsupported grant_type {grant}",
                    "error": "invalid_request",
                },
            )
        access, refresh = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
        self.tokens[access] = time.time() + TOKEN_TTL
        self.refresh[refresh] = c.snow_user
        return json_response(
            200,
            {
                "access_token": access,
                "refresh_token": refresh,
                "scope": "useraccount",
                "token_type": "Bearer",
                "expires_in": TOKEN_TTL,
            },
        )

    # -- reads -----------------------------------------------------------------------------
    def _getter(self, table: str, idx: int) -> Callable[[str], str | None]:
        d = self.data
        cache: dict[str, dict[str, str]] = {}

        def full() -> dict[str, str]:
            if "row" not in cache:
                cache["row"] = d.row(table, idx)
            return cache["row"]

        def get(field: str) -> str | None:
            head, _, rest = field.partition(".")
            if rest:  # dot-walked: follow the reference (an unknown or empty one gives "")
                ref = get(head)
                if not ref:
                    return "" if ref == "" else None
                target = d.lookup(ref)
                if target is None:
                    return ""
                return self._getter(*target)(rest)
            cheap = d.cheap_as_written(table, idx, field)
            return cheap if cheap is not None else full().get(field)

        return get

    def _candidates(self, table: str, q: EQ.Query) -> Iterator[int]:
        """Row indexes that may match ``q``, in its order. Narrowed without building rows
        where it can be: a top-level ``<ref>IN<ids>`` / ``sys_id=...`` picks rows directly,
        and a keyset lower bound (``sys_id>X``, ``sys_updated_on>=T``) in every ``^NQ``
        part starts the cached order there (a bisect), so paging stays linear."""
        d = self.data
        n = d.table_size(table)
        picked = self._picked(table, q)
        if picked is not None:
            if q.order and self._cheap_order(table, q):
                rank = {i: k for k, i in enumerate(self._order(table, q)[0])}
                picked.sort(key=rank.__getitem__)
            elif q.order:
                picked = self._sorted(table, q, picked)
            return iter(picked)
        if not q.order:
            return iter(range(n))
        if self._cheap_order(table, q):
            order, keys = self._order(table, q)
            low = _lower_bound(q, q.order[0][0]) if q.order[0][1] else None
            start = bisect.bisect_left(keys, low) if low is not None else 0
            return iter(order[start:])
        return iter(self._sorted(table, q, list(range(n))))

    def _picked(self, table: str, q: EQ.Query) -> list[int] | None:
        """A single top-level ``<ref>IN<ids>`` / ``<ref>=<id>`` narrows to those rows."""
        d = self.data
        if len(q.groups) != 1:
            return None
        for clause in q.groups[0]:
            if len(clause) != 1 or clause[0].op not in ("IN", "="):
                continue
            c = clause[0]
            ids = [v.strip() for v in c.value.split(",")] if c.op == "IN" else [c.value]
            if table == "sysapproval_approver" and c.field in ("sysapproval", "document_id"):
                return sorted({i for s in ids for i in d.by_task.get(s, [])})
            if table == "task_ci" and c.field == "task":
                return sorted({i for s in ids for i in d.ci_by_task.get(s, [])})
            if c.field == "sys_id" and table in d.sys_ids:
                found = [d.lookup(s) for s in ids]
                return sorted(i for t, i in (f for f in found if f) if t == table)
        return None

    def _cheap_order(self, table: str, q: EQ.Query) -> bool:
        fields = {f for f, _ in q.order}
        if table in self.data.sys_ids:
            return fields <= CHEAP_ORDER
        return table in ("sysapproval_approver", "task_ci") and fields == {"sys_id"}

    def _order(self, table: str, q: EQ.Query) -> tuple[list[int], list[str]]:
        """The cached order of every row, and the first order field's value along it."""
        d = self.data
        key = (table, tuple(q.order))
        with d.lock:
            order = d._orders.get(key)
            if order is None:

                def value(f: str, i: int) -> Any:
                    if f == "sys_updated_on":
                        return d.updated[table][i] // 1000
                    return d.cheap(table, i, "sys_id")

                order = list(range(d.table_size(table)))
                for f, asc in reversed(q.order):  # stable sorts: last key first
                    order.sort(key=partial(value, f), reverse=not asc)
                d._orders[key] = order
                first = q.order[0][0]
                d._order_keys[key] = [d.cheap(table, i, first) or "" for i in order]
            return order, d._order_keys[key]

    def _sorted(self, table: str, q: EQ.Query, indexes: list[int]) -> list[int]:
        rows = [(self._getter(table, i), i) for i in indexes]
        ordered = list(indexes)
        for f, asc in reversed(q.order):
            values = {i: (g(f) or "") for g, i in rows}
            ordered.sort(key=lambda i: _sortable(values[i]), reverse=not asc)
        return ordered

    def list(self, req: Request, table: str) -> Response:
        d = self.data
        try:
            q = EQ.parse(req.param("sysparm_query"))
            limit = int(req.param("sysparm_limit", "10000") or 10000)
            offset = int(req.param("sysparm_offset", "0") or 0)
        except EQ.QueryError as exc:
            return failure(400, "Invalid query", str(exc))
        except ValueError:
            return failure(400, "Invalid sysparm_limit or sysparm_offset", None)
        if limit <= 0 or offset < 0:
            return failure(400, "Invalid sysparm_limit or sysparm_offset", None)
        no_count = (req.param("sysparm_no_count", "false") or "").lower() == "true"
        page: list[int] = []
        total = 0
        with d.lock:
            for idx in self._candidates(table, q):
                if d.gone(table, idx) or not q.matches(self._getter(table, idx)):
                    continue
                if offset <= total < offset + limit:
                    page.append(idx)
                total += 1
                if no_count and total > offset + limit:
                    break  # one look-ahead row tells whether a next page exists
        rows = [
            {} if d.hidden(table, i) else self._render(req, table, d.row(table, i)) for i in page
        ]
        headers: dict[str, str] = {}
        if not no_count:
            headers["X-Total-Count"] = str(total)
        if (req.param("sysparm_suppress_pagination_header", "false") or "").lower() != "true":
            headers["Link"] = self._links(req, offset, limit, total, exact=not no_count)
        return json_response(200, {"result": rows}, **headers)

    def _links(self, req: Request, offset: int, limit: int, total: int, exact: bool) -> str:
        def url(off: int) -> str:
            params = {k: v[-1] for k, v in req.query.items()}
            params["sysparm_offset"] = str(off)
            params["sysparm_limit"] = str(limit)
            return f"{self.data.ds.base_url}{req.path}?{urlencode(params)}"

        parts = [f'<{url(0)}>;rel="first"']
        if offset > 0:
            parts.append(f'<{url(max(0, offset - limit))}>;rel="prev"')
        if total > offset + limit:
            parts.append(f'<{url(offset + limit)}>;rel="next"')
        if exact:
            parts.append(f'<{url(max(0, (total - 1) // limit * limit))}>;rel="last"')
        return ",".join(parts)

    def get_one(self, req: Request, table: str, sys_id: str) -> Response:
        found = self.data.lookup(sys_id)
        if found is None or found[0] != table or self.data.hidden(*found):
            return failure(
                404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
            )
        return json_response(200, {"result": self._render(req, table, self.data.row(*found))})

    def update(self, req: Request, table: str, sys_id: str) -> Response:
        d = self.data
        found = d.lookup(sys_id)
        if found is None or found[0] != table or d.hidden(*found):
            return failure(
                404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval"
            )
        if table not in TASK_TABLES and table != "cmdb_ci":
            return failure(
                403, "Operation Failed", "ACL Exception Update Failed due to security constraints"
            )
        try:
            body = req.json()
        except ValueError:
            return failure(400, "Exception while reading request", "The payload is not valid JSON.")
        if not isinstance(body, dict):
            return failure(400, "Exception while reading request", "Expected a JSON object.")
        d.write(
            table, found[1], {k: str(v) for k, v in body.items() if k not in ("sys_id", "number")}
        )
        return json_response(200, {"result": self._render(req, table, d.row(*found))})

    # -- rendering -------------------------------------------------------------------------
    def _render(self, req: Request, table: str, row: dict[str, str]) -> dict[str, Any]:
        fields_param = req.param("sysparm_fields")
        mode = (req.param("sysparm_display_value", "false") or "false").lower()
        no_link = (req.param("sysparm_exclude_reference_link", "false") or "").lower() == "true"
        names = (
            [f.strip() for f in fields_param.split(",") if f.strip()] if fields_param else list(row)
        )
        out: dict[str, Any] = {}
        for name in names:
            if "." in name:
                value = self._dot(row, name)
                if value is not None:
                    out[name] = value
                continue
            if name not in row:
                continue
            out[name] = self._value(table, name, row[name], mode, no_link)
        return out

    def _dot(self, row: dict[str, str], path: str) -> str | None:
        head, _, rest = path.partition(".")
        ref = row.get(head)
        if ref is None:
            return None
        if ref == "":
            return ""
        target = self.data.lookup(ref)
        if target is None:
            return ""
        if "." not in rest:
            # The parent's sys_updated_on of every related row: without building the row
            # (a database joins one column; building it cost a third of a task_ci read).
            value = self.data.field(*target, rest)
            return "" if value is None else value
        return self._dot(self.data.row(*target), rest)

    def _value(self, table: str, name: str, raw: str, mode: str, no_link: bool) -> Any:
        if table == "sys_dictionary" and name == "internal_type":
            return self._glide_type(raw, mode, no_link)
        ref_table = REFERENCES.get(name)
        if mode == "false":
            if ref_table and raw and not no_link:
                return {"link": self._link(ref_table, raw), "value": raw}
            return raw
        display = self._display(table, name, raw)
        if mode == "true":
            if ref_table and raw and not no_link:
                return {"link": self._link(ref_table, raw), "display_value": display}
            return display
        value: dict[str, Any] = {"display_value": display, "value": raw}
        if ref_table and raw and not no_link:
            value["link"] = self._link(ref_table, raw)
        return value

    def _glide_type(self, raw: str, mode: str, no_link: bool) -> Any:
        """``sys_dictionary.internal_type``: a reference to ``sys_glide_object`` by name
        (its link names the record by ``name``, not by sys_id)."""
        link = f"{self.data.ds.base_url}/api/now/table/sys_glide_object?name={raw}"
        label = raw.replace("glide_", "").replace("_", " ").title()
        if mode == "false":
            return raw if no_link or not raw else {"link": link, "value": raw}
        if mode == "true":
            return label if no_link or not raw else {"link": link, "display_value": label}
        value: dict[str, Any] = {"display_value": label, "value": raw}
        if raw and not no_link:
            value["link"] = link
        return value

    def _link(self, ref_table: str, sys_id: str) -> str:
        found = self.data.lookup(sys_id)
        table = found[0] if found and ref_table == "task" else ref_table
        return f"{self.data.ds.base_url}/api/now/table/{table}/{sys_id}"

    def _display(self, table: str, name: str, raw: str) -> str:
        if raw == "":
            return ""
        if name in REFERENCES:
            found = self.data.lookup(raw)
            if found is None:
                return ""
            row = self.data.row(*found)
            return row.get("number") or row.get("name") or raw
        for key in ((table, name), ("task", name)):
            if key in CHOICES:
                return dict(CHOICES[key]).get(raw, raw)
        if name in ("active", "known_error", "cab_required"):
            return raw
        return raw


def _lower_bound(q: EQ.Query, field: str) -> str | None:
    """The smallest value of ``field`` any row matching ``q`` can have, when every ``^NQ``
    part bounds it from below with a plain AND condition (``>``, ``>=`` or ``=``)."""
    lows: list[str] = []
    for group in q.groups:
        bounds = [
            c.value
            for clause in group
            if len(clause) == 1
            for c in clause
            if c.field == field and c.op in (">", ">=", "=")
        ]
        if not bounds:
            return None
        lows.append(max(bounds))
    return min(lows) if lows else None


def _sortable(value: str) -> tuple[int, Any]:
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)
