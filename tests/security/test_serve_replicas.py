"""Two ``serve`` replicas sharing one store (SQLite file, and PostgreSQL when
``TICKETLINT_TEST_DATABASE_URL`` is set): a delivery replayed to the other replica is a
duplicate there too, and one ticket is re-read at most once per ``serve.reread_interval``
over both, without losing the later event."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ticketlint.config import parse_config
from ticketlint.plugin.serve.app import create_app, serve_state
from ticketlint.plugin.serve.coalesce import TicketRef
from ticketlint.plugin.serve.security import sign_jira, sign_servicenow
from ticketlint.store.db import open_store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sync"))
from sync_helpers import reset_pg

SECRET = "shared-secret"
SYS_ID = "9d385017c611228701d22104cc95c371"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    url = os.environ.get("TICKETLINT_TEST_DATABASE_URL")
    if not url:
        pytest.skip("TICKETLINT_TEST_DATABASE_URL is not set: PostgreSQL tests skipped")
    reset_pg(url)
    return url


class Calls:
    def __init__(self) -> None:
        self.at: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()

    def handler(self, replica: str) -> Any:
        def handle(ref: TicketRef) -> None:
            with self.lock:
                self.at.append((replica, ref.key, time.monotonic()))

        return handle


@pytest.fixture
def replicas(db_url: str) -> Iterator[tuple[Any, Any, Calls]]:
    cfg = parse_config(f"""
database: "{db_url}"
sources:
  - {{name: jira-prod, type: jira, url: "https://acme.atlassian.net", auth: {{pat: x}}}}
  - {{name: snow-prod, type: servicenow, url: "https://acme.service-now.com", auth: {{user: u, password: p}}}}
serve: {{jira_secret: {SECRET}, servicenow_secret: {SECRET}, reread_interval: 1.0}}
""")
    stores = [open_store(db_url), open_store(db_url)]  # one engine per replica, like two hosts
    calls = Calls()
    apps = [
        create_app(cfg, store, handler=calls.handler(name), debounce=0.01)
        for name, store in zip(("a", "b"), stores, strict=True)
    ]
    yield apps[0], apps[1], calls
    for app in apps:
        serve_state(app).stop(timeout=5)
    for store in stores:
        store.dispose()


def _jira(client: Any, body: bytes, delivery: str | None = None) -> Any:
    headers = {"Content-Type": "application/json", "X-Hub-Signature": sign_jira(SECRET, body)}
    if delivery:
        headers["X-Atlassian-Webhook-Identifier"] = delivery
    return client.post("/hooks/jira", data=body, headers=headers)


def _body(key: str = "OPS-1", **extra: Any) -> bytes:
    return json.dumps(
        {"timestamp": int(time.time() * 1000), "issue": {"key": key}, **extra}
    ).encode()


def test_a_jira_delivery_replayed_to_the_other_replica_is_a_duplicate(
    replicas: tuple[Any, Any, Calls],
) -> None:
    a, b, _calls = replicas
    body = _body()
    assert _jira(a.test_client(), body).status_code == 202
    again = _jira(b.test_client(), body)
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    # the same delivery id with another body (a replay under a forged body is 401 anyway)
    assert _jira(a.test_client(), _body(n=1), "d-1").status_code == 202
    assert _jira(b.test_client(), _body(n=2), "d-1").get_json()["status"] == "duplicate"


def test_a_servicenow_delivery_replayed_to_the_other_replica_is_409(
    replicas: tuple[Any, Any, Calls],
) -> None:
    a, b, _calls = replicas
    body = json.dumps({"table": "incident", "sys_id": SYS_ID}).encode()
    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Ticketlint-Timestamp": stamp,
        "X-Ticketlint-Signature": sign_servicenow(SECRET, stamp, body),
    }
    assert a.test_client().post("/hooks/servicenow", data=body, headers=headers).status_code == 202
    assert b.test_client().post("/hooks/servicenow", data=body, headers=headers).status_code == 409


def test_one_ticket_is_reread_at_most_once_per_interval_over_both_replicas(
    replicas: tuple[Any, Any, Calls],
) -> None:
    a, b, calls = replicas
    assert _jira(a.test_client(), _body(change=1)).status_code == 202
    assert _jira(b.test_client(), _body(change=2)).status_code == 202  # another real change
    for app in (a, b):
        assert serve_state(app).queue.wait_idle(8)
    assert len(calls.at) == 2, calls.at  # both events re-read: none dropped
    first, second = sorted(t for _r, _k, t in calls.at)
    assert second - first >= 0.9  # ... but not within the interval of each other
    assert {r for r, _k, _t in calls.at} == {"a", "b"}
