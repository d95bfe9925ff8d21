"""ticketlint.connectors.jira: paging, incremental JQL, history, approvals, Assets, doctor, errors.

Recorded-shape payloads live in tests/fixtures/jira_api/; large result sets are built from
the recorded change issue. Every scenario asserts the exact number of HTTP requests.
"""

from __future__ import annotations

import copy
import json
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
import responses

from ticketlint.config import JiraSource
from ticketlint.connectors import open_connector
from ticketlint.connectors.base import SourceError
from ticketlint.connectors.jira import JiraConnector, build_jql, incremental_clause
from ticketlint.connectors.jira.issues import IssueReader
from ticketlint.mapping.model import ChangeRecord, CIRecord, IncidentRecord
from ticketlint.sandbox import serve
from ticketlint.sandbox.jira_data import LINK_PIR, PIR

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "jira_api"
CLOUD = "https://example.atlassian.net"
DC = "https://jira.example.com"
SETUP_REQUESTS = 4  # serverInfo, field, status, issuetype
MYSELF = 1  # /myself, read only when JQL compares times (incremental, Data Center pages)


def fixture(name: str) -> Any:
    return json.loads((FIX / name).read_text())


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def source(url: str = CLOUD, **extra: Any) -> JiraSource:
    auth = (
        {"email": "ops@example.com", "token": "s3cret-token"}
        if url == CLOUD
        else {"pat": "pat-s3cret"}
    )
    return JiraSource.model_validate(
        {
            "name": "jira-prod",
            "type": "jira",
            "url": url,
            "auth": auth,
            "jql": "project in (OPS, CHG)",
            **extra,
        }
    )


def setup_calls(base: str = CLOUD, *, fields: list | None = None) -> None:
    cloud = base == CLOUD
    responses.get(
        f"{base}/rest/api/2/serverInfo",
        json=fixture("serverInfo_cloud.json" if cloud else "serverInfo_dc.json"),
    )
    responses.get(
        f"{base}/rest/api/2/myself",
        json=fixture("myself_cloud.json" if cloud else "myself_dc.json"),
    )
    responses.get(
        f"{base}/rest/api/2/field", json=fields if fields is not None else fixture("field.json")
    )
    responses.get(f"{base}/rest/api/2/status", json=fixture("status.json"))
    responses.get(f"{base}/rest/api/2/issuetype", json=fixture("issuetype.json"))
    # The removed endpoint answers 410 as on a real Cloud site; it must never be called.
    responses.get(f"{base}/rest/api/3/search", status=410, json=fixture("search_410.json"))
    responses.post(f"{base}/rest/api/3/search", status=410, json=fixture("search_410.json"))


def issue(
    n: int,
    *,
    itype: str = "Change",
    status: str = "Implementing",
    category: str = "indeterminate",
    updated: datetime | None = None,
    approvals: bool = True,
) -> dict[str, Any]:
    doc = copy.deepcopy(fixture("issue_change_cloud.json"))
    doc["id"] = str(20000 + n)
    doc["key"] = f"{'CHG' if itype == 'Change' else 'OPS'}-{n}"
    doc["self"] = f"{CLOUD}/rest/api/3/issue/{doc['id']}"
    f = doc["fields"]
    f["issuetype"]["name"] = itype
    f["status"]["name"] = status
    f["status"]["statusCategory"]["key"] = category
    if category != "done":
        f["resolution"] = None
        f["resolutiondate"] = None
    when = updated or datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc) + timedelta(seconds=n)
    f["updated"] = when.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    if approvals and itype == "Change":
        f["customfield_10030"] = [
            {
                "id": "1",
                "name": "Change manager approval",
                "finalDecision": "approved",
                "canAnswerApproval": False,
                "approvers": [
                    {
                        "approver": {
                            "accountId": "5b10a2844c20165700ede21h",
                            "displayName": "Cab Chair",
                        },
                        "approverDecision": "approved",
                    }
                ],
                "createdDate": {
                    "iso8601": "2026-03-01T09:00:00+0000",
                    "epochMillis": 1772355600000,
                },
                "completedDate": {
                    "iso8601": "2026-03-01T10:30:00+0000",
                    "epochMillis": 1772361000000,
                },
            }
        ]
    return doc


def cloud_pages(issues: list[dict], page: int) -> list[dict[str, Any]]:
    """Search responses as Cloud gives them: capped pages chained by nextPageToken."""
    chunks = [issues[i : i + page] for i in range(0, len(issues), page)] or [[]]
    out = []
    for i, chunk in enumerate(chunks):
        body: dict[str, Any] = {"issues": chunk, "isLast": i == len(chunks) - 1}
        if i < len(chunks) - 1:
            body["nextPageToken"] = f"CAEaAggD{i + 1}"
        out.append(body)
    return out


def search_bodies() -> list[dict[str, Any]]:
    return [
        json.loads(c.request.body)
        for c in responses.calls
        if c.request.url.endswith("/rest/api/3/search/jql")
    ]


def no_removed_search_calls() -> bool:
    return not any(
        c.request.url.split("?")[0].endswith("/rest/api/3/search") for c in responses.calls
    )


