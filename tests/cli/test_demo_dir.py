"""``ticketlint demo --dir`` never deletes what it did not create (issue 17 items 1, 8)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ticketlint.cli import cli
from ticketlint.sandbox import commands as sandbox_commands
from ticketlint.sandbox.commands import DEMO_MARKER, prepare_demo_dir, self_command


def test_demo_refuses_a_non_empty_directory_that_is_not_a_demo_dir(
    runner: CliRunner, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.tex").write_text("years of work", encoding="utf-8")
    result = runner.invoke(cli, ["demo", "--dir", str(work)])
    assert result.exit_code == 2, result.output
    assert "not empty" in result.output and "--force" in result.output
    assert (work / "thesis.tex").read_text(encoding="utf-8") == "years of work"
    assert sorted(p.name for p in work.iterdir()) == ["thesis.tex"]


def test_demo_refuses_the_current_directory(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "notes.txt").write_text("keep", encoding="utf-8")
    result = runner.invoke(cli, ["demo", "--dir", "."])
    assert result.exit_code == 2
    assert (tmp_path / "notes.txt").exists()


def test_force_keeps_other_files_and_a_demo_dir_loses_only_its_own(tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    (work / "mine.txt").write_text("keep", encoding="utf-8")
    prepare_demo_dir(work, force=True)
    assert (work / "mine.txt").exists() and (work / DEMO_MARKER).exists()
    (work / "report.html").write_text("old report", encoding="utf-8")
    (work / "evidence-8.5.1").mkdir()
    (work / "evidence-8.5.1" / "manifest.json").write_text("{}", encoding="utf-8")
    prepare_demo_dir(work, force=False)  # a demo dir now: reused without --force
    assert sorted(p.name for p in work.iterdir()) == [DEMO_MARKER, "mine.txt"]


def test_an_empty_or_new_directory_is_used(tmp_path: Path) -> None:
    prepare_demo_dir(tmp_path / "new" / "demo", force=False)
    assert (tmp_path / "new" / "demo" / DEMO_MARKER).is_file()
    (tmp_path / "empty").mkdir()
    prepare_demo_dir(tmp_path / "empty", force=False)


def test_try_next_commands_name_a_program_that_runs_as_printed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "ticketlint").write_text("#!/bin/sh\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # ticketlint is not on PATH after make demo
    monkeypatch.setattr(sys, "argv", [".venv/bin/ticketlint", "demo"])
    assert self_command() == ".venv/bin/ticketlint"
    monkeypatch.setenv("PATH", f"{venv_bin}{os.pathsep}/usr/bin")
    os.chmod(venv_bin / "ticketlint", 0o755)
    assert self_command() == "ticketlint"
    monkeypatch.setattr(sys, "argv", ["/somewhere/pytest"])
    assert self_command().endswith(" -m ticketlint.cli")


def test_fix_help_says_per_source_at_most() -> None:
    help_text = CliRunner().invoke(cli, ["demo", "--help"]).output
    assert "At most this many changes per source" in " ".join(help_text.split())
    assert sandbox_commands.DEMO_OUTPUTS  # the only names a rerun removes
