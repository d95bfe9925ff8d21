"""Streaming evaluation: the sync's chunked, store-fed evaluation equals whole-list evaluation.

The dataset mixes every process over two sources with the cross-record cases the index
serves: incidents recurring on a CI with and without a problem link (PRB004), references
to unknown CIs (CFG003), releases whose changes are approved, standard, unapproved or
missing (REL001). The run streams it in chunks of 7 records, and writes its diff 5
findings at a time, so chunk edges fall everywhere.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import random
import re
import signal
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sync_fakes import FakeConnector
from sync_helpers import holding_commit

import ticketlint.store.db as db_mod
import ticketlint.store.repository as store_mod
import ticketlint.sync.runner as runner_mod
from ticketlint.config import Config
from ticketlint.mapping.model import BaseRecord, record_from_dict
from ticketlint.rules.declarative import DeclarativeRule, build_rule
from ticketlint.rules.engine import CISubject, Engine, RecordIndex
from ticketlint.rules.outcome import PASS
from ticketlint.rules.registry import load_registry, rule
from ticketlint.store import repository as repo
from ticketlint.store.db import Store
from ticketlint.store.lifecycle import RECORD_GONE
from ticketlint.store.models import FindingRow
from ticketlint.sync.hooks import RunHooks
from ticketlint.sync.progress import Progress
from ticketlint.sync.runner import SyncOptions, SyncRunner

AS_OF = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.utc)
SOURCES = {"jira-prod": "jira", "snow-prod": "servicenow"}
STREAMS = ("ci", "change", "incident", "problem", "release", "service_request")


def _t(rng: random.Random, days: int = 60) -> str:
    return (AS_OF - timedelta(days=rng.uniform(0.1, days))).isoformat()


def _person(rng: random.Random) -> dict[str, Any] | None:
    return rng.choice([None, {"id": f"u{rng.randint(1, 9)}", "name": f"User {rng.randint(1, 9)}"}])


def dataset(seed: int = 20) -> dict[str, dict[str, list[BaseRecord]]]:
    """About 600 mapped records over two sources, every process, many cross-record cases."""
    rng = random.Random(seed)
    data: dict[str, dict[str, list[BaseRecord]]] = {}
    for source, system in SOURCES.items():
        streams: dict[str, list[dict[str, Any]]] = {s: [] for s in STREAMS}
        base = {"source": source, "system": system}
        cis = [f"{source[:4]}-ci-{i}" for i in range(25)]
        for i, ci in enumerate(cis):
            streams["ci"].append(
                {
                    **base,
                    "process": "ci",
                    "key": ci,
                    "native_id": f"sys{i:04d}{source[:2]}",
                    "title": f"server {i}",
                    "url": f"https://x/{ci}",
                    "status": rng.choice(["installed", "retired", "planned", None]),
                    "owner": _person(rng),
                    "support_group": rng.choice([None, "", "ops"]),
                    "last_verified_at": rng.choice([None, "", _t(rng, 400)]),
                    "ci_class": rng.choice(["server", None]),
                    "updated_at": _t(rng),
                    "raw": {"sys_id": f"sys{i:04d}"},
                }
            )
        for i in range(60):
            key = f"CHG-{i}"
            state = rng.choice(
                ["new", "authorize", "scheduled", "implement", "closed", "cancelled", None]
            )
            approvals = rng.choice(
                [
                    None,
                    [],
                    [
                        {
                            "approver": {"name": "cab"},
                            "decision": rng.choice(["approved", "rejected", "pending"]),
                        }
                    ],
                ]
            )
            streams["change"].append(
                {
                    **base,
                    "process": "change",
                    "key": key,
                    "state": state,
                    "raw_state": "Weird",
                    "change_type": rng.choice(["standard", "normal", "emergency", "", None]),
                    "approvals": approvals,
                    "backout_plan": rng.choice(["", "roll back", None]),
                    "implementation_plan": rng.choice(["", "do it"]),
                    "test_plan": rng.choice(["", "t", None]),
                    "risk": rng.choice(["high", "", None]),
                    "assignee": _person(rng),
                    "ci_refs": rng.choice([[], [rng.choice(cis)], ["ghost-ci"], None]),
                    "created_at": _t(rng),
                    "updated_at": _t(rng),
                    "review": rng.choice(
                        [None, {"completed": False}, {"completed": True, "at": _t(rng)}]
                    ),
                    "raw": {"key": key, "fields": {"summary": "x" * 50}},
                }
            )
        for i in range(240):
            key = f"INC-{i}"
            hot = cis[i % 4]  # four CIs with many incidents: PRB004 fails and passes
            streams["incident"].append(
                {
                    **base,
                    "process": "incident",
                    "key": key,
                    "state": rng.choice(
                        ["new", "in_progress", "resolved", "closed", "cancelled", None]
                    ),
                    "major": rng.choice([True, False, None]),
                    "priority": rng.choice([1, 2, 3, 4, "", None]),
                    "ci_refs": rng.choice(
                        [
                            [hot],
                            [hot, rng.choice(cis)],
                            ["ghost-ci"],
                            [],
                            None,
                            [f"sys{i % 25:04d}{source[:2]}"],
                        ]
                    ),
                    "links": rng.choice(
                        [None, [], [{"kind": "problem", "key": "PRB-1"}] if i % 9 == 0 else []]
                    ),
                    "created_at": rng.choice([_t(rng, 45), "", None]),
                    "updated_at": _t(rng),
                    "resolved_at": rng.choice([_t(rng), "", None]),
                    "assignee": _person(rng),
                    "group": rng.choice([None, "", "desk"]),
                    "resolution_notes": rng.choice(["", "fixed", None]),
                    "resolution_code": rng.choice(["", "solved", None]),
                    "raw": {"number": key, "payload": list(range(20))},
                }
            )
        for i in range(40):
            streams["problem"].append(
                {
                    **base,
                    "process": "problem",
                    "key": f"PRB-{i}",
                    "state": rng.choice(["new", "in_progress", "resolved", "closed", None]),
                    "root_cause": rng.choice(["", "disk", None]),
                    "workaround": rng.choice(["", "reboot"]),
                    "known_error": rng.choice([True, False, None]),
                    "created_at": _t(rng),
                    "updated_at": _t(rng, 200),
                    "raw": {},
                }
            )
        for i in range(30):
            links = [
                {"kind": "change", "key": f"CHG-{rng.randint(0, 70)}"}
                for _ in range(rng.randint(0, 3))
            ]
            streams["release"].append(
                {
                    **base,
                    "process": "release",
                    "key": f"REL-{i}",
                    "state": rng.choice(
                        ["new", "in_progress", "resolved", "closed", "cancelled", None]
                    ),
                    "links": rng.choice([None, links, links]),
                    "updated_at": _t(rng),
                    "raw": {},
                }
            )
        for i in range(50):
            streams["service_request"].append(
                {
                    **base,
                    "process": "service_request",
                    "key": f"REQ-{i}",
                    "state": rng.choice(["new", "in_progress", "resolved", "closed", None]),
                    "approval_required": rng.choice([True, False, None]),
                    "approvals": rng.choice(
                        [None, [], [{"approver": {"name": "boss"}, "decision": "approved"}]]
                    ),
                    "resolution_notes": rng.choice(["", "done", None]),
                    "updated_at": _t(rng),
                    "raw": {},
                }
            )
        data[source] = {s: [record_from_dict(d) for d in rows] for s, rows in streams.items()}
    return data


def states(store: Store) -> dict[tuple[str, str, str], str]:
    """(source, rule, key) -> state (the sources share keys)."""
    with store.session() as s:
        return {(r.source, r.rule, r.key): r.state for r in s.scalars(select(FindingRow))}


def iso_engine(cfg: Any = None) -> Engine:
    return Engine(load_registry().select(["ALL"], []))


class Streams:
    """Fake connectors over the dataset, one stream per process."""

    def __init__(self, data: dict[str, dict[str, list[BaseRecord]]]) -> None:
        self.data = data

    def factory(self, source_cfg: Any) -> FakeConnector:
        return FakeConnector(
            source_cfg.name,
            {k: list(v) for k, v in self.data[source_cfg.name].items()},
            page_size=50,
        )


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_mod, "EVAL_CHUNK", 7)
    monkeypatch.setattr(store_mod, "FINDING_CHUNK", 5)


def _runner(
    cfg: Config,
    store: Store,
    data: Any,
    engine: Any = iso_engine,
    hooks: RunHooks | None = None,
    **options: Any,
) -> SyncRunner:
    return SyncRunner(
        cfg,
        SyncOptions(**{"as_of": AS_OF, "notify": False, "writeback": False, **options}),
        store=store,
        connector_factory=Streams(data).factory,
        engine_factory=engine,
        progress=Progress(io.StringIO()),
        hooks=hooks,
    )


def _whole(store: Store, source: str, engine: Engine) -> Any:
    with store.session() as s:
        records = list(repo.load_records(s, source))
    return engine.evaluate(records, as_of=AS_OF)


def _releases_first(streams: dict[str, list[BaseRecord]]) -> dict[str, list[BaseRecord]]:
    order = ("ci", "release", "incident", "problem", "service_request", "change")
    return {k: streams[k] for k in order}


def test_dataset_exercises_the_cross_record_rules(cfg: Config, store: Store) -> None:
    data = dataset()
    _runner(cfg, store, data).run()
    for source in SOURCES:
        ev = _whole(store, source, iso_engine())
        for code in ("PRB004", "CFG003", "REL001"):
            assert ev.counts[code]["FAIL"] > 0 and ev.counts[code]["PASS"] > 0, (
                source,
                code,
                ev.counts[code],
            )
        assert ev.counts["REL001"]["NOT_EVALUATED"] > 0  # a linked change is missing


@pytest.mark.parametrize("jobs", [1, 2], ids=["one-process", "2-workers"])
@pytest.mark.parametrize("releases_first", [False, True])
def test_streamed_evaluation_equals_whole_list_evaluation(
    releases_first: bool,
    jobs: int,
    cfg: Config,
    store: Store,
    small_chunks: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The evaluation from the store: built-in rules index the CIs first and the other
    records as they stream, releases (stored before the changes they link, too) last;
    with ``jobs``, forked workers load and check the records by id range (a few records
    a task here, so that tasks and chunks split everywhere)."""
    monkeypatch.setattr(runner_mod, "EVAL_TASK_RECORDS", 45)
    # Other tests may leave threads behind (a sandbox server); none are at work here.
    monkeypatch.setattr(runner_mod, "_other_threads_alive", lambda: False)
    data = dataset()
    if releases_first:
        data = {s: _releases_first(streams) for s, streams in data.items()}
    runner = _runner(cfg, store, data, jobs=jobs)
    result = runner.run()
    pids = tmp_path / "pids"  # written by the workers too
    load = store_mod.load_records

    def noted(*args: Any, **kwargs: Any) -> Any:
        with pids.open("a", encoding="ascii") as out:
            out.write(f"{os.getpid()}\n")
        return load(*args, **kwargs)

    monkeypatch.setattr(store_mod, "load_records", noted)
    assert [s.status for s in result.sources] == ["ok", "ok"]
    engine = iso_engine()
    assert engine.reads_raw is False  # the index and the chunks load no raw JSON
    for source in SOURCES:
        whole = _whole(store, source, engine)
        with store.session() as s:
            assert (
                len(list(repo.load_records(s, source, processes=RecordIndex.PROCESSES)))
                < whole.records
            )
        pids.write_text("", encoding="ascii")
        streamed, evaluation = runner._evaluate_source(source, AS_OF, AS_OF, None)
        loaders = set(map(int, pids.read_text(encoding="ascii").split()))
        assert (loaders - {os.getpid()} != set()) is (jobs > 1)  # workers loaded records
        assert [f.to_dict() for f in streamed] == [f.to_dict() for f in whole.findings]
        assert evaluation.counts == whole.counts
        assert evaluation.not_evaluated == whole.not_evaluated
        assert (evaluation.records, evaluation.rule_errors) == (whole.records, whole.rule_errors)
        # the run stored exactly these findings and counted the same outcomes
        res = next(r for r in result.sources if r.name == source)
        assert res.outcomes == {code: dict(c) for code, c in whole.counts.items()}
        assert res.diff.counts() == {"new": len(whole.findings)}
        assert [c.finding.to_dict() for c in res.diff.changes] == [
            f.to_dict() for f in whole.findings
        ]
        with store.session() as s:
            stored = repo.stored_findings(s, source)
        assert set(stored) == {f.fingerprint for f in whole.findings}