# -- incremental clause ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("since", "tz", "lookback", "expected"),
    [
        # negative offset, PST (-8) and across midnight backwards
        (
            datetime(2026, 1, 15, 3, 5, tzinfo=timezone.utc),
            "America/Los_Angeles",
            10,
            "2026/01/14 18:55",
        ),
        # PDT (-7) after the March switch
        (
            datetime(2026, 3, 9, 12, 0, tzinfo=timezone.utc),
            "America/Los_Angeles",
            10,
            "2026/03/09 04:50",
        ),
        # positive half-hour offset, across midnight forwards
        (datetime(2026, 3, 1, 18, 45, tzinfo=timezone.utc), "Asia/Kolkata", 10, "2026/03/02 00:05"),
        # Sydney in daylight time (+11) and across a month end
        (
            datetime(2026, 1, 31, 14, 30, 59, tzinfo=timezone.utc),
            "Australia/Sydney",
            0,
            "2026/02/01 01:30",
        ),
        # Berlin on the night clocks go forward (01:00 UTC = 03:00 CEST)
        (datetime(2026, 3, 29, 1, 5, tzinfo=timezone.utc), "Europe/Berlin", 10, "2026/03/29 01:55"),
        (
            datetime(2026, 3, 29, 1, 15, tzinfo=timezone.utc),
            "Europe/Berlin",
            10,
            "2026/03/29 03:05",
        ),
        # a naive value is UTC
        (datetime(2026, 3, 2, 0, 5), "UTC", 10, "2026/03/01 23:55"),
    ],
)
def test_incremental_clause_is_written_in_the_users_time_zone(
    since, tz, lookback, expected
) -> None:
    assert incremental_clause(since, tz, lookback) == f'updated >= "{expected}"'


def test_build_jql_ands_scope_types_clause_query_and_keys() -> None:
    jql = build_jql(
        scope="project in (OPS, CHG) OR labels = itsm",
        issue_types=["Change", 'Odd "type"'],
        since_clause='updated >= "2026/03/01 10:00"',
        query="priority = High",
        keys=["CHG-1", "CHG-2"],
    )
    assert jql == (
        '(project in (OPS, CHG) OR labels = itsm) AND issuetype in ("Change", "Odd \\"type\\"") AND '
        'updated >= "2026/03/01 10:00" AND (priority = High) AND key in ("CHG-1", "CHG-2") '
        "ORDER BY updated ASC, key ASC"
    )
    with pytest.raises(ValueError, match="ORDER BY"):
        build_jql(scope="project = OPS order by created", issue_types=[], since_clause=None)


# -- Cloud paging ------------------------------------------------------------------------


@responses.activate
def test_the_next_search_page_is_requested_while_the_last_is_mapped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup_calls()
    incidents = [issue(n, itype="Incident", status="In progress") for n in range(250)]
    for body in cloud_pages(incidents, 100):
        responses.post(f"{CLOUD}/rest/api/3/search/jql", json=body)
    searched_while_mapping: list[bool] = []
    original = IssueReader._flush

    def slow_flush(self: IssueReader, *args: Any, **kwargs: Any) -> Any:
        if not searched_while_mapping:  # page 1 is mapped: page 2 should be asked for meanwhile
            deadline = time.monotonic() + 10
            while len(search_bodies()) < 2 and time.monotonic() < deadline:
                time.sleep(0.005)
            searched_while_mapping.append(len(search_bodies()) >= 2)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(IssueReader, "_flush", slow_flush)
    conn = JiraConnector(source(), sleep=Sleeps())
    batches = list(conn.read("incident", since=datetime(2026, 3, 1, 18, 0, tzinfo=timezone.utc)))
    assert searched_while_mapping == [True]
    assert [r.key for b in batches for r in b.records] == [i["key"] for i in incidents]
    assert len(responses.calls) == SETUP_REQUESTS + MYSELF + 3 == conn.request_count


@pytest.mark.parametrize("incremental", [False, True])
@responses.activate
def test_the_api_user_is_read_only_when_jql_compares_times(incremental: bool) -> None:
    """A full Cloud read pages by token and names no time: /myself (the API user's time
    zone) costs a request only for an incremental read, and then once."""
    setup_calls()
    incidents = [issue(n, itype="Incident", status="In progress") for n in range(150)]
    for body in cloud_pages(incidents, 100):
        responses.post(f"{CLOUD}/rest/api/3/search/jql", json=body)
    conn = JiraConnector(source(), sleep=Sleeps())
    since = datetime(2026, 3, 1, 18, 0, tzinfo=timezone.utc) if incremental else None
    batches = list(conn.read("incident", since=since))
    assert sum(len(b.records) for b in batches) == 150
    myself = [c for c in responses.calls if c.request.url.endswith("/rest/api/2/myself")]
    assert len(myself) == (1 if incremental else 0)
    if incremental:  # 17:50 UTC (lookback 10 min) in the user's America/Los_Angeles
        assert 'updated >= "2026/03/01 09:50"' in search_bodies()[0]["jql"]


@responses.activate
def test_cloud_pages_by_next_page_token_with_server_capped_pages() -> None:
    setup_calls()
    incidents = [issue(n, itype="Incident", status="In progress") for n in range(250)]
    for body in cloud_pages(incidents, 100):  # asked 5000, the server gives 100
        responses.post(f"{CLOUD}/rest/api/3/search/jql", json=body)
    conn = JiraConnector(source(), sleep=Sleeps())
    since = datetime(2026, 3, 1, 18, 0, tzinfo=timezone.utc)
    batches = list(conn.read("incident", since=since))

    assert [len(b.records) for b in batches] == [100, 100, 50]
    assert all(isinstance(r, IncidentRecord) for b in batches for r in b.records)
    assert len(responses.calls) == SETUP_REQUESTS + MYSELF + 3 == conn.request_count
    assert no_removed_search_calls()
    bodies = search_bodies()
    assert [b.get("nextPageToken") for b in bodies] == [None, "CAEaAggD1", "CAEaAggD2"]
    assert all(b["maxResults"] == 5000 for b in bodies)
    fields = bodies[0]["fields"]
    assert "*all" not in fields and "customfield_10005" in fields and "updated" in fields
    # scope AND review-aware types AND the incremental clause in the user's zone (LA, -8)
    assert bodies[0]["jql"] == (
        '(project in (OPS, CHG)) AND issuetype in ("Incident", "Post-incident review") AND '
        'updated >= "2026/03/01 09:50" ORDER BY updated ASC, key ASC'
    )
    # watermark: the newest `updated` read, in UTC
    assert batches[-1].watermark == datetime(2026, 3, 2, 14, 4, 9, tzinfo=timezone.utc)
    # Setup requests are counted by the connector only. The next page is requested while
    # the last is mapped, so a batch may carry the request of the page after it: the
    # stream's total is exact, the split over its batches is not.
    assert sum(b.requests for b in batches) == 3
    assert len(batches) == 3


