"""Declarative YAML rules: conditions, three-valued logic, loading errors, engine use."""

from datetime import datetime, timezone
from pathlib import Path

import pytest

from ticketlint.mapping.model import record_from_dict
from ticketlint.rules.declarative import (
    Condition,
    DeclarativeRuleError,
    evaluate_condition,
    load_declarative_pack,
)
from ticketlint.rules.engine import Engine
from ticketlint.rules.outcome import Status

AS_OF = datetime(2026, 11, 20, tzinfo=timezone.utc)

PAY_RULES = """
rules:
  - code: PAY001
    name: pay-normal-change-test-plan
    title: Normal changes in project PAY need a test plan
    severity: high
    clause: "8.5.1.3"
    process: change
    when:
      all:
        - {field: key, matches: "PAY-*"}
        - {field: change_type, equals: normal}
        - {field: state, in: [scheduled, implement, review, closed]}
    require: {field: test_plan, not_empty: true}
    message: "normal change {key} in PAY has no test plan"
    remediation: Write the test plan in the change.
"""


def change(**fields):
    base = {
        "source": "s",
        "system": "file",
        "key": "PAY-1",
        "process": "change",
        "state": "closed",
        "change_type": "normal",
        "test_plan": "run smoke tests",
    }
    return record_from_dict({**base, **fields})


@pytest.fixture()
def pack(tmp_path: Path):
    path = tmp_path / "pay.yaml"
    path.write_text(PAY_RULES)
    return load_declarative_pack([tmp_path])


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({}, Status.PASS),
        ({"test_plan": " \t"}, Status.FAIL),
        ({"test_plan": None}, Status.NOT_EVALUATED),
        ({"key": "OPS-1", "test_plan": ""}, Status.NOT_APPLICABLE),
        ({"change_type": "standard", "test_plan": ""}, Status.NOT_APPLICABLE),
        ({"change_type": None}, Status.NOT_EVALUATED),
        ({"state": "cancelled", "test_plan": ""}, Status.NOT_APPLICABLE),
        ({"state": "assess", "test_plan": ""}, Status.NOT_APPLICABLE),
    ],
)
def test_pay_rule_outcomes(pack, fields, expected):
    result = Engine(pack.rules).evaluate([change(**fields)], as_of=AS_OF)
    assert result.counts["PAY001"][expected.value] == 1
    if expected is Status.FAIL:
        finding = result.findings[0]
        assert finding.message == "normal change PAY-1 in PAY has no test plan"
        assert finding.severity == "high" and finding.pack == "custom"


def test_docstring_sections_for_explain(pack):
    sections = pack.rules[0].sections
    assert set(sections) >= {"Why", "Fails when", "Passes when", "Remediation"}
    assert "PAY-*" in sections["Fails when"]


@pytest.mark.parametrize(
    "cond, fields, expected",
    [
        (
            {"field": "updated_at", "older_than_days": 14},
            {"updated_at": "2026-11-01T00:00:00Z"},
            True,
        ),
        (
            {"field": "updated_at", "older_than_days": 30},
            {"updated_at": "2026-11-01T00:00:00Z"},
            False,
        ),
        (
            {"field": "updated_at", "before": "2026-11-02"},
            {"updated_at": "2026-11-01T00:00:00Z"},
            True,
        ),
        (
            {"field": "updated_at", "after": "2026-11-02"},
            {"updated_at": "2026-11-01T00:00:00Z"},
            False,
        ),
        ({"field": "cab_date", "before": "2026-11-02"}, {"cab_date": ""}, False),
        ({"field": "cab_date", "before": "2026-11-02"}, {}, None),
        (
            {"any": [{"field": "risk", "empty": True}, {"field": "impact", "empty": True}]},
            {"risk": "high", "impact": None},
            None,
        ),
        (
            {"any": [{"field": "risk", "empty": True}, {"field": "impact", "empty": True}]},
            {"risk": "", "impact": None},
            True,
        ),
        (
            {"all": [{"field": "risk", "empty": True}, {"field": "impact", "empty": True}]},
            {"risk": "high", "impact": None},
            False,
        ),
        ({"not": {"field": "risk", "empty": True}}, {"risk": "high"}, True),
        ({"not": {"field": "risk", "empty": True}}, {}, None),
        (
            {"field": "assignee.name", "equals": "ada lovelace"},
            {"assignee": {"name": "Ada Lovelace"}},
            True,
        ),
        (
            {"field": "raw.fields.customfield_1", "in": ["a", "b"]},
            {"raw": {"fields": {"customfield_1": "B"}}},
            True,
        ),
    ],
)
def test_three_valued_conditions(cond, fields, expected):
    assert evaluate_condition(Condition.model_validate(cond), change(**fields), AS_OF) is expected


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("rules:\n - {code: X001}\n", "rules[0] (X001)"),
        (
            "rules:\n - {code: PAY001, name: a, title: t, process: nope, require: {field: a, empty: true}}\n",
            "process 'nope'",
        ),
        (
            "rules:\n - {code: PAY001, name: a, title: t, process: change, require: {field: a}}\n",
            "exactly one of",
        ),
        (
            "rules:\n - {code: bad, name: a, title: t, process: change, require: {field: a, empty: true}}\n",
            "bad rule code",
        ),
        ("just text\n", "expected a mapping"),
    ],
)
def test_invalid_files_name_file_and_rule(tmp_path, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(DeclarativeRuleError) as err:
        load_declarative_pack([path])
    assert str(path) in str(err.value) and fragment in str(err.value)


def test_missing_path_and_empty_dir(tmp_path):
    with pytest.raises(DeclarativeRuleError, match="not found"):
        load_declarative_pack([tmp_path / "nope.yaml"])
    assert load_declarative_pack([tmp_path]) is None
