"""``config validate``, ``config show`` and ``init``: errors name the file and key path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ticketlint.cli import STARTER_CONFIG, cli

VALID = """\
sources:
  - name: jira-prod
    type: jira
    url: https://example.atlassian.net
    auth: {email: ops@example.com, token: "${JIRA_API_TOKEN}"}
notify:
  - {name: ops, type: slack, url: "${SLACK_WEBHOOK_URL}"}
"""


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIRA_API_TOKEN", "tok-secret-123")
    monkeypatch.setenv("SNOW_PASSWORD", "pw-secret-456")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/xyzsecret")


def test_validate_ok(runner: CliRunner, env: None) -> None:
    Path("ticketlint.yaml").write_text(VALID)
    result = runner.invoke(cli, ["config", "validate"])
    assert result.exit_code == 0, result.output
    assert "ticketlint.yaml: OK (1 sources" in result.stdout


def test_validate_without_a_file_exits_2(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["config", "validate"])
    assert result.exit_code == 2
    assert "no configuration found" in result.stderr and "ticketlint init" in result.stderr


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            VALID.replace("jql", "x").replace("    url:", "    urll: https://a.b\n    url:"),
            "cfg.yaml: sources[0].urll: unknown key",
        ),
        ("rules:\n  select: [ALL\n", "cfg.yaml: line 3, column 1: not valid YAML"),
        (
            "database: ${NOPE_NOT_SET}\n",
            "cfg.yaml: database: environment variable NOPE_NOT_SET is not set",
        ),
        (
            "rules:\n  severity: {CHG001: urgent}\n",
            "cfg.yaml: rules.severity.CHG001: Input should be",
        ),
    ],
)
def test_validate_errors_name_file_and_key_path(
    text: str, expected: str, runner: CliRunner, env: None
) -> None:
    Path("cfg.yaml").write_text(text)
    result = runner.invoke(cli, ["--config", "cfg.yaml", "config", "validate"])
    assert result.exit_code == 2
    assert expected in result.stderr, result.stderr


def test_validate_checks_rule_selection(runner: CliRunner, test_registry: object) -> None:
    Path("ticketlint.yaml").write_text("rules:\n  select: [NOPE]\n")
    result = runner.invoke(cli, ["config", "validate"])
    assert result.exit_code == 2
    assert "selector 'NOPE' matches no rule" in result.stderr


def test_show_redacts_secrets(runner: CliRunner, env: None) -> None:
    Path("ticketlint.yaml").write_text(VALID)
    result = runner.invoke(cli, ["config", "show"])
    assert result.exit_code == 0
    assert "tok-secret-123" not in result.stdout and "xyzsecret" not in result.stdout
    shown = yaml.safe_load(result.stdout)
    assert shown["sources"][0]["auth"] == {"email": "ops@example.com", "token": "**********"}
    assert shown["notify"][0]["url"] == "**********"


def test_init_then_validate_round_trip(runner: CliRunner, env: None) -> None:
    result = runner.invoke(cli, ["init"])
    assert result.exit_code == 0, result.output
    text = Path("ticketlint.yaml").read_text()
    assert text == STARTER_CONFIG and text.count("#") > 10  # commented
    result = runner.invoke(cli, ["config", "validate"])
    assert result.exit_code == 0, result.output
    assert "2 sources" in result.stdout


def test_init_file_names_its_unset_env_vars(runner: CliRunner) -> None:
    runner.invoke(cli, ["init"])
    result = runner.invoke(cli, ["config", "validate"])
    assert result.exit_code == 0  # secrets are read when a source is contacted
    assert "sources[0].auth.token: environment variable JIRA_API_TOKEN is not set" in result.stderr


def test_init_refuses_to_overwrite_without_force(runner: CliRunner) -> None:
    Path("ticketlint.yaml").write_text("database: sqlite:///x.db\n")
    result = runner.invoke(cli, ["init"])
    assert result.exit_code == 2
    assert "exists; use --force" in result.stderr
    assert Path("ticketlint.yaml").read_text() == "database: sqlite:///x.db\n"
    assert runner.invoke(cli, ["init", "--force"]).exit_code == 0
    assert Path("ticketlint.yaml").read_text() == STARTER_CONFIG


def test_init_honours_config_path(runner: CliRunner) -> None:
    assert runner.invoke(cli, ["--config", "etc/tl.yaml", "init"]).exit_code == 0
    assert Path("etc/tl.yaml").read_text() == STARTER_CONFIG
