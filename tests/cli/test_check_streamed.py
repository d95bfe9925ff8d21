"""``check --input`` streamed (``stream_inputs`` + ``Engine.evaluate_streamed``) gives the
same bytes as the whole-batch load (``load_inputs`` + ``Engine.evaluate``).

The export comes from the sandbox, saved as a person would (Jira search pages of 100
issues, changelog bulkfetch pages, field and status lists, ServiceNow tables), then made
harder for a reader that goes page by page: a post-incident review moved to the last
search file, away from the records it completes; one issue's histories split over two
changelog files; a null issue in a page; a JSON-lines file of extra records.
"""

from __future__ import annotations

import gc
import importlib.util
import inspect
import json
import os
import signal
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import ticketlint.cli as cli_module
import ticketlint.connectors.files as files_module
import ticketlint.report.formats as formats_module
from ticketlint.cli import cli
from ticketlint.config import Config
from ticketlint.mapping.common import MappingOptions
from ticketlint.rules.engine import STREAM_DEFERRED_PROCESSES, RecordIndex
from ticketlint.rules.selection import engine_from_config, load_registry
from ticketlint.sandbox.server import SandboxServer

AS_OF = "2026-12-01T00:00:00Z"
ANCHOR = int(datetime(2026, 12, 1, tzinfo=timezone.utc).timestamp() * 1000)
"""The sandbox's records laid out up to AS_OF, whatever day the tests run. Laid out from
the sandbox's own "now" (its default), a run six days after AS_OF had many records
created after it, and the cross-record rules the test expects (PRB004, CFG003) fired on
none (seen 2026-12-07)."""
ROOT = Path(__file__).resolve().parents[2]


def _bench_run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run_for_tests", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("export")
    with SandboxServer(seed=5, size=600, hidden_share=0.0, anchor=ANCHOR) as server:
        inputs, _ = _bench_run().write_export(server, folder / "export")
    jira = inputs[0]
    searches = sorted(jira.glob("search-*.json"))
    assert len(searches) >= 3
    # A done review moved to the last page: the records it completes were mapped pages ago.
    first = _load(searches[0])
    reviews = [
        i
        for s in searches[:-1]
        for i in _load(s)["issues"]
        if i["fields"]["issuetype"]["name"] == "Post-incident review"
        and i["fields"]["status"]["statusCategory"]["key"] == "done"
        and i["fields"]["issuelinks"]
    ]
    assert reviews, "the sandbox export should hold done post-incident reviews"
    moved = reviews[0]
    completed = {
        link.get("outwardIssue", link.get("inwardIssue"))["key"]
        for link in moved["fields"]["issuelinks"]
    }
    change_key = None
    for s in searches[:-1]:
        page = _load(s)
        kept = [i for i in page["issues"] if i["key"] != moved["key"]]
        for issue in kept:
            if issue["key"] in completed:  # only the review names the link: no way back
                issue["fields"]["issuelinks"] = [
                    link
                    for link in issue["fields"]["issuelinks"]
                    if link.get("outwardIssue", link.get("inwardIssue"))["key"] != moved["key"]
                ]
            if change_key is None and issue["fields"]["issuetype"]["name"] == "Change":
                change_key = issue["key"]
        page["issues"] = kept
        _dump(s, page)
    last = _load(searches[-1])
    last["issues"].append(moved)
    _dump(searches[-1], last)
    first = _load(searches[0])
    first["issues"].insert(3, None)  # one unreadable entry, reported, not fatal
    _dump(searches[0], first)
    # One issue's histories split over two changelog files (joined in file order).
    changelogs = sorted(jira.glob("changelog-*.json"))
    data = _load(changelogs[0])
    change_ids = {
        i["id"]
        for s in searches
        for i in _load(s)["issues"]
        if i and i["fields"]["issuetype"]["name"] == "Change"
    }
    entry = next(
        e
        for e in data["issueChangeLogs"]
        if len(e["changeHistories"]) >= 3 and e["issueId"] in change_ids
    )
    tail = entry["changeHistories"][1:]
    entry["changeHistories"] = entry["changeHistories"][:1]
    _dump(changelogs[0], data)
    _dump(
        jira / "changelog-99999.json",
        {"issueChangeLogs": [{"issueId": entry["issueId"], "changeHistories": tail}]},
    )
    extra = folder / "extra.jsonl"
    extra.write_text(
        json.dumps(
            {
                "source": "file",
                "system": "jira",
                "key": "REL-1",
                "process": "release",
                "state": "closed",
                "links": [{"kind": "change", "key": change_key}],
                "created_at": "2026-11-01T00:00:00Z",
                "updated_at": "2026-11-02T00:00:00Z",
            }
        )
        + "\n",
        encoding="utf-8",
    )
    assert change_key is not None
    return [*inputs, extra]


