"""Nothing lost in silence (issue 19): records not checked are listed with key and reason
in every format, fields that could not be read are counted, and the exit code says when
nothing (or, with --fail-on-unchecked, anything) could not be checked.

Input: tests/cli/data/unchecked/search.json, a Jira Cloud search export with a JSM
"[System] Incident" whose resolution notes are an empty HTML paragraph, one whose created
time cannot be read, a Story (no process: skipped) and an issue without a key (no
identity: not checked). ``UPDATE_SNAPSHOTS=1`` rewrites tests/snapshots/unchecked.<fmt>.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cli_support import AS_OF, assert_snapshot
from click.testing import CliRunner

from ticketlint.cli import cli
from ticketlint.report.formats import FORMATS

DATA = Path(__file__).parent / "data" / "unchecked"
RULES = "INC001,INC002,INC005"


def run(runner: CliRunner, name: str, *args: str) -> tuple[int, str, str]:
    shutil.copy(DATA / name, name)  # a relative path keeps messages machine-independent
    result = runner.invoke(
        cli, ["check", "--input", name, "--as-of", AS_OF, "--select", RULES, *args]
    )
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("fmt", FORMATS)
def test_unchecked_records_in_every_format_match_snapshot(fmt: str, runner: CliRunner) -> None:
    code, out, err = run(runner, "search.json", "-f", fmt)
    assert code == 1  # OPS-1 fails INC001: some records were checked, so findings decide
    assert_snapshot(f"unchecked.{fmt}", out)
    if fmt == "csv":  # findings only: the records not checked are named on stderr
        assert "not checked: file/OPS-3: issue type Story maps to no process" in err


def test_json_lists_not_checked_and_unreadable(runner: CliRunner) -> None:
    _, out, _ = run(runner, "search.json", "-f", "json")
    data = json.loads(out)
    assert [(e["key"], e["kind"]) for e in data["not_checked"]] == [
        (None, "error"),
        ("OPS-3", "skipped"),
    ]
    assert data["summary"]["records"] == 2 and data["summary"]["not_checked"] == 2
    assert {"field": "incident.created_at", "reason": "not a date or time", "count": 1} in data[
        "summary"
    ]["unreadable"]
    # OPS-2 is still checked; INC005 cannot measure without its creation time and says why
    assert data["not_evaluated"]["INC005"] == {
        "could not read incident.created_at (not a date or time)": 1
    }
    # "<p><br></p>" is no resolution note: OPS-1 fails INC001
    assert [(f["code"], f["key"]) for f in data["findings"]] == [("INC001", "OPS-1")]


def test_junit_has_an_error_per_record_not_checked(runner: CliRunner) -> None:
    _, out, _ = run(runner, "search.json", "-f", "junit")
    root = ET.fromstring(out.encode())
    errors = root.findall(".//testsuite[@name='mapping']/testcase/error")
    assert sorted(e.get("type") or "" for e in errors) == ["mapping-error", "skipped-record"]


def test_exit_2_when_no_record_read_could_be_checked(runner: CliRunner) -> None:
    code, out, err = run(runner, "only_unmapped.json", "-f", "json")
    assert code == 2
    assert [e["key"] for e in json.loads(out)["not_checked"]] == ["DEV-1", "DEV-2"]
    assert "none of the records read could be checked" in err


def test_fail_on_unchecked_flag_and_config_key(runner: CliRunner) -> None:
    code, _, err = run(runner, "search.json", "-f", "json", "--fail-on-unchecked")
    assert code == 2 and "2 records could not be checked" in err
    Path("ticketlint.yaml").write_text("check:\n  fail_on_unchecked: true\n")
    code, _, _ = run(runner, "search.json", "-f", "json")
    assert code == 2
    Path("ticketlint.yaml").write_text("check:\n  fail_on_unchecked: false\n")
    code, _, _ = run(runner, "search.json", "-f", "json")
    assert code == 1


def test_stderr_names_at_most_ten_records_then_the_count(runner: CliRunner) -> None:
    issues = [
        {"id": str(i), "key": f"DEV-{i}", "fields": {"issuetype": {"name": "Story"}}}
        for i in range(25)
    ]
    Path("many.json").write_text(json.dumps({"issues": issues}))
    result = runner.invoke(cli, ["check", "--input", "many.json", "--as-of", AS_OF, "-f", "csv"])
    lines = [line for line in result.stderr.splitlines() if "not checked:" in line]
    assert len(lines) == 10
    assert "... and 15 more" in result.stderr
    assert result.exit_code == 2


def test_text_lists_the_first_twenty_then_the_count(runner: CliRunner) -> None:
    issues = [
        {"id": str(i), "key": f"DEV-{i:02d}", "fields": {"issuetype": {"name": "Story"}}}
        for i in range(25)
    ]
    Path("many.json").write_text(json.dumps({"issues": issues}))
    result = runner.invoke(cli, ["check", "--input", "many.json", "--as-of", AS_OF])
    listed = [line for line in result.stdout.splitlines() if "(skipped)" in line]
    assert len(listed) == 20 and "DEV-19" in listed[-1]
    assert "... and 5 more (all in -f json)" in result.stdout
    assert "Not checked (25 records):" in result.stdout


REAL = Path(__file__).parents[1] / "fixtures" / "real"


def test_a_bare_list_of_jira_issues_is_checked(runner: CliRunner) -> None:
    shutil.copytree(REAL / "jira-bare-issue-list", "bare")
    result = runner.invoke(cli, ["check", "--input", "bare", "--as-of", AS_OF, "-f", "json"])
    data = json.loads(result.stdout)
    assert data["summary"]["records"] == 2 and data["not_checked"] == []
    assert result.exit_code in (0, 1), result.output


def test_a_servicedeskapi_request_export_is_refused_naming_the_endpoint(
    runner: CliRunner,
) -> None:
    shutil.copytree(REAL / "jsm-servicedeskapi-request", "jsm")
    result = runner.invoke(cli, ["check", "--input", "jsm", "--as-of", AS_OF])
    assert result.exit_code == 2 and result.stdout == ""
    assert "/rest/servicedeskapi/request" in result.stderr
    assert "export from /rest/api/3/search/jql (Cloud) or /rest/api/2/search" in result.stderr


@pytest.mark.parametrize("value", ['"yes"', "1", '"on"'])
def test_fail_on_unchecked_config_key_is_a_strict_boolean(runner: CliRunner, value: str) -> None:
    Path("ticketlint.yaml").write_text(f"check:\n  fail_on_unchecked: {value}\n")
    result = runner.invoke(cli, ["config", "validate"])
    assert result.exit_code == 2
    assert "check.fail_on_unchecked: Input should be a valid boolean" in result.stderr
