"""Write-back end to end: the real ``ticketlint sync`` CLI against the sandbox over HTTP.

After a sync every flagged Jira ticket carries the label and exactly one comment of ours,
every flagged ServiceNow record one work note; after a fix and a second sync the label of
the fixed ticket is gone and its comment says resolved; a third sync writes nothing; a
crash between a write and its confirmation duplicates nothing.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from ticketlint.plugin.writeback.render import MARKER_PREFIX, read_marker
from ticketlint.sandbox import serve
from ticketlint.sandbox.commands import DEMO_JIRA_ENV, DEMO_SNOW_ENV, config_yaml
from ticketlint.sandbox.faults import FaultPlan

pytestmark = pytest.mark.e2e

SEED, SIZE = 5, 300
TICKETLINT = Path(sys.executable).parent / "ticketlint"
WRITES = ("PUT ", "POST /rest/api/{v}/issue", "PATCH ")


class Env:
    def __init__(self, tmp: Path, faults: str | None = None) -> None:
        self.anchor = int(time.time()) * 1000
        self.server = serve(seed=SEED, size=SIZE, anchor=self.anchor, faults=faults).start()
        self.url = self.server.url
        self.db = tmp / "ticketlint.db"
        self.config = tmp / "ticketlint.yaml"
        self.config.write_text(
            config_yaml(self.server, f"sqlite:///{self.db}") + "writeback:\n  enabled: true\n",
            encoding="utf-8",
        )
        c = self.server.credentials
        self.env = {
            "PATH": "/usr/bin:/bin",
            DEMO_JIRA_ENV: c.jira_token,
            DEMO_SNOW_ENV: c.snow_password,
            "HOME": str(tmp),
            "XDG_CONFIG_HOME": str(tmp),
        }
        self.jira_auth = (c.jira_email, c.jira_token)
        self.snow_auth = (c.snow_user, c.snow_password)
        self.tmp = tmp

    def sync(self, crash: str | None = None) -> subprocess.CompletedProcess:
        env = dict(self.env)
        if crash:
            env["TICKETLINT_TEST_WRITEBACK_CRASH"] = crash
        return subprocess.run(
            [str(TICKETLINT), "--config", str(self.config), "sync", "--no-notify"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=self.tmp,
        )

    def query(self, sql: str, *args: Any) -> list[tuple]:
        with sqlite3.connect(self.db) as conn:
            return conn.execute(sql, args).fetchall()

    def flagged(self, source: str) -> dict[str, str]:
        """key -> native id of the records with open findings (that exist as records)."""
        rows = self.query(
            "SELECT DISTINCT f.key, r.data FROM findings f JOIN records r "
            "ON r.source = f.source AND r.key = f.key WHERE f.source = ? AND f.state = 'open' "
            "AND r.deleted = 0",
            source,
        )
        return {key: json.loads(data)["native_id"] for key, data in rows}

    def writes(self) -> int:
        stats = requests.get(f"{self.url}/_sandbox/stats", timeout=10).json()["requests"]
        return sum(n for route, n in stats.items() if route.startswith(WRITES))

    def labels(self, key: str) -> list[str]:
        r = requests.get(
            f"{self.url}/rest/api/3/issue/{key}",
            params={"fields": "labels"},
            auth=self.jira_auth,
            timeout=10,
        )
        r.raise_for_status()
        return r.json()["fields"]["labels"]

    def labelled(self, label: str = "ticketlint") -> set[str]:
        """Keys that JQL `labels = <label>` finds, as a process owner's filter would."""
        r = requests.post(
            f"{self.url}/rest/api/3/search/jql",
            auth=self.jira_auth,
            timeout=10,
            json={
                "jql": f"labels = {label} ORDER BY key ASC",
                "fields": ["labels"],
                "maxResults": 5000,
            },
        )
        r.raise_for_status()
        return {issue["key"] for issue in r.json()["issues"]}

    def our_comments(self, key: str) -> list[str]:
        from ticketlint.mapping.adf import adf_to_text

        r = requests.get(
            f"{self.url}/rest/api/3/issue/{key}/comment",
            params={"maxResults": 100},
            auth=self.jira_auth,
            timeout=10,
        )
        r.raise_for_status()
        texts = [adf_to_text(c["body"]) for c in r.json()["comments"]]
        return [t for t in texts if MARKER_PREFIX in t]

    def our_notes(self) -> Counter:
        r = requests.get(
            f"{self.url}/api/now/table/sys_journal_field",
            auth=self.snow_auth,
            timeout=10,
            params={
                "sysparm_query": f"element=work_notes^valueLIKE{MARKER_PREFIX}",
                "sysparm_limit": 10000,
                "sysparm_exclude_reference_link": "true",
            },
        )
        r.raise_for_status()
        return Counter(row["element_id"] for row in r.json()["result"])

    def notes_of(self, sys_id: str) -> list[str]:
        r = requests.get(
            f"{self.url}/api/now/table/sys_journal_field",
            auth=self.snow_auth,
            timeout=10,
            params={
                "sysparm_query": f"element_id={sys_id}^element=work_notes^ORDERBYsys_created_on"
            },
        )
        return [row["value"] for row in r.json()["result"]]

    def mutate(self, body: dict) -> None:
        requests.post(f"{self.url}/_sandbox/mutate", json=body, timeout=10).raise_for_status()


@pytest.fixture
def env(tmp_path: Path):
    e = Env(tmp_path)
    yield e
    e.server.stop()


def adf(text: str) -> dict:
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


