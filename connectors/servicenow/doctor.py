"""``ticketlint doctor`` for a ServiceNow source: what this instance lets us read, and what
that leaves unevaluated.

Reachability, auth, readable tables, mapped fields, state values the status map misses,
whether the instance takes the dot-walked bulk queries of :mod:`.related`, and the rules
that cannot be evaluated here (on a sample record per table). One probe row per question.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ticketlint.connectors.base import DoctorCheck, DoctorReport, SourceError
from ticketlint.connectors.servicenow.client import missing_fields, table_params
from ticketlint.connectors.servicenow.query import ORDER_BY_ID
from ticketlint.connectors.servicenow.related import BULK_REFUSED, RELATED, SILENT_EMPTY
from ticketlint.connectors.servicenow.stream import TableStream
from ticketlint.mapping.common import MappingReport
from ticketlint.mapping.model import BaseRecord
from ticketlint.mapping.servicenow import APPROVAL_TABLE, TASK_CI_TABLE

if TYPE_CHECKING:
    from ticketlint.connectors.servicenow.connector import ServiceNowConnector

Rows = list[dict[str, Any]]
NEWEST_FIRST = "ORDERBYDESCsys_updated_on"


def run_doctor(conn: ServiceNowConnector) -> DoctorReport:
    """The doctor report of one connector (module docstring)."""
    api = conn.api
    rep = DoctorReport(
        source=conn.name,
        info={
            "url": conn.base_url,
            "auth": "oauth" if api.oauth else "basic",
            "page_size": conn.page_size,
            "tables": {p: s.table for p, s in conn.table_streams.items()},
        },
    )
    samples: dict[str, Rows] = {}
    unreadable: dict[str, str] = {}
    connected = False
    for process, stream in conn.table_streams.items():
        table, fields = stream.table, list(stream.fields)
        try:
            rows = api.get_result(table, table_params(fields, NEWEST_FIRST, 1))
        except SourceError as exc:
            if exc.status is None or exc.status == 401:
                name = "reachable" if exc.status is None else "authentication"
                rep.checks.append(DoctorCheck(name, False, str(exc)))
                why = "the source cannot be read" if exc.status is None else "authentication failed"
                rep.not_evaluated.update(_rules(conn, rep, {}, dict.fromkeys(conn.streams, why)))
                return rep
            unreadable[process] = f"table {table} is not readable (HTTP {exc.status})"
            rep.checks.append(DoctorCheck(f"table {table} readable", False, str(exc)))
            continue
        if not connected:
            connected = True
            rep.checks.append(DoctorCheck("reachable", True, conn.base_url, level="info"))
            rep.checks.append(DoctorCheck("authentication", True, rep.info["auth"], level="info"))
        rep.checks.append(DoctorCheck(f"table {table} readable", True, level="info"))
        samples[process] = [r for r in rows if isinstance(r, dict) and r.get("sys_id")]
        _fields(rep, table, samples[process], fields)
        _choices(conn, rep, stream)
    if connected:
        _dictionary(conn, rep)
    related: dict[str, Rows] = {}
    for spec in RELATED:
        table, fields = spec.table, list(spec.fields)
        try:
            rows = api.get_result(table, table_params(fields, NEWEST_FIRST, 1))
        except SourceError as exc:
            rep.checks.append(DoctorCheck(f"table {table} readable", False, str(exc)))
            for process in spec.processes:
                unreadable.setdefault(process, f"table {table} is not readable (HTTP {exc.status})")
            continue
        rep.checks.append(DoctorCheck(f"table {table} readable", True, level="info"))
        related[table] = [r for r in rows if isinstance(r, dict) and r.get("sys_id")]
        _fields(rep, table, related[table], fields)
    _related_path(conn, rep, related)
    rep.not_evaluated.update(_rules(conn, rep, samples, unreadable))
    rep.info["requests"] = conn.request_count
    return rep


def _dictionary(conn: ServiceNowConnector, rep: DoctorReport) -> None:
    """Whether sys_dictionary could be read, and mapped columns whose declared type the
    mapper cannot use (they are then read by their values)."""
    read = conn.dictionary()
    if read.types is None:
        rep.checks.append(
            DoctorCheck(
                "column types (sys_dictionary)",
                False,
                f"{read.problem}; column types are guessed from the values",
                level="warning",
            )
        )
        return
    rep.info["column_types"] = len(read.types)
    problems = conn.mapper.type_problems()
    rep.checks.append(
        DoctorCheck(
            "column types (sys_dictionary)",
            not problems,
            "declared types the mapping cannot use (read by their values instead): "
            + "; ".join(str(p) for p in problems)
            if problems
            else f"{len(read.types)} mapped columns read by their declared types",
            level="warning" if problems else "info",
        )
    )


def _related_path(conn: ServiceNowConnector, rep: DoctorReport, readable: dict[str, Rows]) -> None:
    """Whether the instance takes the dot-walked bulk queries (one probe row each)."""
    rel = conn.related_rows
    needed = [s.table for s in RELATED if any(p in s.processes for p in conn.streams)]
    if needed and not any(table in readable for table in needed):
        # Nothing could be probed: never "[ok]" when every related table was refused.
        rep.checks.append(
            DoctorCheck(
                "related rows",
                False,
                f"not checked: no related table is readable ({', '.join(needed)}); "
                "approvals and CI links cannot be read",
                level="warning",
            )
        )
        return
    if rel.bulk_ok:
        for spec in RELATED:
            user = next((p for p in conn.streams if p in spec.processes), None)
            if spec.table not in readable or user is None:
                continue
            query = (
                f"{spec.ref}.sys_class_nameINSTANCEOF{conn.table_streams[user].table}^{ORDER_BY_ID}"
            )
            try:
                rows = conn.api.get_result(
                    spec.table, table_params([*spec.fields, spec.parent_time], query, 1)
                )
            except SourceError as exc:
                if exc.status not in BULK_REFUSED:
                    raise
                rel.use_id_lists(
                    f"the dot-walked query on {spec.table} was refused: HTTP {exc.status}"
                )
                break
            if not rows and not rel.dotwalk_answers(spec):
                rel.use_id_lists(f"the dot-walked query on {spec.table} {SILENT_EMPTY}")
                break
    rep.info["related_path"] = rel.path
    rep.checks.append(
        DoctorCheck(
            "related rows",
            rel.bulk_ok,
            "one dot-walked bulk stream per related table"
            if rel.bulk_ok
            else f"{rel.path}: approvals and CI links are read by id lists per page of "
            "records (more requests); grant query access to task.sys_class_name and "
            "task.sys_updated_on to read them in bulk",
            level="info" if rel.bulk_ok else "warning",
        )
    )


def _fields(rep: DoctorReport, table: str, rows: Rows, fields: Sequence[str]) -> None:
    if not rows:
        rep.checks.append(
            DoctorCheck(
                f"table {table} fields",
                False,
                "no readable row to check the mapped fields against",
                level="warning",
            )
        )
        return
    missing = missing_fields(rows, fields)
    rep.checks.append(
        DoctorCheck(
            f"table {table} fields",
            not missing,
            f"missing (not on the table or not readable): {', '.join(missing)}; map them in "
            f"sources[].fields or grant read access"
            if missing
            else f"{len(fields)} mapped fields present",
        )
    )


def _choices(conn: ServiceNowConnector, rep: DoctorReport, stream: TableStream) -> None:
    """State values the instance defines (sys_choice) that the status map misses."""
    process, table = stream.name, stream.table
    column = conn.cfg.fields.get(f"{process}.state", stream.state_field)
    try:
        rows = conn.api.get_result(
            "sys_choice",
            {
                "sysparm_query": f"nameIN{table},task^element={column}^inactive=false",
                "sysparm_fields": "name,value,label",
                "sysparm_limit": "1000",
                "sysparm_exclude_reference_link": "true",
            },
        )
    except SourceError as exc:
        rep.checks.append(
            DoctorCheck(
                f"table {table} state values",
                False,
                f"cannot read sys_choice: {exc}",
                level="warning",
            )
        )
        return
    own = [r for r in rows if isinstance(r, dict) and r.get("name") == table]
    choices = own or [r for r in rows if isinstance(r, dict)]  # inherited from task
    labels: dict[str, str] = {}
    for r in choices:
        value = str(r.get("value", "")).strip()
        if value:
            labels.setdefault(value, str(r.get("label", "")))
    key = stream.record_key
    probe = [{"sys_id": f"doctor{i}", key: "DOCTOR", column: v} for i, v in enumerate(labels)]
    _, report = conn.mapper.map_rows(process, probe)
    uncovered = sorted({raw for (_, raw) in report.unknown_statuses if raw in labels})
    rep.checks.append(
        DoctorCheck(
            f"table {table} state values",
            not uncovered,
            (
                "not in the status map (records in them are NOT_EVALUATED): "
                + ", ".join(f"{v} ({labels[v]})" for v in uncovered)
                + f"; add them to status_map.{process}"
            )
            if uncovered
            else f"{len(labels)} values, all mapped",
            level="warning",
        )
    )


def _rules(
    conn: ServiceNowConnector,
    rep: DoctorReport,
    samples: dict[str, Rows],
    unreadable: dict[str, str],
) -> dict[str, str]:
    """rule code -> why it cannot be evaluated here: its processes have no table or an
    unreadable one, or it answered NOT_EVALUATED on the sample records (mapped with
    their related rows)."""
    # Imported here: only doctor needs the rules; reading data never does.
    from ticketlint.rules.engine import Engine
    from ticketlint.rules.registry import load_registry

    try:
        rules = load_registry().select()
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure as a check line
        rep.checks.append(
            DoctorCheck("rules", False, f"cannot load the rules: {exc}", level="warning")
        )
        return {}
    out: dict[str, str] = {}
    records: list[BaseRecord] = []
    for process, rows in samples.items():
        if process in unreadable or not rows:
            continue
        ids = [r["sys_id"] for r in rows]
        scratch = MappingReport()
        related: dict[str, Rows | None] = {}
        try:
            for spec in RELATED:
                related[spec.table] = (
                    conn.related_rows.read_by_id(spec, ids, scratch, set())
                    if process in spec.processes
                    else None
                )
        except SourceError:
            related = {}  # already reported by the related-table checks
        mapped, _ = conn.mapper.map_rows(
            process,
            rows,
            approvals=related.get(APPROVAL_TABLE),
            task_ci=related.get(TASK_CI_TABLE),
            ci_names=conn.ci_names,
        )
        records.extend(mapped)
    evaluation = Engine(rules).evaluate(records, as_of=datetime.now(timezone.utc))
    for code, reasons in evaluation.not_evaluated.items():
        out[code] = "; ".join(sorted(reasons)) + " (on a sample record)"
    for r in rules:
        mine = [p for p in r.applies_to if p in conn.streams]
        if not mine:
            out[r.code] = f"ServiceNow has no table for {', '.join(r.applies_to)}"
            continue
        blocked = [unreadable[p] for p in mine if p in unreadable]
        if blocked:
            partly = "" if len(blocked) == len(mine) else " (its other processes are evaluated)"
            out[r.code] = "; ".join(dict.fromkeys(blocked)) + partly
    return out
