"""The sync package's CLI: sync, findings (list, show, formats), waive add/list/remove, db."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from sync_fakes import change, incident, write_data

from ticketlint.sync.commands import COMMANDS


@click.group()
@click.option("--config", "config_path")
@click.pass_context
def top(ctx: click.Context, config_path: str | None) -> None:
    ctx.obj = {"config_path": config_path}  # what cli.py hands over


for _command in COMMANDS:
    top.add_command(_command)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> dict[str, Any]:
    config = tmp_path / "ticketlint.yaml"
    config.write_text(
        f"""
database: "{db_url}"
sources:
  - {{name: jira-prod, type: jira, url: "https://example.atlassian.net", auth: {{pat: x}}}}
  - {{name: snow-prod, type: servicenow, url: "https://x.service-now.com", auth: {{user: u, password: p}}}}
waivers:
  - {{rule: TST002, key: "INC9*", reason: "legacy import", owner: ops, expires: 2026-03-15}}
""",
        encoding="utf-8",
    )
    data = tmp_path / "data.json"
    write_data(
        data,
        {
            "jira-prod": {
                "change": [
                    change("jira-prod", "CHG-1", assignee=None),
                    change("jira-prod", "CHG-2"),
                    change("jira-prod", "CHG-3", backout="ok"),
                ]
            },
            "snow-prod": {
                "incident": [
                    incident("snow-prod", "INC1", group="Service Desk"),
                    incident("snow-prod", "INC90"),
                ]
            },
        },
    )
    monkeypatch.setenv("TICKETLINT_FAKE_DATA", str(data))
    monkeypatch.setenv("TICKETLINT_TEST_CONNECTOR", "sync_fakes:connector_from_env")
    monkeypatch.setenv("TICKETLINT_TEST_ENGINE", "sync_fakes:engine")
    return {"config": str(config), "data": data}


def cli(env: dict[str, Any], *args: str) -> Any:
    return CliRunner().invoke(top, ["--config", env["config"], *args], catch_exceptions=False)


def test_sync_prints_summary_then_findings_lists_them(env: dict[str, Any]) -> None:
    result = cli(env, "sync", "--as-of", "2026-03-10")
    assert result.exit_code == 0, result.output
    assert (
        "source" in result.stdout and "jira-prod" in result.stdout and "2 (2 high)" in result.stdout
    )
    assert "jira-prod/change: done" in result.stderr

    listed = cli(env, "findings", "-f", "json")
    data = json.loads(listed.stdout)
    assert {(f["code"], f["key"], f["state"]) for f in data["findings"]} == {
        ("TST001", "CHG-1", "open"),
        ("TST001", "CHG-2", "open"),
        ("TST002", "INC1", "open"),
    }
    for key in (
        "code",
        "name",
        "severity",
        "clause",
        "source",
        "key",
        "process",
        "url",
        "message",
        "assignee",
        "group",
        "fingerprint",
    ):
        assert key in data["findings"][0]
    waived = json.loads(cli(env, "findings", "--state", "waived", "-f", "json").stdout)["findings"]
    assert [(f["key"], f["waiver"]) for f in waived] == [("INC90", "config[0]")]

    assert [
        json.loads(line)["key"]
        for line in cli(
            env, "findings", "--group", "Service Desk", "-f", "jsonl"
        ).stdout.splitlines()
    ] == ["INC1"]
    rows = list(
        csv.DictReader(io.StringIO(cli(env, "findings", "--rule", "tst001", "-f", "csv").stdout))
    )
    assert sorted(r["key"] for r in rows) == ["CHG-1", "CHG-2"]
    assert "| TST001 |" in cli(env, "findings", "-f", "markdown").stdout
    text = cli(env, "findings", "--source", "snow-prod").stdout
    assert "TST002  snow-prod/INC1" in text and "1 findings (1 medium)" in text
    # Who fixes it (assignee and group) and where (the link) are on every finding.
    assert "snow-prod/INC1 (Service Desk):" in text
    jira = cli(env, "findings", "--source", "jira-prod", "--rule", "TST001").stdout.splitlines()
    assert any(line.strip() == "https://x/CHG-2" for line in jira), jira
    assert cli(env, "findings", "--since", "1d").stdout.count("TST") == 3
    assert "No findings." in cli(env, "findings", "--since", "2999-01-01").stdout


def test_findings_show_by_id_and_fingerprint_prefix(env: dict[str, Any]) -> None:
    cli(env, "sync", "--as-of", "2026-03-10")
    first = json.loads(cli(env, "findings", "--rule", "TST002", "-f", "json").stdout)["findings"][0]
    by_id = cli(env, "findings", "show", str(first["id"]))
    assert by_id.exit_code == 0
    assert "TST002 incident-notes" in by_id.stdout and "snow-prod INC1" in by_id.stdout
    assert "history:" in by_id.stdout and "opened" in by_id.stdout
    assert "remediation: Write them." in by_id.stdout
    by_fp = cli(env, "findings", "show", first["fingerprint"][:10])
    assert by_fp.stdout == by_id.stdout
    missing = cli(env, "findings", "show", "ffffffffff")
    assert missing.exit_code == 2 and "no finding" in missing.stderr


def test_waiver_lifecycle_through_the_cli(env: dict[str, Any]) -> None:
    cli(env, "sync", "--as-of", "2026-03-10")
    refused = cli(
        env, "waive", "add", "TST001", "CHG-*", "--owner", "j.doe", "--expires", "2099-01-01"
    )
    assert refused.exit_code == 2 and "--reason is required" in refused.stderr
    refused = cli(env, "waive", "add", "TST001", "CHG-*", "--reason", "x", "--owner", "o")
    assert refused.exit_code == 2 and "--expires is required" in refused.stderr
    refused = cli(
        env, "waive", "add", "TST001", "CHG-*", "--reason", "x", "--expires", "2099-01-01"
    )
    assert refused.exit_code == 2 and "--owner is required" in refused.stderr

    added = cli(
        env,
        "waive",
        "add",
        "TST001",
        "CHG-1*",
        "--reason",
        "migrated tickets",
        "--owner",
        "j.doe",
        "--expires",
        "2099-01-01",
        "--source",
        "jira-prod",
    )
    assert added.exit_code == 0, added.output
    assert "added waiver W1" in added.stdout and "1 open finding now waived" in added.stdout
    listing = cli(env, "waive", "list").stdout
    assert "W1" in listing and "config[0]" in listing and "EXPIRED" in listing  # config one ran out
    waived = json.loads(cli(env, "findings", "--state", "waived", "-f", "json").stdout)["findings"]
    assert {f["key"] for f in waived} == {"CHG-1", "INC90"}

    # The next sync agrees with the waiver; the config waiver has expired by then.
    cli(env, "sync", "--as-of", "2026-03-20")
    states = {
        (f["key"], f["state"])
        for f in json.loads(cli(env, "findings", "--state", "all", "-f", "json").stdout)["findings"]
    }
    assert states == {("CHG-1", "waived"), ("CHG-2", "open"), ("INC1", "open"), ("INC90", "open")}
    inc90 = json.loads(cli(env, "findings", "-f", "json").stdout)["findings"]
    inc90_id = next(f["id"] for f in inc90 if f["key"] == "INC90")
    assert (
        "waiver config[0] expired on 2026-03-15"
        in cli(env, "findings", "show", str(inc90_id)).stdout
    )

    removed = cli(env, "waive", "remove", "W1")
    assert removed.exit_code == 0 and "1 finding reopened" in removed.stdout
    assert cli(env, "waive", "remove", "W1").exit_code == 2
    assert cli(env, "waive", "remove", "config[0]").exit_code == 2
    assert ("CHG-1", "open") in {
        (f["key"], f["state"])
        for f in json.loads(cli(env, "findings", "-f", "json").stdout)["findings"]
    }


def test_sync_dry_run_json_logs_and_db_upgrade(env: dict[str, Any]) -> None:
    from ticketlint.store.db import head_revision

    assert f"database at revision {head_revision()}" in cli(env, "db", "upgrade").stdout
    dry = cli(env, "sync", "--dry-run", "--as-of", "2026-03-10", "--log-format", "json")
    assert dry.exit_code == 0
    results = [json.loads(line) for line in dry.stdout.splitlines()]
    diff = [e for e in results if e["event"] == "diff"]
    assert {
        "message": "new       TST001  jira-prod/CHG-1: no backout plan",
        "kind": "new",
        "rule": "TST001",
        "source": "jira-prod",
        "key": "CHG-1",
        "why": "no backout plan",
    }.items() <= next(e for e in diff if e["key"] == "CHG-1").items()
    rows = {e["source"]: e for e in results if e["event"] == "source_summary"}
    assert set(rows) == {"jira-prod", "snow-prod"} and rows["jira-prod"]["status"] == "ok"
    events = [json.loads(line) for line in dry.stderr.splitlines()]
    assert {"source_start", "stream_done", "summary"} <= {e["event"] for e in events}
    assert cli(env, "findings").stdout == "No findings.\n"
    unknown = cli(env, "sync", "--source", "nope")
    assert unknown.exit_code == 2 and "no source named 'nope'" in unknown.stderr


def _only_jira(env: dict[str, Any], changes: list[Any], **options: Any) -> None:
    write_data(env["data"], {"jira-prod": {"change": changes}}, **options)


def test_sync_lists_records_not_checked_and_values_not_read(env: dict[str, Any]) -> None:
    _only_jira(
        env,
        [change("jira-prod", "CHG-1", assignee=None), change("jira-prod", "CHG-2")],
        bad_rows=12,
        unreadable=3,
    )
    result = cli(env, "sync", "--source", "jira-prod", "--as-of", "2026-03-10")
    assert result.exit_code == 0, result.output
    out = result.stdout
    header, _, row = out.splitlines()[:3]
    assert "unchecked  unreadable" in header
    assert row.split()[:6] == ["jira-prod", "ok", "14", "2", "12", "4"]
    assert "  jira-prod: 12 records not checked:\n    BAD-0 (error): unparsable date\n" in out
    listed = [line.split()[0] for line in out.splitlines() if "(error): unparsable" in line]
    assert listed == sorted(f"BAD-{i}" for i in range(12))[:10]  # sorted as check sorts them
    assert (
        "    ... and 2 more; all with key and reason in the JSON summary (sync --log-format json)"
        in out
    )
    assert (
        "  jira-prod: 4 values could not be read (that field unknown, the record still checked):\n"
        "    change.cab_date: not a date or time x3\n"
        "    change.priority: not a number x1\n"
    ) in out
    assert "warning: jira-prod: 12 records not checked (listed above)" in result.stderr

    # The JSON summary carries every one; the run row keeps the counts and the first 20.
    logged = cli(env, "sync", "--source", "jira-prod", "--log-format", "json")
    assert logged.exit_code == 0, logged.output
    [summary] = [e for e in map(json.loads, logged.stderr.splitlines()) if e["event"] == "summary"]
    jira = summary["sources"]["jira-prod"]
    assert [e["key"] for e in jira["not_checked"]] == sorted(f"BAD-{i}" for i in range(12))
    assert jira["not_checked"][0] == {
        "source": "jira-prod",
        "key": "BAD-0",
        "reason": "unparsable date",
        "kind": "error",
    }
    assert jira["mapping"]["not_checked"] == 12
    assert jira["mapping"]["unreadable"] == [
        {"field": "change.cab_date", "reason": "not a date or time", "count": 3},
        {"field": "change.priority", "reason": "not a number", "count": 1},
    ]


def test_sync_exits_2_when_a_source_returned_records_and_none_could_be_checked(
    env: dict[str, Any],
) -> None:
    _only_jira(env, [], bad_rows=3)
    result = cli(env, "sync", "--source", "jira-prod", "--as-of", "2026-03-10")
    assert result.exit_code == 2, result.output
    assert "  jira-prod: 3 records not checked:" in result.stdout
    assert (
        "error: jira-prod: none of the 3 records read could be checked (listed above); "
        "fix the mapping, then `ticketlint sync --full` reads them again"
    ) in result.stderr
    # A source that returned nothing at all is not an error.
    _only_jira(env, [])
    assert cli(env, "sync", "--source", "jira-prod").exit_code == 0


def _json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as a JSON object (a plain line fails the test, named)."""
    out = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(event, dict) and {"ts", "level", "event", "message"} <= set(event)
        out.append(event)
    return out


