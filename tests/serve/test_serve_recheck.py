"""The single-ticket re-check: re-read, evaluate, store and diff only that ticket's
findings; stale reads, confirmed deletions, cross-record context and the optional
write-back / chat hooks. A fake connector stands in for the source."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ticketlint.config import Config, parse_config
from ticketlint.connectors.base import StreamBatch
from ticketlint.mapping.common import MappingReport
from ticketlint.mapping.model import BaseRecord, CIRecord, IncidentRecord
from ticketlint.plugin.serve.coalesce import TicketRef
from ticketlint.plugin.serve.recheck import Rechecker
from ticketlint.rules.engine import Engine
from ticketlint.rules.outcome import NOT_APPLICABLE, PASS, Outcome, Status, fail
from ticketlint.rules.registry import rule
from ticketlint.store import repository as repo
from ticketlint.store.db import Store, open_store
from ticketlint.store.lifecycle import RECORD_GONE
from ticketlint.store.models import FindingEventRow, FindingRow, RecordRow

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(days=1)


@rule(
    code="TSV001",
    name="incident-notes",
    title="Resolved incidents say how",
    severity="high",
    clause="8.6.1",
    applies_to=["incident"],
)
def incident_notes(record: IncidentRecord, ctx: Any) -> Any:
    """**Why**

    Test rule.

    **Fails when**

    x

    **Passes when**

    x

    **Remediation**

    Write them.
    """
    if record.state not in ("resolved", "closed"):
        return NOT_APPLICABLE
    return PASS if (record.resolution_notes or "").strip() else fail("no resolution notes")


@rule(
    code="TSV002",
    name="known-ci",
    title="Incidents name known CIs",
    severity="low",
    clause="8.7.1",
    applies_to=["incident"],
)
def known_ci(record: IncidentRecord, ctx: Any) -> Any:
    """**Why**

    Test rule.

    **Fails when**

    x

    **Passes when**

    x

    **Remediation**

    Fix it.
    """
    refs = record.ci_refs or []
    if not refs:
        return NOT_APPLICABLE
    if not ctx.index.syncs_cis(record.source):
        return Outcome(Status.NOT_EVALUATED, reason="no CIs")
    unknown = [r for r in refs if not ctx.index.ci_known(record.source, r)]
    return fail(f"unknown CIs {unknown}") if unknown else PASS


@rule(
    code="TSV003",
    name="ci-count",
    title="Aggregate over CIs",
    severity="medium",
    clause="8.6.3",
    applies_to=["incident"],
    kind="aggregate",
)
def ci_count(index: Any, ctx: Any) -> Any:
    """**Why**

    Test rule.

    **Fails when**

    x

    **Passes when**

    x

    **Remediation**

    Fix it.
    """
    for source, by_ci in index.incidents_by_ci.items():
        for ci, facts in by_ci.items():
            yield Outcome(
                Status.FAIL,
                message=f"{len(facts)} incidents",
                evidence={"source": source},
                subject=ci,
                subject_process="ci",
            )


def incident(
    key: str, *, notes: str = "", minutes: int = 0, ci: Sequence[str] = ()
) -> IncidentRecord:
    return IncidentRecord(
        source="snow-prod",
        system="servicenow",
        key=key,
        native_id=f"{key.lower():0>32}"[-32:],
        state="resolved",
        resolution_notes=notes,
        ci_refs=list(ci),
        created_at=T0,
        updated_at=T0 + timedelta(minutes=minutes),
        raw={"number": key},
    )


def ci(key: str) -> CIRecord:
    return CIRecord(
        source="snow-prod",
        system="servicenow",
        key=key,
        native_id=f"ci{key}",
        updated_at=T0,
        raw={"name": key},
    )


class FakeSnow:
    """Serves one table; ``query="sys_id=..."`` picks a record by native id."""

    def __init__(self, records: list[BaseRecord]) -> None:
        self.name = "snow-prod"
        self.streams = ["ci", "incident"]
        self.records = records
        self.request_count = 0
        self.queries: list[tuple[str, str | None]] = []
        self.ci_names: dict[str, str] = {}
        self.closed = False

    def table(self, process: str) -> str:
        return {"incident": "incident", "ci": "cmdb_ci"}[process]

    def read(
        self,
        stream: str,
        *,
        since: Any = None,
        query: str | None = None,
        keys: Sequence[str] | None = None,
    ) -> Iterator[StreamBatch]:
        self.queries.append((stream, query))
        sys_id = (query or "").removeprefix("sys_id=")
        found = [r for r in self.records if r.process == stream and r.native_id == sys_id]
        yield StreamBatch(stream, found, MappingReport(rows=len(found), mapped=len(found)), None, 1)

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return parse_config(f"""
database: "sqlite:///{tmp_path / "db.sqlite"}"
sources:
  - name: snow-prod
    type: servicenow
    url: https://example.service-now.com
    auth: {{user: u, password: p}}
