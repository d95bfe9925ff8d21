"""Mapping + full-pack evaluation throughput, beside the cost of merely parsing the JSON.

Fetches N realistic records once from the built-in sandbox (seeded Jira Cloud issues
with changelogs and approvals, ServiceNow rows with approvals and CI links), keeps the
raw response bodies, then measures in one run, on one core:

1. the floor: ``json.loads`` of every body;
2. mapping (mapping/jira.py, mapping/servicenow.py) of the parsed bodies plus the whole
   ``iso20000`` pack (ticketlint.rules.engine).

Both are timed ``--repeat`` times, alternating, in the same process; the figures are
the median of the repeats (the best is shown beside it). Prints records/s for each, the
split of (2) into Jira mapping, ServiceNow mapping and evaluation, both together, and
their ratio, and whether the target is met: >= 20,000 records/s for (2) on one core
(median). ServiceNow columns are read by the types the sandbox's ``sys_dictionary``
declares, as a live read does (``--no-column-types``: by their values' shapes, as an
export file is). Fetching is not timed.
Run: ``python bench/evaluate.py [--size N] [--repeat R] [--no-column-types]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ticketlint.mapping.common import MappingOptions
from ticketlint.mapping.jira import JiraFieldCatalog, JiraMapper
from ticketlint.mapping.servicenow import (
    APPROVAL_FIELDS,
    APPROVAL_TABLE,
    DEFAULT_TABLES,
    TASK_CI_FIELDS,
    TASK_CI_TABLE,
    ServiceNowMapper,
)
from ticketlint.mapping.servicenow_types import ColumnTypes
from ticketlint.rules.engine import Engine
from ticketlint.rules.registry import load_registry
from ticketlint.sandbox.server import SandboxServer

TARGET = 20_000
APPROVAL_PROCESSES = ("change", "service_request")
TASK_CI_PROCESSES = ("change", "incident", "problem")


def fetch_jira(session: requests.Session, url: str) -> dict[str, Any]:
    """Raw bodies: field and status lists, search pages, bulk changelog pages."""
    fields = session.get(f"{url}/rest/api/3/field").text
    statuses = session.get(f"{url}/rest/api/2/status").text
    catalog = JiraFieldCatalog.from_field_list(json.loads(fields))
    mapper = JiraMapper(
        MappingOptions(source="jira-bench", base_url=url), catalog, statuses=json.loads(statuses)
    )
    pages, token, ids = [], None, []
    while True:
        body: dict[str, Any] = {
            "jql": 'updated >= "2000/01/01 00:00" ORDER BY updated ASC, key ASC',
            "maxResults": 5000,
            "fields": mapper.search_fields(),
        }
        if token:
            body["nextPageToken"] = token
        text = session.post(f"{url}/rest/api/3/search/jql", json=body).text
        page = json.loads(text)
        pages.append(text)
        ids += [i["id"] for i in page["issues"]]
        token = page.get("nextPageToken")
        if page.get("isLast", not token) or not token:
            break
    changelogs = []
    for start in range(0, len(ids), 1000):
        token = None
        while True:
            body = {
                "issueIdsOrKeys": ids[start : start + 1000],
                "fieldIds": ["status"],
                "maxResults": 10000,
            }
            if token:
                body["nextPageToken"] = token
            text = session.post(f"{url}/rest/api/3/changelog/bulkfetch", json=body).text
            changelogs.append(text)
            token = json.loads(text).get("nextPageToken")
            if not token:
                break
    return {"fields": fields, "statuses": statuses, "pages": pages, "changelogs": changelogs}


def fetch_servicenow(session: requests.Session, url: str) -> dict[str, list[str]]:
    """Raw Table API bodies per table (offset paging is fine here: the data is still)."""
    mapper = ServiceNowMapper(MappingOptions(source="snow-bench", base_url=url))
    wanted = {table: mapper.fields_for(process) for process, table in DEFAULT_TABLES.items()}
    wanted[APPROVAL_TABLE] = APPROVAL_FIELDS
    wanted[TASK_CI_TABLE] = TASK_CI_FIELDS
    wanted["sys_dictionary"] = ["sys_id", "name", "element", "internal_type", "max_length"]
    out: dict[str, list[str]] = {}
    for table, fields in wanted.items():
        out[table], offset = [], 0
        while True:
            text = session.get(
                f"{url}/api/now/table/{table}",
                params={
                    "sysparm_fields": ",".join(fields),
                    "sysparm_limit": 1000,
                    "sysparm_offset": offset,
                    "sysparm_exclude_reference_link": "true",
                    "sysparm_no_count": "true",
                },
            ).text
            rows = json.loads(text)["result"]
            if not rows:
                break
            out[table].append(text)
            offset += len(rows)
    return out


def parse_all(jira: dict[str, Any], snow: dict[str, list[str]]) -> dict[str, Any]:
    """``json.loads`` of every body: the floor any mapper pays."""
    return {
        "fields": json.loads(jira["fields"]),
        "statuses": json.loads(jira["statuses"]),
        "issues": [issue for text in jira["pages"] for issue in json.loads(text)["issues"]],
        "changelogs": [json.loads(text) for text in jira["changelogs"]],
        "snow": {
            table: [row for text in texts for row in json.loads(text)["result"]]
            for table, texts in snow.items()
        },
    }


def record_count(parsed: dict[str, Any]) -> int:
    related = (APPROVAL_TABLE, TASK_CI_TABLE, "sys_dictionary")
    return len(parsed["issues"]) + sum(
        len(rows) for t, rows in parsed["snow"].items() if t not in related
    )


def map_and_evaluate(
    parsed: dict[str, Any], engine: Engine, as_of: datetime, column_types: bool = True
) -> tuple[int, int, dict[str, float]]:
    """What a sync does with parsed pages: map them, then evaluate the whole pack.
    Returns (records, findings, seconds per part)."""
    start = time.perf_counter()
    catalog = JiraFieldCatalog.from_field_list(parsed["fields"])
    jmapper = JiraMapper(
        MappingOptions(source="jira-bench", base_url="http://jira"),
        catalog,
        statuses=parsed["statuses"],
    )
    changelogs: dict[str, list[dict[str, Any]]] = {}
    for page in parsed["changelogs"]:
        for entry in page.get("issueChangeLogs", []):
            changelogs.setdefault(entry["issueId"], []).extend(entry.get("changeHistories", []))
    records, _ = jmapper.map_issues(parsed["issues"], changelogs=changelogs)
    jira_done = time.perf_counter()

    rows = parsed["snow"]
    types = ColumnTypes.from_rows(rows.get("sys_dictionary", []))[0] if column_types else None
    smapper = ServiceNowMapper(MappingOptions(source="snow-bench", base_url="http://snow"), types)
    ci_rows = rows.get("cmdb_ci", [])
    ci_names = {r["sys_id"]: r.get("name", "") for r in ci_rows if r}
    records += smapper.map_rows("ci", ci_rows)[0]
    approvals, task_ci = rows.get(APPROVAL_TABLE, []), rows.get(TASK_CI_TABLE, [])
    for process, table in DEFAULT_TABLES.items():
        if process != "ci":  # related rows only where the connector reads them
            records += smapper.map_rows(
                process,
                rows.get(table, []),
                approvals=approvals if process in APPROVAL_PROCESSES else None,
                task_ci=task_ci if process in TASK_CI_PROCESSES else None,
                ci_names=ci_names,
            )[0]
    snow_done = time.perf_counter()
    result = engine.evaluate(records, as_of=as_of, ci_sources={"snow-bench"})
    parts = {
        "jira": jira_done - start,
        "servicenow": snow_done - jira_done,
        "evaluate": time.perf_counter() - snow_done,
    }
    return len(records), len(result.findings), parts


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()  # each run starts from the same collector state
    start = time.perf_counter()
    value = func()
    return time.perf_counter() - start, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20_000, help="records across both systems")
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per measurement (the median is reported)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--no-column-types",
        action="store_true",
        help="read ServiceNow columns by their values' shapes (as export files are)",
    )
    args = parser.parse_args(argv)

    print(f"fetching ~{args.size} records from the sandbox (not timed)...", file=sys.stderr)
    with SandboxServer(seed=args.seed, size=args.size, hidden_share=0.0) as server:
        session = requests.Session()
        session.auth = (server.credentials.jira_email, server.credentials.jira_token)
        jira = fetch_jira(session, server.url)
        session.auth = (server.credentials.snow_user, server.credentials.snow_password)
        snow = fetch_servicenow(session, server.url)

    engine = Engine(load_registry().select(["ALL"]))
    as_of = datetime.now(timezone.utc)
    floor_times: list[float] = []
    work_times: list[float] = []
    part_times: dict[str, list[float]] = {}
    parsed: dict[str, Any] = {}
    n_records = n_findings = 0
    for _ in range(max(1, args.repeat)):  # alternate, so that load on the machine hits both
        seconds, parsed = timed(lambda: parse_all(jira, snow))
        floor_times.append(seconds)
        seconds, (n_records, n_findings, parts) = timed(
            lambda parsed=parsed: map_and_evaluate(parsed, engine, as_of, not args.no_column_types)
        )
        work_times.append(seconds)
        for name, value in parts.items():
            part_times.setdefault(name, []).append(value)
    n_parsed = record_count(parsed)

    floor_s, work_s = statistics.median(floor_times), statistics.median(work_times)
    floor_rate, work_rate = n_parsed / floor_s, n_records / work_s
    full_rate = n_records / (floor_s + work_s)
    print(
        f"records:                        {n_records:,} ({n_findings:,} findings, {len(engine.rules)} rules)"
        f"; median of {len(work_times)} runs (best in brackets)"
    )
    print(
        f"json.loads alone (the floor):   {floor_rate:>10,.0f} records/s  {floor_s * 1000:>8,.0f} ms"
        f"  ({n_parsed / min(floor_times):,.0f}/s)"
    )
    print(
        f"map + evaluate the whole pack:  {work_rate:>10,.0f} records/s  {work_s * 1000:>8,.0f} ms"
        f"  ({n_records / min(work_times):,.0f}/s)"
    )
    for name, values in part_times.items():
        print(f"  {name + ':':<29} {statistics.median(values) * 1000:>29,.0f} ms")
    print(f"both (a sync's CPU per record): {full_rate:>10,.0f} records/s")
    print(f"map + evaluate / json.loads:    {work_s / floor_s:>10.2f} x")
    verdict = "met" if work_rate >= TARGET else "NOT met"
    print(f"target {TARGET:,} records/s for map + evaluate on one core (median): {verdict}")
    return 0 if work_rate >= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