@pytest.mark.parametrize("dry_run", [False, True], ids=["sync", "dry-run"])
def test_a_failing_sync_under_log_format_json_writes_only_json_lines(
    env: dict[str, Any], dry_run: bool
) -> None:
    """Every line on stdout and stderr of a run where one source fails, rows are not
    checked, a connector logs a warning and Python warns: progress, warnings, the
    failure, the summary, log records and the results table."""
    from ticketlint.cli import cli as ticketlint

    write_data(
        env["data"],
        {
            "jira-prod": {"change": [change("jira-prod", f"CHG-{i}") for i in range(1, 5)]},
            "snow-prod": {"incident": [incident("snow-prod", "INC1")]},
        },
        fail_stream="change",
        bad_rows=2,
        log_warning="sys_dictionary was refused (HTTP 403)",
    )
    args = ["--config", env["config"], "sync", "--as-of", "2026-03-10", "--log-format", "json"]
    result = CliRunner().invoke(ticketlint, args + (["--dry-run"] if dry_run else []))
    assert result.exit_code == 2, result.output
    err, out = _json_lines(result.stderr), _json_lines(result.stdout)

    [failed] = [e for e in err if e["event"] == "source_failed"]
    assert failed["level"] == "error" and failed["source"] == "jira-prod"
    assert failed["message"].startswith("jira-prod: FAILED: ")
    assert "HTTP 503 while paging" in failed["error"]
    logged = [e for e in err if e["event"] == "log"]
    assert any(
        e["logger"] == "ticketlint.connectors.fake"
        and e["level"] == "warning"
        and e["message"] == "jira-prod: sys_dictionary was refused (HTTP 403)"
        for e in logged
    ), logged
    assert any(e["logger"] == "py.warnings" for e in logged), logged  # warnings.warn
    assert [e["source"] for e in err if e["event"] == "not_checked"] == ["snow-prod"]
    assert {"source_start", "stream_done", "summary"} <= {e["event"] for e in err}
    [summary] = [e for e in err if e["event"] == "summary"]
    assert summary["sources"]["jira-prod"]["status"] == "failed"

    rows = {e["source"]: e for e in out if e["event"] == "source_summary"}
    assert rows["jira-prod"]["status"] == "failed" and rows["jira-prod"]["reads"] is None
    assert rows["snow-prod"]["status"] == "ok" and rows["snow-prod"]["not_checked"] == 2
    assert {e["event"] for e in out} <= {"diff", "source_summary"}


