"""``ticketlint doctor`` for a Jira source: reachability, deployment, auth, the API user's
time zone, the mapped fields and statuses, and the rules they leave unevaluated."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ticketlint.connectors.base import DoctorCheck, DoctorReport, SourceError
from ticketlint.connectors.jira.site import APPROVALS_CUSTOM_TYPE, time_zone
from ticketlint.mapping.jira import DEFAULT_STATUS_MAP, JiraFieldCatalog, JiraMapper

if TYPE_CHECKING:
    from ticketlint.connectors.jira.connector import JiraConnector

# Canonical field -> (default display names, rule codes that need it). Used by `doctor`
# to say which rules will be NOT_EVALUATED on this instance and why (docs/mapping.md).
FIELD_RULES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "change.change_type": (
        ("Change type",),
        ("CHG001", "CHG002", "CHG004", "CHG005", "CHG006", "CHG009", "CHG011"),
    ),
    "change.risk": (("Change risk",), ("CHG004",)),
    "change.impact": (("Impact",), ("CHG004",)),
    "change.implementation_plan": (("Implementation plan",), ()),
    "change.backout_plan": (("Backout plan",), ("CHG005",)),
    "change.test_plan": (("Test plan",), ("CHG006",)),
    "change.planned_start": (("Planned start",), ("CHG010",)),
    "change.planned_end": (("Planned end",), ("CHG010",)),
    "change.cab_required": ((), ("CHG012",)),
    "change.cab_date": ((), ("CHG012",)),
    "change.ci_refs": (("Affected services", "Affected hardware"), ("CHG009",)),
    "incident.major": (("Major incident",), ("INC004", "PRB005")),
    "incident.sla_breached": (("Time to resolution",), ()),
    "problem.root_cause": (("Root cause",), ("PRB001",)),
    "problem.workaround": (("Workaround",), ("PRB002",)),
    "incident.ci_refs": (("Affected services", "Affected hardware"), ("PRB004",)),
}


def run_doctor(conn: JiraConnector) -> DoctorReport:
    """The doctor report of one Jira connector (module docstring)."""
    report = DoctorReport(source=conn.name)
    try:
        info = conn.library.server_info()
    except SourceError as exc:
        report.checks.append(DoctorCheck("reachable", False, str(exc)))
        return report
    report.checks.append(
        DoctorCheck(
            "reachable",
            True,
            f"{conn.base_url}: {info.get('serverTitle', 'Jira')} {info.get('version', '')}".strip(),
            level="info",
        )
    )
    deployment = str(info.get("deploymentType") or "Server")
    report.info["deployment"] = deployment
    report.checks.append(
        DoctorCheck(
            "deployment",
            True,
            deployment + ("" if deployment == "Cloud" else " (Data Center / Server)"),
            level="info",
        )
    )
    try:
        me = conn.library.myself()
    except SourceError as exc:
        report.checks.append(DoctorCheck("auth", False, str(exc)))
        return report
    who = me.get("displayName") or me.get("emailAddress") or me.get("name") or me.get("accountId")
    report.checks.append(DoctorCheck("auth", True, f"authenticated as {who}", level="info"))
    tz = time_zone(conn.name, me, info)
    report.info["time_zone"] = tz
    report.checks.append(
        DoctorCheck(
            "time zone",
            "timeZone" in me,
            f"API user's time zone {tz} (incremental JQL is written in it)",
            level="info" if "timeZone" in me else "warning",
        )
    )
    try:
        fields = conn.library.fields()
        statuses = conn.http.get_json("/rest/api/2/status")
    except SourceError as exc:
        report.checks.append(DoctorCheck("metadata", False, str(exc)))
        return report
    _fields(conn, report, fields)
    _statuses(conn, report, statuses)
    if conn.cfg.assets is None:
        for code in ("CFG001", "CFG002", "CFG003"):
            report.not_evaluated[code] = "no CI stream: `assets` is not configured for this source"
    report.checks.append(DoctorCheck("streams", True, ", ".join(conn.streams), level="info"))
    return report


def _fields(conn: JiraConnector, report: DoctorReport, fields: list[dict[str, Any]]) -> None:
    by_name: dict[str, dict[str, Any]] = {}
    by_id: dict[str, dict[str, Any]] = {}
    for f in fields:
        if isinstance(f, dict) and f.get("id"):
            by_id[str(f["id"])] = f
            by_name.setdefault(str(f.get("name", "")).strip().casefold(), f)
    found: dict[str, dict[str, str]] = {}
    missing: list[str] = []
    for canonical, (defaults, rules) in FIELD_RULES.items():
        wanted = (
            [conn.cfg.fields[canonical].lstrip("!")]
            if canonical in conn.cfg.fields
            else list(defaults)
        )
        hit = next(
            (
                by_id.get(w) or by_name.get(w.casefold())
                for w in wanted
                if by_id.get(w) or by_name.get(w.casefold())
            ),
            None,
        )
        if hit is not None:
            found[canonical] = {"name": str(hit.get("name")), "id": str(hit["id"])}
            continue
        why = (
            f"field {canonical} is not mapped (no default on Jira; set `fields: {{{canonical}: <name or id>}}`)"
            if not wanted
            else f"no field named {' or '.join(repr(w) for w in wanted)} on this instance ({canonical})"
        )
        if rules:
            missing.append(canonical)
        for code in rules:
            report.not_evaluated.setdefault(code, why)
    approvals = [
        f
        for f in fields
        if isinstance(f, dict) and (f.get("schema") or {}).get("custom") == APPROVALS_CUSTOM_TYPE
    ]
    if approvals:
        found["approvals"] = {
            "name": str(approvals[0].get("name")),
            "id": str(approvals[0]["id"]),
        }
    report.info["fields"] = found
    mapper = JiraMapper(
        conn.cfg.mapping_options(), JiraFieldCatalog.from_field_list(fields), deployment="Cloud"
    )
    problems = mapper.schema_problems()
    report.checks.append(
        DoctorCheck(
            "field types",
            not problems,
            "read by their values instead of their schema: " + "; ".join(problems)
            if problems
            else "mapped fields read by their schema types (/field)",
            level="warning" if problems else "info",
        )
    )
    report.checks.append(
        DoctorCheck(
            "fields",
            not missing,
            f"{len(found)} mapped fields found"
            + (f"; missing: {', '.join(missing)}" if missing else ""),
            level="warning",
        )
    )
    if not approvals:
        report.checks.append(
            DoctorCheck(
                "approvals field",
                False,
                "no JSM Approvals field: approvals are read per request from /rest/servicedeskapi",
                level="info",
            )
        )


def _statuses(conn: JiraConnector, report: DoctorReport, statuses: Any) -> None:
    mapped = {name for table in DEFAULT_STATUS_MAP.values() for name in table}
    for per_process in conn.cfg.status_map.values():
        mapped.update(name.casefold() for name in per_process)
    uncovered = sorted(
        {
            str(s.get("name"))
            for s in statuses or []
            if isinstance(s, dict) and str(s.get("name", "")).casefold() not in mapped
        }
    )
    report.info["unmapped_statuses"] = uncovered
    report.checks.append(
        DoctorCheck(
            "statuses",
            not uncovered,
            (
                "every status is in the status map"
                if not uncovered
                else f"{len(uncovered)} statuses fall back on their category: {', '.join(uncovered)}"
                " (add them to `status_map` if the fallback is wrong)"
            ),
            level="warning",
        )
    )
