"""Fixtures of the report tests: the report test pack as the only registry, and a store
filled once per module by three fixed sync runs (read-only for the tests)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from report_support import REPORT_PACK, fill_store, write_config

import ticketlint.rules.selection
from ticketlint.rules.registry import Pack, Registry


def _load(extra_packs: Iterable[Pack] = ()) -> Registry:
    return Registry([REPORT_PACK, *extra_packs])


@pytest.fixture(autouse=True)
def report_registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """Every command sees only the report test pack."""
    monkeypatch.setattr(ticketlint.rules.selection, "load_registry", _load)
    return _load()


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The config path of a store filled by three syncs (July, August, September 2026)."""
    directory = tmp_path_factory.mktemp("store")
    config = write_config(directory)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ticketlint.rules.selection, "load_registry", _load)
        fill_store(config)
    yield config


@pytest.fixture
def run_cli(filled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``run_cli(*args)`` runs the real ``ticketlint --config <filled> ...`` in tmp_path."""
    from ticketlint.cli import cli

    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, ["--config", str(filled), *args], catch_exceptions=False)

    return run
