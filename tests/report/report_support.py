"""A small, fixed world for the report tests: a rule pack with a clause map, records of
two sources, and a store filled by three real sync runs (July, August, September 2026)
with a fixed clock, so every number and date in the report is the same on every machine.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ticketlint.config import Config, load_config
from ticketlint.connectors.base import DoctorReport, StreamBatch
from ticketlint.mapping.common import MappingReport
from ticketlint.mapping.model import BaseRecord, ChangeRecord, IncidentRecord, Person
from ticketlint.rules.outcome import NOT_APPLICABLE, PASS, Outcome, fail, missing_field
from ticketlint.rules.registry import Pack, RuleContext, rule
from ticketlint.sync.progress import Progress
from ticketlint.sync.runner import SyncOptions, run_sync

_DOC = """Report test rule.

**Why**

The tests need one.

**Fails when**

The field is empty.

**Passes when**

The field holds something.

**Remediation**

Fill in the field.
"""


def _doc(func: Any) -> Any:
    func.__doc__ = _DOC
    return func


@rule(
    code="RPT001",
    name="rpt-backout",
    title="Change without a backout plan",
    severity="high",
    clause="8.5.1.3",
    applies_to=["change"],
)
@_doc
def rpt001(record: Any, ctx: RuleContext) -> Outcome:
    if record.backout_plan is None:
        return missing_field("backout_plan")
    return PASS if record.backout_plan.strip() else fail(f"change {record.key} has no backout plan")


@rule(
    code="RPT002",
    name="rpt-change-type",
    title="Change without a type",
    severity="medium",
    clause="8.5.1.2",
    applies_to=["change"],
)
@_doc
def rpt002(record: Any, ctx: RuleContext) -> Outcome:
    if record.change_type is None:
        return missing_field("change_type")
    return PASS if record.change_type else fail(f"change {record.key} has no type")


@rule(
    code="RPT003",
    name="rpt-resolution-notes",
    title="Resolved incident without notes",
    severity="medium",
    clause="8.6.1",
    applies_to=["incident"],
)
@_doc
def rpt003(record: Any, ctx: RuleContext) -> Outcome:
    if record.state not in ("resolved", "closed"):
        return NOT_APPLICABLE
    return (
        PASS
        if (record.resolution_notes or "").strip()
        else fail(f"incident {record.key} has no notes")
    )


@rule(
    code="RPT004",
    name="rpt-priority",
    title="Incident without a priority",
    severity="low",
    clause="8.6.1",
    applies_to=["incident"],
    params={"allow_empty": False},
)
@_doc
def rpt004(record: Any, ctx: RuleContext) -> Outcome:
    if record.priority is None:
        return missing_field("priority")
    return PASS if record.priority != "" else fail(f"incident {record.key} has no priority")


CLAUSE_MAP = {
    "framework": "ISO/IEC 20000-1:2018 (test map)",
    "clauses": {
        "8.5.1.2": {
            "title": "Recording and classifying requests for change",
            "rules": ["RPT002"],
            "coverage": "automated",
        },
        "8.5.1.3": {
            "title": "Assessing and authorising changes",
            "rules": ["RPT001"],
            "coverage": "automated",
        },
        "8.6.1": {
            "title": "Handling incidents",
            "rules": ["RPT003", "RPT004"],
            "coverage": "partly",
        },
        "9.2": {"title": "Internal audits", "rules": [], "coverage": "manual"},
    },
}
REPORT_PACK = Pack(
    name="reportpack",
    title="report test pack",
    clause_map=CLAUSE_MAP,
    rules=tuple(r.with_pack("reportpack") for r in (rpt001, rpt002, rpt003, rpt004)),
)

T0 = datetime(2026, 6, 20, 9, 0, tzinfo=timezone.utc)
RUN_DAYS = (
    datetime(2026, 7, 5, 6, 0, tzinfo=timezone.utc),
    datetime(2026, 8, 5, 6, 0, tzinfo=timezone.utc),
    datetime(2026, 9, 5, 6, 0, tzinfo=timezone.utc),
)
GROUPS = ("Network", "Service Desk", "Database")


def change(
    key: str,
    n: int,
    *,
    backout: str | None = "plan",
    change_type: str | None = "normal",
    title: str | None = None,
) -> ChangeRecord:
    return ChangeRecord(
        source="jira-prod",
        system="jira",
        key=key,
        url=f"https://jira.example.com/browse/{key}",
        title=title or f"Change {key}",
        state="closed",
        raw_state="Done",
        backout_plan=backout,
        change_type=change_type,
        created_at=T0 + timedelta(days=n),
        updated_at=T0 + timedelta(days=n, hours=1),
        closed_at=T0 + timedelta(days=n + 2),
        assignee=Person(name=f"Person {n % 4}"),
        group=GROUPS[n % 3],
        raw={"key": key},
    )


def incident(key: str, n: int, *, notes: str = "fixed", priority: Any = 3) -> IncidentRecord:
    return IncidentRecord(
        source="snow-prod",
        system="servicenow",
        key=key,
        title=f"Incident {key}",
        state="resolved",
        raw_state="Resolved",
        resolution_notes=notes,
        priority=priority,
        url=f"https://x.service-now.com/incident.do?sys_id={n:04d}",
        created_at=T0 + timedelta(days=n),
        updated_at=T0 + timedelta(days=n, hours=2),
        resolved_at=T0 + timedelta(days=n + 1),
        group=GROUPS[(n + 1) % 3],
        raw={"number": key},
    )


def world(stage: int) -> dict[str, dict[str, list[BaseRecord]]]:
    """The sources' contents before sync run ``stage`` (0, 1, 2): fixes and new breakage."""
    changes = [change(f"CHG-{i}", i * 3) for i in range(1, 31)]
    changes[1] = change("CHG-2", 12, backout="" if stage < 2 else "plan")
    changes[4] = change(
        "CHG-5", 15, backout="", change_type="", title='=HYPERLINK("x") <b>bold</b> & co'
    )
    changes[7] = change("CHG-8", 24, backout=None)
    if stage >= 1:
        changes[9] = change("CHG-10", 30, change_type="")
    incidents = [incident(f"INC{1000 + i}", i * 2) for i in range(1, 21)]
    incidents[2] = incident("INC1003", 6, notes="")
    incidents[5] = incident("INC1006", 12, priority="")
    if stage == 0:
        incidents[8] = incident("INC1009", 18, notes="")
    return {"jira-prod": {"change": changes}, "snow-prod": {"incident": incidents}}


