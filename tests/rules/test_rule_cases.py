"""Runs every case of tests/rules/cases/*.yaml through the engine (sqlfluff-style)."""

from __future__ import annotations

import json

import pytest
from rule_cases_support import STATUSES, Case, iter_cases, run_case

from ticketlint.rules.outcome import Status
from ticketlint.rules.registry import load_registry

REGISTRY = load_registry()
CASES = iter_cases()


@pytest.mark.parametrize("case", [pytest.param(c, id=f"{c.code}:{c.name}") for c in CASES])
def test_rule_case(case: Case) -> None:
    rule = REGISTRY.get(case.code)
    evaluation, outcome, subject = run_case(rule, case)
    assert not evaluation.rule_errors, evaluation.rule_errors

    if case.expect == "NO_OUTCOME":
        assert rule.kind == "aggregate", "NO_OUTCOME only makes sense for aggregate rules"
        assert outcome is None, f"expected no outcome for {case.subject}, got {outcome}"
        assert all(f.key != case.subject for f in evaluation.findings)
        return

    assert case.expect in STATUSES, f"unknown expectation {case.expect!r}"
    assert outcome is not None, f"no outcome for subject {case.subject}"
    assert outcome.status.value == case.expect, (
        f"{case.code} {case.name}: got {outcome.status.value} "
        f"({outcome.message or outcome.reason}), expected {case.expect}"
    )
    # The engine saw the same verdict for the subject.
    assert evaluation.counts[case.code][case.expect] >= 1

    subject_key = subject.key if subject is not None else case.subject
    matching = [f for f in evaluation.findings if f.key == subject_key and f.code == case.code]
    if case.expect == "FAIL":
        assert len(matching) == 1, [f.key for f in evaluation.findings]
        finding = matching[0]
        assert finding.message and "\n" not in finding.message
        assert subject_key in finding.message
        json.dumps(finding.to_dict())  # evidence must be JSON after the engine's conversion
        if rule.kind == "aggregate":
            assert finding.process == "ci" and finding.source == case.subject_source
        if case.message_contains:
            assert case.message_contains in finding.message, finding.message
    else:
        assert not matching, f"unexpected finding: {matching[0].message}"
        if case.expect == "NOT_EVALUATED":
            assert outcome.reason, "NOT_EVALUATED must say why"
            assert evaluation.not_evaluated[case.code][outcome.reason] >= 1
        if case.message_contains:
            # On PASS / NOT_APPLICABLE there is no text to check: a case saying so is a mistake.
            assert outcome.status is Status.NOT_EVALUATED, "message_contains checks nothing here"
            assert case.message_contains in outcome.reason, outcome.reason
