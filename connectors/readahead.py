"""Read ahead: the next item of an iterator is produced while the caller uses the last.

:func:`prefetched` runs an iterator in one background thread and hands its items to the
caller through a bounded queue, in order; at most ``depth`` items wait in between (memory
stays bounded). Its uses, nested:

- a connector's pager: the next page is requested (and parsed) while the caller maps the
  last, so a read costs about the larger of the server's time and ours, not their sum;
  Jira Cloud's search goes one step further, its requests sent by a thread of their own
  that does not wait for the parse (:mod:`ticketlint.connectors.jira.search`);
- the sync: the next batch is read and mapped while the runner, the only writer to the
  store, stores the last; the reader never waits for a commit and the writer never waits
  for a round trip.

:func:`reader_switching` shortens the interpreter's thread switch interval while reads
run, so a reader woken by its socket gets the interpreter back soon from a busy mapper.

Errors raised by the reader reach the caller at the item where they happened, with their
own traceback. When the caller stops early (an error while writing, a closed generator),
the reader is told to stop, its iterator is closed in its own thread, and the thread is
joined before :func:`prefetched` returns, so the caller may close the connector after it.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Generator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

T = TypeVar("T")

PAGES_AHEAD = 3
"""Pages a connector's pager requests ahead of the page being mapped. More than one: a
Jira stream that needs histories maps a thousand issues at a time after their bulkfetch
(~0.3 s at the sandbox's pace), and with one page ahead the server sat idle meanwhile.
Three took 0.2 s (3%) off a 20,000-record first sync (5 runs alternating); a parsed
search page is about 2 MB."""

READ_SWITCH_INTERVAL = 0.0005
"""Seconds a thread may hold the interpreter while another waits for it, during reads
(CPython's default is 0.005). A reader thread wakes from a socket read for every chunk of
a page and needs the interpreter back before its next round trip can go out, while the
mapping and the store's writer are busy in it; at 5 ms a wake-up could wait that long.
A 20,000-record first sync against the sandbox, 6 pairs alternating: median 6.31 s at
0.005, 6.05 s at 0.0005, 6.14 s at 0.0002 (`check --source` 5.64 -> 5.52 s)."""

_DONE = object()
_POLL = 0.05  # seconds between checks of the stop flag while the queue is full


_switch_lock = threading.Lock()
_switch_users = 0
_switch_before = 0.0


@contextmanager
def reader_switching() -> Iterator[None]:
    """While the body runs, threads hand the interpreter over after
    :data:`READ_SWITCH_INTERVAL` at most (never longer than it was). Restored when the
    last of overlapping users leaves, also on errors; a process-wide setting, so a run
    inside ``serve`` gives it back to the server's threads."""
    global _switch_users, _switch_before
    with _switch_lock:
        if _switch_users == 0:
            _switch_before = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_before, READ_SWITCH_INTERVAL))
        _switch_users += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_users -= 1
            if _switch_users == 0:
                sys.setswitchinterval(_switch_before)


def prefetched(items: Iterable[T], depth: int = 2) -> Generator[T, None, None]:
    """``items`` in order, produced up to ``depth`` ahead in a background thread (started
    at the first ``next``)."""
    ahead = ReadAhead(items, depth)
    try:
        yield from ahead
    finally:
        ahead.close()


class ReadAhead(Generic[T]):
    """``items`` produced from now on in a background thread, up to ``depth`` ahead of the
    caller, who iterates them once and closes this (also when never iterated): close tells
    the reader to stop, closes ``items`` in the reader's thread and joins it."""

    def __init__(self, items: Iterable[T], depth: int = 2) -> None:
        self._items = items
        self._handoff: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(
            maxsize=max(1, depth)
        )
        self._stop = threading.Event()
        self._done = False
        self._reader = threading.Thread(
            target=self._produce, name="ticketlint-read-ahead", daemon=True
        )
        self._reader.start()

    def __iter__(self) -> Iterator[T]:
        while not self._done:
            item, error = self._handoff.get()
            if item is _DONE:
                self._done = True
                if error is not None:
                    raise error
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        self._reader.join()

    def _put(self, entry: tuple[Any, BaseException | None]) -> bool:
        while not self._stop.is_set():
            try:
                self._handoff.put(entry, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        source = iter(self._items)
        try:
            for item in source:
                if not self._put((item, None)):
                    return
            self._put((_DONE, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
            self._put((_DONE, exc))
        finally:
            close = getattr(source, "close", None)
            if callable(close):
                close()  # a generator stopped early runs its cleanup in its own thread
