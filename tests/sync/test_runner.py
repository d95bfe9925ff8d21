"""The sync runner with fake connectors: incremental reads, lifecycle, failures, --full, locks."""

from __future__ import annotations

import io
import sys
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select
from sync_fakes import T0, change, engine, incident
from sync_helpers import events, holding_commit, states

from ticketlint.connectors.readahead import READ_SWITCH_INTERVAL
from ticketlint.store import repository as repo
from ticketlint.store.lifecycle import RECORD_GONE
from ticketlint.store.models import RecordRow, RunRow
from ticketlint.sync.lock import SyncLock
from ticketlint.sync.progress import Progress
from ticketlint.sync.runner import SyncOptions, run_sync


def seed(world) -> None:  # type: ignore[no-untyped-def]
    world.put(
        "jira-prod",
        "change",
        change("jira-prod", "CHG-1"),
        change("jira-prod", "CHG-2", backout="roll back", minutes=1),
        change("jira-prod", "CHG-3", minutes=2),
    )
    world.put(
        "snow-prod",
        "incident",
        incident("snow-prod", "INC1"),
        incident("snow-prod", "INC2", notes="rebooted", minutes=1),
    )


def test_first_then_incremental_sync_gives_exact_sets(sync, store, world) -> None:
    seed(world)
    first = sync()
    assert first.exit_code == 0
    assert states(store) == {
        ("TST001", "CHG-1"): "open",
        ("TST001", "CHG-3"): "open",
        ("TST002", "INC1"): "open",
    }
    assert [s.diff.counts()["new"] for s in first.sources] == [2, 1]

    # CHG-1 gets a backout plan, CHG-2 loses it, INC1 is fixed, INC3 is new.
    world.put(
        "jira-prod",
        "change",
        change("jira-prod", "CHG-1", backout="x", minutes=10),
        change("jira-prod", "CHG-2", minutes=11),
    )
    world.put(
        "snow-prod",
        "incident",
        incident("snow-prod", "INC1", notes="ok", minutes=10),
        incident("snow-prod", "INC3", minutes=11),
    )
    second = sync()
    assert second.exit_code == 0
    assert states(store) == {
        ("TST001", "CHG-1"): "resolved",
        ("TST001", "CHG-2"): "open",
        ("TST001", "CHG-3"): "open",
        ("TST002", "INC1"): "resolved",
        ("TST002", "INC3"): "open",
    }
    jira = second.sources[0]
    assert jira.diff.counts() == {"new": 1, "resolved": 1, "open": 1}
    # Incremental: the second read started at the first run's watermark.
    jira_conn = world.connectors[2]
    assert jira_conn.calls == [("change", T0 + timedelta(minutes=2))]
    assert jira.records_read == 3  # CHG-3 again: the bound is inclusive (overlap, like a lookback)
    with store.session() as s:
        assert repo.get_watermarks(s, "jira-prod") == {"change": T0 + timedelta(minutes=11)}

    # CHG-1 breaks again: reopened, counted.
    world.put("jira-prod", "change", change("jira-prod", "CHG-1", minutes=20))
    third = sync()
    assert third.sources[0].diff.counts()["reopened"] == 1
    assert states(store)[("TST001", "CHG-1")] == "open"
    assert [e for e in events(store) if e[1] == "CHG-1"] == [
        ("TST001", "CHG-1", "opened"),
        ("TST001", "CHG-1", "resolved"),
        ("TST001", "CHG-1", "reopened"),
    ]
    with store.session() as s:
        runs = s.scalars(select(RunRow).order_by(RunRow.id)).all()
        assert [r.status for r in runs] == ["ok", "ok", "ok"]
        assert runs[0].sources["jira-prod"]["findings"] == {"new": 2}


def test_time_based_rule_changes_without_any_update(sync, store, world) -> None:
    world.put("snow-prod", "incident", incident("snow-prod", "INC9", state="in_progress", notes=""))
    sync(as_of=T0 + timedelta(days=1))
    assert states(store) == {}
    sync(as_of=T0 + timedelta(days=30))  # nothing read, everything re-evaluated
    assert states(store) == {("TST003", "INC9"): "open"}
    assert world.connectors[-1].calls[0][1] == T0  # read from the watermark


