"""Meta-tests of the iso20000 pack: the catalogue matches the catalogue (docs/rules.md) exactly, every rule
is documented and mapped to a clause, and every rule has cases for all four outcomes."""

from __future__ import annotations

import inspect
from collections import defaultdict
from pathlib import Path

import pytest
import yaml
from rule_cases_support import STATUSES, case_codes, iter_cases

from ticketlint.rules.packs.iso20000 import PACK
from ticketlint.rules.registry import DOC_SECTIONS

# Transcribed from docs/rules.md: code -> (name, severity, clause, params with defaults).
CATALOGUE: dict[str, tuple[str, str, str, dict]] = {
    "CHG001": ("change-approval-missing", "high", "8.5.1.3", {}),
    "CHG002": ("change-started-before-approval", "high", "8.5.1.3", {}),
    "CHG003": ("change-self-approved", "high", "8.5.1.3", {}),
    "CHG004": ("change-risk-assessment-missing", "medium", "8.5.1.3", {}),
    "CHG005": ("change-backout-plan-missing", "high", "8.5.1.3", {}),
    "CHG006": ("change-test-plan-missing", "medium", "8.5.1.3", {}),
    "CHG007": ("change-closure-record-missing", "high", "8.5.1.3", {}),
    "CHG008": ("change-review-missing", "high", "8.5.1.3", {"grace_days": 5}),
    "CHG009": ("change-ci-missing", "medium", "8.2.6", {}),
    "CHG010": ("change-outside-planned-window", "medium", "8.5.1.3", {"tolerance_minutes": 30}),
    "CHG011": ("change-unclassified", "medium", "8.5.1.2", {}),
    "CHG012": ("change-cab-review-missing", "medium", "8.5.1.1", {}),
    "INC001": ("incident-closure-record-missing", "high", "8.6.1", {}),
    "INC002": ("incident-priority-missing", "medium", "8.6.1", {}),
    "INC003": ("incident-unassigned", "low", "8.6.1", {}),
    "INC004": ("major-incident-review-missing", "high", "8.6.1", {"grace_days": 5}),
    "INC005": (
        "incident-resolution-target-missed",
        "medium",
        "8.3.3",
        {"target_hours": {1: 4, 2: 8, 3: 24, 4: 72, 5: 120}},
    ),
    "INC006": ("incident-stale", "low", "8.6.1", {"stale_days": 14}),
    "REQ001": ("request-approval-missing", "high", "8.6.2", {}),
    "REQ002": ("request-closure-record-missing", "low", "8.6.2", {}),
    "PRB001": ("problem-root-cause-missing", "high", "8.6.3", {}),
    "PRB002": ("known-error-workaround-missing", "medium", "8.6.3", {}),
    "PRB003": ("problem-stale", "low", "8.6.3", {"stale_days": 60}),
    "PRB004": (
        "recurring-incidents-without-problem",
        "medium",
        "8.6.3",
        {"threshold": 3, "window_days": 30},
    ),
    "PRB005": ("major-incident-problem-missing", "medium", "8.6.3", {}),
    "CFG001": ("ci-owner-missing", "medium", "8.2.6", {}),
    "CFG002": ("ci-verification-overdue", "low", "8.2.6", {"max_age_days": 180}),
    "CFG003": ("ci-reference-unknown", "low", "8.2.6", {}),
    "REL001": ("release-change-missing", "high", "8.5.3", {}),
}

# Which processes each rule reads (docs/rules.md: the process a rule's fields belong to).
APPLIES_TO = {
    **{code: ("change",) for code in CATALOGUE if code.startswith("CHG")},
    **{code: ("incident",) for code in CATALOGUE if code.startswith("INC")},
    "REQ001": ("service_request",),
    "REQ002": ("service_request",),
    "PRB001": ("problem",),
    "PRB002": ("problem",),
    "PRB003": ("problem",),
    "PRB004": ("incident",),
    "PRB005": ("incident",),
    "CFG001": ("ci",),
    "CFG002": ("ci",),
    "CFG003": ("change", "incident", "problem"),
    "REL001": ("release",),
}

