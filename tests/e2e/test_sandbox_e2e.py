"""End to end: the real ``ticketlint check --source`` against the sandbox over HTTP.

Findings must exist for every process of both systems, and faults (429 with and without
Retry-After, 5xx, resets, slow responses, records changing between pages) must not change
a single finding: the same seed gives the same findings with and without them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ticketlint.sandbox import serve
from ticketlint.sandbox.commands import DEMO_JIRA_ENV, DEMO_SNOW_ENV, config_yaml

pytestmark = pytest.mark.e2e

SEED, SIZE = 11, 600
FAULTS = (
    "429=0.06,500=0.04,502=0.02,reset=0.03,slow=0.03,slow_seconds=0.2,retry_after=1,mutate=0.05"
)
PROCESSES = {
    "jira-sandbox": {"incident", "change", "problem", "service_request"},
    "snow-sandbox": {"incident", "change", "problem", "service_request", "ci"},
}
TICKETLINT = Path(sys.executable).parent / "ticketlint"


@pytest.fixture(scope="module")
def anchor() -> int:
    return int(time.time()) * 1000


def sandbox_setup(server, work: Path, config_name: str, anchor: int) -> tuple[Path, dict, str]:
    """A config for the running sandbox (store in ``work``), the child's environment with
    its secrets, and the as-of instant just after the data's anchor."""
    config = work / config_name
    config.write_text(config_yaml(server, f"sqlite:///{work / 'ticketlint.db'}"), encoding="utf-8")
    c = server.credentials
    env = {
        "PATH": "/usr/bin:/bin",
        DEMO_JIRA_ENV: c.jira_token,
        DEMO_SNOW_ENV: c.snow_password,
        "HOME": str(work),
        "XDG_CONFIG_HOME": str(work),
    }
    return config, env, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(anchor / 1000 + 60))


