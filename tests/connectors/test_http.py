"""ticketlint.connectors.http: what is retried, how long it waits, and what a refusal says."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
import requests
import responses

from ticketlint.connectors.base import SourceError
from ticketlint.connectors.http import HttpClient, retry_after_seconds, safe_url

BASE = "https://example.atlassian.net"
URL = f"{BASE}/rest/api/3/search/jql"


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(sleeps: Sleeps, **kw) -> HttpClient:
    session = requests.Session()
    session.auth = ("ops@example.com", "s3cret-token")
    return HttpClient("jira-prod", BASE, session, sleep=sleeps, **kw)


@responses.activate
def test_429_with_retry_after_seconds_waits_exactly_that_long() -> None:
    responses.get(
        URL, status=429, headers={"Retry-After": "7"}, json={"errorMessages": ["Rate limit"]}
    )
    responses.get(URL, json={"issues": []})
    sleeps = Sleeps()
    http = client(sleeps)
    assert http.get_json("/rest/api/3/search/jql", params={"jql": "project = OPS"}) == {
        "issues": []
    }
    assert sleeps == [7.0]
    assert len(responses.calls) == 2 and http.request_count == 2


@responses.activate
def test_429_with_retry_after_http_date_uses_the_servers_date_header() -> None:
    server_now = datetime(2026, 3, 2, 14, 10, 0, tzinfo=timezone.utc)
    headers = {
        "Retry-After": format_datetime(server_now + timedelta(seconds=45), usegmt=True),
        "Date": format_datetime(server_now, usegmt=True),
    }
    responses.get(URL, status=429, headers=headers)
    responses.get(URL, json={"issues": []})
    sleeps = Sleeps()
    client(sleeps).get_json(URL)
    assert sleeps == [45.0]
    assert len(responses.calls) == 2


@responses.activate
def test_retry_after_is_capped_by_retry_after_max() -> None:
    responses.get(URL, status=429, headers={"Retry-After": "3600"})
    responses.get(URL, json={})
    sleeps = Sleeps()
    client(sleeps, retry_after_max=90).get_json(URL)
    assert sleeps == [90.0]


def test_retry_after_seconds_parses_both_forms_and_rejects_garbage() -> None:
    def resp(headers: dict[str, str]) -> requests.Response:
        r = requests.Response()
        r.status_code = 429
        r.headers.update(headers)
        return r

    assert retry_after_seconds(resp({}), 120) is None
    assert retry_after_seconds(resp({"Retry-After": "soon"}), 120) is None
    assert retry_after_seconds(resp({"Retry-After": "2.5"}), 120) == 2.5
    assert retry_after_seconds(resp({"Retry-After": "-3"}), 120) == 0.0
    past = format_datetime(datetime(2020, 1, 1, tzinfo=timezone.utc), usegmt=True)
    assert retry_after_seconds(resp({"Retry-After": past}), 120) == 0.0
    future = format_datetime(datetime.now(timezone.utc) + timedelta(days=1), usegmt=True)
    assert retry_after_seconds(resp({"Retry-After": future}), 120) == 120


@responses.activate
def test_429_without_retry_after_backs_off_exponentially_with_jitter() -> None:
    for _ in range(3):
        responses.get(URL, status=429)
    responses.get(URL, json={"ok": True})
    sleeps = Sleeps()
    assert client(sleeps).get_json(URL) == {"ok": True}
    assert len(sleeps) == 3
    # steps 1, 2, 4 s with "equal jitter": within [step/2, step]
    for wait, step in zip(sleeps, (1, 2, 4), strict=False):
        assert step / 2 <= wait <= step


@responses.activate
def test_503_burst_then_success() -> None:
    for status in (503, 502, 500, 504):
        responses.get(URL, status=status, body="<html>upstream error</html>")
    responses.get(URL, json={"issues": [1]})
    sleeps = Sleeps()
    http = client(sleeps)
    assert http.get_json(URL) == {"issues": [1]}
    assert len(sleeps) == 4 and len(responses.calls) == 5 and http.request_count == 5


@responses.activate
def test_timeout_and_connection_reset_are_retried() -> None:
    responses.get(URL, body=requests.exceptions.ReadTimeout("read timed out"))
    responses.get(
        URL,
        body=requests.exceptions.ConnectionError(
            ConnectionResetError(104, "Connection reset by peer")
        ),
    )
    responses.get(URL, json={"done": True})
    sleeps = Sleeps()
    assert client(sleeps).get_json(URL) == {"done": True}
    assert len(sleeps) == 2 and len(responses.calls) == 3


@responses.activate
def test_every_request_carries_the_timeout_and_verify_setting(tmp_path) -> None:
    responses.get(URL, json={})
    ca = tmp_path / "ca.pem"
    ca.write_text("not used by responses")
    client(Sleeps(), timeout=12.5, verify=str(ca)).get_json(URL)
    assert responses.calls[0].request.req_kwargs["timeout"] == 12.5
    assert responses.calls[0].request.req_kwargs["verify"] == str(ca)


@responses.activate
def test_a_200_page_that_is_not_json_is_retried() -> None:
    responses.get(URL, body='{"issues": [{"id": "1"', content_type="application/json")
    responses.get(URL, json={"issues": [{"id": "1"}]})
    sleeps = Sleeps()
    assert client(sleeps).get_json(URL) == {"issues": [{"id": "1"}]}
    assert len(sleeps) == 1 and len(responses.calls) == 2


@responses.activate
def test_retries_exhausted_raise_source_error_naming_the_url_and_status() -> None:
    responses.get(URL, status=503, json={"errorMessages": ["Service Unavailable"]})
    sleeps = Sleeps()
    http = client(sleeps, max_attempts=3)
    with pytest.raises(SourceError) as err:
        http.get_json(URL, params={"jql": "project = SECRETPROJ", "token": "abc"})
    assert len(responses.calls) == 3 and len(sleeps) == 2 and http.request_count == 3
    text = str(err.value)
    assert "after 3 attempts" in text and "HTTP 503" in text and URL in text
    assert "Service Unavailable" in text
    assert "SECRETPROJ" not in text and "abc" not in text and "s3cret" not in text


@pytest.mark.parametrize(
    ("status", "body", "expected_detail", "hint_word"),
    [
        (
            400,
            {
                "errorMessages": [
                    "Field 'Rollback plan' does not exist or you do not have permission to view it."
                ],
                "errors": {},
            },
            "Field 'Rollback plan' does not exist",
            "query",
        ),
        (
            401,
            {
                "errorMessages": [
                    "You are not authenticated. Authentication required to perform this operation."
                ]
            },
            "not authenticated",
            "credentials",
        ),
        (
            403,
            {
                "errorMessages": [],
                "errors": {"projectKey": "You do not have permission to browse project OPS."},
            },
            "projectKey: You do not have permission",
            "permissions",
        ),
        (
            404,
            {
                "errorMessages": ["Issue does not exist or you do not have permission to see it."],
                "errors": {},
            },
            "Issue does not exist",
            "base path",
        ),
        (
            410,
            {
                "errorMessages": [
                    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API."
                ]
            },
            "has been removed",
            "removed endpoint",
        ),
    ],
)
@responses.activate
def test_client_errors_are_never_retried_and_say_what_to_check(
    status, body, expected_detail, hint_word
) -> None:
    responses.get(URL, status=status, json=body)
    sleeps = Sleeps()
    with pytest.raises(SourceError) as err:
        client(sleeps).get_json(URL, params={"jql": "project = SECRETPROJ"})
    assert len(responses.calls) == 1 and sleeps == []
    e = err.value
    assert e.status == status and e.url == URL
    assert expected_detail in str(e) and hint_word in (e.hint or "")
    assert "s3cret" not in str(e) and "SECRETPROJ" not in str(e)


@responses.activate
def test_servicenow_error_shape_is_read() -> None:
    url = "https://example.service-now.com/api/now/table/incident"
    responses.get(
        url,
        status=403,
        json={
            "error": {
                "message": "User Not Authorized",
                "detail": "Required to provide Auth information",
            },
            "status": "failure",
        },
    )
    with pytest.raises(SourceError) as err:
        HttpClient(
            "snow", "https://example.service-now.com", requests.Session(), sleep=Sleeps()
        ).get_json(url)
    assert "User Not Authorized" in str(
        err.value
    ) and "Required to provide Auth information" in str(err.value)


@responses.activate
def test_custom_error_detail_is_used() -> None:
    responses.get(URL, status=400, body="bad")
    http = HttpClient(
        "x",
        BASE,
        requests.Session(),
        sleep=Sleeps(),
        error_detail=lambda r: f"custom {r.status_code}",
    )
    with pytest.raises(SourceError, match="custom 400"):
        http.request("GET", URL)


@responses.activate
def test_request_returns_non_json_responses_and_relative_paths_join_the_base() -> None:
    responses.get(f"{BASE}/status", body="OK")
    http = client(Sleeps())
    assert http.request("GET", "status").text == "OK"
    assert http.post_json is not None


@responses.activate
def test_post_json_sends_the_body_and_retries_it_unchanged() -> None:
    url = f"{BASE}/rest/api/3/changelog/bulkfetch"
    responses.post(url, status=502)
    responses.post(url, json={"issueChangeLogs": []})
    body = {"issueIdsOrKeys": ["10001"], "fieldIds": ["status"], "maxResults": 10000}
    assert client(Sleeps()).post_json("/rest/api/3/changelog/bulkfetch", json=body) == {
        "issueChangeLogs": []
    }
    import json

    assert [json.loads(c.request.body) for c in responses.calls] == [body, body]


def test_verify_false_warns_and_never_logs_secrets(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        client(Sleeps(), verify=False)
    assert "verification is OFF" in caplog.text


@responses.activate
def test_retry_log_lines_hold_no_query_or_secret(caplog) -> None:
    responses.get(URL, status=429)
    responses.get(URL, json={})
    with caplog.at_level(logging.WARNING):
        client(Sleeps()).get_json(URL, params={"jql": "project = SECRETPROJ"})
    assert (
        "retrying" in caplog.text
        and "SECRETPROJ" not in caplog.text
        and "s3cret" not in caplog.text
    )


def test_safe_url_drops_userinfo_and_query() -> None:
    assert (
        safe_url("https://u:p@jira.example.com:8443/jira/rest/api/2/search?jql=x#f")
        == "https://jira.example.com:8443/jira/rest/api/2/search"
    )
