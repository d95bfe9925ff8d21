"""connectors/files.py: exported Jira / ServiceNow files and JSON lines of records, and
``check --input`` on them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_support import AS_OF
from click.testing import CliRunner

from ticketlint.cli import cli
from ticketlint.connectors.files import InputError, load_inputs
from ticketlint.mapping.common import MappingOptions
from ticketlint.mapping.model import PROCESSES

DATA = Path(__file__).parent / "data"
FILE = MappingOptions(source="file")


def test_jsonl_records_and_bad_lines(records_jsonl: Path) -> None:
    result = load_inputs([records_jsonl], FILE)
    assert [r.key for r in result.records] == [
        "CHG-1",
        "CHG-2",
        "CHG-3",
        "INC-7",
        "INC-8",
        "INC0010001",
        "mail-server-01",
        "CHG-9",
    ]
    assert result.systems == {"jira", "servicenow"}
    assert result.ci_sources == {"snow-demo"}
    assert result.report.rows == 10 and result.report.mapped == 8
    # settled reading 17: CHG-9's unreadable created_at costs that field only
    chg9 = next(r for r in result.records if r.key == "CHG-9")
    assert chg9.created_at is None
    assert chg9.unreadable == {
        "created_at": "not a date or time: Input should be a valid datetime or date, "
        "input is too short"
    }
    assert result.report.unreadable == {("change.created_at", "not a date or time"): 1}
    errors = [(e.source, e.key, e.reason) for e in result.report.errors]
    assert errors == [
        (
            "jira-demo",
            "X-1",
            f"{records_jsonl}:9: unknown process 'bogus'; expected one of incident, service_request, problem, change, release, ci",
        ),
        ("jira-demo", None, f"{records_jsonl}:10: key: Field required"),
    ]


def test_jsonl_not_an_object_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("[1, 2]\n\nnot json\n")
    result = load_inputs([path], FILE)
    assert [e.reason.split(": ", 1)[1] for e in result.report.errors] == [
        "expected a JSON object, got list",
        "Expecting value: line 1 column 1 (char 0)",
    ]
    assert [e.reason.split(":")[1] for e in result.report.errors] == ["1", "3"]


def test_jsonl_process_that_is_not_a_word_costs_only_its_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    base = {"source": "s", "system": "file", "key": "A"}
    lines = [{**base, "process": ["incident"]}, {**base, "key": "B", "process": "incident"}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = load_inputs([path], FILE)
    assert [r.key for r in result.records] == ["B"]
    assert [(e.key, e.reason.split(": ", 1)[1]) for e in result.report.errors] == [
        ("A", "unknown process ['incident']; expected one of " + ", ".join(PROCESSES))
    ]


def test_servicenow_directory() -> None:
    result = load_inputs([DATA / "servicenow"], FILE)
    assert result.systems == {"servicenow"}
    assert result.ci_sources == {"file"}
    by_key = {r.key: r for r in result.records}
    assert {r.process for r in result.records} == {
        "change",
        "ci",
        "incident",
        "problem",
        "service_request",
    }
    assert all(r.source == "file" for r in result.records)
    # approvals from sysapproval_approver and CI names from cmdb_ci / task_ci are joined
    assert len(by_key["CHG0030001"].approvals) == 2
    assert set(by_key["CHG0030001"].ci_refs) == {"web-01", "web-02", "lb-01"}
    assert not result.report.errors


def test_servicenow_single_table_file_and_configured_source() -> None:
    options = MappingOptions(source="snow-prod", base_url="https://acme.service-now.com")
    result = load_inputs([DATA / "servicenow" / "incident.json"], options)
    assert {r.process for r in result.records} == {"incident"}
    assert result.ci_sources == set()
    first = result.records[0]
    assert first.source == "snow-prod"
    assert first.url.startswith("https://acme.service-now.com/")


def test_servicenow_directory_ignores_other_json(tmp_path: Path) -> None:
    shutil.copy(DATA / "servicenow" / "incident.json", tmp_path)
    (tmp_path / "sys_choice.json").write_text('{"result": []}')
    result = load_inputs([tmp_path], FILE)
    assert result.report.warnings == {
        "ignored sys_choice.json: not a ServiceNow table ticketlint maps": 1
    }


def test_jira_directory_with_names_and_changelog() -> None:
    result = load_inputs([DATA / "jira"], FILE)
    by_key = {r.key: r for r in result.records}
    assert set(by_key) == {"CHG-1", "OPS-7", "OPS-9"}
    assert result.systems == {"jira"}
    change = by_key["CHG-1"]
    assert change.source == "file" and change.state == "closed"
    assert change.url == "https://acme.atlassian.net/browse/CHG-1"  # site taken from "self"
    assert [t.to_state for t in change.transitions] == [
        "implement",
        "closed",
    ]  # from changelog.json
    assert change.change_type == "Normal" or change.change_type == "normal"
    assert result.report.unknown_statuses == {("incident", "Awaiting vendor"): 1}


def test_jira_search_file_with_sibling_field_list(tmp_path: Path) -> None:
    search = json.loads((DATA / "jira" / "search.json").read_text())
    del search["names"]  # no expand=names: field.json beside it names the custom fields
    (tmp_path / "page1.json").write_text(json.dumps([search]))  # a list of pages
    shutil.copy(
        Path(__file__).parent.parent / "fixtures" / "jira_api" / "field.json",
        tmp_path / "field.json",
    )
    result = load_inputs([tmp_path / "page1.json"], FILE)
    change = {r.key: r for r in result.records}["CHG-1"]
    assert change.risk and change.risk.lower() == "high"
    assert change.transitions is None  # no changelog in this folder, none embedded


def test_jira_without_names_or_field_list_leaves_custom_fields_unprovided(tmp_path: Path) -> None:
    search = json.loads((DATA / "jira" / "search.json").read_text())
    del search["names"]
    (tmp_path / "search.json").write_text(json.dumps(search))
    change = {r.key: r for r in load_inputs([tmp_path / "search.json"], FILE).records}["CHG-1"]
    assert change.risk is None  # not provided -> rules say NOT_EVALUATED, never FAIL


@pytest.mark.parametrize(
    "name, content, problem",
    [
        (
            "x.json",
            "{",
            "not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)",
        ),
        ("x.json", '{"a": 1}', "not a Jira search response"),
        (
            "changelog.json",
            '{"issueChangeLogs": []}',
            "a changelog bulkfetch response alone has no issues",
        ),
        ("x.json", b"\xff\xfe{}", "not UTF-8 text"),
        ("nowhere.json", None, "no such file or directory"),
    ],
)
def test_bad_inputs_name_the_file(
    name: str, content: str | bytes | None, problem: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(InputError) as info:
        load_inputs([path], FILE)
    assert str(info.value).startswith(f"{path}: {problem}")


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="holds no Jira search export"):
        load_inputs([tmp_path], FILE)


def test_check_on_exported_directories(runner: CliRunner) -> None:
    """The real pack over a Jira and a ServiceNow export together (whatever it holds)."""
    result = runner.invoke(
        cli,
        [
            "check",
            "--as-of",
            AS_OF,
            "-f",
            "json",
            "--exit-zero",
            "-i",
            str(DATA / "jira"),
            "-i",
            str(DATA / "servicenow"),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["summary"]["records"] == 20
    assert data["summary"]["sources"] == ["file"]
    assert data["summary"]["unknown_statuses"] == [
        {"process": "incident", "status": "Awaiting vendor", "count": 1}
    ]
    assert all(f["source"] == "file" for f in data["findings"])


def test_check_input_with_source_uses_its_mapping(runner: CliRunner, test_registry: object) -> None:
    Path("ticketlint.yaml").write_text(
        "sources:\n"
        "  - name: jira-prod\n    type: jira\n    url: https://jira.acme.example\n    auth: {pat: x}\n"
        "    status_map: {incident: {Awaiting vendor: on_hold}}\n"
    )
    result = runner.invoke(
        cli,
        [
            "check",
            "--as-of",
            AS_OF,
            "-f",
            "json",
            "--source",
            "jira-prod",
            "-i",
            str(DATA / "jira"),
        ],
    )
    data = json.loads(result.stdout)
    assert data["summary"]["unknown_statuses"] == []
    assert {f["url"].split("/browse/")[0] for f in data["findings"]} == {
        "https://jira.acme.example"
    }
    assert {f["source"] for f in data["findings"]} == {"jira-prod"}