def test_failed_source_keeps_watermark_and_findings_others_commit(sync, store, world) -> None:
    seed(world)
    sync()
    before = states(store)
    with store.session() as s:
        mark = repo.get_watermarks(s, "jira-prod")
    # Jira now fails mid-read after new data; ServiceNow changes commit.
    world.put(
        "jira-prod",
        "change",
        change("jira-prod", "CHG-1", backout="x", minutes=30),
        change("jira-prod", "CHG-4", minutes=31),
        change("jira-prod", "CHG-5", minutes=32),
    )
    world.options["jira-prod"] = {"fail_stream": "change"}
    world.put("snow-prod", "incident", incident("snow-prod", "INC1", notes="done", minutes=5))
    result = sync()
    assert result.exit_code == 2
    assert [s.status for s in result.sources] == ["failed", "ok"]
    assert "HTTP 503" in (result.sources[0].error or "")
    after = states(store)
    assert {k: v for k, v in after.items() if k[0] == "TST001"} == {
        k: v for k, v in before.items() if k[0] == "TST001"
    }
    assert after[("TST002", "INC1")] == "resolved"
    with store.session() as s:
        assert repo.get_watermarks(s, "jira-prod") == mark
        assert s.scalar(select(RunRow.status).order_by(RunRow.id.desc()).limit(1)) == "failed"
    assert "FAILED" in sync.stderr
    # Recovery: the next run re-reads from the old watermark and catches up.
    world.options.clear()
    assert sync().exit_code == 0
    assert states(store)[("TST001", "CHG-1")] == "resolved"
    assert states(store)[("TST001", "CHG-4")] == "open"


def test_connector_that_cannot_open_fails_only_its_source(sync, store, world, monkeypatch) -> None:
    seed(world)
    original = world.factory

    def factory(source_cfg):  # type: ignore[no-untyped-def]
        if source_cfg.name == "jira-prod":
            raise RuntimeError("boom")
        return original(source_cfg)

    monkeypatch.setattr(world, "factory", factory)
    result = sync()
    assert result.exit_code == 2
    assert result.sources[0].error == "RuntimeError: boom"
    assert set(states(store)) == {("TST002", "INC1")}


def test_full_sync_marks_unseen_records_deleted(sync, store, world) -> None:
    seed(world)
    sync()
    world.remove("jira-prod", "change", "CHG-3")
    sync()  # incremental: a deletion is invisible
    assert states(store)[("TST001", "CHG-3")] == "open"
    result = sync(full=True)
    assert result.sources[0].deleted == ["CHG-3"]
    assert world.connectors[-2].calls == [("change", None)]
    assert states(store)[("TST001", "CHG-3")] == "gone"  # not "resolved": nobody fixed it
    assert states(store)[("TST001", "CHG-1")] == "open"
    with store.session() as s:
        row = s.scalar(select(RecordRow).where(RecordRow.key == "CHG-3"))
        assert row is not None and row.deleted
        from ticketlint.store.models import FindingRow

        f = s.scalar(select(FindingRow).where(FindingRow.key == "CHG-3"))
        assert f is not None and f.resolution == RECORD_GONE
    # It comes back: undeleted, the finding reopens.
    world.put("jira-prod", "change", change("jira-prod", "CHG-3", minutes=50))
    sync()
    assert states(store)[("TST001", "CHG-3")] == "open"


