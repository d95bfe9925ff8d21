"""Data generation: determinism per seed, seeded field ids, violation shares, time formats."""

import re
from collections import Counter

import pytest

from ticketlint.sandbox.data import Dataset

ANCHOR = 1_790_000_000_000  # a fixed instant so the data is identical run to run
RULES = [
    "CHG001",
    "CHG002",
    "CHG003",
    "CHG004",
    "CHG005",
    "CHG006",
    "CHG007",
    "CHG009",
    "CHG010",
    "CHG011",
    "INC001",
    "INC002",
    "INC003",
    "INC005",
    "INC006",
    "PRB001",
    "PRB003",
    "REQ002",
    "CFG001",
    "CFG002",
]


def test_same_seed_same_records():
    a, b = Dataset(7, 400, anchor=ANCHOR), Dataset(7, 400, anchor=ANCHOR)
    assert [a.jira.issue(i) for i in range(0, len(a.jira), 17)] == [
        b.jira.issue(i) for i in range(0, len(b.jira), 17)
    ]
    assert a.servicenow.row("incident", 5) == b.servicenow.row("incident", 5)
    assert a.servicenow.approvals == b.servicenow.approvals


def test_other_seed_other_records_and_field_ids():
    a, b = Dataset(7, 400, anchor=ANCHOR), Dataset(8, 400, anchor=ANCHOR)
    assert a.jira.field_ids != b.jira.field_ids
    assert a.servicenow.row("incident", 5) != b.servicenow.row("incident", 5)


def test_size_is_the_total_across_both_systems():
    ds = Dataset(1, 2000, anchor=ANCHOR)
    sn = sum(ds.servicenow.counts.values())
    assert 1800 <= ds.jira.n_main + sn <= 2100


@pytest.fixture(scope="module")
def big():
    return Dataset(3, 20000, anchor=ANCHOR)


def _applicable(sc, code):
    process = {
        "CHG": "change",
        "INC": "incident",
        "PRB": "problem",
        "REQ": "service_request",
        "CFG": "ci",
    }[code[:3]]
    return sc.process == process


def test_each_rule_is_violated_in_a_small_share(big):
    sn = big.servicenow
    hits, totals = Counter(), Counter()
    for table in ("incident", "change_request", "problem", "sc_req_item", "cmdb_ci"):
        for i in range(sn.counts[table]):
            sc, _ = sn._plan(table, i)
            for code in RULES:
                if _applicable(sc, code):
                    totals[code] += 1
                    hits[code] += code in sc.violations
    for code in RULES:
        share = hits[code] / totals[code]
        assert 0.005 <= share <= 0.12, (code, share)
    # most records are clean
    clean = sum(
        1 for i in range(sn.counts["incident"]) if not sn._plan("incident", i)[0].violations
    )
    assert clean / sn.counts["incident"] > 0.7


def test_timestamps_look_like_each_system(big):
    issue = big.jira.issue(3)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}", issue["fields"]["updated"]
    )
    row = big.servicenow.row("incident", 3)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["sys_updated_on"])


def test_users_span_several_time_zones(big):
    assert len({u.zone for u in big.users}) >= 4


def test_a_few_issues_exceed_the_embedded_changelog(big):
    lengths = [len(big.jira.changelog(i)) for i in range(3000)]
    assert any(n > 40 for n in lengths)
    assert sum(n > 40 for n in lengths) < len(lengths) * 0.1
