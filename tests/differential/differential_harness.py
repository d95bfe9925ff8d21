"""The differential harness: after any changes, ``sync`` must agree with a fresh ``check``.

One :class:`Harness` drives one source of one sandbox (Jira Cloud, Jira Data Center or
ServiceNow, a seed, optional faults): ``sync``; a seeded random batch of realistic changes
through ``POST /_sandbox/mutate`` (every kind the sandbox makes, see
:mod:`ticketlint.sandbox.mutations`); the clock moved on; ``sync`` again; then the store's
open findings are compared with a fresh full read and evaluation of the same source at the
same ``--as-of`` (what ``check --source`` does), rule by rule and key by key.

``sync`` runs in-process (fast) or as the real CLI in a subprocess, optionally killed:
``TICKETLINT_TEST_CRASH_AT`` ends it with ``os._exit(137)`` at a chosen point (between
pages, mid-store, mid-notify), or a ``SIGKILL`` lands after a random delay. A killed run
is followed by a rerun, as the next night's cron would.

The first divergence is raised as :class:`Divergence` with, for each record it concerns,
the changes made to it (the raw record before and after) and the stored record.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select, text
from typing_extensions import Self

from ticketlint.cli import _read_live
from ticketlint.config import Config, parse_config
from ticketlint.rules.selection import engine_from_config
from ticketlint.sandbox.server import SandboxServer
from ticketlint.store.db import open_store
from ticketlint.store.models import Base, FindingRow, RecordRow
from ticketlint.sync.progress import Progress
from ticketlint.sync.runner import SyncOptions, SyncResult, run_sync

SYSTEMS = ("jira-cloud", "jira-dc", "servicenow")
FAULTS = "429=0.04,500=0.03,502=0.01,reset=0.02,retry_after=0,mutate=0.04"
SCOPED = ("incident", "change", "problem", "service_request")
TICKETLINT = Path(sys.executable).parent / "ticketlint"
CRASH_POINTS = ("after-upsert", "before-commit", "after-commit", "mid-notify")


INVISIBLE = frozenset({"delete", "move", "task_ci_remove"})
"""Changes an incremental read cannot see (nothing of them is in an "updated since" read):
a deleted record, one moved out of the configured scope, a CI link removed without its
task changing. Until the next full reconcile the store may still hold the findings of
those records (never fewer findings than a fresh check, anywhere else); after it, none."""


class Divergence(AssertionError):
    """The store's open findings differ from a fresh check's."""


@dataclass
class Case:
    system: str
    seed: int
    size: int = 240
    faults: str | None = None
    changes: int = 8
    reconcile_every: int = 3

    @property
    def source(self) -> str:
        return {"jira-cloud": "jira", "jira-dc": "jira-dc", "servicenow": "snow"}[self.system]

    def __str__(self) -> str:
        return f"{self.system}/seed {self.seed}" + (" with faults" if self.faults else "")


@dataclass
class RoundLog:
    round: int
    as_of: datetime
    changes: list[dict[str, Any]] = field(default_factory=list)
    synced: list[str] = field(default_factory=list)


class Harness:
    """One sandbox, one source, one store; see the module docstring."""

    def __init__(self, work: Path, case: Case, database: str | None = None) -> None:
        self.work, self.case = work, case
        self.database = database or f"sqlite:///{work / 'store.db'}"
        self.server = SandboxServer(
            seed=case.seed,
            size=case.size,
            faults=case.faults,
            jira_deployment="Server" if case.system == "jira-dc" else "Cloud",
        ).start()
        self.config_path = work / "ticketlint.yaml"
        self.config_path.write_text(self._config_text(), encoding="utf-8")
        self.cfg: Config = parse_config(self._config_text(), self.config_path)
        self.log: list[RoundLog] = []
        self.unseen: set[str] = set()
        """Records changed invisibly (:data:`INVISIBLE`) since the last full reconcile."""
        self.reconciles = 0
        self.clock = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=2)
        self.rng = random.Random(f"harness:{case.seed}:{case.system}")

    def close(self) -> None:
        self.server.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- configuration ---------------------------------------------------------------------
    def _config_text(self) -> str:
        c, url, name = self.server.credentials, self.server.url, self.case.source
        head = f'database: "{self.database}"\nsync:\n  reconcile_every: {self.case.reconcile_every}\nsources:\n'
        common = (
            f"    url: {url}\n    max_attempts: 10\n    retry_after_max: 1\n    page_size: 25\n"
        )
        if self.case.system == "servicenow":
            queries = "".join(f"      {p}: sys_domain=global\n" for p in SCOPED)
            return (
                head
                + f"  - name: {name}\n    type: servicenow\n{common}"
                + f"    auth: {{user: {c.snow_user}, password: {c.snow_password}}}\n"
                + f"    query:\n{queries}"
            )
        auth = (
            f"{{pat: {c.jira_pat}}}"
            if self.case.system == "jira-dc"
            else f"{{email: {c.jira_email}, token: {c.jira_token}}}"
        )
        return (
            head
            + f"  - name: {name}\n    type: jira\n{common}    auth: {auth}\n"
            + "    jql: project in (OPS, CHG)\n"
        )

    # -- the clock ---------------------------------------------------------------------------
    def advance(self, hours: float | None = None) -> datetime:
        """Move the evaluation instant on (past grace periods: hours to days), never
        before the sandbox's newest write."""
        step = hours if hours is not None else self.rng.choice((0.5, 3, 26, 80))
        now = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=2)
        self.clock = max(self.clock + timedelta(hours=step), now)
        return self.clock

    # -- changes -------------------------------------------------------------------------------
    def mutate(self, round_no: int) -> list[dict[str, Any]]:
        system = "servicenow" if self.case.system == "servicenow" else "jira"
        resp = requests.post(
            f"{self.server.url}/_sandbox/mutate",
            json={"random": {"seed": round_no, "count": self.case.changes, "system": system}},
            timeout=30,
        )
        resp.raise_for_status()
        changes: list[dict[str, Any]] = resp.json()["changes"]
        return changes

    # -- sync --------------------------------------------------------------------------------
    def sync(self, as_of: datetime, *, full: bool = False) -> SyncResult:
        result = run_sync(
            self.cfg,
            SyncOptions(as_of=as_of, full=full, notify=True, writeback=False),
            progress=Progress(io.StringIO()),
        )
        failed = [s for s in result.sources if s.status != "ok"]
        if failed:
            raise AssertionError(f"{self.case}: sync failed: {failed[0].error}")
        return result

    def sync_cli(
        self,
        as_of: datetime,
        *,
        crash_at: str | None = None,
        kill_after: float | None = None,
        full: bool = False,
    ) -> int:
        """The real CLI in a subprocess; killed at ``crash_at`` or after ``kill_after`` s."""
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.work),
            "XDG_CONFIG_HOME": str(self.work),
        }
        if crash_at:
            env["TICKETLINT_TEST_CRASH_AT"] = crash_at
        args = [
            str(TICKETLINT),
            "--config",
            str(self.config_path),
            "sync",
            "--no-writeback",
            "--as-of",
            as_of.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ]
        if full:
            args.append("--full")
        proc = subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        if kill_after is not None:
            try:
                proc.wait(timeout=kill_after)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        _out, err = proc.communicate(timeout=300)
        if proc.returncode not in (0, 137, -signal.SIGKILL):
            raise AssertionError(f"{self.case}: sync exited {proc.returncode}: {err[-2000:]}")
        return proc.returncode

    # -- the comparison ----------------------------------------------------------------------
    def check(self, as_of: datetime) -> dict[str, dict[str, Any]]:
        """What ``check --source`` reports now: fingerprint -> finding (a fresh full read)."""
        engine = engine_from_config(self.cfg)
        src = self.cfg.source(self.case.source)
        records, ci_sources, _ = _read_live([src], jql=None, query=None, keys={}, since=None)
        evaluation = engine.evaluate(records, as_of=as_of, ci_sources=ci_sources)
        return {f.fingerprint: f.to_dict() for f in evaluation.findings if f.source == src.name}

    def stored_open(self) -> dict[str, tuple[str, str, str]]:
        """Open findings in the store: fingerprint -> (rule, key, evidence as JSON)."""
        store = open_store(self.database)
        try:
            with store.session() as s:
                rows = s.execute(
                    select(
                        FindingRow.fingerprint, FindingRow.rule, FindingRow.key, FindingRow.evidence
                    ).where(FindingRow.source == self.case.source, FindingRow.state == "open")
                )
                return {fp: (rule, key, json.dumps(ev)) for fp, rule, key, ev in rows}
        finally:
            store.dispose()

    def stored_record(self, key: str) -> dict[str, Any] | None:
        store = open_store(self.database)
        try:
            with store.session() as s:
                row = s.scalar(
                    select(RecordRow).where(
                        RecordRow.source == self.case.source, RecordRow.key == key
                    )
                )
                return None if row is None else {"deleted": row.deleted, **row.data}
        finally:
            store.dispose()

    def compare(self, as_of: datetime, where: str, *, lag: frozenset[str] = frozenset()) -> None:
        """Raise :class:`Divergence` unless the store's open findings equal a fresh check's.

        ``lag``: records changed invisibly since the last reconcile; only their findings may
        differ (the store keeps them until the reconcile says they are gone)."""
        fresh = self.check(as_of)
        stored = self.stored_open()
        lagging = self._lagging(lag)
        missing = sorted(
            (f["code"], f["key"], fp)
            for fp, f in fresh.items()
            if fp not in stored and not lagging(f["key"], json.dumps(f.get("evidence")))
        )
        extra = sorted(
            (rule, key, fp)
            for fp, (rule, key, evidence) in stored.items()
            if fp not in fresh and not lagging(key, evidence)
        )
        if not missing and not extra:
            return
        lines = [
            (
                f"{self.case}: {where} at --as-of {as_of.isoformat()}: the store's open "
                f"findings differ from a fresh check: {len(missing)} missing, {len(extra)} extra"
            )
        ]
        lines += [f"  missing in the store: {rule} {key}" for rule, key, _ in missing[:10]]
        if lag:
            lines.append(f"  (records changed invisibly since the last reconcile: {sorted(lag)})")
        lines += [f"  open in the store only: {rule} {key}" for rule, key, _ in extra[:10]]
        rule, key, _ = (missing or extra)[0]
        lines.append(f"first divergence: {rule} on {key}")
        lines += self._history(key)
        raise Divergence("\n".join(lines))

    def _lagging(self, lag: frozenset[str]) -> Any:
        """A predicate: may this finding (key, evidence) lag behind? Its record is one of
        ``lag``, or its evidence or stored record names one (a link to a deleted issue,
        an aggregate over a deleted incident)."""
        if not lag:
            return lambda key, evidence: False

        def lagging(key: str, evidence: str) -> bool:
            if key in lag or any(k in evidence for k in lag):
                return True
            record = json.dumps(self.stored_record(key) or {})
            return any(f'"{k}"' in record for k in lag)

        return lagging

    def _history(self, key: str) -> list[str]:
        out: list[str] = []
        for entry in self.log:
            for change in entry.changes:
                if change["record"] != key and not _mentions(change, key):
                    continue
                out.append(f"  round {entry.round}: {change['kind']} ({change['system']})")
                before, after = _delta(change.get("before"), change.get("after"))
                out.append("    before: " + _short(before))
                out.append("    after:  " + _short(after))
        out.append("  stored record: " + _short(self.stored_record(key)))
        if len(out) == 1:
            out.insert(0, "  (no change made to this record: a cross-record or clock effect)")
        return out

    # -- rounds ------------------------------------------------------------------------------
    def run(
        self,
        rounds: int,
        *,
        kills: bool = False,
        random_kills: bool = False,
    ) -> dict[str, int]:
        """Round 0 syncs from empty; each next round changes records, moves the clock and
        syncs (possibly killed, then rerun); every round ends with the comparison."""
        figures = {"rounds": 0, "changes": 0, "kills": 0, "findings": 0, "reconciles": 0}
        as_of = self.advance(0)
        self.sync(as_of)
        self.compare(as_of, "round 0 (first sync)")
        for r in range(1, rounds + 1):
            entry = RoundLog(r, as_of)
            entry.changes = self.mutate(r)
            self.log.append(entry)
            self.unseen |= {c["record"] for c in entry.changes if c["kind"] in INVISIBLE}
            as_of = entry.as_of = self.advance()
            if kills or random_kills:
                point = self.rng.choice(CRASH_POINTS)
                if random_kills and self.rng.random() < 0.5:
                    rc = self.sync_cli(as_of, kill_after=self.rng.uniform(0.3, 2.5))
                    entry.synced.append("sigkill")
                else:
                    nth = self.rng.randint(1, 2) if point == "after-upsert" else 1
                    rc = self.sync_cli(as_of, crash_at=f"{point}:{nth}")
                    entry.synced.append(f"crash {point}:{nth}")
                figures["kills"] += rc != 0
            result = self.sync(as_of)
            full = all(src.full for src in result.sources)
            if full:
                self.unseen.clear()
                figures["reconciles"] += 1
                entry.synced.append("full reconcile")
            self.compare(
                as_of,
                f"round {r} ({', '.join(entry.synced) or 'incremental'})",
                lag=frozenset(self.unseen),
            )
            figures["rounds"] += 1
            figures["changes"] += len(entry.changes)
        figures["findings"] = len(self.stored_open())
        return figures


