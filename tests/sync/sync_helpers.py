"""Small readers of the store for assertions."""

from __future__ import annotations

from sqlalchemy import select

from sync.db import Store
from sync.models import FindingEventRow, FindingRow


def states(store: Store) -> dict[tuple[str, str], str]:
    """(rule, key) -> state of every stored finding."""
    with store.session() as s:
        return {(r.rule, r.key): r.state for r in s.scalars(select(FindingRow))}


def events(store: Store) -> list[tuple[str, str, str]]:
    """(rule, key, event kind) in order."""
    with store.session() as s:
        rows = s.execute(select(FindingRow.rule, FindingRow.key, FindingEventRow.kind)
                         .join(FindingEventRow, FindingEventRow.finding_id == FindingRow.id)
                         .order_by(FindingEventRow.id))
        return [tuple(r) for r in rows]  # type: ignore[misc]
