"""When a source is read whole: the periodic full reconcile and what ``doctor`` says of it.

An incremental read asks each source for what changed since its watermark. Nothing in
such an answer says that a record was deleted, or that it no longer matches the
configured JQL / encoded query: it is simply absent. A full read ("reconcile") re-reads
the whole scope; whatever the store holds and the read did not return is gone, and its
open findings end as "gone". ``sync --full`` forces one; otherwise every
``sync.reconcile_every``-th completed run of a source is one (0: only with ``--full``), and
a source's first read (no watermark yet) is whole anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ticketlint.config import Config
from ticketlint.store import repository as repo
from ticketlint.store.db import StoreError, open_store, sqlite_path


@dataclass(frozen=True)
class ReconcileState:
    last_full: datetime | None
    """When the last full read of the source finished (None: never)."""
    last_run: int | None
    since: int
    """Completed incremental runs of the source since then."""
    every: int
    first_read: bool
    """No watermark yet: the next run reads everything anyway."""

    @property
    def due(self) -> bool:
        if self.first_read or self.last_full is None:
            return True
        return self.every > 0 and self.since + 1 >= self.every

    def text(self) -> str:
        if self.first_read:
            return "never synced: the first sync reads everything"
        when = (
            self.last_full.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            if self.last_full
            else None
        )
        last = (
            f"last full reconcile {when} (run {self.last_run})" if when else "no full reconcile yet"
        )
        if self.every == 0:
            nxt = "next only with `sync --full` (sync.reconcile_every = 0)"
        elif self.due:
            nxt = "the next sync is one"
        else:
            nxt = f"next in {self.every - 1 - self.since} run(s) (sync.reconcile_every = {self.every})"
        return f"{last}; {self.since} incremental run(s) since; {nxt}"


def state(session: Session, cfg: Config, source: str) -> ReconcileState:
    since, run = repo.runs_since_full(session, source)
    return ReconcileState(
        last_full=(run.finished_at or run.started_at) if run is not None else None,
        last_run=run.id if run is not None else None,
        since=since,
        every=cfg.sync.reconcile_every,
        first_read=not repo.get_watermarks(session, source),
    )


def doctor_lines(cfg: Config, sources: list[str]) -> dict[str, str]:
    """Per source, the reconcile line ``doctor`` prints; empty when there is no store yet
    (a SQLite file that does not exist is not created) or it cannot be read."""
    return {name: info["reconcile"] for name, info in doctor_info(cfg, sources).items()}


def doctor_info(cfg: Config, sources: list[str]) -> dict[str, dict[str, str]]:
    """Per source, what ``doctor`` says of the store: ``reconcile`` (when deletions were
    last looked for) and, once a sync finished the source, ``last sync`` (the records it
    could not check and the values it could not read). Empty when there is no store yet
    (a SQLite file that does not exist is not created) or it cannot be read."""
    path = sqlite_path(cfg.database)
    if cfg.database.startswith("sqlite") and (path is None or not path.exists()):
        return {}
    try:
        store = open_store(cfg.database, migrate=False)
    except StoreError:
        return {}
    try:
        with store.session() as s:
            out: dict[str, dict[str, str]] = {}
            for name in sources:
                out[name] = {"reconcile": state(s, cfg, name).text()}
                last = repo.last_source_run(s, name)
                if last is not None:
                    out[name]["last sync"] = last_sync_text(*last)
            return out
    except SQLAlchemyError:  # no tables yet, or an older schema: nothing to say
        return {}
    finally:
        store.dispose()


def last_sync_text(run_id: int, entry: dict[str, Any]) -> str:
    """``run 7: 120 records read, 3 not checked, 5 values could not be read``, from the
    source's part of a stored run (runs stored before these counts say less)."""
    mapping: dict[str, Any] = entry["mapping"] if isinstance(entry.get("mapping"), dict) else {}
    parts = [f"run {run_id}: {entry.get('records_read', 0)} records read"]
    unchecked = mapping.get("not_checked")
    if isinstance(unchecked, int):
        parts.append(f"{unchecked} not checked")
    unreadable = mapping.get("unreadable")
    if isinstance(unreadable, list):
        total = sum(u.get("count", 0) for u in unreadable if isinstance(u, dict))
        parts.append(f"{total} values could not be read")
    text = ", ".join(parts)
    if isinstance(unchecked, int) and unchecked:
        text += "; `ticketlint sync --log-format json` lists them with key and reason"
    return text
