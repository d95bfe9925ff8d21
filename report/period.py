"""A reporting period, ``FROM..TO`` with inclusive calendar dates in UTC.

Either end may be left out (``2026-07-01..`` or ``..2026-09-30``); no period means all
time. ``TO`` is a whole day: ``..2026-09-30`` keeps everything up to 23:59:59 that day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any


class PeriodError(ValueError):
    """A period that cannot be parsed or ends before it starts."""


@dataclass(frozen=True)
class Period:
    start: date | None = None
    end: date | None = None

    @classmethod
    def parse(cls, text: str | None) -> Period:
        if not text or not text.strip():
            return cls()
        head, sep, tail = text.strip().partition("..")
        if not sep:
            raise PeriodError(f"{text!r}: expected FROM..TO, e.g. 2026-07-01..2026-09-30")
        try:
            start = date.fromisoformat(head) if head else None
            end = date.fromisoformat(tail) if tail else None
        except ValueError:
            raise PeriodError(f"{text!r}: FROM and TO are ISO dates (YYYY-MM-DD)") from None
        if start and end and end < start:
            raise PeriodError(f"{text!r}: the period ends before it starts")
        return cls(start, end)

    @property
    def since(self) -> datetime | None:
        """The first instant of the period (UTC), or None."""
        return datetime.combine(self.start, time.min, tzinfo=timezone.utc) if self.start else None

    @property
    def until(self) -> datetime | None:
        """The first instant after the period (exclusive bound), or None."""
        if self.end is None:
            return None
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=timezone.utc)

    def contains(self, when: datetime | None) -> bool:
        if when is None:
            return False
        return (self.since is None or when >= self.since) and (
            self.until is None or when < self.until
        )

    def overlaps(self, first: datetime | None, last: datetime | None) -> bool:
        """Whether [first, last] (``last`` None = still going) meets the period."""
        if first is not None and self.until is not None and first >= self.until:
            return False
        return not (last is not None and self.since is not None and last < self.since)

    def label(self) -> str:
        if not self.start and not self.end:
            return "all time"
        return f"{self.start.isoformat() if self.start else '…'} to {self.end.isoformat() if self.end else 'now'}"

    def __str__(self) -> str:
        if not self.start and not self.end:
            return ""
        return f"{self.start.isoformat() if self.start else ''}..{self.end.isoformat() if self.end else ''}"


def stored_time(value: Any) -> datetime | None:
    """A time as the store keeps it in a record's JSON (ISO 8601, ``Z`` or an offset; a
    naive value is UTC), or None when it is absent or unreadable."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
