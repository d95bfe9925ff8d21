"""Fixtures of the CLI tests: the test pack as the only registry, a CliRunner in a
temporary directory, the records fixture."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from cli_support import TEST_PACK
from click.testing import CliRunner

import ticketlint.rules.selection
from ticketlint.rules.registry import Pack, Registry


@pytest.fixture
def test_registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """Make every command see only the test pack (plus declarative packs of the config)."""

    def load(extra_packs: Iterable[Pack] = ()) -> Registry:
        return Registry([TEST_PACK, *extra_packs])

    monkeypatch.setattr(ticketlint.rules.selection, "load_registry", load)
    return load()


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)  # no ./ticketlint.yaml of the repository is picked up
    return CliRunner()


@pytest.fixture
def records_jsonl(fixtures_dir: Path) -> Path:
    return fixtures_dir / "records.jsonl"
