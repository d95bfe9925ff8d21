"""Progress on stderr while reading, and the end-of-run summary table.

Progress is throttled (a line per stream at most every ``interval`` seconds, plus one when
a stream ends), never one line per record. ``--log-format json`` turns every line the
sync writes into a JSON object, for log collectors: progress, warnings, failures and the
run summary on stderr (log records of every module too, through
:class:`JsonLogFormatter`), and on stdout the results the text format prints there (the
dry run's diff, one line per source of the summary table).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, TextIO

from ticketlint.escaping import plain_text
from ticketlint.redact import redact
from ticketlint.rules.registry import SEVERITIES


@dataclass
class StreamStats:
    records: int = 0
    pages: int = 0
    requests: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


class Progress:
    """Writes progress and log events to ``out`` (stderr), as text or JSON lines."""

    def __init__(
        self,
        out: TextIO | None = None,
        *,
        fmt: str = "text",
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        quiet: bool = False,
    ) -> None:
        self.quiet = quiet
        """``-q``: only warnings and errors (text lines; JSON logs stay complete)."""
        self.out = out if out is not None else sys.stderr
        self.fmt = fmt
        self.interval = interval
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}

    def event(self, event: str, message: str, level: str = "info", **fields: Any) -> None:
        if self.quiet and self.fmt != "json" and level not in ("warning", "error"):
            return
        if self.fmt == "json":
            line = {
                "ts": _now_text(),
                "level": level,
                "event": event,
                "message": message,
                **fields,
            }
            self.out.write(json.dumps(line, default=str) + "\n")
        else:
            prefix = "" if level == "info" else f"{level}: "
            self.out.write(f"{prefix}{message}\n")
        self.out.flush()

    def row(self, row: SummaryRow, **fields: Any) -> None:
        """One row of the summary table as a ``source_summary`` event."""
        self.event(
            "source_summary",
            f"{row.source}: {row.status}, {row.read} read, {row.mapped} mapped",
            **asdict(row),
            **fields,
        )

    def page(self, source: str, stream: str, stats: StreamStats) -> None:
        now = self.clock()
        last = self._last.get((source, stream))
        if last is not None and now - last < self.interval:
            return
        self._last[(source, stream)] = now
        self.event(
            "progress",
            f"{source}/{stream}: {stats.records} records, {stats.pages} pages, "
            f"{stats.rate:.0f} records/s",
            source=source,
            stream=stream,
            records=stats.records,
            pages=stats.pages,
            rate=round(stats.rate, 1),
        )

    def stream_done(self, source: str, stream: str, stats: StreamStats) -> None:
        self.event(
            "stream_done",
            f"{source}/{stream}: done, {stats.records} records in "
            f"{stats.pages} pages ({stats.seconds:.1f}s)",
            source=source,
            stream=stream,
            records=stats.records,
            pages=stats.pages,
            seconds=round(stats.seconds, 3),
        )


def _now_text() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class JsonLogFormatter(logging.Formatter):
    """A log record as one JSON line (``event`` ``log``), redacted like the text lines;
    a traceback goes into ``message``, never onto lines of its own."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        return json.dumps(
            {
                "ts": _now_text(),
                "level": record.levelname.lower(),
                "event": "log",
                "logger": record.name,
                "message": redact(message),
            },
            default=str,
        )


@contextlib.contextmanager
def json_logging(enabled: bool = True) -> Iterator[None]:
    """While it lasts, every handler of the root logger writes JSON lines, and Python
    warnings (``warnings.warn``) go through logging as well; restored afterwards."""
    if not enabled:
        yield
        return
    root = logging.getLogger()
    saved = [(handler, handler.formatter) for handler in root.handlers]
    added: logging.Handler | None = None
    if not saved:  # no handler: logging's last resort would write plain text
        added = logging.StreamHandler(sys.stderr)
        added.setLevel(logging.WARNING)
        root.addHandler(added)
    for handler in root.handlers:
        handler.setFormatter(JsonLogFormatter())
    logging.captureWarnings(True)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        if added is not None:
            root.removeHandler(added)
        for handler, formatter in saved:
            handler.setFormatter(formatter)


