"""Progress on stderr for long commands: a live check shows what it has read on a
terminal, and nothing in a pipe or with -q (issue 17, smaller items)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import ticketlint.cli as cli_mod
from ticketlint.cli import LiveProgress, cli
from ticketlint.connectors.base import StreamBatch
from ticketlint.mapping.common import MappingReport
from ticketlint.mapping.model import record_from_dict
from ticketlint.sync.progress import Progress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_live_progress_writes_on_a_terminal_only() -> None:
    tty = Tty()
    progress = LiveProgress(tty, interval=0)
    progress.update("jira-prod change: 500 records read")
    progress.clear()
    assert "jira-prod change: 500 records read" in tty.getvalue()
    assert tty.getvalue().endswith("\r\033[K")  # the line is gone before results print
    pipe = io.StringIO()
    LiveProgress(pipe, interval=0).update("x")
    assert pipe.getvalue() == ""


class _Connector:
    streams = ("incident",)
    request_count = 3

    def read(self, stream: str, **_: Any) -> Iterator[StreamBatch]:
        record = record_from_dict(
            {
                "source": "jira-prod",
                "system": "jira",
                "key": "OPS-1",
                "process": "incident",
                "state": "in_progress",
                "priority": 2,
            }
        )
        yield StreamBatch(stream, [record], MappingReport(rows=1, mapped=1), None)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("quiet", [False, True])
def test_live_check_progress_follows_terminal_and_quiet(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, quiet: bool
) -> None:
    Path("ticketlint.yaml").write_text(
        "sources:\n  - {name: jira-prod, type: jira, url: 'https://x.atlassian.net', "
        "auth: {pat: p}}\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(cli_mod, "_open_connector", lambda src: _Connector())
    seen: list[LiveProgress] = []
    real = cli_mod.LiveProgress

    def recording(*args: Any, **kwargs: Any) -> LiveProgress:
        made = real(*args, **kwargs)
        seen.append(made)
        return made

    monkeypatch.setattr(cli_mod, "LiveProgress", recording)
    monkeypatch.setattr(cli_mod, "_stderr_is_terminal", lambda: True)
    args = (["-q"] if quiet else []) + ["check", "--source", "jira-prod", "--exit-zero"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert [p.enabled for p in seen] == [not quiet]


def test_sync_progress_is_silent_with_quiet_but_keeps_errors() -> None:
    out = io.StringIO()
    progress = Progress(out, quiet=True)
    progress.event("source_start", "jira-prod: syncing")
    progress.event("source_failed", "jira-prod: FAILED: refused", level="error")
    assert "FAILED: refused" in out.getvalue() and "syncing" not in out.getvalue()


def test_the_sync_table_explains_rows_read_that_are_not_records() -> None:
    from collections import Counter

    from ticketlint.mapping.common import MappingError
    from ticketlint.sync.progress import read_note

    report = MappingReport(rows=300, mapped=270, skipped_empty=2)
    report.errors = [MappingError("jira-prod", "OPS-9", "bad date")]
    report.warnings = Counter({"unmapped issue type Epic": 5, "unknown priority P9": 1})
    assert read_note("jira-prod", report) == (
        "  jira-prod: 300 rows read = 270 records + 1 mapping errors (listed below) + 2 empty "
        "rows (hidden by an ACL) + 5 of issue types that map to no process (Epic 5; see "
        "issue_types) + 22 not records themselves (review issues and linked rows)"
    )
    assert read_note("x", MappingReport(rows=3, mapped=3)) is None


def test_doctor_says_a_shared_reason_once() -> None:
    from ticketlint.connectors.base import DoctorCheck, DoctorReport
    from ticketlint.report.formats import render_doctor

    codes = [f"CHG00{i}" for i in range(1, 9)]
    report = DoctorReport(
        source="jira-prod",
        checks=[DoctorCheck("auth", False, "HTTP 401")],
        not_evaluated={**dict.fromkeys(codes, "authentication failed"), "INC004": "no review"},
    )
    text = render_doctor(report)
    assert text.count("authentication failed") == 1
    assert "8 rules (CHG001, CHG002" in text and "    INC004: no review" in text