@responses.activate
def test_cloud_duplicates_across_pages_are_dropped_and_newer_versions_kept() -> None:
    setup_calls()
    a, b = (
        issue(1, itype="Incident", status="Open", category="new"),
        issue(2, itype="Incident", status="Open", category="new"),
    )
    b_newer = copy.deepcopy(b)
    b_newer["fields"]["updated"] = "2026-03-02T15:00:00.000+0000"
    b_newer["fields"]["summary"] = "changed while paging"
    responses.post(
        f"{CLOUD}/rest/api/3/search/jql",
        json={"issues": [a, b], "nextPageToken": "t1", "isLast": False},
    )
    responses.post(f"{CLOUD}/rest/api/3/search/jql", json={"issues": [b, b_newer], "isLast": True})
    conn = JiraConnector(source(), sleep=Sleeps())
    batches = list(conn.read("incident"))
    keys = [(r.key, r.title) for bt in batches for r in bt.records]
    assert keys == [
        ("OPS-1", "Upgrade payments database to PostgreSQL 16"),
        ("OPS-2", "Upgrade payments database to PostgreSQL 16"),
        ("OPS-2", "changed while paging"),
    ]
    assert batches[-1].watermark == datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
    assert "updated >=" not in search_bodies()[0]["jql"]  # no watermark: a full read
    assert len(responses.calls) == SETUP_REQUESTS + 2


# -- Data Center paging ------------------------------------------------------------------


def _dc_search(issues: list[dict], starts: list[int], edit_after_first: bool = False):  # type: ignore[no-untyped-def]
    """A DC search over ``issues`` (ordered by updated): honours the last ``updated >=
    "yyyy/MM/dd HH:mm"`` bound (Europe/Berlin) and ``startAt``, 100 a page; optionally an
    issue already read is edited after the first page (it moves to the end)."""

    def page(request):  # type: ignore[no-untyped-def]
        body = json.loads(request.body)
        starts.append(body["startAt"])
        if edit_after_first and len(starts) == 2:
            moved = issues.pop(10)
            moved["fields"]["updated"] = "2026-03-02T15:00:00.000+0000"
            issues.append(moved)
        bounds = re.findall(r'updated >= "([^"]+)"', body["jql"])
        rows = issues
        if len(bounds) > 1:  # the first is the incremental clause, the last the page bound
            low = datetime.strptime(bounds[-1], "%Y/%m/%d %H:%M").replace(
                tzinfo=ZoneInfo("Europe/Berlin")
            )
            rows = [
                i
                for i in issues
                if datetime.strptime(i["fields"]["updated"], "%Y-%m-%dT%H:%M:%S.%f%z") >= low
            ]
        chunk = rows[body["startAt"] : body["startAt"] + 100]  # DC caps at 100 here
        return (
            200,
            {},
            json.dumps(
                {"startAt": body["startAt"], "maxResults": 100, "total": len(rows), "issues": chunk}
            ),
        )

    return page


@responses.activate
def test_dc_pages_by_start_at_advancing_by_what_was_received() -> None:
    setup_calls(DC)
    issues = [issue(n, itype="Incident", status="In progress") for n in range(230)]
    for i in issues:
        i["changelog"] = {"startAt": 0, "maxResults": 0, "total": 0, "histories": []}
    starts: list[int] = []
    responses.add_callback(
        responses.POST, f"{DC}/rest/api/2/search", callback=_dc_search(issues, starts)
    )
    conn = JiraConnector(source(DC), sleep=Sleeps())
    batches = list(conn.read("incident", since=datetime(2026, 3, 1, 18, 0, tzinfo=timezone.utc)))
    # issues 0..99 end in minute 14:01 (60..99 of them): the next page asks updated >=
    # 14:01 from its 40th issue, then >= 14:03 from its 20th; advancing by what came back
    assert starts == [0, 40, 20]
    assert sum(len(b.records) for b in batches) == 230
    assert len(responses.calls) == SETUP_REQUESTS + MYSELF + 3
    sent = json.loads(responses.calls[SETUP_REQUESTS + MYSELF].request.body)
    assert sent["maxResults"] == 5000 and sent["expand"] == ["changelog"]
    assert (
        'updated >= "2026/03/01 18:50"' in sent["jql"]
    )  # 17:50 UTC in Europe/Berlin (+1 in winter)
    # PAT on Data Center: a bearer token, never basic
    assert responses.calls[SETUP_REQUESTS].request.headers["Authorization"] == "Bearer pat-s3cret"
    assert no_removed_search_calls()


@responses.activate
def test_dc_paging_skips_nothing_when_an_issue_read_is_edited_mid_read() -> None:
    """Plain offsets would skip issue 100 here: issue 10, already read, moves to the end."""
    setup_calls(DC)
    issues = [issue(n, itype="Incident", status="In progress") for n in range(230)]
    for i in issues:
        i["changelog"] = {"startAt": 0, "maxResults": 0, "total": 0, "histories": []}
    starts: list[int] = []
    responses.add_callback(
        responses.POST, f"{DC}/rest/api/2/search", callback=_dc_search(issues, starts, True)
    )
    conn = JiraConnector(source(DC), sleep=Sleeps())
    batches = list(conn.read("incident", since=datetime(2026, 3, 1, 18, 0, tzinfo=timezone.utc)))
    keys = {r.key for b in batches for r in b.records}
    assert len(keys) == 230


# -- history ---------------------------------------------------------------------------