@dataclass
class SummaryRow:
    source: str
    status: str
    read: int = 0
    mapped: int = 0
    not_checked: int = 0
    """Records read but not checked (no identity, a type that maps to no process)."""
    unreadable: int = 0
    """Values that could not be read (each made one field of a checked record unknown)."""
    new: int = 0
    resolved: int = 0
    reopened: int = 0
    waived: int = 0
    open_by_severity: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def severity_text(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = [f"{counts[s]} {s}" for s in reversed(SEVERITIES) if counts.get(s)]
    return f"{total} ({', '.join(parts)})" if parts else str(total)


def summary_table(rows: Sequence[SummaryRow]) -> str:
    header = (
        "source",
        "status",
        "read",
        "mapped",
        "unchecked",
        "unreadable",
        "new",
        "resolved",
        "reopened",
        "waived",
        "open by severity",
        "time",
    )
    body = [
        (
            r.source,
            r.status,
            str(r.read),
            str(r.mapped),
            str(r.not_checked),
            str(r.unreadable),
            *(
                ("-",) * 4
                if r.status == "failed"
                else (str(r.new), str(r.resolved), str(r.reopened), str(r.waived))
            ),
            "-" if r.status == "failed" else severity_text(r.open_by_severity),
            f"{r.seconds:.1f}s",
        )
        for r in rows
    ]
    widths = [
        max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)
    ]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=False)).rstrip() for b in body]
    return "\n".join(lines)


def read_note(source: str, report: Any) -> str | None:
    """Why ``read`` and ``mapped`` differ in the summary table, in one line: rows that
    failed to map, rows an ACL returned empty, and rows that are not records themselves
    (Jira review issues mark their linked record's review; types and tables that map to
    no process are counted by name). None when every row read became a record."""
    rows, mapped = report.rows, report.mapped
    if rows <= mapped:
        return None
    errors, empty = len(report.errors), report.skipped_empty
    unmapped = {
        k.removeprefix("unmapped issue type "): n
        for k, n in report.warnings.items()
        if k.startswith("unmapped issue type ")
    }
    other = max(rows - mapped - errors - empty - sum(unmapped.values()), 0)
    parts = [f"{mapped} records"]
    if errors:
        parts.append(f"{errors} mapping errors (listed below)")
    if empty:
        parts.append(f"{empty} empty rows (hidden by an ACL)")
    if unmapped:
        parts.append(
            f"{sum(unmapped.values())} of issue types that map to no process ("
            + ", ".join(f"{name} {n}" for name, n in sorted(unmapped.items()))
            + "; see issue_types)"
        )
    if other:
        parts.append(f"{other} not records themselves (review issues and linked rows)")
    return f"  {source}: {rows} rows read = " + " + ".join(parts)


SHOWN = 10
"""Records not checked, and field/reason pairs that could not be read, listed per source."""


def unchecked_lines(source: str, not_checked: Sequence[dict[str, Any]]) -> list[str]:
    """The records of ``source`` that were read and not checked: the count, the first
    :data:`SHOWN` with key and reason, and where every one of them is listed."""
    if not not_checked:
        return []
    lines = [f"  {source}: {len(not_checked)} records not checked:"]
    for e in not_checked[:SHOWN]:
        key = plain_text(e["key"] or "(no key)")
        lines.append(f"    {key} ({e['kind']}): {plain_text(e['reason'])}")
    more = len(not_checked) - SHOWN
    lines.append(
        (f"    ... and {more} more; all" if more > 0 else "    all")
        + " with key and reason in the JSON summary (sync --log-format json)"
    )
    return lines


def unreadable_lines(source: str, unreadable: Any) -> list[str]:
    """Values of ``source`` that could not be read, per field and reason, most first
    (each made one field of a checked record unknown)."""
    counts = sorted(unreadable.items(), key=lambda item: (-item[1], item[0]))
    if not counts:
        return []
    total = sum(n for _, n in counts)
    lines = [
        f"  {source}: {total} values could not be read (that field unknown, the record still checked):"
    ]
    for (name, reason), n in counts[:SHOWN]:
        lines.append(f"    {plain_text(name)}: {plain_text(reason)} x{n}")
    if len(counts) > SHOWN:
        lines.append(
            f"    ... and {len(counts) - SHOWN} more fields and reasons (sync --log-format json)"
        )
    return lines
