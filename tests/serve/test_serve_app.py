"""The web layer of ``ticketlint serve`` with Flask's test client: signatures, body limit,
stale and replayed deliveries, source routing, coalescing and the metrics text.

The re-check is replaced by a recorder here (``create_app(handler=...)``): these tests
are about what reaches the queue; tests/serve/test_serve_recheck.py covers the re-check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ticketlint.config import Config, parse_config
from ticketlint.plugin.serve.app import create_app, serve_state
from ticketlint.plugin.serve.coalesce import TicketRef
from ticketlint.plugin.serve.security import sign_jira, sign_servicenow
from ticketlint.store.db import Store, open_store

JIRA_SECRET, SNOW_SECRET = "s3cret-jira", "s3cret-snow"
SYS_ID = "9d385017c611228701d22104cc95c371"


def make_cfg(tmp_path: Path, serve: str = "", extra_sources: str = "") -> Config:
    return parse_config(f"""
database: "sqlite:///{tmp_path / "ticketlint.db"}"
sources:
  - name: jira-prod
    type: jira
    url: https://example.atlassian.net
    auth: {{email: ops@example.com, token: t}}
  - name: snow-prod
    type: servicenow
    url: https://example.service-now.com
    auth: {{user: u, password: p}}
{extra_sources}
serve:
{serve or f"  jira_secret: {JIRA_SECRET}" + chr(10) + f"  servicenow_secret: {SNOW_SECRET}"}
""")


class Recorder:
    """Stands in for the re-check: records each ticket it is asked to re-check."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[TicketRef] = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, ref: TicketRef) -> None:
        time.sleep(self.delay)
        with self.lock:
            self.calls.append(ref)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'ticketlint.db'}")
    yield s
    s.dispose()


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def app(tmp_path: Path, store: Store, rec: Recorder) -> Iterator[Any]:
    application = create_app(make_cfg(tmp_path), store, handler=rec, debounce=0.05)
    yield application
    serve_state(application).stop()


def jira_body(
    key: str = "OPS-12",
    *,
    ts: float | None = None,
    event: str = "jira:issue_updated",
    updated: str = "2026-03-02T14:10:05.123+0000",
    **extra: Any,
) -> bytes:
    ts = time.time() if ts is None else ts
    return json.dumps(
        {
            "timestamp": int(ts * 1000),
            "webhookEvent": event,
            "issue": {"id": "10012", "key": key, "fields": {"updated": updated}},
            **extra,
        }
    ).encode()


def post_jira(
    client: Any,
    body: bytes,
    *,
    secret: str | None = JIRA_SECRET,
    path: str = "/hooks/jira",
    **headers: str,
) -> Any:
    h = {"Content-Type": "application/json", **headers}
    if secret is not None:
        h["X-Hub-Signature"] = sign_jira(secret, body)
    return client.post(path, data=body, headers=h)


def snow_body(sys_id: str = SYS_ID, table: str = "incident", **extra: Any) -> bytes:
    return json.dumps(
        {
            "table": table,
            "sys_id": sys_id,
            "number": "INC0010001",
            "sys_updated_on": "2026-03-02 14:10:05",
            **extra,
        }
    ).encode()


def post_snow(
    client: Any,
    body: bytes,
    *,
    secret: str | None = SNOW_SECRET,
    ts: float | None = None,
    path: str = "/hooks/servicenow",
) -> Any:
    stamp = str(int(time.time() if ts is None else ts))
    headers = {"Content-Type": "application/json", "X-Ticketlint-Timestamp": stamp}
    if secret is not None:
        headers["X-Ticketlint-Signature"] = sign_servicenow(secret, stamp, body)
    return client.post(path, data=body, headers=headers)


def settle(app: Any) -> None:
    assert serve_state(app).queue.wait_idle(5)


# --- Jira signatures ---------------------------------------------------------------------


def test_valid_jira_signature_queues_one_recheck_of_that_issue(app: Any, rec: Recorder) -> None:
    resp = post_jira(app.test_client(), jira_body("OPS-12"))
    assert resp.status_code == 202
    assert resp.get_json() == {"status": "accepted", "source": "jira-prod", "key": "OPS-12"}
    settle(app)
    assert [(r.source, r.key, r.table, r.deleted) for r in rec.calls] == [
        ("jira-prod", "OPS-12", None, False)
    ]
    assert (
        rec.calls[0].hint_updated is not None
        and rec.calls[0].hint_updated.isoformat() == "2026-03-02T14:10:05.123000+00:00"
    )


