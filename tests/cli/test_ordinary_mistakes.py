"""Ordinary mistakes end in one clear line and exit 2, never "internal error" (issue 17
item 10): a missing output directory, a null issue in an export, a broken sibling file,
a reader that leaves the pipe early."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from ticketlint.cli import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "jira"


def test_check_output_into_a_missing_directory_is_refused_and_not_created(
    runner: CliRunner, tmp_path: Path
) -> None:
    target = tmp_path / "typo-dir" / "out.json"
    result = runner.invoke(
        cli, ["check", "--input", str(EXAMPLE / "search.json"), "-f", "json", "-o", str(target)]
    )
    assert result.exit_code == 2
    assert f"directory {target.parent} does not exist" in result.output
    assert "internal error" not in result.output and not target.parent.exists()


def test_report_into_a_missing_directory_is_one_line_exit_2(
    runner: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "ticketlint.yaml").write_text("database: sqlite:///t.db\n", encoding="utf-8")
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(cli, ["report", "-o", "/missing/dir/r.html"])
    assert result.exit_code == 2
    assert "cannot write /missing/dir/r.html: directory /missing/dir does not exist" in (
        result.output
    )
    assert "internal error" not in result.output


def test_findings_output_into_a_missing_directory(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "ticketlint.yaml").write_text("database: sqlite:///t.db\n", encoding="utf-8")
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(cli, ["findings", "-o", "nope/f.txt"])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_a_null_issue_is_one_mapping_error_and_the_rest_is_checked(
    runner: CliRunner, tmp_path: Path
) -> None:
    export = json.loads((EXAMPLE / "search.json").read_text(encoding="utf-8"))
    args = ["--as-of", "2026-11-20", "-f", "json"]
    clean = runner.invoke(cli, ["check", "--input", str(EXAMPLE / "search.json"), *args])
    count = json.loads(clean.stdout)["summary"]["records"]
    export["issues"].insert(1, None)
    path = tmp_path / "export" / "search.json"
    path.parent.mkdir()
    path.write_text(json.dumps(export), encoding="utf-8")
    result = runner.invoke(cli, ["check", "--input", str(path), *args])
    assert result.exit_code in (0, 1), result.output
    summary = json.loads(result.stdout)["summary"]
    assert summary["records"] == count
    assert any("issues[1] is null" in e["reason"] for e in summary["mapping_errors"])


def test_one_file_of_a_directory_does_not_fail_on_a_broken_sibling(
    runner: CliRunner, tmp_path: Path
) -> None:
    folder = tmp_path / "exports"
    shutil.copytree(EXAMPLE, folder)
    (folder / "notes.json").write_text("{ not json", encoding="utf-8")
    result = runner.invoke(
        cli, ["check", "--input", str(folder / "search.json"), "--as-of", "2026-11-20"]
    )
    assert result.exit_code in (0, 1), result.output
    assert "notes.json" not in result.output


def test_a_reader_that_leaves_early_is_not_an_error(tmp_path: Path) -> None:
    template = json.loads(
        (ROOT / "tests" / "fixtures" / "records.jsonl").read_text(encoding="utf-8").splitlines()[0]
    )
    lines = [
        json.dumps({**template, "key": f"CHG-{i}", "url": f"https://j.example/browse/CHG-{i}"})
        for i in range(3000)
    ]
    (tmp_path / "many.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ticketlint.cli", "check", "--input", "many.jsonl"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=60)
    assert "internal error" not in err and "BrokenPipe" not in err and "Traceback" not in err
    assert code in (0, 1, 141), err


def test_broken_pipe_inside_a_command_is_quiet_exit_141() -> None:
    """`writeback --dry-run | head` wrote line by line and ended in "internal error"."""
    from ticketlint.cli import TicketlintGroup

    group = TicketlintGroup("t")

    @group.command("lines")
    def lines() -> None:
        for i in range(3):
            click.echo(f"line {i}")
        raise BrokenPipeError(32, "Broken pipe")

    result = CliRunner().invoke(group, ["lines"])
    assert result.exit_code == 141
    assert "internal error" not in result.output and "Broken" not in result.output