def test_dry_run_writes_nothing_but_reports_the_diff(sync, store, world) -> None:
    seed(world)
    result = sync(dry_run=True)
    assert result.run_id is None
    assert [s.diff.counts()["new"] for s in result.sources] == [2, 1]
    assert states(store) == {}
    with store.session() as s:
        assert s.scalar(select(RecordRow.id).limit(1)) is None
        assert s.scalar(select(RunRow.id).limit(1)) is None
        assert repo.get_watermarks(s, "jira-prod") == {}
    sync()
    world.remove("jira-prod", "change", "CHG-1")
    result = sync(dry_run=True, full=True)
    assert result.sources[0].deleted == ["CHG-1"]
    assert [c.resolution for c in result.sources[0].diff.of_kind("gone")] == [RECORD_GONE]
    assert result.sources[0].diff.of_kind("resolved") == []
    assert states(store)[("TST001", "CHG-1")] == "open"


def test_second_concurrent_run_is_refused_by_the_lock(sync, store, world) -> None:
    seed(world)
    with SyncLock(store, ["jira-prod", "snow-prod"]):
        result = sync()
    assert result.busy and "another sync" in result.busy
    assert result.exit_code == 0 and result.sources == []
    assert states(store) == {}
    assert sync().exit_code == 0  # released


def test_source_option_syncs_one_source(sync, store, world) -> None:
    seed(world)
    result = sync(source="snow-prod")
    assert [s.name for s in result.sources] == ["snow-prod"]
    assert set(states(store)) == {("TST002", "INC1")}


def test_progress_and_summary_counts(sync, store, world) -> None:
    seed(world)
    world.options["jira-prod"] = {"bad_rows": 2}
    result = sync()
    rows = [s.summary() for s in result.sources]
    assert (rows[0].read, rows[0].mapped, rows[0].not_checked) == (5, 3, 2)
    assert rows[0].open_by_severity == {"high": 2}
    assert "jira-prod/change: done, 3 records in 2 pages" in sync.stderr


def test_ctrl_c_marks_the_run_interrupted_at_once_and_keeps_finished_sources(
    cfg, store, world
) -> None:  # type: ignore[no-untyped-def]
    """Issue 17 item 9: Ctrl-C in the second source commits the first, rolls back the
    second and marks the run interrupted (not 'running' until the next sync)."""
    seed(world)

    def factory(source_cfg):  # type: ignore[no-untyped-def]
        conn = world.factory(source_cfg)
        if source_cfg.name == "snow-prod":

            def read(*args, **kwargs):  # type: ignore[no-untyped-def]
                raise KeyboardInterrupt
                yield  # pragma: no cover - a generator, like a real read

            conn.read = read
        return conn

    result = run_sync(
        cfg,
        SyncOptions(),
        store=store,
        connector_factory=factory,
        engine_factory=engine,
        progress=Progress(io.StringIO()),
    )
    assert result.interrupted == "snow-prod" and result.pending == ["snow-prod"]
    assert result.exit_code == 130 and [s.name for s in result.sources] == ["jira-prod"]
    with store.session() as s:
        run = s.get(RunRow, result.run_id)
        assert run is not None and run.status == "interrupted" and run.finished_at is not None
        assert set(run.sources) == {"jira-prod"}
        assert repo.get_watermarks(s, "snow-prod") == {}
        assert repo.get_watermarks(s, "jira-prod")
    assert states(store) == {("TST001", "CHG-1"): "open", ("TST001", "CHG-3"): "open"}


