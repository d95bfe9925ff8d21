"""The sandbox over real HTTP on 127.0.0.1: paging, headers, errors, auth, faults, writes."""

from __future__ import annotations

import re
import socket

import pytest
import requests

from ticketlint.sandbox import serve
from ticketlint.sandbox.faults import FaultPlan, FaultSpecError

ANCHOR = 1_790_000_000_000
JIRA = ("ticketlint@example.com", "sandbox-jira-token")
SNOW = ("svc_ticketlint", "sandbox-snow-password")
CONNECTOR_JQL = "project in (OPS, CHG) ORDER BY updated ASC, key ASC"


@pytest.fixture(scope="module")
def server():
    s = serve(seed=5, size=800, anchor=ANCHOR).start()
    yield s
    s.stop()


def search(server, **body):
    return requests.post(f"{server.url}/rest/api/3/search/jql", json=body, auth=JIRA, timeout=10)


def test_answers_are_sent_without_waiting_for_the_clients_ack(monkeypatch):
    """Every accepted connection has TCP_NODELAY (as web servers set it): without it a
    small answer's body, written after its headers, waited for the client's delayed ACK
    (40 ms on Linux), on every request of a kept-alive connection."""
    seen: list[int] = []
    s = serve(seed=5, size=50, anchor=ANCHOR)
    handler = s.httpd.RequestHandlerClass
    setup = handler.setup

    def noted(self):  # the server's own socket, as the handler set it up
        setup(self)
        seen.append(self.connection.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    monkeypatch.setattr(handler, "setup", noted)
    s.start()
    try:
        with requests.Session() as session:
            for path in ("/rest/api/2/serverInfo", "/rest/api/2/field"):
                assert session.get(f"{s.url}{path}", auth=JIRA, timeout=10).ok
    finally:
        s.stop()
    assert seen and all(seen)  # one kept-alive connection (or more), each with NODELAY


def test_removed_search_is_410(server):
    for method in ("get", "post"):
        r = getattr(requests, method)(f"{server.url}/rest/api/3/search", auth=JIRA, timeout=10)
        assert r.status_code == 410
        assert "search/jql" in r.json()["errorMessages"][0]


def test_jira_auth_errors(server):
    r = requests.get(
        f"{server.url}/rest/api/3/myself", auth=("ticketlint@example.com", "wrong"), timeout=10
    )
    assert r.status_code == 401
    assert r.json() == {
        "errorMessages": ["Client must be authenticated to access this resource."],
        "errors": {},
    }
    ok = requests.get(
        f"{server.url}/rest/api/3/myself",
        headers={"Authorization": "Bearer sandbox-jira-pat"},
        timeout=10,
    )
    assert ok.status_code == 200 and ok.json()["timeZone"]


def test_search_pages_with_next_page_token_and_caps(server):
    seen, pages, token = [], 0, None
    while True:
        body = {"jql": CONNECTOR_JQL, "maxResults": 1000, "fields": ["summary", "updated"]}
        if token:
            body["nextPageToken"] = token
        data = search(server, **body).json()
        assert len(data["issues"]) <= 100  # cap for a field list
        seen += [i["key"] for i in data["issues"]]
        pages += 1
        if data["isLast"]:
            assert "nextPageToken" not in data
            break
        token = data["nextPageToken"]
    assert len(seen) == len(set(seen)) == len(server.data.jira)
    assert pages == -(-len(seen) // 100)
    ids = search(server, jql=CONNECTOR_JQL, maxResults=10000, fields=["id"]).json()
    assert (
        len(ids["issues"]) == min(5000, len(server.data.jira)) and "fields" not in ids["issues"][0]
    )


def test_search_names_schema_and_truncated_changelog(server):
    fid = server.data.jira.field_ids["Backout plan"]
    data = search(
        server,
        jql=CONNECTOR_JQL,
        maxResults=100,
        fields=["summary", fid],
        expand="names,schema,changelog",
    ).json()
    assert data["names"][fid] == "Backout plan"
    assert data["schema"][fid]["custom"].endswith(":textarea")
    assert set(data["issues"][0]["fields"]) <= {"summary", fid}
    logs = [i["changelog"] for i in data["issues"]]
    assert all(len(c["histories"]) <= 40 and c["total"] >= len(c["histories"]) for c in logs)


def test_search_expands_transitions_as_jira_does(server):
    # Singer's tap-jira reads issues with expand=changelog,transitions and needs the list
    data = search(
        server, jql=CONNECTOR_JQL, maxResults=50, fields=["status"], expand="transitions"
    ).json()
    for issue in data["issues"]:
        moves = issue["transitions"]
        assert moves, issue["key"]
        current = issue["fields"]["status"]["name"]
        assert all(m["to"]["name"] != current for m in moves)
        assert all(
            m["to"]["statusCategory"]["key"] in ("new", "indeterminate", "done") for m in moves
        )
        assert {"id", "name", "to", "hasScreen", "isGlobal"} <= set(moves[0])
    plain = search(server, jql=CONNECTOR_JQL, maxResults=5, fields=["status"]).json()
    assert all("transitions" not in i for i in plain["issues"])


def test_unbounded_and_bad_jql_are_400(server):
    assert search(server, jql="ORDER BY key").status_code == 400
    r = search(server, jql="project = OPS OR project = CHG")
    assert r.status_code == 400 and r.json()["errorMessages"]


def test_custom_fields_only_through_the_field_list(server):
    fields = requests.get(f"{server.url}/rest/api/2/field", auth=JIRA, timeout=10).json()
    by_name = {f["name"]: f for f in fields}
    assert (
        by_name["Approvals"]["schema"]["custom"]
        == "com.atlassian.servicedesk.approvals-plugin:sd-approvals"
    )
    assert by_name["Change type"]["id"] == server.data.jira.field_ids["Change type"]


def test_bulkfetch_returns_full_history(server):
    jira = server.data.jira
    long_one = next(i for i in range(len(jira)) if len(jira.changelog(i)) > 40)
    r = requests.post(
        f"{server.url}/rest/api/3/changelog/bulkfetch",
        auth=JIRA,
        timeout=10,
        json={"issueIdsOrKeys": [jira.key(long_one)]},
    ).json()
    assert len(r["issueChangeLogs"][0]["changeHistories"]) == len(jira.changelog(long_one))
    status_only = requests.post(
        f"{server.url}/rest/api/3/changelog/bulkfetch",
        auth=JIRA,
        timeout=10,
        json={"issueIdsOrKeys": [jira.key(long_one)], "fieldIds": ["status"]},
    ).json()
    items = (
        [it for h in status_only["issueChangeLogs"][0]["changeHistories"] for it in h["items"]]
        if status_only["issueChangeLogs"]
        else []
    )
    assert all(it["fieldId"] == "status" for it in items)


def test_jira_labels_and_comments_are_written(server):
    key = server.data.jira.key(2)
    r = requests.put(
        f"{server.url}/rest/api/3/issue/{key}",
        auth=JIRA,
        timeout=10,
        json={"update": {"labels": [{"add": "ticketlint"}]}},
    )
    assert r.status_code == 204
    adf = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "missing backout plan"}]}
        ],
    }
    c = requests.post(
        f"{server.url}/rest/api/3/issue/{key}/comment", auth=JIRA, timeout=10, json={"body": adf}
    )
    assert c.status_code == 201
    cid = c.json()["id"]
    requests.put(
        f"{server.url}/rest/api/3/issue/{key}/comment/{cid}",
        auth=JIRA,
        timeout=10,
        json={
            "body": {
                **adf,
                "content": [{"type": "paragraph", "content": [{"type": "text", "text": "fixed"}]}],
            }
        },
    )
    issue = requests.get(
        f"{server.url}/rest/api/3/issue/{key}?fields=labels,comment", auth=JIRA, timeout=10
    ).json()
    assert "ticketlint" in issue["fields"]["labels"]
    comments = requests.get(
        f"{server.url}/rest/api/3/issue/{key}/comment", auth=JIRA, timeout=10
    ).json()["comments"]
    assert comments[-1]["body"]["content"][0]["content"][0]["text"] == "fixed"