def run_check(
    tmp_path: Path, anchor: int, faults: str | None, source: str, *, real_shapes: bool = False
) -> dict:
    server = serve(
        seed=SEED, size=SIZE, anchor=anchor, faults=faults, real_shapes=real_shapes
    ).start()
    try:
        config, env, as_of = sandbox_setup(
            server, tmp_path, f"ticketlint-{source}-{bool(faults)}-{real_shapes}.yaml", anchor
        )
        proc = subprocess.run(
            [
                str(TICKETLINT),
                "--config",
                str(config),
                "check",
                "--source",
                source,
                "-f",
                "json",
                "--exit-zero",
                "--as-of",
                as_of,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout)
        result["_faults"] = dict(server.faults.injected)
        return result
    finally:
        server.stop()


def fingerprints(result: dict) -> Counter:
    return Counter((f["code"], f["key"]) for f in result["findings"])


@pytest.mark.parametrize("source", sorted(PROCESSES))
def test_findings_for_every_process_and_faults_change_nothing(tmp_path, anchor, source):
    clean = run_check(tmp_path, anchor, None, source)
    processes = {f["process"] for f in clean["findings"]}
    assert PROCESSES[source] <= processes, (
        f"{source}: no findings for {PROCESSES[source] - processes}"
    )
    for f in clean["findings"][:20]:
        assert f["source"] == source and f["url"].startswith("http://127.0.0.1:")

    faulty = run_check(tmp_path, anchor, FAULTS, source)
    assert sum(faulty["_faults"].values()) > 0, "the fault plan injected nothing"
    assert fingerprints(faulty) == fingerprints(clean)
    # records edited mid-read (mutate) are read again at the end of the stream: checked once
    assert faulty["summary"]["records"] == clean["summary"]["records"]
    assert Counter(f["code"] for f in faulty["findings"]) == Counter(
        f["code"] for f in clean["findings"]
    )


@pytest.mark.parametrize("source", sorted(PROCESSES))
def test_real_shapes_lose_no_record(tmp_path, anchor, source):
    """JSM "[System]" types, truncated comment lists, closed incidents without a
    resolution date, a date-only cab_date: the same records are checked as on the plain
    sandbox, every one of them, with findings for every process."""
    plain = run_check(tmp_path, anchor, None, source)
    real = run_check(tmp_path, anchor, None, source, real_shapes=True)
    assert real["not_checked"] == [] and real["summary"]["mapping_errors"] == []
    assert real["summary"]["records"] == plain["summary"]["records"]
    assert PROCESSES[source] <= {f["process"] for f in real["findings"]}
    # comment lists stay truncated (unknown notes) only where no rule reads the notes
    assert {u["reason"] for u in real["summary"]["unreadable"]} <= {"comment list truncated"}
    for code in ("INC001", "CHG007", "REQ002"):
        assert not any("could not read" in r for r in real["not_evaluated"].get(code, {}))


def test_demo_exits_zero_and_shows_findings(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    proc = subprocess.run(
        [str(TICKETLINT), "demo", "--size", "400"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for source in ("jira-sandbox", "snow-sandbox"):
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith(f"{source}:"))
        for process in PROCESSES[source]:
            assert f"{process} " in line, line
    assert "Top findings:" in proc.stdout and "Try next" in proc.stdout
    demo_dir = tmp_path / ".ticketlint" / "demo"
    # Night 2 resolved the changes whose backout plan the demo filled in.
    resolved = subprocess.run(
        [
            str(TICKETLINT),
            "--config",
            str(demo_dir / "ticketlint.yaml"),
            "findings",
            "--state",
            "resolved",
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**env, "TICKETLINT_DEMO_JIRA_TOKEN": "x", "TICKETLINT_DEMO_SNOW_PASSWORD": "x"},
    )
    assert resolved.returncode == 0, resolved.stderr
    codes = Counter(f["code"] for f in json.loads(resolved.stdout)["findings"])
    assert codes["CHG005"] >= 1, codes
    html = (demo_dir / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html and "Content-Security-Policy" in html
    verify = subprocess.run(
        [
            str(TICKETLINT),
            "--config",
            str(demo_dir / "ticketlint.yaml"),
            "evidence",
            "verify",
            str(demo_dir / "evidence-8.5.1"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**env, "TICKETLINT_DEMO_JIRA_TOKEN": "x", "TICKETLINT_DEMO_SNOW_PASSWORD": "x"},
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def run_sync(tmp_path: Path, anchor: int, faults: str | None) -> tuple[Counter, dict]:
    """A real ``ticketlint sync`` of both sources into a fresh SQLite store, then the
    stored open findings (``findings -f json``)."""
    server = serve(seed=SEED, size=SIZE, anchor=anchor, faults=faults).start()
    try:
        work = tmp_path / ("faulty" if faults else "clean")
        work.mkdir()
        config, env, as_of = sandbox_setup(server, work, "ticketlint.yaml", anchor)
        base = [str(TICKETLINT), "--config", str(config)]
        sync = subprocess.run(
            [*base, "sync", "--as-of", as_of, "--no-notify", "--no-writeback"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=work,
        )
        assert sync.returncode == 0, sync.stderr[-3000:]
        listed = subprocess.run(
            [*base, "findings", "--state", "open", "-f", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=work,
        )
        assert listed.returncode == 0, listed.stderr[-3000:]
        found = json.loads(listed.stdout)["findings"]
        return Counter((f["source"], f["code"], f["key"]) for f in found), dict(
            server.faults.injected
        )
    finally:
        server.stop()


def test_sync_over_http_stores_the_same_findings_with_and_without_faults(tmp_path, anchor):
    clean, _ = run_sync(tmp_path, anchor, None)
    assert {source for source, _, _ in clean} == set(PROCESSES)
    faulty, injected = run_sync(tmp_path, anchor, FAULTS)
    assert sum(injected.values()) > 0, "the fault plan injected nothing"
    assert faulty == clean


def test_sync_says_what_it_could_not_read_as_check_does(tmp_path, anchor):
    """The real ``sync`` against the real-shapes sandbox: the values it could not read
    are printed per source, field and reason, carried by the JSON summary line and
    counted by ``doctor``, with the same counts a live ``check`` of the source gives."""
    source = "jira-sandbox"
    checked = run_check(tmp_path, anchor, None, source, real_shapes=True)
    expected = checked["summary"]["unreadable"]
    assert expected, "the real-shapes sandbox leaves some comment lists truncated"
    server = serve(seed=SEED, size=SIZE, anchor=anchor, real_shapes=True).start()
    try:
        work = tmp_path / "sync"
        work.mkdir()
        config, env, as_of = sandbox_setup(server, work, "ticketlint.yaml", anchor)
        base = [str(TICKETLINT), "--config", str(config)]
        sync = subprocess.run(
            [
                *base,
                *("sync", "--source", source, "--as-of", as_of),
                *("--no-notify", "--no-writeback", "--log-format", "json"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            cwd=work,
        )
        assert sync.returncode == 0, sync.stderr[-3000:]
        total = sum(u["count"] for u in expected)
        # --log-format json: stdout is JSON lines too, one row of the summary per source.
        [row] = [
            e for e in map(json.loads, sync.stdout.splitlines()) if e["event"] == "source_summary"
        ]
        assert row["source"] == source and row["unreadable"] == total
        assert row["not_checked"] == 0
        [summary] = [
            e for e in map(json.loads, sync.stderr.splitlines()) if e["event"] == "summary"
        ]
        mine = summary["sources"][source]
        assert mine["mapping"]["unreadable"] == expected
        assert mine["not_checked"] == [] and mine["mapping"]["not_checked"] == 0
        doctor = subprocess.run(
            [*base, "doctor", "--source", source],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=work,
        )
        assert f"0 not checked, {total} values could not be read" in doctor.stdout
    finally:
        server.stop()
