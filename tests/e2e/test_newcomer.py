"""A newcomer's first hour, scripted (issue 17): the real ``ticketlint`` program in a
fresh directory, with the README and --help only. init, check the examples, demo, sync
a sandbox, findings, report, waive, writeback --dry-run, from another directory, and the
typical mistakes on the way. Every mistake ends in one clear line and the right exit code;
nothing is lost and nothing reads as "all clean" when it is not."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ticketlint.sandbox import serve
from ticketlint.sandbox.commands import DEMO_JIRA_ENV, DEMO_SNOW_ENV, config_yaml

pytestmark = pytest.mark.e2e

TICKETLINT = Path(sys.executable).parent / "ticketlint"
ROOT = Path(__file__).resolve().parents[2]


class Newcomer:
    """Runs ``ticketlint`` as a person at a shell would: a clean environment, a cwd."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = {
            "PATH": "/usr/bin:/bin",  # ticketlint is not on PATH after `make demo`
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "NO_COLOR": "1",
        }

    def run(
        self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(TICKETLINT), *args],
            cwd=cwd or self.home,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_newcomers_first_hour(tmp_path: Path) -> None:
    me = Newcomer(tmp_path)

    # 1. init, then offline commands work without any secret set.
    assert me.run("init").returncode == 0
    assert (tmp_path / "ticketlint.yaml").exists()
    checked = me.run("check", "--input", str(ROOT / "examples" / "jira"), "--as-of", "2026-11-20")
    assert checked.returncode == 1, checked.stderr  # findings, and no JIRA_API_TOKEN error
    assert "JIRA_API_TOKEN" not in checked.stderr
    validated = me.run("config", "validate")
    assert validated.returncode == 0 and "JIRA_API_TOKEN is not set" in validated.stderr

    # 2. Before any sync there is no store: never "No findings".
    nothing = me.run("findings")
    assert nothing.returncode == 2 and "no store at" in nothing.stderr
    assert "No findings" not in nothing.stdout
    assert not (tmp_path / ".ticketlint" / "ticketlint.db").exists()

    # 3. Typos: a command, an option after the command, a rule id in a waiver.
    typo = me.run("chek")
    assert typo.returncode == 2 and "No such command" in typo.stderr
    quiet_after = me.run("rules", "list", "-q")
    assert quiet_after.returncode == 0 and "CHG001" in quiet_after.stdout
    bad_waiver = me.run(
        "waive", "add", "CHG05", "OPS-1", "--reason", "r", "--owner", "o", "--expires", "2099-01-01"
    )
    assert bad_waiver.returncode == 2 and "did you mean 'CHG005'" in bad_waiver.stderr

    # 4. The demo: refuses a folder holding work, runs in a new one, and its "Try next"
    #    commands run as printed.
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "thesis.txt").write_text("years of work", encoding="utf-8")
    refused = me.run("demo", "--dir", "work", "--size", "200")
    assert refused.returncode == 2 and "not empty" in refused.stderr
    assert (tmp_path / "work" / "thesis.txt").read_text(encoding="utf-8") == "years of work"
    demo = me.run("demo", "--dir", "demo", "--size", "200")
    assert demo.returncode == 0, demo.stderr[-2000:]
    lines = demo.stdout.splitlines()
    start = lines.index("Try next (the sandbox stops with the demo; the store stays):")
    export = shlex.split(lines[start + 1])
    assert export[0] == "export"
    demo_env = dict(item.split("=", 1) for item in export[1:])
    resolved_cmd = shlex.split(lines[start + 2])
    resolved = subprocess.run(
        resolved_cmd,
        cwd=tmp_path,
        env={**me.env, **demo_env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resolved.returncode == 0, resolved.stderr
    again = me.run("demo", "--dir", "demo", "--size", "200")  # a demo dir is reused
    assert again.returncode == 0, again.stderr[-2000:]

    # 5. A project of one's own against the sandbox: relative store path in the config.
    server = serve(seed=5, size=300).start()
    try:
        project = tmp_path / "project"
        project.mkdir()
        (project / "ticketlint.yaml").write_text(
            config_yaml(server, "sqlite:///.ticketlint/store.db"), encoding="utf-8"
        )
        c = server.credentials
        secrets = {DEMO_JIRA_ENV: c.jira_token, DEMO_SNOW_ENV: c.snow_password}
        config = str(project / "ticketlint.yaml")
        synced = me.run("--config", config, "sync", "--no-notify", env=secrets)
        assert synced.returncode == 0, synced.stderr[-2000:]
        assert (project / ".ticketlint" / "store.db").exists()
        assert not (tmp_path / ".ticketlint" / "store.db").exists()

        # 6. From another directory the same store is found (no new empty one).
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        listed = me.run("findings", "-f", "json", "--config", config, cwd=elsewhere)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["findings"]
        report = me.run("--config", config, "report", "-o", "report.html", cwd=elsewhere)
        assert report.returncode == 0 and (elsewhere / "report.html").exists()
        missing_dir = me.run("--config", config, "report", "-o", "nope/r.html", cwd=elsewhere)
        assert missing_dir.returncode == 2 and "does not exist" in missing_dir.stderr
        assert "internal error" not in missing_dir.stderr
        key = json.loads(listed.stdout)["findings"][0]
        waived = me.run(
            "--config",
            config,
            "waive",
            "add",
            key["code"],
            key["key"],
            "--reason",
            "accepted for the walkthrough",
            "--owner",
            "newcomer",
            "--expires",
            "2099-01-01",
            cwd=elsewhere,
        )
        assert waived.returncode == 0, waived.stderr

        # 7. writeback --dry-run piped into head: no traceback, no "internal error".
        proc = subprocess.Popen(
            [str(TICKETLINT), "--config", config, "writeback", "--dry-run"],
            cwd=elsewhere,
            env={**me.env, **secrets},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=120) in (0, 141), err
        assert first.startswith("would ") and "internal error" not in err

        # 8. A mistyped key is not "No findings".
        nope = me.run(
            "--config",
            config,
            "check",
            "--source",
            "jira-sandbox",
            "--key",
            "NOPE-999",
            env=secrets,
        )
        assert nope.returncode == 2 and "NOPE-999 not found at jira-sandbox" in nope.stderr
    finally:
        server.stop()

    # 9. An unreachable source fails fast and says why.
    dead = tmp_path / "dead.yaml"
    dead.write_text(
        "sources:\n"
        f"  - {{name: dead, type: jira, url: 'http://127.0.0.1:{_free_port()}', auth: {{pat: x}}}}\n",
        encoding="utf-8",
    )
    t0 = time.monotonic()
    unreachable = me.run("--config", str(dead), "check", "--source", "dead")
    took = time.monotonic() - t0
    assert unreachable.returncode == 2 and "connection refused" in unreachable.stderr
    assert "rate limit" not in unreachable.stderr
    assert took < 10, took  # seconds, process start included (the request itself: < 2 s)
    assert os.listdir(tmp_path / "work") == ["thesis.txt"]