def test_jira_signature_is_hmac_sha256_of_the_raw_body_in_hex() -> None:
    body = b'{"a": 1}'
    assert sign_jira("k", body) == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "sha1=abc", "garbage", ""])
def test_missing_or_wrong_jira_signature_is_401_and_queues_nothing(
    app: Any, rec: Recorder, signature: str | None
) -> None:
    body = jira_body()
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature"] = signature
    resp = app.test_client().post("/hooks/jira", data=body, headers=headers)
    assert resp.status_code == 401
    settle(app)
    assert rec.calls == []


def test_signature_with_another_secret_or_over_another_body_is_401(app: Any, rec: Recorder) -> None:
    client = app.test_client()
    assert post_jira(client, jira_body(), secret="other").status_code == 401
    body = jira_body()
    resp = client.post(
        "/hooks/jira",
        data=body.replace(b"OPS-12", b"OPS-13"),
        headers={"X-Hub-Signature": sign_jira(JIRA_SECRET, body)},
    )
    assert resp.status_code == 401
    settle(app)
    assert rec.calls == []


def test_without_a_configured_secret_unsigned_deliveries_are_accepted(
    tmp_path: Path, store: Store, rec: Recorder
) -> None:
    app = create_app(make_cfg(tmp_path, serve="  port: 8080"), store, handler=rec, debounce=0.01)
    try:
        assert post_jira(app.test_client(), jira_body(), secret=None).status_code == 202
        assert post_snow(app.test_client(), snow_body(), secret=None).status_code == 202
        settle(app)
        assert len(rec.calls) == 2
    finally:
        serve_state(app).stop()


# --- body limit, payload checks ------------------------------------------------------------


def test_bodies_over_the_limit_are_413_and_never_queued(
    tmp_path: Path, store: Store, rec: Recorder
) -> None:
    cfg = make_cfg(
        tmp_path,
        serve=f"  jira_secret: {JIRA_SECRET}\n  servicenow_secret: {SNOW_SECRET}\n"
        "  max_body_bytes: 1024",
    )
    app = create_app(cfg, store, handler=rec, debounce=0.01)
    try:
        client = app.test_client()
        big = jira_body(padding="x" * 2000)
        assert post_jira(client, big).status_code == 413
        assert post_snow(client, snow_body(padding="y" * 2000)).status_code == 413
        assert post_jira(client, jira_body()).status_code == 202  # just under the limit is fine
        settle(app)
        assert len(rec.calls) == 1
        metrics = client.get("/metrics").get_data(as_text=True)
        assert 'ticketlint_webhook_events_total{endpoint="jira",outcome="too_large"} 1' in metrics
        assert (
            'ticketlint_webhook_events_total{endpoint="servicenow",outcome="too_large"} 1'
            in metrics
        )
    finally:
        serve_state(app).stop()


@pytest.mark.parametrize(
    "body,status",
    [
        (b"not json", 400),
        (b"[1, 2]", 400),
        (
            json.dumps(
                {"timestamp": int(time.time() * 1000), "issue": {"key": "OPS-1 OR 1=1"}}
            ).encode(),
            400,
        ),
    ],
)
def test_signed_but_malformed_jira_payloads_are_rejected(
    app: Any, rec: Recorder, body: bytes, status: int
) -> None:
    assert post_jira(app.test_client(), body).status_code == status
    settle(app)
    assert rec.calls == []


def test_events_without_an_issue_are_ignored(app: Any, rec: Recorder) -> None:
    body = json.dumps(
        {
            "timestamp": int(time.time() * 1000),
            "webhookEvent": "project_created",
            "project": {"key": "OPS"},
        }
    ).encode()
    resp = post_jira(app.test_client(), body)
    assert resp.status_code == 200 and resp.get_json()["status"] == "ignored"
    settle(app)
    assert rec.calls == []


def test_issue_deleted_event_asks_the_recheck_to_confirm_a_deletion(
    app: Any, rec: Recorder
) -> None:
    assert post_jira(app.test_client(), jira_body(event="jira:issue_deleted")).status_code == 202
    settle(app)
    assert rec.calls[0].deleted is True


# --- stale and replayed deliveries ---------------------------------------------------------------


@pytest.mark.parametrize("age", [2 * 3600, -2 * 3600])
def test_stale_jira_deliveries_are_rejected(app: Any, rec: Recorder, age: float) -> None:
    resp = post_jira(app.test_client(), jira_body(ts=time.time() - age))
    assert resp.status_code == 400 and resp.get_json()["outcome"] == "stale"
    settle(app)
    assert rec.calls == []


