"""What both mappers share: options from a source's config, the per-run mapping report
(errors, skipped rows, unknown statuses), and parsing of source values."""

from __future__ import annotations

import contextlib
import gc
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

WRITEBACK_MARKER = "ticketlint-writeback"
"""Carried by every comment / work note ticketlint writes onto a ticket (``ticketlint.plugin.writeback``).
Mappers never read such a text as the team's own notes: our comment listing what is
missing must not count as the resolution notes it asks for."""


_OFFSET_NO_COLON = re.compile(r"([+-])(\d\d)(\d\d)$")


class MappingError(Exception):
    """One source record could not be mapped. Counted and reported; the run goes on."""

    def __init__(self, source: str, key: str | None, reason: str) -> None:
        super().__init__(f"{source}: {key or '(no key)'}: {reason}")
        self.source = source
        self.key = key
        self.reason = reason

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "key": self.key, "reason": self.reason}


@dataclass
class MappingOptions:
    """Per-source overrides of the RULES.md §4 defaults (from the source's config)."""

    source: str
    base_url: str = ""
    fields: Mapping[str, str] = field(default_factory=dict)
    """canonical ``<process>.<field>`` -> source field name or id; ``!name`` negates."""
    status_map: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """process -> source status name or code -> normalised state."""
    issue_types: Mapping[str, list[str]] = field(default_factory=dict)
    """Jira: process (or ``review``) -> issue type names."""
    tables: Mapping[str, str] = field(default_factory=dict)
    """ServiceNow: process -> table name."""
    priority_map: Mapping[str, int] = field(default_factory=dict)
    """Jira: priority name -> 1..5 for names outside the defaults."""


@dataclass
class MappingReport:
    """Counts of one mapping run, shown in the summary and by ``doctor``."""

    rows: int = 0
    mapped: int = 0
    skipped_empty: int = 0
    errors: list[MappingError] = field(default_factory=list)
    unknown_statuses: Counter[tuple[str, str]] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)

    def merge(self, other: MappingReport) -> None:
        self.rows += other.rows
        self.mapped += other.mapped
        self.skipped_empty += other.skipped_empty
        self.errors.extend(other.errors)
        self.unknown_statuses.update(other.unknown_statuses)
        self.warnings.update(other.warnings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "mapped": self.mapped,
            "skipped_empty": self.skipped_empty,
            "errors": [e.to_dict() for e in self.errors],
            "unknown_statuses": [
                {"process": p, "status": s, "count": n}
                for (p, s), n in sorted(self.unknown_statuses.items())
            ],
            "warnings": dict(sorted(self.warnings.items())),
        }


def parse_jira_time(value: Any) -> datetime | None:
    """``2026-03-02T14:10:05.123-0700`` (any offset) -> aware UTC datetime."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a timestamp string, got {type(value).__name__}")
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    text = _OFFSET_NO_COLON.sub(r"\1\2:\3", text)  # Python 3.10 needs +HH:MM
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return parsed.astimezone(timezone.utc)


def parse_servicenow_time(value: Any) -> datetime | None:
    """``yyyy-MM-dd HH:mm:ss`` in UTC (raw Table API values) -> aware UTC datetime."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a 'yyyy-MM-dd HH:mm:ss' string, got {type(value).__name__}")
    return datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)


def text_or_empty(value: Any) -> str:
    """A provided text field: its text, or "" when it holds nothing."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):  # option / reference objects
        for k in ("value", "name", "displayName", "display_value"):
            text = value.get(k)
            if isinstance(text, str):
                return text
    return str(value)


def truthy_flag(value: Any) -> bool:
    """A source boolean: real booleans, ServiceNow's "true"/"false", Jira option objects.
    A non-empty text or a date counts as set (how `review` fields are read)."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, str):
        v = value.strip().lower()
        return v not in ("", "false", "0", "no", "n", "off", "none", "null")
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, (list, dict)):
        return len(value) > 0
    return True


@contextlib.contextmanager
def gc_paused(*, promote: bool = False) -> Iterator[None]:
    """Pause the cyclic garbage collector around a batch that allocates many long-lived
    objects (mapping a page, evaluating a run). Those objects hold no cycles, yet each
    allocation burst triggers full collections that re-scan everything built so far:
    about a third of the mapping time. Nested use is safe.

    ``promote=True`` (the mappers): when the outermost pause ends, what the batch built
    moves straight to the oldest generation instead of being scanned by the next young
    collection and the one after it (~15% of mapping time). Nothing is lost: a cycle
    built during the batch is still found, by the next full collection. Skipped when
    the process keeps objects frozen on purpose (``gc.freeze()``, e.g. before a fork),
    whose freeze ``gc.unfreeze()`` would undo."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if promote and gc.get_freeze_count() == 0:
                gc.freeze()  # every tracked object -> the permanent generation ...
                gc.unfreeze()  # ... -> the oldest generation, no scan either way
            gc.enable()