def _check(
    inputs: list[Path],
    fmt: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    streamed: bool,
    jobs: int = 1,
) -> tuple[int, str]:
    calls: list[bool] = []
    real = cli_module._check_streamed

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs) if streamed else None
        calls.append(result is not None)
        return result

    monkeypatch.setattr(cli_module, "_check_streamed", spy)
    out = tmp_path / f"out-{streamed}.{fmt}"
    args = ["check", "--as-of", AS_OF, "-f", fmt, "-o", str(out), "--jobs", str(jobs)]
    args += [a for p in inputs for a in ("--input", str(p))]
    result = CliRunner().invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert calls == [streamed]
    monkeypatch.setattr(cli_module, "_check_streamed", real)
    return result.exit_code, out.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("jobs", "parsed_again", "runs"),
    [(1, False, False), (1, True, False), (2, True, False), (3, True, False), (2, True, True)],
    ids=["pages-kept", "pages-parsed-again", "2-workers", "3-workers", "2-workers-page-runs"],
)
@pytest.mark.parametrize("fmt", ["json", "text", "jsonl", "markdown"])
def test_streamed_output_is_the_batch_output(
    export: list[Path],
    fmt: str,
    jobs: int,
    parsed_again: bool,
    runs: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Also read by forked workers (``--jobs``), which never keep a page from the first
    pass: each page, table and finding comes back to be merged in the order read; with
    ``runs``, a worker's task maps several search files in a row (as a large export's do)."""
    if parsed_again:  # no search page kept from the first pass: each is parsed again
        monkeypatch.setattr(files_module, "SEARCH_BYTES_KEPT", 0)
    if runs:  # this export is small: without this, each task would be one page
        monkeypatch.setattr(files_module, "_pages_per_task", lambda *_: 2)
    pages = files_module._JiraFolder.pages
    longest = tmp_path / "longest-run"

    def noted_run(self: Any, numbers: range, folder: int) -> Any:
        with longest.open("a", encoding="ascii") as out:
            out.write(f"{len(numbers)}\n")
        return pages(self, numbers, folder)

    monkeypatch.setattr(files_module._JiraFolder, "pages", noted_run)
    batch = _check(export, fmt, tmp_path, monkeypatch, streamed=False)
    pids = tmp_path / "pids"
    page = files_module._JiraFolder.page

    def noted(self: Any, *args: Any) -> Any:
        with pids.open("a", encoding="ascii") as out:
            out.write(f"{os.getpid()}\n")
        return page(self, *args)

    monkeypatch.setattr(files_module._JiraFolder, "page", noted)
    streamed = _check(export, fmt, tmp_path, monkeypatch, streamed=True, jobs=jobs)
    assert streamed == batch
    mappers = set(pids.read_text(encoding="ascii").split())
    assert (str(os.getpid()) in mappers) is (jobs == 1)
    assert len(mappers) >= min(jobs, 2)  # the pages were shared out
    assert (max(map(int, longest.read_text(encoding="ascii").split())) > 1) is runs
    if fmt == "json":
        summary = json.loads(batch[1])["summary"]
        assert summary["records"] > 500 and summary["findings"] > 50
        assert summary["mapping_errors"], "the null issue is reported"
        codes = {f["code"] for f in json.loads(batch[1])["findings"]}
        assert {"PRB004", "CFG003"} <= codes  # cross-record rules did fire


def test_json_findings_are_written_while_the_workers_check(
    export: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With workers, ``-f json`` writes each task's findings as they come back (the main
    process would wait otherwise), and the render takes those texts: every finding is
    written once, most of them ahead (held and deferred records' findings come later)."""
    written: list[Any] = []
    real_write = formats_module._finding_json
    real_add = formats_module.FindingTexts.add

    def counted(finding: Any) -> str:
        written.append(finding)
        return real_write(finding)

    ahead: list[Any] = []

    def add(self: Any, findings: Any) -> None:
        findings = list(findings)
        ahead.extend(findings)
        real_add(self, findings)

    monkeypatch.setattr(formats_module, "_finding_json", counted)
    monkeypatch.setattr(formats_module.FindingTexts, "add", add)
    _, text = _check(export, "json", tmp_path, monkeypatch, streamed=True, jobs=2)
    findings = json.loads(text)["findings"]
    assert len(ahead) > len(findings) / 2
    assert len(written) == len(findings)  # none written twice
    assert {id(f) for f in written} >= {id(f) for f in ahead}


