"""``ticketlint notify test|preview|status|retry`` through click, with HTTP mocked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import responses
from click.testing import CliRunner
from notify_support import config, finding, result

from ticketlint.cli import cli
from ticketlint.notify import outbox, transport
from ticketlint.notify.transport import Policy
from ticketlint.store.db import open_store

URL = "https://hooks.slack.example/services/T1/B1/TOPSECRET"


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    monkeypatch.setattr(transport, "POLICY", Policy(tries=1, wait_base=0, wait_max=0))
    db = f"sqlite:///{tmp_path / 't.db'}"
    path = tmp_path / "ticketlint.yaml"
    path.write_text(
        f'database: "{db}"\nnotify:\n  - {{name: ops, type: slack, url: "{URL}"}}\n',
        encoding="utf-8",
    )
    return path, db


def run(path: Path, *args: str):
    return CliRunner().invoke(cli, ["--config", str(path), "notify", *args])


@responses.activate
def test_test_sends_a_sample_and_fails_with_exit_2(setup) -> None:
    path, _ = setup
    responses.post(URL, status=200, body="ok")
    ok = run(path, "test", "ops")
    assert ok.exit_code == 0 and "sent a sample digest to ops" in ok.stdout
    assert "ticketlint:sample:ops" in responses.calls[0].request.body.decode()
    responses.replace(responses.POST, URL, status=403, body="invalid_token")
    bad = run(path, "test", "ops")
    assert bad.exit_code == 2 and "'ops'" in bad.stderr and "HTTP 403" in bad.stderr
    assert "TOPSECRET" not in bad.stderr + bad.stdout
    assert run(path, "test", "nope").exit_code == 2


def test_preview_shows_a_sample_then_the_queued_payload(setup) -> None:
    path, db = setup
    first = run(path, "preview", "ops")
    assert first.exit_code == 0 and json.loads(first.stdout)["blocks"][0]["type"] == "header"
    store = open_store(db)
    cfg = config(db, f'  - {{name: ops, type: slack, url: "{URL}"}}\n')
    from notify_support import AS_OF

    from ticketlint.store import repository as repo

    with store.session() as s, s.begin():
        run_id = repo.start_run(s, started_at=AS_OF, as_of=AS_OF, options={}).id
        repo.finish_run(s, run_id, status="ok", sources={}, finished_at=AS_OF)
        outbox.enqueue(s, cfg, result(run_id, new=[finding(1)]))
    shown = run(path, "preview", "ops", "--run", str(run_id))
    assert shown.exit_code == 0 and f"ticketlint:run:{run_id}:ops" in shown.stdout
    assert "CHG-1" in shown.stdout and "TOPSECRET" not in shown.stdout


@responses.activate
def test_status_and_retry(setup) -> None:
    path, db = setup
    missing = run(path, "status")  # no sync yet: no store, and none is created
    assert missing.exit_code == 2 and "no store at" in missing.output
    store = open_store(db)
    assert "outbox is empty" in run(path, "status").stdout
    cfg = config(db, f'  - {{name: ops, type: slack, url: "{URL}"}}\n')
    from notify_support import AS_OF

    from ticketlint.store import repository as repo

    with store.session() as s, s.begin():
        run_id = repo.start_run(s, started_at=AS_OF, as_of=AS_OF, options={}).id
        outbox.enqueue(s, cfg, result(run_id, new=[finding(1)]))
    responses.post(URL, status=500, body="boom")
    outbox.drain(store, cfg)
    listed = run(path, "status")
    assert (
        "failed" in listed.stdout
        and "HTTP 500" in listed.stdout
        and "TOPSECRET" not in listed.stdout
    )
    responses.replace(responses.POST, URL, status=200)
    again = run(path, "retry", "1")
    assert again.exit_code == 0 and "message 1 sent to ops" in again.stdout
    twice = run(path, "retry", "1")
    assert twice.exit_code == 2 and "not sending it twice" in twice.stderr
