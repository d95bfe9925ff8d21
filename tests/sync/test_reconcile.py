"""The periodic full reconcile: every ``sync.reconcile_every`` runs, gone findings, the
figures ``sync`` prints, and what ``doctor`` says of the last reconcile."""

from __future__ import annotations

import pytest
from sync_helpers import events, make_config, states
from test_runner import seed

from ticketlint.config import ConfigError, parse_config
from ticketlint.store import repository as repo
from ticketlint.store.lifecycle import RECORD_GONE
from ticketlint.sync import reconcile
from ticketlint.sync.reconcile import doctor_info, doctor_lines


def test_every_third_run_is_a_full_reconcile_and_ends_findings_as_gone(
    sync, store, world, db_url
) -> None:
    cfg = make_config(db_url, "sync:\n  reconcile_every: 3")
    seed(world)
    fulls = [sync(cfg).sources[0].full]  # the first read is whole anyway
    world.remove("jira-prod", "change", "CHG-3")
    for _ in range(4):
        fulls.append(sync(cfg).sources[0].full)
        if len(fulls) < 3:
            assert states(store)[("TST001", "CHG-3")] == "open"  # invisible incrementally
    assert fulls == [True, False, False, True, False]
    assert states(store)[("TST001", "CHG-3")] == "gone"
    assert ("TST001", "CHG-3", "gone") in events(store)
    assert ("TST001", "CHG-3", "resolved") not in events(store)
    # the reconcile read the stream whole (no watermark given)
    assert world.connectors[-4].calls == [("change", None)]
    with store.session() as s:
        now = reconcile.state(s, cfg, "jira-prod")
    assert (now.since, now.every, now.due) == (1, 3, False)
    assert "next in 1 run(s)" in now.text()


def test_a_gone_record_that_comes_back_reopens_its_findings(sync, store, world) -> None:
    seed(world)
    sync()
    world.remove("jira-prod", "change", "CHG-1")
    result = sync(full=True)
    assert [c.resolution for c in result.sources[0].diff.of_kind("gone")] == [RECORD_GONE]
    assert "1 gone" in result.sources[0].reads_text()
    world.put("jira-prod", "change", *[r for r in [_back(world)] if r])
    again = sync(full=True)
    assert states(store)[("TST001", "CHG-1")] == "open"
    assert again.sources[0].diff.counts()["reopened"] == 1


def _back(world):  # type: ignore[no-untyped-def]
    from sync_fakes import change

    return change("jira-prod", "CHG-1", minutes=30)


def test_killed_runs_do_not_count_towards_the_reconcile(sync, store, world, db_url) -> None:
    """A run that never finished the source (killed, failed) is not a completed run."""
    cfg = make_config(db_url, "sync:\n  reconcile_every: 2")
    seed(world)
    sync(cfg)
    world.options["jira-prod"] = {"fail_stream": "change"}
    assert sync(cfg).sources[0].status == "failed"
    world.options.pop("jira-prod")
    with store.session() as s:
        assert reconcile.state(s, cfg, "jira-prod").since == 0
    assert sync(cfg).sources[0].full is False
    assert sync(cfg).sources[0].full is True


def test_sync_prints_reads_changed_unchanged_gone_and_the_watermark(sync, world) -> None:
    seed(world)
    first = sync().sources[0]
    assert (first.records_read, first.changed, first.unchanged) == (3, 3, 0)
    assert first.full and set(first.watermarks) == {"change"}
    again = sync().sources[0]
    # the incremental read re-reads its lookback overlap: read, but unchanged
    assert again.changed == 0 and again.unchanged == again.records_read
    assert "watermark unchanged" in again.reads_text()
    assert again.reads_text().startswith("jira-prod: incremental: ")


def test_reconcile_every_is_validated_strictly() -> None:
    base = "sources: []\nsync:\n  reconcile_every: {}\n"
    assert parse_config(base.format(5)).sync.reconcile_every == 5
    assert parse_config("sources: []\n").sync.reconcile_every == 10
    for bad in ("-1", '"5"', "2.5", "true", "20000"):
        with pytest.raises(ConfigError, match="reconcile_every"):
            parse_config(base.format(bad))
    with pytest.raises(ConfigError, match="every"):
        parse_config("sources: []\nsync:\n  every: 3\n")


def test_doctor_line_says_when_the_last_reconcile_ran(sync, world, db_url, tmp_path) -> None:
    cfg = make_config(db_url)
    if db_url.startswith("sqlite"):
        missing = make_config(f"sqlite:///{tmp_path / 'none' / 'x.db'}")
        assert doctor_lines(missing, ["jira-prod"]) == {}
        assert not (tmp_path / "none").exists()  # doctor never creates a store
    seed(world)
    assert doctor_lines(cfg, ["jira-prod"]) in ({}, {"jira-prod": reconcile_text_first()})
    sync(cfg)
    sync(cfg)
    line = doctor_lines(cfg, ["jira-prod"])["jira-prod"]
    assert line.startswith("last full reconcile 20") and "(run 1)" in line
    assert "1 incremental run(s) since" in line and "sync.reconcile_every = 10" in line


def reconcile_text_first() -> str:
    return "never synced: the first sync reads everything"


def test_doctor_says_what_the_last_sync_could_not_check(sync, store, world, db_url) -> None:
    cfg = make_config(db_url)
    seed(world)
    world.options["jira-prod"] = {"bad_rows": 25, "unreadable": 3}
    sync(cfg)
    info = doctor_info(cfg, ["jira-prod", "snow-prod"])
    assert info["jira-prod"]["last sync"] == (
        "run 1: 3 records read, 25 not checked, 4 values could not be read; "
        "`ticketlint sync --log-format json` lists them with key and reason"
    )
    assert info["snow-prod"]["last sync"].endswith(
        "records read, 0 not checked, 0 values could not be read"
    )
    assert info["jira-prod"]["reconcile"] == doctor_lines(cfg, ["jira-prod"])["jira-prod"]
    # the run row keeps the counts and the first 20 records not checked
    with store.session() as s:
        run_id, entry = repo.last_source_run(s, "jira-prod") or (None, {})
    assert run_id == 1 and entry["mapping"]["not_checked"] == 25
    assert len(entry["not_checked"]) == 20 and entry["not_checked"][0]["key"] == "BAD-0"