def snow(server, table, **params):
    return requests.get(f"{server.url}/api/now/table/{table}", params=params, auth=SNOW, timeout=10)


def test_servicenow_auth_error_shape(server):
    r = requests.get(
        f"{server.url}/api/now/table/incident", auth=("svc_ticketlint", "nope"), timeout=10
    )
    assert r.status_code == 401
    assert r.json() == {
        "error": {
            "message": "User Not Authenticated",
            "detail": "Required to provide Auth information",
        },
        "status": "failure",
    }


def test_oauth_password_and_refresh_grants(server):
    form = {
        "grant_type": "password",
        "client_id": "ticketlint",
        "client_secret": "sandbox-oauth-secret",
        "username": "svc_ticketlint",
        "password": "sandbox-snow-password",
    }
    tok = requests.post(f"{server.url}/oauth_token.do", data=form, timeout=10).json()
    again = requests.post(
        f"{server.url}/oauth_token.do",
        timeout=10,
        data={
            "grant_type": "refresh_token",
            "client_id": "ticketlint",
            "client_secret": "sandbox-oauth-secret",
            "refresh_token": tok["refresh_token"],
        },
    ).json()
    r = requests.get(
        f"{server.url}/api/now/table/incident?sysparm_limit=1",
        timeout=10,
        headers={"Authorization": f"Bearer {again['access_token']}"},
    )
    assert r.status_code == 200 and len(r.json()["result"]) == 1
    bad = requests.post(f"{server.url}/oauth_token.do", data={**form, "password": "x"}, timeout=10)
    assert bad.status_code == 401


