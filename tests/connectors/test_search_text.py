"""``skim_search_page`` reads what the first pass needs off a search page's text: it
answers exactly what parsing the page answers, or None (the page is parsed instead).

Pages: the recorded payloads under tests/fixtures (Jira Cloud search/jql, Data Center
search, a bare issue list; provenance in each ``.expected.json``) and pages served by
the sandbox, each written as Jira does, as ``json.dumps`` does, indented and with
sorted keys; issue type objects generated with nested objects, braces and quotes in
their strings and keys in any order.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketlint.connectors.files import _Changelogs, _search_issues
from ticketlint.connectors.search_text import _type_name, skim_search_page
from ticketlint.mapping import jira as jira_mapping
from ticketlint.mapping.common import MappingOptions, MappingReport
from ticketlint.sandbox.server import SandboxServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RECORDED = [
    *sorted((FIXTURES / "real").glob("jira-*/search.json")),
    FIXTURES / "real" / "jira-bare-issue-list" / "issues.json",
    FIXTURES / "jira" / "datacenter_search.json",
]
WRITERS: dict[str, Callable[[Any], str]] = {
    "compact": lambda data: json.dumps(data, separators=(",", ":"), ensure_ascii=False),
    "dumps": json.dumps,
    "indented": lambda data: json.dumps(data, indent=2),
    "sorted": lambda data: json.dumps(data, indent=1, sort_keys=True),
}
MAPPER = jira_mapping.JiraMapper(
    MappingOptions("jira"), jira_mapping.JiraFieldCatalog.from_names({}, None)
)


@pytest.fixture(scope="module")
def sandbox_pages() -> list[Any]:
    """Search pages as the sandbox serves them (Jira's key order, 100 issues a page)."""
    with SandboxServer(seed=11, size=400, hidden_share=0.0) as server:
        session = requests.Session()
        session.auth = (server.credentials.jira_email, server.credentials.jira_token)
        pages, token = [], None
        while True:
            body: dict[str, Any] = {
                "jql": 'updated >= "2000/01/01 00:00" ORDER BY updated ASC, key ASC',
                "fields": ["*all"],
                "maxResults": 100,
            }
            if token:
                body["nextPageToken"] = token
            response = session.post(f"{server.url}/rest/api/3/search/jql", json=body, timeout=30)
            response.raise_for_status()
            pages.append(response.json())
            token = pages[-1].get("nextPageToken")
            if not token:
                return pages


def _parsed_issues(data: Any) -> list[dict[str, Any]]:
    issues, _, _ = _search_issues(
        Path("page.json"), data, MappingOptions("jira"), MappingReport(), MappingReport()
    )
    return issues


def _assert_reads_as_parsed(text: str, *, must_skim: bool) -> None:
    data = json.loads(text)
    issues = _parsed_issues(data)
    for is_review in (lambda name: MAPPER.process_of_type(name) == "review", lambda name: True):
        skim = skim_search_page(text, is_review)
        if skim is None:
            assert not must_skim
            continue
        assert skim.idents == _Changelogs.idents(issues)
        assert MAPPER.review_index(skim.candidates) == MAPPER.review_index(issues)
        assert all(candidate in issues for candidate in skim.candidates)
        if is_review("anything"):  # every typed issue names a "review" type
            named = [i for i in issues if isinstance(_itype(i).get("name"), str)]
            assert [c for c in skim.candidates if c in named] == named


def _itype(issue: Any) -> dict[str, Any]:
    itype = (issue.get("fields") or {}).get("issuetype")
    return itype if isinstance(itype, dict) else {}


@pytest.mark.parametrize("writer", sorted(WRITERS))
@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.parent.name)
def test_recorded_pages_read_as_parsed(path: Path, writer: str) -> None:
    text = path.read_text(encoding="utf-8")
    _assert_reads_as_parsed(text, must_skim=False)
    _assert_reads_as_parsed(WRITERS[writer](json.loads(text)), must_skim=False)


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_sandbox_pages_read_as_parsed(sandbox_pages: list[Any], writer: str) -> None:
    reviews = 0
    for page in sandbox_pages:
        text = WRITERS[writer](page)
        # Jira's own key order (expand, id, self, key) is what the text reading expects.
        _assert_reads_as_parsed(text, must_skim=writer != "sorted")
        skim = skim_search_page(text, lambda name: MAPPER.process_of_type(name) == "review")
        reviews += len(MAPPER.review_index(skim.candidates)["own"]) if skim else 0
    assert reviews > 5 or writer == "sorted"


def test_an_object_with_expand_that_is_no_issue_head_is_parsed() -> None:
    page = {
        "issues": [
            {
                "expand": "",
                "id": "1",
                "self": "https://x/1",
                "key": "A-1",
                "fields": {"customfield_1": {"expand": "x", "value": 1}, "issuetype": {}},
            }
        ]
    }
    assert skim_search_page(json.dumps(page), lambda name: True) is None


def test_a_review_type_inside_a_string_is_no_review() -> None:
    hidden = json.dumps({"issuetype": {"name": "Post-incident review"}})
    page = {
        "issues": [
            {
                "expand": "",
                "id": "1",
                "self": "https://x/1",
                "key": "A-1",
                "fields": {"summary": hidden, "issuetype": {"name": "Incident"}},
            }
        ]
    }
    skim = skim_search_page(json.dumps(page), lambda n: MAPPER.process_of_type(n) == "review")
    assert skim is not None and skim.candidates == [] and skim.idents == {"1", "A-1"}


_TEXT = st.text(alphabet=st.sampled_from('ab{}[]":,\\ \n/né\u2028'), max_size=12)
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), _TEXT)
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["name", *"abc"]), inner)
    ),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None)
@given(
    entries=st.lists(st.tuples(st.sampled_from(["name", "id", "scope", "n", "a"]), _VALUE)),
    writer=st.sampled_from(sorted(WRITERS)),
)
def test_the_type_name_is_the_objects_own_name_key(
    entries: list[tuple[str, Any]], writer: str
) -> None:
    itype = dict(entries)
    text = WRITERS[writer]({"issuetype": itype, "after": {"name": "not it"}})
    brace = text.index("{", text.index('"issuetype"'))
    name = itype.get("name")
    assert _type_name(text, brace) == (name if isinstance(name, str) else None)
