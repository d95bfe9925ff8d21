"""The JQL subset: clauses, the user's time zone, ORDER BY, unbounded and unsupported queries."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from ticketlint.sandbox.jql import JqlError, matches, parse

DENVER = ZoneInfo("America/Denver")


def test_connector_query_parses():
    q = parse(
        'project in (OPS, CHG) AND issuetype in ("Incident","Service request") AND '
        'updated >= "2026/03/02 14:10" ORDER BY updated ASC, key ASC',
        DENVER,
    )
    assert q.projects == {"OPS", "CHG"}
    assert q.types == {"incident", "service request"}
    assert q.order == (("updated", True), ("key", True))
    ((op, ms),) = q.updated
    assert op == ">=" and ms == int(datetime(2026, 3, 2, 14, 10, tzinfo=DENVER).timestamp() * 1000)


def test_updated_is_read_in_the_users_zone():
    utc = parse('project = OPS AND updated >= "2026/03/02 14:10"', ZoneInfo("UTC")).updated[0][1]
    denver = parse('project = OPS AND updated >= "2026/03/02 14:10"', DENVER).updated[0][1]
    assert denver - utc == 7 * 3600 * 1000  # Denver is UTC-7 in March


def test_matches():
    q = parse(
        'project in (OPS) AND key in (OPS-1, OPS-2) AND updated >= "2026/03/02 14:10"', DENVER
    )
    t = int(datetime(2026, 3, 2, 14, 10, 30, tzinfo=DENVER).timestamp() * 1000)
    assert matches(q, "OPS-1", "OPS", "Incident", t)
    assert not matches(q, "OPS-3", "OPS", "Incident", t)
    assert not matches(q, "OPS-1", "OPS", "Incident", t - 60_000)
    assert not matches(q, "OPS-1", "CHG", "Incident", t)


def test_unbounded_query_has_no_restriction():
    assert not parse("ORDER BY key DESC", DENVER).bounded
    assert parse("project = OPS", DENVER).bounded


@pytest.mark.parametrize(
    "text",
    [
        "project = OPS OR project = CHG",
        "assignee = currentUser()",
        "project = OPS ORDER BY summary",
        'updated >= "yesterday"',
    ],
)
def test_unsupported_is_an_error(text):
    with pytest.raises(JqlError):
        parse(text, DENVER)


def test_labels_clause_is_case_insensitive_and_asks_labels_lazily():
    q = parse("labels = TicketLint", DENVER)
    assert q.bounded and q.labels == {"ticketlint"}
    asked = []

    def labels():
        asked.append(1)
        return ["ticketlint", "other"]

    assert matches(q, "OPS-1", "OPS", "Incident", 0, labels=labels)
    assert not matches(q, "OPS-1", "OPS", "Incident", 0, labels=lambda: ["other"])
    assert not matches(q, "OPS-1", "OPS", "Incident", 0)
    assert asked == [1]
    assert parse("project = OPS", DENVER).labels is None
    both = parse("labels in (a, B) AND project = OPS", DENVER)
    assert both.labels == {"a", "b"}