def test_offset_paging_link_header_and_count(server):
    total = server.data.servicenow.counts["incident"]
    r = snow(server, "incident", sysparm_limit=50, sysparm_offset=50, sysparm_fields="number")
    assert r.headers["X-Total-Count"] == str(total)
    rels = {rel: url for url, rel in re.findall(r'<([^>]+)>;rel="(\w+)"', r.headers["Link"])}
    assert set(rels) == {"first", "prev", "next", "last"}
    assert "sysparm_offset=100" in rels["next"] and "sysparm_offset=0" in rels["prev"]
    no_count = snow(server, "incident", sysparm_limit=50, sysparm_no_count="true")
    assert "X-Total-Count" not in no_count.headers


def test_keyset_paging_reads_every_row_once(server):
    seen, last = [], None
    while True:
        q = "ORDERBYsys_updated_on^ORDERBYsys_id"
        if last:
            q = f"sys_updated_on>{last[0]}^NQsys_updated_on={last[0]}^sys_id>{last[1]}^" + q
        rows = snow(
            server,
            "problem",
            sysparm_query=q,
            sysparm_limit=7,
            sysparm_no_count="true",
            sysparm_fields="sys_id,sys_updated_on",
            sysparm_exclude_reference_link="true",
        ).json()["result"]
        if not rows:
            break
        visible = [r for r in rows if r]
        seen += [r["sys_id"] for r in visible]
        last = (visible[-1]["sys_updated_on"], visible[-1]["sys_id"]) if visible else last
        if not visible:
            break
    hidden = sum(
        server.data.servicenow.hidden("problem", i)
        for i in range(server.data.servicenow.counts["problem"])
    )
    assert len(seen) == len(set(seen)) == server.data.servicenow.counts["problem"] - hidden


