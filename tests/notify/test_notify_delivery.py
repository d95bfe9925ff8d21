"""Delivery: HMAC signing (and the docs' verification snippet), retries, 429 and
Retry-After, errors that name the destination but never its URL; the outbox: one row per
destination per run, retried after a failure, never re-sent after a crash, immediate posts
de-duplicated."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import responses
from notify_support import AS_OF, config, finding, many_findings, result
from sqlalchemy import select

from ticketlint.config import NotifyDestination
from ticketlint.notify import outbox, transport
from ticketlint.notify.transport import DeliveryError, Policy, headers_for, send, sign, verify
from ticketlint.store import repository as repo
from ticketlint.store.db import open_store
from ticketlint.store.models import OutboxRow

URL = "https://hooks.example.com/services/T000/B000/SECRETPART"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "notifications.md"


@pytest.fixture(autouse=True)
def fast_policy(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(
        transport, "POLICY", Policy(tries=3, wait_base=0.0, wait_max=0.0, max_retry_after=5.0)
    )
    monkeypatch.setattr(transport.time, "sleep", slept.append)
    return slept


def hook(type_: str = "webhook", secret: str | None = "s3cret") -> NotifyDestination:
    return NotifyDestination(name="siem", type=type_, url=URL, secret=secret)


# --- signing -------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = "sha256=" + hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("k", "1700000000", body) == expected
    assert verify("k", "1700000000", body, expected, now=1700000100)
    assert not verify("k", "1700000000", body + b" ", expected, now=1700000100)
    assert not verify("k", "1700000000", body, expected, now=1700009999)  # replayed too late
    assert not verify("other", "1700000000", body, expected, now=1700000000)


@responses.activate
def test_webhook_post_is_signed_over_the_exact_bytes_sent() -> None:
    responses.post(URL, status=204)
    send(hook(), {"id": "x", "text": "é"}, dedup_id="ticketlint:run:1:siem")
    req = responses.calls[0].request
    ts, sig = req.headers["X-Ticketlint-Timestamp"], req.headers["X-Ticketlint-Signature"]
    assert verify("s3cret", ts, req.body, sig)
    assert req.headers["X-Ticketlint-Delivery"] == "ticketlint:run:1:siem"
    assert json.loads(req.body) == {"id": "x", "text": "é"}


def test_docs_verification_snippet_accepts_a_real_signature() -> None:
    text = DOCS.read_text(encoding="utf-8")
    snippet = re.search(r"```python\n(# verify.*?)```", text, re.DOTALL)
    assert snippet, "docs/notifications.md lost its verification snippet"
    scope: dict = {}
    exec(snippet.group(1), scope)
    body = b'{"type":"ticketlint.digest","run_id":3}'
    headers = headers_for(hook(), body, "id")
    assert scope["verify"](b"s3cret", headers, body) is True
    assert scope["verify"](b"wrong", headers, body) is False
    assert scope["verify"](b"s3cret", headers, body + b"x") is False


def test_chat_platforms_get_no_signature_headers() -> None:
    assert "X-Ticketlint-Signature" not in headers_for(hook("slack"), b"{}", "id")


# --- retries, 429, errors ------------------------------------------------------------------------


@responses.activate
def test_5xx_is_retried_then_delivered(fast_policy: list[float]) -> None:
    responses.post(URL, status=502, body="bad gateway")
    responses.post(URL, status=503)
    responses.post(URL, status=200, body="ok")
    assert send(hook("slack"), {"text": "x"}) == 200
    assert len(responses.calls) == 3


@responses.activate
def test_429_waits_exactly_retry_after(fast_policy: list[float]) -> None:
    responses.post(URL, status=429, headers={"Retry-After": "3"})
    responses.post(URL, status=200)
    send(hook("teams"), {"type": "message"})
    assert fast_policy == [3.0]


@responses.activate
def test_429_with_a_long_retry_after_is_left_for_the_next_run(fast_policy: list[float]) -> None:
    responses.post(URL, status=429, headers={"Retry-After": "3600"})
    with pytest.raises(DeliveryError, match="left for the next run") as exc:
        send(hook("slack"), {"text": "x"})
    assert len(responses.calls) == 1 and fast_policy == []
    assert "siem" in str(exc.value)


@responses.activate
def test_errors_name_the_destination_never_the_url(caplog: pytest.LogCaptureFixture) -> None:
    responses.post(URL, status=500, body=f"cannot post to {URL}")
    responses.post(URL, status=500, body=f"cannot post to {URL}")
    responses.post(URL, status=500, body=f"cannot post to {URL}")
    caplog.set_level("DEBUG")
    with pytest.raises(DeliveryError) as exc:
        send(hook("slack"), {"text": "x"})
    assert (
        "'siem'" in str(exc.value)
        and "HTTP 500" in str(exc.value)
        and "after 3 tries" in str(exc.value)
    )
    assert "SECRETPART" not in str(exc.value) and "SECRETPART" not in caplog.text


@responses.activate
def test_4xx_is_not_retried() -> None:
    responses.post(URL, status=400, body="invalid_blocks")
    with pytest.raises(DeliveryError, match="HTTP 400: invalid_blocks"):
        send(hook("slack"), {"text": "x"})
    assert len(responses.calls) == 1


@responses.activate
def test_connection_errors_do_not_leak_the_url() -> None:
    responses.post(
        URL,
        body=requests.ConnectionError(f"HTTPSConnectionPool: Max retries exceeded with url: {URL}"),
    )
    with pytest.raises(DeliveryError) as exc:
        send(hook("slack"), {"text": "x"})
    assert str(exc.value) == "notify destination 'siem': connection failed after 3 tries"


# --- the outbox ----------------------------------------------------------------------------------

DESTS = f"""\
  - {{name: ops, type: slack, url: "{URL}/ops"}}
  - {{name: changes, type: teams, url: "{URL}/teams", processes: [change], min_severity: high}}
  - {{name: quiet, type: mattermost, url: "{URL}/mm", processes: [release]}}
  - {{name: heartbeat, type: webhook, url: "{URL}/hb", processes: [release], always: true, secret: k}}