def test_jira_retry_within_the_window_is_accepted_late(app: Any, rec: Recorder) -> None:
    # Jira Cloud retries for up to 30 minutes: a signed delivery 25 minutes old still counts.
    assert post_jira(app.test_client(), jira_body(ts=time.time() - 25 * 60)).status_code == 202


def test_replayed_jira_delivery_is_a_duplicate_by_body_or_by_identifier(
    app: Any, rec: Recorder
) -> None:
    client = app.test_client()
    first = jira_body("OPS-1")
    assert post_jira(client, first, **{"X-Atlassian-Webhook-Identifier": "d-1"}).status_code == 202
    # Same signed body under a new identifier (an attacker can change the header): duplicate.
    again = post_jira(client, first, **{"X-Atlassian-Webhook-Identifier": "d-2"})
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    # Jira's retry of delivery d-1 with a re-rendered body: duplicate by identifier.
    retry = post_jira(
        client, jira_body("OPS-1", ts=time.time() + 1), **{"X-Atlassian-Webhook-Identifier": "d-1"}
    )
    assert retry.get_json()["status"] == "duplicate"
    settle(app)
    assert len(rec.calls) == 1


def test_servicenow_hmac_over_timestamp_and_body_in_hex_or_base64(app: Any, rec: Recorder) -> None:
    client = app.test_client()
    assert post_snow(client, snow_body()).status_code == 202
    body = snow_body(sys_id="a" * 32)
    stamp = str(int(time.time()))
    mac = hmac.new(SNOW_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).digest()
    # What GlideCertificateEncryption.generateMac returns: base64.
    resp = client.post(
        "/hooks/servicenow",
        data=body,
        headers={
            "X-Ticketlint-Timestamp": stamp,
            "X-Ticketlint-Signature": "sha256=" + base64.b64encode(mac).decode(),
        },
    )
    assert resp.status_code == 202
    settle(app)
    assert sorted((r.table, r.key) for r in rec.calls) == sorted(
        [("incident", "a" * 32), ("incident", SYS_ID)]
    )


def test_servicenow_signature_binds_the_timestamp(app: Any, rec: Recorder) -> None:
    body = snow_body()
    old = str(int(time.time()) - 10)
    signature = sign_servicenow(SNOW_SECRET, old, body)
    resp = app.test_client().post(
        "/hooks/servicenow",
        data=body,
        headers={
            "X-Ticketlint-Timestamp": str(int(time.time())),
            "X-Ticketlint-Signature": signature,
        },
    )
    assert resp.status_code == 401
    no_stamp = app.test_client().post(
        "/hooks/servicenow", data=body, headers={"X-Ticketlint-Signature": signature}
    )
    assert no_stamp.status_code == 401
    settle(app)
    assert rec.calls == []


def test_stale_and_replayed_servicenow_deliveries_are_rejected(app: Any, rec: Recorder) -> None:
    client = app.test_client()
    stale = post_snow(client, snow_body(), ts=time.time() - 3600)
    assert stale.status_code == 400 and stale.get_json()["outcome"] == "stale"
    body, stamp = snow_body(), str(int(time.time()))
    headers = {
        "X-Ticketlint-Timestamp": stamp,
        "X-Ticketlint-Signature": sign_servicenow(SNOW_SECRET, stamp, body),
    }
    assert client.post("/hooks/servicenow", data=body, headers=headers).status_code == 202
    replay = client.post("/hooks/servicenow", data=body, headers=headers)
    assert replay.status_code == 409
    settle(app)
    assert len(rec.calls) == 1


def test_servicenow_shared_secret_header(app: Any, rec: Recorder) -> None:
    client = app.test_client()
    ok = client.post(
        "/hooks/servicenow", data=snow_body(), headers={"X-Ticketlint-Token": SNOW_SECRET}
    )
    assert ok.status_code == 202
    bad = client.post(
        "/hooks/servicenow", data=snow_body(sys_id="b" * 32), headers={"X-Ticketlint-Token": "x"}
    )
    assert bad.status_code == 401
    settle(app)
    assert [r.key for r in rec.calls] == [SYS_ID]


@pytest.mark.parametrize(
    "payload",
    [
        {"table": "incident", "sys_id": "not-a-sys-id"},
        {"table": "incident^ORsys_id!=x", "sys_id": SYS_ID},
        {"sys_id": SYS_ID},
    ],
)
def test_servicenow_payload_must_name_a_table_and_a_sys_id(
    app: Any, rec: Recorder, payload: dict
) -> None:
    assert post_snow(app.test_client(), json.dumps(payload).encode()).status_code == 400
    settle(app)
    assert rec.calls == []