@pytest.mark.parametrize("snow_last", [True, False])
def test_a_last_servicenow_folder_is_read_while_the_jira_pages_scan(
    export: list[Path], snow_last: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The link tables and CIs of a ServiceNow folder given last are read while the
    workers scan the Jira pages (the main process waits on them otherwise); given
    before another input, at once (that input's reads into the held records come after
    them, as the batch load reads them). Either way the output is the batch's."""
    from ticketlint import workers

    jira, snow = export[0], next(p for p in export if p.name == "servicenow")
    inputs = [jira, snow] if snow_last else [snow, jira]
    real = files_module._stream_servicenow
    while_scanning: list[bool] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        read_held, plan = real(*args, **kwargs)

        def noted() -> None:
            while_scanning.append(workers._JOB is not None)  # a pool is running
            read_held()

        return noted, plan

    monkeypatch.setattr(files_module, "_stream_servicenow", spy)
    batch = _check(inputs, "json", tmp_path, monkeypatch, streamed=False)
    while_scanning.clear()
    streamed = _check(inputs, "json", tmp_path, monkeypatch, streamed=True, jobs=2)
    assert streamed == batch
    assert while_scanning == [snow_last]


def test_the_held_records_are_checked_while_the_workers_start(
    export: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records loaded whole (CIs, JSON lines) are indexed before the workers fork
    (they inherit the index) and checked here while the workers start on the tasks."""
    from ticketlint import workers
    from ticketlint.rules import engine as engine_module

    real = engine_module.EvaluationStream.feed
    main = os.getpid()
    first_feed_while_pool_runs: list[bool] = []

    def feed(self: Any, records: Any) -> Any:
        if os.getpid() == main and not first_feed_while_pool_runs:
            first_feed_while_pool_runs.append(workers._JOB is not None)
        return real(self, records)

    monkeypatch.setattr(engine_module.EvaluationStream, "feed", feed)
    _check(export, "json", tmp_path, monkeypatch, streamed=True, jobs=2)
    assert first_feed_while_pool_runs == [True]


def test_a_servicenow_table_weighs_as_its_cost_to_check(export: list[Path]) -> None:
    """Tasks start heaviest first by weight: a table's bytes cost about three times a Jira
    page's (measured), so a table weighs its size times ``SERVICENOW_BYTE_COST``."""
    stream = files_module.stream_inputs(export, MappingOptions("file"))
    tasks = list(stream.tasks(1))
    snow = next(p for p in export if p.name == "servicenow")
    tables = {t: (snow / f"{t}.json").stat().st_size for t in ("incident", "change_request")}
    weights = {task.weight for task in tasks}
    for size in tables.values():
        assert size * files_module.SERVICENOW_BYTE_COST in weights


@pytest.mark.parametrize(
    ("pages", "changelog_files", "jobs", "run"),
    [
        (472, 48, 2, 10),  # the 100k bench export: a run shares a changelog file
        (472, 48, 8, 7),  # eight workers: runs shortened to give each eight tasks
        (472, 0, 2, 1),  # no changelog file to share
        (472, 48, 1, 1),  # one process: no run needed
        (3, 2, 2, 1),  # too few pages to share out in runs
        (100, 1, 2, 6),
    ],
)
def test_pages_per_task(pages: int, changelog_files: int, jobs: int, run: int) -> None:
    assert files_module._pages_per_task(pages, changelog_files, jobs) == run


def test_the_export_is_hard_for_a_page_by_page_reader(
    export: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review moved to the last page decides some outcome (without it, the batch
    load answers otherwise), and so does the release checked against a change."""
    _, text = _check(export, "json", tmp_path, monkeypatch, streamed=False)
    summary = json.loads(text)["summary"]
    assert summary["rules"]["REL001"]["PASS"] + summary["rules"]["REL001"]["FAIL"] == 1
    last = max(export[0].glob("search-*.json"))
    page = _load(last)
    page["issues"] = page["issues"][:-1]  # the moved review
    cut = tmp_path / "cut"
    cut.mkdir()
    for path in export[0].iterdir():
        (cut / path.name).write_bytes(path.read_bytes())
    _dump(cut / last.name, page)
    _, without = _check([cut, *export[1:]], "json", tmp_path, monkeypatch, streamed=False)
    assert json.loads(without)["summary"]["rules"] != summary["rules"]
    (cut / last.name).write_bytes(last.read_bytes())
    (cut / "changelog-99999.json").unlink()  # the second half of one change's history
    _, without = _check([cut, *export[1:]], "json", tmp_path, monkeypatch, streamed=False)
    assert json.loads(without)["findings"] != json.loads(text)["findings"]


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_record_read_twice_is_checked_by_the_batch_load(
    export: list[Path], jobs: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    twice = [export[1], export[1]]  # the ServiceNow folder twice: every row is a duplicate
    real = cli_module._check_streamed
    answers: list[object] = []
    monkeypatch.setattr(
        cli_module, "_check_streamed", lambda *a, **k: answers.append(real(*a, **k)) or answers[-1]
    )
    out = tmp_path / "twice.json"
    args = ["check", "--exit-zero", "--as-of", AS_OF, "-f", "json", "-o", str(out), "-j", str(jobs)]
    result = CliRunner().invoke(cli, args + [a for p in twice for a in ("--input", str(p))])
    assert result.exit_code == 0, result.output
    assert answers == [None]  # fell back
    warnings = json.loads(out.read_text(encoding="utf-8"))["summary"]["mapping"]["warnings"]
    assert any(w.startswith("duplicate record") for w in warnings)


def test_a_worker_killed_mid_check_is_an_error_not_a_hang(
    export: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fails_if_hung: Callable[[int], AbstractContextManager[None]],
) -> None:
    """The kernel's out-of-memory killer takes a worker: ``check`` says so in one line and
    exits 2 (an error, not findings) instead of waiting for the lost page for ever; no
    output file pretends to be a whole answer."""
    parent, page = os.getpid(), files_module._JiraFolder.page

    def dies(self: Any, *args: Any) -> Any:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        return page(self, *args)

    monkeypatch.setattr(files_module._JiraFolder, "page", dies)
    out = tmp_path / "killed.json"
    args = ["check", "--as-of", AS_OF, "-f", "json", "-o", str(out), "-j", "2"]
    with fails_if_hung(120):  # the old behaviour: waiting for the lost page for ever
        result = CliRunner().invoke(cli, args + [a for p in export for a in ("--input", str(p))])
    assert result.exit_code == 2, result.output
    assert "error: a worker process (pid " in result.output
    assert "was killed by SIGKILL (out of memory?) before its work was done" in result.output
    assert "internal error" not in result.output
    assert not out.exists() or out.stat().st_size == 0


def test_deferred_processes_cover_every_rule_that_reads_other_records() -> None:
    """evaluate_streamed checks a record as soon as its batch is read, with every CI in
    the index but not yet every change or incident: a built-in record rule that reads
    more of the index than the CIs must apply only to processes checked last."""
    ci_reads = ("index.ci(", "index.ci_known(", "index.syncs_cis(")
    checked = 0
    for rule in load_registry().rules.values():
        if rule.pack != "iso20000" or rule.kind == "aggregate":
            continue
        source = inspect.getsource(rule.func)
        reads = source.count("index.") + source.count("ctx.index")
        if not reads:
            continue
        other = source.count("index.") - sum(source.count(c) for c in ci_reads)
        other -= source.count("ctx.index")  # ``index = ctx.index`` itself
        checked += 1
        if other > 0:
            assert set(rule.applies_to) <= STREAM_DEFERRED_PROCESSES, rule.code
    assert checked >= 2  # CFG003 (CIs) and REL001 (changes) at least
    assert {"ci", "change", "incident"} <= RecordIndex.PROCESSES


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("enabled", [True, False])
def test_a_file_that_breaks_mid_stream_leaves_the_collector_as_it_was(
    export: list[Path], tmp_path: Path, enabled: bool, jobs: int
) -> None:
    """The streamed run pauses the collector for the whole evaluation; an input error
    raised while the pages stream (the batch load then reports it) must undo that."""
    broken = tmp_path / "jira"
    broken.mkdir()
    for path in export[0].iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    searches = sorted(broken.glob("search-*.json"))
    searches[-1].write_text('{"issues": [', encoding="utf-8")  # read while the pages stream
    engine = engine_from_config(Config(), select=None, ignore=None)
    as_of = datetime(2026, 12, 1, tzinfo=timezone.utc)
    before = gc.isenabled()
    try:
        if enabled:
            gc.enable()
        else:
            gc.disable()
        answer = cli_module._check_streamed(
            engine, [broken], MappingOptions("file"), as_of, jobs=jobs
        )
        assert answer is None  # the batch load will report the file
        assert gc.isenabled() is enabled
    finally:
        if before:
            gc.enable()
        else:
            gc.disable()


SNOW_DATA = Path(__file__).parent / "data" / "servicenow"


def _snow_copy(tmp_path: Path, incident_text: str) -> Path:
    folder = tmp_path / "servicenow"
    folder.mkdir()
    for path in SNOW_DATA.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "incident.json").write_text(incident_text, encoding="utf-8")
    return folder


def _odd_incidents() -> str:
    """The incident table with what a row-by-row reader must read as the whole-file
    reader does: a null row and a string row (numbered errors), an empty row (skipped),
    an integer of 5,000 digits (unknown, counted) and a lone surrogate escape."""
    rows = _load(SNOW_DATA / "incident.json")["result"]
    rows[1]["short_description"] = "broken \\udc80 text"
    rows[2]["impact"] = 10**4999  # json.dumps writes every digit
    odd = [rows[0], None, rows[1], "row", {}, *rows[2:]]
    return '{ "result" :\n [' + ",\n".join(json.dumps(r) for r in odd) + "]\n}\n"


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_table_read_row_by_row_reads_as_a_whole_file(
    fmt: str, jobs: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files_module, "ROWS_PER_CHUNK", 2)
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        folder = _snow_copy(tmp_path, _odd_incidents())
    finally:
        sys.set_int_max_str_digits(limit)
    batch = _check([folder], fmt, tmp_path, monkeypatch, streamed=False)
    streamed = _check([folder], fmt, tmp_path, monkeypatch, streamed=True, jobs=jobs)
    assert streamed == batch
    if fmt == "json":
        summary = json.loads(batch[1])["summary"]
        assert len(summary["mapping_errors"]) == 2
        assert any("5000" not in w and "digits" in w for w in summary["mapping"]["warnings"])


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize(
    "text",
    [
        '{"result": [{"number": "INC1"}], "result": []}',  # more after the array
        '{"result": [{"number": "INC1"} {"number": "INC2"}]}',  # not JSON
        '{"result": [{"number": {"display_value": "INC1", "link": "x"}}]}',  # display values
    ],
)
def test_a_table_the_row_reader_cannot_read_exactly_goes_to_the_batch_load(
    text: str, jobs: int, tmp_path: Path
) -> None:
    """None: the CLI then runs the batch load, which reads or refuses it as it always has."""
    folder = _snow_copy(tmp_path, text)
    engine = engine_from_config(Config(), select=None, ignore=None)
    as_of = datetime(2026, 12, 1, tzinfo=timezone.utc)
    answer = cli_module._check_streamed(engine, [folder], MappingOptions("file"), as_of, jobs=jobs)
    assert answer is None


def test_a_servicenow_folder_with_its_dictionary_streams_as_the_batch_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sys_dictionary.json`` beside the tables types their columns in both reads."""
    folder = Path(__file__).resolve().parents[1] / "fixtures" / "servicenow_export_dictionary"
    monkeypatch.setattr(files_module, "ROWS_PER_CHUNK", 1)
    for fmt in ("json", "text"):
        batch = _check([folder], fmt, tmp_path, monkeypatch, streamed=False)
        assert _check([folder], fmt, tmp_path, monkeypatch, streamed=True) == batch


# --- changelog ids read off the text ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        (
            '{"issueChangeLogs":[{"issueId":"10001","changeHistories":[]},{"issueId":"7"}]}',
            ["10001", "7"],
        ),
        (
            '\n {\n  "issueChangeLogs" : [\n  { "issueId" : "1" ,\n "x": {"issueId":2}}]}',
            ["1", "2"],
        ),
        ('{"issueChangeLogs": [], "nextPageToken": "t"}', []),
        # a quote inside a string is escaped: never read as a key
        (
            '{"issueChangeLogs":[{"issueId":"1","h":[{"toString":"a\\",\\"issueId\\":\\"9"}]}]}',
            ["1"],
        ),
        ('{"issueChangeLogs":[{"issueId":"1.5e3"}]}', ["1.5e3"]),
        ('{"issueChangeLogs":[{"issueId":1.5}]}', []),  # a number it cannot spell: not noted
        ('{"issueChangeLogs":[{"issueId":"1","h":"caf\\u00e9"}]}', None),  # an escape: parsed
        ('{"issueChangeLogs":[{"issueId":"1"}],"issues":[]}', None),  # a search page too
        ('{"issueChangeLogs":[{"issueId":"1"}],"values":[]}', None),
        ('[{"issueChangeLogs":[{"issueId":"1"}]}]', None),  # a list of pages: parsed
        ('{"issues":[{"issueId":"1"}]}', None),
        ('{"nextPageToken":"t","issueChangeLogs":[{"issueId":"1"}]}', None),
    ],
)
def test_changelog_ids_read_off_the_text(text: str, ids: list[str] | None) -> None:
    assert files_module._changelog_ids_of_text(text) == ids


