"""One redaction function for ``config show``, ``config validate``, logs and tracebacks."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from ticketlint.cli import cli
from ticketlint.redact import RedactingFormatter, redact

SECRETS = ("pg-pass-42", "url-pass-7", "qtok-99", "bare-tok-5")

CONFIG = """\
database: postgresql+psycopg://tl:pg-pass-42@db.example:5432/tl
sources:
  - name: jira-prod
    type: jira
    url: https://bob:url-pass-7@example.atlassian.net/?token=qtok-99
    auth: {email: ops@example.com, token: abc}
  - name: snow
    type: servicenow
    url: https://bare-tok-5@example.service-now.com
    auth: {user: u, password: p}
"""


@pytest.mark.parametrize(
    "text, gone, kept",
    [
        ("postgresql://tl:pg-pass-42@db/tl", "pg-pass-42", "postgresql://tl:***@db/tl"),
        ("https://bare-tok-5@h.example/x", "bare-tok-5", "https://***@h.example/x"),
        ("GET https://h/a?sysparm_limit=5&access_token=qtok-99", "qtok-99", "sysparm_limit=5"),
        ("https://h/a?X-Amz-Signature=qtok-99&v=1", "qtok-99", "v=1"),
        ("host=db user=tl password=pg-pass-42 dbname=tl", "pg-pass-42", "dbname=tl"),
        ("Authorization: Bearer qtok-99", "qtok-99", "Authorization: ***"),
    ],
)
def test_redact(text: str, gone: str, kept: str) -> None:
    out = redact(text)
    assert gone not in out and kept in out


def test_redact_keeps_ordinary_text() -> None:
    text = "sources[0].auth.password: required key is missing; mail j.doe@example.com"
    assert redact(text) == text


def test_config_show_redacts_database_and_url_credentials(runner: CliRunner) -> None:
    Path("ticketlint.yaml").write_text(CONFIG)
    result = runner.invoke(cli, ["config", "show"])
    assert result.exit_code == 0, result.output
    for secret in SECRETS:
        assert secret not in result.stdout
    assert "postgresql+psycopg://tl:***@db.example:5432/tl" in result.stdout


def test_config_validate_does_not_echo_credentials_of_a_malformed_url(runner: CliRunner) -> None:
    Path("ticketlint.yaml").write_text(
        CONFIG.replace(
            "url: https://bob:url-pass-7@example.atlassian.net/?token=qtok-99",
            "url: htps://bob:url-pass-7@example.atlassian.net/?token=qtok-99",
        )
    )
    result = runner.invoke(cli, ["config", "validate"])
    assert result.exit_code == 2
    assert "sources[0].url" in result.stderr
    for secret in SECRETS:
        assert secret not in result.stderr + result.stdout


def test_traceback_at_vv_is_redacted(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    Path("ticketlint.yaml").write_text(CONFIG)

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("GET https://bob:url-pass-7@h.example/api?token=qtok-99 exploded")

    monkeypatch.setattr("ticketlint.cli.engine_from_config", boom)
    result = runner.invoke(cli, ["-vv", "config", "validate"])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "exploded" in result.stderr
    for secret in SECRETS:
        assert secret not in result.stderr


def test_log_lines_are_redacted() -> None:
    record = logging.LogRecord(
        "ticketlint",
        logging.WARNING,
        __file__,
        1,
        "opening %s",
        ("postgresql://a:pg-pass-42@h/d",),
        None,
    )
    assert "pg-pass-42" not in RedactingFormatter("%(message)s").format(record)
