"""The sandbox's realistic changes (``POST /_sandbox/mutate`` with ``op`` / ``random``):
what each changes, what moves the parent's update time and what does not."""

from __future__ import annotations

from collections import Counter

import pytest
import requests

from ticketlint.sandbox import serve
from ticketlint.sandbox.mutations import JIRA_OPS, SERVICENOW_OPS

SNOW = ("svc_ticketlint", "sandbox-snow-password")


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    s = serve(seed=7, size=300).start()
    yield s
    s.stop()


def mutate(server, body):  # type: ignore[no-untyped-def]
    return requests.post(f"{server.url}/_sandbox/mutate", json=body, timeout=10)


def test_an_approval_decided_alone_does_not_touch_its_change(server) -> None:
    sn = server.data.servicenow
    k = next(i for i, a in enumerate(sn.approvals) if a[1] == "change_request")
    table, idx = sn.approvals[k][1], sn.approvals[k][2]
    parent_before = sn.row(table, idx)["sys_updated_on"]
    r = mutate(server, {"op": "approval", "index": k, "state": "rejected"})
    assert r.status_code == 200
    change = r.json()["changes"][0]
    assert change["kind"] == "approval" and change["after"]["state"] == "rejected"
    assert change["after"]["sys_updated_on"] > change["before"]["sys_updated_on"]
    assert sn.row(table, idx)["sys_updated_on"] == parent_before
    newer = mutate(server, {"op": "field_set", "table": table, "index": idx, "fields": {"x": "1"}})
    assert newer.json()["changes"][0]["after"]["sys_updated_on"] > change["after"]["sys_updated_on"]


def test_deleted_and_moved_records_leave_reads(server) -> None:
    sn, jira = server.data.servicenow, server.data.jira
    sys_id = sn.sys_ids["change_request"][2]
    mutate(server, {"op": "delete", "table": "change_request", "index": 2})
    got = requests.get(f"{server.url}/api/now/table/change_request/{sys_id}", auth=SNOW, timeout=10)
    assert got.status_code == 404
    approvals = requests.get(
        f"{server.url}/api/now/table/sysapproval_approver",
        params={"sysparm_query": f"sysapproval={sys_id}"},
        auth=SNOW,
        timeout=10,
    ).json()["result"]
    assert approvals == []  # the platform's cascade
    moved = mutate(server, {"op": "move", "table": "incident", "index": 1}).json()["changes"][0]
    assert moved["after"]["sys_domain"] == "acme"
    key = jira.key(3)
    mutate(server, {"key": key, "op": "move"})
    assert jira.project(3) == "ARCH"
    mutate(server, {"key": jira.key(4), "op": "delete"})
    assert jira.index_of(jira.key(4)) is None


def test_jira_transition_reopen_and_comments(server) -> None:
    jira = server.data.jira
    key = jira.key(6)
    done = mutate(server, {"key": key, "op": "transition", "status": "Closed"}).json()
    assert done["changes"][0]["after"]["fields"]["resolution"]["name"] == "Done"
    back = mutate(server, {"key": key, "op": "reopen"}).json()["changes"][0]["after"]
    assert back["fields"]["resolution"] is None and back["fields"]["resolutiondate"] is None
    before = jira.updated[6]
    mutate(server, {"key": key, "op": "comment_delete"})
    assert jira.updated[6] > before
    assert mutate(server, {"key": key, "op": "teleport"}).status_code == 404


def test_random_batches_are_seeded_and_cover_every_kind(server) -> None:
    kinds: Counter[str] = Counter()
    for system, ops in (("jira", JIRA_OPS), ("servicenow", SERVICENOW_OPS)):
        for seed in range(1, 7):
            r = mutate(server, {"random": {"seed": seed, "count": 12, "system": system}})
            assert r.status_code == 200
            kinds.update(f"{system}:{c['kind']}" for c in r.json()["changes"])
        missing = {op for op in ops if not kinds[f"{system}:{op}"]} - {"approval"}
        assert not missing, missing
    again = serve(seed=7, size=300).start()
    try:
        one = mutate(again, {"random": {"seed": 1, "count": 5, "system": "jira"}}).json()
        two = mutate(again, {"random": {"seed": 1, "count": 5, "system": "jira"}}).json()
        assert [c["record"] for c in one["changes"]] != [] and one != two  # state moved on
    finally:
        again.stop()


def test_data_center_mode_pages_by_start_at() -> None:
    s = serve(seed=2, size=200, jira_deployment="Server").start()
    try:
        c = s.credentials
        info = requests.get(f"{s.url}/rest/api/2/serverInfo", timeout=10).json()
        assert info["deploymentType"] == "Server"
        body = {"jql": "project in (OPS, CHG) ORDER BY updated ASC", "startAt": 5, "maxResults": 7}
        page = requests.post(
            f"{s.url}/rest/api/2/search",
            json={**body, "expand": ["changelog"]},
            headers={"Authorization": f"Bearer {c.jira_pat}"},
            timeout=10,
        ).json()
        assert page["startAt"] == 5 and len(page["issues"]) == 7 and page["total"] > 12
        assert "histories" in page["issues"][0]["changelog"]
    finally:
        s.stop()