def test_chunked_diff_keeps_the_lifecycle(cfg: Config, store: Store, small_chunks: None) -> None:
    """Second and third runs: resolved, reopened and still-open across chunk edges."""
    data = dataset()
    _runner(cfg, store, data).run()
    first = states(store)
    changed = dataset(seed=21)  # another draw: many findings resolve, others appear
    second = _runner(cfg, store, changed, full=True).run()
    engine = iso_engine()
    for source in SOURCES:
        whole = _whole(store, source, engine)
        res = next(r for r in second.sources if r.name == source)
        counts = res.diff.counts()
        assert counts["resolved"] > 0 and counts["new"] > 0 and counts["open"] > 0
        assert counts["new"] + counts["open"] == len(whole.findings)
    after = states(store)
    now_failing = {
        (f.source, f.code, f.key)
        for source in SOURCES
        for f in _whole(store, source, engine).findings
    }
    assert {k for k, v in after.items() if v == "open"} == now_failing
    assert all(after[k] == "resolved" for k in first if k not in now_failing)
    third = _runner(cfg, store, data, full=True).run()
    assert sum(r.diff.counts()["reopened"] for r in third.sources) > 0
    assert {k for k, v in states(store).items() if v == "open"} == {
        k for k, v in first.items() if v == "open"
    }


