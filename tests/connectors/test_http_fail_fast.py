"""Connection refused, an unknown host and a TLS failure fail at once, naming the cause
and the URL (issue 17 item 3); resets and timeouts are still retried."""

from __future__ import annotations

import socket
import ssl
import time

import pytest
import requests
import urllib3.exceptions

from ticketlint.connectors.base import SourceError
from ticketlint.connectors.http import HttpClient, connection_failure


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused_fails_at_once_naming_cause_and_url() -> None:
    port = _free_port()  # nothing listens there any more: the OS refuses the connection
    sleeps = Sleeps()
    http = HttpClient("jira-prod", f"http://127.0.0.1:{port}", requests.Session(), sleep=sleeps)
    t0 = time.monotonic()
    with pytest.raises(SourceError) as info:
        http.get_json("/rest/api/3/myself?token=secret")
    assert time.monotonic() - t0 < 2
    assert sleeps == [] and http.request_count == 1
    text = str(info.value)
    assert "connection refused" in text and f"http://127.0.0.1:{port}/rest/api/3/myself" in text
    assert "rate limit" not in text and "secret" not in text and "\n" not in text


def test_unknown_host_is_host_not_found_without_retries() -> None:
    sleeps = Sleeps()
    http = HttpClient(
        "snow", "http://no-such-host.invalid", requests.Session(), sleep=sleeps, timeout=5
    )
    with pytest.raises(SourceError) as info:
        http.get_json("/api/now/table/incident")
    assert sleeps == [] and http.request_count == 1
    assert "host not found" in str(info.value) and "no-such-host.invalid" in str(info.value)


@pytest.mark.parametrize(
    "exc, cause",
    [
        (requests.exceptions.SSLError(ssl.SSLError("CERTIFICATE_VERIFY_FAILED")), "TLS failure"),
        (
            requests.exceptions.ConnectionError(
                urllib3.exceptions.MaxRetryError(
                    None,  # type: ignore[arg-type]
                    "/",
                    urllib3.exceptions.NewConnectionError(
                        None,  # type: ignore[arg-type]
                        "Failed to establish a new connection: [Errno 111] Connection refused",
                    ),
                )
            ),
            "connection refused",
        ),
        (requests.exceptions.ConnectionError(socket.gaierror(-2, "nope")), "host not found"),
        (requests.exceptions.ConnectionError(ConnectionResetError(104, "reset")), None),
        (requests.exceptions.ConnectionError("Connection aborted."), None),
    ],
)
def test_connection_failure_classifies_what_no_retry_can_fix(
    exc: BaseException, cause: str | None
) -> None:
    found = connection_failure(exc)
    if cause is None:
        assert found is None
    else:
        assert found is not None and found.startswith(cause)
