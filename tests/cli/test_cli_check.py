"""``ticketlint check`` with --input: exit codes, options and error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import AS_OF
from click.testing import CliRunner

import ticketlint.cli as cli_module
from ticketlint.cli import cli


def check(runner: CliRunner, *args: str):
    return runner.invoke(cli, ["check", "--as-of", AS_OF, *args])


def test_findings_exit_1(runner: CliRunner, records_jsonl: Path, test_registry: object) -> None:
    assert check(runner, "-i", str(records_jsonl)).exit_code == 1


def test_fail_on_above_every_finding_exits_0(
    runner: CliRunner, records_jsonl: Path, test_registry: object
) -> None:
    # only TST003 (low) findings remain; --fail-on medium does not fail on them
    result = check(runner, "-i", str(records_jsonl), "--select", "TST003", "--fail-on", "medium")
    assert result.exit_code == 0, result.output
    assert "2 findings (2 low)" in result.stdout


def test_fail_on_high_still_fails_on_high(
    runner: CliRunner, records_jsonl: Path, test_registry: object
) -> None:
    assert check(runner, "-i", str(records_jsonl), "--fail-on", "high").exit_code == 1
    assert check(runner, "-i", str(records_jsonl), "--fail-on", "critical").exit_code == 0


def test_exit_zero_forces_0(runner: CliRunner, records_jsonl: Path, test_registry: object) -> None:
    result = check(runner, "-i", str(records_jsonl), "--exit-zero")
    assert result.exit_code == 0
    assert "4 findings" in result.stdout


def test_clean_run_exits_0(runner: CliRunner, records_jsonl: Path, test_registry: object) -> None:
    result = check(runner, "-i", str(records_jsonl), "--select", "TST004")
    assert result.exit_code == 0
    assert result.stdout.startswith(
        "No findings in 0 of 8 records (1 rule, as of 2026-03-31T00:00:00Z)."
    )


def test_select_comma_list_and_ignore(
    runner: CliRunner, records_jsonl: Path, test_registry: object
) -> None:
    result = check(
        runner,
        "-i",
        str(records_jsonl),
        "-f",
        "json",
        "--select",
        "TST001,TST002",
        "--ignore",
        "TST002",
    )
    assert sorted(json.loads(result.stdout)["summary"]["rules"]) == ["TST001"]


def test_config_select_ignore_params_and_severity_apply(
    runner: CliRunner, records_jsonl: Path, test_registry: object
) -> None:
    Path("ticketlint.yaml").write_text(
        "rules:\n  ignore: [TST001]\n  params: {TST003: {stale_days: 45}}\n  severity: {TST002: critical}\n"
    )
    data = json.loads(check(runner, "-i", str(records_jsonl), "-f", "json").stdout)
    assert "TST001" not in data["summary"]["rules"]
    assert [(f["code"], f["key"], f["severity"]) for f in data["findings"]] == [
        ("TST002", "INC-7", "critical"),
        ("TST003", "INC-7", "low"),  # INC0010001 is 30 days old < 45
    ]


def test_output_file(runner: CliRunner, records_jsonl: Path, test_registry: object) -> None:
    Path("out").mkdir()  # -o never creates directories (test_ordinary_mistakes.py)
    result = check(runner, "-i", str(records_jsonl), "-f", "json", "-o", "out/result.json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert json.loads(Path("out/result.json").read_text())["summary"]["findings"] == 4
    assert "written to out/result.json" in result.stderr


def test_quiet_keeps_stderr_empty(
    runner: CliRunner, records_jsonl: Path, test_registry: object
) -> None:
    result = runner.invoke(
        cli, ["-q", "check", "--as-of", AS_OF, "-i", str(records_jsonl), "-f", "json"]
    )
    assert result.stderr == ""


def test_colour_only_on_a_terminal_and_never_with_no_color(
    runner: CliRunner, records_jsonl: Path, test_registry: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_module, "_colour_wanted", lambda: True)
    result = runner.invoke(cli, ["check", "--as-of", AS_OF, "-i", str(records_jsonl)], color=True)
    assert "\x1b[" in result.stdout
    monkeypatch.undo()
    monkeypatch.setenv("NO_COLOR", "1")
    assert cli_module._colour_wanted() is False


@pytest.mark.parametrize(
    "args, message",
    [
        (["--as-of", "last tuesday"], "is not an ISO 8601 date"),
        (["--select", "NOPE999"], "selector 'NOPE999' matches no rule"),
        (["--source", "nowhere"], "no source named 'nowhere'"),
        (["--key", "OPS-1"], "cannot be used with --input"),
        (["-f", "xml"], "Invalid value for '-f'"),
    ],
)
def test_usage_errors_exit_2(
    args: list[str], message: str, runner: CliRunner, records_jsonl: Path, test_registry: object
) -> None:
    result = runner.invoke(cli, ["check", "-i", str(records_jsonl), *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_no_input_and_no_source_is_a_usage_error(runner: CliRunner, test_registry: object) -> None:
    result = check(runner)
    assert result.exit_code == 2
    assert "give --input PATH" in result.stderr


def test_missing_and_invalid_inputs_name_the_file(runner: CliRunner, test_registry: object) -> None:
    result = check(runner, "-i", "nothere.json")
    assert result.exit_code == 2 and "nothere.json: no such file or directory" in result.stderr
    Path("broken.json").write_text('{"issues": [')
    result = check(runner, "-i", "broken.json")
    assert result.exit_code == 2
    assert "broken.json: not valid JSON" in result.stderr and "line 1" in result.stderr
    Path("other.json").write_text('{"hello": 1}')
    result = check(runner, "-i", "other.json")
    assert result.exit_code == 2 and "other.json: not a Jira search response" in result.stderr


def test_config_error_exits_2_naming_file_and_key(
    runner: CliRunner, records_jsonl: Path, test_registry: object
) -> None:
    Path("ticketlint.yaml").write_text("rules:\n  selcet: [ALL]\n")
    result = check(runner, "-i", str(records_jsonl))
    assert result.exit_code == 2
    assert "ticketlint.yaml: rules.selcet: unknown key" in result.stderr


def test_unknown_rule_in_config_params_exits_2(
    runner: CliRunner, records_jsonl: Path, test_registry: object
) -> None:
    Path("ticketlint.yaml").write_text("rules:\n  params: {TST003: {stale_dayz: 3}}\n")
    result = check(runner, "-i", str(records_jsonl))
    assert result.exit_code == 2
    assert "TST003 has no parameter 'stale_dayz'" in result.stderr


def test_a_crashing_rule_exits_2_after_printing_results(
    runner: CliRunner, records_jsonl: Path, test_registry: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cli_support

    def boom(record, ctx):
        raise RuntimeError("bug")

    broken = cli_support.tst001.__class__(**{**cli_support.tst001.__dict__, "func": boom})
    pack = cli_support.TEST_PACK.__class__(name="testpack", rules=(broken,))
    import ticketlint.rules.selection
    from ticketlint.rules.registry import Registry

    monkeypatch.setattr(
        ticketlint.rules.selection, "load_registry", lambda extra=(): Registry([pack])
    )
    result = check(runner, "-i", str(records_jsonl))
    assert result.exit_code == 2
    assert "Rule errors" in result.stdout and "RuntimeError: bug" in result.stdout


def test_internal_error_exits_2_not_1(
    runner: CliRunner, records_jsonl: Path, test_registry: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*a, **k):
        raise KeyError("surprise")

    monkeypatch.setattr(cli_module, "load_inputs", explode)
    result = check(runner, "-i", str(records_jsonl))
    assert result.exit_code == 2
    assert "internal error: KeyError" in result.stderr


def test_source_option_maps_records_under_that_name(
    runner: CliRunner, records_jsonl: Path, test_registry: object
) -> None:
    Path("ticketlint.yaml").write_text(
        "sources:\n  - {name: jira-prod, type: jira, url: 'https://x.atlassian.net', auth: {pat: abc}}\n"
    )
    data = json.loads(
        check(runner, "-i", str(records_jsonl), "--source", "jira-prod", "-f", "json").stdout
    )
    assert {f["source"] for f in data["findings"]} == {"jira-prod"}
    assert data["summary"]["sources"] == ["jira-prod"]


def test_real_registry_runs_on_the_fixture(runner: CliRunner, records_jsonl: Path) -> None:
    """Whatever the installed pack holds, check produces a well-formed result."""
    result = check(runner, "-i", str(records_jsonl), "-f", "json", "--exit-zero")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["summary"]["records"] == 8
    from ticketlint.rules.registry import load_registry

    assert sorted(data["summary"]["rules"]) == sorted(load_registry().rules)


def test_shell_completion_of_rule_codes_and_source_names(
    runner: CliRunner, test_registry: object
) -> None:
    import click

    Path("ticketlint.yaml").write_text(
        "sources:\n  - {name: jira-prod, type: jira, url: 'https://x.atlassian.net', auth: {pat: abc}}\n"
        "  - {name: snow-prod, type: servicenow, url: 'https://x.service-now.com', auth: {user: u, password: p}}\n"
    )
    ctx = click.Context(cli_module.check, parent=click.Context(cli, info_name="ticketlint"))
    assert cli_module._complete_rules(ctx, None, "tst00") == [
        "TST001",
        "TST002",
        "TST003",
        "TST004",
    ]
    assert cli_module._complete_sources(ctx, None, "sn") == ["snow-prod"]
    Path("ticketlint.yaml").write_text("bogus: [")
    assert cli_module._complete_sources(ctx, None, "") == []  # never a traceback while completing
