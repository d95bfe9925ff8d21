"""The sandbox's real-shapes mode (issue 19) read by the real connectors over HTTP: JSM
"[System]" issue types, searches that truncate comment lists, closed incidents without a
resolution date, and a ServiceNow ``cab_date`` that is date-only.

The Jira check must agree, on INC001, INC004 and INC005, with a check that reads every
comment list and every history, and stay within 1.05x of the requests it cannot avoid.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date, datetime, timezone
from typing import Any

import pytest

from ticketlint.config import JiraSource, ServiceNowSource
from ticketlint.connectors.jira import JiraConnector
from ticketlint.connectors.servicenow import ServiceNowConnector
from ticketlint.mapping.jira import JiraMapper
from ticketlint.mapping.jira_fields import JiraFieldCatalog
from ticketlint.mapping.model import BaseRecord, ChangeRecord
from ticketlint.rules.engine import RecordIndex
from ticketlint.rules.registry import RuleContext
from ticketlint.rules.selection import load_registry
from ticketlint.sandbox import SandboxServer, serve

ANCHOR = 1772460000000
AS_OF = datetime(2026, 3, 2, 16, 0, tzinfo=timezone.utc)
DECIDED_BY_NOTES_AND_TIMES = ("INC001", "INC004", "INC005")


class _ReadsEverything(JiraMapper):
    """The reference: every comment list and every history read, whatever it costs."""

    def needs_history(self, issue: dict) -> bool:
        return self.process_of(issue) not in (None, "review")

    def needs_comments(self, issue: dict) -> bool:
        page = (issue.get("fields") or {}).get("comment")
        return isinstance(page, dict) and page.get("total", 0) > len(page.get("comments") or [])


def _reference_factory(
    options: Any, fields: list, statuses: list, deployment: str
) -> tuple[Any, Any]:
    catalog = JiraFieldCatalog.from_field_list(fields)
    return _ReadsEverything(options, catalog, statuses=statuses, deployment=deployment), catalog


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    srv = serve(seed=5, size=700, anchor=ANCHOR, real_shapes=True).start()
    try:
        yield srv
    finally:
        srv.stop()


def _jira_source(server: SandboxServer) -> JiraSource:
    c = server.credentials
    return JiraSource.model_validate(
        {
            "name": "jira-sandbox",
            "type": "jira",
            "url": server.url,
            "auth": {"email": c.jira_email, "token": c.jira_token},
            "jql": "project in (OPS, CHG)",
        }
    )


def _read(conn: JiraConnector) -> tuple[list[BaseRecord], int, list[str]]:
    records: list[BaseRecord] = []
    errors: list[str] = []
    for stream in conn.streams:
        for batch in conn.read(stream):
            records += batch.records
            errors += [e.reason for e in batch.report.errors]
    return records, conn.request_count, errors


def _outcomes(records: list[BaseRecord]) -> dict[tuple[str, str], str]:
    """(rule, key) -> outcome (with its reason when NOT_EVALUATED)."""
    rules = [r for r in load_registry().rules.values() if r.code in DECIDED_BY_NOTES_AND_TIMES]
    index = RecordIndex()
    out: dict[tuple[str, str], str] = {}
    for r in rules:
        ctx = RuleContext(as_of=AS_OF, params=r.resolve_params(None), index=index)
        for record in records:
            if record.process in r.applies_to:
                outcome = r.func(record, ctx)
                out[(r.code, record.key)] = f"{outcome.status.value} {outcome.reason}".strip()
    return out


def test_system_types_are_searched_by_the_sites_own_names(server: SandboxServer) -> None:
    types = {t["name"] for t in server.data.jira.issue_types()}
    assert "[System] Incident" in types and "Incident" not in types
    conn = JiraConnector(_jira_source(server), sleep=lambda s: None)
    try:
        records, _, errors = _read(conn)
    finally:
        conn.close()
    assert not errors
    processes = {r.process for r in records}
    assert {"incident", "change", "problem", "service_request"} <= processes
    jira = server.data.jira
    expected = sum(1 for i in range(len(jira.types)) if jira.types[i] != 5)  # reviews fold in
    assert len(records) == expected


def test_jira_agrees_with_reading_everything_at_the_least_requests(server: SandboxServer) -> None:
    conn = JiraConnector(_jira_source(server), sleep=lambda s: None)
    ref = JiraConnector(
        _jira_source(server), sleep=lambda s: None, mapper_factory=_reference_factory
    )
    stats = server.stats
    try:
        stats.clear()
        records, requests, _ = _read(conn)
        used = dict(stats)
        ref_records, ref_requests, _ = _read(ref)
    finally:
        conn.close()
        ref.close()
    assert _outcomes(records) == _outcomes(ref_records)
    # the reads happened and decided something: truncated notes and closing times
    comment_reads = sum(n for route, n in used.items() if route.endswith("/comment"))
    bulk = sum(n for route, n in used.items() if "changelog/bulkfetch" in route)
    assert comment_reads > 0 and bulk > 0
    incidents = [r for r in records if r.process == "incident"]
    assert any(r.state == "closed" and r.resolved_at == "" and r.closed_at for r in incidents)
    # page minimum: setup, every search page, one bulkfetch per 1000 issues needing their
    # history, one comment read per issue whose notes decide a rule, approvals as asked
    searches = sum(n for route, n in used.items() if "search/jql" in route)
    approvals = sum(n for route, n in used.items() if "/approval" in route)
    minimum = 5 + searches + approvals + comment_reads + max(1, math.ceil(bulk / 1000))
    print(f"jira requests: {requests}, page minimum {minimum}, reference {ref_requests}")
    assert requests <= 1.05 * minimum
    assert requests < ref_requests


def test_servicenow_date_only_cab_date_loses_no_change(server: SandboxServer) -> None:
    c = server.credentials
    src = ServiceNowSource.model_validate(
        {
            "name": "snow-sandbox",
            "type": "servicenow",
            "url": server.url,
            "auth": {"user": c.snow_user, "password": c.snow_password},
        }
    )
    conn = ServiceNowConnector(src, sleep=lambda s: None)
    try:
        batches = list(conn.read("change"))
    finally:
        conn.close()
    changes = [r for b in batches for r in b.records]
    assert not [e for b in batches for e in b.report.errors]
    assert len(changes) == server.data.servicenow.counts["change_request"] - sum(
        b.report.skipped_empty for b in batches
    )
    dated = [r for r in changes if isinstance(r, ChangeRecord) and r.cab_date]
    assert dated and all(type(r.cab_date) is date for r in dated)
    assert not any(r.unreadable for r in changes)
    # read by the type the instance declares (sys_dictionary, one request), not guessed
    read = conn.dictionary()
    assert read.types is not None and read.problem is None
    assert read.types.declared("change_request", "cab_date") == "glide_date"
    assert read.types.declared("change_request", "start_date") == "glide_date_time"
    assert conn.mapper.type_problems() == []
    # a CAB-required change past scheduling with a date-only CAB date is checked: CHG012
    # passes on it (a day is set), it is neither dropped nor NOT_EVALUATED
    rule = load_registry().rules["CHG012"]
    ctx = RuleContext(as_of=AS_OF, params=rule.resolve_params(None), index=RecordIndex())
    outcomes = {
        r.key: rule.func(r, ctx).status.value
        for r in dated
        if isinstance(r, ChangeRecord) and r.cab_required and r.state in ("implement", "closed")
    }
    assert outcomes and set(outcomes.values()) == {"PASS"}


def test_servicenow_display_value_exports_read_right_or_refused(server: SandboxServer) -> None:
    """An export with sysparm_display_value=all is read by its raw values: the same
    records, states, priorities and times as a raw export. One with =true (times in the
    user's time zone, references without sys_id) is refused with how to export."""
    import requests

    from ticketlint.mapping.common import MappingOptions
    from ticketlint.mapping.servicenow import (
        DISPLAY_VALUE_EXPORT,
        ServiceNowMapper,
        load_table_export,
    )

    c = server.credentials
    mapper = ServiceNowMapper(MappingOptions(source="snow"))
    fields = ",".join(mapper.fields_for("incident"))

    def export(mode: str) -> object:
        r = requests.get(
            f"{server.url}/api/now/table/incident",
            params={"sysparm_display_value": mode, "sysparm_fields": fields, "sysparm_limit": 200},
            auth=(c.snow_user, c.snow_password),
            timeout=30,
        )
        r.raise_for_status()
        return r.json()

    raw, _ = mapper.map_rows("incident", load_table_export(export("false")))
    every, report = mapper.map_rows("incident", load_table_export(export("all")))
    assert raw and not report.errors and len(every) == len(raw)
    for a, b in zip(raw, every, strict=True):
        assert (a.key, a.state, a.priority, a.created_at, a.resolved_at, a.closed_at) == (
            b.key,
            b.state,
            b.priority,
            b.created_at,
            b.resolved_at,
            b.closed_at,
        )
        assert b.unreadable is None
    with pytest.raises(ValueError, match="sysparm_display_value=false") as refused:
        load_table_export(export("true"))
    assert str(refused.value) == DISPLAY_VALUE_EXPORT
