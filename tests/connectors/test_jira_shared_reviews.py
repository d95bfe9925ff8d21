"""The Jira connector's shared review read, against the sandbox over real HTTP.

When a run is planned (``plan``, as ``sync`` and ``check`` do), the post-incident review
issues are searched once for the incident and change streams instead of once per stream.
The records, reports and watermarks must be those of the unplanned read, with fewer
requests; a read that does not match the plan falls back to the stream's own search.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from ticketlint.config import parse_config
from ticketlint.connectors.base import plan_reads
from ticketlint.connectors.jira import JiraConnector
from ticketlint.connectors.jira.issues import merged_pages
from ticketlint.mapping.jira import DEFAULT_ISSUE_TYPES
from ticketlint.sandbox import serve

DEFAULT_ISSUE_TYPES_BY_NAME = {
    name: process for process, names in DEFAULT_ISSUE_TYPES.items() for name in names
}


@pytest.fixture(scope="module")
def server():
    s = serve(seed=11, size=8000).start()
    yield s
    s.stop()


def connector(server: Any) -> JiraConnector:
    c = server.credentials
    cfg = parse_config(
        "sources:\n  - name: jira\n    type: jira\n"
        f"    url: {server.url}\n    jql: project in (OPS, CHG)\n"
        f"    auth: {{email: {c.jira_email}, token: {c.jira_token}}}\n"
    )
    return JiraConnector(cfg.sources[0])  # type: ignore[arg-type]


def read_all(
    server: Any, since: dict[str, datetime | None], *, planned: bool
) -> tuple[dict[str, Any], int]:
    """Every stream's records (raw JSON aside), rows and watermark; the requests made."""
    conn = connector(server)
    if planned:
        plan_reads(conn, since)
    out: dict[str, Any] = {}
    for stream in conn.streams:
        records: dict[str, Any] = {}
        rows = 0
        mark = None
        for batch in conn.read(stream, since=since.get(stream)):
            rows += batch.report.rows
            mark = batch.watermark or mark
            for record in batch.records:
                records[record.key] = record.model_dump(mode="json", exclude={"raw"})
        out[stream] = {"records": records, "rows": rows, "watermark": mark}
    count = conn.request_count
    conn.close()
    return out, count


def search_pages_saved(server: Any, page: int = 100) -> int:
    """Search pages of the incident and change streams each searching the reviews too,
    less those of one search each plus one shared review search (the sandbox's cap)."""
    jira = server.data.jira
    count = Counter(DEFAULT_ISSUE_TYPES_BY_NAME.get(jira.type_name(i)) for i in range(len(jira)))
    inc, chg, rev = count["incident"], count["change"], count["review"]

    def pages(n: int) -> int:
        return max(1, -(-n // page))

    return pages(inc + rev) + pages(chg + rev) - pages(inc) - pages(chg) - pages(rev)


def test_a_planned_full_read_searches_reviews_once_and_maps_the_same(server: Any) -> None:
    since: dict[str, datetime | None] = dict.fromkeys(
        ("incident", "service_request", "problem", "change")
    )
    alone, alone_requests = read_all(server, since, planned=False)
    shared, shared_requests = read_all(server, since, planned=True)
    assert alone["incident"]["records"] and alone["change"]["records"]
    assert any(r.get("review", {}).get("completed") for r in alone["incident"]["records"].values())
    assert shared == alone
    assert search_pages_saved(server) >= 1
    assert shared_requests == alone_requests - search_pages_saved(server)


def test_one_full_stream_shares_the_reviews_and_each_stream_keeps_its_window(
    server: Any,
) -> None:
    full, _ = read_all(server, dict.fromkeys(("incident", "change")), planned=False)
    marks = {stream: full[stream]["watermark"] for stream in full}
    assert marks["incident"] and marks["change"]
    # Touch some issues (reviews among them) after the watermarks, as people would.
    jira = server.data.jira
    rng = random.Random(4)
    reviews = [i for i in range(len(jira)) if jira.type_name(i) == "Post-incident review"]
    for idx in rng.sample(range(len(jira)), 40) + rng.sample(reviews, 10):
        jira.touch(idx)
    # The incident stream reads in full (a new stream, or --full); the change stream
    # from its watermark: the shared search reads every review and gives the change
    # stream only those of its own window.
    since = {"incident": None, "change": marks["change"]}
    alone, alone_requests = read_all(server, since, planned=False)
    shared, shared_requests = read_all(server, since, planned=True)
    assert 0 < alone["change"]["rows"] < len(full["change"]["records"])
    assert shared == alone
    assert shared_requests <= alone_requests


def test_an_incremental_run_keeps_a_review_search_per_stream(server: Any) -> None:
    full, _ = read_all(server, dict.fromkeys(("incident", "change")), planned=False)
    since = {stream: full[stream]["watermark"] for stream in full}
    server.data.jira.touch(0)
    alone, alone_requests = read_all(server, since, planned=False)
    shared, shared_requests = read_all(server, since, planned=True)
    assert shared == alone
    assert shared_requests == alone_requests


def test_a_read_by_key_searches_its_own_reviews_and_leaves_the_plan_to_the_rest(
    server: Any,
) -> None:
    conn = connector(server)
    conn.plan({"incident": None, "change": None})
    some = sorted(full_keys(server, "incident"))[:3]
    by_key = [r.key for b in conn.read("incident", keys=some) for r in b.records]
    changes = [r.key for b in conn.read("change") for r in b.records]
    conn.close()
    assert sorted(by_key) == some
    alone, _ = read_all(server, {"change": None}, planned=False)
    assert sorted(changes) == sorted(alone["change"]["records"])


def full_keys(server: Any, stream: str) -> set[str]:
    alone, _ = read_all(server, {stream: None}, planned=False)
    return set(alone[stream]["records"])


def test_merged_pages_slot_reviews_in_by_updated_then_key() -> None:
    def issue(key: str, minute: int) -> dict[str, Any]:
        return {"key": key, "fields": {"updated": f"2026-03-02T10:{minute:02d}:00.000+0000"}}

    def keys(pages: list[list[dict[str, Any]]], cap: int | None) -> list[list[str]]:
        return [[i["key"] for i in page] for page in merged_pages(iter(pages), reviews, cap)]

    pages = [[issue("OPS-2", 1), issue("OPS-10", 5)], [issue("OPS-11", 9)]]
    reviews = [issue("OPS-1", 1), issue("OPS-3", 1), issue("OPS-9", 7), issue("OPS-12", 30)]
    # Same minute: key order, by number within the project (OPS-1 < OPS-2 < OPS-3); pages
    # as long as the first one, which another followed (the server's page size).
    assert keys(pages, None) == [
        ["OPS-1", "OPS-2"],
        ["OPS-3", "OPS-10"],
        ["OPS-9", "OPS-11"],
        ["OPS-12"],
    ]
    assert keys(pages, 3) == [
        ["OPS-1", "OPS-2", "OPS-3"],
        ["OPS-10", "OPS-9", "OPS-11"],
        ["OPS-12"],
    ]
    # One page and no known size: one page, as a search with room for all would give.
    assert keys(pages[:1], None) == [["OPS-1", "OPS-2", "OPS-3", "OPS-10", "OPS-9", "OPS-12"]]
    assert keys([[]], None) == [["OPS-1", "OPS-3", "OPS-9", "OPS-12"]]