def _changelog_callback(requested: list[list[str]]):
    def reply(request):
        body = json.loads(request.body)
        assert body["fieldIds"] == ["status"] and body["maxResults"] == 10000
        assert 1 <= len(body["issueIdsOrKeys"]) <= 1000
        requested.append(body["issueIdsOrKeys"])
        logs = [
            {
                "issueId": i,
                "changeHistories": [
                    {
                        "id": f"9{i}",
                        "created": 1772459400000,  # 2026-03-02 13:50 UTC
                        "author": {
                            "accountId": "5b10ac8d82e05b22cc7d4ef5",
                            "displayName": "Emma Richards",
                        },
                        "items": [
                            {
                                "field": "status",
                                "fieldId": "status",
                                "fieldtype": "jira",
                                "from": "10010",
                                "fromString": "Awaiting implementation",
                                "to": "10011",
                                "toString": "Implementing",
                            }
                        ],
                    }
                ],
            }
            for i in body["issueIdsOrKeys"]
        ]
        return 200, {}, json.dumps({"issueChangeLogs": logs})

    return reply


@responses.activate
def test_cloud_history_for_2500_changes_takes_three_bulkfetch_calls() -> None:
    setup_calls()
    changes = [issue(n) for n in range(2500)]
    for body in cloud_pages(changes, 300):  # 9 pages
        responses.post(f"{CLOUD}/rest/api/3/search/jql", json=body)
    requested: list[list[str]] = []
    responses.add_callback(
        responses.POST,
        f"{CLOUD}/rest/api/3/changelog/bulkfetch",
        callback=_changelog_callback(requested),
    )
    conn = JiraConnector(source(), sleep=Sleeps())
    batches = list(conn.read("change"))

    assert [len(r) for r in requested] == [1000, 1000, 500]
    assert len(responses.calls) == SETUP_REQUESTS + 9 + 3
    records = [r for b in batches for r in b.records]
    assert len(records) == 2500 and len({r.key for r in records}) == 2500
    assert all(isinstance(r, ChangeRecord) for r in records)
    first = records[0]
    assert first.transitions and first.transitions[0].to_state == "implement"
    assert first.actual_start == datetime(2026, 3, 2, 13, 50, tzinfo=timezone.utc)
    # batches are handed out in order, each watermark no later than any issue still to come
    assert [b.watermark for b in batches] == sorted(b.watermark for b in batches)
    assert batches[0].watermark == datetime(2026, 3, 2, 14, 0, 0, tzinfo=timezone.utc) + timedelta(
        seconds=999
    )
    # the embedded (truncated) changelog of a Cloud search is never asked for
    assert all("expand" not in b for b in search_bodies())


@responses.activate
def test_bulkfetch_follows_its_next_page_token() -> None:
    setup_calls()
    changes = [issue(n) for n in range(3)]
    responses.post(f"{CLOUD}/rest/api/3/search/jql", json={"issues": changes, "isLast": True})
    fixture("issue_change_cloud.json")
    responses.post(
        f"{CLOUD}/rest/api/3/changelog/bulkfetch",
        json={
            "issueChangeLogs": [
                {
                    "issueId": "20000",
                    "changeHistories": [
                        {
                            "id": "1",
                            "created": 1772450000000,
                            "items": [
                                {
                                    "field": "status",
                                    "fieldId": "status",
                                    "fieldtype": "jira",
                                    "fromString": "Open",
                                    "toString": "Planning",
                                }
                            ],
                        }
                    ],
                }
            ],
            "nextPageToken": "UxAQBFRF",
        },
    )
    responses.post(
        f"{CLOUD}/rest/api/3/changelog/bulkfetch",
        json={
            "issueChangeLogs": [
                {
                    "issueId": "20000",
                    "changeHistories": [
                        {
                            "id": "2",
                            "created": 1772459400000,
                            "items": [
                                {
                                    "field": "status",
                                    "fieldId": "status",
                                    "fieldtype": "jira",
                                    "fromString": "Planning",
                                    "toString": "Implementing",
                                }
                            ],
                        }
                    ],
                }
            ]
        },
    )
    conn = JiraConnector(source(), sleep=Sleeps())
    records = [r for b in conn.read("change") for r in b.records]
    second = json.loads(responses.calls[-1].request.body)
    assert second["nextPageToken"] == "UxAQBFRF" and second["issueIdsOrKeys"] == [
        "20000",
        "20001",
        "20002",
    ]
    assert [t.to_state for t in records[0].transitions] == ["assess", "implement"]
    assert len(responses.calls) == SETUP_REQUESTS + 1 + 2


# -- approvals ---------------------------------------------------------------------------


@responses.activate
def test_approvals_from_the_field_need_no_extra_request() -> None:
    setup_calls()
    responses.post(f"{CLOUD}/rest/api/3/search/jql", json={"issues": [issue(1)], "isLast": True})
    responses.post(f"{CLOUD}/rest/api/3/changelog/bulkfetch", json={"issueChangeLogs": []})
    conn = JiraConnector(source(), sleep=Sleeps())
    [record] = [r for b in conn.read("change") for r in b.records]
    assert [a.decision for a in record.approvals] == ["approved"]
    assert not any("servicedeskapi" in c.request.url for c in responses.calls)
    assert len(responses.calls) == SETUP_REQUESTS + 2