# Outcomes a rule genuinely cannot produce, with the reason (see cases/PRB004.yaml).
IMPOSSIBLE = {
    "PRB004": {
        "NOT_APPLICABLE": "aggregate: a CI with no incident in the window yields no outcome at all",
        "NOT_EVALUATED": "aggregate: incidents without created_at / ci_refs never reach the index",
    },
}

RULES = {r.code: r for r in PACK.rules}
CLAUSES_FILE = Path(PACK.rules[0].func.__code__.co_filename).with_name("clauses.yaml")


def test_pack_has_the_29_rules_with_unique_codes_and_names() -> None:
    assert len(PACK.rules) == 29
    assert sorted(RULES) == sorted(CATALOGUE)
    names = [r.name for r in PACK.rules]
    assert len(set(names)) == len(names)
    assert all(r.pack == "iso20000" for r in PACK.rules)


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_rule_matches_the_catalogue(code: str) -> None:
    rule = RULES[code]
    name, severity, clause, params = CATALOGUE[code]
    assert (rule.name, rule.severity, rule.clause) == (name, severity, clause)
    assert dict(rule.params) == params
    assert rule.applies_to == APPLIES_TO[code]
    assert rule.kind == ("aggregate" if code == "PRB004" else "record")
    assert rule.title and "\n" not in rule.title


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_rule_docstring_has_the_sections(code: str) -> None:
    rule = RULES[code]
    sections = rule.sections
    for section in DOC_SECTIONS:
        assert sections.get(section), f"{code} docstring lacks a non-empty **{section}** section"
    assert rule.remediation
    assert "Example" in sections["Fails when"] and "Example" in sections["Passes when"]
    assert rule.doc.split("\n", 1)[0].strip(), f"{code} needs a one-line summary first"


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_rule_is_a_pure_function_of_its_inputs(code: str) -> None:
    """Rules never read a clock or do I/O (the rules are pure): check the source for the usual
    suspects rather than trusting memory."""
    source = inspect.getsource(RULES[code].func)
    for banned in ("datetime.now", "utcnow", "time.time", "open(", "requests.", "model_dump"):
        assert banned not in source, f"{code} uses {banned}"


def test_clause_map_covers_every_rule_and_names_only_existing_rules() -> None:
    data = yaml.safe_load(CLAUSES_FILE.read_text(encoding="utf-8"))
    assert data == PACK.clause_map
    assert data["framework"] == "ISO/IEC 20000-1:2018"
    clauses = data["clauses"]
    listed: dict[str, list[str]] = defaultdict(list)
    for clause, entry in clauses.items():
        assert isinstance(clause, str), f"clause {clause!r} must be a quoted string"
        assert entry["title"].strip()
        assert entry["coverage"] in ("automated", "manual")
        assert (entry["coverage"] == "manual") == (entry["rules"] == []), clause
        for code in entry["rules"]:
            assert code in RULES, f"clauses.yaml lists unknown rule {code} under {clause}"
            listed[code].append(clause)
    for code, rule in RULES.items():
        assert listed[code] == [rule.clause], f"{code} must be listed exactly under {rule.clause}"
    manual = [c for c, e in clauses.items() if e["coverage"] == "manual"]
    assert len(manual) >= 10  # the clause coverage matrix needs the manual clauses too


def test_every_rule_has_a_case_file_covering_all_four_outcomes() -> None:
    assert case_codes() == sorted(CATALOGUE)
    seen: dict[str, set[str]] = defaultdict(set)
    for case in iter_cases():
        seen[case.code].add(case.expect)
    for code in CATALOGUE:
        impossible = set(IMPOSSIBLE.get(code, {}))
        missing = set(STATUSES) - seen[code] - impossible
        assert not missing, f"{code} has no case for {sorted(missing)}"
        assert not (seen[code] & impossible), f"{code} claims impossible outcomes it produces"


def test_case_names_are_unique_per_rule() -> None:
    names: dict[str, set[str]] = defaultdict(set)
    for case in iter_cases():
        assert case.name not in names[case.code], f"{case.code}: duplicate case {case.name!r}"
        names[case.code].add(case.name)