def test_sources_are_read_with_the_short_switch_interval_and_it_is_given_back(
    sync, world, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A reader woken by its socket gets the interpreter back soon from the mapper and
    the writer (readahead.READ_SWITCH_INTERVAL), during the read only, also when a source
    fails."""
    seed(world)
    seen: dict[str, float] = {}
    original = world.factory

    def factory(source_cfg):  # type: ignore[no-untyped-def]
        conn = original(source_cfg)
        read = conn.read

        def timed_read(*args, **kwargs):  # type: ignore[no-untyped-def]
            seen[source_cfg.name] = sys.getswitchinterval()
            if source_cfg.name == "snow-prod":
                raise RuntimeError("the instance went away")
            yield from read(*args, **kwargs)

        conn.read = timed_read
        return conn

    monkeypatch.setattr(world, "factory", factory)
    before = sys.getswitchinterval()
    result = sync()
    assert [s.status for s in result.sources] == ["ok", "failed"]
    assert seen == {
        "jira-prod": pytest.approx(READ_SWITCH_INTERVAL, rel=0.05),
        "snow-prod": pytest.approx(READ_SWITCH_INTERVAL, rel=0.05),
    }
    assert sys.getswitchinterval() == before


def _flag_reads(world, monkeypatch, source: str, *, fail: BaseException | None = None):  # type: ignore[no-untyped-def]
    """An event set when ``source``'s connector starts a read (in the reader's thread);
    with ``fail``, making that connector raises it instead."""
    started = threading.Event()
    original = world.factory

    def factory(source_cfg):  # type: ignore[no-untyped-def]
        if source_cfg.name == source and fail is not None:
            started.set()
            raise fail
        conn = original(source_cfg)
        if source_cfg.name == source:
            read = conn.read

            def flagged(*args, **kwargs):  # type: ignore[no-untyped-def]
                started.set()
                yield from read(*args, **kwargs)

            conn.read = flagged
        return conn

    monkeypatch.setattr(world, "factory", factory)
    return started


def test_the_next_source_is_read_while_the_last_one_commits(
    sync, store, world, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The test engine's rules are checked from the store: snow-prod's read starts as
    jira-prod's stored records are checked, without waiting for jira-prod's commit; the
    outcome is that of sources read one after the other."""
    seed(world)
    started = _flag_reads(world, monkeypatch, "snow-prod")
    waited = holding_commit(monkeypatch, "jira-prod", started)
    result = sync()
    assert waited == [True]
    assert [(s.name, s.status, s.records_read) for s in result.sources] == [
        ("jira-prod", "ok", 3),
        ("snow-prod", "ok", 2),
    ]
    assert [s.requests for s in result.sources] == [2, 1]
    assert states(store) == {
        ("TST001", "CHG-1"): "open",
        ("TST001", "CHG-3"): "open",
        ("TST002", "INC1"): "open",
    }
    assert all(conn.closed for conn in world.connectors)


def test_a_next_source_whose_connector_cannot_be_made_fails_alone(
    sync, store, world, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Its connector is made in the reader started ahead: the error is snow-prod's, in its
    own turn, and jira-prod commits."""
    seed(world)
    _flag_reads(world, monkeypatch, "snow-prod", fail=ValueError("no password for snow-prod"))
    result = sync()
    assert [(s.name, s.status, s.error) for s in result.sources] == [
        ("jira-prod", "ok", None),
        ("snow-prod", "failed", "ValueError: no password for snow-prod"),
    ]
    assert "jira-prod: FAILED" not in sync.stderr
    assert "snow-prod: FAILED: ValueError: no password for snow-prod" in sync.stderr
    with store.session() as s:
        assert repo.get_watermarks(s, "jira-prod") and not repo.get_watermarks(s, "snow-prod")


def test_ctrl_c_during_a_commit_stops_the_read_started_ahead(
    cfg, store, world, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C while jira-prod commits: nothing is committed, snow-prod's reader (already
    started) is stopped and joined, its connector closed, the switch interval given back."""
    seed(world)
    world.options["snow-prod"] = {"page_size": 1}
    started = _flag_reads(world, monkeypatch, "snow-prod")
    waited = holding_commit(monkeypatch, "jira-prod", started, then=KeyboardInterrupt())
    before = sys.getswitchinterval()
    result = run_sync(
        cfg,
        SyncOptions(),
        store=store,
        connector_factory=world.factory,
        engine_factory=engine,
        progress=Progress(io.StringIO()),
    )
    assert waited == [True]
    assert result.interrupted == "jira-prod" and result.pending == ["jira-prod", "snow-prod"]
    assert not any(t.name == "ticketlint-read-ahead" for t in threading.enumerate())
    assert [conn.closed for conn in world.connectors] == [True, True]
    assert sys.getswitchinterval() == before
    with store.session() as s:
        assert repo.get_watermarks(s, "jira-prod") == {} == repo.get_watermarks(s, "snow-prod")
