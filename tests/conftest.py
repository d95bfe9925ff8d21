"""Shared pytest setup: every test runs without the developer's own ticketlint config or
colour settings leaking in."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_ticketlint_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A real ~/.config/ticketlint/ticketlint.yaml or $TICKETLINT_CONFIG must not change results.
    monkeypatch.delenv("TICKETLINT_CONFIG", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg")))


@pytest.fixture
def fixtures_dir() -> Path:
    return Path(__file__).parent / "fixtures"
