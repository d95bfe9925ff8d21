"""Run a function over ``0..n-1`` in forked worker processes, results in order.

``check --input`` parses, maps and checks export pages on every core: the work of a page
needs the state built before it (the mapper, the review index, the configuration items),
and forked workers inherit that state instead of having it pickled to them; only the
page number goes out and a compact result comes back. Where ``fork`` is unavailable
(Windows), on one CPU, or for ``jobs=1``, the same function runs in this process.

A worker that dies (the kernel's out-of-memory killer, a crash in a C extension) takes
its job with it, and ``multiprocessing.Pool`` would wait for that job's result for ever:
the parent watches its workers while it waits and raises :class:`WorkerLost` instead.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

_JOB: Callable[[int], Any] | None = None
"""The function a forked pool runs: set just before the fork, inherited by the workers."""


WATCH_SECONDS = 1.0
"""How long the parent waits for a result before it looks whether a worker died."""


class WorkerLost(RuntimeError):
    """A worker process ended while it had work: its results are lost, the run cannot be
    answered exactly, and waiting on would never end."""


def _call(number: int) -> tuple[int, bool, Any]:
    """``(number, failed, result or exception)``: an exception travels back as a value, to
    be raised at its place in the order rather than when it happens to arrive."""
    assert _JOB is not None  # set before the pool was forked
    try:
        return number, False, _JOB(number)
    except Exception as exc:  # noqa: BLE001 - raised again by run_ordered, in order
        return number, True, exc


def _call_many(numbers: Sequence[int]) -> list[tuple[int, bool, Any]]:
    return [_call(number) for number in numbers]


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


MAX_DEFAULT_JOBS = 8
"""Beyond this many workers the one process that merges their results is the limit, and
each worker holds a page or a table of its own."""


def default_jobs() -> int:
    """Worker processes by default: one per available CPU (at most
    :data:`MAX_DEFAULT_JOBS`), none where fork is missing."""
    return min(available_cpus(), MAX_DEFAULT_JOBS) if can_fork() else 1


def run_ordered(
    job: Callable[[int], T],
    count: int,
    jobs: int,
    *,
    weights: Sequence[float] | None = None,
    chunksize: int = 1,
    arrived: Callable[[T], None] | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> Iterator[T]:
    """``job(0)``, ``job(1)``, ... ``job(count - 1)``, yielded in that order, computed by
    ``jobs`` forked processes (here, one at a time, when ``jobs`` < 2, ``count`` < 2 or fork
    is missing), in :func:`_start_order` of ``weights``; results that come early wait here.
    An exception of a job is raised here, at its place in the order; leaving the
    iteration early stops the workers. One pool runs at a time. Many small jobs go out
    ``chunksize`` at a time: one message to a worker and back for each job costs more
    than the job does when it takes a few milliseconds. ``arrived``, when given, sees
    each result as it arrives, before it waits for its turn (a caller may start on it
    while the workers go on). ``meanwhile`` runs once the workers have their jobs (here:
    before the first job), before any result is taken."""
    global _JOB
    if jobs < 2 or count < 2 or not can_fork():
        if meanwhile is not None:
            meanwhile()
        for value in map(job, range(count)):
            if arrived is not None:
                arrived(value)
            yield value
        return
    if _JOB is not None:
        raise RuntimeError("run_ordered: a pool is already running")
    order = _start_order(count, weights)
    _JOB = job
    try:
        context = multiprocessing.get_context("fork")
        before = {p.pid for p in multiprocessing.active_children()}
        with context.Pool(min(jobs, count), initializer=_default_sigterm) as pool:
            workers = [p for p in multiprocessing.active_children() if p.pid not in before]
            waiting: dict[int, tuple[bool, Any]] = {}
            following = 0
            # Chunked here, not by imap_unordered: its chunked iterator is a generator,
            # which cannot wait with a timeout.
            chunks = [order[i : i + chunksize] for i in range(0, len(order), chunksize)]
            results = pool.imap_unordered(_call_many, chunks)
            if meanwhile is not None:
                meanwhile()
            for number, failed, value in (r for rs in _watched(results, workers) for r in rs):
                if arrived is not None and not failed:
                    arrived(value)
                waiting[number] = (failed, value)
                while following in waiting:
                    failed, value = waiting.pop(following)
                    following += 1
                    if failed:
                        raise value
                    yield value
    finally:
        _JOB = None


def _watched(results: Any, workers: Sequence[Any]) -> Iterator[Any]:
    """The pool's results as they come; :class:`WorkerLost` once one of ``workers`` (the
    pool's processes) has ended. A pool's worker ends only when the pool does, so any end
    before is a death: the pool would start another worker, but the job it held is gone."""
    while True:
        try:
            yield results.next(timeout=WATCH_SECONDS)
        except StopIteration:
            return
        except multiprocessing.TimeoutError:
            ended = multiprocessing.connection.wait([p.sentinel for p in workers], timeout=0)
            if ended:
                dead = next(p for p in workers if p.sentinel == ended[0])
                raise WorkerLost(_how_it_ended(dead)) from None


def _how_it_ended(process: Any) -> str:
    code = process.exitcode  # None: the pool's own thread reaped it first
    if code is not None and code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
        if code == -signal.SIGKILL:
            how += " (out of memory?)"
    elif code is not None:
        how = f"exited with status {code}"
    else:
        how = "ended"
    return (
        f"a worker process (pid {process.pid}) {how} before its work was done;"
        " run again, or with --jobs 1 to work in one process"
    )


def _default_sigterm() -> None:
    """A worker ends on SIGTERM (how a pool stops it) instead of running a handler the
    parent installed (``sync`` turns SIGTERM into an interrupt, to commit what it can)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


HEAVY = 2
"""A job weighing this many times the median job or more starts before the others. At 4,
the bench's 100k export started its ServiceNow problem table (twice a run of Jira pages)
last: one worker checked it for 0.2 s while the other had nothing left."""


def _start_order(count: int, weights: Sequence[float] | None) -> list[int]:
    """Jobs much heavier than the median first, heaviest first (a large table started
    last would leave the other workers idle at the end); the others in their order
    (neighbouring pages share the files they read, which a worker keeps parsed)."""
    if weights is None:
        return list(range(count))
    median = sorted(weights)[count // 2]
    heavy = sorted(
        (n for n in range(count) if weights[n] >= HEAVY * median > 0), key=lambda n: -weights[n]
    )
    chosen = set(heavy)
    return heavy + [n for n in range(count) if n not in chosen]
