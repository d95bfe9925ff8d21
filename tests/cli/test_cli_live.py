"""Live ``check --source`` and ``doctor`` against a fake connector (the Connector protocol)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from cli_support import AS_OF
from click.testing import CliRunner

import ticketlint.connectors as connectors
from ticketlint.cli import cli
from ticketlint.connectors.base import DoctorCheck, DoctorReport, SourceError, StreamBatch
from ticketlint.mapping.common import MappingError, MappingReport
from ticketlint.mapping.model import record_from_dict

CONFIG = """\
sources:
  - {name: jira-prod, type: jira, url: "https://acme.atlassian.net", auth: {pat: abc}}
  - {name: snow-prod, type: servicenow, url: "https://acme.service-now.com", auth: {user: u, password: p}}
"""


def _record(source: str, key: str, **fields: Any):
    base = {
        "source": source,
        "system": "jira",
        "key": key,
        "process": "incident",
        "state": "in_progress",
        "priority": "",
        "updated_at": "2026-03-30T00:00:00Z",
        "url": f"https://acme.atlassian.net/browse/{key}",
    }
    return record_from_dict({**base, **fields})


class FakeConnector:
    def __init__(
        self,
        name: str,
        *,
        fail: SourceError | None = None,
        doctor_report: DoctorReport | None = None,
    ) -> None:
        self.name = name
        self.streams: Sequence[str] = ("incident", "ci")
        self.request_count = 0
        self.calls: list[dict[str, Any]] = []
        self.closed = False
        self._fail = fail
        self._doctor = doctor_report

    def read(
        self,
        stream: str,
        *,
        since: datetime | None = None,
        query: str | None = None,
        keys: Sequence[str] | None = None,
    ) -> Iterator[StreamBatch]:
        self.calls.append({"stream": stream, "since": since, "query": query, "keys": keys})
        if self._fail:
            raise self._fail
        self.request_count += 1
        if stream == "incident":
            report = MappingReport(
                rows=3, mapped=2, errors=[MappingError(self.name, "OPS-3", "bad date 'x'")]
            )
            yield StreamBatch(
                stream,
                [_record(self.name, "OPS-1"), _record(self.name, "OPS-2", priority=2)],
                report,
                None,
            )
        else:
            yield StreamBatch(stream, [], MappingReport(), None)

    def doctor(self) -> DoctorReport:
        assert self._doctor is not None
        return self._doctor

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch, runner: CliRunner) -> dict[str, FakeConnector]:
    Path("ticketlint.yaml").write_text(CONFIG)
    made: dict[str, FakeConnector] = {}

    def open_connector(source_cfg: Any) -> FakeConnector:
        made[source_cfg.name] = made.get(source_cfg.name) or FakeConnector(source_cfg.name)
        return made[source_cfg.name]

    monkeypatch.setattr(connectors, "open_connector", open_connector, raising=False)
    return made


def test_live_check_reads_every_stream(
    runner: CliRunner, fakes: dict[str, FakeConnector], test_registry: object
) -> None:
    result = runner.invoke(
        cli,
        [
            "check",
            "--source",
            "jira-prod",
            "--jql",
            "project = OPS",
            "--since",
            "2026-03-01",
            "--as-of",
            AS_OF,
            "-f",
            "json",
        ],
    )
    assert result.exit_code == 1, result.output
    fake = fakes["jira-prod"]
    assert [c["stream"] for c in fake.calls] == ["incident", "ci"]
    assert fake.calls[0]["query"] == "project = OPS"
    assert fake.calls[0]["since"] == datetime(2026, 3, 1, tzinfo=timezone.utc)
    assert fake.closed
    data = json.loads(result.stdout)
    assert [(f["code"], f["key"], f["source"]) for f in data["findings"]] == [
        ("TST002", "OPS-1", "jira-prod")
    ]
    assert data["summary"]["mapping_errors"] == [
        {"source": "jira-prod", "key": "OPS-3", "reason": "bad date 'x'"}
    ]


def test_a_record_read_twice_is_checked_once_at_its_latest_version(
    runner: CliRunner,
    fakes: dict[str, FakeConnector],
    monkeypatch: pytest.MonkeyPatch,
    test_registry: object,
) -> None:
    # Keyset paging reads a ticket updated mid-read again at the end of the stream.
    def read(stream: str, **_: Any) -> Iterator[StreamBatch]:
        if stream == "incident":
            yield StreamBatch(
                stream,
                [_record("jira-prod", "OPS-1"), _record("jira-prod", "OPS-2", priority=2)],
                MappingReport(rows=2, mapped=2),
                None,
            )
            fixed = _record("jira-prod", "OPS-1", priority=1, updated_at="2026-03-30T01:00:00Z")
            yield StreamBatch(stream, [fixed], MappingReport(rows=1, mapped=1), None)

    Path("ticketlint.yaml").write_text(CONFIG)
    fake = FakeConnector("jira-prod")
    monkeypatch.setattr(fake, "read", read)
    monkeypatch.setattr(connectors, "open_connector", lambda cfg: fake, raising=False)
    result = runner.invoke(cli, ["check", "--source", "jira-prod", "--as-of", AS_OF, "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["findings"] == []  # the first copy of OPS-1 (no priority) is not checked
    assert data["summary"]["records"] == 2


def test_live_check_with_keys_passes_them(
    runner: CliRunner, fakes: dict[str, FakeConnector], test_registry: object
) -> None:
    result = runner.invoke(
        cli,
        ["check", "--source", "jira-prod", "--key", "OPS-1", "--key", "OPS-2", "--as-of", AS_OF],
    )
    assert result.exit_code == 1
    assert fakes["jira-prod"].calls[0]["keys"] == ["OPS-1", "OPS-2"]


def test_without_source_every_configured_source_is_read(
    runner: CliRunner, fakes: dict[str, FakeConnector], test_registry: object
) -> None:
    result = runner.invoke(cli, ["check", "--as-of", AS_OF, "-f", "json"])
    assert set(fakes) == {"jira-prod", "snow-prod"}
    assert json.loads(result.stdout)["summary"]["sources"] == ["jira-prod", "snow-prod"]


def test_jql_on_a_servicenow_source_is_a_usage_error(
    runner: CliRunner, fakes: dict[str, FakeConnector], test_registry: object
) -> None:
    result = runner.invoke(
        cli, ["check", "--source", "snow-prod", "--jql", "x = 1", "--as-of", AS_OF]
    )
    assert result.exit_code == 2
    assert "--jql does not apply to servicenow source 'snow-prod'" in result.stderr


def test_source_error_exits_2_with_its_message(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, test_registry: object
) -> None:
    Path("ticketlint.yaml").write_text(CONFIG)
    error = SourceError(
        "jira-prod",
        "search failed",
        url="https://acme.atlassian.net/rest/api/3/search/jql",
        status=400,
        detail="Field 'foo' does not exist",
        hint="the jql of the source",
    )
    fake = FakeConnector("jira-prod", fail=error)
    monkeypatch.setattr(connectors, "open_connector", lambda cfg: fake, raising=False)
    result = runner.invoke(cli, ["check", "--source", "jira-prod", "--as-of", AS_OF])
    assert result.exit_code == 2
    assert (
        "error: jira-prod: search failed; URL: https://acme.atlassian.net/rest/api/3/search/jql; HTTP 400"
        in result.stderr
    )
    assert result.stdout == ""  # no "zero findings" result for a source that failed
    assert fake.closed


def test_doctor_prints_each_report(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    Path("ticketlint.yaml").write_text(CONFIG)
    reports = {
        "jira-prod": DoctorReport(
            "jira-prod",
            [
                DoctorCheck("auth", True, "as ops@example.com"),
                DoctorCheck("field Rollback plan", False, "not found", level="warning"),
            ],
            not_evaluated={"CHG005": "change.backout_plan is not mapped"},
            info={"deployment": "Cloud"},
        ),
        "snow-prod": DoctorReport("snow-prod", [DoctorCheck("auth", True)]),
    }
    monkeypatch.setattr(
        connectors,
        "open_connector",
        lambda cfg: FakeConnector(cfg.name, doctor_report=reports[cfg.name]),
        raising=False,
    )
    result = runner.invoke(cli, ["doctor"])
    assert result.exit_code == 0, result.output
    assert (
        "jira-prod: ok\n  [ok  ] auth: as ops@example.com\n  [warn] field Rollback plan: not found"
        in result.stdout
    )
    assert "  deployment: Cloud" in result.stdout
    assert "    CHG005: change.backout_plan is not mapped" in result.stdout
    assert "snow-prod: ok" in result.stdout


def test_doctor_exits_2_when_a_source_is_not_ok(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("ticketlint.yaml").write_text(CONFIG)

    def open_connector(cfg: Any) -> FakeConnector:
        if cfg.name == "snow-prod":
            raise SourceError("snow-prod", "cannot connect", url="https://acme.service-now.com")
        return FakeConnector(
            cfg.name, doctor_report=DoctorReport(cfg.name, [DoctorCheck("auth", False, "HTTP 401")])
        )

    monkeypatch.setattr(connectors, "open_connector", open_connector, raising=False)
    result = runner.invoke(cli, ["doctor"])
    assert result.exit_code == 2
    assert "jira-prod: FAILING\n  [FAIL] auth: HTTP 401" in result.stdout
    assert "snow-prod: FAILING\n  [FAIL] connect: snow-prod: cannot connect" in result.stdout
    only = runner.invoke(cli, ["doctor", "--source", "jira-prod"])
    assert only.exit_code == 2 and "snow-prod" not in only.stdout


def test_doctor_needs_a_config(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["doctor"])
    assert result.exit_code == 2
    assert "no configuration found" in result.stderr


def test_a_key_that_matches_nothing_is_exit_2_not_found(
    runner: CliRunner, fakes: dict[str, FakeConnector], test_registry: object
) -> None:
    """Issue 17 item 4: a mistyped key never reads as "No findings", exit 0."""
    monkey = FakeConnector("jira-prod")
    monkey.read = lambda stream, **_: iter(())  # type: ignore[method-assign]
    fakes["jira-prod"] = monkey
    result = runner.invoke(cli, ["check", "--source", "jira-prod", "--key", "NOPE-999"])
    assert result.exit_code == 2
    assert "NOPE-999 not found at jira-prod" in result.stderr
    assert "No findings" not in result.output


def test_found_keys_are_checked_and_the_missing_one_still_exits_2(
    runner: CliRunner, fakes: dict[str, FakeConnector], test_registry: object
) -> None:
    result = runner.invoke(
        cli,
        ["check", "--source", "jira-prod", "--key", "ops-2", "--key", "OPS-3", "--key", "X-1"],
    )
    assert result.exit_code == 2
    assert "X-1 not found at jira-prod" in result.stderr and "OPS-3" not in result.stderr
    assert "OPS-1" in result.stdout  # what was read is still shown
