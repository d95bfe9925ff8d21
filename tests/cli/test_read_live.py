"""A live ``check`` reads its sources at once, one thread each, and answers as a read
source after source would: records, CI sources and the report in the configured order,
the first failing source's error (not another's), the other readers stopped early."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import ticketlint.cli as cli_mod
from ticketlint.connectors.base import SourceError, StreamBatch
from ticketlint.connectors.readahead import READ_SWITCH_INTERVAL
from ticketlint.mapping.common import MappingReport
from ticketlint.mapping.model import BaseRecord, record_from_dict


@dataclass
class _Source:
    name: str
    type: str = "jira"


def _record(source: str, key: str, process: str = "incident") -> BaseRecord:
    return record_from_dict(
        {"source": source, "system": "jira", "key": key, "process": process, "state": "new"}
    )


@dataclass
class _Connector:
    """``pages`` batches of two records each per stream, ``delay`` seconds a batch;
    raises ``fail`` after ``fail_after`` batches."""

    name: str
    streams: tuple[str, ...]
    pages: int
    delay: float = 0.0
    fail: Exception | None = None
    fail_after: int = 0
    request_count: int = 0
    served: int = 0
    closed: bool = False
    threads: set[str] = field(default_factory=set)
    switch_intervals: set[float] = field(default_factory=set)

    def read(self, stream: str, **_: Any) -> Iterator[StreamBatch]:
        self.threads.add(threading.current_thread().name)
        self.switch_intervals.add(sys.getswitchinterval())
        for page in range(self.pages):
            if self.fail is not None and self.served == self.fail_after:
                raise self.fail
            time.sleep(self.delay)
            self.served += 1
            self.request_count += 1
            process = "ci" if stream == "ci" else "incident"
            records = [_record(self.name, f"{stream}-{page}-{n}", process) for n in range(2)]
            report = MappingReport(rows=2, mapped=2)
            report.warnings[f"{self.name} {stream} page {page}"] += 1
            yield StreamBatch(stream, records, report, None)

    def close(self) -> None:
        self.closed = True


def _read(
    monkeypatch: pytest.MonkeyPatch, connectors: dict[str, _Connector]
) -> tuple[list[BaseRecord], set[str], MappingReport]:
    monkeypatch.setattr(cli_mod, "_open_connector", lambda src: connectors[src.name])
    sources = [_Source(name) for name in connectors]
    return cli_mod._read_live(sources, jql=None, query=None, keys={}, since=None)


def test_sources_are_read_at_once_and_joined_in_their_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow = _Connector("jira-prod", ("incident", "change"), pages=3, delay=0.05)
    fast = _Connector("snow-prod", ("ci", "incident"), pages=2)
    records, ci_sources, report = _read(monkeypatch, {"jira-prod": slow, "snow-prod": fast})
    assert [(r.source, r.key) for r in records] == [
        *(
            ("jira-prod", f"{s}-{p}-{n}")
            for s in ("incident", "change")
            for p in range(3)
            for n in range(2)
        ),
        *(
            ("snow-prod", f"{s}-{p}-{n}")
            for s in ("ci", "incident")
            for p in range(2)
            for n in range(2)
        ),
    ]
    assert ci_sources == {"snow-prod"}
    assert list(report.warnings) == [
        *(f"jira-prod {s} page {p}" for s in ("incident", "change") for p in range(3)),
        *(f"snow-prod {s} page {p}" for s in ("ci", "incident") for p in range(2)),
    ]
    assert report.rows == 20
    assert slow.closed and fast.closed
    readers = slow.threads | fast.threads
    assert len(readers) == 2 and threading.current_thread().name not in readers


def test_a_failing_source_stops_the_others_and_its_error_is_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slow = _Connector("jira-prod", ("incident",), pages=200, delay=0.01)
    broken = _Connector(
        "snow-prod",
        ("incident",),
        pages=5,
        fail=SourceError("snow-prod", "server error", status=503),
        fail_after=1,
    )
    started = time.monotonic()
    with pytest.raises(SourceError, match="HTTP 503"):
        _read(monkeypatch, {"jira-prod": slow, "snow-prod": broken})
    assert slow.served < 100  # stopped at its next batch, not read to the end
    assert time.monotonic() - started < 1.5
    assert slow.closed and broken.closed


def _failing(name: str, status: int, *, delay: float = 0.0, after: int = 0) -> _Connector:
    error = SourceError(name, "refused", status=status)
    return _Connector(name, ("incident",), pages=3, delay=delay, fail=error, fail_after=after)


def test_the_first_source_in_order_names_the_error_when_both_fail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = _failing("jira-prod", 401, delay=0.05, after=2), _failing("snow-prod", 500)
    with pytest.raises(SourceError) as raised:
        _read(monkeypatch, {"jira-prod": first, "snow-prod": second})
    # The second failed first and stopped the first one, whose own read never failed.
    assert raised.value.status == 500
    first, second = _failing("jira-prod", 401), _failing("snow-prod", 500, delay=0.05, after=2)
    with pytest.raises(SourceError, match="HTTP 401"):
        _read(monkeypatch, {"jira-prod": first, "snow-prod": second})


def test_one_source_is_read_in_this_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    only = _Connector("jira-prod", ("incident",), pages=2)
    records, _, _ = _read(monkeypatch, {"jira-prod": only})
    assert len(records) == 4
    assert only.threads == {threading.current_thread().name}


def test_sources_are_read_with_the_short_switch_interval_and_it_is_given_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each reader thread gets the interpreter back soon from the thread that evaluates
    (readahead.READ_SWITCH_INTERVAL), during the read only, also when a source fails."""
    before = sys.getswitchinterval()
    jira, snow = _Connector("jira-prod", ("incident",), pages=2), _failing("snow-prod", 500)
    with pytest.raises(SourceError):
        _read(monkeypatch, {"jira-prod": jira, "snow-prod": snow})
    intervals = jira.switch_intervals | snow.switch_intervals
    assert intervals and all(i == pytest.approx(READ_SWITCH_INTERVAL, rel=0.05) for i in intervals)
    assert sys.getswitchinterval() == before
