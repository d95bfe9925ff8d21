"""One sync at a time: a file lock beside a SQLite database, advisory locks on PostgreSQL.

SQLite has one writer anyway, so one ``fcntl`` lock on ``<db>.lock`` covers every source.
On PostgreSQL each source has its own advisory lock (``pg_try_advisory_lock``) held on a
dedicated connection for the whole run, so ``ticketlint sync --source S`` jobs for
different sources run side by side on different hosts, and a run over all sources takes
every source's lock (or none). The locks vanish with the process that holds them, so a
killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, text
from typing_extensions import Self

from ticketlint.store.db import Store, sqlite_path


class LockBusy(Exception):
    """Another sync holds the lock (the CLI reports it and exits 0)."""


def advisory_key(source: str) -> int:
    """A stable signed 64-bit key per source for ``pg_try_advisory_lock``."""
    digest = hashlib.sha256(f"ticketlint:sync:{source}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class SyncLock:
    """Context manager; raises :class:`LockBusy` on entry when another run holds it."""

    def __init__(self, store: Store, sources: Sequence[str]) -> None:
        self.store = store
        self.sources = list(sources)
        self._fd: int | None = None
        self._conn: Connection | None = None
        self._held: list[int] = []

    def lock_path(self) -> Path:
        path = sqlite_path(self.store.url)
        if path is None:  # in-memory SQLite: one process, a per-user temp lock is enough
            return Path(tempfile.gettempdir()) / f"ticketlint-{os.getuid()}-memory.lock"
        return path.with_name(path.name + ".lock")

    def __enter__(self) -> Self:
        if self.store.dialect == "postgresql":
            self._acquire_advisory()
        else:
            self._acquire_file()
        return self

    def _acquire_file(self) -> None:
        path = self.lock_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockBusy(f"another sync is running (lock {path} is held)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # for a person wondering who holds it
        self._fd = fd

    def _acquire_advisory(self) -> None:
        conn = self.store.engine.connect()
        try:
            for source in self.sources:
                key = advisory_key(source)
                got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
                conn.commit()  # session-level lock: survives the transaction, not the session
                if not got:
                    raise LockBusy(
                        f"another sync of source {source!r} is running (advisory lock held)"
                    )
                self._held.append(key)
        except BaseException:
            self._conn = conn
            self._release()
            raise
        self._conn = conn

    def _release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        if self._conn is not None:
            for key in self._held:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            self._conn.commit()
            self._conn.close()
            self._conn, self._held = None, []

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        self._release()
        return None