@responses.activate
def test_approvals_from_servicedeskapi_when_the_field_is_absent() -> None:
    fields = [f for f in fixture("field.json") if f["name"] != "Approvals"]
    setup_calls(fields=fields)
    changes = [issue(1, approvals=False), issue(2, approvals=False)]
    incident = issue(3, itype="Incident", status="Open", category="new")
    responses.post(
        f"{CLOUD}/rest/api/3/search/jql", json={"issues": [*changes, incident], "isLast": True}
    )
    responses.post(f"{CLOUD}/rest/api/3/changelog/bulkfetch", json={"issueChangeLogs": []})
    first_page = copy.deepcopy(fixture("approval.json"))
    first_page.update({"isLastPage": False, "limit": 1, "size": 1})
    second_page = copy.deepcopy(fixture("approval.json"))
    second_page["values"][0]["finalDecision"] = "pending"
    second_page["values"][0]["approvers"][0]["approverDecision"] = "pending"
    second_page["values"][0]["completedDate"] = None
    responses.get(f"{CLOUD}/rest/servicedeskapi/request/CHG-1/approval", json=first_page)
    responses.get(f"{CLOUD}/rest/servicedeskapi/request/CHG-1/approval", json=second_page)
    responses.get(
        f"{CLOUD}/rest/servicedeskapi/request/CHG-2/approval",
        json={"size": 0, "start": 0, "limit": 100, "isLastPage": True, "values": []},
    )
    conn = JiraConnector(source(), sleep=Sleeps())
    records = {r.key: r for b in conn.read("change") for r in b.records}
    assert [a.decision for a in records["CHG-1"].approvals] == ["approved", "pending"]
    assert records["CHG-1"].approvals[0].decided_at == datetime(
        2026, 3, 1, 10, 30, tzinfo=timezone.utc
    )
    assert records["CHG-2"].approvals == []
    approval_calls = [c.request.url for c in responses.calls if "servicedeskapi" in c.request.url]
    assert len(approval_calls) == 3 and "start=1" in approval_calls[1]  # paged by what came back
    assert len(responses.calls) == SETUP_REQUESTS + 1 + 1 + 3


# -- retries and errors through the connector ------------------------------------------


@responses.activate
def test_search_retries_a_429_then_a_non_json_page_and_counts_every_request() -> None:
    setup_calls()
    url = f"{CLOUD}/rest/api/3/search/jql"
    responses.post(
        url,
        status=429,
        headers={"Retry-After": "3"},
        json={"errorMessages": ["Rate limit exceeded"]},
    )
    responses.post(url, body="<html><body>Gateway</body></html>", content_type="text/html")
    responses.post(
        url,
        json={
            "issues": [issue(1, itype="Incident", status="Open", category="new")],
            "isLast": True,
        },
    )
    sleeps = Sleeps()
    conn = JiraConnector(source(), sleep=sleeps)
    records = [r for b in conn.read("incident") for r in b.records]
    assert len(records) == 1 and sleeps[0] == 3.0 and len(sleeps) == 2
    assert len(responses.calls) == SETUP_REQUESTS + 3 == conn.request_count


@responses.activate
def test_bad_jql_fails_the_source_instead_of_giving_zero_records() -> None:
    setup_calls()
    responses.post(
        f"{CLOUD}/rest/api/3/search/jql",
        status=400,
        json={
            "errorMessages": [
                "Field 'Rollback plan' does not exist or you do not have permission to view it."
            ],
            "errors": {},
            "warningMessages": [],
        },
    )
    conn = JiraConnector(source(), sleep=Sleeps())
    with pytest.raises(SourceError) as err:
        list(conn.read("change", query='"Rollback plan" is EMPTY'))
    assert err.value.status == 400 and "Rollback plan" in str(err.value)
    assert err.value.url == f"{CLOUD}/rest/api/3/search/jql"
    assert len(responses.calls) == SETUP_REQUESTS + 1


@responses.activate
def test_wrong_credentials_say_so_and_are_not_retried() -> None:
    responses.get(f"{CLOUD}/rest/api/2/serverInfo", json=fixture("serverInfo_cloud.json"))
    responses.get(
        f"{CLOUD}/rest/api/2/field",
        status=401,
        json={
            "errorMessages": [
                "You are not authenticated. Authentication required to perform this operation."
            ]
        },
    )
    conn = JiraConnector(source(), sleep=Sleeps())
    with pytest.raises(SourceError) as err:
        list(conn.read("incident"))
    assert err.value.status == 401 and "credentials" in (err.value.hint or "")
    assert "s3cret" not in str(err.value)
    assert len(responses.calls) == 2


@responses.activate
def test_wrong_base_path_is_a_404_with_a_hint() -> None:
    responses.get(f"{DC}/rest/api/2/serverInfo", status=404, body="<html>Not Found</html>")
    conn = JiraConnector(source(DC), sleep=Sleeps())
    with pytest.raises(SourceError) as err:
        conn.instance()
    assert err.value.status == 404 and "base path" in (err.value.hint or "")
    assert len(responses.calls) == 1


@responses.activate
def test_keys_and_query_narrow_the_search() -> None:
    setup_calls()
    responses.post(f"{CLOUD}/rest/api/3/search/jql", json={"issues": [issue(7)], "isLast": True})
    responses.post(f"{CLOUD}/rest/api/3/changelog/bulkfetch", json={"issueChangeLogs": []})
    conn = JiraConnector(source(), sleep=Sleeps())
    [record] = [
        r for b in conn.read("change", keys=["CHG-7"], query="labels = audit") for r in b.records
    ]
    assert record.key == "CHG-7"
    assert search_bodies()[0]["jql"] == (
        '(project in (OPS, CHG)) AND issuetype in ("Change", "Post-incident review") '
        'AND (labels = audit) AND key in ("CHG-7") ORDER BY updated ASC, key ASC'
    )


# -- streams, factory, Assets, doctor ----------------------------------------------------


def test_streams_follow_configured_issue_types_and_assets() -> None:
    conn = open_connector(source(), sleep=Sleeps())
    assert isinstance(conn, JiraConnector)
    assert conn.streams == ["incident", "service_request", "problem", "change"]
    conn2 = open_connector(
        source(issue_types={"release": ["Release"]}, assets={"workspace_id": "ws-1"})
    )
    assert conn2.streams == ["incident", "service_request", "problem", "change", "release", "ci"]
    with pytest.raises(SourceError, match="no stream"):
        list(conn.read("ci"))


