"""The notification outbox: queue a digest with the run, deliver it once, retry later.

Row states (``notification_outbox.state``):

==============  ==================================================================
pending         queued, never tried
sending         claimed and committed *before* the HTTP request (attempts + 1)
sent            the platform answered 2xx (``sent_at`` set)
failed          the last try failed; retried by the next run (``last_error`` says why)
gave_up         failed :data:`MAX_ATTEMPTS` times; ``ticketlint notify retry ID`` forces
unconfirmed     found in ``sending`` after its process died: it may or may not have
                been posted, so it is never re-sent automatically (``notify retry``)
==============  ==================================================================

Recording before sending and confirming after means a crash between the two can never
cause a second post; the price is that such a message may be lost, and it is reported
(``unconfirmed``) instead. Every payload also carries a stable id (``ticketlint:run:<run>:
<destination>``) so a receiver can drop a duplicate that a forced retry would send.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ticketlint.config import Config, NotifyDestination
from ticketlint.notify.digest import Digest, ExposureLine, Item, build_digest, missing_fields
from ticketlint.notify.formatters import format_digest
from ticketlint.notify.transport import DeliveryError, send
from ticketlint.rules.engine import Finding
from ticketlint.store.db import Store, retry_locked, rows_matched
from ticketlint.store.models import FindingRow, OutboxRow

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, FAILED, GAVE_UP, UNCONFIRMED = (
    "pending",
    "sending",
    "sent",
    "failed",
    "gave_up",
    "unconfirmed",
)
RETRYABLE = (PENDING, FAILED)
MAX_ATTEMPTS = 8
"""Delivery attempts (one per run, each with a few HTTP tries) before a row gives up."""
STALE_SENDING = timedelta(minutes=15)
"""A ``sending`` row of another host older than this is taken as crashed."""
CRASH_ENV = "TICKETLINT_TEST_CRASH_AT"
IMMEDIATE_SEVERITIES = ("critical", "high")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _crash_point(name: str) -> None:
    """Die here, as ``kill -9`` would, when a test asks for it (``after-send``)."""
    if os.environ.get(CRASH_ENV) == name:
        os._exit(137)


# --- items from a run ----------------------------------------------------------------------


def item_from_finding(f: Finding, kind: str) -> Item:
    return Item(
        fingerprint=f.fingerprint,
        kind=kind,
        code=f.code,
        severity=f.severity,
        source=f.source,
        key=f.key,
        process=f.process,
        name=f.name,
        title=f.title,
        url=f.url,
        message=f.message,
        assignee=f.assignee,
        group=f.group,
        missing=missing_fields(f.evidence),
    )


def item_from_row(row: FindingRow, kind: str, resolution: str | None = None) -> Item:
    detail = row.detail or {}
    return Item(
        fingerprint=row.fingerprint,
        kind=kind,
        code=row.rule,
        severity=row.severity,
        source=row.source,
        key=row.key,
        process=row.process,
        name=detail.get("name", ""),
        title=detail.get("title", ""),
        url=row.url,
        message=row.message,
        assignee=row.assignee,
        group=row.group,
        missing=missing_fields(row.evidence),
        resolution=resolution or row.resolution,
    )


def items_of_run(session: Session, result: Any) -> tuple[list[Item], list[str]]:
    """Every change of the run as items (waived ones left out) and the failed sources."""
    items: list[Item] = []
    failed: list[str] = []
    resolved: dict[str, str | None] = {}
    for src in result.sources:
        if src.status != "ok":
            failed.append(f"{src.name}: {src.error or 'failed'}")
            continue
        for change in src.diff.changes:
            if change.kind in ("waived", "still_waived"):
                continue
            if change.finding is not None:
                items.append(item_from_finding(change.finding, change.kind))
            elif change.kind == "resolved":
                resolved[change.fingerprint] = change.resolution
    fps = list(resolved)
    for i in range(0, len(fps), 500):  # resolved findings: severity, group, url from the store
        for row in session.scalars(
            select(FindingRow).where(FindingRow.fingerprint.in_(fps[i : i + 500]))
        ):
            items.append(item_from_row(row, "resolved", resolved[row.fingerprint]))
    return items, failed


def envelope(dest: NotifyDestination, digest: Digest) -> dict[str, Any]:
    """The outbox payload: the platform body, fully built, plus what status/retry need."""
    return {
        "id": digest.dedup_id,
        "kind": digest.kind,
        "type": dest.type,
        "run_id": digest.run_id,
        "counts": dict(digest.counts),
        "open": digest.open_total,
        "body": format_digest(dest.type, digest),
    }


def digest_for_run(session: Session, cfg: Config, dest: NotifyDestination, result: Any) -> Digest:
    items, failed = items_of_run(session, result)
    return build_digest(
        dest,
        items,
        run_id=result.run_id,
        as_of=_iso(result.as_of),
        failed_sources=failed,
        report_url=cfg.report_url,
    )


# --- enqueue (inside the run's final transaction) -----------------------------------------------


def exposure_rises(session: Session, cfg: Config, run_id: int) -> list[ExposureLine]:
    """Processes whose audit exposure rose since the run before ``run_id``.

    The exposure model lives in the report package (imported here, when a digest is
    built, so notify does not load it otherwise)."""
    from ticketlint.report.exposure_data import exposure_rises as rises_since_last_run

    return [
        ExposureLine(r.process, float(r.before), float(r.after), r.line())
        for r in rises_since_last_run(session, cfg, run_id, _utcnow())
    ]


def enqueue(session: Session, cfg: Config, result: Any) -> int:
    """Queue one digest per destination for this run; returns how many rows were added.

    Called by the runner inside the transaction that finishes the run, so the rows commit
    with it or not at all. Nothing for a dry run, nor for a destination whose filtered
    digest holds nothing new, reopened or resolved (unless ``always: true``).
    """
    if getattr(result, "dry_run", False) or result.run_id is None or not cfg.notify:
        return 0
    items, failed = items_of_run(session, result)
    rose = exposure_rises(session, cfg, result.run_id)
    existing = set(
        session.scalars(select(OutboxRow.destination).where(OutboxRow.run_id == result.run_id))
    )
    added = 0
    for dest in cfg.notify:
        if dest.name in existing:
            continue
        digest = build_digest(
            dest,
            items,
            run_id=result.run_id,
            as_of=_iso(result.as_of),
            failed_sources=failed,
            report_url=cfg.report_url,
            exposure=rose,
        )
        if not digest.has_news and not dest.always:
            continue
        session.add(
            OutboxRow(
                run_id=result.run_id,
                destination=dest.name,
                payload=envelope(dest, digest),
                state=PENDING,
                attempts=0,
                created_at=_utcnow(),
            )
        )
        added += 1
    session.flush()
    return added


# --- delivery -----------------------------------------------------------------------------


def _claimant_gone(delivery: dict[str, Any] | None, now: datetime) -> bool:
    """Is the process that marked a row ``sending`` dead (so the row will never be confirmed)?"""
    if not delivery:
        return True
    if delivery.get("host") == socket.gethostname():
        pid = int(delivery.get("pid") or 0)
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except (PermissionError, OSError):
            return False
        return False
    try:
        since = datetime.fromisoformat(str(delivery.get("since")).replace("Z", "+00:00"))
    except ValueError:
        return True
    return now - since > STALE_SENDING


@retry_locked
def mark_unconfirmed(store: Store, *, now: datetime | None = None) -> list[OutboxRow]:
    """Rows left in ``sending`` by a dead process become ``unconfirmed`` (never re-sent)."""
    now = now or _utcnow()
    changed: list[OutboxRow] = []
    with store.session() as s, s.begin():
        for row in s.scalars(
            select(OutboxRow).where(OutboxRow.state == SENDING).order_by(OutboxRow.id)
        ):
            if _claimant_gone((row.payload or {}).get("delivery"), now):
                row.state = UNCONFIRMED
                row.last_error = (
                    "the process sending this stopped before it recorded the answer; it may "
                    f"have been posted, so it is not re-sent (ticketlint notify retry {row.id})"
                )
                changed.append(row)
    for row in changed:
        log.warning(
            "notify %s: message %d (run %s) is unconfirmed: %s",
            row.destination,
            row.id,
            row.run_id,
            row.last_error,
        )
    return changed


@retry_locked
def _claim(store: Store, row_id: int, states: Sequence[str]) -> OutboxRow | None:
    """Mark a row ``sending`` (attempts + 1) and commit, unless someone else has it."""
    with store.session() as s, s.begin():
        row = s.get(OutboxRow, row_id)
        if row is None or row.state not in states:
            return None
        delivery = {"host": socket.gethostname(), "pid": os.getpid(), "since": _iso(_utcnow())}
        done = s.execute(
            update(OutboxRow)
            .where(OutboxRow.id == row_id, OutboxRow.state.in_(list(states)))
            .values(
                state=SENDING,
                attempts=OutboxRow.attempts + 1,
                payload={**(row.payload or {}), "delivery": delivery},
            )
            .execution_options(synchronize_session=False)
        )
        if rows_matched(done) != 1:
            return None
    with store.session() as s:
        return s.get(OutboxRow, row_id)


@retry_locked
def _finish(store: Store, row_id: int, state: str, error: str | None) -> None:
    with store.session() as s, s.begin():
        row = s.get(OutboxRow, row_id)
        if row is None:
            return
        row.state, row.last_error = state, error
        if state == SENT:
            row.sent_at = _utcnow()


def deliver_row(
    store: Store, cfg: Config, row_id: int, *, states: Sequence[str] = RETRYABLE
) -> bool:
    """Claim, send and confirm one row; True when it was posted."""
    with store.session() as s:
        row = s.get(OutboxRow, row_id)
        if row is None:
            return False
        name = row.destination
    dest = next((d for d in cfg.notify if d.name == name), None)
    if dest is None:
        log.warning(
            "notify %s: message %d waits: no such destination in the configuration", name, row_id
        )
        return False
    row = _claim(store, row_id, states)
    if row is None:
        return False
    payload = row.payload or {}
    try:
        send(dest, payload.get("body"), dedup_id=payload.get("id"))
    except DeliveryError as exc:
        state = GAVE_UP if row.attempts >= MAX_ATTEMPTS else FAILED
        _finish(store, row_id, state, str(exc))
        log.warning(
            "%s (message %d, run %s, attempt %d)%s",
            exc,
            row_id,
            row.run_id,
            row.attempts,
            "; giving up" if state == GAVE_UP else "",
        )
        return False
    except Exception as exc:  # a bug must not leave the row in 'sending'
        _finish(
            store,
            row_id,
            FAILED,
            f"notify destination {name!r}: internal error ({type(exc).__name__})",
        )
        log.warning("notify %s: internal error (%s)", name, type(exc).__name__, exc_info=True)
        return False
    _crash_point("after-send")
    _finish(store, row_id, SENT, None)
    log.info("notify %s: message %d (run %s) sent", name, row_id, row.run_id)
    return True


def pending_ids(store: Store) -> list[int]:
    with store.session() as s:
        return list(
            s.scalars(
                select(OutboxRow.id)
                .where(OutboxRow.state.in_(RETRYABLE), OutboxRow.attempts < MAX_ATTEMPTS)
                .order_by(OutboxRow.id)
            )
        )


def drain(store: Store, cfg: Config, result: Any = None) -> dict[str, int]:
    """Deliver every pending or failed row, oldest first; returns counts by outcome.

    Called by the runner after all commits. Rows left ``sending`` by a dead process are
    marked ``unconfirmed`` first and reported, never sent again automatically.
    """
    report = {"sent": 0, "failed": 0, "unconfirmed": len(mark_unconfirmed(store))}
    for row_id in pending_ids(store):
        if deliver_row(store, cfg, row_id):
            report["sent"] += 1
        else:
            report["failed"] += 1
    return report


def retry(store: Store, cfg: Config, row_id: int) -> bool:
    """``ticketlint notify retry ID``: send a row again whatever its state, unless it was sent."""
    return deliver_row(store, cfg, row_id, states=(PENDING, FAILED, GAVE_UP, UNCONFIRMED))


# --- immediate posts (ticketlint serve) -----------------------------------------------------------


def post_immediate(
    store: Store, cfg: Config, findings: Iterable[Finding], *, source: str, key: str
) -> int:
    """Tell every destination at once about newly failing high/critical findings of one
    ticket; returns how many messages were posted now.

    Goes through the outbox with a dedup id made of the destination, ticket and the sorted
    fingerprints, so the same event (a retried webhook, another replica) is posted once.
    """
    items = [item_from_finding(f, "new") for f in findings if f.severity in IMMEDIATE_SEVERITIES]
    if not items or not cfg.notify:
        return 0
    digest_hash = hashlib.sha256(
        "\n".join(sorted(i.fingerprint for i in items)).encode()
    ).hexdigest()[:16]
    as_of = _iso(_utcnow())
    row_ids = _enqueue_immediate(store, cfg, items, source, key, digest_hash, as_of)
    return sum(deliver_row(store, cfg, rid) for rid in row_ids)


@retry_locked
def _enqueue_immediate(
    store: Store,
    cfg: Config,
    items: list[Item],
    source: str,
    key: str,
    digest_hash: str,
    as_of: str,
) -> list[int]:
    rows: list[OutboxRow] = []
    with store.session() as s, s.begin():
        for dest in cfg.notify:
            dedup = f"ticketlint:immediate:{dest.name}:{source}:{key}:{digest_hash}"
            digest = build_digest(
                dest,
                items,
                run_id=None,
                as_of=as_of,
                kind="immediate",
                dedup_id=dedup,
                subject=f"{source}/{key}",
            )
            if not digest.new:
                continue
            seen = s.scalars(
                select(OutboxRow.payload).where(
                    OutboxRow.run_id.is_(None), OutboxRow.destination == dest.name
                )
            )
            if any((p or {}).get("id") == dedup for p in seen):
                continue
            row = OutboxRow(
                run_id=None,
                destination=dest.name,
                payload=envelope(dest, digest),
                state=PENDING,
                attempts=0,
                created_at=_utcnow(),
            )
            s.add(row)
            rows.append(row)
        s.flush()
        return [r.id for r in rows]


# --- a run's digest rebuilt from the store (``notify preview --run``) ------------------------


def items_of_stored_run(
    session: Session, run_id: int
) -> tuple[list[Item], list[str], datetime | None]:
    """The run's changes from its history events, plus today's open findings as ``open``.

    Used when no outbox row holds the payload (nothing was queued for that destination):
    new = opened in this run and still open; reopened = reopened or unwaived in this run;
    resolved = resolved in this run.
    """
    from ticketlint.store.models import FindingEventRow, RunRow

    run = session.get(RunRow, run_id)
    if run is None:
        raise LookupError(f"no run {run_id}")
    kinds: dict[int, set[str]] = {}
    for ev in session.scalars(select(FindingEventRow).where(FindingEventRow.run_id == run_id)):
        kinds.setdefault(ev.finding_id, set()).add(ev.kind)
    items: list[Item] = []
    seen: set[int] = set()
    ids = list(kinds)
    for i in range(0, len(ids), 500):
        for row in session.scalars(select(FindingRow).where(FindingRow.id.in_(ids[i : i + 500]))):
            k = kinds[row.id]
            if "resolved" in k:
                items.append(item_from_row(row, "resolved"))
            elif k & {"reopened", "unwaived"} and row.state == "open":
                items.append(item_from_row(row, "reopened"))
            elif "opened" in k and row.state == "open":
                items.append(item_from_row(row, "new"))
            else:
                continue
            seen.add(row.id)
    for row in session.scalars(select(FindingRow).where(FindingRow.state == "open")):
        if row.id not in seen:
            items.append(item_from_row(row, "open"))
    failed = [
        f"{name}: {info.get('error') or 'failed'}"
        for name, info in (run.sources or {}).items()
        if isinstance(info, dict) and info.get("status") == "failed"
    ]
    return items, failed, run.as_of
