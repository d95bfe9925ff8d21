"""``check --input`` on the example exports in examples/ (their EXPECTED.md lists exactly
the findings the iso20000 pack must report)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ticketlint.cli import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
AS_OF = "2026-11-20T00:00:00Z"

JIRA_EXPECTED = {
    ("CHG001", "ITSM-202"),
    ("CHG002", "ITSM-203"),
    ("CHG003", "ITSM-204"),
    ("CHG004", "ITSM-205"),
    ("CHG005", "ITSM-206"),
    ("CHG006", "ITSM-207"),
    ("CHG007", "ITSM-208"),
    ("CHG008", "ITSM-209"),
    ("CHG009", "ITSM-210"),
    ("CHG010", "ITSM-211"),
    ("CHG011", "ITSM-212"),
    ("INC001", "ITSM-102"),
    ("INC002", "ITSM-103"),
    ("INC003", "ITSM-104"),
    ("INC004", "ITSM-105"),
    ("INC005", "ITSM-107"),
    ("INC006", "ITSM-108"),
    ("PRB001", "ITSM-302"),
    ("PRB002", "ITSM-303"),
    ("PRB003", "ITSM-304"),
    ("PRB004", "Checkout Web"),
    ("PRB005", "ITSM-106"),
    ("REQ001", "ITSM-502"),
    ("REQ002", "ITSM-503"),
}
SNOW_EXPECTED = {
    ("CFG001", "exchange-01"),
    ("CFG002", "mailrelay-02"),
    ("CFG003", "CHG0030017"),
    ("CHG001", "CHG0030003"),
    ("CHG002", "CHG0030004"),
    ("CHG003", "CHG0030005"),
    ("CHG004", "CHG0030006"),
    ("CHG005", "CHG0030007"),
    ("CHG006", "CHG0030008"),
    ("CHG007", "CHG0030009"),
    ("CHG008", "CHG0030010"),
    ("CHG009", "CHG0030011"),
    ("CHG010", "CHG0030012"),
    ("CHG011", "CHG0030013"),
    ("CHG012", "CHG0030014"),
    ("INC001", "INC0010003"),
    ("INC002", "INC0010005"),
    ("INC003", "INC0010006"),
    ("INC005", "INC0010007"),
    ("INC005", "INC0010008"),
    ("INC006", "INC0010008"),
    ("PRB001", "PRB0040001"),
    ("PRB002", "PRB0040003"),
    ("PRB003", "PRB0040004"),
    ("PRB004", "exchange-01"),
    ("PRB005", "INC0010009"),
    ("REQ001", "RITM0010002"),
    ("REQ002", "RITM0010003"),
}


def _check(runner: CliRunner, *args: str) -> dict:
    result = runner.invoke(cli, ["check", "--as-of", AS_OF, "-f", "json", *args])
    assert result.exit_code == 1, result.output
    return json.loads(result.stdout)


@pytest.mark.skipif(
    not (EXAMPLES / "jira" / "search.json").exists(), reason="examples/jira not in this checkout"
)
def test_jira_example_directory(runner: CliRunner) -> None:
    data = _check(runner, "--input", str(EXAMPLES / "jira"))
    assert {(f["code"], f["key"]) for f in data["findings"]} == JIRA_EXPECTED
    assert len(data["findings"]) == len(JIRA_EXPECTED)
    summary = data["summary"]
    assert summary["records"] == 36 and summary["sources"] == ["file"]
    assert summary["unknown_statuses"] == [
        {"process": "incident", "status": "Awaiting vendor", "count": 1}
    ]
    assert summary["mapping_errors"] == []
    assert "CHG012" in data["not_evaluated"]
    finding = next(f for f in data["findings"] if f["key"] == "ITSM-204")
    assert finding["url"] == "https://acme-itsm.atlassian.net/browse/ITSM-204"
    assert finding["assignee"] == "Sam Ortega"


@pytest.mark.skipif(
    not (EXAMPLES / "servicenow" / "incident.json").exists(),
    reason="examples/servicenow not in this checkout",
)
def test_servicenow_example_directory(runner: CliRunner) -> None:
    data = _check(runner, "--input", str(EXAMPLES / "servicenow"))
    assert {(f["code"], f["key"]) for f in data["findings"]} == SNOW_EXPECTED
    assert len(data["findings"]) == len(SNOW_EXPECTED)
    assert data["summary"]["records"] == 46
    assert data["summary"]["mapping"]["skipped_empty"] == 1
    assert data["not_evaluated"]["INC004"] == {"source does not provide incident.review": 2}


@pytest.mark.skipif(
    not (EXAMPLES / "servicenow" / "ticketlint.yaml").exists(),
    reason="examples/servicenow not in this checkout",
)
def test_servicenow_example_with_its_configured_source(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNOW_PASSWORD", "unused")
    result = runner.invoke(
        cli,
        [
            "--config",
            str(EXAMPLES / "servicenow" / "ticketlint.yaml"),
            "check",
            "--source",
            "snow-example",
            "--input",
            str(EXAMPLES / "servicenow"),
            "--as-of",
            AS_OF,
            "-f",
            "jsonl",
        ],
    )
    assert result.exit_code == 1, result.output
    findings = [json.loads(line) for line in result.stdout.splitlines()]
    assert {(f["code"], f["key"]) for f in findings} == SNOW_EXPECTED | {("INC004", "INC0010004")}
    assert {f["source"] for f in findings} == {"snow-example"}
    assert all(
        f["url"] is None or f["url"].startswith("https://acme.service-now.com/") for f in findings
    )
