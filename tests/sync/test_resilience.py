"""A sync killed at any point leaves a store from which the next run produces exactly the
findings an uninterrupted run would: nothing lost, nothing duplicated.

These tests run the real ``sync`` command in a subprocess with the runner's test hooks
(fake connector and engine from ``sync_fakes``, ``os._exit(137)`` at named points, or a
real SIGKILL mid-read)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sync_fakes import change, incident, write_data
from sync_helpers import events, reset_pg, states

from ticketlint.store.db import open_store

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def _config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "ticketlint.yaml"
    path.write_text(
        f"""
database: "{db_url}"
sources:
  - {{name: jira-prod, type: jira, url: "https://example.atlassian.net", auth: {{pat: x}}}}
  - {{name: snow-prod, type: servicenow, url: "https://x.service-now.com", auth: {{user: u, password: p}}}}
""",
        encoding="utf-8",
    )
    return path


def run_cli(
    config: Path, data: Path, *args: str, crash_at: str | None = None, wait: bool = True
) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    env = {
        **os.environ,
        "TICKETLINT_CONFIG": str(config),
        "TICKETLINT_FAKE_DATA": str(data),
        "TICKETLINT_TEST_CONNECTOR": "sync_fakes:connector_from_env",
        "TICKETLINT_TEST_ENGINE": "sync_fakes:engine",
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
    }
    env.pop("TICKETLINT_TEST_CRASH_AT", None)
    if crash_at:
        env["TICKETLINT_TEST_CRASH_AT"] = crash_at
    cmd = [
        sys.executable,
        "-c",
        "from ticketlint.sync.commands import sync; sync.main(prog_name='ticketlint')",
        "--as-of",
        "2026-04-01T00:00:00Z",
        *args,
    ]
    if not wait:
        return subprocess.Popen(
            cmd, env=env, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    return subprocess.run(cmd, env=env, cwd=ROOT, text=True, capture_output=True, timeout=60)


def phase1() -> dict:
    return {
        "jira-prod": {
            "change": [
                change("jira-prod", f"CHG-{i}", backout="" if i % 2 else "ok", minutes=i)
                for i in range(1, 8)
            ]
        },
        "snow-prod": {
            "incident": [
                incident("snow-prod", f"INC{i}", notes="" if i % 3 else "ok", minutes=i)
                for i in range(1, 6)
            ]
        },
    }


def phase2() -> dict:
    data = phase1()
    changes = {r.key: r for r in data["jira-prod"]["change"]}
    changes["CHG-1"] = change("jira-prod", "CHG-1", backout="fixed", minutes=40)  # resolves
    changes["CHG-2"] = change("jira-prod", "CHG-2", minutes=41)  # new finding
    changes["CHG-9"] = change("jira-prod", "CHG-9", minutes=42)  # new record
    data["jira-prod"]["change"] = list(changes.values())
    data["snow-prod"]["incident"].append(incident("snow-prod", "INC7", minutes=43))
    return data


def fresh_url(db_url: str, tmp_path: Path, name: str) -> str:
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / name / 'ticketlint.db'}"
    reset_pg(db_url)
    return db_url


def snapshot(url: str) -> tuple[dict, Counter]:
    store = open_store(url)
    try:
        ev = Counter((rule, key, kind) for rule, key, kind in events(store))
        return states(store), ev
    finally:
        store.dispose()


def two_phase(tmp_path: Path, url: str, crash_at: str | None) -> tuple[dict, Counter]:
    config = _config(tmp_path, url)
    data = tmp_path / "data.json"
    write_data(data, phase1(), page_size=2)
    assert run_cli(config, data).returncode == 0
    write_data(data, phase2(), page_size=2)
    if crash_at:
        crashed = run_cli(config, data, crash_at=crash_at)
        assert crashed.returncode == 137, crashed.stderr
    done = run_cli(config, data)
    assert done.returncode == 0, done.stderr
    return snapshot(url)


@pytest.fixture
def reference(db_url: str, tmp_path: Path) -> tuple[dict, Counter]:
    (tmp_path / "reference").mkdir()
    return two_phase(tmp_path / "reference", fresh_url(db_url, tmp_path, "reference"), None)


@pytest.mark.parametrize("point", ["after-upsert", "before-commit", "after-commit"])
def test_crash_at_a_point_then_rerun_equals_uninterrupted(
    point: str, db_url: str, tmp_path: Path, reference: tuple[dict, Counter]
) -> None:
    ref_states, ref_events = reference
    assert (
        ref_states[("TST001", "CHG-1")] == "resolved" and ref_states[("TST001", "CHG-2")] == "open"
    )
    url = fresh_url(db_url, tmp_path, "crash")
    (tmp_path / "crash").mkdir(exist_ok=True)
    got_states, got_events = two_phase(tmp_path / "crash", url, point)
    assert got_states == ref_states
    assert got_events == ref_events  # every event exactly once: nothing lost or doubled


def test_sigkill_mid_read_then_rerun_equals_uninterrupted(db_url: str, tmp_path: Path) -> None:
    url = fresh_url(db_url, tmp_path, "ref")
    (tmp_path / "ref").mkdir(exist_ok=True)
    config = _config(tmp_path / "ref", url)
    data = tmp_path / "data.json"
    write_data(data, phase1(), page_size=1)
    assert run_cli(config, data).returncode == 0
    expected = snapshot(url)

    url = fresh_url(db_url, tmp_path, "killed")
    (tmp_path / "killed").mkdir(exist_ok=True)
    config = _config(tmp_path / "killed", url)
    write_data(data, phase1(), page_size=1, delay=0.15)
    proc = run_cli(config, data, wait=False)
    assert isinstance(proc, subprocess.Popen)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # kill once it has stored something, mid-read
        stderr_line = proc.stderr.readline() if proc.stderr else ""
        if "records" in stderr_line:
            break
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    write_data(data, phase1(), page_size=1)
    assert run_cli(config, data).returncode == 0
    assert snapshot(url) == expected


def test_second_concurrent_sync_exits_zero(db_url: str, tmp_path: Path) -> None:
    url = fresh_url(db_url, tmp_path, "lock")
    (tmp_path / "lock").mkdir(exist_ok=True)
    config = _config(tmp_path / "lock", url)
    data = tmp_path / "data.json"
    write_data(data, phase1(), page_size=1, delay=0.3)
    first = run_cli(config, data, wait=False)
    assert isinstance(first, subprocess.Popen) and first.stderr is not None
    while "syncing" not in first.stderr.readline():
        pass
    second = run_cli(config, data)
    assert second.returncode == 0
    assert "another sync" in second.stderr
    out, _ = first.communicate(timeout=60)
    assert first.returncode == 0
    assert "jira-prod" in out  # the summary table
