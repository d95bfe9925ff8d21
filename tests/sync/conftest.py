"""Fixtures of the sync tests: a migrated store on SQLite (and on PostgreSQL when
``TICKETLINT_TEST_DATABASE_URL`` is set), a config with two sources, a runner factory."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sync_fakes import FakeConnector, engine
from sync_helpers import make_config, pg_url, reset_pg

from ticketlint.config import Config
from ticketlint.store.db import Store, open_store
from ticketlint.sync.progress import Progress
from ticketlint.sync.runner import SyncOptions, SyncResult, run_sync


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'ticketlint.db'}"
    url = pg_url()
    reset_pg(url)
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    yield s
    s.dispose()


@pytest.fixture
def cfg(db_url: str) -> Config:
    return make_config(db_url)


class World:
    """The sources' current contents; each sync builds fresh fake connectors from it."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, list[Any]]] = {
            "jira-prod": {"change": []},
            "snow-prod": {"incident": []},
        }
        self.options: dict[str, dict[str, Any]] = {}
        self.connectors: list[FakeConnector] = []

    def put(self, source: str, stream: str, *records: Any) -> None:
        keep = [r for r in self.data[source][stream] if r.key not in {x.key for x in records}]
        self.data[source][stream] = keep + list(records)

    def remove(self, source: str, stream: str, key: str) -> None:
        self.data[source][stream] = [r for r in self.data[source][stream] if r.key != key]

    def factory(self, source_cfg: Any) -> FakeConnector:
        conn = FakeConnector(
            source_cfg.name,
            {k: list(v) for k, v in self.data[source_cfg.name].items()},
            **self.options.get(source_cfg.name, {}),
        )
        self.connectors.append(conn)
        return conn


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def sync(cfg: Config, store: Store, world: World) -> Callable[..., SyncResult]:
    """Run a sync in-process with the fake connectors and the test engine."""

    def run(config: Config | None = None, **options: Any) -> SyncResult:
        err = io.StringIO()
        result = run_sync(
            config or cfg,
            SyncOptions(**options),
            store=store,
            connector_factory=world.factory,
            engine_factory=engine,
            progress=Progress(err),
        )
        run.stderr = err.getvalue()  # type: ignore[attr-defined]
        return result

    return run
