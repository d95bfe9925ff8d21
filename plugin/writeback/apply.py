"""Carrying out planned writes, with the write-back log as intent and confirmation.

For every write: a ``pending`` row is committed *before* the request (the intent), and
turned ``done`` (or ``failed`` with the error) after it. A later run that finds a row
still ``pending`` or ``failed`` plans the write with ``verify=True`` and reads the ticket
first (labels; our comment by the id in the log and the marker in its body; the newest
work note of ours in ``sys_journal_field``), so a crash between intent and confirmation
never duplicates a comment or a note. Older unconfirmed rows of the same ticket and
action are marked ``superseded`` when a new attempt is claimed.

Our own writes move the ticket's update time (Jira ``updated``, ServiceNow
``sys_updated_on``). So that staleness rules do not take them for activity, the rows of a
ticket written in a pass get ``updated_before`` (the stored record's ``updated_at``: the
activity time before our writes) and ``updated_after`` (the source's update time right
after our last write: the work note's PATCH response, or one ``GET ...?fields=updated`` of
the Jira issue) in their ``detail``; :func:`ticketlint.store.repository.upsert_records` uses them.

Two writers (a nightly sync and ``serve``) may race on one ticket: a ``pending`` row of a
live process (same host: its pid exists; another host: its lease has not run out) makes
the other skip that write; the skipped ticket is handled by whichever runs next.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select

from ticketlint.config import JiraSource, ServiceNowSource
from ticketlint.connectors.base import SourceError
from ticketlint.plugin.writeback.plan import (
    COMMENT,
    DONE,
    FAILED,
    LABEL,
    NOTE,
    PENDING,
    SUPERSEDED,
    PlannedWrite,
    _chunks,
)
from ticketlint.plugin.writeback.remote import JiraRemote, ServiceNowRemote
from ticketlint.plugin.writeback.render import EMPTY_DIGEST, adf, plain_text, read_marker
from ticketlint.store.db import Store, retry_locked
from ticketlint.store.models import RecordRow, WritebackRow

log = logging.getLogger(__name__)

CRASH_ENV = "TICKETLINT_TEST_WRITEBACK_CRASH"
"""Tests only: ``after-intent`` / ``after-write`` ends the process there, as a kill would."""
LEASE_SECONDS = 600.0
"""How long another host's pending write is respected before it is taken as crashed."""


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC (what :func:`ticketlint.store.repository.upsert_records` reads back), or None."""
    return value.astimezone(timezone.utc).isoformat() if isinstance(value, datetime) else None


@dataclass
class WritebackSummary:
    """What one write-back pass did."""

    planned: int = 0
    written: int = 0
    """Writes sent and confirmed."""
    confirmed: int = 0
    """Unconfirmed earlier writes found already in place (nothing sent)."""
    failed: int = 0
    busy: int = 0
    """Skipped: another live process holds a pending write on the same ticket."""
    skipped: list[str] = field(default_factory=list)
    """``source/key`` not written: the record is deleted or has no native id."""
    errors: list[str] = field(default_factory=list)
    requests: int = 0
    disabled: bool = False

    def merge(self, other: WritebackSummary) -> None:
        for name in ("planned", "written", "confirmed", "failed", "busy", "requests"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped += other.skipped
        self.errors += other.errors

    def text(self) -> str:
        if self.disabled:
            return "write-back is disabled (writeback.enabled: false)"
        return (
            f"write-back: {self.written} written, {self.confirmed} already in place, "
            f"{self.failed} failed, {self.busy} busy ({self.planned} planned)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "written": self.written,
            "confirmed": self.confirmed,
            "failed": self.failed,
            "busy": self.busy,
            "skipped": len(self.skipped),
            "errors": self.errors[:20],
            "requests": self.requests,
            "disabled": self.disabled,
        }


def crash_point(name: str, action: str) -> None:
    """``after-write`` dies at the first write; ``after-write:jira.comment`` at the first of that action."""
    if os.environ.get(CRASH_ENV) in (name, f"{name}:{action}"):
        os._exit(137)


def _owner() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "token": uuid.uuid4().hex,
        "lease_until": time.time() + LEASE_SECONDS,
    }


def _alive(owner: dict[str, Any]) -> bool:
    """True when the process that wrote a pending row may still be writing."""
    if owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int):
        try:
            os.kill(owner["pid"], 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return float(owner.get("lease_until") or 0) > time.time()
    return float(owner.get("lease_until") or 0) > time.time()


class Executor:
    """Applies the planned writes of one source and keeps the log."""

    def __init__(
        self,
        store: Store,
        source_cfg: JiraSource | ServiceNowSource,
        *,
        run_id: int | None,
        remote: Any = None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store, self.cfg, self.run_id, self.clock = store, source_cfg, run_id, clock
        self._remote = remote
        self._sleep = sleep
        self._after: dict[str, datetime | None] = {}
        """ServiceNow: the record's update time from the work note's PATCH response."""

    @property
    def remote(self) -> Any:
        if self._remote is None:  # built on first use: a pass with nothing to do sends nothing
            self._remote = (
                JiraRemote(self.cfg, sleep=self._sleep)
                if isinstance(self.cfg, JiraSource)
                else ServiceNowRemote(self.cfg, sleep=self._sleep)
            )
        return self._remote

    def close(self) -> None:
        if self._remote is not None:
            self._remote.close()

    def run(self, plans: list[PlannedWrite]) -> WritebackSummary:
        summary = WritebackSummary(planned=len(plans))
        before = self._stored_updated(plans)
        written: list[int] = []  # rows of the current ticket that sent a write
        for i, pw in enumerate(plans):
            row_id = self._one(pw, summary)
            if row_id is not None:
                written.append(row_id)
            # The plans of one ticket are consecutive (planned per key): after its last
            # one, note the ticket's update time before and after our writes.
            if written and (
                i + 1 == len(plans)
                or plans[i + 1].key != pw.key
                or plans[i + 1].source != pw.source
            ):
                self._stamp(pw, written, before.get(pw.key))
                written = []
        if self._remote is not None:
            summary.requests = self._remote.request_count
        return summary

    def _one(self, pw: PlannedWrite, summary: WritebackSummary) -> int | None:
        """Claim, apply and log one write; the log row's id when a write was sent."""
        row_id = self._claim(pw)
        if row_id is None:
            summary.busy += 1
            return None
        crash_point("after-intent", pw.action)
        try:
            wrote, detail, set_digest = self._apply(pw)
            crash_point("after-write", pw.action)
        except SourceError as exc:
            self._finish(row_id, FAILED, error=str(exc))
            summary.failed += 1
            summary.errors.append(f"{pw.source}/{pw.key} {pw.action}: {exc}")
            return None
        except Exception as exc:
            log.debug("write-back of %s/%s failed", pw.source, pw.key, exc_info=True)
            self._finish(row_id, FAILED, error=f"{type(exc).__name__}: {exc}")
            summary.failed += 1
            summary.errors.append(f"{pw.source}/{pw.key} {pw.action}: {type(exc).__name__}: {exc}")
            return None
        self._finish(row_id, DONE, detail=detail, digest=set_digest)
        if wrote:
            summary.written += 1
            return row_id
        summary.confirmed += 1
        return None

    # -- our writes' effect on the ticket's update time ---------------------------------
    def _stored_updated(self, plans: list[PlannedWrite]) -> dict[str, datetime | None]:
        """The stored records' ``updated_at`` (activity before our writes), per key."""
        keys = sorted({pw.key for pw in plans})
        out: dict[str, datetime | None] = {}
        if not keys:
            return out
        with self.store.session() as s:
            for chunk in _chunks(keys):
                rows = s.execute(
                    select(RecordRow.key, RecordRow.updated_at).where(
                        RecordRow.source == self.cfg.name, RecordRow.key.in_(chunk)
                    )
                )
                # Not dict(rows): a Result has .keys() (its column names), so dict() would
                # read it as a mapping.
                out.update((key, updated) for key, updated in rows)
        return out

    def _stamp(self, pw: PlannedWrite, row_ids: list[int], before: datetime | None) -> None:
        """Record ``updated_before`` / ``updated_after`` on the ticket's written rows.

        At most one request: ServiceNow's time came with the note's PATCH response; Jira's
        is read once after the ticket's last write. A failed read only loses the note
        (the ticket then looks active to staleness rules, as without this)."""
        after = self._after.pop(pw.key, None)
        if after is None and pw.system == "jira":
            try:
                after = self.remote.updated(pw.target["issue"])
            except SourceError as exc:
                log.warning(
                    "%s/%s: update time after write-back not read: %s", pw.source, pw.key, exc
                )
        if after is None:
            return
        times = {"updated_before": _iso(before), "updated_after": _iso(after)}
        self._merge_detail(row_ids, times)

    @retry_locked
    def _merge_detail(self, row_ids: list[int], extra: dict[str, Any]) -> None:
        with self.store.session() as s, s.begin():
            for row in s.scalars(select(WritebackRow).where(WritebackRow.id.in_(row_ids))):
                row.detail = {**(row.detail or {}), **extra}

    # -- the log ------------------------------------------------------------------------
    @retry_locked
    def _claim(self, pw: PlannedWrite) -> int | None:
        """Record the intent (a pending row); None when a live writer holds this ticket."""
        with self.store.session() as s, s.begin():
            open_rows = list(
                s.scalars(
                    select(WritebackRow).where(
                        WritebackRow.source == pw.source,
                        WritebackRow.key == pw.key,
                        WritebackRow.action == pw.action,
                        WritebackRow.state.in_((PENDING, FAILED)),
                    )
                )
            )
            for row in open_rows:
                if row.state == PENDING and _alive((row.detail or {}).get("owner") or {}):
                    return None
            attempts = max((r.attempts or 0 for r in open_rows), default=0) + 1
            for row in open_rows:
                row.state = SUPERSEDED
            row = WritebackRow(
                run_id=self.run_id,
                source=pw.source,
                key=pw.key,
                fingerprint=pw.digest,
                action=pw.action,
                state=PENDING,
                attempts=attempts,
                detail={**pw.detail, "target": pw.target, "owner": _owner()},
                created_at=self.clock(),
            )
            s.add(row)
            s.flush()
            return row.id

    @retry_locked
    def _finish(
        self,
        row_id: int,
        state: str,
        *,
        detail: dict[str, Any] | None = None,
        digest: str | None = None,
        error: str | None = None,
    ) -> None:
        with self.store.session() as s, s.begin():
            row = s.get(WritebackRow, row_id)
            assert row is not None
            row.state, row.error = state, error
            if digest is not None:
                row.fingerprint = digest
            merged = {**(row.detail or {}), **(detail or {})}
            if state == DONE:
                merged.pop("owner", None)  # the lease only matters while pending
            row.detail = merged
            if state == DONE:
                row.done_at = self.clock()

    # -- the writes ---------------------------------------------------------------------
    def _apply(self, pw: PlannedWrite) -> tuple[bool, dict[str, Any], str]:
        """Make the ticket match ``pw``: (whether anything was written, detail, digest)."""
        if pw.action == LABEL:
            return self._label(pw)
        if pw.action == COMMENT:
            return self._comment(pw)
        if pw.action == NOTE:
            return self._note(pw)
        raise ValueError(f"unknown write-back action {pw.action!r}")

    def _label(self, pw: PlannedWrite) -> tuple[bool, dict[str, Any], str]:
        issue = pw.target["issue"]
        add, remove = pw.detail.get("add"), list(pw.detail.get("remove") or [])
        if pw.verify:
            current = set(self.remote.labels(issue))
            add = add if add and add not in current else None
            remove = [name for name in remove if name in current]
        if not add and not remove:
            return False, {}, pw.digest
        self.remote.update_labels(issue, add, remove)
        return True, {}, pw.digest

    def _comment(self, pw: PlannedWrite) -> tuple[bool, dict[str, Any], str]:
        remote: JiraRemote = self.remote
        issue = pw.target["issue"]
        rev = int(pw.detail.get("rev") or 1)
        cid = pw.detail.get("comment_id")
        if pw.verify or cid is None:
            # Before a first comment (and after an unconfirmed attempt) look for ours: a
            # crash, a lost or restored store must not leave a second one.
            found = remote.find_ours(issue, cid)
            cid = str(found["id"]) if found else None
            if found is not None:
                mark = read_marker(remote.body_text(found.get("body")))
                if mark is not None and mark[1] == pw.digest[:12]:
                    return False, {"op": "found", "comment_id": cid, "rev": mark[0]}, pw.digest
                rev = max(rev, (mark[0] + 1) if mark else rev)
        if cid is None and not pw.findings:
            return False, {"op": "none", "comment_id": None}, EMPTY_DIGEST  # nothing to resolve
        findings = list(pw.findings)
        body = (
            adf(pw.key, findings, rev, pw.digest)
            if remote.cloud
            else plain_text(pw.key, findings, rev, pw.digest, markup="wiki")
        )
        if cid is not None and remote.edit_comment(issue, cid, body):
            return True, {"op": "edit", "comment_id": cid, "rev": rev}, pw.digest
        if not pw.findings:  # our comment was deleted by someone: no need to say "resolved"
            return False, {"op": "none", "comment_id": None}, EMPTY_DIGEST
        cid = remote.add_comment(issue, body)
        return True, {"op": "add", "comment_id": cid, "rev": rev}, pw.digest

    def _note(self, pw: PlannedWrite) -> tuple[bool, dict[str, Any], str]:
        remote: ServiceNowRemote = self.remote
        table, sys_id = pw.target["table"], pw.target["sys_id"]
        rev = int(pw.detail.get("rev") or 1)
        if pw.verify:
            latest = remote.latest_note(sys_id)
            if latest is not None and latest[1] == pw.digest[:12]:
                return False, {"rev": latest[0]}, pw.digest
            if latest is None and not pw.findings:
                return False, {"rev": 0}, EMPTY_DIGEST  # no note of ours: nothing to resolve
            if latest is not None:
                rev = max(rev, latest[0] + 1)
        text = plain_text(pw.key, list(pw.findings), rev, pw.digest)
        self._after[pw.key] = remote.add_note(table, sys_id, text, rev, pw.digest[:12])
        return True, {"rev": rev}, pw.digest
