"""Leaving the ``ticketlint`` process without the interpreter's teardown.

At exit CPython frees every object and module one by one: 0.1-0.3 s after a sync of
20,000 records, ~0.05 s after a `check`, time in which the command's work is already
done and written. The console script leaves with ``os._exit`` instead, as mypy does,
after doing by hand what a normal exit would still do that matters: database engines
closed (SQLite checkpoints its write-ahead log), logging handlers flushed and closed,
``atexit`` callbacks run (a coverage or multiprocessing hook), stdout and stderr
flushed. Where that cannot be done safely (another thread still running, a flush that
fails, an exit status that is not a number) the normal exit runs instead.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from typing import NoReturn

_leaving = False
_held: list[object] = []


def will_leave() -> None:
    """Called by the console script before its command runs: the process will end
    through :func:`leave`, so what :func:`hold` is given from now on is never freed."""
    global _leaving
    _leaving = True


def hold(*objects: object) -> None:
    """Keep ``objects`` alive until the process ends, when it ends through :func:`leave`.

    A command's last locals are otherwise freed one object at a time as its frame
    unwinds, after its output is written: ~0.15 s for the records, index and findings of
    a live ``check`` of 20,000 records. Only for plain data: a file or connection held
    here is never closed by its finaliser. Elsewhere (tests calling the commands, other
    programs importing them) it does nothing, so that runs do not pile up in memory.
    """
    if _leaving:
        _held.append(objects)


def leave(exc: SystemExit) -> NoReturn:
    """End the process with ``exc``'s status, skipping the interpreter's teardown."""
    code = exc.code
    if code is not None and not isinstance(code, int):
        raise exc  # a message: the interpreter prints it and exits 1
    if any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.main_thread()
    ):
        raise exc  # a normal exit joins it first
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        raise exc from None  # a closed pipe: the interpreter reports it as usual
    db = sys.modules.get("ticketlint.store.db")
    if db is not None:
        db.dispose_open_engines()
    logging.shutdown()
    atexit._run_exitfuncs()  # what a normal exit runs next; it clears them once run
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        os._exit(120)  # what CPython exits with when flushing at exit fails
    os._exit(code or 0)
