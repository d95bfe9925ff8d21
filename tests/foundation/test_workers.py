"""``ticketlint.workers.run_ordered``: results in order whatever order the workers take
the jobs in, exceptions raised at their place, the pool stopped when the caller stops,
and the exceptions ``check --input`` workers raise survive the trip back."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ticketlint import workers
from ticketlint.connectors.files import InputError, NeedsBatch
from ticketlint.mapping.common import MappingError, Unreadable

pytestmark = pytest.mark.skipif(not workers.can_fork(), reason="no fork on this platform")


def _slow_first(number: int) -> tuple[int, int]:
    time.sleep(0.05 if number == 0 else 0)  # the first job arrives last
    return number, os.getpid()


@pytest.mark.parametrize("chunksize", [1, 5])
@pytest.mark.parametrize("jobs", [1, 2, 4])
def test_results_come_in_job_order(jobs: int, chunksize: int) -> None:
    results = list(workers.run_ordered(_slow_first, 12, jobs, chunksize=chunksize))
    assert [number for number, _ in results] == list(range(12))
    pids = {pid for _, pid in results}
    if jobs == 1:
        assert pids == {os.getpid()}
    else:
        assert os.getpid() not in pids


def test_heavy_jobs_start_first_and_still_come_back_in_order() -> None:
    assert workers._start_order(6, [1, 1, 50, 1, 9, 1]) == [2, 4, 0, 1, 3, 5]
    assert workers._start_order(4, [0, 0, 0, 0]) == [0, 1, 2, 3]
    assert workers._start_order(5, [2, 2, 4, 2, 3]) == [2, 0, 1, 3, 4]  # twice the median
    assert workers._start_order(3, None) == [0, 1, 2]
    weights = [1.0] * 10
    weights[9] = 100.0
    results = list(workers.run_ordered(_slow_first, 10, 2, weights=weights))
    assert [number for number, _ in results] == list(range(10))


def _fails_at_three(number: int) -> int:
    if number == 3:
        raise InputError(Path("/x/search-3.json"), "not valid JSON")
    time.sleep(0.05 if number < 3 else 0)  # later jobs finish before the failing one
    return number


@pytest.mark.parametrize("chunksize", [1, 2, 3])
def test_an_exception_is_raised_at_its_place_in_the_order(chunksize: int) -> None:
    got: list[int] = []
    with pytest.raises(InputError) as raised:
        for value in workers.run_ordered(_fails_at_three, 8, 2, chunksize=chunksize):
            got.append(value)  # noqa: PERF402 - what came before the exception
    assert got == [0, 1, 2]
    assert raised.value.path == Path("/x/search-3.json")
    assert raised.value.problem == "not valid JSON"
    assert workers._JOB is None  # the next pool may start


def test_leaving_early_stops_the_pool() -> None:
    results = workers.run_ordered(_slow_first, 50, 2)
    assert next(results)[0] == 0
    results.close()
    assert workers._JOB is None
    assert list(workers.run_ordered(_slow_first, 3, 2))[2][0] == 2


def test_one_pool_at_a_time() -> None:
    outer = workers.run_ordered(_slow_first, 4, 2)
    next(outer)
    with pytest.raises(RuntimeError, match="already running"):
        next(workers.run_ordered(_slow_first, 4, 2))
    outer.close()


@pytest.mark.parametrize(
    "exc",
    [
        InputError(Path("/data/export/incident.json"), "not UTF-8 text"),
        NeedsBatch("a value nested too deep"),
        MappingError("jira", "CHG-7", "issue has no fields object"),
        Unreadable("not a number", "'4.0.1'"),
    ],
    ids=type,
)
def test_the_exceptions_of_a_worker_survive_pickling(exc: Exception) -> None:
    again = pickle.loads(pickle.dumps(exc))
    assert type(again) is type(exc)
    assert str(again) == str(exc)
    assert vars(again) == vars(exc)


def test_the_default_is_one_job_per_available_cpu() -> None:
    expected = min(workers.available_cpus(), workers.MAX_DEFAULT_JOBS)
    assert workers.default_jobs() == (expected if workers.can_fork() else 1)
    assert workers.available_cpus() >= 1


def _first_sleeps(number: int) -> int:
    time.sleep(0.3 if number == 0 else 0)
    return number


@pytest.mark.parametrize("jobs", [1, 2])
def test_arrived_sees_each_result_as_it_comes(jobs: int) -> None:
    """``arrived`` (``check --input`` writes the findings' text with it) gets every result
    when it arrives, not when its turn comes, and never an exception."""
    seen: list[int] = []
    results = workers.run_ordered(_first_sleeps, 12, jobs, arrived=seen.append)
    assert next(results) == 0
    assert 0 in seen
    if jobs > 1:
        assert len(seen) > 1  # the others arrived while the first job slept
    assert [0, *results] == sorted(seen) == list(range(12))
    failed: list[int] = []
    with pytest.raises(InputError):
        list(workers.run_ordered(_fails_at_three, 8, jobs, arrived=failed.append))
    assert all(isinstance(value, int) for value in failed)  # no exception among them


@pytest.mark.parametrize("jobs", [1, 2])
def test_meanwhile_runs_once_while_the_workers_have_their_jobs(jobs: int) -> None:
    """``meanwhile`` (``check --input`` reads the held ServiceNow tables in it while the
    Jira pages scan): once, before any result is taken; with workers, while they run."""
    calls: list[bool] = []
    results = workers.run_ordered(
        _first_sleeps, 4, jobs, meanwhile=lambda: calls.append(workers._JOB is not None)
    )
    assert calls == []  # nothing runs before the first result is asked for
    assert list(results) == [0, 1, 2, 3]
    assert calls == [jobs > 1]


DIES = """
import os, signal, sys, time
from ticketlint import workers

def job(number):
    if number == 3:
        {death}
    time.sleep(0.02)
    return number

try:
    got = list(workers.run_ordered(job, 12, 2))
except workers.WorkerLost as exc:
    print("lost:", exc)
    assert workers._JOB is None
    print("after:", list(workers.run_ordered(lambda n: n * 2, 4, 2)))
else:
    print("finished:", got)
"""


@pytest.mark.parametrize(
    ("death", "how"),
    [
        ("os.kill(os.getpid(), signal.SIGKILL)", "was killed by SIGKILL (out of memory?)"),
        ("os._exit(3)", "exited with status 3"),
    ],
    ids=["killed", "exited"],
)
def test_a_worker_that_dies_fails_the_run_instead_of_hanging_it(death: str, how: str) -> None:
    """A dead worker's job never comes back: ``multiprocessing.Pool`` alone waits for it for
    ever (a nightly sync holding its lock until someone kills it). Run in a child
    process, so that the old behaviour fails this test by its timeout, not by hanging."""
    script = DIES.replace("{death}", death)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("lost: a worker process (pid "), done.stdout
    assert f") {how} before its work was done; run again, or with --jobs 1" in lines[0]
    assert lines[1] == "after: [0, 2, 4, 6]"  # the next pool runs as usual
