"""The payload sets of the mapping golden test, and how each one is mapped.

Every example export, every Jira / ServiceNow fixture payload and a captured slice of
the sandbox (the shapes ``bench/evaluate.py`` measures) is mapped with default options
and with overrides (field renames, negation, a review field, status and priority maps).
The records (``model_dump(mode="json")``, ``raw`` replaced by a digest) and the mapping
reports form the golden in ``golden/records.json.gz``, written BEFORE the speed work on
the mappers so that any change of result shows up as a diff.

Regenerate only when a mapping change is intended:
``.venv/bin/python -m tests.mapping.golden_sets --write``; refresh the sandbox capture
(rarely) with ``--capture``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ticketlint.mapping.common import MappingOptions, MappingReport
from ticketlint.mapping.jira import JiraFieldCatalog, JiraMapper, load_search_export
from ticketlint.mapping.model import BaseRecord
from ticketlint.mapping.servicenow import (
    APPROVAL_TABLE,
    DEFAULT_TABLES,
    TASK_CI_TABLE,
    ServiceNowMapper,
    load_table_export,
)

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent / "golden"
GOLDEN = HERE / "records.json.gz"
SANDBOX = HERE / "sandbox.json.gz"
FIX = ROOT / "tests" / "fixtures"

Result = tuple[list[BaseRecord], MappingReport]

JIRA_OVERRIDES: dict[str, Any] = {
    "fields": {
        "change.backout_plan": "Implementation plan",
        "incident.sla_breached": "!Major incident",
        "incident.review": "Resolution notes",
        "change.test_plan": "No such field",
        "problem.workaround": "customfield_10100",
        "incident.nonsense": "Summary",
        "incident.category": "Team",
        "change.cab_date": "Planned start",
        "problem.known_error": "!Workaround",
    },
    "status_map": {
        "incident": {"Awaiting vendor": "on_hold"},
        "change": {"Review": "closed", "X": "bogus"},
    },
    "priority_map": {"P1": 1, "P3": 3},
    "issue_types": {"release": ["Release"], "review": ["Post-incident review", "PIR"]},
}
SNOW_OVERRIDES: dict[str, Any] = {
    "fields": {
        "change.review": "u_pir_done",
        "incident.sla_breached": "!made_sla",
        "incident.category": "subcategory",
        "change.backout_plan": "u_rollback",
        "problem.known_error": "!known_error",
        "incident.state": "incident_state",
        "change.key": "sys_id",
        "incident.title": "description",
    },
    "status_map": {"incident": {"9": "closed", "3": "bogus"}, "change": {"-6": "new"}},
}


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _jira(
    raw_issues: Any,
    catalog: JiraFieldCatalog,
    *,
    statuses: Any = None,
    deployment: str = "Cloud",
    changelogs: Any = None,
    approvals: Any = None,
    **options: Any,
) -> Callable[[], Result]:
    def run() -> Result:
        m = JiraMapper(
            MappingOptions(source="jira-gold", base_url="https://acme.atlassian.net/", **options),
            catalog,
            statuses=statuses,
            deployment=deployment,
        )
        return m.map_issues(raw_issues, changelogs=changelogs, approvals=approvals)

    return run


def _snow(tables: dict[str, list[dict]], **options: Any) -> Callable[[], Result]:
    def run() -> Result:
        m = ServiceNowMapper(
            MappingOptions(source="snow-gold", base_url="https://acme.service-now.com", **options)
        )
        report = MappingReport()
        records: list[BaseRecord] = []
        cis, r = m.map_rows("ci", tables.get(m.table("ci"), []))
        report.merge(r)
        records += cis
        names = {c.native_id: c.key for c in cis if c.native_id}
        approvals, task_ci = tables.get(APPROVAL_TABLE), tables.get(TASK_CI_TABLE)
        for process in ("change", "incident", "problem", "service_request"):
            mapped, r = m.map_rows(
                process,
                tables.get(m.table(process), []),
                approvals=approvals,
                task_ci=task_ci,
                ci_names=names,
            )
            report.merge(r)
            records += mapped
        return records, report

    return run


def _changelogs(pages: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for page in pages:
        for entry in page.get("issueChangeLogs", []):
            out.setdefault(entry["issueId"], []).extend(entry.get("changeHistories", []))
    return out


def payload_sets() -> dict[str, Callable[[], Result]]:
    """name -> a function mapping that payload set (fresh mappers each call)."""
    sets: dict[str, Callable[[], Result]] = {}
    ex = ROOT / "examples" / "jira"
    issues, names, schema = load_search_export(_load(ex / "search.json"))
    catalog = JiraFieldCatalog.from_field_list(_load(ex / "field.json"))
    changelogs = _changelogs([_load(ex / "changelog.json")])
    statuses = _load(ex / "status.json")
    sets["jira/examples"] = _jira(issues, catalog, statuses=statuses, changelogs=changelogs)
    sets["jira/examples-embedded-history"] = _jira(issues, catalog, statuses=statuses)
    sets["jira/examples-names-only"] = _jira(
        issues, JiraFieldCatalog.from_names(names, schema), changelogs=changelogs
    )
    sets["jira/examples-overrides"] = _jira(
        issues, catalog, statuses=statuses, changelogs=changelogs, **JIRA_OVERRIDES
    )
    sets["jira/examples-as-datacenter"] = _jira(
        issues, catalog, statuses=statuses, deployment="Data Center", changelogs=changelogs
    )
    for name in ("datacenter_search", "malformed_search"):
        issues, names, schema = load_search_export(_load(FIX / "jira" / f"{name}.json"))
        deployment = "Data Center" if name.startswith("datacenter") else "Cloud"
        catalog = JiraFieldCatalog.from_names(names, schema)
        sets[f"jira/{name}"] = _jira([*issues, "not an issue", {}], catalog, deployment=deployment)
        sets[f"jira/{name}-overrides"] = _jira(
            issues, catalog, deployment=deployment, **JIRA_OVERRIDES
        )
    api = FIX / "jira_api"
    one = _load(api / "issue_change_cloud.json")
    api_catalog = JiraFieldCatalog.from_field_list(_load(api / "field.json"))
    sets["jira/api-issue"] = _jira(
        [one],
        api_catalog,
        statuses=_load(api / "status.json"),
        approvals={one["key"]: _load(api / "approval.json")["values"]},
    )
    sets["jira/api-issue-overrides"] = _jira(
        [one], api_catalog, statuses=_load(api / "status.json"), **JIRA_OVERRIDES
    )

    snow_ex = ROOT / "examples" / "servicenow"
    ex_tables = {p.stem: load_table_export(_load(p)) for p in snow_ex.glob("*.json")}
    sets["servicenow/examples"] = _snow(ex_tables)
    sets["servicenow/examples-overrides"] = _snow(ex_tables, **SNOW_OVERRIDES)
    api_tables = {
        p.stem: load_table_export(_load(p))
        for p in (FIX / "servicenow_api").glob("*.json")
        if p.stem in (*DEFAULT_TABLES.values(), APPROVAL_TABLE, TASK_CI_TABLE)
    }
    sets["servicenow/api"] = _snow(api_tables)
    sets["servicenow/api-overrides"] = _snow(api_tables, **SNOW_OVERRIDES)
    fx = FIX / "servicenow"
    sets["servicenow/fixture-records"] = _snow(
        {
            "incident": [_load(fx / "incident_record.json")],
            "change_request": [_load(fx / "change_request_record.json"), {}, "not a row"],
            APPROVAL_TABLE: load_table_export(_load(fx / "sysapproval_approver.json")),
        }
    )

    sandbox = json.loads(gzip.decompress(SANDBOX.read_bytes()))
    sj = sandbox["jira"]
    sb_catalog = JiraFieldCatalog.from_field_list(sj["fields"])
    sb_changelogs = _changelogs(sj["changelogs"])
    sets["jira/sandbox"] = _jira(
        sj["issues"], sb_catalog, statuses=sj["statuses"], changelogs=sb_changelogs
    )
    sets["jira/sandbox-overrides"] = _jira(
        sj["issues"],
        sb_catalog,
        statuses=sj["statuses"],
        changelogs=sb_changelogs,
        **JIRA_OVERRIDES,
    )
    sets["servicenow/sandbox"] = _snow(sandbox["servicenow"])
    sets["servicenow/sandbox-overrides"] = _snow(sandbox["servicenow"], **SNOW_OVERRIDES)
    return sets


def _digest(raw: Any) -> str:
    return hashlib.sha1(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()


def dump(result: Result) -> dict[str, Any]:
    """Records and report as plain JSON; ``raw`` (kept by reference) as a digest."""
    records, report = result
    out = []
    for rec in records:
        data = rec.model_dump(mode="json", exclude={"raw"})
        data["__class__"] = type(rec).__name__
        data["raw"] = _digest(rec.raw)
        out.append(data)
    return {"records": out, "report": report.to_dict()}


def produce() -> dict[str, Any]:
    return {name: dump(run()) for name, run in payload_sets().items()}


def _capture(size: int = 800) -> None:
    """Capture raw sandbox pages (the bench's shapes) as a fixed test input."""
    import requests

    sys.path.insert(0, str(ROOT / "bench"))
    from evaluate import fetch_jira, fetch_servicenow  # type: ignore[import-not-found]

    from ticketlint.sandbox.server import SandboxServer

    with SandboxServer(seed=11, size=size, hidden_share=0.0) as server:
        session = requests.Session()
        session.auth = (server.credentials.jira_email, server.credentials.jira_token)
        jira = fetch_jira(session, server.url)
        session.auth = (server.credentials.snow_user, server.credentials.snow_password)
        snow = fetch_servicenow(session, server.url)
    data = {
        "jira": {
            "fields": json.loads(jira["fields"]),
            "statuses": json.loads(jira["statuses"]),
            "issues": [i for t in jira["pages"] for i in json.loads(t)["issues"]],
            "changelogs": [json.loads(t) for t in jira["changelogs"]],
        },
        "servicenow": {t: [r for x in v for r in json.loads(x)["result"]] for t, v in snow.items()},
    }
    SANDBOX.write_bytes(
        gzip.compress(json.dumps(data, sort_keys=True, separators=(",", ":")).encode(), 9, mtime=0)
    )


if __name__ == "__main__":
    if "--capture" in sys.argv:
        _capture()
    if "--write" in sys.argv:
        GOLDEN.write_bytes(
            gzip.compress(json.dumps(produce(), sort_keys=True, indent=0).encode(), 9, mtime=0)
        )
