"""Every output format of ``check``, compared byte for byte with tests/snapshots/check.<fmt>.

Input: tests/fixtures/records.jsonl (normalised records, two invalid lines) evaluated by the
test pack at a fixed --as-of. ``UPDATE_SNAPSHOTS=1`` rewrites the snapshots.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cli_support import AS_OF, assert_snapshot
from click.testing import CliRunner

from ticketlint.cli import cli
from ticketlint.report.formats import FINDING_KEYS, FORMATS


def run_check(runner: CliRunner, records_jsonl: Path, *args: str) -> tuple[int, str, str]:
    # A relative path keeps the file name in mapping errors the same on every machine.
    shutil.copy(records_jsonl, "records.jsonl")
    result = runner.invoke(cli, ["check", "--input", "records.jsonl", "--as-of", AS_OF, *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("fmt", FORMATS)
def test_check_output_matches_snapshot(
    fmt: str, runner: CliRunner, records_jsonl: Path, test_registry: object
) -> None:
    code, out, _ = run_check(runner, records_jsonl, "-f", fmt)
    assert code == 1
    assert_snapshot(f"check.{fmt}", out)


def test_json_has_the_stable_keys(
    runner: CliRunner, records_jsonl: Path, test_registry: object
) -> None:
    _, out, _ = run_check(runner, records_jsonl, "-f", "json")
    data = json.loads(out)
    assert list(data) == ["findings", "summary", "not_evaluated", "not_checked"]
    stable = {
        "code",
        "name",
        "severity",
        "clause",
        "source",
        "key",
        "process",
        "url",
        "message",
        "assignee",
        "group",
        "fingerprint",
    }
    assert all(stable <= set(f) for f in data["findings"])
    assert [f["severity"] for f in data["findings"]] == ["high", "medium", "low", "low"]
    summary = data["summary"]
    assert summary["records"] == 8
    assert summary["as_of"] == "2026-03-31T00:00:00Z"
    assert summary["rules"]["TST003"] == {
        "PASS": 0,
        "FAIL": 2,
        "NOT_APPLICABLE": 1,
        "NOT_EVALUATED": 0,
        "conformity": 0.0,
    }
    assert [(e["key"], e["reason"].split(":")[1]) for e in summary["mapping_errors"]] == [
        (None, "10"),
        ("X-1", "9"),
    ]
    # CHG-9's created_at is not a time: that field is unknown, the record is checked
    assert summary["unreadable"] == [
        {"field": "change.created_at", "reason": "not a date or time", "count": 1}
    ]
    assert data["not_evaluated"]["TST004"] == {"source does not provide owner, support_group": 1}


def test_jsonl_lines_have_the_same_keys_as_json(
    runner: CliRunner, records_jsonl: Path, test_registry: object
) -> None:
    _, out, _ = run_check(runner, records_jsonl, "-f", "jsonl")
    _, full, _ = run_check(runner, records_jsonl, "-f", "json")
    lines = [json.loads(line) for line in out.splitlines()]
    *findings, last = lines
    assert findings == json.loads(full)["findings"]
    assert all(list(line) == list(FINDING_KEYS) for line in findings)
    # the one last line lists the records not checked, as json's not_checked array
    assert last == {"not_checked": json.loads(full)["not_checked"]}
    assert [e["key"] for e in last["not_checked"]] == [None, "X-1"]


def test_csv_round_trips(runner: CliRunner, records_jsonl: Path, test_registry: object) -> None:
    _, out, err = run_check(runner, records_jsonl, "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["key"] for r in rows] == ["CHG-1", "INC-7", "INC-7", "INC0010001"]
    assert rows[1]["record_title"] == 'VPN down for "remote" staff'
    assert json.loads(rows[0]["evidence"]) == {"backout_plan": ""}
    # csv holds findings only: the mapping errors are told on stderr
    assert "records.jsonl:9" in err


def test_junit_is_valid_xml_with_a_suite_per_rule(
    runner: CliRunner, records_jsonl: Path, test_registry: object
) -> None:
    _, out, _ = run_check(runner, records_jsonl, "-f", "junit")
    root = ET.fromstring(out.encode("utf-8"))
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {
        "TST001 test-backout-missing",
        "TST002 test-priority-missing",
        "TST003 test-incident-stale",
        "TST004 test-ci-owner-missing",
        "mapping",
    }
    assert suites["TST003 test-incident-stale"].get("failures") == "2"
    assert len(suites["mapping"].findall("testcase/error")) == 2
    assert root.get("failures") == "4"


def test_text_names_who_fixes_and_the_link(
    runner: CliRunner, records_jsonl: Path, test_registry: object
) -> None:
    _, out, _ = run_check(runner, records_jsonl)
    block = out.split("\n\n")[0]
    assert "jira-demo/CHG-1" in block and "Jane Doe (Network)" in block
    assert "https://jira.example.com/browse/CHG-1" in block
    assert "\x1b[" not in out  # not a terminal: no colour
    assert "Not checked (2 records):" in out
    assert "jira-demo/X-1 (error): records.jsonl:9" in out
    assert "TST001      1  status 'Awaiting CAB' is not mapped" in out


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_check_exposure_matches_snapshot(
    fmt: str, runner: CliRunner, records_jsonl: Path, test_registry: object
) -> None:
    """``check --exposure``: the exposure table of the records checked, exit code as check."""
    code, out, _ = run_check(runner, records_jsonl, "--exposure", "-f", fmt)
    assert code == 1
    assert_snapshot(f"check-exposure.{ {'markdown': 'md'}.get(fmt, fmt) }", out)


def test_check_exposure_json_counts(
    runner: CliRunner, records_jsonl: Path, test_registry: object
) -> None:
    _, out, _ = run_check(runner, records_jsonl, "--exposure", "-f", "json")
    data = json.loads(out)
    checked = json.loads(run_check(runner, records_jsonl, "-f", "json")[1])
    failing = {(f["source"], f["key"]) for f in checked["findings"]}
    for row in data["processes"].values():
        assert row["population"] >= row["nonconforming"] + row["unknown"] + row["waived"]
    # every record with a finding is nonconforming (no waiver in this run, none cancelled)
    assert sum(r["nonconforming"] for r in data["processes"].values()) == len(failing)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "junit"])
def test_check_exposure_refuses_other_formats(
    fmt: str, runner: CliRunner, records_jsonl: Path, test_registry: object
) -> None:
    code, _, err = run_check(runner, records_jsonl, "--exposure", "-f", fmt)
    assert code == 2 and "--exposure prints text, json or markdown" in err
