"""After ``ticketlint init`` offline commands work without the secrets' environment
variables; a command that contacts a source says which variable it needs (issue 17 item 6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ticketlint.cli import cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "jira"


@pytest.fixture
def initialised(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for var in ("JIRA_API_TOKEN", "SNOW_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    assert runner.invoke(cli, ["init"]).exit_code == 0
    return runner


def test_offline_commands_work_without_the_secrets(initialised: CliRunner) -> None:
    checked = initialised.invoke(
        cli, ["check", "--input", str(EXAMPLE), "--as-of", "2026-11-20", "--exit-zero"]
    )
    assert checked.exit_code == 0, checked.output
    assert "JIRA_API_TOKEN" not in checked.output
    for args in (["rules", "list"], ["config", "show"]):
        result = initialised.invoke(cli, args)
        assert result.exit_code == 0 and "is not set" not in result.output, args
    findings = initialised.invoke(cli, ["findings"])
    assert "JIRA_API_TOKEN" not in findings.output and "no store at" in findings.output


def test_config_validate_notes_the_unset_variables(initialised: CliRunner) -> None:
    result = initialised.invoke(cli, ["config", "validate"])
    assert result.exit_code == 0, result.output
    assert "sources[0].auth.token: environment variable JIRA_API_TOKEN is not set" in (
        result.stderr
    )


def test_contacting_a_source_names_its_missing_variable(initialised: CliRunner) -> None:
    result = initialised.invoke(cli, ["check", "--source", "jira-prod"])
    assert result.exit_code == 2
    assert (
        "sources[0].auth.token: environment variable JIRA_API_TOKEN is not set "
        "(needed to contact source 'jira-prod')"
    ) in result.output
    doctor = initialised.invoke(cli, ["doctor", "--source", "snow-prod"])
    assert doctor.exit_code == 2 and "SNOW_PASSWORD is not set" in doctor.output