@responses.activate
def test_assets_aql_gives_ci_records() -> None:
    setup_calls()
    url = f"{CLOUD}/gateway/api/jsm/assets/workspace/g2778e1d/v1/object/aql"
    responses.post(url, json=fixture("assets_aql.json"))
    conn = JiraConnector(source(assets={"workspace_id": "g2778e1d"}), sleep=Sleeps())
    [batch] = list(conn.read("ci"))
    assert all(isinstance(r, CIRecord) for r in batch.records)
    db, ftp = batch.records
    assert (db.key, db.status, db.ci_class, db.owner.name) == (
        "ITSM-88",
        "installed",
        "Server",
        "Emma Richards",
    )
    assert (ftp.key, ftp.status, ftp.owner) == ("ITSM-91", "retired", None)
    assert json.loads(responses.calls[-1].request.body) == {"qlQuery": "objectType IS NOT EMPTY"}
    assert "startAt=0" in responses.calls[-1].request.url
    assert len(responses.calls) == SETUP_REQUESTS + 1


@responses.activate
def test_doctor_reports_auth_time_zone_fields_statuses_and_unevaluable_rules() -> None:
    setup_calls()
    conn = JiraConnector(
        source(status_map={"change": {"Awaiting CAB": "authorize"}}), sleep=Sleeps()
    )
    report = conn.doctor()
    assert report.ok
    checks = {c.name: c for c in report.checks}
    assert "Ops Integration" in checks["auth"].detail
    assert (
        report.info["deployment"] == "Cloud" and report.info["time_zone"] == "America/Los_Angeles"
    )
    assert report.info["fields"]["change.test_plan"] == {
        "name": "Test plan",
        "id": "customfield_10042",
    }
    assert "Backout plan" in report.not_evaluated["CHG005"]
    assert "CHG006" not in report.not_evaluated
    assert "CHG012" in report.not_evaluated and "CFG001" in report.not_evaluated
    assert report.info["unmapped_statuses"] == ["Triage"]  # "Awaiting CAB" is mapped by config
    assert len(responses.calls) == 4
    assert checks["field types"].ok and "schema types" in checks["field types"].detail


@responses.activate
def test_doctor_lists_date_fields_whose_schema_is_not_a_date() -> None:
    setup_calls()
    # the CAB date mapped to a text field ("Test plan", schema string): read by its values
    report = JiraConnector(source(fields={"change.cab_date": "Test plan"}), sleep=Sleeps()).doctor()
    check = next(c for c in report.checks if c.name == "field types")
    assert not check.ok and check.level == "warning" and report.ok
    assert "change.cab_date: field 'Test plan' (customfield_10042)" in check.detail
    assert "schema type 'string'" in check.detail


@responses.activate
def test_doctor_on_bad_credentials_fails_the_auth_check() -> None:
    responses.get(f"{DC}/rest/api/2/serverInfo", json=fixture("serverInfo_dc.json"))
    responses.get(
        f"{DC}/rest/api/2/myself",
        status=401,
        json={"errorMessages": ["Client must be authenticated."]},
    )
    report = JiraConnector(source(DC), sleep=Sleeps()).doctor()
    assert not report.ok
    auth = next(c for c in report.checks if c.name == "auth")
    assert not auth.ok and "HTTP 401" in auth.detail and "pat-s3cret" not in auth.detail
    assert report.info["deployment"] == "Server"


def test_open_connector_builds_the_servicenow_connector_lazily() -> None:
    from ticketlint.config import ServiceNowSource

    sleeps = Sleeps()
    snow = ServiceNowSource.model_validate(
        {
            "name": "snow-prod",
            "type": "servicenow",
            "url": "https://example.service-now.com",
            "auth": {"user": "svc_ticketlint", "password": "pw"},
        }
    )
    conn = open_connector(snow, sleep=sleeps)
    assert type(conn).__name__ == "ServiceNowConnector" and conn.name == "snow-prod"


@responses.activate
def test_cloud_auth_is_basic_email_and_token_and_tls_verify_is_passed() -> None:
    import base64

    setup_calls()
    conn = JiraConnector(source(verify=False), sleep=Sleeps())
    conn.instance()
    expected = "Basic " + base64.b64encode(b"ops@example.com:s3cret-token").decode()
    assert all(c.request.headers["Authorization"] == expected for c in responses.calls)
    assert all(c.request.req_kwargs["verify"] is False for c in responses.calls)
    assert all(c.request.req_kwargs["timeout"] == 30.0 for c in responses.calls)
    assert len(responses.calls) == SETUP_REQUESTS


@responses.activate
def test_dc_server_ignoring_start_at_fails_instead_of_looping() -> None:
    setup_calls(DC)
    page = {
        "startAt": 0,
        "maxResults": 100,
        "issues": [issue(1, itype="Incident", status="Open", category="new")],
    }
    responses.post(f"{DC}/rest/api/2/search", json=page)
    conn = JiraConnector(source(DC), sleep=Sleeps())
    with pytest.raises(SourceError, match="startAt=0 when asked for 1"):
        list(conn.read("incident"))
    assert len(responses.calls) == SETUP_REQUESTS + MYSELF + 2


# -- reviews: records completed by a review issue that changed alone (settled reading 10) -----

PIR_TYPE = "Post-incident review"
SEARCH = f"{CLOUD}/rest/api/3/search/jql"


def review_issue(
    n: int, *, done: bool, updated: datetime, resolved: str | None = None
) -> dict[str, Any]:
    doc = issue(
        n,
        itype=PIR_TYPE,
        status="Done" if done else "In progress",
        category="done" if done else "indeterminate",
        updated=updated,
    )
    doc["fields"]["summary"] = f"PIR: outage {n}"
    if done:
        doc["fields"]["resolutiondate"] = resolved or doc["fields"]["updated"]
    return doc


