"""Test doubles for the sync tests: an in-memory connector and a tiny rule engine.

Both are importable by a subprocess through the runner's test hooks:
``TICKETLINT_TEST_CONNECTOR=sync_fakes:connector_from_env`` reads its records from the
JSON file named by ``TICKETLINT_FAKE_DATA`` and
``TICKETLINT_TEST_ENGINE=sync_fakes:engine`` builds the engine of the rules below.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
import warnings
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ticketlint.connectors.base import DoctorReport, SourceError, StreamBatch
from ticketlint.mapping.common import MappingError, MappingReport
from ticketlint.mapping.model import BaseRecord, ChangeRecord, IncidentRecord, record_from_dict
from ticketlint.rules.engine import Engine
from ticketlint.rules.outcome import NOT_APPLICABLE, PASS, fail, missing_field
from ticketlint.rules.registry import rule

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


@rule(
    code="TST001",
    name="change-backout",
    title="A change has a backout plan",
    severity="high",
    clause="8.5.1.3",
    applies_to=["change"],
)
def change_backout(record: ChangeRecord, ctx: Any) -> Any:
    """**Why**

    Test rule.

    **Fails when**

    x

    **Passes when**

    x

    **Remediation**

    Write one.
    """
    if record.backout_plan is None:
        return missing_field("change.backout_plan")
    return PASS if record.backout_plan.strip() else fail("no backout plan")


@rule(
    code="TST002",
    name="incident-notes",
    title="Resolved incidents say how",
    severity="medium",
    clause="8.6.1",
    applies_to=["incident"],
)
def incident_notes(record: IncidentRecord, ctx: Any) -> Any:
    """**Why**

    Test rule.

    **Fails when**

    x

    **Passes when**

    x

    **Remediation**

    Write them.
    """
    if record.state not in ("resolved", "closed"):
        return NOT_APPLICABLE
    return PASS if (record.resolution_notes or "").strip() else fail("no resolution notes")


@rule(
    code="TST003",
    name="incident-stale",
    title="Open incidents move",
    severity="low",
    clause="8.6.1",
    applies_to=["incident"],
    params={"stale_days": 7},
)
def incident_stale(record: IncidentRecord, ctx: Any) -> Any:
    """**Why**

    Test rule.

    **Fails when**

    x

    **Passes when**

    x

    **Remediation**

    Move it.
    """
    if record.state in ("resolved", "closed", "cancelled") or not isinstance(
        record.updated_at, datetime
    ):
        return NOT_APPLICABLE
    age = ctx.as_of - record.updated_at
    return fail(f"idle {age.days} days") if age > timedelta(days=ctx.params["stale_days"]) else PASS


RULES = [change_backout, incident_notes, incident_stale]


def engine(cfg: Any = None) -> Engine:
    return Engine(RULES)


def change(
    source: str, key: str, *, backout: str = "", minutes: int = 0, **kw: Any
) -> ChangeRecord:
    return ChangeRecord(
        source=source,
        system="jira",
        key=key,
        state="closed",
        backout_plan=backout,
        updated_at=T0 + timedelta(minutes=minutes),
        url=f"https://x/{key}",
        raw={"key": key},
        **kw,
    )


def incident(
    source: str, key: str, *, notes: str = "", state: str = "resolved", minutes: int = 0, **kw: Any
) -> IncidentRecord:
    return IncidentRecord(
        source=source,
        system="servicenow",
        key=key,
        state=state,
        resolution_notes=notes,
        updated_at=T0 + timedelta(minutes=minutes),
        raw={"number": key},
        **kw,
    )


class FakeConnector:
    """The connector protocol over in-memory records, paged ``page_size`` at a time in
    ``updated_at`` order; ``since`` filters like a real incremental read (no lookback)."""

    def __init__(
        self,
        name: str,
        streams: dict[str, list[BaseRecord]],
        *,
        page_size: int = 2,
        fail_stream: str | None = None,
        delay: float = 0.0,
        bad_rows: int = 0,
        unreadable: int = 0,
        sigint_stream: str | None = None,
        sigint_delay: float = 0.0,
        log_warning: str | None = None,
    ) -> None:
        self.log_warning = log_warning
        """Log this warning (and warn it through ``warnings``) when the first page is read,
        as connectors do (a refused sys_dictionary, TLS checking turned off)."""
        self.sigint_stream = sigint_stream
        """Send this process a real SIGINT (Ctrl-C) when this stream is read, after
        ``sigint_delay`` seconds."""
        self.sigint_delay = sigint_delay
        self.name = name
        self.data = streams
        self.streams: Sequence[str] = list(streams)
        self.page_size = page_size
        self.fail_stream = fail_stream
        self.delay = delay
        self.bad_rows = bad_rows
        self.unreadable = unreadable
        """Values of the first page's records that could not be read (counted only)."""
        self.request_count = 0
        self.calls: list[tuple[str, datetime | None]] = []
        self.closed = False

    def read(
        self,
        stream: str,
        *,
        since: datetime | None = None,
        query: str | None = None,
        keys: Sequence[str] | None = None,
    ) -> Iterator[StreamBatch]:
        self.calls.append((stream, since))
        if self.sigint_stream == stream:
            time.sleep(self.sigint_delay)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler raises KeyboardInterrupt before this ends
        rows = sorted(self.data[stream], key=lambda r: (r.updated_at, r.key))
        if since is not None:
            rows = [r for r in rows if r.updated_at >= since]
        mark = since
        for start in range(0, max(len(rows), 1), self.page_size):
            if self.fail_stream == stream and start > 0:
                raise SourceError(
                    self.name, "HTTP 503 while paging", url="https://x/api", status=503
                )
            page = rows[start : start + self.page_size]
            self.request_count += 1
            if self.delay:
                time.sleep(self.delay)
            report = MappingReport(rows=len(page), mapped=len(page))
            if start == 0 and self.log_warning:
                logging.getLogger("ticketlint.connectors.fake").warning(
                    "%s: %s", self.name, self.log_warning
                )
                warnings.warn(f"{self.name}: {self.log_warning}", UserWarning, stacklevel=1)
            if start == 0 and self.bad_rows:
                report.rows += self.bad_rows
                report.errors += [
                    MappingError(self.name, f"BAD-{i}", "unparsable date")
                    for i in range(self.bad_rows)
                ]
            if start == 0 and self.unreadable:
                report.unreadable[("change.cab_date", "not a date or time")] += self.unreadable
                report.unreadable[("change.priority", "not a number")] += 1
            for r in page:
                mark = r.updated_at if mark is None or r.updated_at > mark else mark
            yield StreamBatch(stream, list(page), report, mark, requests=1)
        if self.fail_stream == stream and len(rows) <= self.page_size:
            raise SourceError(self.name, "HTTP 503 while paging", url="https://x/api", status=503)

    def doctor(self) -> DoctorReport:
        return DoctorReport(self.name)

    def close(self) -> None:
        self.closed = True


def write_data(path: Path, data: dict[str, dict[str, list[BaseRecord]]], **options: Any) -> None:
    """Save {source: {stream: records}} for :func:`connector_from_env`."""
    payload = {
        "options": options,
        "sources": {
            s: {st: [r.model_dump(mode="json") for r in recs] for st, recs in streams.items()}
            for s, streams in data.items()
        },
    }
    path.write_text(json.dumps(payload), encoding="utf-8")


def connector_from_env(source_cfg: Any) -> FakeConnector:
    payload = json.loads(Path(os.environ["TICKETLINT_FAKE_DATA"]).read_text(encoding="utf-8"))
    streams = {
        st: [record_from_dict(d) for d in recs]
        for st, recs in payload["sources"][source_cfg.name].items()
    }
    return FakeConnector(source_cfg.name, streams, **payload.get("options", {}))