def test_label_comment_and_note_then_resolved_then_nothing(env: Env) -> None:
    first = env.sync()
    assert first.returncode == 0, first.stderr[-3000:]
    jira, snow = env.flagged("jira-sandbox"), env.flagged("snow-sandbox")
    assert len(jira) >= 5 and len(snow) >= 5
    for key in jira:
        assert "ticketlint" in env.labels(key), key
        assert len(env.our_comments(key)) == 1, key
    assert env.labelled() == set(jira)
    notes = env.our_notes()
    assert {sys_id: notes[sys_id] for sys_id in snow.values()} == dict.fromkeys(snow.values(), 1)
    assert set(notes) == set(snow.values())  # nothing on records without findings

    # Fix one Jira ticket (its only finding) and one ServiceNow incident.
    fixes = {
        "CHG005": ("Backout plan", "Roll back with the previous release."),
        "INC001": ("Resolution notes", "Restarted the service."),
        "PRB001": ("Root cause", "Expired TLS certificate."),
    }
    single = env.query(
        "SELECT key, min(rule) FROM findings WHERE source='jira-sandbox' AND state='open' "
        "GROUP BY key HAVING count(*) = 1"
    )
    chg, rule = next((k, r) for k, r in single if r in fixes)
    env.mutate({"key": chg, "fields": {fixes[rule][0]: adf(fixes[rule][1])}})
    inc = env.query(
        "SELECT key FROM findings WHERE source='snow-sandbox' AND rule='INC001' AND state='open' "
        "AND message LIKE '%resolution notes%' AND key NOT IN (SELECT key FROM findings WHERE "
        "source='snow-sandbox' AND state='open' AND rule != 'INC001') LIMIT 1"
    )[0][0]
    env.mutate(
        {"table": "incident", "number": inc, "fields": {"close_notes": "Restarted the service."}}
    )

    second = env.sync()
    assert second.returncode == 0, second.stderr[-3000:]
    assert chg not in env.flagged("jira-sandbox")
    assert "ticketlint" not in env.labels(chg)
    comments = env.our_comments(chg)
    assert len(comments) == 1 and "is resolved" in comments[0]
    inc_notes = [n for n in env.notes_of(snow[inc]) if MARKER_PREFIX in n]
    assert len(inc_notes) == 2 and "is resolved" in inc_notes[-1]
    for key in env.flagged("jira-sandbox"):
        assert "ticketlint" in env.labels(key) and len(env.our_comments(key)) == 1, key
    assert env.labelled() == set(env.flagged("jira-sandbox"))

    before = env.writes()
    third = env.sync()
    assert third.returncode == 0, third.stderr[-3000:]
    assert env.writes() == before, "a third sync with nothing changed wrote to the tickets"


@pytest.mark.parametrize("action", ["jira.comment", "servicenow.work_note"])
def test_a_crash_between_write_and_confirmation_duplicates_nothing(env: Env, action: str) -> None:
    crashed = env.sync(crash=f"after-write:{action}")
    assert crashed.returncode == 137, crashed.stderr[-3000:]
    pending = env.query(
        "SELECT key FROM writeback_log WHERE action = ? AND state = 'pending'", action
    )
    assert len(pending) == 1
    again = env.sync()
    assert again.returncode == 0, again.stderr[-3000:]
    assert env.query("SELECT count(*) FROM writeback_log WHERE state = 'pending'") == [(0,)]
    if action == "jira.comment":
        for key in env.flagged("jira-sandbox"):
            assert len(env.our_comments(key)) == 1, key
        posts = requests.get(f"{env.url}/_sandbox/stats", timeout=10).json()["requests"]
        assert posts["POST /rest/api/{v}/issue/(?P<key>[^/]+)/comment"] == len(
            env.flagged("jira-sandbox")
        )
    else:
        notes = env.our_notes()
        assert set(notes.values()) == {1} and set(notes) == set(
            env.flagged("snow-sandbox").values()
        )
        for sys_id in notes:
            assert read_marker(env.notes_of(sys_id)[-1]) is not None


def test_writes_survive_faults(tmp_path: Path) -> None:
    e = Env(tmp_path, faults="429=0.08,500=0.05,502=0.03,reset=0.03,retry_after=0.2")
    try:
        run = e.sync()
        assert run.returncode == 0, run.stderr[-3000:]
        assert sum(e.server.faults.injected.values()) > 0
        failed = e.query("SELECT count(*) FROM writeback_log WHERE state = 'failed'")[0][0]
        if failed:  # a write that ran out of attempts is retried by the next run
            assert e.sync().returncode == 0
        e.server.faults = FaultPlan.parse(None, SEED)  # the checks below read without faults
        for key in e.flagged("jira-sandbox"):
            assert "ticketlint" in e.labels(key) and len(e.our_comments(key)) == 1, key
        notes = e.our_notes()
        assert set(notes) == set(e.flagged("snow-sandbox").values()) and set(notes.values()) == {1}
    finally:
        e.server.stop()


def test_sandbox_write_endpoints_behave_like_jira_cloud(env: Env) -> None:
    key = env.server.data.jira.key(3)
    base = f"{env.url}/rest/api"
    plain = requests.post(
        f"{base}/3/issue/{key}/comment", auth=env.jira_auth, json={"body": "plain"}, timeout=10
    )
    assert plain.status_code == 400 and "Atlassian Document" in plain.text
    assert (
        requests.post(
            f"{base}/2/issue/{key}/comment", auth=env.jira_auth, json={"body": "plain"}, timeout=10
        ).status_code
        == 201
    )
    spaced = requests.put(
        f"{base}/3/issue/{key}",
        auth=env.jira_auth,
        timeout=10,
        json={"update": {"labels": [{"add": "two words"}]}},
    )
    assert spaced.status_code == 400 and "contains spaces" in spaced.json()["errors"]["labels"]
