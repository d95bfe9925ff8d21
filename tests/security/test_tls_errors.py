"""A TLS failure names what failed (unknown CA, hostname mismatch, expired) and the
``verify:`` option, once (no retries, no rate-limit hint). Real handshakes against a
local HTTPS server with certificates made by ``openssl``."""

from __future__ import annotations

import http.server
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ticketlint.connectors.base import SourceError
from ticketlint.connectors.http import HttpClient

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tls")
    _run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "2", "-subj", "/CN=ticketlint test CA", cwd=d)  # fmt: skip
    _run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
         "-subj", "/CN=localhost", cwd=d)  # fmt: skip
    (d / "good.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    (d / "other.ext").write_text("subjectAltName=DNS:other.example\n")
    for name, ext, days in (
        ("good", "good.ext", "2"),
        ("other", "other.ext", "2"),
        ("expired", "good.ext", "-1"),
    ):
        _run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", days, "-extfile", ext, cwd=d)  # fmt: skip
    return d


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https(certs: Path) -> Iterator[object]:
    servers: list[http.server.HTTPServer] = []

    def start(cert: str) -> str:
        server = http.server.HTTPServer(("127.0.0.1", 0), _Ok)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certs / f"{cert}.pem", certs / "srv.key")
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"https://127.0.0.1:{server.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def _get(url: str, verify: bool | str) -> SourceError:
    client = HttpClient("jira-prod", url, requests.Session(), verify=verify, sleep=lambda _s: None)
    with pytest.raises(SourceError) as info:
        client.get_json("/rest/api/2/myself")
    assert client.request_count == 1  # not retried: a certificate does not heal
    return info.value


def test_unknown_ca(https: object) -> None:
    err = str(_get(https("good"), True))  # type: ignore[operator]
    assert "TLS failure: unknown CA" in err and "verify" in err and "rate limit" not in err


def test_hostname_mismatch(https: object, certs: Path) -> None:
    err = str(_get(https("other"), str(certs / "ca.pem")))  # type: ignore[operator]
    assert "TLS failure: hostname mismatch" in err and "sources[].verify" in err


def test_expired(https: object, certs: Path) -> None:
    err = str(_get(https("expired"), str(certs / "ca.pem")))  # type: ignore[operator]
    assert "TLS failure: certificate expired" in err


def test_ca_bundle_that_cannot_be_read(https: object, certs: Path) -> None:
    err = str(_get(https("good"), str(certs / "missing.pem")))  # type: ignore[operator]
    assert "CA bundle named by verify" in err


def test_the_right_ca_works(https: object, certs: Path) -> None:
    client = HttpClient(
        "jira-prod", https("good"), requests.Session(), verify=str(certs / "ca.pem")
    )  # type: ignore[operator]
    assert client.get_json("/x") == {}
