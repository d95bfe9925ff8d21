"""``serve`` on a hostile network: no unsigned webhooks on a public address unless asked
for (and then said at every start), bounded connections, JSON depth limits, one access
line per webhook without its body."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
from click.testing import CliRunner

from ticketlint.cli import cli
from ticketlint.config import Config, parse_config
from ticketlint.plugin.serve import commands as serve_commands
from ticketlint.plugin.serve.app import create_app, serve_state
from ticketlint.plugin.serve.coalesce import TicketRef
from ticketlint.plugin.serve.security import sign_jira
from ticketlint.store.db import Store, open_store

SECRET = "hook-secret-1"
SOURCES = """\
sources:
  - {name: jira-prod, type: jira, url: "https://acme.atlassian.net", auth: {pat: abc}}
  - {name: snow-prod, type: servicenow, url: "https://acme.service-now.com", auth: {user: u, password: p}}
"""


def _config(tmp: Path, serve: str = "") -> str:
    return f'database: "sqlite:///{tmp / "tl.db"}"\n{SOURCES}{serve}'


class FakeServer:
    """Stands in for waitress: records its settings, stops at once."""

    made: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, app: Any, **kwargs: Any) -> None:
        FakeServer.made.append(kwargs)
        self.effective_port = kwargs.get("port") or 8080

    def run(self) -> None:
        raise KeyboardInterrupt("SIGTERM")

    def close(self) -> None:
        pass


@pytest.fixture
def fake_waitress(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    import waitress

    FakeServer.made = []
    monkeypatch.setattr(waitress, "create_server", FakeServer)
    return FakeServer.made


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "ticketlint.example"])
def test_serve_refuses_a_public_address_without_secrets(
    host: str, runner: CliRunner, tmp_path: Path, fake_waitress: list[dict[str, Any]]
) -> None:
    Path("ticketlint.yaml").write_text(_config(tmp_path))
    result = runner.invoke(cli, ["serve", "--host", host, "--port", "0"])
    assert result.exit_code == 2, result.output
    assert "refusing to listen" in result.stderr
    assert "serve.jira_secret and serve.servicenow_secret" in result.stderr
    assert fake_waitress == []


def test_serve_refuses_with_only_one_of_two_secrets(
    runner: CliRunner, tmp_path: Path, fake_waitress: list[dict[str, Any]]
) -> None:
    Path("ticketlint.yaml").write_text(_config(tmp_path, f"serve: {{jira_secret: {SECRET}}}\n"))
    result = runner.invoke(cli, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "serve.servicenow_secret" in result.stderr and "serve.jira_secret " not in result.stderr


def test_insecure_no_auth_starts_and_says_so_every_time(
    runner: CliRunner, tmp_path: Path, fake_waitress: list[dict[str, Any]]
) -> None:
    Path("ticketlint.yaml").write_text(_config(tmp_path))
    for _ in range(2):
        result = runner.invoke(cli, ["serve", "--host", "0.0.0.0", "--insecure-no-auth"])
        assert result.exit_code == 0, result.output
        assert "WARNING: --insecure-no-auth" in result.stderr
    assert len(fake_waitress) == 2


def test_loopback_or_both_secrets_start(
    runner: CliRunner, tmp_path: Path, fake_waitress: list[dict[str, Any]]
) -> None:
    Path("ticketlint.yaml").write_text(_config(tmp_path))
    assert runner.invoke(cli, ["serve", "--host", "127.0.0.1"]).exit_code == 0
    Path("ticketlint.yaml").write_text(
        _config(tmp_path, f"serve: {{jira_secret: {SECRET}, servicenow_secret: {SECRET}}}\n")
    )
    result = runner.invoke(cli, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    assert "insecure" not in result.stderr


def test_connection_limit_and_channel_timeout_are_set_and_configurable(
    runner: CliRunner, tmp_path: Path, fake_waitress: list[dict[str, Any]]
) -> None:
    Path("ticketlint.yaml").write_text(
        _config(tmp_path, "serve: {connection_limit: 500, channel_timeout: 7}\n")
    )
    assert runner.invoke(cli, ["serve"]).exit_code == 0
    assert fake_waitress[-1]["connection_limit"] == 500
    assert fake_waitress[-1]["channel_timeout"] == 7
    assert fake_waitress[-1]["max_request_header_size"] <= 16_384
    result = runner.invoke(cli, ["serve", "--connection-limit", "300", "--channel-timeout", "3"])
    assert result.exit_code == 0, result.output
    assert fake_waitress[-1]["connection_limit"] == 300
    assert fake_waitress[-1]["channel_timeout"] == 3


# --- a real waitress with slow clients ------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'tl.db'}")
    yield s
    s.dispose()


def _cfg(tmp_path: Path, serve: str = "") -> Config:
    return parse_config(
        _config(
            tmp_path, serve or f"serve: {{jira_secret: {SECRET}, servicenow_secret: {SECRET}}}\n"
        )
    )


def test_slow_clients_do_not_block_healthz(tmp_path: Path, store: Store) -> None:
    from waitress import create_server

    cfg = _cfg(tmp_path)
    app = create_app(cfg, store, handler=lambda ref: None)
    server: Any = create_server(
        app, host="127.0.0.1", port=0, **serve_commands.server_options(cfg, threads=4)
    )

    def run() -> None:
        # the select loop sees its sockets closed by the teardown below
        with contextlib.suppress(OSError):
            server.run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    slow: list[socket.socket] = []
    try:
        for _ in range(110):  # each trickles a request line and never finishes its headers
            s = socket.create_connection(("127.0.0.1", server.effective_port), timeout=5)
            s.sendall(b"POST /hooks/jira HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
        time.sleep(0.2)
        answer = requests.get(f"http://127.0.0.1:{server.effective_port}/healthz", timeout=3)
        assert answer.status_code == 200
    finally:
        for s in slow:
            s.close()
        server.close()
        serve_state(app).stop(timeout=1)
        thread.join(timeout=5)


# --- request bodies -------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path, store: Store) -> Iterator[Any]:
    seen: list[TicketRef] = []
    application = create_app(_cfg(tmp_path), store, handler=seen.append, debounce=0.01)
    application.config["seen"] = seen
    yield application
    serve_state(application).stop(timeout=1)


def _jira(**extra: Any) -> bytes:
    return json.dumps(
        {"timestamp": int(time.time() * 1000), "issue": {"key": "OPS-1"}, **extra}
    ).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"timestamp": 1, "issue": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"a": ' + b'{"b": ' * 2000 + b"1" + b"}" * 2000 + b"}",
    ],
)
@pytest.mark.parametrize("signed", [True, False])
def test_deep_nested_body_is_400_never_500(app: Any, body: bytes, signed: bool) -> None:
    headers = {"Content-Type": "application/json"}
    if signed:
        headers["X-Hub-Signature"] = sign_jira(SECRET, body)
    answer = app.test_client().post("/hooks/jira", data=body, headers=headers)
    assert answer.status_code in (400, 401), answer.data
    if signed:
        assert answer.status_code == 400
        assert b"nested deeper" in answer.data
    assert app.config["seen"] == []


def test_a_5000_digit_number_is_no_crash(app: Any) -> None:
    body = _jira(extra=int("9" * 100)).replace(b"9" * 100, b"9" * 5000)
    answer = app.test_client().post(
        "/hooks/jira",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature": sign_jira(SECRET, body)},
    )
    assert answer.status_code == 202


def test_every_webhook_is_logged_without_its_body(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ticketlint.plugin.serve.access")
    client = app.test_client()
    body = _jira(secret_marker="BODY-MARKER-123")
    client.post(
        "/hooks/jira",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature": sign_jira(SECRET, body)},
    )
    client.post("/hooks/jira", data=body, headers={"Content-Type": "application/json"})
    lines = [r.getMessage() for r in caplog.records if r.name.endswith(".access")]
    assert len(lines) == 2
    assert "source=jira-prod key=OPS-1 verdict=accepted status=202 latency_ms=" in lines[0]
    assert "verdict=unauthorized status=401" in lines[1]
    assert all("BODY-MARKER" not in line for line in lines)
