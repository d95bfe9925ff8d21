"""End to end: the real ``ticketlint sync`` fills a SQLite store from the sandbox, the real
``ticketlint serve`` runs in a subprocess, a ticket is fixed in the sandbox and a signed
webhook makes its finding resolve within 2 seconds; unsigned or wrongly signed
deliveries get 401 and change nothing. Both Jira and ServiceNow, over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ticketlint.plugin.serve.security import sign_jira, sign_servicenow
from ticketlint.sandbox import serve as sandbox_serve
from ticketlint.sandbox.commands import DEMO_JIRA_ENV, DEMO_SNOW_ENV, config_yaml

pytestmark = pytest.mark.e2e

TICKETLINT = Path(sys.executable).parent / "ticketlint"
JIRA_SECRET, SNOW_SECRET = "jira-hook-secret-123", "snow-hook-secret-456"
RESOLVE_WITHIN = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Setup:
    def __init__(
        self, work: Path, sandbox: Any, env: dict[str, str], config: Path, url: str
    ) -> None:
        self.work, self.sandbox, self.env, self.config, self.url = work, sandbox, env, config, url
        self.db = work / "ticketlint.db"

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db, timeout=30) as conn:
            return list(conn.execute(sql, args))

    def finding_state(self, source: str, rule: str, key: str) -> str:
        rows = self.query(
            "SELECT state FROM findings WHERE source=? AND rule=? AND key=?", source, rule, key
        )
        return rows[0][0]

    def findings_snapshot(self) -> list[tuple[Any, ...]]:
        return self.query(
            "SELECT fingerprint, state, last_seen, resolved_at FROM findings ORDER BY fingerprint"
        )

    def wait_resolved(self, source: str, rule: str, key: str, since: float) -> float:
        while time.monotonic() - since < 10:
            if self.finding_state(source, rule, key) == "resolved":
                return time.monotonic() - since
            time.sleep(0.02)
        raise AssertionError(
            f"{source} {rule} {key} still {self.finding_state(source, rule, key)} after 10s"
        )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("serve-e2e")
    server = sandbox_serve(seed=11, size=300, anchor=int(time.time()) * 1000).start()
    config = work / "ticketlint.yaml"
    config.write_text(
        config_yaml(server, f"sqlite:///{work / 'ticketlint.db'}")
        + "serve:\n  jira_secret: ${JIRA_HOOK_SECRET}\n  servicenow_secret: ${SNOW_HOOK_SECRET}\n",
        encoding="utf-8",
    )
    c = server.credentials
    env = {
        "PATH": "/usr/bin:/bin",
        DEMO_JIRA_ENV: c.jira_token,
        DEMO_SNOW_ENV: c.snow_password,
        "JIRA_HOOK_SECRET": JIRA_SECRET,
        "SNOW_HOOK_SECRET": SNOW_SECRET,
        "HOME": str(work),
        "XDG_CONFIG_HOME": str(work),
    }
    base = [str(TICKETLINT), "--config", str(config)]
    sync = subprocess.run(
        [*base, "sync", "--no-notify", "--no-writeback"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=work,
    )
    assert sync.returncode == 0, sync.stderr[-3000:]
    port = free_port()
    proc = subprocess.Popen(
        [*base, "-v", "serve", "--port", str(port)],
        env=env,
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"serve did not start: {proc.communicate()[1][-3000:]}")
            time.sleep(0.05)
        yield Setup(work, server, env, config, url)
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        server.stop()
    assert proc.returncode == 0, err[-3000:]


def mutate(setup: Setup, body: dict[str, Any]) -> dict[str, Any]:
    resp = requests.post(f"{setup.sandbox.url}/_sandbox/mutate", json=body, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def adf(text: str) -> dict[str, Any]:
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": text}]}],
    }


def jira_body(key: str, updated: str, event: str = "jira:issue_updated") -> bytes:
    """A Jira Cloud issue webhook as Jira sends it (fields trimmed; the values are never used)."""
    return json.dumps(
        {
            "timestamp": int(time.time() * 1000),
            "webhookEvent": event,
            "issue_event_type_name": "issue_generic",
            "user": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Mia Krystof"},
            "issue": {
                "id": "10042",
                "key": key,
                "self": "https://example.atlassian.net/rest/api/2/issue/10042",
                "fields": {"updated": updated, "summary": "anything: not trusted"},
            },
            "changelog": {
                "id": "10101",
                "items": [{"field": "Root cause", "fromString": None, "toString": "x"}],
            },
        }
    ).encode()


def jira_open_finding(setup: Setup, rule: str, needle: str) -> str:
    rows = setup.query(
        "SELECT key FROM findings WHERE source='jira-sandbox' AND rule=? AND state='open' "
        "AND message LIKE ? ORDER BY key",
        rule,
        f"%{needle}%",
    )
    assert rows, f"the sandbox has no open {rule} finding ({needle})"
    return str(rows[0][0])


def snow_open_finding(setup: Setup, rule: str, needle: str) -> tuple[str, str]:
    rows = setup.query(
        "SELECT f.key, json_extract(r.data, '$.native_id') FROM findings f JOIN records r "
        "ON r.source = f.source AND r.key = f.key WHERE f.source='snow-sandbox' AND f.rule=? "
        "AND f.state='open' AND f.message LIKE ? ORDER BY f.key",
        rule,
        f"%{needle}%",
    )
    assert rows, f"the sandbox has no open {rule} finding ({needle})"
    return str(rows[0][0]), str(rows[0][1])


def test_healthz_and_metrics(setup: Setup) -> None:
    health = requests.get(f"{setup.url}/healthz", timeout=5)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    metrics = requests.get(f"{setup.url}/metrics", timeout=5)
    assert metrics.status_code == 200
    assert metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = metrics.text
    assert 'ticketlint_sync_runs{status="ok"} 1\n' in text
    open_high = setup.query("SELECT count(*) FROM findings WHERE state='open' AND severity='high'")[
        0
    ][0]
    assert open_high > 0
    assert f'ticketlint_findings{{state="open",severity="high"}} {open_high}\n' in text
    assert "# TYPE ticketlint_webhook_events_total counter" in text


def test_unsigned_and_wrongly_signed_get_401_and_change_nothing(setup: Setup) -> None:
    key = jira_open_finding(setup, "PRB001", "no root cause")
    before = setup.findings_snapshot()
    body = jira_body(key, "2030-01-01T00:00:00.000+0000")
    hook = f"{setup.url}/hooks/jira"
    assert (
        requests.post(
            hook, data=body, headers={"Content-Type": "application/json"}, timeout=5
        ).status_code
        == 401
    )
    wrong = {
        "Content-Type": "application/json",
        "X-Hub-Signature": sign_jira("not-the-secret", body),
    }
    assert requests.post(hook, data=body, headers=wrong, timeout=5).status_code == 401
    tampered = {
        "Content-Type": "application/json",
        "X-Hub-Signature": sign_jira(JIRA_SECRET, body + b" "),
    }
    assert requests.post(hook, data=body, headers=tampered, timeout=5).status_code == 401
    sn = json.dumps({"table": "incident", "sys_id": "0" * 32}).encode()
    ts = str(int(time.time()))
    snow = f"{setup.url}/hooks/servicenow"
    assert (
        requests.post(snow, data=sn, headers={"X-Ticketlint-Timestamp": ts}, timeout=5).status_code
        == 401
    )
    bad = {"X-Ticketlint-Timestamp": ts, "X-Ticketlint-Signature": sign_servicenow("nope", ts, sn)}
    assert requests.post(snow, data=sn, headers=bad, timeout=5).status_code == 401
    assert (
        requests.post(snow, data=sn, headers={"X-Ticketlint-Token": "nope"}, timeout=5).status_code
        == 401
    )
    time.sleep(0.6)  # longer than the debounce: a queued re-check would have run by now
    assert setup.findings_snapshot() == before
    metrics = requests.get(f"{setup.url}/metrics", timeout=5).text
    assert 'ticketlint_webhook_events_total{endpoint="jira",outcome="unauthorized"} 3\n' in metrics
    assert (
        'ticketlint_webhook_events_total{endpoint="servicenow",outcome="unauthorized"} 3\n'
        in metrics
    )


def test_signed_jira_webhook_resolves_a_fixed_ticket_within_2s(setup: Setup) -> None:
    key = jira_open_finding(setup, "PRB001", "no root cause")
    other = setup.query(
        "SELECT fingerprint, state, last_seen FROM findings WHERE key != ? ORDER BY fingerprint",
        key,
    )
    changed = mutate(
        setup, {"key": key, "fields": {"Root cause": adf("Expired TLS certificate on the LB.")}}
    )
    body = jira_body(key, changed["updated"])
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature": sign_jira(JIRA_SECRET, body),
        "X-Atlassian-Webhook-Identifier": "wh-e2e-1",
    }
    t0 = time.monotonic()
    resp = requests.post(f"{setup.url}/hooks/jira", data=body, headers=headers, timeout=5)
    assert resp.status_code == 202, resp.text
    took = setup.wait_resolved("jira-sandbox", "PRB001", key, t0)
    assert took < RESOLVE_WITHIN, f"resolved after {took:.2f}s"
    # Only that ticket's findings moved.
    assert (
        setup.query(
            "SELECT fingerprint, state, last_seen FROM findings WHERE key != ? "
            "ORDER BY fingerprint",
            key,
        )
        == other
    )
    # The same delivery again is a duplicate: nothing queued.
    again = requests.post(f"{setup.url}/hooks/jira", data=body, headers=headers, timeout=5)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"


def test_signed_servicenow_notification_resolves_a_fixed_record_within_2s(setup: Setup) -> None:
    number, sys_id = snow_open_finding(setup, "INC001", "no resolution notes")
    changed = mutate(
        setup,
        {
            "table": "incident",
            "sys_id": sys_id,
            "fields": {"close_notes": "Restarted the service; monitored for an hour."},
        },
    )
    body = json.dumps(
        {
            "table": "incident",
            "sys_id": sys_id,
            "number": number,
            "sys_updated_on": changed["sys_updated_on"],
        }
    ).encode()
    ts = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Ticketlint-Timestamp": ts,
        "X-Ticketlint-Signature": sign_servicenow(SNOW_SECRET, ts, body),
    }
    t0 = time.monotonic()
    resp = requests.post(f"{setup.url}/hooks/servicenow", data=body, headers=headers, timeout=5)
    assert resp.status_code == 202, resp.text
    took = setup.wait_resolved("snow-sandbox", "INC001", number, t0)
    assert took < RESOLVE_WITHIN, f"resolved after {took:.2f}s"
    replay = requests.post(f"{setup.url}/hooks/servicenow", data=body, headers=headers, timeout=5)
    assert replay.status_code == 409
    events = setup.query(
        "SELECT e.kind, e.detail, e.run_id FROM finding_events e JOIN findings f "
        "ON f.id = e.finding_id WHERE f.source='snow-sandbox' AND f.key=? AND f.rule='INC001' "
        "ORDER BY e.id",
        number,
    )
    assert events[-1] == ("resolved", "no longer fails", None)
