"""Shared pytest setup: every test runs without the developer's own ticketlint config or
colour settings leaking in."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
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


@pytest.fixture
def fails_if_hung() -> Callable[[int], AbstractContextManager[None]]:
    """``with fails_if_hung(seconds):`` a block that used to wait for ever raises
    ``TimeoutError`` instead of hanging the suite (SIGALRM; a forked worker does not
    inherit it). The alarm is armed again each time it fires: code that catches the
    error (a sync fails one source and goes on) cannot hang on the next wait either."""

    @contextmanager
    def guard(seconds: int) -> Iterator[None]:
        def waited_too_long(*_: object) -> None:
            signal.alarm(seconds)
            raise TimeoutError(f"still waiting after {seconds} s")

        previous = signal.signal(signal.SIGALRM, waited_too_long)
        signal.alarm(seconds)
        try:
            yield
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    return guard
