"""``--config``, ``-q`` and ``-v`` work after the subcommand too, and the example
command written in examples/servicenow/ticketlint.yaml runs as printed (issue 17 item 7)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from ticketlint.cli import cli, hoist_global_options

ROOT = Path(__file__).resolve().parents[2]


def _example_command() -> list[str]:
    lines = (ROOT / "examples" / "servicenow" / "ticketlint.yaml").read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("#   ticketlint "))
    text = ""
    for line in lines[start:]:
        part = line.lstrip("#").strip()
        text += " " + part.rstrip("\\").strip()
        if not part.endswith("\\"):
            break
    return shlex.split(text)


def test_the_example_configs_own_command_runs_as_printed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("SNOW_PASSWORD", raising=False)  # not needed to map files
    argv = _example_command()
    assert argv[0] == "ticketlint"
    result = CliRunner().invoke(cli, argv[1:])
    assert result.exit_code == 1, result.output  # findings, not a usage error
    assert "snow-example/" in result.stdout


def test_quiet_and_config_after_the_subcommand(
    runner: CliRunner, tmp_path: Path, records_jsonl: Path
) -> None:
    (tmp_path / "other.yaml").write_text("rules: {select: [CHG]}\n", encoding="utf-8")
    result = runner.invoke(
        cli,
        ["check", "-i", str(records_jsonl), "-q", "-f", "json", "--config", "other.yaml"],
    )
    assert result.exit_code == 1, result.output
    assert result.stderr == ""
    assert {f["code"][:3] for f in __import__("json").loads(result.stdout)["findings"]} == {"CHG"}


@pytest.mark.parametrize(
    "args, expected",
    [
        (["check", "-q"], ["-q", "check"]),
        (["--config", "a.yaml", "check", "-v"], ["--config", "a.yaml", "-v", "check"]),
        (["rules", "list", "--config=b.yaml"], ["--config=b.yaml", "rules", "list"]),
        (["check", "--", "-q"], ["check", "--", "-q"]),
        (["-q"], ["-q"]),
    ],
)
def test_hoisting(args: list[str], expected: list[str]) -> None:
    assert hoist_global_options(args) == expected
