"""Write-back request shapes and log semantics, with HTTP mocked by ``responses``."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import responses
from click.testing import CliRunner
from wb_helpers import (
    JIRA,
    NOW,
    SNOW,
    add_finding,
    add_record,
    body,
    log,
    make_config,
    server_info,
    set_state,
)

import ticketlint.plugin.writeback as wb
from ticketlint.plugin.writeback.render import EMPTY_DIGEST, MARKER_PREFIX, read_marker
from ticketlint.store.lifecycle import Change, Diff
from ticketlint.store.models import WritebackRow

ISSUE = f"{JIRA}/rest/api/3/issue/10042"
COMMENTS = f"{ISSUE}/comment"
SYS_ID = "9d385017c611228701d22104cc95c371"
PATCH_URL = f"{SNOW}/api/now/table/change_request/{SYS_ID}"
JOURNAL = f"{SNOW}/api/now/table/sys_journal_field"
UPDATED_AFTER = "2026-03-02T10:00:07.123+0100"
NOTE_RESULT = {"result": {"sys_id": SYS_ID, "sys_updated_on": "2026-03-02 09:00:07"}}


def result(*names: str, failed: tuple[str, ...] = ()) -> SimpleNamespace:
    sources = [SimpleNamespace(name=n, status="ok", diff=Diff()) for n in names]
    sources += [SimpleNamespace(name=n, status="failed", diff=Diff()) for n in failed]
    return SimpleNamespace(run_id=None, dry_run=False, sources=sources)


def jira_mocks(
    rsps: responses.RequestsMock, *, comments: list | None = None, deployment: str = "Cloud"
) -> None:
    rsps.get(f"{JIRA}/rest/api/2/serverInfo", json=server_info(deployment))
    rsps.get(
        re.compile(
            re.escape(COMMENTS.replace("/3/", f"/{3 if deployment == 'Cloud' else 2}/")) + r"\?.*"
        ),
        json={
            "startAt": 0,
            "maxResults": 100,
            "total": len(comments or []),
            "comments": comments or [],
        },
    )
    # The issue's update time, read once after our writes (Jira's shape: offset without colon).
    rsps.get(
        re.compile(
            re.escape(ISSUE.replace("/3/", f"/{3 if deployment == 'Cloud' else 2}/"))
            + r"\?fields=updated$"
        ),
        json={"id": "10042", "key": "CHG-7", "fields": {"updated": UPDATED_AFTER}},
    )


def comment_text(doc: dict) -> str:
    from ticketlint.mapping.adf import adf_to_text

    return adf_to_text(doc)


@pytest.fixture
def flagged(store):
    add_record(store, "jira", "CHG-7", "change", "10042")
    return add_finding(store, "jira", "CHG-7", "CHG005")


def test_first_write_adds_the_label_and_one_adf_comment(store, cfg, flagged):
    with responses.RequestsMock() as rsps:
        jira_mocks(rsps)
        rsps.put(ISSUE, status=204)
        rsps.post(COMMENTS, status=201, json={"id": "100200", "body": {}})
        summary = wb.write_for_keys(store, cfg, "jira", ["CHG-7"], run_id=None)
        puts = [c for c in rsps.calls if c.request.method == "PUT"]
        posts = [c for c in rsps.calls if c.request.method == "POST"]
        gets = [
            c.request.url
            for c in rsps.calls
            if c.request.method == "GET" and "fields=updated" in c.request.url
        ]
    assert summary.written == 2 and summary.failed == 0
    assert body(puts[0]) == {"update": {"labels": [{"add": "ticketlint"}]}}
    doc = body(posts[0])["body"]
    assert doc["type"] == "doc" and doc["version"] == 1
    text = comment_text(doc)
    assert "CHG005 Title of CHG005 (high): CHG-7 is missing something for CHG005" in text
    assert "How to fix: Fill in the field CHG005 needs." in text
    assert read_marker(text) is not None
    rows = log(store)
    assert [(r.action, r.state) for r in rows] == [("jira.label", "done"), ("jira.comment", "done")]
    assert rows[1].detail["comment_id"] == "100200" and rows[1].fingerprint != EMPTY_DIGEST
    # One read of the update time after both writes, noted on both rows (UTC).
    assert len(gets) == 1
    for row in rows:
        assert row.detail["updated_after"] == "2026-03-02T09:00:07.123000+00:00"
        assert row.detail["updated_before"] is None  # the test record has no update time


def test_rerun_writes_nothing_and_a_changed_set_edits_the_same_comment(store, cfg, flagged):
    with responses.RequestsMock() as rsps:
        jira_mocks(rsps)
        rsps.put(ISSUE, status=204)
        rsps.post(COMMENTS, status=201, json={"id": "100200"})
        wb.write_for_keys(store, cfg, "jira", ["CHG-7"])
    with responses.RequestsMock() as rsps:  # nothing registered: any request would fail
        again = wb.write_for_keys(store, cfg, "jira", ["CHG-7"])
    assert again.planned == 0 and again.requests == 0
    add_finding(store, "jira", "CHG-7", "CHG004", severity="critical")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        jira_mocks(rsps)
        rsps.put(f"{COMMENTS}/100200", json={"id": "100200"})
        changed = wb.write_for_keys(store, cfg, "jira", ["CHG-7"])
        # serverInfo, comment edit, the update time after it
        assert [c.request.method for c in rsps.calls] == ["GET", "PUT", "GET"]
        text = comment_text(body(rsps.calls[1])["body"])
    assert changed.written == 1
    assert text.index("CHG004") < text.index("CHG005")  # critical first


def test_all_resolved_removes_the_label_and_edits_the_comment(store, cfg, flagged):
    with responses.RequestsMock() as rsps:
        jira_mocks(rsps)
        rsps.put(ISSUE, status=204)
        rsps.post(COMMENTS, status=201, json={"id": "100200"})
        wb.write_for_keys(store, cfg, "jira", ["CHG-7"])
    set_state(store, flagged, "resolved")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        jira_mocks(rsps)
        rsps.put(ISSUE, status=204)
        rsps.put(f"{COMMENTS}/100200", json={"id": "100200"})
        summary = wb.write_for_keys(store, cfg, "jira", ["CHG-7"])
        label_call = next(c for c in rsps.calls if c.request.url == ISSUE)
        edit = next(c for c in rsps.calls if c.request.url.endswith("/comment/100200"))
    assert summary.written == 2
    assert body(label_call) == {"update": {"labels": [{"remove": "ticketlint"}]}}
    assert "every finding on CHG-7 is resolved" in comment_text(body(edit)["body"])
    with responses.RequestsMock():
        assert wb.write_for_keys(store, cfg, "jira", ["CHG-7"]).planned == 0


def test_waived_findings_are_not_open(store, cfg):
    add_record(store, "jira", "CHG-8", "change", "10043")
    add_finding(store, "jira", "CHG-8", "CHG005", state="waived")
    with responses.RequestsMock():
        assert wb.write_for_keys(store, cfg, "jira", ["CHG-8"]).planned == 0


def test_data_center_writes_v2_with_plain_text(store, cfg, flagged):
    with responses.RequestsMock() as rsps:
        jira_mocks(rsps, deployment="Server")
        rsps.put(f"{JIRA}/rest/api/2/issue/10042", status=204)
        rsps.post(f"{JIRA}/rest/api/2/issue/10042/comment", status=201, json={"id": "7"})
        wb.write_for_keys(store, cfg, "jira", ["CHG-7"])
        post = next(c for c in rsps.calls if c.request.method == "POST")
    text = body(post)["body"]
    assert isinstance(text, str) and "* CHG005 Title of CHG005" in text and MARKER_PREFIX in text


def test_an_existing_comment_of_ours_is_adopted_not_duplicated(store, cfg, flagged):
    ours = {
        "id": "555",
        "body": {
            "type": "doc",
            "version": 1,
            "content": [
                {
                    "type": "paragraph",
                    "content": [
                        {"type": "text", "text": f"old text [{MARKER_PREFIX} r4 0123456789ab]"}
                    ],
                }
            ],
        },
    }
    with responses.RequestsMock() as rsps:
        jira_mocks(rsps, comments=[{"id": "1", "body": "hello"}, ours])
        rsps.put(ISSUE, status=204)
        rsps.put(f"{COMMENTS}/555", json={"id": "555"})
        wb.write_for_keys(store, cfg, "jira", ["CHG-7"])
        edit = next(c for c in rsps.calls if c.request.url.endswith("/comment/555"))
        assert not any(c.request.method == "POST" for c in rsps.calls)
    assert read_marker(comment_text(body(edit)["body"]))[0] == 5  # the revision moves on


def test_ambiguous_post_failure_is_checked_before_posting_again(store, cfg, flagged, no_sleep):
    marker_comment = {"id": "777", "body": None}
    state = {"posted": False}

    def comments(request):
        listed = [marker_comment] if state["posted"] else []
        return (
            200,
            {},
            __import__("json").dumps(
                {"startAt": 0, "maxResults": 100, "total": len(listed), "comments": listed}
            ),
        )

    def post(request):  # the server stores the comment, then the gateway answers 502
        marker_comment["body"] = __import__("json").loads(request.body)["body"]
        state["posted"] = True
        return 502, {}, "<html>Bad Gateway</html>"

    with responses.RequestsMock() as rsps:
        rsps.get(f"{JIRA}/rest/api/2/serverInfo", json=server_info())
        rsps.add_callback("GET", re.compile(re.escape(COMMENTS) + r"\?.*"), callback=comments)
        rsps.put(ISSUE, status=204)
        rsps.add_callback("POST", COMMENTS, callback=post)
        summary = wb.write_for_keys(store, cfg, "jira", ["CHG-7"])
        assert sum(c.request.method == "POST" for c in rsps.calls) == 1
    assert summary.failed == 0
    assert log(store)[-1].detail["comment_id"] == "777"


def test_429_waits_for_retry_after_then_writes(store, cfg, flagged, no_sleep):
    with responses.RequestsMock() as rsps:
        jira_mocks(rsps)
        rsps.put(
            ISSUE, status=429, headers={"Retry-After": "7"}, json={"errorMessages": ["Rate limit"]}
        )
        rsps.put(ISSUE, status=204)
        rsps.post(COMMENTS, status=429, headers={"Retry-After": "3"}, json={})
        rsps.post(COMMENTS, status=201, json={"id": "1"})
        summary = wb.write_for_keys(store, cfg, "jira", ["CHG-7"])
    assert summary.written == 2 and 7.0 in no_sleep and 3.0 in no_sleep


def test_a_refused_write_is_logged_and_retried_next_time(store, cfg, flagged):
    with responses.RequestsMock() as rsps:
        jira_mocks(rsps)
        rsps.put(
            ISSUE,
            status=403,
            json={"errorMessages": ["You do not have permission to edit issues."]},
        )
        rsps.post(COMMENTS, status=201, json={"id": "9"})
        summary = wb.write_for_keys(store, cfg, "jira", ["CHG-7"])
    assert summary.failed == 1 and summary.written == 1
    failed = next(r for r in log(store) if r.action == "jira.label")
    assert failed.state == "failed" and "403" in failed.error and "permission" in failed.error
    assert "secret-jira-token" not in failed.error
    with responses.RequestsMock() as rsps:  # next run: the label is read first (it may have stuck)
        rsps.get(f"{JIRA}/rest/api/2/serverInfo", json=server_info())
        rsps.get(
            re.compile(re.escape(ISSUE) + r"\?fields=labels"),
            json={"id": "10042", "fields": {"labels": []}},
        )
        rsps.put(ISSUE, status=204)
        retry = wb.write_for_keys(store, cfg, "jira", ["CHG-7"])
    assert retry.written == 1
    states = [(r.action, r.state, r.attempts) for r in log(store) if r.action == "jira.label"]
    assert states == [("jira.label", "superseded", 1), ("jira.label", "done", 2)]


def test_a_pending_comment_found_later_is_verified_not_reposted(store, cfg, flagged):
    from ticketlint.plugin.writeback.plan import plan_source
    from ticketlint.plugin.writeback.render import adf, digest

    with store.session() as s:
        plans, _ = plan_source(s, cfg, cfg.source("jira"))
    comment_plan = next(p for p in plans if p.action == "jira.comment")
    # A crash after the POST: the pending row of a process that no longer exists.
    with store.session() as s, s.begin():
        s.add(
            WritebackRow(
                source="jira",
                key="CHG-7",
                action="jira.comment",
                state="pending",
                attempts=1,
                fingerprint=comment_plan.digest,
                created_at=NOW,
                detail={
                    **comment_plan.detail,
                    "owner": {"host": "elsewhere", "pid": 1, "lease_until": 0},
                },
            )
        )
        s.add(
            WritebackRow(
                source="jira",
                key="CHG-7",
                action="jira.label",
                state="done",
                attempts=1,
                fingerprint=comment_plan.digest,
                created_at=NOW,
                detail={"add": "ticketlint"},
            )
        )
    posted = {
        "id": "31337",
        "body": adf("CHG-7", list(comment_plan.findings), 1, comment_plan.digest),
    }
    assert digest(f.fingerprint for f in comment_plan.findings) == comment_plan.digest
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        jira_mocks(rsps, comments=[posted])
        summary = wb.write_for_keys(store, cfg, "jira", ["CHG-7"])
        # serverInfo, comments; nothing written, so no read of the update time
        assert [c.request.method for c in rsps.calls] == ["GET", "GET"]
    assert summary.confirmed == 1 and summary.written == 0
    assert log(store)[-1].detail["comment_id"] == "31337" and log(store)[-1].state == "done"


def test_a_live_writer_holds_the_ticket(store, cfg, flagged):
    import os
    import socket
    import time

    with store.session() as s, s.begin():
        s.add(
            WritebackRow(
                source="jira",
                key="CHG-7",
                action="jira.label",
                state="pending",
                attempts=1,
                fingerprint="x",
                created_at=NOW,
                detail={
                    "add": "ticketlint",
                    "owner": {
                        "host": socket.gethostname(),
                        "pid": os.getpid(),
                        "lease_until": time.time() + 60,
                    },
                },
            )
        )
    with responses.RequestsMock() as rsps:
        jira_mocks(rsps)
        rsps.post(COMMENTS, status=201, json={"id": "1"})
        summary = wb.write_for_keys(store, cfg, "jira", ["CHG-7"])
    assert summary.busy == 1 and summary.written == 1


def test_servicenow_work_note_is_a_patch_and_never_repeated(store, cfg):
    add_record(store, "snow", "CHG0030014", "change", SYS_ID)
    fp = add_finding(store, "snow", "CHG0030014", "CHG004")
    with responses.RequestsMock() as rsps:
        rsps.patch(PATCH_URL, json=NOTE_RESULT)
        summary = wb.write_for_keys(store, cfg, "snow", ["CHG0030014"])
        call = rsps.calls[0]
    assert (
        summary.written == 1 and summary.requests == 1
    )  # the PATCH response holds the update time
    assert (
        call.request.url.startswith(PATCH_URL)
        and "sysparm_fields=sys_id%2Csys_updated_on" in call.request.url
    )
    assert (
        "sysparm_display_value=false" in call.request.url
    )  # raw UTC times, as the connector reads
    assert log(store)[0].detail["updated_after"] == "2026-03-02T09:00:07+00:00"
    note = body(call)["work_notes"]
    assert "CHG004 Title of CHG004 (high)" in note and read_marker(note)[0] == 1
    with responses.RequestsMock():
        assert wb.write_for_keys(store, cfg, "snow", ["CHG0030014"]).planned == 0
    set_state(store, fp, "resolved")
    with responses.RequestsMock() as rsps:
        rsps.patch(PATCH_URL, json=NOTE_RESULT)
        wb.write_for_keys(store, cfg, "snow", ["CHG0030014"])
        resolved = body(rsps.calls[0])["work_notes"]
    assert "every finding on CHG0030014 is resolved" in resolved and read_marker(resolved)[0] == 2


def test_servicenow_ambiguous_failure_reads_the_journal(store, cfg):
    add_record(store, "snow", "CHG0030014", "change", SYS_ID)
    add_finding(store, "snow", "CHG0030014", "CHG004")
    seen: dict = {}

    def patch(request):
        seen["note"] = __import__("json").loads(request.body)["work_notes"]
        return 503, {}, '{"error": {"message": "busy"}, "status": "failure"}'

    def journal(request):
        rows = (
            [{"sys_id": "j1", "value": seen["note"], "sys_created_on": "2026-03-02 09:00:00"}]
            if seen
            else []
        )
        return 200, {}, __import__("json").dumps({"result": rows})

    with responses.RequestsMock() as rsps:
        rsps.add_callback("PATCH", PATCH_URL, callback=patch)
        rsps.add_callback("GET", re.compile(re.escape(JOURNAL) + r"\?.*"), callback=journal)
        rsps.get(
            re.compile(re.escape(PATCH_URL) + r"\?.*"), json=NOTE_RESULT
        )  # the time, read once
        summary = wb.write_for_keys(store, cfg, "snow", ["CHG0030014"])
        query = next(c for c in rsps.calls if c.request.method == "GET").request.url
        assert sum(c.request.method == "PATCH" for c in rsps.calls) == 1
        assert (
            sum(
                c.request.url.startswith(PATCH_URL) and c.request.method == "GET"
                for c in rsps.calls
            )
            == 1
        )
    assert summary.written == 1 and summary.failed == 0
    assert log(store)[-1].detail["updated_after"] == "2026-03-02T09:00:07+00:00"
    assert f"element_id%3D{SYS_ID}" in query and "valueLIKE" + MARKER_PREFIX in query.replace(
        "%5E", "^"
    )


def test_deleted_records_are_skipped(store, cfg):
    add_record(store, "jira", "CHG-9", "change", "10044", deleted=True)
    add_finding(store, "jira", "CHG-9", "CHG005")
    with responses.RequestsMock():
        summary = wb.write_for_keys(store, cfg, "jira", ["CHG-9"])
    assert summary.planned == 0 and summary.skipped == ["jira/CHG-9"]


def test_jira_assets_cis_are_never_written_to_the_issue_api(store, cfg):
    """A Jira CI is an Assets object: its object id must not reach /issue/{id}."""
    add_record(store, "jira", "SITE-89", "ci", "10042")
    add_finding(store, "jira", "SITE-89", "CFG001")
    with responses.RequestsMock():  # any request would fail: none is registered
        summary = wb.write_for_keys(store, cfg, "jira", ["SITE-89"])
    assert summary.planned == 0 and summary.skipped == ["jira/SITE-89"]


def test_after_sync_writes_only_for_sources_that_synced(store, cfg, flagged):
    add_record(store, "snow", "CHG0030014", "change", SYS_ID)
    add_finding(store, "snow", "CHG0030014", "CHG004")
    res = result("snow", failed=("jira",))
    res.run_id = None
    with responses.RequestsMock():
        assert wb.after_sync(store, cfg, res).written == 0  # no run id: a dry run
    with store.session() as s, s.begin():
        from ticketlint.store.models import RunRow

        s.add(RunRow(id=1, started_at=NOW, as_of=NOW, status="ok", options={}, sources={}))
    res.run_id = 1
    with responses.RequestsMock() as rsps:
        rsps.patch(PATCH_URL, json=NOTE_RESULT)
        summary = wb.after_sync(store, cfg, res)
    assert summary.written == 1 and {r.source for r in log(store)} == {"snow"}
    assert log(store)[0].run_id == 1


def test_disabled_writes_nothing(tmp_path, store, flagged):
    off = make_config(tmp_path, enabled=False)
    with responses.RequestsMock():
        assert wb.write_for_keys(store, off, "jira", ["CHG-7"]).disabled
        res = result("jira")
        res.run_id = 1
        assert wb.after_sync(store, off, res).planned == 0
        assert wb.preview(store, off, res) == []


def test_preview_lays_the_dry_run_diff_over_the_store(store, cfg, flagged):
    from ticketlint.rules.engine import Finding

    add_record(store, "jira", "CHG-8", "change", "10043")
    new = Finding(
        code="CHG011",
        name="chg011",
        title="Change type",
        severity="medium",
        clause="8.5.1",
        source="jira",
        key="CHG-8",
        process="change",
        url=None,
        message="no change type",
        assignee=None,
        group=None,
        fingerprint="f" * 16,
        remediation="Set the type.",
    )
    res = result("jira")
    res.sources[0].diff = Diff(
        [
            Change("f" * 16, "new", "open", new, None),
            Change(flagged, "resolved", "resolved", None, None),
        ]
    )
    with responses.RequestsMock():
        plans = wb.preview(store, cfg, res)
    assert sorted(p.describe() for p in plans) == [
        "jira/CHG-8: add comment (1 open: CHG011)",
        "jira/CHG-8: add label ticketlint",
    ]
    assert log(store) == []


def test_writeback_command_dry_run_and_apply(tmp_path, store, cfg, flagged, monkeypatch):
    path = tmp_path / "ticketlint.yaml"
    path.write_text(f"""