def test_dry_run_streams_stored_records_overlaid_with_what_was_read(
    cfg: Config, store: Store, small_chunks: None
) -> None:
    data = dataset()
    _runner(cfg, store, data).run()
    changed = dataset(seed=21)
    before = states(store)
    dry = _runner(cfg, store, changed, dry_run=True).run()
    assert states(store) == before  # nothing written
    real = _runner(cfg, store, changed).run()
    for d, r in zip(dry.sources, real.sources, strict=False):
        assert d.diff.counts() == r.diff.counts()
        assert d.outcomes == r.outcomes


def test_full_run_leaves_out_records_gone_at_the_source(
    cfg: Config, store: Store, small_chunks: None
) -> None:
    data = dataset()
    _runner(cfg, store, data).run()
    fewer = {
        s: {st: recs[: len(recs) // 2] for st, recs in streams.items()}
        for s, streams in data.items()
    }
    result = _runner(cfg, store, fewer, full=True).run()
    for res in result.sources:
        kept = sum(len(v) for v in fewer[res.name].values())
        assert res.evaluated == kept
        assert res.diff.counts()["gone"] > 0  # gone, never "resolved": nobody fixed them
        assert {c.resolution for c in res.diff.of_kind("gone")} == {RECORD_GONE}


# --- which rules need the raw JSON --------------------------------------------------------


def test_builtin_pack_never_reads_raw_json() -> None:
    pack_dir = Path(__file__).resolve().parents[2] / "rules" / "packs" / "iso20000"
    for path in pack_dir.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\.raw\b(?!_)|\[\s*['\"]raw['\"]\s*\]|['\"]raw['\"]", text), path


def _declarative(field: str) -> Any:
    return build_rule(
        DeclarativeRule.model_validate(
            {
                "code": "PAY001",
                "name": "pay",
                "title": "t",
                "process": "change",
                "when": {"all": [{"field": "key", "matches": "PAY-*"}]},
                "require": {"not": {"field": field, "empty": True}},
            }
        )
    )


def test_reads_raw_only_when_a_rule_may_read_it() -> None:
    builtin = load_registry().select(["ALL"], [])
    assert Engine(builtin).reads_raw is False
    assert Engine([*builtin, _declarative("test_plan")]).reads_raw is False
    assert Engine([*builtin, _declarative("raw.fields.customfield_10042")]).reads_raw is True

    @rule(code="XTR001", name="x", title="x", severity="low", clause="1", applies_to=["change"])
    def other_pack(record: Any, ctx: Any) -> Any:
        """**Why**

        x

        **Remediation**

        x
        """
        return PASS

    assert Engine([other_pack]).reads_raw is True  # unknown pack: may read anything
    # and only then does the sync's index keep whole CI records
    assert Engine([*builtin, _declarative("raw.x")]).reads_index_records is False
    assert Engine([*builtin, other_pack]).reads_index_records is True


def test_the_slim_index_keeps_of_a_ci_what_its_findings_read() -> None:
    """Built-in rules read an indexed CI only through the findings that name it: the slim
    index keeps those fields (people shared between CIs), the whole index the record."""
    ci = record_from_dict(
        {
            "source": "snow-prod",
            "system": "servicenow",
            "process": "ci",
            "key": "db-09",
            "native_id": "a1b2",
            "url": "https://x/db-09",
            "title": "db-09 <b>primary</b>",
            "assignee": {"id": "u1", "name": "Ann"},
            "group": "dba",
            "owner": {"id": "u2", "name": "Bo", "email": "bo@example.com"},
            "support_group": "",
            "status": "installed",
            "raw": {"sys_id": "a1b2"},
        }
    )
    twin = ci.model_copy(update={"key": "db-10"})
    slim, whole = RecordIndex(slim_cis=True), RecordIndex()
    for index in (slim, whole):
        index.add(ci)
        index.add(twin)
    assert whole.ci("snow-prod", "db-09") is ci
    held = slim.ci("snow-prod", "db-09")
    assert held == CISubject(ci.url, ci.title, ci.assignee, ci.group, ci.owner, ci.support_group)
    assert held is not None and held.owner is slim.ci("snow-prod", "db-10").owner  # type: ignore[union-attr]
    assert slim.ci_known("snow-prod", "a1b2") and slim.syncs_cis("snow-prod")
    assert pickle.loads(pickle.dumps(held)) == held


def test_raw_json_is_loaded_when_a_rule_reads_it(
    cfg: Config, store: Store, small_chunks: None
) -> None:
    """Without the raw JSON the field would be missing (NOT_EVALUATED); with it, PASS."""
    data = dataset()
    raw_rule = _declarative("raw.fields.summary")
    renamed = {
        s: {
            st: [r.model_copy(update={"key": "PAY-" + r.key}) for r in recs]
            for st, recs in streams.items()
        }
        for s, streams in data.items()
    }
    result = _runner(cfg, store, renamed, engine=lambda c: Engine([raw_rule])).run()
    changes = data["jira-prod"]["change"]
    cancelled = sum(1 for r in changes if r.state == "cancelled")
    assert result.sources[0].outcomes["PAY001"] == {
        "PASS": len(changes) - cancelled,
        "NOT_APPLICABLE": cancelled,
    }


# --- dry run: the write-back preview --------------------------------------------------------


class Planned:
    def __init__(self, text: str) -> None:
        self.text = text

    def describe(self) -> str:
        return self.text


def test_dry_run_prints_the_planned_writes(cfg: Config, store: Store) -> None:
    seen: list[Any] = []

    def preview(st: Store, c: Config, result: Any) -> list[Any]:
        seen.append(result)
        return [Planned("label ticketlint-CHG001 on jira-prod/CHG-1"), "comment on snow-prod/INC-2"]

    hooks = RunHooks(preview=preview)
    err = io.StringIO()
    runner = _runner(cfg, store, dataset(), dry_run=True, writeback=True, hooks=hooks)
    runner.progress = Progress(err)
    result = runner.run()
    assert seen == [result] and result.dry_run
    text = err.getvalue()
    assert "write-back would make 2 write(s):" in text
    assert (
        "label ticketlint-CHG001 on jira-prod/CHG-1" in text
        and "comment on snow-prod/INC-2" in text
    )

    # not asked for with --no-writeback, nor on a real run (that one writes back instead)
    seen.clear()
    _runner(cfg, store, dataset(), dry_run=True, writeback=False, hooks=hooks).run()
    _runner(cfg, store, dataset(), writeback=True, hooks=hooks).run()
    assert seen == []


def test_dry_run_tolerates_a_missing_or_failing_preview(cfg: Config, store: Store) -> None:
    err = io.StringIO()
    runner = _runner(cfg, store, dataset(), dry_run=True, writeback=True)  # no preview wired
    runner.progress = Progress(err)
    assert runner.run().exit_code == 0
    assert "write-back preview is not wired" in err.getvalue()

    def broken(*args: Any) -> Any:
        raise RuntimeError("no tracker")

    err = io.StringIO()
    runner = _runner(
        cfg, store, dataset(), dry_run=True, writeback=True, hooks=RunHooks(preview=broken)
    )
    runner.progress = Progress(err)
    assert runner.run().exit_code == 0
    assert "write-back preview failed: no tracker" in err.getvalue()


# --- a full read checked as it is stored ----------------------------------------------


def _spy_store_evaluation(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sources that _evaluate_source (the two passes over the store) evaluated."""
    calls: list[str] = []
    real = SyncRunner._evaluate_source

    def spy(self: SyncRunner, source: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(source)
        return real(self, source, *args, **kwargs)

    monkeypatch.setattr(SyncRunner, "_evaluate_source", spy)
    return calls


def _assert_run_is_whole_list(result: Any, store: Store) -> None:
    engine = iso_engine()
    for res in result.sources:
        whole = _whole(store, res.name, engine)
        assert res.evaluated == whole.records
        assert res.outcomes == {code: dict(c) for code, c in whole.counts.items()}
        assert res.not_evaluated == {c: dict(n) for c, n in whole.not_evaluated.items()}
        counts = res.diff.counts()
        assert counts.get("new", 0) + counts.get("open", 0) + counts.get("reopened", 0) == len(
            whole.findings
        )
        open_now = {k for k, v in states(store).items() if v == "open" and k[0] == res.name}
        assert open_now == {(f.source, f.code, f.key) for f in whole.findings}


@pytest.mark.parametrize("releases_first", [False, True])
def test_a_first_sync_checks_its_records_as_they_are_stored(
    releases_first: bool, cfg: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No second read of the store: the read itself was every live record. Releases
    read before the changes they link are checked after them (REL001)."""
    data = dataset()
    if releases_first:
        data = {s: _releases_first(streams) for s, streams in data.items()}
    calls = _spy_store_evaluation(monkeypatch)
    result = _runner(cfg, store, data).run()
    assert calls == []
    _assert_run_is_whole_list(result, store)
    # A later full read too; an incremental one needs the stored, unchanged records.
    again = _runner(cfg, store, dataset(seed=21), full=True).run()
    assert calls == []
    _assert_run_is_whole_list(again, store)
    _runner(cfg, store, dataset(seed=22)).run()
    assert calls == list(SOURCES)


def test_a_full_read_is_checked_as_stored_not_as_read(
    cfg: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store may keep another value than the one read (our own write-back's activity
    time is taken back): the check reads what was stored. Here every incident ending in 7
    is stored cancelled (the way ``without_own_writes`` rewrites, and idempotent)."""
    real = repo.without_own_writes

    def rewritten(session: Any, records: Any) -> list[BaseRecord]:
        return [
            r.model_copy(update={"state": "cancelled"})
            if r.process == "incident" and r.key.endswith("7")
            else r
            for r in real(session, records)
        ]

    monkeypatch.setattr(repo, "without_own_writes", rewritten)
    calls = _spy_store_evaluation(monkeypatch)
    result = _runner(cfg, store, dataset()).run()
    assert calls == []
    _assert_run_is_whole_list(result, store)
    with store.session() as s:
        assert any(r.state == "cancelled" for r in repo.load_records(s, "jira-prod"))


@pytest.mark.parametrize(
    "case", ["read-twice", "twice-in-a-page", "ci-last", "dry-run", "custom-rule"]
)
def test_what_the_stream_cannot_place_is_evaluated_from_the_store(
    case: str, cfg: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = dataset()
    options: dict[str, Any] = {}
    engine: Any = iso_engine
    if case == "read-twice":  # keyset paging reads a ticket updated mid-read again
        for streams in data.values():
            streams["incident"].append(streams["incident"][3])
    elif case == "twice-in-a-page":
        for streams in data.values():
            streams["incident"].insert(5, streams["incident"][3])
    elif case == "ci-last":
        data = {
            s: {k: v for k, v in streams.items() if k != "ci"} | {"ci": streams["ci"]}
            for s, streams in data.items()
        }
    elif case == "dry-run":
        options["dry_run"] = True
    else:  # a rule of another pack may read any record

        @rule(code="XTR001", name="x", title="x", severity="low", clause="1", applies_to=["change"])
        def other_pack(record: Any, ctx: Any) -> Any:
            """**Why**

            x

            **Remediation**

            x
            """
            return PASS

        def engine(cfg: Any = None) -> Engine:
            return Engine([*load_registry().select(["ALL"], []), other_pack])

    calls = _spy_store_evaluation(monkeypatch)
    result = _runner(cfg, store, data, engine=engine, **options).run()
    assert calls == list(SOURCES)
    if case in ("read-twice", "twice-in-a-page", "ci-last"):
        _assert_run_is_whole_list(result, store)


def _failing_on_keys_ending_in_3(code: str) -> Any:
    """An engine of the built-in pack whose rule ``code`` raises on keys ending in 3."""

    def engine(cfg: Any = None) -> Engine:
        rules = load_registry().select(["ALL"], [])
        real = next(r for r in rules if r.code == code).func

        def failing(record: BaseRecord, ctx: Any) -> Any:
            if record.key.endswith("3"):
                raise RuntimeError(f"bug on {record.key}")
            return real(record, ctx)

        return Engine([replace(r, func=failing) if r.code == code else r for r in rules])

    return engine


@pytest.mark.parametrize("case", ["checked-as-stored", "given-up", "read-fails"])
def test_a_rule_error_is_logged_once(
    case: str,
    cfg: Config,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Checked as stored, given up for the store's evaluation after some batches were
    checked (a record read twice), or the source failing after its incidents were
    checked: each rule error is logged once, with its traceback (and reported once
    where the source succeeds)."""
    data = dataset()
    if case == "given-up":
        for streams in data.values():
            streams["incident"].append(streams["incident"][3])
    failing = {
        f"rule INC001 failed on {r.source} {r.key}"
        for streams in data.values()
        for r in streams["incident"]
        if r.key.endswith("3")
    }
    calls = _spy_store_evaluation(monkeypatch)
    caplog.set_level(logging.ERROR, logger="ticketlint")
    runner = _runner(cfg, store, data, engine=_failing_on_keys_ending_in_3("INC001"))
    if case == "read-fails":  # the stream after the incidents fails on its second page
        real_factory = runner.connector_factory

        def factory(source_cfg: Any) -> Any:
            connector = real_factory(source_cfg)
            connector.fail_stream = "problem"
            return connector

        runner.connector_factory = factory
    result = runner.run()
    assert calls == (list(SOURCES) if case == "given-up" else [])
    logged = [r for r in caplog.records if r.getMessage().startswith("rule INC001 failed on ")]
    assert len(failing) > 3
    assert sorted(r.getMessage() for r in logged) == sorted(failing)
    assert all(r.exc_info and "bug on" in str(r.exc_info[1]) for r in logged)
    if case == "read-fails":
        assert {res.status for res in result.sources} == {"failed"}
    else:
        reported = [e for res in result.sources for e in res.rule_errors]
        assert sorted(
            f"rule INC001 failed on {' '.join(e.split(': ')[0].split(' on ')[1].split('/', 1))}"
            for e in reported
        ) == sorted(failing)


def test_a_lone_task_of_the_workers_reads_through_the_evaluations_own_session(
    cfg: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--jobs 2`` where the records make one task: the task runs in this process.
    It read through a second session of the writer, which on SQLite waited for the
    evaluation's own write lock until the busy timeout failed the source ("database is
    locked" after 30 s); it reads through the evaluation's session, with the same
    findings as the whole-list evaluation."""
    # Every record in one task (ranges are split among the workers since, so a lone task
    # is otherwise a source of one record besides its CIs).
    whole_range = store_mod.id_ranges
    monkeypatch.setattr(
        store_mod,
        "id_ranges",
        lambda session, source, processes, most, *, multiple=1: whole_range(
            session, source, processes, 10**6
        ),
    )
    monkeypatch.setattr(runner_mod, "_other_threads_alive", lambda: False)
    monkeypatch.setattr(db_mod, "BUSY_TIMEOUT_MS", 300)  # a wait for the lock fails fast
    runner = _runner(cfg, store, dataset(), jobs=2)
    assert [s.status for s in runner.run().sources] == ["ok", "ok"]
    engine = iso_engine()
    for source in SOURCES:
        with store.session() as s:
            assert runner._evaluation_jobs(s, source, None) == 2
        streamed, _ = runner._evaluate_source(source, AS_OF, AS_OF, None)
        whole = _whole(store, source, engine)
        assert streamed and [f.to_dict() for f in streamed] == [f.to_dict() for f in whole.findings]


def test_a_worker_killed_mid_evaluation_fails_the_source_and_loses_nothing(
    cfg: Config,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    fails_if_hung: Callable[[int], AbstractContextManager[None]],
) -> None:
    """A worker of the store's evaluation is killed (the out-of-memory killer): the
    source fails with that reason, where the run used to wait for the lost task for ever
    (holding the sync lock); nothing of the source is committed (findings, watermarks),
    and the next run ends as if the killed one had never been."""
    monkeypatch.setattr(runner_mod, "EVAL_TASK_RECORDS", 45)
    monkeypatch.setattr(runner_mod, "_other_threads_alive", lambda: False)
    data = dataset()
    assert [s.status for s in _runner(cfg, store, data, jobs=2).run().sources] == ["ok", "ok"]

    def snapshot() -> Any:
        with store.session() as s:
            return {
                source: (
                    {k: v.state for k, v in repo.stored_findings(s, source).items()},
                    repo.get_watermarks(s, source),
                )
                for source in SOURCES
            }

    before = snapshot()
    parent, load = os.getpid(), store_mod.load_records

    def dies(*args: Any, **kwargs: Any) -> Any:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return load(*args, **kwargs)

    monkeypatch.setattr(store_mod, "load_records", dies)
    with fails_if_hung(120):  # the old behaviour: waiting for the lost task for ever
        killed = _runner(cfg, store, data, jobs=2).run()
    assert [s.status for s in killed.sources] == ["failed", "failed"]
    for res in killed.sources:
        assert res.error is not None and res.error.startswith("WorkerLost: a worker process")
        assert "killed by SIGKILL (out of memory?)" in res.error
    assert killed.exit_code == 2
    assert snapshot() == before
    monkeypatch.setattr(store_mod, "load_records", load)
    again = _runner(cfg, store, data, jobs=2).run()
    assert [s.status for s in again.sources] == ["ok", "ok"]
    assert [set(res.diff.counts()) for res in again.sources] == [{"open"}, {"open"}]  # no change
    assert snapshot() == before


def test_the_store_is_evaluated_on_workers_only_where_a_fork_is_safe_and_exact(
    cfg: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--jobs is honoured; one process for a dry run (its records are in memory), while
    other threads run (serve), for rules of other packs, and below the size threshold."""
    runner = _runner(cfg, store, dataset(), jobs=3)
    monkeypatch.setattr(runner_mod, "_other_threads_alive", lambda: False)
    with store.session() as s:
        assert runner._evaluation_jobs(s, "jira-prod", None) == 3
        assert runner._evaluation_jobs(s, "jira-prod", {}) == 1  # dry run
        monkeypatch.setattr(runner_mod, "_other_threads_alive", lambda: True)
        assert runner._evaluation_jobs(s, "jira-prod", None) == 1
        monkeypatch.setattr(runner_mod, "_other_threads_alive", lambda: False)
        runner.options.jobs = None
        monkeypatch.setattr(runner_mod, "PARALLEL_EVAL_RECORDS", 10**9)
        assert runner._evaluation_jobs(s, "jira-prod", None) == 1  # a small store
        monkeypatch.setattr(runner_mod, "PARALLEL_EVAL_RECORDS", 0)
        monkeypatch.setattr("ticketlint.workers.default_jobs", lambda: 2)
        assert runner._evaluation_jobs(s, "jira-prod", None) == 2
        monkeypatch.setattr(type(runner.engine), "streams", property(lambda _self: False))
        assert runner._evaluation_jobs(s, "jira-prod", None) == 1  # other packs


def test_an_incremental_run_reads_the_next_source_while_its_workers_check_the_last(
    cfg: Config, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--jobs 2``: each source's stored records are checked on forked workers (forked
    while no other thread ran), and snow-prod's read starts once jira-prod's workers
    are forked, before jira-prod commits. The findings are the whole-list evaluation's."""
    _runner(cfg, store, dataset()).run()
    forked_with_threads: list[bool] = []
    chosen: list[int] = []
    real_jobs = SyncRunner._evaluation_jobs

    def readers_alive() -> bool:  # threads other tests left behind do not count here
        return any(t.name == "ticketlint-read-ahead" for t in threading.enumerate())

    def jobs(self: SyncRunner, s: Any, source: str, pending: Any) -> int:
        forked_with_threads.append(readers_alive())
        chosen.append(real_jobs(self, s, source, pending))
        return chosen[-1]

    monkeypatch.setattr(runner_mod, "_other_threads_alive", readers_alive)
    monkeypatch.setattr(SyncRunner, "_evaluation_jobs", jobs)
    read_started = threading.Event()
    streams = Streams(dataset(seed=22))

    def factory(source_cfg: Any) -> Any:
        if source_cfg.name == "snow-prod":
            read_started.set()  # made in the reader's thread, as the read starts
        return streams.factory(source_cfg)

    waited = holding_commit(monkeypatch, "jira-prod", read_started)
    runner = _runner(cfg, store, dataset(seed=22), jobs=2)
    runner.connector_factory = factory
    result = runner.run()
    assert [s.status for s in result.sources] == ["ok", "ok"]
    assert not any(s.full for s in result.sources)
    assert forked_with_threads == [False, False] and chosen == [2, 2]
    assert waited == [True]
    _assert_run_is_whole_list(result, store)