def test_reference_links_display_values_and_dot_walk(server):
    row = snow(
        server, "incident", sysparm_limit=1, sysparm_fields="caller_id,caller_id.name,state"
    ).json()["result"][0]
    assert (
        set(row["caller_id"]) == {"link", "value"}
        and "/api/now/table/sys_user/" in row["caller_id"]["link"]
    )
    assert row["caller_id.name"]
    plain = snow(
        server,
        "incident",
        sysparm_limit=1,
        sysparm_fields="caller_id",
        sysparm_exclude_reference_link="true",
    ).json()["result"][0]
    assert isinstance(plain["caller_id"], str)
    both = snow(
        server, "incident", sysparm_limit=1, sysparm_fields="state", sysparm_display_value="all"
    ).json()["result"][0]
    assert set(both["state"]) == {"display_value", "value"}


def test_approvals_in_bulk_by_task(server):
    sn = server.data.servicenow
    tasks = list(sn.by_task)[:5]
    rows = snow(
        server,
        "sysapproval_approver",
        sysparm_query=f"sysapprovalIN{','.join(tasks)}",
        sysparm_exclude_reference_link="true",
    ).json()["result"]
    assert {r["sysapproval"] for r in rows} == set(tasks)


def test_work_note_write_is_observable(server):
    sn = server.data.servicenow
    sys_id = next(sn.sys_ids["incident"][i] for i in range(50) if not sn.hidden("incident", i))
    r = requests.patch(
        f"{server.url}/api/now/table/incident/{sys_id}",
        json={"work_notes": "ticketlint: INC001"},
        auth=SNOW,
        timeout=10,
    )
    assert r.status_code == 200
    assert (
        sn.journal[-1]["element_id"] == sys_id and sn.journal[-1]["value"] == "ticketlint: INC001"
    )
    notes = snow(server, "sys_journal_field", sysparm_query=f"element_id={sys_id}").json()["result"]
    assert notes and notes[-1]["value"] == "ticketlint: INC001"


