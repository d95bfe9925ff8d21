"""End to end: the real ``ticketlint sync`` against the sandbox, with local receivers on
127.0.0.1 standing in for Slack, Teams, Mattermost, Google Chat and a signed webhook.

Checked: exactly one digest per destination per run, with the run's counts; a receiver
that fails (500) gets the digest on the next run; a process killed right after a post
does not post that run's digest a second time (the row turns ``unconfirmed``).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
from notify_support import Receiver, start_receiver

from ticketlint.notify.transport import verify
from ticketlint.sandbox import serve
from ticketlint.sandbox.commands import DEMO_JIRA_ENV, DEMO_SNOW_ENV, config_yaml

pytestmark = pytest.mark.e2e

TICKETLINT = Path(sys.executable).parent / "ticketlint"
PLATFORMS = ("slack", "teams", "mattermost", "googlechat", "webhook")
SECRET = "e2e-secret"


def notify_yaml(rec: Receiver) -> str:
    lines = ["notify:"]
    for p in PLATFORMS:
        secret = f", secret: {SECRET}" if p == "webhook" else ""
        lines.append(
            f'  - {{name: {p}, type: {p}, url: "{rec.url}/{p}", min_severity: info{secret}}}'
        )
    lines.append(f'  - {{name: flaky, type: slack, url: "{rec.url}/flaky", min_severity: info}}')
    return "\n".join(lines) + "\n"


def posts_by_run(rec: Receiver, path: str) -> Counter:
    """How many posts each run got at ``path`` (read from the dedup id in every payload)."""
    runs: Counter = Counter()
    for body in rec.bodies(path):
        text = json.dumps(body)
        marker = "ticketlint:run:"
        for run in {int(part.split(":")[0]) for part in text.split(marker)[1:]}:
            runs[run] += 1
    return runs


def run_counts(db: Path, run_id: int) -> dict[str, int]:
    """new / reopened / resolved of one run, summed over sources, as the run stored them."""
    with sqlite3.connect(db) as conn:
        (sources,) = conn.execute("SELECT sources FROM runs WHERE id = ?", (run_id,)).fetchone()
    total: Counter = Counter()
    for info in json.loads(sources).values():
        total.update({k: info["findings"].get(k, 0) for k in ("new", "reopened", "resolved")})
    return dict(total)


FIXES = {
    "INC002": {"priority": "2"},
    "INC001": {
        "close_notes": "Restarted the VPN concentrator",
        "close_code": "Solved (Permanently)",
    },
}


def fixable_incident(base: list[str], env: dict, work: Path, skip: set[str]) -> tuple[str, dict]:
    """A ServiceNow incident with a finding that a field change fixes, and that change."""
    out = subprocess.run(
        [*base, "findings", "--source", "snow-sandbox", "-f", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=work,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    found = sorted(
        (f["code"], f["key"])
        for f in json.loads(out.stdout)["findings"]
        if f["code"] in FIXES and f["key"] not in skip
    )
    assert found, "the sandbox has no incident finding that a field change fixes"
    code, key = found[0]
    return key, FIXES[code]


def test_one_digest_per_destination_per_run_retried_and_never_twice(tmp_path: Path) -> None:
    anchor = int(time.time()) * 1000
    server = serve(seed=5, size=200, anchor=anchor).start()
    rec = start_receiver()
    try:
        db = tmp_path / "ticketlint.db"
        config = tmp_path / "ticketlint.yaml"
        config.write_text(
            config_yaml(server, f"sqlite:///{db}") + notify_yaml(rec), encoding="utf-8"
        )
        c = server.credentials
        env = {
            "PATH": "/usr/bin:/bin",
            DEMO_JIRA_ENV: c.jira_token,
            DEMO_SNOW_ENV: c.snow_password,
            "HOME": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path),
        }
        as_of = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(anchor / 1000 + 60))
        base = [str(TICKETLINT), "--config", str(config)]

        def sync(extra_env: dict | None = None) -> subprocess.CompletedProcess:
            return subprocess.run(
                [*base, "sync", "--as-of", as_of, "--no-writeback"],
                capture_output=True,
                text=True,
                env={**env, **(extra_env or {})},
                cwd=tmp_path,
                timeout=300,
            )

        def mutate(number: str, fields: dict) -> None:
            r = requests.post(
                f"{server.url}/_sandbox/mutate",
                timeout=10,
                json={"table": "incident", "number": number, "fields": fields},
            )
            assert r.status_code == 200, r.text

        # Run 1: everything is new; the flaky receiver answers 500 to all three tries.
        rec.fail["/flaky"] = 3
        first = sync()
        assert first.returncode == 0, first.stderr[-3000:]
        assert (
            "'flaky'" in first.stderr and "HTTP 500" in first.stderr and rec.url not in first.stderr
        )
        counts1 = run_counts(db, 1)
        assert counts1["new"] > 0
        for p in PLATFORMS:
            assert posts_by_run(rec, f"/{p}") == {1: 1}, p
        assert rec.bodies("/flaky") == []
        hook = rec.posts["/webhook"][0]
        assert hook["json"]["counts"] == counts1 and hook["json"]["run_id"] == 1
        assert verify(
            SECRET,
            hook["headers"]["X-Ticketlint-Timestamp"],
            hook["raw"],
            hook["headers"]["X-Ticketlint-Signature"],
        )
        assert f"{counts1['new']} new" in rec.bodies("/slack")[0]["text"]

        # Run 2: one incident changes (its findings resolve); flaky gets runs 1 and 2 now.
        changed, fields = fixable_incident(base, env, tmp_path, set())
        mutate(changed, fields)
        second = sync()
        assert second.returncode == 0, second.stderr[-3000:]
        counts2 = run_counts(db, 2)
        assert counts2["resolved"] >= 1, (changed, counts2, second.stderr[-2000:])
        for p in PLATFORMS:
            assert posts_by_run(rec, f"/{p}") == {1: 1, 2: 1}, p
        assert posts_by_run(rec, "/flaky") == {1: 1, 2: 1}
        assert rec.posts["/webhook"][1]["json"]["counts"] == counts2
        assert (
            f"{counts2['resolved']} resolved"
            in rec.bodies("/teams")[1]["attachments"][0]["content"]["body"][0]["text"]
        )

        # Run 3 dies right after its first post; run 4 has nothing new and posts the rest.
        mutate(*fixable_incident(base, env, tmp_path, {changed}))
        third = sync({"TICKETLINT_TEST_CRASH_AT": "after-send"})
        assert third.returncode == 137, third.stderr[-3000:]
        fourth = sync()
        assert fourth.returncode == 0, fourth.stderr[-3000:]
        assert "unconfirmed" in fourth.stderr
        for p in (*PLATFORMS, "flaky"):
            assert posts_by_run(rec, f"/{p}") == {1: 1, 2: 1, 3: 1}, p
        status = subprocess.run(
            [*base, "notify", "status"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        assert (
            status.returncode == 0
            and "unconfirmed" in status.stdout
            and rec.url not in status.stdout
        )
    finally:
        rec.stop()
        server.stop()