def _jira_copy(export: list[Path], tmp_path: Path) -> Path:
    folder = tmp_path / "jira"
    folder.mkdir()
    for path in export[0].iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def _changed_entry(folder: Path, change: Any) -> None:
    """Apply ``change`` to the first entry of the first changelog file."""
    first = min(folder.glob("changelog-*.json"))
    data = _load(first)
    change(data["issueChangeLogs"][0])
    first.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")


@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize(
    ("case", "streams"),
    [
        ("compact", True),  # as Jira writes it: ids off the text, checked when parsed
        ("deeper-issueId-key", True),  # noted where it is not: a lookup, nothing else
        ("numeric-id", False),  # an id the text reading cannot spell: the batch load
        ("long-integer", False),  # a read warning the first pass would have reported
        ("broken-unreferenced-file", False),  # no page parses it: plan() does, and fails
        ("unreferenced-file", True),
    ],
)
def test_changelog_files_read_off_their_text_read_as_the_batch_reads_them(
    export: list[Path],
    case: str,
    streams: bool,
    jobs: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = _jira_copy(export, tmp_path)
    if case == "deeper-issueId-key":
        _changed_entry(folder, lambda e: e["changeHistories"][0].update(issueId="99999999"))
    elif case == "numeric-id":
        _changed_entry(folder, lambda e: e.update(issueId=float(e["issueId"])))
    elif case == "long-integer":  # beyond safejson.MAX_INT_DIGITS: read as unknown, counted
        limit = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(0)
        try:
            _changed_entry(folder, lambda e: e["changeHistories"][0].update(n=10**4500))
        finally:
            sys.set_int_max_str_digits(limit)
    elif case == "broken-unreferenced-file":
        (folder / "changelog-99998.json").write_text(
            '{"issueChangeLogs":[{"issueId":"424242","changeHistories":[', encoding="utf-8"
        )
    elif case == "unreferenced-file":
        (folder / "changelog-99998.json").write_text(
            '{"issueChangeLogs":[{"issueId":"424242","changeHistories":[]}]}', encoding="utf-8"
        )
    else:
        for path in folder.glob("changelog-*.json"):  # the fixture's files have spaces
            path.write_text(json.dumps(_load(path), separators=(",", ":")), encoding="utf-8")
    read_off = files_module._changelog_ids_of_text
    calls = tmp_path / "read-off"  # a file: forked workers call it too

    def spied(text: str) -> list[str] | None:
        ids = read_off(text)
        if ids is not None:
            with calls.open("a", encoding="ascii") as out:
                out.write("1\n")
        return ids

    monkeypatch.setattr(files_module, "_changelog_ids_of_text", spied)
    engine = engine_from_config(Config(), select=None, ignore=None)
    as_of = datetime(2026, 12, 1, tzinfo=timezone.utc)
    answer = cli_module._check_streamed(engine, [folder], MappingOptions("file"), as_of, jobs=jobs)
    assert (answer is not None) is streams
    assert calls.exists(), "a changelog file was read off its text"
    args = ["check", "--as-of", AS_OF, "-f", "json", "--input", str(folder)]
    streamed = CliRunner().invoke(cli, [*args, "--jobs", str(jobs)])
    monkeypatch.setattr(cli_module, "_check_streamed", lambda *a, **k: None)
    batch = CliRunner().invoke(cli, args)
    assert (streamed.exit_code, streamed.output) == (batch.exit_code, batch.output)
    if case == "broken-unreferenced-file":
        assert batch.exit_code == 2 and "changelog-99998.json" in batch.output


_TRICKY_TEXT = st.text(alphabet='"\\,:{}[] \nissueIdabc1é', max_size=24) | st.sampled_from(
    ['","issueId":"7', '\\",\\"issueId\\":\\"8', "issueId", '"issueId":"9"']
)
_VALUES = st.recursive(
    st.none() | st.integers() | _TRICKY_TEXT,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["issueId", "field", "toString", "a"]), inner, max_size=3)
    ),
    max_leaves=12,
)
_ENTRIES = st.lists(
    st.fixed_dictionaries(
        {"issueId": st.integers(0, 10**6).map(str) | _TRICKY_TEXT},
        optional={"changeHistories": st.lists(_VALUES, max_size=3)},
    ),
    max_size=4,
)


