"""The connector contract: what the CLI and the sync runner ask of every source.

A connector knows HTTP and the source API, not ISO 20000: it fetches raw pages, hands
them to its mapper and yields :class:`StreamBatch` values. It never turns an HTTP error
into "zero records": errors are :class:`SourceError` and fail the source.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ticketlint.mapping.common import MappingReport
from ticketlint.mapping.model import BaseRecord


class SourceError(Exception):
    """A source could not be read. Names the URL (never a secret), the HTTP status, the
    server's own error text and what to check. Exit code 2."""

    exit_code = 2

    def __init__(
        self,
        source: str,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        detail: str | None = None,
        hint: str | None = None,
    ) -> None:
        parts = [f"{source}: {message}"]
        if url:
            parts.append(f"URL: {url}")
        if status is not None:
            parts.append(f"HTTP {status}")
        if detail:
            parts.append(f"server said: {detail}")
        if hint:
            parts.append(f"check: {hint}")
        super().__init__("; ".join(parts))
        self.source, self.url, self.status, self.detail, self.hint = (
            source,
            url,
            status,
            detail,
            hint,
        )


@dataclass
class StreamBatch:
    """Mapped records of one page (or a few) of one stream, in source order."""

    stream: str
    records: list[BaseRecord]
    report: MappingReport
    watermark: datetime | None
    """The newest ``updated`` value read so far in this stream: safe to store once this
    batch (and every one before it) is committed."""
    requests: int = 0


@dataclass
class DoctorCheck:
    name: str
    ok: bool
    detail: str = ""
    level: str = "error"  # error | warning | info


@dataclass
class DoctorReport:
    source: str
    checks: list[DoctorCheck] = field(default_factory=list)
    not_evaluated: dict[str, str] = field(default_factory=dict)
    """rule code -> why it cannot be evaluated on this source."""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok or c.level != "error" for c in self.checks)


class Connector(Protocol):
    name: str

    @property
    def streams(self) -> Sequence[str]:
        """The streams this source can read, in the order they should be read."""
        ...

    @property
    def request_count(self) -> int:
        """HTTP requests sent so far (retries included)."""
        ...

    def read(
        self,
        stream: str,
        *,
        since: datetime | None = None,
        query: str | None = None,
        keys: Sequence[str] | None = None,
    ) -> Iterator[StreamBatch]:
        """Yield mapped batches of ``stream`` changed since ``since`` (minus the lookback)."""
        ...

    def doctor(self) -> DoctorReport: ...

    def close(self) -> None: ...


def plan_reads(connector: Connector, since_by_stream: Mapping[str, datetime | None]) -> None:
    """Tell ``connector`` that this run reads every stream of ``since_by_stream``, in its
    ``streams`` order, each from its ``since``, when it can use that (an optional
    ``plan`` method: ServiceNow prefetches each process's related rows in one read, Jira
    searches the review issues once for the incident and change streams). A connector
    without it reads stream by stream."""
    plan = getattr(connector, "plan", None)
    if callable(plan):
        plan(dict(since_by_stream))
