"""A live ``check`` evaluates batches while its sources are read (rules/live.py), and its
answer is the one evaluating the records whole gives: against the sandbox over HTTP
(both sources in threads, and one source in the main thread), and for orders of
batches that the sandbox does not produce (configuration items last, a record read
twice, a configuration item in another stream), where it gives up and the caller
evaluates the records whole."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import ticketlint.cli as cli_mod
import ticketlint.rules.live as live_mod
from ticketlint.config import Config
from ticketlint.mapping.model import BaseRecord, record_from_dict
from ticketlint.rules.engine import Engine
from ticketlint.rules.live import LiveEvaluation
from ticketlint.rules.selection import engine_from_config
from ticketlint.sandbox.commands import DEMO_JIRA_ENV, DEMO_SNOW_ENV, config_yaml
from ticketlint.sandbox.server import SandboxServer

AS_OF = datetime(2026, 11, 20, tzinfo=timezone.utc)
_RESULT = LiveEvaluation.result


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    # Laid out up to AS_OF whatever the day: from the sandbox's own "now" the records
    # drift past AS_OF day by day and the findings the tests expect (CFG003) thin out.
    with SandboxServer(seed=7, size=400, anchor=int(AS_OF.timestamp() * 1000)) as server:
        yield server


def _check(
    server: SandboxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    streamed: bool,
    source: str | None = None,
) -> tuple[str, list[bool]]:
    """The JSON output of a live check, and whether each evaluation was streamed."""
    config = tmp_path / "ticketlint.yaml"
    config.write_text(config_yaml(server, f"sqlite:///{tmp_path / 'db.sqlite'}"), "utf-8")
    monkeypatch.setenv(DEMO_JIRA_ENV, server.credentials.jira_token)
    monkeypatch.setenv(DEMO_SNOW_ENV, server.credentials.snow_password)
    answered: list[bool] = []

    def noted(self: LiveEvaluation, sources: Any) -> Any:
        got = _RESULT(self, sources) if streamed else None
        answered.append(got is not None)
        return got

    monkeypatch.setattr(live_mod.LiveEvaluation, "result", noted)
    out = tmp_path / f"out-{streamed}-{source}.json"
    argv = ["--config", str(config), "-q", "check", "--exit-zero", "-f", "json"]
    argv += ["--as-of", "2026-11-20T00:00:00Z", "-o", str(out)]
    if source:
        argv += ["--source", source]
    run = CliRunner().invoke(cli_mod.cli, argv, catch_exceptions=False)
    assert run.exit_code == 0, run.output
    return out.read_text(encoding="utf-8"), answered


@pytest.mark.parametrize("source", [None, "jira-sandbox", "snow-sandbox"])
def test_a_streamed_live_check_is_the_whole_evaluation(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str | None
) -> None:
    whole, answered = _check(sandbox, tmp_path, monkeypatch, streamed=False, source=source)
    assert answered == [False]
    streamed, answered = _check(sandbox, tmp_path, monkeypatch, streamed=True, source=source)
    assert answered == [True], "the batches were evaluated as they came"
    assert streamed == whole
    summary = json.loads(whole)["summary"]
    assert summary["records"] > 150 and summary["findings"] > 20
    if source != "jira-sandbox":
        assert "CFG003" in {f["code"] for f in json.loads(whole)["findings"]}


# --- orders the sandbox does not give ---------------------------------------------------


def _engine() -> Engine:
    return engine_from_config(Config())


def _rec(source: str, key: str, process: str, **fields: Any) -> BaseRecord:
    data = {"source": source, "system": "servicenow", "key": key, "process": process}
    data.update({"state": "new", "created_at": "2026-10-01T00:00:00Z", **fields})
    return record_from_dict(data)


def _feed(
    batches: list[tuple[str, str, list[BaseRecord]]], streams: dict[str, list[str]]
) -> tuple[LiveEvaluation, Any]:
    live = LiveEvaluation(_engine(), as_of=AS_OF, ci_streams=cli_mod.CI_STREAMS)
    for source, order in streams.items():
        live.begin(source, order, reads_cis=any(s in cli_mod.CI_STREAMS for s in order))
    for source, stream, records in batches:
        live.add(source, stream, records)
    reading_cis = {s for s, order in streams.items() if "ci" in order}
    return live, live.result(reading_cis)


def _whole(batches: list[tuple[str, str, list[BaseRecord]]], ci_sources: set[str]) -> Any:
    records = [r for _, _, batch in batches for r in batch]
    return _engine().evaluate(records, as_of=AS_OF, ci_sources=ci_sources)


def _same(streamed: Any, whole: Any) -> None:
    assert streamed is not None
    assert [f.__dict__ for f in streamed.findings] == [f.__dict__ for f in whole.findings]
    assert streamed.counts == whole.counts
    assert streamed.not_evaluated == whole.not_evaluated
    assert streamed.records == whole.records


def _batches(ci_last: bool) -> list[tuple[str, str, list[BaseRecord]]]:
    cis = ("a", "ci", [_rec("a", "web-01", "ci"), _rec("a", "db-01", "ci")])
    incidents = (
        "a",
        "incident",
        [
            _rec("a", "INC1", "incident", ci_refs=["web-01"]),
            _rec("a", "INC2", "incident", ci_refs=["nope-01"]),
        ],
    )
    other = ("b", "incident", [_rec("b", "INC9", "incident", ci_refs=["web-01"])])
    return [incidents, other, cis] if ci_last else [cis, other, incidents]


@pytest.mark.parametrize("ci_last", [False, True])
def test_references_are_judged_against_every_ci_of_their_source(ci_last: bool) -> None:
    batches = _batches(ci_last)
    order = ["incident", "ci"] if ci_last else ["ci", "incident"]
    live, streamed = _feed(batches, {"a": order, "b": ["incident"]})
    whole = _whole(batches, {"a"})
    _same(streamed, whole)
    failing = {(f.source, f.key) for f in whole.findings if f.code == "CFG003"}
    assert failing == {("a", "INC2")}  # b reads no CIs: its reference is not judged
    assert live.given_up is None


def test_a_record_read_twice_gives_the_evaluation_up() -> None:
    batches = _batches(False)
    batches.append(("a", "incident", [_rec("a", "INC1", "incident", ci_refs=["db-01"])]))
    live, streamed = _feed(batches, {"a": ["ci", "incident"], "b": ["incident"]})
    assert streamed is None and "read twice" in (live.given_up or "")


def test_a_ci_after_its_source_was_opened_gives_the_evaluation_up() -> None:
    batches = _batches(False)
    batches.append(("a", "incident", [_rec("a", "app-01", "ci")]))
    live, streamed = _feed(batches, {"a": ["ci", "incident"], "b": ["incident"]})
    assert streamed is None and "configuration item" in (live.given_up or "")


def test_sources_reading_cis_other_than_declared_give_the_evaluation_up() -> None:
    live = LiveEvaluation(_engine(), as_of=AS_OF, ci_streams=cli_mod.CI_STREAMS)
    live.begin("a", ["ci", "incident"], reads_cis=True)
    live.add("a", "incident", [_rec("a", "INC1", "incident", ci_refs=["web-01"])])
    assert live.result(set()) is None  # the ci stream gave no batch: no CIs were read


def test_a_rule_error_gives_the_streamed_check_up_and_is_logged_once(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The streamed evaluation gives up at a rule error (their order would follow the
    feed) and the records are evaluated whole: that evaluation's errors are the ones
    logged and reported, each once."""
    import ticketlint.rules.selection as selection
    from ticketlint.rules.registry import Pack, Registry, load_registry

    iso = load_registry().packs["iso20000"]
    real = next(r for r in iso.rules if r.code == "INC001").func

    def failing(record: BaseRecord, ctx: Any) -> Any:
        if record.key.endswith("3"):
            raise RuntimeError(f"bug on {record.key}")
        return real(record, ctx)

    rules = tuple(replace(r, func=failing) if r.code == "INC001" else r for r in iso.rules)
    broken = Pack(name=iso.name, rules=rules, title=iso.title, clause_map=iso.clause_map)
    monkeypatch.setattr(selection, "load_registry", lambda extra=(): Registry([broken, *extra]))
    given_up: list[str | None] = []

    def noted(self: LiveEvaluation, sources: Any) -> Any:
        got = _RESULT(self, sources)
        given_up.append(self.given_up)
        return got

    monkeypatch.setattr(live_mod.LiveEvaluation, "result", noted)
    config = tmp_path / "ticketlint.yaml"
    config.write_text(config_yaml(sandbox, f"sqlite:///{tmp_path / 'db.sqlite'}"), "utf-8")
    monkeypatch.setenv(DEMO_JIRA_ENV, sandbox.credentials.jira_token)
    monkeypatch.setenv(DEMO_SNOW_ENV, sandbox.credentials.snow_password)
    out = tmp_path / "out.json"
    argv = ["--config", str(config), "-q", "check", "-f", "json", "-o", str(out)]
    argv += ["--as-of", "2026-11-20T00:00:00Z"]
    run = CliRunner().invoke(cli_mod.cli, argv, catch_exceptions=False)
    assert run.exit_code == 2, run.output  # a rule error: results written, then exit 2
    assert given_up == ["a rule failed"]
    reported = json.loads(out.read_text(encoding="utf-8"))["summary"]["rule_errors"]
    assert len(reported) > 3
    logged = [line for line in run.stderr.splitlines() if "rule INC001 failed on " in line]
    assert len(logged) == len(reported)
    assert run.stderr.count("RuntimeError: bug on ") == len(reported)  # one traceback each