class WorldConnector:
    """The connector protocol over one stage of :func:`world` (one page per stream)."""

    def __init__(self, name: str, stage: int) -> None:
        self.name, self.data = name, world(stage)[name]
        self.streams: Sequence[str] = list(self.data)
        self.request_count = 0

    def read(
        self, stream: str, *, since: datetime | None = None, **_: Any
    ) -> Iterator[StreamBatch]:
        rows = self.data[stream]
        self.request_count += 1
        mark = max(r.updated_at for r in rows)  # type: ignore[type-var]
        yield StreamBatch(
            stream, list(rows), MappingReport(rows=len(rows), mapped=len(rows)), mark, requests=1
        )

    def doctor(self) -> DoctorReport:
        return DoctorReport(self.name)

    def close(self) -> None:
        pass


def write_config(directory: Path) -> Path:
    path = directory / "ticketlint.yaml"
    path.write_text(
        f"""database: "sqlite:///{directory / "store.db"}"
sources:
  - {{name: jira-prod, type: jira, url: "https://jira.example.com", auth: {{pat: x}}}}
  - {{name: snow-prod, type: servicenow, url: "https://x.service-now.com", auth: {{user: u, password: p}}}}
waivers:
  - {{rule: RPT004, key: "INC1006", reason: "priority set by the vendor", owner: ops-lead, expires: 2099-12-31}}
""",
        encoding="utf-8",
    )
    return path


def fill_store(config_path: Path) -> Config:
    """Three full syncs of the fixed world, one per month, with a fixed clock."""
    cfg = load_config(config_path)
    for stage, day in enumerate(RUN_DAYS):
        result = run_sync(
            cfg,
            SyncOptions(full=True, as_of=day, notify=False, writeback=False),
            connector_factory=lambda src, stage=stage: WorldConnector(src.name, stage),
            progress=Progress(io.StringIO()),
            clock=lambda day=day: day + timedelta(minutes=1),
        )
        assert result.exit_code == 0, [s.error for s in result.sources]
    return cfg