database: "{cfg.database}"
sources:
  - {{name: jira, type: jira, url: {JIRA}, auth: {{email: bot@example.com, token: t}}, max_attempts: 2}}
writeback: {{enabled: true}}
""")
    from ticketlint.cli import cli as main

    runner = CliRunner()
    dry = runner.invoke(main, ["--config", str(path), "writeback", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert (
        "would jira/CHG-7: add label ticketlint" in dry.output and "2 writes planned" in dry.output
    )
    # The comment it would post is shown, line by line (issue 17: --dry-run showed none).
    assert "    | ticketlint: CHG-7 has 1 open finding" in dry.output
    assert "    | * " in dry.output and "written by ticketlint" in dry.output
    with responses.RequestsMock() as rsps:
        jira_mocks(rsps)
        rsps.put(ISSUE, status=204)
        rsps.post(COMMENTS, status=500, json={})
        out = runner.invoke(main, ["--config", str(path), "writeback", "-f", "json"])
    assert out.exit_code == 2
    assert '"failed": 1' in out.output and '"written": 1' in out.output


def test_dry_run_comment_preview_makes_terminal_control_characters_visible():
    from ticketlint.plugin.writeback.commands import comment_preview
    from ticketlint.plugin.writeback.render import OpenFinding

    finding = OpenFinding(
        "f1", "CHG005", "change-backout", "high", "title \x1b[2J\x1b]0;pwned\x07 here", ""
    )
    planned = SimpleNamespace(key="CHG-1", findings=(finding,), detail={"rev": 2}, digest="d")
    text = comment_preview(planned)
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b[2J" in text and "CHG005" in text