"""


@pytest.fixture
def store(tmp_path: Path):
    s = open_store(f"sqlite:///{tmp_path / 'n.db'}")
    yield s
    s.dispose()


def new_run(store) -> int:
    with store.session() as s, s.begin():
        return repo.start_run(s, started_at=AS_OF, as_of=AS_OF, options={}).id


def enqueue(store, cfg, res) -> int:
    with store.session() as s, s.begin():
        return outbox.enqueue(s, cfg, res)


def rows(store) -> list[OutboxRow]:
    with store.session() as s:
        return list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def test_enqueue_one_row_per_destination_with_news_and_filters(store) -> None:
    cfg = config(store.url, DESTS)
    run = new_run(store)
    res = result(
        run,
        new=[finding(1, severity="medium"), finding(2, severity="high")],
        still_open=[finding(3)],
    )
    assert enqueue(store, cfg, res) == 3  # quiet: nothing for releases, heartbeat: always
    got = {r.destination: r for r in rows(store)}
    assert set(got) == {"ops", "changes", "heartbeat"}
    assert got["ops"].payload["counts"] == {"new": 2, "reopened": 0, "resolved": 0}
    assert got["ops"].payload["open"] == 3
    assert got["changes"].payload["counts"]["new"] == 1  # medium filtered out
    assert got["heartbeat"].payload["counts"]["new"] == 0
    assert all(r.run_id == run and r.state == "pending" for r in got.values())
    assert got["ops"].payload["id"] == f"ticketlint:run:{run}:ops"
    assert enqueue(store, cfg, res) == 0  # a second call for the same run adds nothing


def test_dry_runs_and_quiet_runs_enqueue_nothing(store) -> None:
    cfg = config(store.url, DESTS)
    assert enqueue(store, cfg, result(None, new=[finding(1)], dry_run=True)) == 0
    run = new_run(store)
    assert enqueue(store, cfg, result(run, still_open=[finding(1)])) == 1  # only heartbeat (always)


def test_resolved_findings_come_from_the_store(store) -> None:
    cfg = config(store.url, DESTS)
    run = new_run(store)
    f = finding(7)
    with store.session() as s, s.begin():
        repo.apply_diff(s, {}, result(run, new=[f]).sources[0].diff, run_id=run, now=AS_OF)
    run2 = new_run(store)
    enqueue(store, cfg, result(run2, resolved=[f.fingerprint]))
    payload = next(r for r in rows(store) if r.destination == "ops").payload
    assert payload["counts"]["resolved"] == 1
    assert "CHG-7 CHG006" in json.dumps(payload["body"])


@responses.activate
def test_drain_delivers_once_and_retries_a_failure_on_the_next_run(store) -> None:
    cfg = config(store.url, DESTS)
    run = new_run(store)
    enqueue(store, cfg, result(run, new=[finding(1)]))
    responses.post(f"{URL}/ops", status=200)
    for _ in range(3):
        responses.post(f"{URL}/teams", status=500)
    responses.post(f"{URL}/hb", status=202)
    report = outbox.drain(store, cfg, None)
    assert report == {"sent": 2, "failed": 1, "unconfirmed": 0}
    state = {r.destination: (r.state, r.attempts) for r in rows(store)}
    assert state == {"ops": ("sent", 1), "changes": ("failed", 1), "heartbeat": ("sent", 1)}
    failed = next(r for r in rows(store) if r.destination == "changes")
    assert (
        "'changes'" in failed.last_error
        and "HTTP 500" in failed.last_error
        and URL not in failed.last_error
    )

    responses.post(f"{URL}/teams", status=202)
    assert outbox.drain(store, cfg, None) == {"sent": 1, "failed": 0, "unconfirmed": 0}
    assert {r.destination: r.state for r in rows(store)} == {
        "ops": "sent",
        "changes": "sent",
        "heartbeat": "sent",
    }
    posted = [c.request.url for c in responses.calls]
    assert posted.count(f"{URL}/ops") == 1 and posted.count(f"{URL}/hb") == 1


@responses.activate
def test_rows_give_up_after_max_attempts(store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox, "MAX_ATTEMPTS", 2)
    cfg = config(store.url, f'  - {{name: ops, type: slack, url: "{URL}/ops"}}\n')
    enqueue(store, cfg, result(new_run(store), new=[finding(1)]))
    responses.post(f"{URL}/ops", status=404, body="no_service")
    outbox.drain(store, cfg)
    outbox.drain(store, cfg)
    outbox.drain(store, cfg)
    (row,) = rows(store)
    assert (row.state, row.attempts) == ("gave_up", 2)
    assert len(responses.calls) == 2


def _crash_child(db_url: str, cfg_text: str, tmp_path: Path) -> int:
    """Deliver in a child process that dies right after the HTTP post (before confirming)."""
    script = tmp_path / "child.py"
    script.write_text(
        "import sys, responses\n"
        "from ticketlint.config import parse_config\nfrom ticketlint.store.db import open_store\nfrom ticketlint.notify import outbox\n"
        f"cfg = parse_config({cfg_text!r})\n"
        "with responses.RequestsMock() as r:\n"
        f"    r.post({URL + '/ops'!r}, status=200)\n"
        f"    outbox.drain(open_store({db_url!r}), cfg)\n",
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "TICKETLINT_TEST_CRASH_AT": "after-send",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    return subprocess.run([sys.executable, str(script)], env=env, timeout=60).returncode


@responses.activate
def test_a_crash_after_sending_is_never_re_sent_automatically(store, tmp_path: Path) -> None:
    cfg_text = (
        f'database: "{store.url}"\nnotify:\n  - {{name: ops, type: slack, url: "{URL}/ops"}}\n'
    )
    cfg = config(store.url, f'  - {{name: ops, type: slack, url: "{URL}/ops"}}\n')
    enqueue(store, cfg, result(new_run(store), new=[finding(1)]))
    assert _crash_child(store.url, cfg_text, tmp_path) == 137
    (row,) = rows(store)
    assert (row.state, row.attempts) == ("sending", 1)

    report = outbox.drain(store, cfg)  # the next run: reports it, does not post
    assert report == {"sent": 0, "failed": 0, "unconfirmed": 1}
    (row,) = rows(store)
    assert row.state == "unconfirmed" and f"notify retry {row.id}" in row.last_error
    assert len(responses.calls) == 0
    assert outbox.drain(store, cfg) == {"sent": 0, "failed": 0, "unconfirmed": 0}

    responses.post(f"{URL}/ops", status=200)  # forced by hand
    assert outbox.retry(store, cfg, row.id) is True
    assert rows(store)[0].state == "sent" and len(responses.calls) == 1


def test_a_live_sender_is_not_taken_for_crashed(store) -> None:
    cfg = config(store.url, f'  - {{name: ops, type: slack, url: "{URL}/ops"}}\n')
    enqueue(store, cfg, result(new_run(store), new=[finding(1)]))
    assert (
        outbox._claim(store, rows(store)[0].id, outbox.RETRYABLE) is not None
    )  # this process holds it
    assert outbox.mark_unconfirmed(store) == []
    assert rows(store)[0].state == "sending"


@responses.activate
def test_post_immediate_posts_high_findings_once(store) -> None:
    cfg = config(
        store.url,
        f'  - {{name: ops, type: slack, url: "{URL}/ops"}}\n'
        f'  - {{name: siem, type: webhook, url: "{URL}/hb", secret: k}}\n',
    )
    responses.post(f"{URL}/ops", status=200)
    responses.post(f"{URL}/hb", status=200)
    found = [finding(1, severity="critical"), finding(2, severity="low")]
    assert outbox.post_immediate(store, cfg, found, source="jira-prod", key="CHG-1") == 2
    assert (
        outbox.post_immediate(store, cfg, list(reversed(found)), source="jira-prod", key="CHG-1")
        == 0
    )
    assert len(responses.calls) == 2
    body = json.loads(responses.calls[1].request.body)
    assert body["type"] == "ticketlint.immediate" and [i["key"] for i in body["new"]] == ["CHG-1"]
    assert all(r.run_id is None and r.state == "sent" for r in rows(store))
    assert (
        outbox.post_immediate(
            store, cfg, [finding(3, severity="medium")], source="jira-prod", key="CHG-3"
        )
        == 0
    )


@responses.activate
def test_500_findings_enqueue_and_send_within_limits(store) -> None:
    cfg = config(
        store.url, f'  - {{name: ops, type: slack, url: "{URL}/ops", min_severity: info}}\n'
    )
    enqueue(store, cfg, result(new_run(store), new=many_findings(500)))
    responses.post(f"{URL}/ops", status=200)
    outbox.drain(store, cfg)
    body = json.loads(responses.calls[0].request.body)
    assert (
        len(body["blocks"]) <= 50
        and "and 490 more new findings" in responses.calls[0].request.body.decode()
    )
