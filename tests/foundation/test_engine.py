"""Registry selection, parameter validation and the engine's counting and findings."""

from datetime import datetime, timezone

import pytest

from ticketlint.mapping.model import Person, record_from_dict
from ticketlint.rules.engine import Engine, fingerprint
from ticketlint.rules.outcome import NOT_APPLICABLE, PASS, fail, missing_field
from ticketlint.rules.registry import Pack, Registry, RuleDefinitionError, RuleSelectionError, rule

AS_OF = datetime(2026, 11, 20, tzinfo=timezone.utc)


@rule(
    code="TST001",
    name="title-missing",
    title="Title",
    severity="low",
    clause="1",
    applies_to=("incident",),
    params={"days": 5, "targets": {1: 4, 2: 8}},
)
def title_missing(record, ctx):
    """**Why**\nx\n**Fails when**\ny\n**Passes when**\nz\n**Remediation**\nAdd a   title."""
    if record.state == "cancelled":
        return NOT_APPLICABLE
    if record.title is None:
        return missing_field("incident.title")
    return PASS if record.title.strip() else fail(f"{record.key} has no title", title=record.title)


@rule(
    code="TST002",
    name="explode",
    title="Boom",
    severity="high",
    clause="1",
    applies_to=("incident",),
)
def explode(record, ctx):
    """**Why**\n-\n**Fails when**\n-\n**Passes when**\n-\n**Remediation**\n-"""
    raise RuntimeError("bug")


PACK = Pack(name="test", rules=(title_missing.with_pack("test"), explode.with_pack("test")))


def incident(key, **fields):
    return record_from_dict(
        {
            "source": "s",
            "system": "file",
            "key": key,
            "process": "incident",
            "assignee": {"id": "u1", "name": "Ada"},
            "group": "Ops",
            **fields,
        }
    )


def test_counts_findings_and_rule_errors():
    records = [
        incident("A", title="ok"),
        incident("B", title=" "),
        incident("C"),
        incident("D", title="", state="cancelled"),
    ]
    result = Engine(PACK.rules).evaluate(records, as_of=AS_OF)
    assert dict(result.counts["TST001"]) == {
        "PASS": 1,
        "FAIL": 1,
        "NOT_EVALUATED": 1,
        "NOT_APPLICABLE": 1,
    }
    assert result.not_evaluated["TST001"] == {"source does not provide incident.title": 1}
    (finding,) = [f for f in result.findings if f.code == "TST001"]
    assert (finding.key, finding.assignee, finding.group, finding.remediation) == (
        "B",
        "Ada",
        "Ops",
        "Add a title.",
    )
    assert finding.fingerprint == fingerprint("TST001", "s", "B")
    assert len(result.rule_errors) == 4 and result.counts["TST002"]["NOT_EVALUATED"] == 4
    assert result.conformity("TST001") == 0.5


def test_params_are_validated_and_merged():
    engine = Engine(
        PACK.rules,
        params={"TST001": {"days": 9, "targets": {"2": 10}}},
        severity={"TST001": "critical"},
    )
    assert engine.params["TST001"] == {"days": 9, "targets": {1: 4, 2: 10}}
    assert engine.severity["TST001"] == "critical"
    with pytest.raises(RuleSelectionError, match="no parameter 'dayz'"):
        Engine(PACK.rules, params={"TST001": {"dayz": 1}})
    with pytest.raises(RuleSelectionError, match="expected int"):
        Engine(PACK.rules, params={"TST001": {"days": "soon"}})
    with pytest.raises(RuleSelectionError, match="not one of"):
        Engine(PACK.rules, severity={"TST001": "urgent"})


def test_registry_selection_and_duplicates():
    registry = Registry([PACK])
    assert [r.code for r in registry.select(["ALL"], ["explode"])] == ["TST001"]
    assert [r.code for r in registry.select(["incident"])] == ["TST001", "TST002"]
    assert [r.code for r in registry.select(["TST00*"], ["TST002"])] == ["TST001"]
    assert [r.code for r in registry.select(["test"])] == ["TST001", "TST002"]
    with pytest.raises(RuleSelectionError, match="matches no rule"):
        registry.select(["NOPE999"])
    with pytest.raises(RuleDefinitionError, match="defined twice"):
        Registry([PACK, Pack(name="other", rules=PACK.rules)])


