"""``check --input``: a bad record, line or value is counted and listed, never fatal; a
duplicate key is one record (the latest update wins) and counted."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ticketlint.cli import cli

DATA = Path(__file__).resolve().parents[1] / "cli" / "data"
RECORDS = Path(__file__).resolve().parents[1] / "fixtures" / "records.jsonl"
DEEP = "[" * 100_000 + "]" * 100_000
AS_OF = "2026-03-31T00:00:00Z"


def run(runner: CliRunner, *paths: Path) -> tuple[Any, dict[str, Any]]:
    args = ["check", "--as-of", AS_OF, "-f", "json"]
    for p in paths:
        args += ["--input", str(p)]
    result = runner.invoke(cli, args)
    assert result.exit_code in (0, 1), result.output
    assert "internal error" not in result.stderr
    return result, json.loads(result.stdout)


def test_jsonl_bad_lines_are_listed_and_the_rest_load(runner: CliRunner, tmp_path: Path) -> None:
    good = RECORDS.read_bytes().splitlines()
    bad = [
        DEEP.encode(),
        b'{"key": "X-1", "title": "caf\xe9 latin-1 byte"}',
        b'"an issue that is a string"',
        b'{"source": "jira-demo", "key": "X-2", "process": "incident", "priority": '
        + b"9" * 5000
        + b"}",
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join([good[0], *bad, *good[1:]]) + b"\n")
    _r, baseline = run(runner, RECORDS)
    _result, data = run(runner, path)
    summary = data["summary"]
    reasons = [e["reason"] for e in summary["mapping_errors"]]
    # the good lines all load; the 5,000-digit priority is unknown, not fatal
    assert summary["records"] in (
        baseline["summary"]["records"],
        baseline["summary"]["records"] + 1,
    )
    assert any("digits read as unknown" in w for w in summary["mapping"]["warnings"])
    assert any("mixed.jsonl:2:" in r and "nested deeper" in r for r in reasons), reasons
    assert any("mixed.jsonl:3:" in r and "not UTF-8" in r for r in reasons), reasons
    assert any("mixed.jsonl:4:" in r and "expected a JSON object" in r for r in reasons), reasons
    assert summary["mapping"]["rows"] == len(good) + len(bad)


def _jira_export(tmp_path: Path, edit: Any) -> Path:
    folder = tmp_path / "jira"
    shutil.copytree(DATA / "jira", folder)
    search = json.loads((folder / "search.json").read_text())
    edit(search)
    (folder / "search.json").write_text(json.dumps(search))
    return folder


def test_jira_issue_that_is_a_string_is_one_error(runner: CliRunner, tmp_path: Path) -> None:
    folder = _jira_export(tmp_path, lambda s: s["issues"].insert(1, "not an issue"))
    _result, data = run(runner, folder)
    assert data["summary"]["records"] == 3
    [error] = data["summary"]["mapping_errors"]
    assert '"not an issue", not an issue object' in error["reason"]


def test_jira_deep_value_and_huge_integer_cost_only_that_value(
    runner: CliRunner, tmp_path: Path
) -> None:
    folder = tmp_path / "jira"
    shutil.copytree(DATA / "jira", folder)
    text = (folder / "search.json").read_text()
    text = text.replace('"labels": [', f'"x_deep": {DEEP}, "x_big": {"7" * 5000}, "labels": [', 1)
    (folder / "search.json").write_text(text)
    _result, data = run(runner, folder)
    assert data["summary"]["records"] == 3
    warnings = data["summary"]["mapping"]["warnings"]
    assert any("nested deeper" in w for w in warnings), warnings
    assert any("digits read as unknown" in w for w in warnings), warnings


def test_duplicate_jira_issue_is_checked_once_latest_wins(
    runner: CliRunner, tmp_path: Path
) -> None:
    baseline_folder = _jira_export(tmp_path / "a", lambda s: None)
    _r, baseline = run(runner, baseline_folder)

    def duplicate(search: dict[str, Any]) -> None:
        older = copy.deepcopy(search["issues"][0])
        older["fields"]["updated"] = "2020-01-01T00:00:00.000+0000"
        older["fields"]["summary"] = "OLDER COPY"
        search["issues"].append(older)  # read last, but older: must not win

    folder = _jira_export(tmp_path / "b", duplicate)
    _result, data = run(runner, folder)
    assert data["summary"]["records"] == baseline["summary"]["records"]
    assert len(data["findings"]) == len(baseline["findings"])
    assert all(f["record_title"] != "OLDER COPY" for f in data["findings"])
    warnings = data["summary"]["mapping"]["warnings"]
    assert any("duplicate record" in w and "CHG-1" in w for w in warnings), warnings


def test_duplicate_servicenow_row_is_collapsed(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "snow"
    shutil.copytree(DATA / "servicenow", folder)
    _r, baseline = run(runner, folder)
    incidents = json.loads((folder / "incident.json").read_text())
    incidents["result"].append(copy.deepcopy(incidents["result"][0]))
    incidents["result"].append("a row that is a string")
    (folder / "incident.json").write_text(json.dumps(incidents))
    _result, data = run(runner, folder)
    assert data["summary"]["records"] == baseline["summary"]["records"]
    assert len(data["findings"]) == len(baseline["findings"])
    assert any("duplicate record" in w for w in data["summary"]["mapping"]["warnings"])
    assert any("row 7 is a str" in e["reason"] for e in data["summary"]["mapping_errors"])


def test_a_lone_surrogate_is_replaced_not_fatal(runner: CliRunner, tmp_path: Path) -> None:
    line = RECORDS.read_text().splitlines()[0].replace("Upgrade core switches", "bad \\udc80 x")
    path = tmp_path / "s.jsonl"
    path.write_text(line + "\n")
    args = ["check", "--as-of", AS_OF, "--input", str(path), "-f", "csv", "-o", "out.csv"]
    result = runner.invoke(cli, args)
    assert result.exit_code in (0, 1), result.output
    assert "bad \ufffd x" in Path("out.csv").read_text(encoding="utf-8")