def link(a: dict[str, Any], b: dict[str, Any]) -> None:
    """A "Post-Incident Review" link, review ``a`` reviews ``b``, as both issues show it
    (the other side's current status embedded, as Jira Cloud search returns it)."""
    ltype = {
        "id": "10300",
        "name": "Post-Incident Review",
        "inward": "is reviewed by",
        "outward": "reviews",
        "self": f"{CLOUD}/rest/api/3/issueLinkType/10300",
    }

    def brief(o: dict[str, Any]) -> dict[str, Any]:
        f = o["fields"]
        return {
            "id": o["id"],
            "key": o["key"],
            "self": o["self"],
            "fields": {
                "summary": f["summary"],
                "status": copy.deepcopy(f["status"]),
                "priority": f["priority"],
                "issuetype": copy.deepcopy(f["issuetype"]),
            },
        }

    lid = str(10400 + len(a["fields"]["issuelinks"]) + 7 * int(b["id"]) % 1000)
    a["fields"]["issuelinks"].append(
        {
            "id": lid,
            "self": f"{CLOUD}/rest/api/3/issueLink/{lid}",
            "type": ltype,
            "outwardIssue": brief(b),
        }
    )
    b["fields"]["issuelinks"].append(
        {
            "id": lid,
            "self": f"{CLOUD}/rest/api/3/issueLink/{lid}",
            "type": ltype,
            "inwardIssue": brief(a),
        }
    )


def key_search(issues: list[dict[str, Any]], bodies: list[dict[str, Any]]):
    """A /search/jql that answers ``key in (...)`` (and the issue type list) like Jira."""

    def reply(request):
        body = json.loads(request.body)
        bodies.append(body)
        keys = re.search(r"key in \(([^)]*)\)", body["jql"])
        types = re.search(r"issuetype in \(([^)]*)\)", body["jql"])
        wanted = set(re.findall(r'"([^"]+)"', keys.group(1))) if keys else None
        typed = set(re.findall(r'"([^"]+)"', types.group(1))) if types else None
        hits = [
            i
            for i in issues
            if (wanted is None or i["key"] in wanted)
            and (typed is None or i["fields"]["issuetype"]["name"] in typed)
        ]
        return 200, {}, json.dumps({"issues": hits, "isLast": True})

    return reply


@pytest.mark.parametrize(
    ("done", "completed", "at"),
    [
        (True, True, datetime(2026, 3, 2, 15, 30, tzinfo=timezone.utc)),  # moved to Done
        (False, False, None),  # reopened: the completion is taken back
    ],
)
@responses.activate
def test_incremental_read_rereads_the_incident_whose_review_alone_changed(
    done, completed, at
) -> None:
    setup_calls()
    inc = issue(
        4,
        itype="Incident",
        status="Resolved",
        category="done",
        updated=datetime(2026, 2, 20, 9, 0, tzinfo=timezone.utc),
    )  # untouched for days
    pir = review_issue(
        900,
        done=done,
        updated=datetime(2026, 3, 2, 15, 30, 12, tzinfo=timezone.utc),
        resolved="2026-03-02T16:30:00.000+0100",
    )
    link(pir, inc)
    responses.post(SEARCH, json={"issues": [pir], "isLast": True})  # the incremental search
    responses.post(SEARCH, json={"issues": [inc, pir], "isLast": True})  # the re-read by key
    conn = JiraConnector(source(), sleep=Sleeps())
    batches = list(conn.read("incident", since=datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)))

    [record] = [r for b in batches for r in b.records]
    assert isinstance(record, IncidentRecord) and record.key == "OPS-4"
    assert record.review is not None and record.review.completed is completed
    assert record.review.at == at
    first, second = search_bodies()
    assert 'updated >= "2026/03/02 06:50"' in first["jql"]
    assert second["jql"] == (
        '(project in (OPS, CHG)) AND issuetype in ("Incident", "Post-incident review") AND '
        'key in ("OPS-4", "OPS-900") ORDER BY updated ASC, key ASC'
    )
    assert second["fields"] == first["fields"] and "nextPageToken" not in second
    # the watermark stays the main search's: the re-read incident is older than the window
    assert [b.watermark for b in batches] == [
        datetime(2026, 3, 2, 15, 30, 12, tzinfo=timezone.utc)
    ] * 2
    assert [b.requests for b in batches] == [1, 1]
    assert len(responses.calls) == SETUP_REQUESTS + MYSELF + 2 == conn.request_count


@responses.activate
def test_reread_change_gets_its_history_and_other_streams_types_are_not_asked_for() -> None:
    setup_calls()
    chg = issue(
        8,
        status="Closed",
        category="done",
        updated=datetime(2026, 2, 25, 9, 0, tzinfo=timezone.utc),
    )
    inc = issue(
        5,
        itype="Incident",
        status="Resolved",
        category="done",
        updated=datetime(2026, 2, 25, 8, 0, tzinfo=timezone.utc),
    )
    pir = review_issue(901, done=True, updated=datetime(2026, 3, 2, 15, 30, tzinfo=timezone.utc))
    link(pir, chg)
    link(pir, inc)
    bodies: list[dict[str, Any]] = []
    responses.post(SEARCH, json={"issues": [pir], "isLast": True})
    responses.add_callback(responses.POST, SEARCH, callback=key_search([inc, chg, pir], bodies))
    requested: list[list[str]] = []
    responses.add_callback(
        responses.POST,
        f"{CLOUD}/rest/api/3/changelog/bulkfetch",
        callback=_changelog_callback(requested),
    )
    conn = JiraConnector(source(), sleep=Sleeps())
    batches = list(conn.read("change", since=datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)))

    [record] = [r for b in batches for r in b.records]
    assert isinstance(record, ChangeRecord) and record.key == "CHG-8"
    assert record.review.completed and record.review.at == datetime(
        2026, 3, 2, 15, 30, tzinfo=timezone.utc
    )
    assert record.transitions and record.approvals  # history and approvals as usual
    # OPS-5's link names it an Incident: the incident stream's to re-read, not asked for here
    assert 'key in ("CHG-8", "OPS-901")' in bodies[0]["jql"]
    assert 'issuetype in ("Change", "Post-incident review")' in bodies[0]["jql"]
    assert requested == [["20008"]]  # the review issue needs no history
    assert len(responses.calls) == SETUP_REQUESTS + MYSELF + 2 + 1