def _issue_id_values(value: Any) -> list[str]:
    """The values of every ``issueId`` key, at any depth, as ``str()`` spells them."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "issueId":
                found.append(str(item))
            found.extend(_issue_id_values(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_issue_id_values(item))
    return found


@settings(max_examples=400, deadline=None)
@given(_ENTRIES, st.sampled_from([None, 1]), st.booleans())
def test_changelog_ids_read_off_any_text_are_issue_id_keys(
    entries: list[dict[str, Any]], indent: int | None, ascii_only: bool
) -> None:
    """Every id read off the text is the value of an ``issueId`` key (never text inside a
    string), and every entry's id is among them unless it is written with an escape (then
    :meth:`_Changelogs._check` sends the file to the batch load)."""
    text = json.dumps({"issueChangeLogs": entries}, indent=indent, ensure_ascii=ascii_only)
    ids = files_module._changelog_ids_of_text(text)
    if ids is None:
        return
    keys = _issue_id_values(json.loads(text))
    assert set(ids) <= set(keys)
    for entry in entries:
        spelt = json.dumps(entry["issueId"], ensure_ascii=ascii_only)
        if spelt[1:-1] == entry["issueId"]:  # written with no escape in it
            assert entry["issueId"] in ids


def _rewrite_searches(folder: Path, change: Any, **dump: Any) -> None:
    """Apply ``change`` to each search page (with its number) and write it back."""
    for number, path in enumerate(sorted(folder.glob("search-*.json"))):
        page = _load(path)
        change(number, page)
        path.write_text(json.dumps(page, **dump), encoding="utf-8")


def _drop_expand_of_one_plain_issue(number: int, page: Any) -> None:
    if number == 2:
        plain = next(i for i in page["issues"] if i["fields"]["issuetype"]["name"] == "Incident")
        del plain["expand"]


def _review_type_renamed(number: int, page: Any) -> None:
    for issue in page["issues"]:
        if issue and issue["fields"]["issuetype"]["name"] == "Post-incident review":
            issue["fields"]["issuetype"]["name"] = "[System] POST-INCIDENT Review "


def _data_center_people_none_on_the_first_page(number: int, page: Any) -> None:
    """No people on the first page; on the others each person also has a Data Center
    ``key`` (which Data Center reads as the id, Cloud its ``accountId``), and the second
    page's first people have no ``accountId``: the batch reads the deployment as Data
    Center, and so must the first pass, from a later page."""
    for position, issue in enumerate(page["issues"]):
        if not issue:
            continue
        for role in ("assignee", "reporter", "creator"):
            person = issue["fields"].get(role)
            if number == 0:
                issue["fields"].pop(role, None)
            elif isinstance(person, dict) and "accountId" in person:
                person["key"] = f"JIRAUSER{person['accountId'][-6:]}"
                if number == 1 and position == 0:
                    del person["accountId"]


def _scope_before_type_name(number: int, page: Any) -> None:
    for issue in page["issues"]:
        if issue:
            itype = issue["fields"]["issuetype"]
            scope = {"type": "PROJECT", "project": {"id": "10000"}}
            issue["fields"]["issuetype"] = {"scope": scope, **itype}


@pytest.mark.parametrize("jobs", [2, 3])
@pytest.mark.parametrize(
    ("case", "skims", "streams"),
    [
        ("as-exported", True, True),  # json.dumps' ", " and ": "
        ("compact", True, True),  # as Jira writes it
        ("indented", True, True),
        ("sorted-keys", False, True),  # no issue begins with the usual head: parsed
        ("no-field-list", False, True),  # the field names come from the pages
        ("review-type-spelt-otherwise", True, True),
        ("scope-before-type-name", True, True),  # Jira Cloud team-managed projects
        ("data-center-people-from-the-second-page", True, True),
        ("issue-without-expand", True, False),  # the second pass sees an id the text hid
    ],
)
def test_search_pages_read_off_their_text_read_as_the_batch_reads_them(
    export: list[Path],
    case: str,
    skims: bool,
    streams: bool,
    jobs: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With field.json beside them, the first pass reads the search pages off their text
    (issue ids, keys and review issues); the second pass checks that reading against
    each parsed page, and anything it missed sends the run to the batch load."""
    folder = _jira_copy(export, tmp_path)
    if case == "compact":
        _rewrite_searches(folder, lambda n, p: None, separators=(",", ":"))
    elif case == "indented":
        _rewrite_searches(folder, lambda n, p: None, indent=2)
    elif case == "sorted-keys":
        _rewrite_searches(folder, lambda n, p: None, sort_keys=True)
    elif case == "no-field-list":
        (folder / "field.json").unlink()
    elif case == "review-type-spelt-otherwise":
        _rewrite_searches(folder, _review_type_renamed)
    elif case == "scope-before-type-name":
        _rewrite_searches(folder, _scope_before_type_name)
    elif case == "data-center-people-from-the-second-page":
        _rewrite_searches(folder, _data_center_people_none_on_the_first_page)
    elif case == "issue-without-expand":
        _rewrite_searches(folder, _drop_expand_of_one_plain_issue)
    read_off = files_module.skim_search_page
    calls = tmp_path / "read-off"  # a file: forked workers call it too

    def spied(text: str, is_review_type: Any) -> Any:
        skim = read_off(text, is_review_type)
        if skim is not None:
            with calls.open("a", encoding="ascii") as out:
                out.write(f"{len(skim.candidates)}\n")
        return skim

    monkeypatch.setattr(files_module, "skim_search_page", spied)
    engine = engine_from_config(Config(), select=None, ignore=None)
    as_of = datetime(2026, 12, 1, tzinfo=timezone.utc)
    answer = cli_module._check_streamed(engine, [folder], MappingOptions("file"), as_of, jobs=jobs)
    assert (answer is not None) is streams
    skimmed = calls.read_text(encoding="ascii").split() if calls.exists() else []
    pages = len(list(folder.glob("search-*.json")))
    assert len(skimmed) == (pages if skims else 0)
    if skims and case != "issue-without-expand":
        assert sum(map(int, skimmed)) > 0, "the review issues were found in the text"
    args = ["check", "--as-of", AS_OF, "-f", "json", "--input", str(folder)]
    streamed = CliRunner().invoke(cli, [*args, "--jobs", str(jobs)])
    monkeypatch.setattr(cli_module, "_check_streamed", lambda *a, **k: None)
    batch = CliRunner().invoke(cli, args)
    assert (streamed.exit_code, streamed.output) == (batch.exit_code, batch.output)
    assert json.JSONDecoder().raw_decode(batch.output)[0]["summary"]["findings"] > 0
