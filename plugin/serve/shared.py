"""serve's state that must hold across replicas: seen deliveries and re-read times, kept
in the store (SQLite or the PostgreSQL every replica shares), not in process memory.

- :class:`StoreReplayGuard`: ``first_time(delivery_id)`` is True once per id within the
  window, for all replicas together: an ``INSERT`` of the id's SHA-256 either succeeds
  (first time) or hits the primary key; an entry older than the window is taken over by
  a conditional ``UPDATE`` (one replica wins). Old entries are deleted now and then.
- :class:`RereadGate`: ``claim(source, key)`` is None when this replica may re-read the
  ticket now (and records the time), or the seconds to wait when any replica re-read it
  less than ``interval`` ago; the re-check is then rescheduled, not dropped.

When the store cannot be written (a locked SQLite file, a lost connection), both fall
back to the process's own memory and log it: a replay is then refused by this replica
only, which is what a single replica always did.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ticketlint.plugin.serve.security import ReplayGuard
from ticketlint.store.db import Store
from ticketlint.store.models import RereadRow, WebhookDeliveryRow

log = logging.getLogger(__name__)

PURGE_EVERY = 500
"""Deliveries accepted between two deletions of expired entries."""


def _instant(clock: Callable[[], float]) -> datetime:
    return datetime.fromtimestamp(clock(), tz=timezone.utc)


class StoreReplayGuard:
    """:class:`~ticketlint.plugin.serve.security.ReplayGuard`'s interface, in the store."""

    def __init__(
        self, store: Store, window: float, *, clock: Callable[[], float], namespace: str = ""
    ) -> None:
        self.store, self.window, self.clock, self.namespace = store, window, clock, namespace
        self.fallback = ReplayGuard(window, clock=clock)
        self._count = 0
        self._lock = threading.Lock()

    def first_time(self, delivery_id: str) -> bool:
        ident = hashlib.sha256(
            f"{self.namespace}:{delivery_id}".encode("utf-8", "replace")
        ).hexdigest()
        now = _instant(self.clock)
        try:
            first = self._claim(ident, now)
        except SQLAlchemyError as exc:
            log.warning(
                "replay check in the store failed (%s); this replica's memory decides",
                type(exc).__name__,
            )
            return self.fallback.first_time(delivery_id)
        self.fallback.first_time(delivery_id)  # keeps memory warm for a later fallback
        return first

    def _claim(self, ident: str, now: datetime) -> bool:
        cutoff = now - timedelta(seconds=self.window)
        with self.store.session() as s:
            try:
                s.execute(insert(WebhookDeliveryRow).values(id=ident, seen_at=now))
                s.commit()
                first = True
            except IntegrityError:
                s.rollback()
                taken = s.execute(
                    update(WebhookDeliveryRow)
                    .where(WebhookDeliveryRow.id == ident, WebhookDeliveryRow.seen_at < cutoff)
                    .values(seen_at=now)
                )
                s.commit()
                first = bool(getattr(taken, "rowcount", 0))
            with self._lock:
                self._count += 1
                purge = self._count % PURGE_EVERY == 0
            if purge:
                s.execute(delete(WebhookDeliveryRow).where(WebhookDeliveryRow.seen_at < cutoff))
                s.commit()
        return first

    def __len__(self) -> int:
        with self.store.session() as s:
            return len(s.execute(select(WebhookDeliveryRow.id)).all())


class RereadGate:
    """At most one re-read of a ticket per ``interval`` seconds over every replica."""

    def __init__(self, store: Store, interval: float, *, clock: Callable[[], float]) -> None:
        self.store, self.interval, self.clock = store, interval, clock
        self._memory: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def claim(self, source: str, key: str) -> float | None:
        """None: re-read now (recorded). A number: seconds until a re-read is allowed."""
        if self.interval <= 0:
            return None
        now = _instant(self.clock)
        try:
            return self._claim(source, key, now)
        except SQLAlchemyError as exc:
            log.warning(
                "re-read gate in the store failed (%s); this replica's memory decides",
                type(exc).__name__,
            )
            return self._claim_in_memory(source, key, self.clock())

    def _claim(self, source: str, key: str, now: datetime) -> float | None:
        cutoff = now - timedelta(seconds=self.interval)
        row = RereadRow
        with self.store.session() as s:
            taken = s.execute(
                update(row)
                .where(row.source == source, row.key == key, row.last_at <= cutoff)
                .values(last_at=now)
            )
            s.commit()
            if getattr(taken, "rowcount", 0):
                return None
            try:
                s.execute(insert(row).values(source=source, key=key, last_at=now))
                s.commit()
                return None
            except IntegrityError:
                s.rollback()
            last = s.execute(
                select(row.last_at).where(row.source == source, row.key == key)
            ).scalar_one_or_none()
        if last is None:  # deleted in between: try again shortly
            return 0.05
        return max(0.05, self.interval - (now - last).total_seconds())

    def _claim_in_memory(self, source: str, key: str, now: float) -> float | None:
        with self._lock:
            last = self._memory.get((source, key))
            if last is not None and now - last < self.interval:
                return max(0.05, self.interval - (now - last))
            self._memory[(source, key)] = now
            return None