""")


@pytest.fixture
def store(cfg: Config) -> Iterator[Store]:
    s = open_store(cfg.database)
    yield s
    s.dispose()


def seed(store: Store, engine: Engine, records: list[BaseRecord]) -> None:
    """What a nightly sync leaves behind: the records and their findings, open."""
    from ticketlint.store import lifecycle

    evaluation = engine.evaluate(records, as_of=T0 + timedelta(hours=1))
    with store.session() as s, s.begin():
        repo.upsert_records(s, records, T0)
        rows = repo.findings_of_source(s, "snow-prod")
        diff = lifecycle.diff(repo.stored_view(rows), evaluation.findings, waivers=[], as_of=T0)
        repo.apply_diff(s, rows, diff, run_id=None, now=T0)


def states(store: Store) -> dict[tuple[str, str], str]:
    with store.session() as s:
        return {(r.rule, r.key): r.state for r in s.scalars(select(FindingRow))}


def make(cfg: Config, store: Store, source_records: list[BaseRecord]) -> tuple[Rechecker, FakeSnow]:
    fake = FakeSnow(source_records)
    engine = Engine([incident_notes, known_ci, ci_count])
    return Rechecker(
        cfg, store, engine=engine, connector_factory=lambda _cfg: fake, clock=lambda: NOW
    ), fake


def ref(record: BaseRecord, **kw: Any) -> TicketRef:
    return TicketRef("snow-prod", record.native_id or "", table="incident", **kw)


def test_a_fixed_ticket_resolves_and_nothing_else_moves(cfg: Config, store: Store) -> None:
    stored = [incident("INC1", ci=["web-01"]), incident("INC2"), ci("web-01")]
    engine = Engine([incident_notes, known_ci, ci_count])
    seed(store, engine, stored)
    assert states(store) == {
        ("TSV001", "INC1"): "open",
        ("TSV001", "INC2"): "open",
        ("TSV003", "web-01"): "open",
    }
    fixed = incident("INC1", notes="Restarted.", minutes=5, ci=["web-01"])
    rechecker, fake = make(cfg, store, [fixed, incident("INC2", notes="also fixed", minutes=5)])
    result = rechecker.recheck(ref(fixed))
    assert result.outcome == "updated" and dict(result.counts()) == {"resolved": 1}
    assert fake.queries == [("incident", f"sys_id={fixed.native_id}")]
    # INC2 was not re-checked; the aggregate finding on the CI belongs to the nightly sync.
    assert states(store) == {
        ("TSV001", "INC1"): "resolved",
        ("TSV001", "INC2"): "open",
        ("TSV003", "web-01"): "open",
    }
    with store.session() as s:
        row = repo.get_record(s, "snow-prod", "INC1")
        assert row is not None and row.data["resolution_notes"] == "Restarted."
        events = list(s.scalars(select(FindingEventRow.kind).order_by(FindingEventRow.id)))
    assert events[-1] == "resolved"
    # The stored CI names were handed to the connector (ServiceNow resolves CI sys_ids with them).
    assert fake.ci_names == {"ciweb-01": "web-01"}


def test_cross_record_rules_see_the_stored_cis(cfg: Config, store: Store) -> None:
    engine = Engine([incident_notes, known_ci])
    seed(store, engine, [incident("INC1", notes="ok", ci=["web-01"]), ci("web-01")])
    assert states(store) == {}
    # The ticket now names a CI the store does not know: a new low finding, nothing immediate.
    changed = incident("INC1", notes="ok", minutes=3, ci=["web-01", "db-09"])
    rechecker, _ = make(cfg, store, [changed])
    result = rechecker.recheck(ref(changed))
    assert [(c.kind, c.finding.code) for c in result.diff.changes if c.finding] == [
        ("new", "TSV002")
    ]
    assert (
        "db-09" in result.diff.changes[0].finding.message
        and "web-01" not in result.diff.changes[0].finding.message
    )
    assert result.immediate == []


def test_newly_failing_high_findings_are_posted_and_written_back(
    cfg: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, Any]] = []
    writeback = types.ModuleType("ticketlint.plugin.writeback")
    writeback.write_for_keys = lambda st, c, source, keys, **kw: calls.append(
        ("writeback", (source, keys))
    )  # type: ignore[attr-defined]
    notify = types.ModuleType("ticketlint.notify")
    notify.post_immediate = lambda st, c, findings, **kw: (
        calls.append(  # type: ignore[attr-defined]
            ("notify", ([f.code for f in findings], kw))
        )
        or 1
    )
    monkeypatch.setitem(sys.modules, "ticketlint.plugin.writeback", writeback)
    monkeypatch.setitem(sys.modules, "ticketlint.notify", notify)
    cfg = cfg.model_copy(
        update={
            "writeback": cfg.writeback.model_copy(update={"enabled": True}),
            "notify": [
                parse_config('notify: [{name: ops, type: slack, url: "https://h"}]').notify[0]
            ],
        }
    )
    engine = Engine([incident_notes])
    seed(store, engine, [incident("INC1", notes="was fine")])
    broken = incident("INC1", notes="", minutes=1)
    rechecker, _ = make(cfg, store, [broken])
    result = rechecker.recheck(ref(broken))
    assert [c.kind for c in result.diff.changes] == ["new"]
    assert calls == [
        ("writeback", ("snow-prod", ["INC1"])),
        ("notify", (["TSV001"], {"source": "snow-prod", "key": "INC1"})),
    ]
    # A second re-check of the same version: still open, nothing posted again.
    calls.clear()
    assert rechecker.recheck(ref(broken)).outcome == "unchanged"
    assert calls == []


def test_missing_optional_modules_and_failing_hooks_never_undo_the_commit(
    cfg: Config, store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    broken_module = types.ModuleType("ticketlint.plugin.writeback")

    def explode(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("Jira said 403")

    broken_module.write_for_keys = explode  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ticketlint.plugin.writeback", broken_module)
    monkeypatch.setitem(
        sys.modules, "ticketlint.notify", types.ModuleType("ticketlint.notify")
    )  # no post_immediate
    cfg = cfg.model_copy(
        update={
            "writeback": cfg.writeback.model_copy(update={"enabled": True}),
            "notify": [
                parse_config('notify: [{name: ops, type: slack, url: "https://h"}]').notify[0]
            ],
        }
    )
    seed(store, Engine([incident_notes]), [incident("INC1")])
    fixed = incident("INC1", notes="done", minutes=2)
    rechecker, _ = make(cfg, store, [fixed])
    assert rechecker.recheck(ref(fixed)).outcome == "updated"
    assert states(store)[("TSV001", "INC1")] == "resolved"
    assert rechecker.hook_errors == {"ticketlint.plugin.writeback": 1}
    broken = incident("INC1", notes="", minutes=3)
    rechecker2, _ = make(cfg, store, [broken])
    rechecker2.recheck(ref(broken))
    assert "ticketlint.notify.post_immediate is not available" in caplog.text


def test_an_older_read_than_the_stored_version_is_not_written_and_retried(
    cfg: Config, store: Store
) -> None:
    seed(store, Engine([incident_notes]), [incident("INC1", notes="", minutes=10)])
    lagging = incident("INC1", notes="old text", minutes=5)
    rechecker, _ = make(cfg, store, [lagging])
    result = rechecker.recheck(ref(lagging))
    assert result.outcome == "stale" and result.retry_after is not None
    assert states(store)[("TSV001", "INC1")] == "open"
    with store.session() as s:
        assert repo.get_record(s, "snow-prod", "INC1").data["resolution_notes"] == ""  # type: ignore[union-attr]


def test_an_event_newer_than_the_read_asks_for_a_retry(cfg: Config, store: Store) -> None:
    seed(store, Engine([incident_notes]), [incident("INC1")])
    same = incident("INC1", minutes=1)
    rechecker, _ = make(cfg, store, [same])
    result = rechecker(ref(same, hint_updated=T0 + timedelta(minutes=9)))
    assert result is not None and result > 0


def test_not_found_changes_nothing_unless_the_source_confirms_a_deletion(
    cfg: Config, store: Store
) -> None:
    gone = incident("INC1")
    seed(store, Engine([incident_notes]), [gone])
    rechecker, _ = make(cfg, store, [])
    assert rechecker.recheck(ref(gone)).outcome == "not_found"
    assert states(store)[("TSV001", "INC1")] == "open"
    result = rechecker.recheck(ref(gone, deleted=True))
    assert result.outcome == "deleted"
    with store.session() as s:
        row = s.scalar(select(FindingRow))
        # gone, not resolved: nobody fixed it, the record left the source
        assert row is not None and (row.state, row.resolution) == ("gone", RECORD_GONE)
        assert s.scalar(select(RecordRow.deleted).where(RecordRow.key == "INC1")) is True


def test_an_unknown_table_is_ignored(cfg: Config, store: Store) -> None:
    rechecker, fake = make(cfg, store, [])
    assert (
        rechecker.recheck(TicketRef("snow-prod", "a" * 32, table="sys_user")).outcome == "not_found"
    )
    assert fake.queries == []
