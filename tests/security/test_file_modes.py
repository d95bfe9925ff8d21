"""Files ticketlint writes are its owner's only (0600 files, 0700 directories) unless
``TICKETLINT_UMASK`` says otherwise; the Containerfile keeps the same umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ticketlint.cli import cli

REPO = Path(__file__).resolve().parents[2]
RECORDS = REPO / "tests" / "fixtures" / "records.jsonl"


@pytest.fixture(autouse=True)
def keep_umask(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    old = os.umask(0o022)  # what a typical shell gives: the product must not rely on it
    monkeypatch.delenv("TICKETLINT_UMASK", raising=False)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_report_and_exports_are_private(runner: CliRunner, tmp_path: Path) -> None:
    Path("ticketlint.yaml").write_text(f'database: "sqlite:///{tmp_path}/state/tl.db"\n')
    result = runner.invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert mode(tmp_path / "state") == 0o700
    assert mode(tmp_path / "state" / "tl.db") == 0o600

    Path("out").mkdir()  # -o writes into an existing directory
    result = runner.invoke(
        cli, ["check", "--input", str(RECORDS), "-f", "csv", "-o", "out/findings.csv"]
    )
    assert result.exit_code in (0, 1), result.output
    assert mode(Path("out/findings.csv")) == 0o600

    result = runner.invoke(cli, ["report", "-o", "report.html"])
    assert result.exit_code == 0, result.output
    assert mode(Path("report.html")) == 0o600


def test_umask_is_configurable(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TICKETLINT_UMASK", "027")
    result = runner.invoke(cli, ["check", "--input", str(RECORDS), "-f", "csv", "-o", "x.csv"])
    assert result.exit_code in (0, 1), result.output
    assert mode(Path("x.csv")) == 0o640
    monkeypatch.setenv("TICKETLINT_UMASK", "abc")
    assert runner.invoke(cli, ["check", "--input", str(RECORDS)]).exit_code == 2


def test_containerfile_sets_a_umask() -> None:
    text = (REPO / "deploy" / "Containerfile").read_text()
    assert "TICKETLINT_UMASK=077" in text
    assert "chmod 700 /data" in text
