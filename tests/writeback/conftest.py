from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from wb_helpers import make_config

from ticketlint.store.db import Store, open_store


@pytest.fixture
def cfg(tmp_path: Path):
    return make_config(tmp_path)


@pytest.fixture
def store(cfg) -> Iterator[Store]:
    s = open_store(cfg.database)
    yield s
    s.dispose()


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries wait in tests only as long as they record: the waits are asserted."""
    waits: list[float] = []
    monkeypatch.setattr("time.sleep", lambda s: waits.append(s))
    return waits
