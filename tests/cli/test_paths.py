"""Relative paths in a configuration resolve against the configuration file's directory,
and commands that read the store refuse one that does not exist (issue 17 item 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ticketlint.cli import cli
from ticketlint.config import parse_config

CONFIG = """\
database: sqlite:///.ticketlint/t.db
sources:
  - name: jira-prod
    type: jira
    url: https://example.atlassian.net
    auth: {email: ops@example.com, token: t}
    verify: certs/ca.pem
rules:
  paths: [rules/]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    home = tmp_path / "project"
    home.mkdir()
    (home / "ticketlint.yaml").write_text(CONFIG, encoding="utf-8")
    (home / "rules").mkdir()
    (tmp_path / "elsewhere").mkdir()
    return home


def test_relative_paths_resolve_against_the_config_files_directory(project: Path) -> None:
    cfg = parse_config(CONFIG, Path("project-dir/sub/ticketlint.yaml"))
    base = Path("project-dir/sub").absolute()
    assert cfg.database == f"sqlite:///{base / '.ticketlint' / 't.db'}"
    assert cfg.rules.paths == [str(base / "rules")]
    assert cfg.sources[0].verify == str(base / "certs" / "ca.pem")


@pytest.mark.parametrize(
    "url",
    ["sqlite:////abs/t.db", "sqlite://", "sqlite:///:memory:", "postgresql://u@h/db"],
)
def test_absolute_memory_and_server_urls_are_unchanged(url: str) -> None:
    assert parse_config(f"database: '{url}'\n", Path("x/ticketlint.yaml")).database == url


def test_from_another_directory_the_same_store_is_used(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = str(project / "ticketlint.yaml")
    runner = CliRunner()
    created = runner.invoke(cli, ["--config", config, "db", "upgrade"])
    assert created.exit_code == 0, created.output
    assert (project / ".ticketlint" / "t.db").exists()
    assert not (tmp_path / "elsewhere" / ".ticketlint").exists()
    listed = runner.invoke(cli, ["--config", config, "findings"])
    assert listed.exit_code == 0 and "No findings" in listed.output


@pytest.mark.parametrize(
    "args",
    [
        ["findings"],
        ["findings", "show", "1"],
        ["report", "-o", "r.html"],
        ["waive", "list"],
        ["writeback", "--dry-run"],
        ["notify", "status"],
    ],
)
def test_store_reading_commands_refuse_a_missing_store(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = CliRunner().invoke(cli, ["--config", str(project / "ticketlint.yaml"), *args])
    assert result.exit_code == 2, result.output
    expected = project / ".ticketlint" / "t.db"
    assert f"no store at {expected}" in result.output
    assert "run `ticketlint sync` first" in result.output
    assert not expected.exists() and not (tmp_path / "elsewhere" / ".ticketlint").exists()


def test_without_any_config_findings_does_not_invent_an_empty_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("TICKETLINT_CONFIG", raising=False)
    result = CliRunner().invoke(cli, ["findings"])
    assert result.exit_code == 2 and "no store at" in result.output
    assert "no configuration file found" in result.output
    assert not (tmp_path / ".ticketlint").exists()
