"""``sync`` equals a fresh ``check``: the differential harness (see harness.py) in CI.

The fast variant runs in ``make test``: every system (Jira Cloud, Jira Data Center,
ServiceNow) for a few rounds, one run with kills, one with faults, and the proof that the
harness can fail (a watermark shifted forward must be caught). The long variant
(``-m differential_long``, run by ``.ci/run``) runs 10 rounds per seed for several seeds,
each system, clean, with kills and with faults, and on PostgreSQL when
``TICKETLINT_TEST_DATABASE_URL`` is set.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from differential_harness import FAULTS, SYSTEMS, Case, Divergence, Harness, pg_url, reset_database

from ticketlint.store import repository as repo

pytestmark = pytest.mark.e2e


def _run(tmp_path: Path, case: Case, rounds: int, database: str | None = None, **kw: bool) -> dict:
    with Harness(tmp_path, case, database) as h:
        figures = h.run(rounds, **kw)
    assert figures["rounds"] == rounds
    return figures


# --- fast: in make test ---------------------------------------------------------------------


@pytest.mark.parametrize("system", SYSTEMS)
def test_sync_equals_check_after_rounds_of_changes(tmp_path: Path, system: str) -> None:
    figures = _run(tmp_path, Case(system, seed=1), rounds=3)
    assert figures["changes"] >= 3 * 6  # the sandbox made (nearly) every change it was asked
    assert figures["reconciles"] == 1  # round 3 of reconcile_every=3 (round 0 is the first read)


def test_sync_killed_at_each_point_then_rerun_equals_check(tmp_path: Path) -> None:
    figures = _run(tmp_path, Case("servicenow", seed=2), rounds=2, kills=True)
    assert figures["kills"] >= 1


def test_sync_under_faults_equals_check(tmp_path: Path) -> None:
    with Harness(tmp_path, Case("jira-dc", seed=3, faults=FAULTS)) as h:
        figures = h.run(3)
        injected = dict(h.server.faults.injected)
    assert figures["rounds"] == 3
    assert injected.get("mutate", 0) and sum(injected.values()) > injected["mutate"], injected


def test_a_watermark_shifted_forward_makes_the_harness_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The harness is not vacuous: a runner that stores its watermark an hour late (the
    next incremental read starts after changes it never read) must be caught."""
    real = repo.set_watermark

    def shifted(session, source, stream, value, run_id=None):  # type: ignore[no-untyped-def]
        real(session, source, stream, value + timedelta(hours=1), run_id)

    monkeypatch.setattr(repo, "set_watermark", shifted)
    with (
        Harness(tmp_path, Case("servicenow", seed=1, reconcile_every=0)) as h,
        pytest.raises(Divergence, match="differ from a fresh check"),
    ):
        h.run(3)


def test_a_watermark_shifted_back_only_reads_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overlap is harmless: a watermark a day early re-reads records, and agrees."""
    real = repo.set_watermark

    def early(session, source, stream, value, run_id=None):  # type: ignore[no-untyped-def]
        real(session, source, stream, value - timedelta(days=1), run_id)

    monkeypatch.setattr(repo, "set_watermark", early)
    _run(tmp_path, Case("jira-cloud", seed=2, reconcile_every=0), rounds=2)


# --- long: -m differential_long (.ci/run) ---------------------------------------------------

LONG_SEEDS = (1, 2, 3, 4)
ROUNDS = 10


@pytest.mark.differential_long
@pytest.mark.parametrize("seed", LONG_SEEDS)
@pytest.mark.parametrize("system", SYSTEMS)
def test_long_clean(tmp_path: Path, system: str, seed: int) -> None:
    _run(tmp_path, Case(system, seed=seed, size=400, changes=12), rounds=ROUNDS)


@pytest.mark.differential_long
@pytest.mark.parametrize("seed", LONG_SEEDS[:2])
@pytest.mark.parametrize("system", SYSTEMS)
def test_long_kills(tmp_path: Path, system: str, seed: int) -> None:
    figures = _run(
        tmp_path, Case(system, seed=seed + 10), rounds=ROUNDS, kills=True, random_kills=True
    )
    assert figures["kills"] >= 1


@pytest.mark.differential_long
@pytest.mark.parametrize("seed", LONG_SEEDS[:2])
@pytest.mark.parametrize("system", SYSTEMS)
def test_long_faults(tmp_path: Path, system: str, seed: int) -> None:
    _run(tmp_path, Case(system, seed=seed + 20, faults=FAULTS), rounds=ROUNDS)


@pytest.mark.differential_long
def test_long_data_center_paging_under_edits(tmp_path: Path) -> None:
    """Large streams read by offset while records change between pages: a skipped issue
    would stay stale, or be called gone by a reconcile."""
    _run(
        tmp_path,
        Case("jira-dc", seed=40, size=2000, faults="mutate=0.3", reconcile_every=2),
        rounds=4,
    )


@pytest.mark.differential_long
@pytest.mark.parametrize("system", SYSTEMS)
def test_long_postgresql(tmp_path: Path, system: str) -> None:
    url = pg_url()
    if not url:
        pytest.skip("TICKETLINT_TEST_DATABASE_URL is not set: PostgreSQL run skipped")
    reset_database(url)
    _run(tmp_path, Case(system, seed=30), rounds=ROUNDS, database=url, kills=True)