def _mentions(change: dict[str, Any], key: str) -> bool:
    return key in json.dumps(change.get("before") or {}) or key in json.dumps(
        change.get("after") or {}
    )


def _delta(before: Any, after: Any) -> tuple[Any, Any]:
    """Only what changed between two raw records (Jira: their ``fields``)."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return before if after is None else "(none)", after
    a, b = before.get("fields", before), after.get("fields", after)
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k != "updated")
    return {k: a.get(k) for k in keys}, {k: b.get(k) for k in keys}


def _short(value: Any, limit: int = 600) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def run_cases(cases: Iterable[Case], work: Path, rounds: int, **kw: Any) -> dict[str, Any]:
    totals: dict[str, Any] = {}
    for case in cases:
        sub = work / f"{case.system}-{case.seed}-{bool(case.faults)}"
        sub.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with Harness(sub, case) as h:
            figures = h.run(rounds, **kw)
        figures["seconds"] = round(time.monotonic() - t0, 1)
        totals[str(case)] = figures
    return totals


def pg_url() -> str | None:
    return os.environ.get("TICKETLINT_TEST_DATABASE_URL")


def reset_database(url: str) -> None:
    """Drop every table of the store (and Alembic's) so a run starts empty, then migrates."""
    store = open_store(url, migrate=False)
    try:
        with store.engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        store.dispose()
