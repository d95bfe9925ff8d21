"""Read ahead of the writer: the next page is fetched and mapped while the last is stored.

:func:`prefetched` runs an iterator (a connector's batches) in one background thread and
hands its items to the caller through a bounded queue, in order. The caller stays the
only writer to the store; the reader never waits for a commit and the writer never waits
for a round trip, and at most ``depth`` batches wait in between (memory stays bounded).

Errors raised by the reader reach the caller at the item where they happened, with their
own traceback. When the caller stops early (an error while writing, a closed generator),
the reader is told to stop, its iterator is closed in its own thread, and the thread is
joined before :func:`prefetched` returns, so the caller may close the connector after it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()
_POLL = 0.05  # seconds between checks of the stop flag while the queue is full


def prefetched(items: Iterable[T], depth: int = 2) -> Generator[T, None, None]:
    """``items`` in order, produced up to ``depth`` ahead in a background thread."""
    handoff: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(entry: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(entry, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        source = iter(items)
        try:
            for item in source:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, raised there
            put((_DONE, exc))
        finally:
            close = getattr(source, "close", None)
            if callable(close):
                close()  # a generator stopped early runs its cleanup in its own thread

    reader = threading.Thread(target=produce, name="ticketlint-read-ahead", daemon=True)
    reader.start()
    try:
        while True:
            item, error = handoff.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        reader.join()