def test_admin_mutate_and_stats(server):
    key = server.data.jira.key(4)
    before = server.data.jira.issue(4)["fields"]["updated"]
    r = requests.post(
        f"{server.url}/_sandbox/mutate",
        json={"key": key, "fields": {"Backout plan": None}},
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["updated"] != before
    fid = server.data.jira.field_ids["Backout plan"]
    assert server.data.jira.issue(4)["fields"][fid] is None
    stats = requests.get(f"{server.url}/_sandbox/stats", timeout=10).json()
    assert stats["requests"]["POST /rest/api/{v}/search/jql"] >= 1


def test_faults_are_deterministic_and_parsed_strictly():
    a = FaultPlan.parse("429=0.1,500=0.1,reset=0.05,mutate=0.05", seed=3)
    b = FaultPlan.parse("429=0.1,500=0.1,reset=0.05,mutate=0.05", seed=3)
    seq_a = [a.next()[1] for _ in range(500)]
    assert seq_a == [b.next()[1] for _ in range(500)]
    counts = {k: seq_a.count(k) for k in ("429", "500", "reset", "mutate")}
    assert 25 <= counts["429"] <= 80 and 25 <= counts["500"] <= 80
    assert seq_a != [
        FaultPlan.parse("429=0.1,500=0.1,reset=0.05,mutate=0.05", seed=4).fault_for(n)
        for n in range(1, 501)
    ]
    for bad in ("429=2", "teapot=0.1", "429", "429=0.6,500=0.6"):
        with pytest.raises(FaultSpecError):
            FaultPlan.parse(bad)


def test_faulted_requests_have_no_side_effect():
    s = serve(seed=9, size=200, anchor=ANCHOR, faults="500=1").start()
    try:
        key = s.data.jira.key(1)
        r = requests.put(
            f"{s.url}/rest/api/3/issue/{key}",
            auth=JIRA,
            timeout=10,
            json={"update": {"labels": [{"add": "ticketlint"}]}},
        )
        assert r.status_code == 500
        assert "ticketlint" not in s.data.jira.issue(1)["fields"]["labels"]
    finally:
        s.stop()


def test_429_reset_and_retry_after():
    s = serve(seed=9, size=200, anchor=ANCHOR, faults="429=0.5,reset=0.5,retry_after=2").start()
    try:
        outcomes = []
        for _ in range(12):
            try:
                r = requests.get(f"{s.url}/rest/api/3/serverInfo", timeout=10)
                outcomes.append((r.status_code, r.headers.get("Retry-After")))
            except requests.ConnectionError:
                outcomes.append(("reset", None))
        assert ("reset", None) in outcomes
        assert (429, "2") in outcomes and (429, None) in outcomes
    finally:
        s.stop()


def _bulk_read(server, query_parts, page=50):
    """Keyset-page the approvals of ``query_parts`` (^NQ parts) as the connector does."""
    seen, last, requests_ = [], None, 0
    while True:
        parts = [p + (f"^sys_id>{last}" if last else "") for p in query_parts]
        r = snow(
            server,
            "sysapproval_approver",
            sysparm_query="^NQ".join(parts) + "^ORDERBYsys_id",
            sysparm_limit=page,
            sysparm_exclude_reference_link="true",
            sysparm_fields="sys_id,sysapproval,sysapproval.sys_updated_on",
        )
        requests_ += 1
        rows = r.json()["result"]
        if not rows:
            return seen, requests_
        seen += rows
        last = rows[-1]["sys_id"]


def test_approvals_by_dot_walked_conditions_on_their_task(server):
    sn = server.data.servicenow
    since = sorted(sn.updated["change_request"])[len(sn.updated["change_request"]) // 2]
    from ticketlint.sandbox.data import utc_text

    rows, _ = _bulk_read(
        server,
        [
            f"sysapproval.sys_class_nameINSTANCEOFchange_request^sysapproval.sys_updated_on>={utc_text(since)}",
            "sysapproval.sys_class_nameINSTANCEOFsc_req_item",
        ],
    )
    expected = {
        a[0]
        for a in sn.approvals
        if a[1] == "sc_req_item"
        or (
            a[1] == "change_request"
            and sn.updated[a[1]][a[2]] // 1000 * 1000 >= since // 1000 * 1000
        )
    }
    assert [r["sys_id"] for r in rows] == sorted(expected)  # each once, in sys_id order
    for r in rows:  # the dot-walked column is the task's own update time
        table, idx = sn.lookup(r["sysapproval"])
        assert r["sysapproval.sys_updated_on"] == utc_text(sn.updated[table][idx])
    everything, _ = _bulk_read(server, ["sysapproval.sys_class_nameINSTANCEOFtask"])
    assert len(everything) == len(sn.approvals)
    none, _ = _bulk_read(server, ["sysapproval.sys_class_nameINSTANCEOFincident"])
    assert none == []


def test_keyset_pages_start_at_the_key_instead_of_scanning_from_the_top(server, monkeypatch):
    sn = server.data.servicenow
    calls = []
    real = server.servicenow._getter

    def counting(table, idx):
        calls.append(idx)
        return real(table, idx)

    monkeypatch.setattr(server.servicenow, "_getter", counting)
    ids = sorted(a[0] for a in sn.approvals)
    key = ids[-3]
    rows = snow(
        server,
        "sysapproval_approver",
        sysparm_query=f"sys_id>{key}^ORDERBYsys_id",
        sysparm_limit=10,
        sysparm_fields="sys_id",
    ).json()["result"]
    assert [r["sys_id"] for r in rows] == ids[-2:]
    assert len(calls) <= 3  # bisected: only the rows after the key are looked at
    calls.clear()
    newest = sorted(sn.updated["incident"])[-5]
    from ticketlint.sandbox.data import utc_text

    rows = snow(
        server,
        "incident",
        sysparm_query=f"sys_updated_on>={utc_text(newest)}^ORDERBYsys_updated_on^ORDERBYsys_id",
        sysparm_limit=100,
        sysparm_fields="sys_id",
        sysparm_no_count="true",
    ).json()["result"]
    assert len(rows) >= 5 and len(calls) <= len(rows) + 2


@pytest.mark.parametrize(
    "params, internal_type",
    [
        ({}, {"link": "{url}/api/now/table/sys_glide_object?name=glide_date_time"}),
        ({"sysparm_exclude_reference_link": "true"}, "glide_date_time"),
        (
            {"sysparm_display_value": "all", "sysparm_exclude_reference_link": "true"},
            {"display_value": "Date Time", "value": "glide_date_time"},
        ),
    ],
)
def test_sys_dictionary_answers_encoded_queries_with_reference_shaped_types(
    server, params, internal_type
):
    """``internal_type`` references sys_glide_object by name: ``{link, value}`` unless the
    link is excluded; cab_date holds a time on the plain sandbox (``glide_date_time``)."""
    r = requests.get(
        f"{server.url}/api/now/table/sys_dictionary",
        params={
            "sysparm_query": "nameINchange_request,task^elementINcab_date,close_notes^ORDERBYsys_id",
            "sysparm_fields": "sys_id,name,element,internal_type,max_length",
            **params,
        },
        auth=SNOW,
        timeout=10,
    )
    assert r.status_code == 200
    rows = r.json()["result"]

    def name(v):
        return v["value"] if isinstance(v, dict) else v

    assert sorted((name(x["name"]), name(x["element"])) for x in rows) == [
        ("change_request", "cab_date"),
        ("task", "close_notes"),
    ]
    cab = next(x for x in rows if name(x["element"]) == "cab_date")
    if isinstance(internal_type, dict) and "link" in internal_type:
        internal_type = {
            "link": internal_type["link"].format(url=server.url),
            "value": "glide_date_time",
        }
    assert cab["internal_type"] == internal_type
    assert [name(x["sys_id"]) for x in rows] == sorted(name(x["sys_id"]) for x in rows)


def test_real_shapes_declare_cab_date_a_glide_date():
    with serve(seed=5, size=200, anchor=ANCHOR, real_shapes=True) as s:
        r = requests.get(
            f"{s.url}/api/now/table/sys_dictionary",
            params={
                "sysparm_query": "name=change_request^elementSTARTSWITHcab_date",
                "sysparm_exclude_reference_link": "true",
            },
            auth=SNOW,
            timeout=10,
        )
        types = {x["element"]: x["internal_type"] for x in r.json()["result"]}
        assert types == {"cab_date": "glide_date", "cab_date_time": "glide_date_time"}
        change = requests.get(
            f"{s.url}/api/now/table/change_request",
            params={"sysparm_query": "cab_dateISNOTEMPTY", "sysparm_limit": "1"},
            auth=SNOW,
            timeout=10,
        ).json()["result"][0]
        assert len(change["cab_date"]) == 10 and len(change["cab_date_time"]) == 19


def test_a_column_read_without_building_the_row_is_the_rows_own(server):
    """Dot-walked columns (``task.sys_updated_on`` on every related row) are read through
    ``cheap`` where it knows the column: the value must be the built row's, also for a
    row a PATCH wrote to and one whose update time moved."""
    sn = server.data.servicenow
    approval = next(a for a in sn.approvals if a[1] == "change_request")
    sn.write(
        "change_request",
        approval[2],
        {"sys_updated_on": "2001-01-01 00:00:00", "short_description": "x"},
    )
    sn.bump("change_request", approval[2] + 1)
    tables = ["incident", "change_request", "problem", "sc_req_item", "cmdb_ci"]
    tables += ["sysapproval_approver", "task_ci"]
    for table in tables:
        for idx in [*range(min(8, sn.table_size(table))), approval[2], approval[2] + 1]:
            row = sn.row(table, idx)
            for name in [*row, "no_such_column"]:
                assert sn.field(table, idx, name) == row.get(name), (table, idx, name)
    walked = snow(
        server,
        "sysapproval_approver",
        sysparm_query=f"sys_id={approval[0]}",
        sysparm_fields="sysapproval.sys_updated_on,sysapproval.short_description",
    ).json()["result"]
    assert walked == [
        {"sysapproval.sys_updated_on": "2001-01-01 00:00:00", "sysapproval.short_description": "x"}
    ]