@responses.activate
def test_full_read_with_every_review_target_in_it_makes_no_extra_query() -> None:
    setup_calls()
    inc = issue(4, itype="Incident", status="Resolved", category="done")
    pir = review_issue(900, done=True, updated=datetime(2026, 3, 2, 15, 30, tzinfo=timezone.utc))
    link(pir, inc)
    responses.post(SEARCH, json={"issues": [inc, pir], "isLast": True})
    conn = JiraConnector(source(), sleep=Sleeps())
    [record] = [r for b in conn.read("incident") for r in b.records]
    assert record.key == "OPS-4" and record.review.completed
    assert record.review.at == datetime(2026, 3, 2, 15, 30, tzinfo=timezone.utc)
    assert len(responses.calls) == SETUP_REQUESTS + 1


@responses.activate
def test_caller_keys_never_trigger_a_reread() -> None:
    setup_calls()
    inc = issue(4, itype="Incident", status="Resolved", category="done")
    pir = review_issue(900, done=True, updated=datetime(2026, 3, 2, 15, 30, tzinfo=timezone.utc))
    link(pir, inc)
    responses.post(SEARCH, json={"issues": [pir], "isLast": True})
    conn = JiraConnector(source(), sleep=Sleeps())
    assert [r for b in conn.read("incident", keys=["OPS-900"]) for r in b.records] == []
    assert len(responses.calls) == SETUP_REQUESTS + 1


@responses.activate
def test_targets_are_reread_100_a_query_and_one_outside_the_scope_is_fine() -> None:
    setup_calls()
    old = datetime(2026, 2, 1, 9, 0, tzinfo=timezone.utc)
    incidents = [
        issue(
            n,
            itype="Incident",
            status="Resolved",
            category="done",
            updated=old + timedelta(minutes=n),
        )
        for n in range(1, 151)
    ]
    reviews = [
        review_issue(
            1000 + n,
            done=True,
            updated=datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc) + timedelta(seconds=n),
        )
        for n in range(1, 151)
    ]
    for inc, pir in zip(incidents, reviews, strict=False):
        link(pir, inc)
    outside = issue(
        7777, itype="Incident", status="Resolved", category="done"
    )  # another project: not found
    link(reviews[0], outside)
    responses.post(SEARCH, json={"issues": reviews, "isLast": True})
    bodies: list[dict[str, Any]] = []
    responses.add_callback(responses.POST, SEARCH, callback=key_search(incidents + reviews, bodies))
    conn = JiraConnector(source(), sleep=Sleeps())
    batches = list(conn.read("incident", since=datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc)))

    records = [r for b in batches for r in b.records]
    assert sorted(r.key for r in records) == sorted(i["key"] for i in incidents)
    assert all(r.review.completed and r.review.at is not None for r in records)
    assert [len(re.findall(r'"OPS-\d+"', b["jql"].split("key in")[1])) for b in bodies] == [
        199,
        102,
    ]
    # 100 targets a query (OPS-1, OPS-7777, OPS-2..99, then OPS-100..150), each with its review
    assert '"OPS-7777"' in bodies[0]["jql"]
    assert len(responses.calls) == SETUP_REQUESTS + MYSELF + 1 + 2
    assert not any(b.report.errors for b in batches)


def test_sandbox_review_moved_alone_reaches_its_incident_on_an_incremental_read() -> None:
    """Over HTTP against the sandbox (its JQL, links and /_sandbox/mutate): a review issue
    reopened, then moved back to Done, and nothing else touched."""
    server = serve(seed=3, size=150, anchor=1772460000000).start()
    try:
        data = server.data.jira
        target = next(t for t in data.pir_target if data._plan(t).sc.process == "incident")
        [pir] = [other for ltype, _, other in data.links[target] if ltype is LINK_PIR]
        pir_key, inc_key = data.key(pir), data.key(target)
        assert data._plan(pir).type == PIR
        c = server.credentials
        src = JiraSource.model_validate(
            {
                "name": "jira-sandbox",
                "type": "jira",
                "url": server.url,
                "auth": {"email": c.jira_email, "token": c.jira_token},
                "jql": "project in (OPS, CHG)",
                "lookback_minutes": 0,
            }
        )

        def move(status: str, category_done: bool) -> datetime:
            fields = {
                "status": data.status(status),
                "resolution": {"name": "Done"} if category_done else None,
                "resolutiondate": "2026-03-02T16:30:00.000+0000" if category_done else None,
            }
            r = requests.post(
                f"{server.url}/_sandbox/mutate", json={"key": pir_key, "fields": fields}, timeout=10
            )
            r.raise_for_status()
            return datetime.strptime(r.json()["updated"], "%Y-%m-%dT%H:%M:%S.%f%z")

        def incident_after(updated: datetime):
            conn = JiraConnector(src, sleep=Sleeps())
            try:
                records = {
                    r.key: r for b in conn.read("incident", since=updated) for r in b.records
                }
            finally:
                conn.close()
            return records[inc_key]

        reopened = incident_after(move("In progress", False))
        assert reopened.review.completed is False
        done = incident_after(move("Done", True))
        assert done.review.completed is True
        assert done.review.at == datetime(2026, 3, 2, 16, 30, tzinfo=timezone.utc)
    finally:
        server.stop()
