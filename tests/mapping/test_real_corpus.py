"""The corpus of real payload shapes (tests/fixtures/real): each case is a folder holding
exports as a user would pass them to ``ticketlint check --input`` and a
``<case>.expected.json`` with its PROVENANCE line (project, path, licence) and the
normalised fields expected, checked field by field; or the refusal expected.

The payloads are written in the shapes those projects and vendor documents publish (field
names, value formats, reference and date shapes); their values are ours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ticketlint.connectors.files import InputError, load_inputs
from ticketlint.mapping.common import MappingOptions
from ticketlint.mapping.model import BaseRecord, record_from_dict

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "real"
CASES = sorted(p.name.removesuffix(".expected.json") for p in REAL.glob("*.expected.json"))
SNOW_BASE = "https://dev12345.service-now.com"


def test_the_corpus_has_at_least_fifteen_cases_with_provenance() -> None:
    assert len(CASES) >= 15
    for case in CASES:
        expected = json.loads((REAL / f"{case}.expected.json").read_text())
        provenance = expected["provenance"]
        assert len(provenance) > 40 and "licence" in provenance.lower(), case
        assert (REAL / case).is_dir() and any((REAL / case).iterdir()), case
    systems = {c.split("-")[0] for c in CASES}
    assert systems == {"snow", "jira", "jsm"}


def _value(record: BaseRecord, path: str) -> Any:
    dumped = record.model_dump(mode="json", exclude={"raw"})
    head, _, tail = path.partition(".")
    if path == "approvals.decisions":
        return [a["decision"] for a in dumped["approvals"] or []]
    if path == "approvals.decided_at":
        return [a["decided_at"] for a in dumped["approvals"] or []]
    if path == "transitions.count":
        return len(dumped["transitions"] or [])
    if path == "unreadable.keys":
        return sorted(dumped["unreadable"] or {})
    value = dumped[head]
    if tail:
        return None if value is None else value[tail]
    if isinstance(value, dict) and head == "review":
        return value
    return value


@pytest.mark.parametrize("case", CASES)
def test_real_payload_maps_to_the_expected_record(case: str) -> None:
    expected = json.loads((REAL / f"{case}.expected.json").read_text())
    options = MappingOptions(source="real", base_url=SNOW_BASE if case.startswith("snow") else "")
    if "refused" in expected:
        with pytest.raises(InputError) as caught:
            load_inputs([REAL / case], options)
        message = str(caught.value)
        assert expected["refused"] in message and len(message.splitlines()) == 1
        return
    loaded = load_inputs([REAL / case], options)
    report = loaded.report
    assert not report.errors, report.errors
    by_key = {r.key: r for r in loaded.records}
    assert set(expected["records"]) <= set(by_key), sorted(by_key)
    for key, fields in expected["records"].items():
        record = by_key[key]
        assert record_from_dict(record.model_dump()) == record  # a valid record
        for path, want in fields.items():
            got = _value(record, path)
            assert got == want, f"{case} {key} {path}: got {got!r}, expected {want!r}"
    assert sorted(e.key for e in report.skipped) == sorted(expected.get("skipped", []))
