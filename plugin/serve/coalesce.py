"""A small worker pool that coalesces bursts of events for the same ticket.

Saving a ticket often fires several webhooks within a second (a field edit, a
transition, a comment). Each event only says "this ticket changed", so N events for one
ticket within the debounce window give one re-check. An event that arrives while that
ticket's re-check is running schedules exactly one more run after it (the running one
may have read the ticket before the latest change). Different tickets run in parallel on
``workers`` threads; one ticket never runs twice at once.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TicketRef:
    """Which ticket to re-check: only identifiers, never the payload's field values.

    ``key`` is the Jira issue key (or id) or the ServiceNow ``sys_id``; ``table`` is the
    ServiceNow table (None for Jira). ``hint_updated`` is the update time the event
    claims: only used to notice that the source returned an older version (Jira's search
    index lags a moment behind an edit) and to try again shortly.
    """

    source: str
    key: str
    table: str | None = None
    hint_updated: datetime | None = None
    deleted: bool = False
    attempt: int = 0

    @property
    def coalesce_key(self) -> Hashable:
        return (self.source, self.table or "", self.key)

    def merged(self, newer: TicketRef) -> TicketRef:
        """One pending re-check for both events: the newest hint and the latest verdict
        on deletion win."""
        hints = [h for h in (self.hint_updated, newer.hint_updated) if h is not None]
        return replace(self, hint_updated=max(hints) if hints else None, deleted=newer.deleted)


Handler = Callable[[TicketRef], "float | None"]
"""Runs one re-check; returns seconds after which to try again (stale read), or None."""


class CoalescingQueue:
    def __init__(
        self,
        handler: Handler,
        *,
        workers: int = 4,
        debounce: float = 0.25,
        max_attempts: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.handler, self.debounce, self.max_attempts, self.clock = (
            handler,
            debounce,
            max_attempts,
            clock,
        )
        self._pending: dict[Hashable, TicketRef] = {}
        self._due: list[tuple[float, int, Hashable]] = []
        self._running: set[Hashable] = set()
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="ticketlint-recheck"
        )
        self._stopping = False
        self._thread = threading.Thread(
            target=self._schedule_loop, name="ticketlint-scheduler", daemon=True
        )
        self.submitted = self.coalesced = self.processed = self.failed = 0
        self._thread.start()

    # -- producer side ------------------------------------------------------------------
    def submit(self, ref: TicketRef, *, delay: float | None = None) -> bool:
        """Schedule a re-check of ``ref``; False when it joined one already pending."""
        key = ref.coalesce_key
        with self._cond:
            self.submitted += 1
            if key in self._pending:
                self._pending[key] = self._pending[key].merged(ref)
                self.coalesced += 1
                return False
            self._pending[key] = ref
            due = self.clock() + (self.debounce if delay is None else delay)
            heapq.heappush(self._due, (due, next(self._seq), key))
            self._cond.notify_all()
            return True

    # -- the scheduler ------------------------------------------------------------------
    def _schedule_loop(self) -> None:
        with self._cond:
            while not self._stopping:
                if not self._due:
                    self._cond.wait()
                    continue
                due, _, key = self._due[0]
                wait = due - self.clock()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._due)
                if key in self._running:
                    # Still running from an earlier event: look again shortly, so the
                    # ticket is re-read after the change that this event announced.
                    heapq.heappush(self._due, (self.clock() + self.debounce, next(self._seq), key))
                    continue
                ref = self._pending.pop(key)
                self._running.add(key)
                self._pool.submit(self._run, key, ref)

    def _run(self, key: Hashable, ref: TicketRef) -> None:
        retry: float | None = None
        try:
            retry = self.handler(ref)
        except Exception:  # a failed re-check is logged and counted; the server stays up
            log.exception("re-check of %s %s failed", ref.source, ref.key)
            with self._cond:
                self.failed += 1
        finally:
            with self._cond:
                self._running.discard(key)
                self.processed += 1
                self._cond.notify_all()
        if retry is not None and ref.attempt + 1 < self.max_attempts:
            self.submit(replace(ref, attempt=ref.attempt + 1), delay=retry)

    # -- lifecycle ------------------------------------------------------------------------
    def pending_count(self) -> int:
        """Tickets waiting for or in a re-check."""
        with self._cond:
            return len(set(self._pending) | self._running)

    def idle(self) -> bool:
        with self._cond:
            return not self._pending and not self._running

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is pending or running (tests and shutdown)."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._running:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is pending (up to ``timeout``), then stop the threads."""
        self.wait_idle(timeout)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=2)
        self._pool.shutdown(wait=True, cancel_futures=True)
