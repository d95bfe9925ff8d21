"""What happens around a sync run that is not syncing: chat and write-back, as hooks.

The runner lives below ``notify`` and ``plugin`` and never imports them. Whoever starts a
run (the ``sync`` command, a test, serve) hands it a :class:`RunHooks` with the callables
it wants; :func:`ticketlint.sync.commands.standard_hooks` builds the product's own.

Contract, for the callables given:

- ``enqueue(session, cfg, result)`` runs inside the transaction that finishes the run, so
  outbox rows commit with the run (a digest is queued exactly once);
- ``drain(store, cfg, result)`` and ``writeback(store, cfg, result)`` run after every
  commit; a failure is logged and never changes what was stored;
- ``preview(store, cfg, result)`` runs instead of ``writeback`` on a dry run and returns the
  planned writes (objects with ``describe()``, or plain strings).

A run whose options ask for notification or write-back without the matching hook says so
once on stderr: a missing hook is never a silent skip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ticketlint.config import Config
    from ticketlint.store.db import Store


class WriteSummary(Protocol):
    """What a write-back hook returns: enough for the one line the run prints."""

    disabled: bool

    def text(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RunHooks:
    """The callables a run calls after its work; each ``None`` means "not wired"."""

    enqueue: Callable[[Session, Config, Any], object] | None = None
    """Its return value (the notify hook's: rows queued) is not read."""
    drain: Callable[[Store, Config, Any], dict[str, int]] | None = None
    writeback: Callable[[Store, Config, Any], WriteSummary | None] | None = None
    preview: Callable[[Store, Config, Any], Sequence[Any]] | None = None
