"""ticketlint.connectors.servicenow against a small fake Table API (served through ``responses``).

The fake applies a subset of the encoded query language (``=``, ``>``, ``>=``, ``<``,
``IN``, ``INSTANCEOF``, ``STARTSWITH``, ``^``, ``^OR``, ``^NQ``, ``ORDERBY`` /
``ORDERBYDESC``; fields dot-walked through references, as the instance does),
``sysparm_offset``, ``sysparm_limit`` and ``sysparm_fields`` (dot-walked too) to in-memory
rows, answers a ``Date`` header, and filters rows the way ACLs
do: *after* paging (a row marked ``"_acl": "hide"`` comes back as ``{}``, one marked
``"_acl": "drop"`` is left out, so the page is short).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from responses import matchers

from ticketlint.config import ServiceNowSource
from ticketlint.connectors.base import SourceError
from ticketlint.connectors.http import HttpClient
from ticketlint.connectors.servicenow import (
    ServiceNowConnector,
    check_scope,
    first_page_query,
    next_page_query,
)
from ticketlint.connectors.servicenow.auth import BearerAuth, OAuthTokens
from ticketlint.connectors.servicenow.stream import StreamReader

BASE = "https://snow.example.com"
FIX = Path(__file__).parents[1] / "fixtures" / "servicenow_api"
ORDER = "ORDERBYsys_updated_on^ORDERBYsys_id"
TABLE_URL = re.compile(r"https?://[^/]+/api/now/table/\w+")


def load(name: str) -> Any:
    return json.loads((FIX / name).read_text())


def rows_of(table: str) -> list[dict[str, Any]]:
    return load(f"{table}.json")["result"]


# --------------------------------------------------------------------------- fake Table API

_TERM = re.compile(r"^([a-z0-9_.]+?)(ISNOTEMPTY|>=|<=|!=|STARTSWITH|INSTANCEOF|IN|>|<|=)(.*)$")
Term = tuple[str, str, str]


def parse_query(query: str) -> tuple[list[list[list[Term]]], list[tuple[str, bool]]]:
    """Encoded query -> OR'ed (^NQ) groups of AND'ed clauses of OR'ed (^OR) (field, op,
    value) terms, and the order."""
    order: list[tuple[str, bool]] = []
    groups: list[list[list[Term]]] = []
    for part in query.split("^NQ") if query else []:
        clauses: list[list[Term]] = []
        for term in part.split("^"):
            if not term:
                continue
            if term.startswith("ORDERBYDESC"):
                order.append((term[len("ORDERBYDESC") :], True))
            elif term.startswith("ORDERBY"):
                order.append((term[len("ORDERBY") :], False))
            else:
                is_or = term.startswith("OR") and clauses
                m = _TERM.match(term[2:] if is_or else term)
                assert m, f"the fake cannot parse {term!r}"
                if is_or:
                    clauses[-1].append((m.group(1), m.group(2), m.group(3)))
                else:
                    clauses.append([(m.group(1), m.group(2), m.group(3))])
        groups.append(clauses)
    return groups, order


def _holds(have: str, op: str, value: str) -> bool:
    return {
        "=": lambda: have == value,
        "!=": lambda: have != value,
        ">": lambda: have > value,
        ">=": lambda: have >= value,
        "<": lambda: have < value,
        "<=": lambda: have <= value,
        "IN": lambda: have in value.split(","),
        "STARTSWITH": lambda: have.startswith(value),
        "INSTANCEOF": lambda: have == value,  # no table here extends another
        "ISNOTEMPTY": lambda: have != "",
    }[op]()


class FakeTableAPI:
    """In-memory tables behind ``/api/now/table/<table>``."""

    def __init__(self, tables: dict[str, list[dict[str, Any]]]) -> None:
        self.tables = {name: [dict(r) for r in rows] for name, rows in tables.items()}
        for name, rows in self.tables.items():
            for row in rows:
                if name not in ("sysapproval_approver", "task_ci") and row.get("sys_id"):
                    row.setdefault("sys_class_name", name)
        self.calls: list[dict[str, str]] = []
        self.lock = threading.RLock()
        """Held through an answer: the connector reads tables and pages ahead on threads of
        its own, and an answer reads what it set (its call, ``last_total``)."""
        self.dot_walk: bool | str = True
        """False: the instance ignores dot-walked conditions (they match every row);
        "no_rows": they match no row (``glide.invalid_query.returns_no_rows=true``)."""
        self.date = "Tue, 10 Feb 2026 12:00:00 GMT"
        self.faults: list[Any] = []
        """Served (or raised) before normal answers: an exception or (status, headers, body).
        Not to the data dictionary read (it falls back on its own; tests of it give it
        its own faults through ``dictionary_faults``)."""
        self.dictionary_faults: list[Any] = []
        self.before: Callable[[FakeTableAPI, int], None] | None = None
        """Called before each answer with the 1-based request number (to change rows)."""

    def install(self, base: str = BASE) -> FakeTableAPI:
        responses.add_callback(
            responses.GET,
            re.compile(re.escape(base) + r"/api/now/table/\w+"),
            callback=self.callback,
        )
        return self

    def queries(self, table: str) -> list[str]:
        return [c["sysparm_query"] for c in self.calls if c["table"] == table]

    def callback(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        with self.lock:
            return self._answer(request)

    def _answer(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        url = urlsplit(request.url)
        params = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.calls.append({"table": url.path.rsplit("/", 1)[-1], **params})
        if self.before:
            self.before(self, len(self.calls))
        faults = (
            self.dictionary_faults if self.calls[-1]["table"] == "sys_dictionary" else self.faults
        )
        if faults:
            fault = faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            return fault
        result = self.select(self.calls[-1]["table"], params)
        headers = {"Content-Type": "application/json", "Date": self.date}
        if params.get("sysparm_no_count") != "true":  # the instance counts before ACLs
            headers["X-Total-Count"] = str(self.last_total)
        return 200, headers, json.dumps({"result": result})

    def value(self, row: dict[str, Any], field: str) -> str:
        """A column, dot-walked through references by sys_id (any table)."""
        head, _, rest = field.partition(".")
        if not rest:
            return str(row.get(field, ""))
        ref = row.get(head)
        target = next(
            (r for rows in self.tables.values() for r in rows if ref and r.get("sys_id") == ref),
            None,
        )
        return "" if target is None else self.value(target, rest)

    def _matches(self, row: dict[str, Any], clause: list[Term]) -> bool:
        if self.dot_walk is not True and all("." in t[0] for t in clause):
            return not self.dot_walk
        return any(_holds(self.value(row, f), op, v) for f, op, v in clause)

    def select(self, table: str, params: dict[str, str]) -> list[dict[str, Any]]:
        groups, order = parse_query(params.get("sysparm_query", ""))
        rows = [
            r
            for r in self.tables.get(table, [])
            if not groups or any(all(self._matches(r, c) for c in g) for g in groups)
        ]
        for field, desc in reversed(order):
            rows.sort(key=lambda r: str(r.get(field, "")), reverse=desc)
        self.last_total = len(rows)
        offset = int(params.get("sysparm_offset", 0))
        page = rows[offset : offset + int(params.get("sysparm_limit", 10000))]
        fields = [f for f in params.get("sysparm_fields", "").split(",") if f]
        out: list[dict[str, Any]] = []
        for row in page:  # ACLs apply after paging
            if row.get("_acl") == "drop":
                continue
            if row.get("_acl") == "hide":
                out.append({})
                continue
            out.append(
                {
                    f: row[f] if f in row else self.value(row, f)
                    for f in fields
                    if f in row or ("." in f and f.split(".")[0] in row)
                }
                if fields
                else {k: v for k, v in row.items() if not k.startswith("_")}
            )
        return out


def all_tables() -> dict[str, list[dict[str, Any]]]:
    return {
        t: rows_of(t)
        for t in (
            "incident",
            "change_request",
            "problem",
            "sc_req_item",
            "cmdb_ci",
            "sysapproval_approver",
            "task_ci",
            "sys_dictionary",
        )
    }


def source(**kw: Any) -> ServiceNowSource:
    data: dict[str, Any] = {
        "name": "snow-prod",
        "type": "servicenow",
        "url": BASE,
        "auth": {"user": "svc_ticketlint", "password": "pw-s3cret"},
    }
    data.update(kw)
    return ServiceNowSource.model_validate(data)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def connector(
    sleeps: Sleeps | None = None, *, bulk_related: bool = True, **kw: Any
) -> ServiceNowConnector:
    return ServiceNowConnector(
        source(**kw), sleep=sleeps if sleeps is not None else Sleeps(), bulk_related=bulk_related
    )


def read_all(conn: ServiceNowConnector, stream: str, **kw: Any):
    batches = list(conn.read(stream, **kw))
    records = [r for b in batches for r in b.records]
    return batches, records


def sorted_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["sys_updated_on"], r["sys_id"]))


def synthetic(n: int, *, prefix: str = "INC00900") -> list[dict[str, Any]]:
    """``n`` incident rows with distinct update times, in key order."""
    template = rows_of("incident")[0]
    out = []
    for i in range(n):
        row = dict(template)
        row.update(
            sys_id=f"{i:02d}" + "a" * 30,
            number=f"{prefix}{i:02d}",
            sys_updated_on=f"2026-02-10 10:{i:02d}:00",
            cmdb_ci="",
            **{"cmdb_ci.name": ""},
        )
        out.append(row)
    return out


# --------------------------------------------------------------------------- queries


def test_query_builders_repeat_the_scope_in_each_nq_part() -> None:
    assert first_page_query("active=true", "sys_updated_on>=2026-02-01 00:00:00") == (
        f"active=true^sys_updated_on>=2026-02-01 00:00:00^{ORDER}"
    )
    assert next_page_query("active=true", "2026-02-01 11:30:00", "abc") == (
        "active=true^sys_updated_on>2026-02-01 11:30:00^NQactive=true^sys_updated_on=2026-02-01 11:30:00"
        f"^sys_id>abc^{ORDER}"
    )
    assert next_page_query("", "T", "X") == f"sys_updated_on>T^NQsys_updated_on=T^sys_id>X^{ORDER}"
    with pytest.raises(ValueError, match="NQ"):
        check_scope("active=true^NQpriority=1", "query")
    with pytest.raises(ValueError, match="ORDERBY"):
        check_scope("active=true^ORDERBYnumber", "query")


@responses.activate
def test_keyset_paging_sends_the_exact_query_of_each_page() -> None:
    fake = FakeTableAPI(all_tables()).install()
    conn = connector(page_size=2, query={"incident": "category=network"})
    since = datetime(2026, 2, 1, 10, 15, tzinfo=timezone.utc)
    batches, records = read_all(conn, "incident", since=since)

    ordered = sorted_rows(rows_of("incident"))  # 10:00 is before since - 10 min: excluded
    expected_rows = [r for r in ordered if r["sys_updated_on"] >= "2026-02-01 10:05:00"]
    assert [r.key for r in records] == [r["number"] for r in expected_rows]
    second, _fourth = expected_rows[1], expected_rows[3]
    scope = "category=network"
    assert fake.queries("incident") == [
        f"{scope}^sys_updated_on>=2026-02-01 10:05:00^{ORDER}",
        (
            f"{scope}^sys_updated_on>{second['sys_updated_on']}^NQ{scope}^sys_updated_on={second['sys_updated_on']}"
            f"^sys_id>{second['sys_id']}^{ORDER}"
        ),
    ]  # the second page's X-Total-Count (2) says it holds the rest: no closing empty page
    first = next(c for c in fake.calls if c["table"] == "incident")
    assert first["sysparm_fields"] == ",".join(conn.mapper.fields_for("incident"))
    assert (
        first["sysparm_exclude_reference_link"],
        first["sysparm_no_count"],
        first["sysparm_display_value"],
        first["sysparm_limit"],
    ) == ("true", "false", "false", "2")
    assert "sysparm_offset" not in first
    # task_ci is read first, in bulk, with the scope dot-walked onto the task; the other
    # processes' windows reach RELATED_SLACK further back (their watermarks are unknown)
    assert fake.queries("task_ci")[0] == (
        "task.sys_class_nameINSTANCEOFincident^task.sys_updated_on>=2026-02-01 10:05:00^task.category=network"
        "^NQtask.sys_class_nameINSTANCEOFchange_request^task.sys_updated_on>=2026-02-01 08:05:00"
        "^NQtask.sys_class_nameINSTANCEOFproblem^task.sys_updated_on>=2026-02-01 08:05:00^ORDERBYsys_id"
    )
    # the data dictionary first: one request (its own page size), then task_ci
    assert [c["table"] for c in fake.calls[:2]] == ["sys_dictionary", "task_ci"]
    assert fake.calls[0]["sysparm_limit"] == "1000"
    task_ci_calls = [c for c in fake.calls if c["table"] == "task_ci"]
    assert conn.request_count == 1 + math.ceil(4 / 2) + len(task_ci_calls) == len(fake.calls)
    assert batches[-1].watermark == datetime(2026, 2, 3, 16, 45, tzinfo=timezone.utc)
    assert sum(b.requests for b in batches) == conn.request_count
    inc2 = next(r for r in records if r.key == "INC0010002")
    assert inc2.ci_refs == ["db-01", "web-02"] and inc2.assignee.name == "Alan Smith"


@responses.activate
def test_a_page_size_of_one_thousand_reads_everything_in_one_counted_page() -> None:
    fake = FakeTableAPI(all_tables()).install()
    conn = connector()
    _, records = read_all(conn, "problem")
    assert len(records) == 2 and records[1].state == "cancelled"
    assert [c["sysparm_limit"] for c in fake.calls if c["table"] == "problem"] == ["1000"]
    # the dictionary: one; task_ci in bulk: one counted page; problem: one
    assert conn.request_count == 1 + 1 + 1


@responses.activate
def test_only_the_first_page_and_the_expected_last_one_ask_for_a_count() -> None:
    rows = synthetic(7)
    fake = FakeTableAPI({"incident": rows, "task_ci": []}).install()
    conn = connector(page_size=2)
    _, records = read_all(conn, "incident")
    assert len(records) == 7
    calls = [c for c in fake.calls if c["table"] == "incident"]
    # 7 rows: counted (7 left), 5 left, 3 left (no count), then 1 left: counted, and the
    # count (1) fits the page, so there is no closing empty request: ceil(7 / 2) requests
    assert [c["sysparm_no_count"] for c in calls] == ["false", "true", "true", "false"]


@responses.activate
def test_rows_added_after_the_first_count_are_still_read() -> None:
    rows = synthetic(6)
    fake = FakeTableAPI({"incident": rows[:4], "task_ci": []}).install()

    def grow(api: FakeTableAPI, n: int) -> None:
        if len(api.queries("incident")) == 2:  # after the first incident page, two more rows arrive
            api.tables["incident"].extend(dict(r) for r in rows[4:])

    fake.before = grow
    _, records = read_all(connector(page_size=2), "incident")
    assert [r.native_id for r in records] == [r["sys_id"] for r in rows]
    # the second page was expected to be the last: counted, it says 4 are left (2 after
    # it), so the third is counted too and ends the read: ceil(6 / 2) requests
    assert [c["sysparm_no_count"] for c in fake.calls if c["table"] == "incident"] == [
        "false",
        "false",
        "false",
    ]


# --------------------------------------------------------------------------- rows changing mid-read


def offset_read(base: str, table: str, page: int) -> list[tuple[str, str]]:
    """What offset paging over the same (changing) table returns: (sys_id, sys_updated_on)."""
    seen: list[tuple[str, str]] = []
    offset = 0
    while True:
        rows = requests.get(
            f"{base}/api/now/table/{table}",
            params={
                "sysparm_query": ORDER,
                "sysparm_limit": page,
                "sysparm_offset": offset,
                "sysparm_fields": "sys_id,sys_updated_on",
            },
            timeout=5,
        ).json()["result"]
        if not rows:
            return seen
        seen.extend((r["sys_id"], r["sys_updated_on"]) for r in rows)
        offset += len(rows)


def touch_after_first_page(table: str, sys_id: str) -> Callable[[FakeTableAPI, int], None]:
    def before(fake: FakeTableAPI, n: int) -> None:
        if (
            len(fake.queries(table)) == 2
        ):  # after page 1 was served, someone updates a row already read
            row = next(r for r in fake.tables[table] if r["sys_id"] == sys_id)
            row["sys_updated_on"] = "2026-03-01 00:00:00"

    return before


@responses.activate
def test_offset_paging_skips_a_row_when_an_earlier_one_changes_and_keyset_paging_does_not() -> None:
    rows = synthetic(6)
    ids = [r["sys_id"] for r in rows]
    fake = FakeTableAPI({"incident": rows}).install()
    fake.before = touch_after_first_page("incident", ids[1])
    seen = offset_read(BASE, "incident", 2)
    assert ids[2] not in {i for i, _ in seen}  # row C shifted into the pages already read
    assert [i for i, _ in seen].count(ids[1]) == 2

    fake = FakeTableAPI({"incident": synthetic(6), "task_ci": []})
    responses.reset()
    fake.install()
    fake.before = touch_after_first_page("incident", ids[1])
    _, records = read_all(connector(page_size=2), "incident")
    versions = [(r.native_id, r.updated_at) for r in records]
    assert set(ids) == {i for i, _ in versions}  # nothing skipped
    assert len(versions) == len(set(versions))  # no version read twice
    latest = [v for v in versions if v[0] == ids[1]][-1]
    assert latest[1] == datetime(2026, 3, 1, tzinfo=timezone.utc)  # the change is read too


@responses.activate
def test_a_row_updated_before_it_is_read_is_read_once_at_its_new_version() -> None:
    rows = synthetic(6)
    ids = [r["sys_id"] for r in rows]
    fake = FakeTableAPI({"incident": rows, "task_ci": []}).install()
    fake.before = touch_after_first_page("incident", ids[4])
    _, records = read_all(connector(page_size=2), "incident")
    assert [r.native_id for r in records] == [ids[0], ids[1], ids[2], ids[3], ids[5], ids[4]]


# --------------------------------------------------------------------------- ACL-filtered pages


@responses.activate
def test_empty_object_rows_are_counted_and_skipped_and_the_key_comes_from_the_last_real_row() -> (
    None
):
    rows = synthetic(7)
    rows[2]["_acl"] = "hide"  # last row of page 1: the next page must start after rows[1]
    rows[5]["_acl"] = "hide"
    fake = FakeTableAPI({"incident": rows, "task_ci": []}).install()
    batches, records = read_all(connector(page_size=3), "incident")
    assert [r.native_id for r in records] == [rows[i]["sys_id"] for i in (0, 1, 3, 4, 6)]
    assert sum(b.report.skipped_empty for b in batches) == 2  # row 2 is seen twice, counted once
    assert fake.queries("incident")[1] == next_page_query(
        "", rows[1]["sys_updated_on"], rows[1]["sys_id"]
    )


@responses.activate
def test_a_page_of_only_empty_rows_pages_on_by_offset_after_the_same_key() -> None:
    rows = synthetic(8)
    for i in (2, 3, 4, 5):
        rows[i]["_acl"] = "hide"
    fake = FakeTableAPI({"incident": rows, "task_ci": []}).install()
    batches, records = read_all(connector(page_size=2), "incident")
    assert [r.native_id for r in records] == [rows[i]["sys_id"] for i in (0, 1, 6, 7)]
    key_after_1 = next_page_query("", rows[1]["sys_updated_on"], rows[1]["sys_id"])
    calls = [c for c in fake.calls if c["table"] == "incident"]
    assert [(c["sysparm_query"], c.get("sysparm_offset")) for c in calls] == [
        (ORDER, None),
        (key_after_1, None),
        (key_after_1, "2"),
        (key_after_1, "4"),
    ]  # offset 4 + limit 2 reaches the count after the key (6): that page was the last
    report = batches[0].report
    for b in batches[1:]:
        report.merge(b.report)
    assert report.skipped_empty == 4
    assert report.warnings["incident: a page held only inaccessible rows; paged by offset"] == 2


@responses.activate
def test_a_table_of_only_inaccessible_rows_ends_and_yields_nothing() -> None:
    rows = synthetic(3)
    for row in rows:
        row["_acl"] = "hide"
    fake = FakeTableAPI({"incident": rows}).install()
    batches, records = read_all(connector(page_size=2), "incident")
    assert records == [] and sum(b.report.skipped_empty for b in batches) == 3
    # the first page counts 3 (before ACLs); the next, by offset 2, reaches the count
    assert [c.get("sysparm_offset") for c in fake.calls if c["table"] == "incident"] == [None, "2"]


@responses.activate
def test_a_short_page_is_not_the_end() -> None:
    rows = synthetic(7)
    rows[1]["_acl"] = "drop"
    rows[2]["_acl"] = "drop"  # page 1 returns 1 row of 3
    fake = FakeTableAPI({"incident": rows, "task_ci": []}).install()
    _, records = read_all(connector(page_size=3), "incident")
    assert [r.native_id for r in records] == [rows[i]["sys_id"] for i in (0, 3, 4, 5, 6)]
    assert len(fake.queries("incident")) == 4  # 1 row, 3 rows, 1 row, empty


@responses.activate
def test_a_server_that_ignores_the_keyset_fails_instead_of_looping() -> None:
    rows = synthetic(2)
    responses.get(TABLE_URL, json={"result": rows})
    conn = connector(page_size=2)
    with pytest.raises(SourceError, match="paging did not advance"):
        read_all(conn, "ci")
    # the dictionary read stalls the same way first (2 requests): given up, types guessed
    assert conn.request_count == 2 + 2


# --------------------------------------------------------------------------- related rows


@responses.activate
def test_the_id_list_path_reads_approvals_and_task_ci_per_page_paged_by_sys_id() -> None:
    fake = FakeTableAPI(all_tables()).install()
    conn = connector(page_size=2, bulk_related=False)
    _, records = read_all(conn, "change")
    changes = sorted_rows(rows_of("change_request"))
    page1 = ",".join(r["sys_id"] for r in changes[:2])
    approvals_p1 = sorted(
        (a for a in rows_of("sysapproval_approver") if a["sysapproval"] in page1.split(",")),
        key=lambda a: a["sys_id"],
    )
    assert len(approvals_p1) == 3  # more than one page of 2: keyset on sys_id
    assert fake.queries("sysapproval_approver")[:2] == [
        f"sysapprovalIN{page1}^ORDERBYsys_id",
        f"sysapprovalIN{page1}^sys_id>{approvals_p1[1]['sys_id']}^ORDERBYsys_id",
    ]  # the second page holds the last match (X-Total-Count 1): no third request
    per_record = [
        c
        for c in fake.calls
        if c["table"] == "sysapproval_approver" and "," not in c["sysparm_query"].split("^")[0]
    ]
    assert per_record == []  # every related request names the whole page of records
    first = next(c for c in fake.calls if c["table"] == "sysapproval_approver")
    assert first["sysparm_fields"].split(",")[:3] == ["sys_id", "sysapproval", "document_id"]
    by_key = {r.key: r for r in records}
    assert sorted(a.decision for a in by_key["CHG0030001"].approvals) == ["approved", "approved"]
    assert by_key["CHG0030004"].approvals == []  # not_required is not an approval
    assert set(by_key["CHG0030001"].ci_refs) == {"web-02", "web-01", "lb-01"}
    # 2 pages of changes (the second counted: the last); related reads are counted
    # (X-Total-Count), so they stop on the page that holds the last match: approvals:
    # page 1 -> 2 requests (3 rows in pages of 2), page 2 -> 1; task_ci: 1 + 1
    assert len(fake.queries("change_request")) == 2
    assert len(fake.queries("sysapproval_approver")) == 2 + 1
    assert len(fake.queries("task_ci")) == 1 + 1
    assert conn.request_count == 1 + 2 + 3 + 2  # the dictionary first


@responses.activate
def test_ci_stream_comes_first_and_its_names_resolve_task_references() -> None:
    tables = all_tables()
    for row in tables["incident"]:
        row.pop("cmdb_ci.name")  # no dot-walk (e.g. an ACL on the CI name): lookup instead
    tables["task_ci"] = []
    FakeTableAPI(tables).install()
    conn = connector()
    assert conn.streams[0] == "ci"
    _, cis = read_all(conn, "ci")
    assert {c.key for c in cis} == {"web-01", "web-02", "db-01", "lb-01"}
    assert conn.ci_names[cis[0].native_id] == cis[0].key
    _, incidents = read_all(conn, "incident")
    assert next(r for r in incidents if r.key == "INC0010001").ci_refs == ["web-01"]


@responses.activate
def test_keys_select_by_number_and_ci_by_name() -> None:
    fake = FakeTableAPI(all_tables()).install()
    conn = connector()
    _, records = read_all(conn, "incident", keys=["INC0010004", "INC0010001"])
    assert sorted(r.key for r in records) == ["INC0010001", "INC0010004"]
    assert fake.queries("incident")[0] == f"numberININC0010004,INC0010001^{ORDER}"
    _, cis = read_all(conn, "ci", keys=["db-01"], query="install_status=3")
    assert [c.key for c in cis] == ["db-01"]
    assert fake.queries("cmdb_ci")[0] == f"install_status=3^nameINdb-01^{ORDER}"


def test_a_scope_with_its_own_nq_is_refused() -> None:
    conn = connector(query={"incident": "active=true^NQactive=false"})
    with pytest.raises(SourceError, match=r"may not contain \^NQ"):
        list(conn.read("incident"))


# --------------------------------------------------------------------------- field validation


@responses.activate
def test_fields_the_table_lacks_are_warned_about_by_table_and_field(
    caplog: pytest.LogCaptureFixture,
) -> None:
    FakeTableAPI(all_tables()).install()
    conn = connector(fields={"incident.review": "u_pir_completed"})
    with caplog.at_level(logging.WARNING, logger="ticketlint.connectors.servicenow"):
        batches, records = read_all(conn, "incident")
    warnings = sum(
        (b.report.warnings for b in batches), start=batches[0].report.warnings.__class__()
    )
    assert warnings["incident.u_pir_completed missing"] == 1
    assert "table incident returned no field u_pir_completed" in caplog.text
    assert all(r.review is None for r in records)  # not provided, not "empty"


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize(
    "fault, expected_sleep",
    [
        ((429, {"Retry-After": "7"}, json.dumps({"error": {"message": "Too many requests"}})), 7.0),
        ((503, {}, "<html>Service Unavailable</html>"), None),
        (
            (500, {}, json.dumps({"error": {"message": "Internal error"}, "status": "failure"})),
            None,
        ),
        (requests.exceptions.ReadTimeout("read timed out"), None),
        (
            requests.exceptions.ConnectionError(
                ConnectionResetError(104, "Connection reset by peer")
            ),
            None,
        ),
        ((200, {}, '{"result": [{"sys_id": "trunc'), None),  # a page cut short: not JSON
    ],
)
@responses.activate
def test_each_transient_fault_is_retried_and_nothing_is_lost(
    fault: Any, expected_sleep: float | None
) -> None:
    fake = FakeTableAPI({"problem": rows_of("problem"), "task_ci": []}).install()
    fake.faults = [fault]
    sleeps = Sleeps()
    conn = connector(sleeps)
    _, records = read_all(conn, "problem")
    assert len(records) == 2
    assert len(sleeps) == 1 and (expected_sleep is None or sleeps == [expected_sleep])
    # the dictionary (one request), then the fault hits the bulk task_ci read: its retry
    # counts too; the bulk answer is empty, so two probe rows check it (empty: believed)
    assert conn.request_count == 1 + 1 + 1 + 2 + 1


@responses.activate
def test_retries_that_run_out_fail_the_source_instead_of_returning_nothing() -> None:
    fake = FakeTableAPI({"problem": rows_of("problem")}).install()
    fake.faults = [(503, {}, "busy")] * 3
    conn = connector(max_attempts=3)
    with pytest.raises(SourceError) as err:
        read_all(conn, "problem")
    assert err.value.status == 503 and "after 3 attempts" in str(err.value)
    assert conn.request_count == 1 + 3  # the dictionary, then the 3 attempts


@pytest.mark.parametrize(
    "status, message, detail",
    [
        (400, "Invalid query", "Unparseable encoded query"),
        (401, "User Not Authenticated", "Required to provide Auth information"),
        (403, "User Not Authorized", "ACL Exception Read Failed"),
        (404, "Invalid table u_change_custom", None),
    ],
)
@responses.activate
def test_refusals_fail_at_once_with_the_servers_message_and_detail(
    status: int, message: str, detail: str | None
) -> None:
    fake = FakeTableAPI({}).install()
    fake.faults = [(status, {}, (FIX / "errors" / f"{status}.json").read_text())]
    conn = connector(tables={"change": "u_change_custom"}, bulk_related=False)
    with pytest.raises(SourceError) as err:
        read_all(conn, "change")
    text = str(err.value)
    assert err.value.status == status and message in text and (detail is None or detail in text)
    assert f"URL: {BASE}/api/now/table/u_change_custom;" in text  # no query string
    assert "pw-s3cret" not in text and "sysparm" not in text
    assert "u_change_custom" in (err.value.hint or "") or status in (400, 401)
    assert conn.request_count == 1 + 1  # the dictionary, then the refused read


# --------------------------------------------------------------------------- auth


def oauth_source(base: str, **kw: Any) -> ServiceNowSource:
    return source(
        url=base,
        auth={
            "oauth": {
                "client_id": "ticketlint-app",
                "client_secret": "cl-s3cret",
                "user": "svc_ticketlint",
                "password": "pw-s3cret",
            }
        },
        **kw,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@responses.activate
def test_basic_auth_uses_the_pysnow_session() -> None:
    FakeTableAPI({"problem": [], "task_ci": []}).install()
    conn = connector()
    read_all(conn, "problem")
    assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")


@responses.activate
def test_oauth_password_grant_then_refresh_before_expiry_over_plain_http() -> None:
    base = "http://localhost:8080"
    token = responses.post(
        f"{base}/oauth_token.do",
        json=load("oauth_token.json"),
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "password",
                    "username": "svc_ticketlint",
                    "password": "pw-s3cret",
                    "client_id": "ticketlint-app",
                    "client_secret": "cl-s3cret",
                }
            )
        ],
    )
    refreshed = responses.post(
        f"{base}/oauth_token.do",
        json={
            "access_token": "access-2",
            "refresh_token": "refresh-2",
            "token_type": "Bearer",
            "expires_in": 1799,
        },
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "refresh_token",
                    "refresh_token": "r4nd0m-refresh-token-1",
                    "client_id": "ticketlint-app",
                    "client_secret": "cl-s3cret",
                }
            )
        ],
    )
    FakeTableAPI({"problem": rows_of("problem"), "task_ci": []}).install(base)
    clock = Clock()
    conn = ServiceNowConnector(oauth_source(base), sleep=Sleeps(), clock=clock)
    read_all(conn, "problem")
    table_calls = [c for c in responses.calls if "/api/now/table/" in c.request.url]
    assert {c.request.headers["Authorization"] for c in table_calls} == {
        "Bearer r4nd0m-access-token-1"
    }
    assert token.call_count == 1 and refreshed.call_count == 0
    clock.now += 1799 - 30  # inside the safety margin before expiry
    read_all(conn, "problem")
    assert refreshed.call_count == 1
    assert responses.calls[-1].request.headers["Authorization"] == "Bearer access-2"
    # token, the dictionary (once per run), task_ci in bulk (empty: + 2 probe rows) +
    # problem; refresh, problem (the task_ci index still covers it)
    assert conn.request_count == 1 + 1 + 2 + 2 + 1 + 1


@responses.activate
def test_a_401_refreshes_the_token_once_and_a_second_401_fails() -> None:
    responses.post(f"{BASE}/oauth_token.do", json=load("oauth_token.json"))
    fake = FakeTableAPI({"problem": rows_of("problem"), "task_ci": []}).install()
    revoked = (401, {}, (FIX / "errors" / "401.json").read_text())
    fake.faults = [revoked]
    conn = ServiceNowConnector(oauth_source(BASE), sleep=Sleeps(), clock=Clock())
    _, records = read_all(conn, "problem")
    assert len(records) == 2 and conn._oauth is not None
    assert conn._oauth.grants == ["password", "refresh_token"]

    fake.faults = [revoked, revoked]
    with pytest.raises(SourceError) as err:
        read_all(conn, "problem")
    assert err.value.status == 401 and "User Not Authenticated" in str(err.value)


@responses.activate
def test_a_refused_refresh_token_falls_back_on_the_password_grant() -> None:
    responses.post(
        f"{BASE}/oauth_token.do",
        json=load("oauth_token.json"),
        match=[matchers.urlencoded_params_matcher({"grant_type": "password"}, allow_blank=True)],
    ) if False else None  # (kept simple below: answers in order)
    responses.post(f"{BASE}/oauth_token.do", json=load("oauth_token.json"))
    responses.post(
        f"{BASE}/oauth_token.do", status=401, body=(FIX / "errors" / "oauth_401.json").read_text()
    )
    responses.post(
        f"{BASE}/oauth_token.do", json={**load("oauth_token.json"), "access_token": "access-3"}
    )
    FakeTableAPI({"problem": [], "task_ci": []}).install()
    clock = Clock()
    conn = ServiceNowConnector(oauth_source(BASE), sleep=Sleeps(), clock=clock)
    read_all(conn, "problem")
    clock.now += 5000
    read_all(conn, "problem")
    assert conn._oauth is not None and conn._oauth.grants == [
        "password",
        "refresh_token",
        "password",
    ]
    assert responses.calls[-1].request.headers["Authorization"] == "Bearer access-3"


@responses.activate
def test_a_refused_password_grant_names_the_token_endpoint_and_the_servers_reason() -> None:
    responses.post(
        f"{BASE}/oauth_token.do", status=401, body=(FIX / "errors" / "oauth_401.json").read_text()
    )
    conn = ServiceNowConnector(oauth_source(BASE), sleep=Sleeps(), clock=Clock())
    with pytest.raises(SourceError) as err:
        read_all(conn, "problem")
    text = str(err.value)
    assert "password grant was refused" in text and "access_denied" in text
    assert f"{BASE}/oauth_token.do" in text and "cl-s3cret" not in text and "pw-s3cret" not in text


def test_tls_options_reach_the_http_client() -> None:
    assert connector(verify="/etc/ssl/corp-ca.pem")._http.verify == "/etc/ssl/corp-ca.pem"
    assert connector()._http.verify is True


# --------------------------------------------------------------------------- doctor


@responses.activate
def test_doctor_reports_tables_fields_uncovered_states_and_unevaluable_rules() -> None:
    tables = {**all_tables(), "sys_choice": rows_of("sys_choice")}
    fake = FakeTableAPI(tables)

    def deny_problem(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        if "/table/problem?" in request.url:  # this user may not read problems
            return 403, {}, (FIX / "errors" / "403.json").read_text()
        return fake.callback(request)

    responses.add_callback(responses.GET, TABLE_URL, callback=deny_problem)
    conn = connector(fields={"incident.review": "u_pir_completed"})

    report = conn.doctor()
    checks = {c.name: c for c in report.checks}
    assert checks["reachable"].ok and checks["authentication"].ok
    assert checks["table incident readable"].ok and not checks["table problem readable"].ok
    assert "ACL Exception Read Failed" in checks["table problem readable"].detail
    assert (
        not checks["table incident fields"].ok
        and "u_pir_completed" in checks["table incident fields"].detail
    )
    assert checks["table change_request fields"].ok
    state = checks["table incident state values"]
    assert not state.ok and state.level == "warning" and "9 (Awaiting Vendor)" in state.detail
    assert "10 (" not in state.detail  # inactive choices are not asked for
    assert checks["table sc_req_item state values"].ok  # task's choices, all mapped
    assert not report.ok
    from ticketlint.rules.registry import load_registry

    rules = load_registry().select()
    for r in rules:
        if r.applies_to == ("problem",):
            assert report.not_evaluated[r.code] == "table problem is not readable (HTTP 403)"
        elif "problem" in r.applies_to:  # e.g. CFG003 also reads incidents and changes
            assert report.not_evaluated[r.code].endswith("(its other processes are evaluated)")
        elif r.applies_to == ("release",):
            assert report.not_evaluated[r.code] == "ServiceNow has no table for release"
    sampled = [
        reason
        for reason in report.not_evaluated.values()
        if reason.endswith("(on a sample record)")
    ]
    assert all(reason.strip() for reason in sampled)
    samples = [c for c in fake.calls if c["table"] in ("incident", "change_request")]
    assert all(c["sysparm_limit"] == "1" for c in samples[:2])


@responses.activate
def test_doctor_says_when_the_instance_is_unreachable() -> None:
    responses.get(TABLE_URL, body=requests.exceptions.ConnectionError("Name or service not known"))
    report = connector(max_attempts=2).doctor()
    assert [c.name for c in report.checks] == ["reachable"] and not report.ok
    assert "connection error" in report.checks[0].detail and BASE in report.checks[0].detail
    from ticketlint.rules.registry import load_registry

    assert set(report.not_evaluated) == {r.code for r in load_registry().select()}


@responses.activate
def test_related_ids_are_chunked_by_related_chunk() -> None:
    fake = FakeTableAPI(
        {
            "sc_req_item": rows_of("sc_req_item"),
            "sysapproval_approver": rows_of("sysapproval_approver"),
        }
    ).install()
    _, records = read_all(
        connector(page_size=2, related_chunk=1, bulk_related=False), "service_request"
    )
    ids = [r["sys_id"] for r in sorted_rows(rows_of("sc_req_item"))]
    assert fake.queries("sysapproval_approver") == [
        f"sysapprovalIN{ids[0]}^ORDERBYsys_id",  # one approval, X-Total-Count 1: done
        f"sysapprovalIN{ids[1]}^ORDERBYsys_id",  # none: the empty page ends it
    ]
    assert [len(r.approvals) for r in records] == [1, 0]
    assert records[0].approval_required is True and records[1].approval_required is False


class _NoCountFake(FakeTableAPI):
    """A proxy that strips X-Total-Count: related reads fall back on the empty page."""

    def callback(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        status, headers, body = super().callback(request)
        headers.pop("X-Total-Count", None)
        return status, headers, body


@responses.activate
def test_related_reads_without_a_count_end_on_the_empty_page() -> None:
    fake = _NoCountFake(
        {
            "sc_req_item": rows_of("sc_req_item"),
            "sysapproval_approver": rows_of("sysapproval_approver"),
        }
    ).install()
    _, records = read_all(connector(page_size=2, bulk_related=False), "service_request")
    queries = fake.queries("sysapproval_approver")
    assert len(queries) == 2 and "^sys_id>" in queries[1]  # data page, then the empty page
    assert [len(r.approvals) for r in records] == [1, 0]


class _LinkOnlyFake(FakeTableAPI):
    """No X-Total-Count, but ServiceNow's Link header (next only while rows remain)."""

    def callback(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        with self.lock:  # last_total is this request's only while the lock is held
            return self._linked(request)

    def _linked(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        status, headers, body = super().callback(request)
        counted = headers.pop("X-Total-Count", None) is not None
        params = {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}
        offset, limit = int(params.get("sysparm_offset", 0)), int(params["sysparm_limit"])
        url = f"{BASE}/api/now/table/x?sysparm_limit={limit}&sysparm_offset="
        links = [f'<{url}0>;rel="first"']
        if not counted or offset + limit < self.last_total:  # uncounted: "next" is a guess
            links.append(f'<{url}{offset + limit}>;rel="next"')
        headers["Link"] = ",".join(links)
        return status, headers, body


@responses.activate
def test_without_a_count_a_counted_link_header_without_next_ends_the_read() -> None:
    rows = synthetic(7)
    rows[2]["_acl"] = "drop"  # a short page that is not the last one
    fake = _LinkOnlyFake({"incident": rows, "task_ci": rows_of("task_ci")}).install()
    _, records = read_all(connector(page_size=2), "incident")
    assert len(records) == 6
    assert len(fake.queries("incident")) == math.ceil(7 / 2)  # no closing empty request
    assert all(c["sysparm_no_count"] == "false" for c in fake.calls if c["table"] == "incident")


# --------------------------------------------------------------------------- bulk related streams


def approvals_by_key(records: list[Any]) -> dict[str, list[tuple[str, str]]]:
    return {
        r.key: sorted((a.approver.name or "", a.decision) for a in r.approvals) for r in records
    }


def ci_refs_by_key(records: list[Any]) -> dict[str, list[str]]:
    return {r.key: sorted(r.ci_refs or []) for r in records}


@responses.activate
def test_one_bulk_stream_per_related_table_serves_every_process_and_matches_the_id_lists() -> None:
    fake = FakeTableAPI(all_tables()).install()
    conn = connector(page_size=2)
    _, changes = read_all(conn, "change")
    _, requests_ = read_all(conn, "service_request")
    assert conn.related_path == "bulk"
    approval_queries = fake.queries("sysapproval_approver")
    assert approval_queries[0] == (
        "sysapproval.sys_class_nameINSTANCEOFchange_request"
        "^NQsysapproval.sys_class_nameINSTANCEOFsc_req_item^ORDERBYsys_id"
    )
    assert all("sysapprovalIN" not in q for q in approval_queries)  # no per-page id lists
    first = next(c for c in fake.calls if c["table"] == "sysapproval_approver")
    assert first["sysparm_fields"].endswith(",sysapproval.sys_updated_on")
    n_approvals = len(rows_of("sysapproval_approver"))
    assert len(approval_queries) == math.ceil(n_approvals / 2)  # the page minimum
    assert [c["table"] for c in fake.calls[-len(fake.queries("sc_req_item")) :]] == [
        "sc_req_item"
    ] * len(fake.queries("sc_req_item"))  # requests reuse the approvals read for changes

    responses.reset()
    FakeTableAPI(all_tables()).install()
    by_id = connector(page_size=2, bulk_related=False)
    _, changes_by_id = read_all(by_id, "change")
    _, requests_by_id = read_all(by_id, "service_request")
    assert approvals_by_key(changes) == approvals_by_key(changes_by_id)
    assert approvals_by_key(requests_) == approvals_by_key(requests_by_id)
    assert ci_refs_by_key(changes) == ci_refs_by_key(changes_by_id)
    assert conn.request_count < by_id.request_count


@responses.activate
def test_an_incremental_read_windows_the_related_stream_and_plan_gives_each_process_its_own() -> (
    None
):
    fake = FakeTableAPI(all_tables()).install()
    conn = connector()
    conn.plan({"change": datetime(2026, 2, 2, 0, 0, tzinfo=timezone.utc), "service_request": None})
    _, changes = read_all(conn, "change", since=datetime(2026, 2, 2, 0, 0, tzinfo=timezone.utc))
    assert fake.queries("sysapproval_approver") == [
        (
            "sysapproval.sys_class_nameINSTANCEOFchange_request^sysapproval.sys_updated_on>=2026-02-01 23:50:00"
            "^NQsysapproval.sys_class_nameINSTANCEOFsc_req_item^ORDERBYsys_id"
        ),
        # approvals changed alone (their own time): their changes are re-read by id
        "sys_updated_on>=2026-02-01 23:50:00^ORDERBYsys_id",
    ]
    expected = [
        r["number"]
        for r in rows_of("change_request")
        if r["sys_updated_on"] >= "2026-02-01 23:50:00"
    ]
    assert sorted(r.key for r in changes) == sorted(expected)
    _, _ = read_all(conn, "service_request")  # covered (all time): no second approvals read
    assert len(fake.queries("sysapproval_approver")) == 2
    assert "sysapproval_approver" not in conn._related  # freed once both processes were read


@responses.activate
def test_a_parent_changed_after_the_bulk_read_has_its_related_rows_read_by_id() -> None:
    tables = all_tables()
    changes = sorted_rows(tables["change_request"])
    target = changes[-1]  # read on the last page
    fake = FakeTableAPI(tables).install()
    new_approval = dict(
        rows_of("sysapproval_approver")[0],
        sys_id="0" * 32,
        sysapproval=target["sys_id"],
        document_id=target["sys_id"],
        state="rejected",
    )

    def change_it(api: FakeTableAPI, n: int) -> None:
        if api.calls[-1]["table"] == "change_request" and target["sys_id"] not in {
            a["sysapproval"] for a in api.tables["sysapproval_approver"] if a["sys_id"] == "0" * 32
        }:
            # between the bulk reads and the parent read: a new approval, the parent updated
            api.tables["sysapproval_approver"].append(dict(new_approval))
            row = next(r for r in api.tables["change_request"] if r["sys_id"] == target["sys_id"])
            row["sys_updated_on"] = "2026-02-10 11:58:00"

    fake.before = change_it
    conn = connector()
    _, records = read_all(conn, "change")
    late = next(r for r in records if r.native_id == target["sys_id"])
    assert "rejected" in [a.decision for a in late.approvals]
    assert f"sysapprovalIN{target['sys_id']}^ORDERBYsys_id" in fake.queries("sysapproval_approver")
    # only that parent was re-read: every other one kept its prefetched rows
    assert all(
        q.startswith("sysapproval.") or q == f"sysapprovalIN{target['sys_id']}^ORDERBYsys_id"
        for q in fake.queries("sysapproval_approver")
    )


@responses.activate
def test_a_recent_parent_without_prefetched_rows_is_checked_by_id_and_an_old_one_is_not() -> None:
    tables = all_tables()
    with_none = [
        r
        for r in tables["change_request"]
        if not any(a["sysapproval"] == r["sys_id"] for a in tables["sysapproval_approver"])
    ]
    assert with_none, "the fixture needs a change without approvals"
    fake = FakeTableAPI(tables).install()
    fake.date = "Mon, 02 Feb 2026 00:00:00 GMT"  # R = 2026-02-01 23:50: later parents are "late"
    conn = connector(bulk_related=True)
    _, records = read_all(conn, "change")
    late_ids = sorted(
        r["sys_id"] for r in with_none if r["sys_updated_on"] >= "2026-02-01 23:50:00"
    )
    reread = [q for q in fake.queries("sysapproval_approver") if q.startswith("sysapprovalIN")]
    named = sorted(i for q in reread for i in q.split("^")[0][len("sysapprovalIN") :].split(","))
    assert named == late_ids  # neither the old ones nor the ones with prefetched rows
    assert len(records) == len(tables["change_request"])


def read_streams(conn: ServiceNowConnector, *, plan: bool) -> list[Any]:
    if plan:
        conn.plan(dict.fromkeys(conn.streams))
    return [(stream, b) for stream in conn.streams for b in conn.read(stream)]


@responses.activate
def test_with_a_plan_late_parents_of_every_stream_are_read_by_id_once_per_related_table() -> None:
    tables = all_tables()
    fake = FakeTableAPI(tables).install()
    fake.date = "Mon, 02 Feb 2026 00:00:00 GMT"  # R = 2026-02-01 23:50: most parents are "late"
    conn = connector(page_size=2, related_chunk=50)
    batches = read_streams(conn, plan=True)
    reread = {
        t: [q for q in fake.queries(t) if "IN" in q.split("^")[0] and "INSTANCEOF" not in q]
        for t in ("task_ci", "sysapproval_approver")
    }
    # incident, change and problem share one task_ci read; change and request one approvals read
    assert len(reread["task_ci"]) == 1 and len(reread["sysapproval_approver"]) == 1
    named = reread["task_ci"][0].split("^")[0][len("taskIN") :].split(",")
    late_incidents = [
        r["sys_id"] for r in tables["incident"] if r["sys_updated_on"] >= "2026-02-01 23:50:00"
    ]
    assert late_incidents and set(late_incidents) <= set(named)
    # the held records come out after the last stream that uses related rows, as their own stream
    tail = [(read_in, b.stream) for read_in, b in batches if b.watermark is None and b.records]
    assert {read_in for read_in, _ in tail} == {"service_request"}
    assert {stream for _, stream in tail} >= {"incident", "change", "problem", "service_request"}
    records = [r for _, b in batches for r in b.records]
    assert (
        len(records)
        == len({r.key for r in records})
        == sum(
            len(tables[t])
            for t in ("incident", "change_request", "problem", "sc_req_item", "cmdb_ci")
        )
    )

    responses.reset()
    FakeTableAPI(tables).install()
    by_id = [
        r
        for _, b in read_streams(connector(page_size=2, bulk_related=False), plan=True)
        for r in b.records
    ]
    approving = ("change", "service_request")
    assert approvals_by_key([r for r in records if r.process in approving]) == approvals_by_key(
        [r for r in by_id if r.process in approving]
    )
    assert ci_refs_by_key(records) == ci_refs_by_key(by_id)

    responses.reset()
    fake = FakeTableAPI(tables).install()
    fake.date = "Mon, 02 Feb 2026 00:00:00 GMT"
    read_streams(connector(page_size=2, related_chunk=50), plan=False)  # no plan: per stream
    assert len([q for q in fake.queries("task_ci") if q.startswith("taskIN")]) == 3
    assert (
        len([q for q in fake.queries("sysapproval_approver") if q.startswith("sysapprovalIN")]) == 2
    )


@responses.activate
def test_a_late_parent_read_twice_gets_its_related_rows_once() -> None:
    tables = all_tables()
    chg3 = next(r for r in tables["change_request"] if r["number"] == "CHG0030003")  # no approvals
    approval = dict(
        tables["sysapproval_approver"][0],
        sys_id="f" * 32,
        sysapproval=chg3["sys_id"],
        document_id=chg3["sys_id"],
    )
    fake = FakeTableAPI(tables).install()
    fake.date = "Mon, 02 Feb 2026 00:00:00 GMT"  # R = 2026-02-01 23:50: CHG0030003 is late

    def approve_and_touch(api: FakeTableAPI, n: int) -> None:
        if len(api.queries("change_request")) == 4 and not any(
            r["sys_id"] == "f" * 32 for r in api.tables["sysapproval_approver"]
        ):
            # after its page was read: an approval is added and the change edited
            api.tables["sysapproval_approver"].append(dict(approval))
            next(r for r in api.tables["change_request"] if r["sys_id"] == chg3["sys_id"])[
                "sys_updated_on"
            ] = "2026-02-09 00:00:00"

    fake.before = approve_and_touch
    _, records = read_all(connector(page_size=1), "change")  # CHG0030003 is on page 3
    copies = [r for r in records if r.key == "CHG0030003"]
    assert len(copies) == 2  # read before and after the edit (keyset paging reads both)
    assert copies[-1].updated_at == datetime(2026, 2, 9, tzinfo=timezone.utc)
    assert [len(c.approvals) for c in copies] == [1, 1]  # the new approval, not once per copy held


@pytest.mark.parametrize("status", [400, 403])
@responses.activate
def test_a_refused_dot_walk_falls_back_on_id_lists_and_says_so(status: int) -> None:
    fake = FakeTableAPI(all_tables()).install()
    fake.faults = [(status, {}, (FIX / "errors" / f"{status}.json").read_text())]
    conn = connector(page_size=2)
    batches, records = read_all(conn, "change")
    assert conn.related_path.startswith("in-list") and f"HTTP {status}" in conn.related_path
    warnings = batches[0].report.warnings
    assert any("dot-walked query refused" in w for w in warnings)
    assert any(q.startswith("sysapprovalIN") for q in fake.queries("sysapproval_approver"))
    responses.reset()
    FakeTableAPI(all_tables()).install()
    _, by_id = read_all(connector(page_size=2, bulk_related=False), "change")
    assert approvals_by_key(records) == approvals_by_key(by_id)
    assert ci_refs_by_key(records) == ci_refs_by_key(by_id)


@responses.activate
def test_late_parents_keep_the_rows_of_a_table_read_by_id_when_only_that_dot_walk_is_refused() -> (
    None
):
    tables = all_tables()
    chg3 = next(
        r for r in tables["change_request"] if r["number"] == "CHG0030003"
    )  # no approvals: late
    tables["task_ci"].append(dict(tables["task_ci"][0], sys_id="f" * 32, task=chg3["sys_id"]))
    fake = FakeTableAPI(tables)
    fake.date = "Mon, 02 Feb 2026 00:00:00 GMT"  # R = 2026-02-01 23:50

    def refuse_task_dot_walk(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        if "task.sys_class_name" in requests.utils.unquote(request.url):
            return 403, {}, (FIX / "errors" / "403.json").read_text()
        return fake.callback(request)

    responses.add_callback(responses.GET, TABLE_URL, callback=refuse_task_dot_walk)
    conn = connector(page_size=2, related_chunk=50)
    _, records = read_all(conn, "change")  # approvals in bulk, then task_ci refused: by id
    assert "task_ci was refused" in conn.related_path
    assert any(q.startswith("sysapproval.") for q in fake.queries("sysapproval_approver"))
    responses.reset()
    FakeTableAPI(tables).install()
    _, by_id = read_all(connector(page_size=2, bulk_related=False), "change")
    assert approvals_by_key(records) == approvals_by_key(by_id)
    assert ci_refs_by_key(records) == ci_refs_by_key(by_id)
    assert len(ci_refs_by_key(records)["CHG0030003"]) == 2  # its own CI and the link read by id


@responses.activate
def test_other_errors_on_the_bulk_read_fail_the_source() -> None:
    fake = FakeTableAPI(all_tables()).install()
    fake.faults = [(401, {}, (FIX / "errors" / "401.json").read_text())]
    with pytest.raises(SourceError) as err:
        read_all(connector(), "change")
    assert err.value.status == 401 and "sysapproval_approver" in str(err.value)


@responses.activate
def test_an_instance_that_ignores_the_dot_walk_still_joins_correctly() -> None:
    fake = FakeTableAPI(all_tables()).install()
    fake.dot_walk = False  # every related row comes back, whatever its parent
    _, records = read_all(connector(page_size=2), "change")
    responses.reset()
    FakeTableAPI(all_tables()).install()
    _, by_id = read_all(connector(page_size=2, bulk_related=False), "change")
    assert approvals_by_key(records) == approvals_by_key(by_id)


@responses.activate
def test_an_instance_that_answers_the_dot_walk_with_no_rows_is_read_by_id() -> None:
    fake = FakeTableAPI(all_tables()).install()
    fake.dot_walk = "no_rows"  # returns_no_rows=true and the dot-walk cannot be evaluated
    conn = connector(page_size=2)
    batches, records = read_all(conn, "change")
    assert conn.related_path.startswith(
        "in-list (the dot-walked query on sysapproval_approver matched no row"
    )
    assert (
        batches[0].report.warnings[
            "sysapproval_approver: dot-walked query answered with no rows; read by id"
        ]
        == 1
    )
    responses.reset()
    FakeTableAPI(all_tables()).install()
    _, by_id = read_all(connector(page_size=2, bulk_related=False), "change")
    assert approvals_by_key(records) == approvals_by_key(by_id)
    assert any(approvals_by_key(records).values())


@responses.activate
def test_an_empty_bulk_answer_is_believed_when_the_dot_walk_works_or_the_table_is_empty() -> None:
    tables = all_tables()
    fake = FakeTableAPI(tables).install()
    conn = connector()
    read_all(conn, "change", since=datetime(2030, 1, 1, tzinfo=timezone.utc))  # nothing that recent
    assert conn.related_path == "bulk"
    probes = [q for q in fake.queries("sysapproval_approver") if "ISNOTEMPTY" in q]
    assert probes == [
        "sysapproval.sys_idISNOTEMPTY^ORDERBYsys_id"
    ]  # one probe row proves the dot-walk

    responses.reset()
    fake = FakeTableAPI({**tables, "sysapproval_approver": [], "task_ci": []}).install()
    fake.dot_walk = "no_rows"
    conn = connector()
    read_all(conn, "change")
    assert conn.related_path == "bulk"  # the table is empty: nothing was missed
    assert len(fake.queries("sysapproval_approver")) == 3  # the read and two probe rows


@responses.activate
def test_inaccessible_related_rows_in_the_bulk_stream_are_counted() -> None:
    tables = all_tables()
    tables["sysapproval_approver"][0]["_acl"] = "hide"
    tables["sysapproval_approver"][1]["_acl"] = "drop"
    FakeTableAPI(tables).install()
    batches, _ = read_all(connector(), "change")
    assert batches[0].report.warnings["sysapproval_approver: inaccessible rows skipped"] == 1


def test_walk_query_prefixes_every_condition_or_gives_up() -> None:
    from ticketlint.connectors.servicenow import walk_query

    assert walk_query("active=true^ORpriority<=2^assignment_group.name=Ops", "task") == (
        "task.active=true^ORtask.priority<=2^task.assignment_group.name=Ops"
    )
    assert walk_query("", "task") == ""
    assert walk_query("active=true^RLQUERYtask_ci.task,>=1^ENDRLQUERY", "task") is None
    assert walk_query("short_descriptionLIKEa^^b", "task") is None


@responses.activate
def test_a_scope_that_cannot_be_dot_walked_reads_that_process_by_id() -> None:
    fake = FakeTableAPI(all_tables()).install()
    conn = connector(page_size=2, query={"change": "category=x^RLQUERYtask_ci.task,>=1^ENDRLQUERY"})
    assert (
        conn._walked_scope(
            next(
                s
                for s in __import__(
                    "ticketlint.connectors.servicenow.related", fromlist=["RELATED"]
                ).RELATED
                if s.table == "sysapproval_approver"
            ),
            "change",
        )
        is None
    )
    fake.tables["change_request"] = []
    read_all(conn, "service_request")
    assert "INSTANCEOFchange_request" not in fake.queries("sysapproval_approver")[0]


def test_the_prefetched_index_costs_under_40_mb_per_100k_approvals() -> None:
    import tracemalloc

    from ticketlint.connectors.servicenow.related import RELATED
    from ticketlint.connectors.servicenow.related import RelatedIndex as _RelatedIndex

    spec = next(s for s in RELATED if s.table == "sysapproval_approver")
    users = [(f"{u:032x}", f"User {u}", f"user{u}@example.com", f"user{u}") for u in range(500)]
    rows = []
    for i in range(100_000):
        parent = f"{i // 3:032x}"
        u = users[i % 500]
        rows.append(
            {
                "sys_id": f"{i:032x}",
                "sysapproval": parent,
                "document_id": parent,
                "source_table": "change_request",
                "approver": u[0],
                "approver.name": u[1],
                "approver.email": u[2],
                "approver.user_name": u[3],
                "state": "approved",
                "sys_created_on": f"2026-02-01 10:{i % 60:02d}:{i % 59:02d}",
                "sys_updated_on": f"2026-02-0{1 + i % 9} 1{i % 10}:{i % 60:02d}:{i % 57:02d}",
                "sysapproval.sys_updated_on": f"2026-02-03 10:{(i // 3) % 60:02d}:00",
            }
        )
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    index = _RelatedIndex(spec, {"change": None}, datetime(2026, 2, 10, tzinfo=timezone.utc))
    for row in rows:
        index.add(row)
    del rows
    size = sum(
        s.size_diff
        for s in tracemalloc.take_snapshot().compare_to(before, "filename")
        if s.size_diff > 0
    )
    tracemalloc.stop()
    assert index.rows == 100_000
    print(f"related index: {size / 2**20:.1f} MB per 100k approvals")
    assert size < 40 * 2**20, f"{size / 2**20:.1f} MB"
    assert index.rows_for(f"{0:032x}")[0]["approver.name"] == "User 0"


@responses.activate
def test_doctor_reports_the_related_path() -> None:
    tables = {**all_tables(), "sys_choice": rows_of("sys_choice")}
    fake = FakeTableAPI(tables).install()
    report = connector().doctor()
    checks = {c.name: c for c in report.checks}
    assert checks["related rows"].ok and report.info["related_path"] == "bulk"
    assert any(
        q.startswith("sysapproval.sys_class_nameINSTANCEOF")
        for q in fake.queries("sysapproval_approver")
    )

    responses.reset()
    fake = FakeTableAPI(tables)

    def refuse_dot_walk(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        if "sys_class_nameINSTANCEOF" in requests.utils.unquote(request.url):
            return 403, {}, (FIX / "errors" / "403.json").read_text()
        return fake.callback(request)

    responses.add_callback(responses.GET, TABLE_URL, callback=refuse_dot_walk)
    report = connector().doctor()
    check = {c.name: c for c in report.checks}["related rows"]
    assert not check.ok and check.level == "warning" and "HTTP 403" in check.detail
    assert report.info["related_path"].startswith("in-list")

    responses.reset()
    fake = FakeTableAPI(tables).install()
    fake.dot_walk = "no_rows"  # an answer, but no row: the dot-walk silently fails
    report = connector().doctor()
    check = {c.name: c for c in report.checks}["related rows"]
    assert not check.ok and "matched no row although the table has rows" in check.detail


@responses.activate
def test_doctor_does_not_say_ok_for_related_rows_when_every_related_table_is_refused() -> None:
    """Issue 17: '[ok] related rows' was shown when every related table returned 404."""
    tables = {**all_tables(), "sys_choice": rows_of("sys_choice")}
    fake = FakeTableAPI(tables)

    def no_related(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        if "/table/sysapproval_approver" in request.url or "/table/task_ci" in request.url:
            return 404, {}, json.dumps({"error": {"message": "Invalid table"}})
        return fake.callback(request)

    responses.add_callback(responses.GET, TABLE_URL, callback=no_related)
    report = connector().doctor()
    check = {c.name: c for c in report.checks}["related rows"]
    assert not check.ok and check.level == "warning"
    assert "no related table is readable" in check.detail


@responses.activate
def test_an_approval_decided_alone_brings_its_change_into_the_incremental_read() -> None:
    """Deciding an approval moves only the approval row's time: the change is re-read by
    id (with all its approvals) although its own sys_updated_on is before the window."""
    tables = all_tables()
    changes = {r["sys_id"]: r for r in tables["change_request"]}
    approval = next(
        a
        for a in tables["sysapproval_approver"]
        if _ref(a["sysapproval"]) in changes
        and changes[_ref(a["sysapproval"])]["sys_updated_on"] < "2026-02-06 00:00:00"
    )
    parent = changes[_ref(approval["sysapproval"])]
    approval.update({"state": "rejected", "sys_updated_on": "2026-02-09 08:00:00"})
    fake = FakeTableAPI(tables).install()
    conn = connector(page_size=2)
    since = datetime(2026, 2, 6, 0, 10, tzinfo=timezone.utc)
    batches, records = read_all(conn, "change", since=since)
    got = next(r for r in records if r.key == parent["number"])
    assert "rejected" in [a.decision for a in got.approvals]
    assert f"sys_idIN{parent['sys_id']}" in "".join(fake.queries("change_request"))
    assert sum(b.requests for b in batches) == conn.request_count
    assert batches[-1].watermark == max(b.watermark for b in batches if b.watermark)


def _ref(value: Any) -> str:
    return value.get("value", "") if isinstance(value, dict) else value


@responses.activate
def test_the_next_page_is_requested_while_the_last_is_mapped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeTableAPI(all_tables()).install()
    conn = connector(page_size=2)
    seen_while_mapping: list[bool] = []
    original = StreamReader._map

    def slow_map(self: StreamReader, process: str, *args: Any) -> Any:
        if process == "incident" and not seen_while_mapping:
            # Page 1 is being mapped: page 2's request should arrive meanwhile.
            deadline = time.monotonic() + 10
            while len(fake.queries("incident")) < 2 and time.monotonic() < deadline:
                time.sleep(0.005)
            seen_while_mapping.append(len(fake.queries("incident")) >= 2)
        return original(self, process, *args)

    monkeypatch.setattr(StreamReader, "_map", slow_map)
    batches, records = read_all(conn, "incident")
    assert seen_while_mapping == [True]
    # ... and nothing else changes: the same rows, in order, every request counted once
    assert [r.key for r in records] == [r["number"] for r in sorted_rows(rows_of("incident"))]
    assert sum(b.requests for b in batches) == conn.request_count == len(fake.calls)


def test_a_401_seen_by_two_threads_refreshes_the_token_once() -> None:
    http = HttpClient("snow", BASE, requests.Session())
    bearer = BearerAuth()
    tokens = OAuthTokens(
        http, bearer, client_id="c", client_secret="s", user="u", password="p", clock=Clock()
    )
    grants: list[str] = []

    def grant(form: dict[str, str]) -> None:
        grants.append(form["grant_type"])
        bearer.token = f"token-{len(grants)}"

    tokens._grant = grant  # type: ignore[method-assign]
    tokens.ensure()
    refused = bearer.token
    threads = [threading.Thread(target=tokens.refresh, args=(refused,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert grants == ["password", "password"]  # no refresh token here: one new grant
    assert bearer.token == "token-2"
