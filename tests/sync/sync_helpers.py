"""Small readers of the store for assertions, the test PostgreSQL database, the
two-source configuration the sync tests use, and a commit that waits for an event."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
from sqlalchemy import select, text

from ticketlint.config import Config, parse_config
from ticketlint.store.db import Store, open_store
from ticketlint.store.models import FindingEventRow, FindingRow
from ticketlint.sync.runner import SyncRunner

PG_ENV = "TICKETLINT_TEST_DATABASE_URL"


def pg_url() -> str:
    """The test PostgreSQL database's URL; the test is skipped without one."""
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"{PG_ENV} is not set: PostgreSQL tests skipped")
    pytest.importorskip("psycopg")
    return url


def states(store: Store) -> dict[tuple[str, str], str]:
    """(rule, key) -> state of every stored finding."""
    with store.session() as s:
        return {(r.rule, r.key): r.state for r in s.scalars(select(FindingRow))}


def events(store: Store) -> list[tuple[str, str, str]]:
    """(rule, key, event kind) in order."""
    with store.session() as s:
        rows = s.execute(
            select(FindingRow.rule, FindingRow.key, FindingEventRow.kind)
            .join(FindingEventRow, FindingEventRow.finding_id == FindingRow.id)
            .order_by(FindingEventRow.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


TABLES = (
    "finding_events",
    "notification_outbox",
    "writeback_log",
    "findings",
    "watermarks",
    "waivers",
    "records",
    "runs",
    "webhook_deliveries",
    "serve_rereads",
    "alembic_version",
)


def reset_pg(url: str) -> None:
    """Drop every table so each test starts from an empty, then migrated, database.

    Lives here, not in conftest.py: with tests/cli in the same run, ``import conftest``
    can name another directory's conftest."""
    store = open_store(url, migrate=False)
    with store.engine.begin() as conn:
        for table in TABLES:
            conn.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
    store.dispose()


def make_config(db_url: str, extra: str = "") -> Config:
    """A configuration of two sources (jira-prod, snow-prod) on ``db_url``, plus ``extra``
    YAML. Lives here, not in conftest.py, for the reason given at :func:`reset_pg`."""
    return parse_config(f"""
database: "{db_url}"
sources:
  - name: jira-prod
    type: jira
    url: https://example.atlassian.net
    auth: {{email: ops@example.com, token: t}}
  - name: snow-prod
    type: servicenow
    url: https://example.service-now.com
    auth: {{user: u, password: p}}
{extra}
""")


def holding_commit(
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    started: threading.Event,
    then: BaseException | None = None,
) -> list[bool]:
    """``source``'s commit waits (10 s at most) for ``started``, then raises ``then`` if
    given; the waits' outcomes (True: ``started`` was set)."""
    waited: list[bool] = []
    commit = SyncRunner._commit

    def holding(self: SyncRunner, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == source:
            waited.append(started.wait(timeout=10))
            if then is not None:
                raise then
        return commit(self, name, *args, **kwargs)

    monkeypatch.setattr(SyncRunner, "_commit", holding)
    return waited
