"""Typos are errors with "file:line key: message" and a "did you mean" (issue 17 item 5):
rule ids of waivers (command line and config), selectors, parameters of rules that are
not selected, and the fields a declarative rule reads."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from ticketlint.cli import cli

BASE = "database: sqlite:///t.db\n"


def _validate(runner: CliRunner, text: str) -> tuple[int, str]:
    Path("ticketlint.yaml").write_text(text, encoding="utf-8")
    result = runner.invoke(cli, ["config", "validate"])
    return result.exit_code, result.output


def test_waive_add_refuses_an_unknown_rule_and_suggests(runner: CliRunner) -> None:
    Path("ticketlint.yaml").write_text(BASE, encoding="utf-8")
    args = ["--reason", "r", "--owner", "o", "--expires", "2099-01-01"]
    unknown = runner.invoke(cli, ["waive", "add", "XYZ999", "OPS-1", *args])
    assert unknown.exit_code == 2 and "no rule 'XYZ999'" in unknown.output
    assert "nothing was added" in unknown.output and not Path("t.db").exists()
    typo = runner.invoke(cli, ["waive", "add", "CHG05", "OPS-1", *args])
    assert typo.exit_code == 2 and "did you mean 'CHG005'" in typo.output
    by_name = runner.invoke(cli, ["waive", "add", "change-backout-plan-missing", "X-1", *args])
    assert by_name.exit_code == 2 and "use 'CHG005'" in by_name.output


def test_a_config_waiver_naming_no_rule_is_invalid_with_file_and_line(runner: CliRunner) -> None:
    code, out = _validate(
        runner,
        BASE
        + "waivers:\n"
        + "  - {rule: CHG005, key: A-1, reason: r, owner: o, expires: 2099-01-01}\n"
        + "  - rule: NOPE1\n"
        + "    key: A-2\n    reason: r\n    owner: o\n    expires: 2099-01-01\n",
    )
    assert code == 2
    assert "ticketlint.yaml:4 waivers[1].rule: no rule 'NOPE1'" in out


def test_params_of_an_unselected_rule_are_still_checked(runner: CliRunner) -> None:
    code, out = _validate(
        runner,
        BASE + "rules:\n  select: [CHG]\n  params:\n    INC006:\n      stale_dayz: 3\n",
    )
    assert code == 2
    assert "ticketlint.yaml:6 rules.params.INC006.stale_dayz: INC006 has no parameter" in out
    assert "did you mean 'stale_days'" in out


def test_a_selector_typo_names_file_line_and_suggests(runner: CliRunner) -> None:
    code, out = _validate(runner, BASE + "rules:\n  select:\n    - CHG\n    - incidnet\n")
    assert code == 2
    assert "ticketlint.yaml:5 rules.select[1]: selector 'incidnet' matches no rule" in out
    assert "did you mean 'incident'" in out


def test_a_misspelt_declarative_field_is_named_at_load(runner: CliRunner) -> None:
    Path("rules").mkdir()
    Path("rules/pay.yaml").write_text(
        "rules:\n"
        "  - code: PAY001\n"
        "    name: pay-test-plan\n"
        "    title: Payment changes need a test plan\n"
        "    process: change\n"
        "    when: {all: [{field: assignee.nme, empty: false}]}\n"
        "    require:\n"
        "      field: test_pln\n"
        "      not_empty: true\n",
        encoding="utf-8",
    )
    code, out = _validate(runner, BASE + "rules:\n  paths: [rules/]\n")
    assert code == 2
    assert "rules.yaml" not in out  # the rule file is named, not the config
    assert (
        "rules/pay.yaml:8 rules[0].require.field (PAY001): change records: there is no "
        "field 'test_pln' (did you mean 'test_plan'?)"
    ) in out
    assert "rules/pay.yaml:6 rules[0].when.all[0].field (PAY001)" in out
    assert "assignee has no field 'nme' (did you mean 'name'?)" in out


def test_raw_paths_and_nested_fields_are_accepted(runner: CliRunner) -> None:
    Path("rules").mkdir()
    Path("rules/ok.yaml").write_text(
        "rules:\n"
        "  - {code: PAY002, name: pay-two, title: t, process: [change, incident],\n"
        "     when: {field: raw.fields.customfield_1, equals: x},\n"
        "     require: {field: assignee.email, not_empty: true}}\n",
        encoding="utf-8",
    )
    code, out = _validate(runner, BASE + "rules:\n  paths: [rules/]\n")
    assert code == 0, out
