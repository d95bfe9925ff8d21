"""Ctrl-C during ``ticketlint sync`` (a real SIGINT to a real process): exit 130, a line
saying what was saved, and the run marked interrupted in the store at once (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select
from sync_fakes import change, incident, write_data

from ticketlint.store.db import open_store
from ticketlint.store.models import RunRow

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def test_sigint_during_sync_exits_130_and_marks_the_run_interrupted(
    tmp_path: Path, db_url: str
) -> None:
    config = tmp_path / "ticketlint.yaml"
    config.write_text(
        f"""
database: "{db_url}"
sources:
  - {{name: jira-prod, type: jira, url: "https://example.atlassian.net", auth: {{pat: x}}}}
  - {{name: snow-prod, type: servicenow, url: "https://x.service-now.com", auth: {{user: u, password: p}}}}
""",
        encoding="utf-8",
    )
    data = tmp_path / "data.json"
    # snow-prod's read may start while jira-prod is still being checked (read ahead):
    # the signal comes once the runner waits for snow-prod's first page.
    write_data(
        data,
        {
            "jira-prod": {"change": [change("jira-prod", "CHG-1")]},
            "snow-prod": {"incident": [incident("snow-prod", "INC1")]},
        },
        sigint_stream="incident",
        sigint_delay=1.0,
    )
    env = {
        **os.environ,
        "TICKETLINT_FAKE_DATA": str(data),
        "TICKETLINT_TEST_CONNECTOR": "sync_fakes:connector_from_env",
        "TICKETLINT_TEST_ENGINE": "sync_fakes:engine",
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "ticketlint.cli", "--config", str(config), "sync", "--no-notify"],
        env=env,
        cwd=tmp_path,
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 130, proc.stderr
    assert "Aborted!" not in proc.stderr
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("interrupted:"))
    assert "jira-prod committed" in line and "snow-prod not finished" in line
    store = open_store(db_url)
    try:
        with store.session() as s:
            assert list(s.scalars(select(RunRow.status))) == ["interrupted"]
    finally:
        store.dispose()
