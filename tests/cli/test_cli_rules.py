"""``rules list`` and ``rules explain``."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ticketlint.cli import cli
from ticketlint.rules.registry import DOC_SECTIONS, load_registry


def test_list_text(runner: CliRunner, test_registry: object) -> None:
    result = runner.invoke(cli, ["rules", "list"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["TST001", "TST002", "TST003", "TST004"]
    assert lines[0].split()[1:4] == ["test-backout-missing", "high", "8.5.1.3"]


def test_list_json_and_markdown(runner: CliRunner, test_registry: object) -> None:
    data = json.loads(runner.invoke(cli, ["rules", "list", "-f", "json"]).stdout)
    assert data[2]["code"] == "TST003" and data[2]["params"] == {"stale_days": 14}
    assert data[2]["processes"] == ["incident"] and set(data[2]["sections"]) == set(DOC_SECTIONS)
    md = runner.invoke(cli, ["rules", "list", "-f", "markdown"]).stdout
    assert md.splitlines()[0].startswith("| Code | Name |")
    assert "| TST004 | test-ci-owner-missing | medium | 8.2.6 | ci | CI without an owner |" in md


def test_explain_reads_like_ruff_rule(runner: CliRunner, test_registry: object) -> None:
    result = runner.invoke(cli, ["rules", "explain", "tst003"])
    assert result.exit_code == 0
    out = result.stdout
    assert out.startswith("# Open incident not updated (TST003)\n")
    assert "Severity: low" in out and "Clause: ISO/IEC 20000-1:2018 8.6.1" in out
    assert "Processes: incident" in out and "  stale_days: 14" in out
    positions = [out.index(f"## {s}") for s in DOC_SECTIONS]
    assert positions == sorted(positions)


def test_explain_by_name_shows_configured_severity(
    runner: CliRunner, test_registry: object
) -> None:
    Path("ticketlint.yaml").write_text("rules:\n  severity: {TST003: high}\n")
    out = runner.invoke(cli, ["rules", "explain", "test-incident-stale"]).stdout
    assert "Severity: high (configured; default low)" in out


def test_explain_unknown_code_exits_2(runner: CliRunner, test_registry: object) -> None:
    result = runner.invoke(cli, ["rules", "explain", "XYZ999"])
    assert result.exit_code == 2
    assert "no rule 'XYZ999'" in result.stderr


def test_declarative_rules_from_config_are_listed(runner: CliRunner, test_registry: object) -> None:
    Path("custom").mkdir()
    Path("custom/rules.yaml").write_text(
        "rules:\n"
        "  - code: ORG001\n"
        "    name: change-ticket-title-missing\n"
        "    title: Change without a title\n"
        "    severity: low\n"
        "    clause: 8.5.1.3\n"
        "    process: change\n"
        "    require: {field: title, not_empty: true}\n"
        "    message: change {key} has no title\n"
    )
    Path("ticketlint.yaml").write_text("rules:\n  paths: [custom]\n")
    result = runner.invoke(cli, ["rules", "list"])
    assert result.exit_code == 0, result.output
    assert "ORG001" in result.stdout


def test_every_real_rule_can_be_explained(runner: CliRunner) -> None:
    for code in load_registry().rules:
        result = runner.invoke(cli, ["rules", "explain", code])
        assert result.exit_code == 0, (code, result.output)
        assert f"({code})" in result.stdout.splitlines()[0]