def test_naive_as_of_is_refused():
    with pytest.raises(ValueError):
        Engine(PACK.rules).evaluate([], as_of=datetime(2026, 1, 1))


def test_person_label():
    assert Person(id="x", email="e@x").label() == "e@x"


@pytest.mark.parametrize(
    "evidence",
    [
        {},
        {"close_notes": "", "closed_at": "2026-10-09T11:41:04Z", "count": 3, "ratio": 0.5},
        {"approvers": [{"id": "u1", "name": "Ada"}, None], "window": ("a", ["b", {"c": 1}])},
        {"when": datetime(2026, 1, 2, tzinfo=timezone.utc), "flags": [True, False, None]},
        {"odd": {1, 2}, "nested": {"deeper": {"deepest": [[1], [2, [3]]]}}},
    ],
    ids=["empty", "flat", "nested", "datetime", "set-and-depth"],
)
def test_finding_to_dict_is_asdict_and_owns_its_evidence(evidence):
    from dataclasses import asdict

    ev = Engine(PACK.rules[:1]).evaluate([incident("INC-1", title="  ")], as_of=AS_OF)
    finding = ev.findings[0]
    finding.evidence = evidence
    got = finding.to_dict()
    assert got == asdict(finding)
    assert [type(v) for v in got.values()] == [type(v) for v in asdict(finding).values()]

    def containers(value, path=()):  # every dict, list, tuple and set inside, by path
        if isinstance(value, (dict, list, tuple, set)):
            yield path, value
            items = value.items() if isinstance(value, dict) else enumerate(value)
            if not isinstance(value, set):
                for k, v in items:
                    yield from containers(v, (*path, k))

    theirs = dict(containers(finding.evidence))
    for path, mine in containers(got["evidence"]):
        if not isinstance(mine, tuple) or any(isinstance(v, (dict, list, set)) for v in mine):
            assert mine is not theirs[path], path  # changing the copy leaves the finding be


def test_a_deferring_stream_logs_its_rule_errors_when_asked_and_lets_the_records_go(
    monkeypatch, caplog
):
    import logging

    import ticketlint.rules.engine as engine_mod
    from ticketlint.rules.engine import RecordIndex

    monkeypatch.setattr(engine_mod, "DEFERRED_TRACEBACKS", 3)
    stream = Engine(PACK.rules[1:]).stream(as_of=AS_OF, index=RecordIndex())
    stream.defer_logs = True
    caplog.set_level(logging.ERROR, logger="ticketlint")
    stream.feed([incident(f"INC-{i}") for i in range(5)])
    stream.finish()
    assert caplog.records == []  # nothing until the owner uses the answer
    assert len(stream.result.rule_errors) == 5
    stream.log_rule_errors()
    logged = [(r.getMessage(), r.exc_info) for r in caplog.records]
    assert [m for m, _ in logged] == [
        *(f"rule TST002 failed on s INC-{i}" for i in range(3)),
        *(f"rule TST002 failed on s INC-{i}: RuntimeError: bug" for i in (3, 4)),
    ]
    assert all(info is None for _, info in logged[3:])
    for _, info in logged[:3]:
        tb = info[2]
        while tb.tb_next is not None:
            tb = tb.tb_next
        assert tb.tb_frame.f_code.co_name == "explode"
        assert "record" not in tb.tb_frame.f_locals  # the traceback holds no record
    stream.log_rule_errors()
    assert len(caplog.records) == 5  # logged once


def test_index_facts_cross_to_the_main_process_unchanged() -> None:
    """``check --input``'s workers send the change and incident facts they index back in
    pickles (each fields tuple, not the dataclass state): same values, and a fact listed
    under two CIs is still one object."""
    import pickle

    from ticketlint.rules.engine import ChangeFacts, IncidentFacts

    change = ChangeFacts("CHG-1", None, True, "closed")
    incident = IncidentFacts("INC-1", AS_OF, links_problem=False)
    by_ci = {"db-1": [incident], "web-1": [incident]}
    back_change, back_by_ci = pickle.loads(pickle.dumps((change, by_ci)))
    assert back_change == change and back_by_ci == by_ci
    assert back_by_ci["db-1"][0] is back_by_ci["web-1"][0]
