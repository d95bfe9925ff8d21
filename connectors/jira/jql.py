"""JQL of the Jira reads: the scope, issue types, the incremental clause, keys, the order.

Every search is ``ORDER BY updated ASC, key ASC``; the incremental clause is written in
the API user's time zone (JQL dates are read in that zone, to the minute) minus the
lookback. Pure text: no HTTP here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo


def incremental_clause(since: datetime, tz_name: str, lookback_minutes: int) -> str:
    """``updated >= "yyyy/MM/dd HH:mm"`` for ``since`` minus the lookback, written in the
    API user's time zone (JQL dates are read in that zone, to the minute).

    A naive ``since`` is taken as UTC. Seconds are dropped (floor), which only widens the
    window, so nothing changed at or after ``since - lookback`` is missed.
    """
    return f'updated >= "{clause_start(since, tz_name, lookback_minutes):%Y/%m/%d %H:%M}"'


def clause_start(since: datetime, tz_name: str, lookback_minutes: int) -> datetime:
    """The instant :func:`incremental_clause` selects from: ``since`` minus the lookback,
    in the API user's time zone, floored to the minute."""
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    local = (since - timedelta(minutes=lookback_minutes)).astimezone(ZoneInfo(tz_name))
    return local.replace(second=0, microsecond=0)


def jql_string(value: str) -> str:
    """A JQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_jql(
    *,
    scope: str | None,
    issue_types: Sequence[str],
    since_clause: str | None,
    query: str | None = None,
    keys: Sequence[str] | None = None,
) -> str:
    """Scope AND issue types AND incremental clause AND extra query AND keys, ordered."""

    def group(extra: str | None) -> list[str]:
        if not extra or not extra.strip():
            return []
        if re.search(r"\border\s+by\b", extra, re.IGNORECASE):
            raise ValueError(
                f"JQL {extra!r} must not hold ORDER BY (ticketlint orders by updated, key)"
            )
        return [f"({extra.strip()})"]

    parts = group(scope)
    if issue_types:
        parts.append(f"issuetype in ({', '.join(jql_string(t) for t in issue_types)})")
    if since_clause:
        parts.append(since_clause)
    parts += group(query)
    if keys:
        parts.append(f"key in ({', '.join(jql_string(k) for k in keys)})")
    return " AND ".join(parts) + " ORDER BY updated ASC, key ASC"


def key_chunks(targets: dict[str, list[str]], limit: int) -> Iterator[list[str]]:
    """Keys to re-read: up to ``limit`` targets a chunk, each followed by the review keys
    linking it (once per chunk)."""
    chunk: list[str] = []
    count = 0
    for target, reviews in targets.items():
        if count >= limit:
            yield chunk
            chunk, count = [], 0
        chunk.extend(k for k in dict.fromkeys((target, *reviews)) if k not in chunk)
        count += 1
    if chunk:
        yield chunk