def test_sync_log_format_json_reports_a_configuration_error_as_json(
    env: dict[str, Any], tmp_path: Path
) -> None:
    from ticketlint.cli import cli as ticketlint

    bad = tmp_path / "bad.yaml"
    bad.write_text("writeback: {enabled: 1}\n", encoding="utf-8")
    result = CliRunner().invoke(ticketlint, ["--config", str(bad), "sync", "--log-format", "json"])
    assert result.exit_code == 2 and result.stdout == ""
    [error] = _json_lines(result.stderr)
    assert error["event"] == "error" and error["level"] == "error"
    assert error["message"] == (
        f"{bad}: writeback.enabled: Input should be a valid boolean (got 1)"
    )
    # Without --log-format json the same error stays one plain line.
    plain = CliRunner().invoke(ticketlint, ["--config", str(bad), "sync"])
    assert plain.exit_code == 2
    assert (
        plain.stderr
        == f"error: {bad}: writeback.enabled: Input should be a valid boolean (got 1)\n"
    )


def test_the_dry_run_diff_makes_a_tickets_key_and_text_inert() -> None:
    from datetime import datetime, timezone

    from ticketlint.rules.engine import Finding
    from ticketlint.store.lifecycle import Change, Diff
    from ticketlint.sync.commands import render_diff
    from ticketlint.sync.runner import SourceResult, SyncResult

    finding = Finding(
        code="CHG001",
        name="n",
        title="t",
        severity="high",
        clause="8.5.1",
        source="jira",
        key="CHG-1\x1b[2J",
        process="change",
        url=None,
        message="no approval\r\n\u202eforged line",
        assignee=None,
        group=None,
        fingerprint="f",
        remediation="r",
    )
    source = SourceResult("jira")
    source.diff = Diff([Change("f", "new", "open", finding, None)])
    result = SyncResult(run_id=None, as_of=datetime(2026, 3, 5, tzinfo=timezone.utc), dry_run=True)
    result.sources.append(source)
    text = render_diff(result)
    assert text.count("\n") == 2  # one line, then the blank line after it
    assert "\x1b" not in text and "\u202e" not in text and "\r" not in text
    assert "CHG-1\\x1b[2J" in text and "\\u202eforged line" in text