# --- routing to a source ------------------------------------------------------------------------


def test_with_two_jira_sources_the_path_names_the_source(
    tmp_path: Path, store: Store, rec: Recorder
) -> None:
    cfg = make_cfg(
        tmp_path,
        extra_sources=(
            "  - name: jira-dc\n    type: jira\n    url: https://jira.example.com\n    auth: {pat: p}\n"
        ),
    )
    app = create_app(cfg, store, handler=rec, debounce=0.01)
    try:
        client = app.test_client()
        assert post_jira(client, jira_body()).status_code == 404
        assert post_jira(client, jira_body(), path="/hooks/jira/snow-prod").status_code == 404
        assert post_jira(client, jira_body(), path="/hooks/jira/jira-dc").status_code == 202
        settle(app)
        assert [r.source for r in rec.calls] == ["jira-dc"]
    finally:
        serve_state(app).stop()


# --- coalescing ---------------------------------------------------------------------------------


def test_a_burst_on_one_ticket_gives_one_recheck(tmp_path: Path, store: Store) -> None:
    rec = Recorder()
    app = create_app(make_cfg(tmp_path), store, handler=rec, debounce=0.3)
    try:
        client = app.test_client()
        statuses = [
            post_jira(
                client,
                jira_body(
                    "OPS-7", ts=time.time() + i / 1000, updated=f"2026-03-02T14:10:0{i}.000+0000"
                ),
            ).get_json()["status"]
            for i in range(5)
        ]
        assert post_jira(client, jira_body("OPS-8")).status_code == 202
        assert statuses == ["accepted"] + ["coalesced"] * 4
        settle(app)
        assert sorted(r.key for r in rec.calls) == ["OPS-7", "OPS-8"]
        ops7 = next(r for r in rec.calls if r.key == "OPS-7")
        assert (
            ops7.hint_updated is not None and ops7.hint_updated.second == 4
        )  # the newest hint wins
        metrics = client.get("/metrics").get_data(as_text=True)
        assert 'ticketlint_webhook_events_total{endpoint="jira",outcome="coalesced"} 4' in metrics
    finally:
        serve_state(app).stop()


def test_an_event_during_a_running_recheck_runs_it_once_more(tmp_path: Path, store: Store) -> None:
    rec = Recorder(delay=0.3)
    app = create_app(make_cfg(tmp_path), store, handler=rec, debounce=0.02)
    try:
        client = app.test_client()
        assert post_jira(client, jira_body("OPS-9")).status_code == 202
        time.sleep(0.1)  # the first re-check is running now
        for i in range(3):
            post_jira(client, jira_body("OPS-9", ts=time.time() + (i + 1) / 1000))
        settle(app)
        assert [r.key for r in rec.calls] == ["OPS-9", "OPS-9"]
    finally:
        serve_state(app).stop()


# --- health and metrics ---------------------------------------------------------------------------


def test_healthz_and_metrics_text(app: Any) -> None:
    client = app.test_client()
    health = client.get("/healthz")
    assert health.status_code == 200 and health.get_json() == {"status": "ok", "pending": 0}
    post_jira(client, jira_body(), secret="wrong")
    resp = client.get("/metrics")
    assert (
        resp.status_code == 200 and resp.content_type == "text/plain; version=0.0.4; charset=utf-8"
    )
    text = resp.get_data(as_text=True)
    for line in (
        "# TYPE ticketlint_sync_runs gauge",
        'ticketlint_sync_runs{status="ok"} 0',
        'ticketlint_findings{state="open",severity="critical"} 0',
        'ticketlint_webhook_events_total{endpoint="jira",outcome="unauthorized"} 1',
        'ticketlint_errors_total{kind="recheck"} 0',
        "ticketlint_store_up 1",
    ):
        assert line in text.splitlines(), line
    # Every sample line is `name{labels} value` with a numeric value.
    for line in text.splitlines():
        if not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


def test_each_webhook_is_logged(app: Any, rec: Recorder, caplog: Any) -> None:
    """Issue 17: `serve` logged nothing per webhook."""
    import logging

    with caplog.at_level(logging.INFO, logger="ticketlint.plugin.serve"):
        assert post_jira(app.test_client(), jira_body("OPS-12")).status_code == 202
        settle(app)
    assert "jira webhook for jira-prod/OPS-12: accepted" in caplog.text
