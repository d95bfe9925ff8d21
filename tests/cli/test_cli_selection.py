"""rules/selection.py (engine from config, --as-of parsing) and plugin command registration."""

from __future__ import annotations

import sys
import types
from datetime import datetime, timezone
from pathlib import Path

import click
import pytest
from cli_support import TEST_PACK
from click.testing import CliRunner

import ticketlint.cli as cli_module
from ticketlint.config import parse_config
from ticketlint.rules.registry import Registry, RuleSelectionError
from ticketlint.rules.selection import engine_from_config, parse_as_of

REGISTRY = Registry([TEST_PACK])


def codes(engine) -> list[str]:
    return [r.code for r in engine.rules]


def test_config_selection_params_and_severity() -> None:
    cfg = parse_config(
        "rules:\n  select: [incident]\n  ignore: [TST002]\n  params: {TST003: {stale_days: 3}}\n  severity: {TST003: high}\n"
    )
    engine = engine_from_config(cfg, registry=REGISTRY)
    assert codes(engine) == ["TST003"]
    assert engine.params["TST003"] == {"stale_days": 3}
    assert engine.severity["TST003"] == "high"


def test_cli_select_replaces_config_select_and_ignore() -> None:
    cfg = parse_config(
        "rules:\n  select: [incident]\n  ignore: [TST001]\n  params: {TST003: {stale_days: 3}}\n"
    )
    assert codes(engine_from_config(cfg, select=["TST001", "TST004"], registry=REGISTRY)) == [
        "TST001",
        "TST004",
    ]
    # params of rules that are not selected are dropped, not an error
    assert (
        codes(engine_from_config(cfg, select=["TST001"], ignore=["TST001"], registry=REGISTRY))
        == []
    )


def test_cli_ignore_alone_replaces_config_ignore() -> None:
    cfg = parse_config("rules:\n  ignore: [TST001]\n")
    assert codes(engine_from_config(cfg, ignore=["TST004"], registry=REGISTRY)) == [
        "TST001",
        "TST002",
        "TST003",
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("rules:\n  select: [NOPE]\n", "selector 'NOPE' matches no rule"),
        ("rules:\n  params: {ZZZ999: {a: 1}}\n", "no rule 'ZZZ999'"),
        ("rules:\n  params: {TST003: {stale_days: many}}\n", "TST003.stale_days: expected int"),
        ("rules:\n  severity: {ZZZ999: low}\n", "no rule 'ZZZ999'"),
    ],
)
def test_selection_errors(text: str, message: str) -> None:
    with pytest.raises(RuleSelectionError, match=message):
        engine_from_config(parse_config(text), registry=REGISTRY)


def test_declarative_paths_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ticketlint.rules.selection

    monkeypatch.setattr(
        ticketlint.rules.selection, "load_registry", lambda extra=(): Registry([TEST_PACK, *extra])
    )
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "r.yaml").write_text(
        "rules:\n  - {code: ORG001, name: org-title, title: T, process: change, require: {field: title, not_empty: true}}\n"
    )
    cfg = parse_config("rules:\n  paths: [org]\n", tmp_path / "ticketlint.yaml")
    monkeypatch.chdir("/")
    assert "ORG001" in codes(engine_from_config(cfg))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-03-31", datetime(2026, 3, 31, tzinfo=timezone.utc)),
        ("2026-03-31T12:30:00", datetime(2026, 3, 31, 12, 30, tzinfo=timezone.utc)),
        ("2026-03-31T12:30:00Z", datetime(2026, 3, 31, 12, 30, tzinfo=timezone.utc)),
        ("2026-03-31T14:30:00+02:00", datetime(2026, 3, 31, 12, 30, tzinfo=timezone.utc)),
    ],
)
def test_parse_as_of(text: str, expected: datetime) -> None:
    parsed = parse_as_of(text)
    assert (
        parsed == expected and parsed.tzinfo is not None and parsed.utcoffset().total_seconds() == 0
    )


def test_parse_as_of_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="not an ISO 8601 date"):
        parse_as_of("31/03/2026")


# --- plugin commands ---------------------------------------------------------------


@click.command("hello")
def _hello() -> None:
    click.echo("hello from a plugin")


def test_plugin_commands_are_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("tlplugin_ok")
    module.COMMANDS = [_hello, click.command("check")(lambda: None)]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tlplugin_ok", module)
    group = click.Group("g", commands={"check": cli_module.check})
    added = cli_module.register_plugins(
        group, ["tlplugin_ok", "tlplugin_missing", "tlplugin_missing.commands"]
    )
    assert added == ["hello"]  # a built-in command is never replaced
    assert group.commands["check"] is cli_module.check
    assert CliRunner().invoke(group, ["hello"]).stdout == "hello from a plugin\n"


def test_an_import_error_inside_a_plugin_surfaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tlplugin_bad.py").write_text(
        "import tl_dependency_that_is_missing\nCOMMANDS = []\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="tl_dependency_that_is_missing"):
        cli_module.register_plugins(click.Group("g"), ["tlplugin_bad"])


def test_command_modules_names_every_plugin_command_where_it_lives() -> None:
    import importlib

    listed = {
        command.name: modname
        for modname in cli_module.PLUGIN_MODULES
        for command in importlib.import_module(modname).COMMANDS
    }
    assert listed == cli_module.COMMAND_MODULES


def _fresh_interpreter(script: str) -> str:
    """What ``script`` prints, run by a new interpreter (nothing imported yet)."""
    import subprocess

    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout


def test_a_plugin_command_imports_its_own_module_only() -> None:
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from ticketlint.cli import cli\n"
        "result = CliRunner().invoke(cli, ['sync', '--help'])\n"
        "assert result.exit_code == 0 and 'Usage:' in result.output, result.output\n"
        "print(sorted(m for m in sys.modules if m.startswith('ticketlint.') and m.endswith('.commands')))\n"
    )
    assert _fresh_interpreter(script).strip() == "['ticketlint.sync.commands']"


def test_starting_the_cli_builds_no_record_or_config_validator() -> None:
    """The record and configuration models build their pydantic validators when first
    used (``defer_build``), not when the CLI starts: ``check --input`` builds records
    without validating them, and every command paid ~25 ms for the schemas at import.
    Once used, they validate as before."""
    script = (
        "import ticketlint.cli\n"
        "from ticketlint.config import Config, parse_config\n"
        "from ticketlint.mapping.model import ChangeRecord, record_from_dict\n"
        "from ticketlint.rules.declarative import DeclarativeRule\n"
        "print([m.__pydantic_complete__ for m in (Config, ChangeRecord, DeclarativeRule)])\n"
        "record = record_from_dict({'process': 'change', 'source': 's', 'system': 'jira',"
        " 'key': 'C-1', 'risk': 'high'})\n"
        "print(record.risk, ChangeRecord.__pydantic_complete__)\n"
        "try:\n"
        "    parse_config('sources: 3')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n"
    )
    assert _fresh_interpreter(script).splitlines() == [
        "[False, False, False]",
        "high True",
        "ConfigError",
    ]
