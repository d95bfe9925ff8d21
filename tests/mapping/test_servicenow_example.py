"""examples/servicenow: the export maps cleanly and yields what EXPECTED.md says."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ticketlint.mapping.common import MappingOptions, MappingReport
from ticketlint.mapping.model import BaseRecord, approved_entries, is_empty, record_from_dict
from ticketlint.mapping.servicenow import (
    APPROVAL_TABLE,
    TASK_CI_TABLE,
    ServiceNowMapper,
    load_table_export,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "servicenow"
AS_OF = datetime(2026, 11, 20, tzinfo=timezone.utc)


def _rows(table: str) -> list[dict]:
    return load_table_export(json.loads((EXAMPLE / f"{table}.json").read_text()))


def map_example(options: MappingOptions) -> tuple[dict[str, BaseRecord], MappingReport]:
    m = ServiceNowMapper(options)
    report = MappingReport()
    cis, r = m.map_rows("ci", _rows(m.table("ci")))
    report.merge(r)
    names = {c.native_id: c.key for c in cis if c.native_id}
    records: list[BaseRecord] = list(cis)
    for process in ("change", "incident", "problem", "service_request"):
        mapped, r = m.map_rows(
            process,
            _rows(m.table(process)),
            approvals=_rows(APPROVAL_TABLE),
            task_ci=_rows(TASK_CI_TABLE),
            ci_names=names,
        )
        report.merge(r)
        records.extend(mapped)
    return {rec.key: rec for rec in records}, report


@pytest.fixture(scope="module")
def example() -> dict[str, BaseRecord]:
    records, report = map_example(MappingOptions(source="file"))
    assert report.errors == []
    assert report.skipped_empty == 1
    assert report.rows == report.mapped == 46
    assert not report.unknown_statuses and not report.warnings
    return records


def test_example_rows_are_realistic_raw_table_api_values():
    hex32 = re.compile(r"^[0-9a-f]{32}$")
    for path in EXAMPLE.glob("*.json"):
        for row in load_table_export(json.loads(path.read_text())):
            for column, value in row.items():
                assert isinstance(value, str), (path.name, column)  # raw values are strings
            if row:
                assert hex32.match(row["sys_id"]), (path.name, row["sys_id"])


def test_example_records_validate(example):
    for record in example.values():
        record_from_dict(record.model_dump())


def test_example_records_carry_the_planted_violations(example):
    e = example
    assert e["CHG0030003"].state == "implement" and not approved_entries(e["CHG0030003"])
    assert e["CHG0030004"].actual_start < e["CHG0030004"].approvals[0].decided_at
    assert e["CHG0030005"].approvals[0].approver.id == e["CHG0030005"].assignee.id
    assert e["CHG0030006"].state == "scheduled" and e["CHG0030006"].risk == ""
    assert e["CHG0030007"].backout_plan == ""
    assert is_empty(e["CHG0030008"].test_plan)
    assert e["CHG0030009"].close_notes == ""
    assert e["CHG0030010"].change_type == "emergency" and e["CHG0030010"].review.completed is False
    assert e["CHG0030011"].ci_refs == []
    assert e["CHG0030012"].actual_end > e["CHG0030012"].planned_end
    assert e["CHG0030013"].change_type == ""
    assert e["CHG0030014"].cab_required is True and e["CHG0030014"].cab_date == ""
    assert e["CHG0030014"].ci_refs == ["core-switch-01", "sap-prod-db"]
    assert e["CHG0030015"].state == "cancelled"
    assert e["CHG0030016"].outcome == "successful_with_issues" and e["CHG0030016"].review.completed
    assert e["CHG0030016"].ci_refs == ["lnux100"]
    assert e["CHG0030017"].ci_refs == ["0c43f35337201000deeabfc8bcbe5d1e"]
    assert e["CHG0030001"].ci_refs == ["lnux100"] and len(e["CHG0030001"].approvals) == 1
    assert e["INC0010003"].resolution_notes == ""
    assert e["INC0010005"].priority == ""
    assert e["INC0010006"].assignee is None and e["INC0010006"].group == ""
    assert e["INC0010009"].major is True and e["INC0010009"].links == []
    assert e["INC0010004"].links[0].key == "PRB0040002" and e["INC0010004"].review is None
    assert e["INC0010011"].ci_refs == ["exchange-01"]
    assert e["INC0010013"].state == "cancelled"
    assert e["PRB0040005"].state == "cancelled"
    assert e["RITM0010002"].approval_required is True
    assert [a.decision for a in e["RITM0010002"].approvals] == ["pending"]
    assert e["RITM0010003"].approval_required is False
    assert e["exchange-01"].owner is None and e["exchange-01"].support_group == ""
    assert e["mailrelay-02"].owner.name == "Abel Tuter"  # managed_by fallback
    assert e["old-fw-01"].status == "retired"


def _expected(section: str) -> set[tuple[str, str]]:
    text = (EXAMPLE / "EXPECTED.md").read_text()
    body = text.split(section, 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| ([A-Z]{3}\d{3}) \| (\S+) \|", body, re.MULTILINE))


def test_expected_md_lists_every_rule_the_brief_names():
    codes = {code for code, _ in _expected("## Findings") | _expected("## With")}
    wanted = (
        {f"CHG{i:03d}" for i in range(1, 13)}
        | {f"INC{i:03d}" for i in range(1, 7)}
        | {"REQ001", "REQ002", *(f"PRB{i:03d}" for i in range(1, 6)), "CFG001", "CFG002", "CFG003"}
    )
    assert codes == wanted


def _engine_findings(options: MappingOptions) -> set[tuple[str, str]]:
    from ticketlint.rules.engine import Engine
    from ticketlint.rules.packs.iso20000 import PACK

    if len(PACK.rules) < 28:
        pytest.skip("the iso20000 pack is not complete yet")
    records, _ = map_example(options)
    evaluation = Engine(list(PACK.rules)).evaluate(list(records.values()), as_of=AS_OF)
    assert evaluation.rule_errors == []
    return {(f.code, f.key) for f in evaluation.findings}


def test_engine_findings_match_expected_md_default_mapping():
    assert _engine_findings(MappingOptions(source="file")) == _expected("## Findings")


def test_engine_findings_match_expected_md_with_review_mapped():
    options = MappingOptions(source="snow-example", fields={"incident.review": "u_pir_completed"})
    assert _engine_findings(options) == _expected("## Findings") | _expected("## With")
