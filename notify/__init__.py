"""Chat notifications: one digest per run per destination, delivered once through the outbox.

The runner calls :func:`enqueue` inside the transaction that finishes a run and
:func:`drain` after every commit; ``ticketlint serve`` calls :func:`post_immediate`.
Formatters (one pure function per platform) live in :mod:`ticketlint.notify.formatters`, the
outbox states in :mod:`ticketlint.notify.outbox`, HTTP and signing in :mod:`ticketlint.notify.transport`.
"""

from __future__ import annotations

from ticketlint.notify.outbox import drain, enqueue, post_immediate, retry

__all__ = ["drain", "enqueue", "post_immediate", "retry"]
