"""connectors.readahead: prefetched (order kept, read-ahead bounded, errors and early stops
handled) and reader_switching (the switch interval shortened while reads run, restored).

The sync reads and maps the next page in a background thread while the main thread stores
the last one; these tests pin what the runner relies on: items arrive in order, the
reader is never more than ``depth`` items ahead of the writer, a reader error surfaces at
its place, and a writer that stops early leaves no thread behind and the reader's
generator closed (its ``finally`` run) before ``prefetched`` returns.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from ticketlint.connectors.readahead import READ_SWITCH_INTERVAL, prefetched, reader_switching


def test_items_arrive_in_order_and_the_reader_stays_within_depth() -> None:
    produced: list[int] = []
    lead: list[int] = []

    def reader() -> Iterator[int]:
        for i in range(50):
            produced.append(i)
            yield i

    for i in prefetched(reader(), depth=2):
        lead.append(len(produced) - i)
        assert produced[: i + 1] == list(range(i + 1))
    assert produced == list(range(50))
    # One item in the writer's hands, two in the queue, one being produced (blocked).
    assert max(lead) <= 4


def test_a_reader_error_is_raised_after_the_items_before_it() -> None:
    def reader() -> Iterator[int]:
        yield 1
        yield 2
        raise ConnectionError("page 3 failed")

    got: list[int] = []
    with pytest.raises(ConnectionError, match="page 3 failed"):
        got.extend(prefetched(reader()))  # keeps what arrived before the error
    assert got == [1, 2]


def test_a_writer_error_stops_the_reader_and_closes_its_generator() -> None:
    closed_in: list[str] = []
    before = {t.name for t in threading.enumerate()}

    def reader() -> Iterator[int]:
        try:
            i = 0
            while True:  # an endless source: only the stop can end it
                yield i
                i += 1
        finally:
            closed_in.append(threading.current_thread().name)

    with pytest.raises(RuntimeError, match="disk full"):
        for i in prefetched(reader(), depth=1):
            if i == 3:
                raise RuntimeError("disk full")
    assert closed_in == ["ticketlint-read-ahead"]  # cleaned up in the reader's own thread
    assert {t.name for t in threading.enumerate()} == before  # joined, nothing left behind


def test_an_empty_reader_gives_nothing() -> None:
    assert list(prefetched(iter(()))) == []


def test_reader_switching_shortens_the_switch_interval_and_restores_it() -> None:
    before = sys.getswitchinterval()
    with reader_switching():
        assert sys.getswitchinterval() == pytest.approx(READ_SWITCH_INTERVAL, rel=0.05)
    assert sys.getswitchinterval() == before


def test_reader_switching_restores_the_interval_on_errors_and_after_the_last_user() -> None:
    before = sys.getswitchinterval()
    with pytest.raises(RuntimeError), reader_switching():
        raise RuntimeError("a source failed")
    assert sys.getswitchinterval() == before
    # Overlapping users (serve's runs in threads): given back when the last one leaves.
    first, second = reader_switching(), reader_switching()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert sys.getswitchinterval() == pytest.approx(READ_SWITCH_INTERVAL, rel=0.05)
    second.__exit__(None, None, None)
    assert sys.getswitchinterval() == before


def test_reader_switching_never_lengthens_a_shorter_interval() -> None:
    before = sys.getswitchinterval()
    sys.setswitchinterval(READ_SWITCH_INTERVAL / 5)
    try:
        with reader_switching():
            assert sys.getswitchinterval() == pytest.approx(READ_SWITCH_INTERVAL / 5, rel=0.05)
        assert sys.getswitchinterval() == pytest.approx(READ_SWITCH_INTERVAL / 5, rel=0.05)
    finally:
        sys.setswitchinterval(before)
