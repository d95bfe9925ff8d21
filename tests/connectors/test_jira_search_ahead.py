"""Cloud search pages are asked for before the last one is parsed: the token is read off
the end of the page's bytes (``token_ahead``) and checked against the parsed page, which
decides. A wrong guess costs one request, never a page or an error."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import responses
from test_jira_connector import CLOUD, SETUP_REQUESTS, Sleeps, issue, setup_calls, source

import ticketlint.connectors.jira.search as search
from ticketlint.connectors.base import SourceError
from ticketlint.connectors.jira import JiraConnector
from ticketlint.connectors.jira.search import token_ahead

SEARCH = f"{CLOUD}/rest/api/3/search/jql"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"issues":[{"id":"1"}],"nextPageToken":"CAEaAggD1","isLast":false}', "CAEaAggD1"),
        (b'{"issues":[],"isLast":false,"nextPageToken":"CAEaAggD1"}', "CAEaAggD1"),
        (b'{"issues": [] ,\n "nextPageToken" : "a\\"b\\u00e9" }', 'a"b\u00e9'),
        (b'{"issues":[],"nextPageToken":"CAEaAggD1","isLast":true}', None),
        (b'{"issues":[],"isLast":true}', None),
        (b'{"issues":[],"nextPageToken":"","isLast":false}', None),
        (b'{"issues":[],"nextPageToken":null,"isLast":false}', None),
        (b'{"issues":[],"nextPageToken":"cut off', None),
        (b"", None),
    ],
)
def test_token_ahead_reads_the_last_token_unless_the_page_says_it_is_the_last(
    content: bytes, expected: str | None
) -> None:
    assert token_ahead(content) == expected


def _tokens_asked() -> list[str | None]:
    return [
        json.loads(c.request.body).get("nextPageToken")
        for c in responses.calls
        if c.request.url == SEARCH
    ]


def _incident(n: int) -> dict[str, Any]:
    return issue(n, itype="Incident", status="Open", category="new")


@responses.activate
def test_a_wrong_guess_is_thrown_away_with_its_error_and_paging_goes_on_from_the_parsed_token() -> (
    None
):
    """The top-level token comes first and an issue's field holds a key of the same name
    after it: the guess asks with that value (refused with 400), the parsed page says
    otherwise, and the read goes on from the real token as if nothing had been guessed."""
    setup_calls()
    first = _incident(1)
    first["fields"]["customfield_99999"] = {"nextPageToken": "decoy", "isLast": False}
    pages = {
        None: (200, {"nextPageToken": "real-2", "issues": [first], "isLast": False}),
        "decoy": (400, {"errorMessages": ["The provided next page token is invalid."]}),
        "real-2": (200, {"issues": [_incident(2)], "isLast": True}),
    }

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        status, body = pages[json.loads(request.body).get("nextPageToken")]
        return status, {"Content-Type": "application/json"}, json.dumps(body)

    responses.add_callback(responses.POST, SEARCH, callback=answer)
    conn = JiraConnector(source(), sleep=Sleeps())
    keys = [r.key for b in conn.read("incident") for r in b.records]
    assert keys == ["OPS-1", "OPS-2"]
    assert _tokens_asked() == [None, "decoy", "real-2"]
    assert conn.request_count == SETUP_REQUESTS + 3  # the wasted request is counted too


@responses.activate
def test_the_next_page_is_asked_for_before_the_last_one_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup_calls()
    second_asked = threading.Event()
    pages = {
        None: {"issues": [_incident(1)], "nextPageToken": "CAEaAggD1", "isLast": False},
        "CAEaAggD1": {"issues": [_incident(2)], "isLast": True},
    }

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        token = json.loads(request.body).get("nextPageToken")
        if token is not None:
            second_asked.set()
        return 200, {"Content-Type": "application/json"}, json.dumps(pages[token])

    responses.add_callback(responses.POST, SEARCH, callback=answer)
    parse = search.loads_body
    seen_while_parsing: list[bool] = []

    def parse_first_after_the_second_request(content: bytes) -> Any:
        if not seen_while_parsing:
            seen_while_parsing.append(second_asked.wait(timeout=10))
        return parse(content)

    monkeypatch.setattr(search, "loads_body", parse_first_after_the_second_request)
    conn = JiraConnector(source(), sleep=Sleeps())
    keys = [r.key for b in conn.read("incident") for r in b.records]
    assert keys == ["OPS-1", "OPS-2"]
    assert seen_while_parsing == [True]
    assert _tokens_asked() == [None, "CAEaAggD1"]


@responses.activate
def test_a_page_that_looks_whole_but_does_not_parse_is_asked_for_again() -> None:
    """A body cut inside (``{ ... }`` but not JSON) gets past the byte check; the parse
    finds it and the same page is asked again, then paging goes on."""
    setup_calls()
    responses.post(SEARCH, body='{"issues": [}', content_type="application/json")
    responses.post(
        SEARCH, json={"issues": [_incident(1)], "nextPageToken": "CAEaAggD1", "isLast": False}
    )
    responses.post(SEARCH, json={"issues": [_incident(2)], "isLast": True})
    conn = JiraConnector(source(), sleep=Sleeps())
    keys = [r.key for b in conn.read("incident") for r in b.records]
    assert keys == ["OPS-1", "OPS-2"]
    assert _tokens_asked() == [None, None, "CAEaAggD1"]


@responses.activate
def test_an_error_of_a_wanted_page_fails_the_read() -> None:
    setup_calls()
    responses.post(
        SEARCH, json={"issues": [_incident(1)], "nextPageToken": "CAEaAggD1", "isLast": False}
    )
    responses.post(SEARCH, status=400, json={"errorMessages": ["The token expired."]})
    conn = JiraConnector(source(), sleep=Sleeps())
    with pytest.raises(SourceError, match="refused"):
        [r.key for b in conn.read("incident") for r in b.records]
