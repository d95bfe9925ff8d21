"""``check --key``: a key is checked against the source's key pattern before any query is
built; encoded-query values are escaped."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import ticketlint.connectors as connectors
from ticketlint.cli import cli
from ticketlint.connectors.base import StreamBatch
from ticketlint.connectors.keys import encoded_query_value, invalid_key, validate_keys
from ticketlint.connectors.servicenow.query import keys_clause
from ticketlint.mapping.common import MappingReport

CONFIG = """\
sources:
  - {name: jira-prod, type: jira, url: "https://acme.atlassian.net", auth: {pat: abc}}
  - {name: snow-prod, type: servicenow, url: "https://acme.service-now.com", auth: {user: u, password: p}}
"""


class Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.streams: Sequence[str] = ("incident",)
        self.request_count = 0
        self.calls: list[Sequence[str] | None] = []

    def read(
        self,
        stream: str,
        *,
        since: datetime | None = None,
        query: str | None = None,
        keys: Sequence[str] | None = None,
    ) -> Iterator[StreamBatch]:
        self.calls.append(keys)
        yield StreamBatch(stream, [], MappingReport(), None)

    def close(self) -> None:
        pass


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch, runner: CliRunner) -> dict[str, Recorder]:
    Path("ticketlint.yaml").write_text(CONFIG)
    made: dict[str, Recorder] = {}

    def open_connector(source_cfg: Any) -> Recorder:
        return made.setdefault(source_cfg.name, Recorder(source_cfg.name))

    monkeypatch.setattr(connectors, "open_connector", open_connector, raising=False)
    return made


@pytest.mark.parametrize(
    "key",
    [
        "INC0010012^NQactive=true",
        "INC0010012,INC0010013",
        "INC0010012^ORactive=true",
        "sys_id!=x",
        "INC1\nactive=true",
        "",
    ],
)
def test_servicenow_key_with_query_operators_is_refused_before_any_read(
    key: str, runner: CliRunner, opened: dict[str, Recorder]
) -> None:
    result = runner.invoke(cli, ["check", "--source", "snow-prod", "--key", key])
    assert result.exit_code == 2, result.output
    assert "--key" in result.stderr
    assert opened == {}  # no connector opened, no query built


def test_valid_servicenow_keys_pass(runner: CliRunner, opened: dict[str, Recorder]) -> None:
    sys_id = "9d385017c611228701d22104cc95c371"
    result = runner.invoke(
        cli, ["check", "--source", "snow-prod", "--key", "INC0010012", "--key", sys_id]
    )
    assert "not found at snow-prod" in result.stderr  # read, and (the fake has none) absent
    assert opened["snow-prod"].calls == [["INC0010012", sys_id]]


def test_each_source_gets_only_its_own_keys(runner: CliRunner, opened: dict[str, Recorder]) -> None:
    result = runner.invoke(cli, ["check", "--key", "OPS-1"])
    assert "OPS-1 not found at jira-prod" in result.stderr, result.output
    assert opened["jira-prod"].calls == [["OPS-1"]]
    assert "snow-prod" not in opened  # never read with "no keys" (which means every record)


def test_jira_key_with_jql_is_refused(runner: CliRunner, opened: dict[str, Recorder]) -> None:
    result = runner.invoke(
        cli, ["check", "--source", "jira-prod", "--key", 'OPS-1" OR project = X']
    )
    assert result.exit_code == 2
    assert opened == {}


def test_patterns() -> None:
    assert invalid_key("jira", "OPS-12") is None
    assert invalid_key("jira", "10042") is None
    assert invalid_key("servicenow", "RITM0000042") is None
    assert invalid_key("servicenow", "web-01 prod", process="ci") is None
    assert invalid_key("servicenow", "a^b", process="ci") is not None
    with pytest.raises(ValueError, match="not a ServiceNow record number"):
        validate_keys("servicenow", ["INC1", "INC1^NQx=1"])


def test_encoded_query_values_are_escaped() -> None:
    assert encoded_query_value("a^NQb") == "a^^NQb"
    assert keys_clause("number", ["INC1^NQactive=true"]) == "numberININC1^^NQactive=true"
