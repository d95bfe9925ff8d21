"""The hostile corpus through the stored sinks: a sync stores changes whose title,
assignee and group are hostile strings; the HTML report holds no live markup from them,
the evidence pack no formula cell, and write-back comments and work notes escape them
for Jira wiki markup, ADF and the ServiceNow journal."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hostile_support import bare_links, corpus, formula_cells, live_mentions, terminal_unsafe

import ticketlint.rules.selection
from ticketlint.cli import cli
from ticketlint.config import load_config
from ticketlint.connectors.base import DoctorReport, StreamBatch
from ticketlint.mapping.common import MappingReport
from ticketlint.mapping.model import ChangeRecord, Person
from ticketlint.plugin.writeback.render import OpenFinding, adf, plain_text, read_marker
from ticketlint.rules.registry import Registry
from ticketlint.sync.progress import Progress
from ticketlint.sync.runner import SyncOptions, run_sync

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))
from report_support import REPORT_PACK

DAY = datetime(2026, 8, 5, 6, 0, tzinfo=timezone.utc)
T0 = datetime(2026, 7, 20, 9, 0, tzinfo=timezone.utc)
HOSTILE = [s for s in corpus() if len(s) < 1000]  # the 64 KB string: the CSV test below
RAW_MARKUP = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '<a href="https://evil.example">',
    "<svg/onload=alert(1)>",
    "<!-- --><x/>",
)


def _change(n: int, text: str) -> ChangeRecord:
    return ChangeRecord(
        source="jira-prod",
        system="jira",
        key=f"CHG-{n}",
        url=f"https://jira.example.com/browse/CHG-{n}",
        title=text,
        state="closed",
        raw_state="Done",
        backout_plan="",
        change_type="normal",
        created_at=T0 + timedelta(hours=n),
        updated_at=T0 + timedelta(hours=n, minutes=5),
        closed_at=T0 + timedelta(days=1, hours=n),
        assignee=Person(name=text, email=None),
        group=text,
        raw={"key": f"CHG-{n}"},
    )


class HostileConnector:
    def __init__(self, name: str) -> None:
        self.name = name
        self.streams: Sequence[str] = ["change"] if name == "jira-prod" else []
        self.request_count = 0

    def read(
        self, stream: str, *, since: datetime | None = None, **_: Any
    ) -> Iterator[StreamBatch]:
        rows = [_change(n, text) for n, text in enumerate(HOSTILE, start=1)]
        yield StreamBatch(stream, rows, MappingReport(rows=len(rows), mapped=len(rows)), DAY)

    def doctor(self) -> DoctorReport:
        return DoctorReport(self.name)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("hostile")
    path = d / "ticketlint.yaml"
    path.write_text(
        f'database: "sqlite:///{d / "store.db"}"\n'
        "sources:\n"
        '  - {name: jira-prod, type: jira, url: "https://jira.example.com", auth: {pat: x}}\n',
        encoding="utf-8",
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            ticketlint.rules.selection,
            "load_registry",
            lambda extra=(): Registry([REPORT_PACK, *extra]),
        )
        result = run_sync(
            load_config(path),
            SyncOptions(full=True, as_of=DAY, notify=False, writeback=False),
            connector_factory=lambda src: HostileConnector(src.name),
            progress=Progress(io.StringIO()),
            clock=lambda: DAY + timedelta(minutes=1),
        )
        assert result.exit_code == 0, [s.error for s in result.sources]
    yield path


@pytest.fixture
def run(config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        ticketlint.rules.selection,
        "load_registry",
        lambda extra=(): Registry([REPORT_PACK, *extra]),
    )

    def invoke(*args: str) -> Any:
        result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code in (0, 1), result.output
        return result

    return invoke


def test_html_report_holds_no_live_markup(run: Any, tmp_path: Path) -> None:
    run("report", "-o", "report.html", "--period", "2026-07-01..2026-09-30")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)" in html  # the hostile titles are there, escaped
    for raw in RAW_MARKUP:
        assert raw not in html, raw
    assert 'href="javascript:' not in html.lower()


def test_evidence_pack_has_no_formula_cell_and_no_live_markup(run: Any, tmp_path: Path) -> None:
    run("evidence", "--clause", "8.5.1", "--period", "2026-07-01..2026-09-30", "-o", "pack")
    pack = tmp_path / "pack"
    for name in ("population.csv", "exceptions.csv", "sample.csv", "waivers.csv"):
        assert formula_cells((pack / name).read_text(encoding="utf-8")) == [], name
    summary = (pack / "summary.html").read_text(encoding="utf-8")
    for raw in RAW_MARKUP:
        assert raw not in summary, raw
    assert run("evidence", "verify", str(pack)).exit_code == 0


def test_findings_lists_of_the_store(run: Any) -> None:
    assert formula_cells(run("findings", "-f", "csv").stdout) == []
    assert terminal_unsafe(run("findings").stdout.replace("\n", "")) == []


# --- write-back ---------------------------------------------------------------------------


def _open(text: str) -> list[OpenFinding]:
    return [
        OpenFinding(
            fingerprint="f" * 64,
            code="CHG006",
            name="A change has a backout plan",
            severity="high",
            message=f"change has no backout plan: {text}",
            remediation="Write one.",
        )
    ]


@pytest.mark.parametrize("text", corpus())
def test_writeback_comment_and_work_note_escape_ticket_text(text: str) -> None:
    wiki = plain_text("CHG-1", _open(text), 3, "a" * 64, markup="wiki")
    note = plain_text("CHG-1", _open(text), 3, "a" * 64, markup="journal")
    doc = adf("CHG-1", _open(text), 3, "a" * 64)
    adf_text = "\n".join(
        node["text"]
        for block in doc["content"]
        for node in _walk(block)
        if node.get("type") == "text"
    )
    for body in (wiki, note, adf_text):
        assert read_marker(body) == (3, "a" * 12)  # the marker survives the escaping
        assert terminal_unsafe(body.replace("\n", "")) == []
        assert live_mentions(body, angle_syntax=False) == []
        assert bare_links(body) == []
    assert "[~" not in wiki and "{html}" not in wiki.replace("\\{", "")
    assert "[code]" not in note.lower()


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("content", []):
        yield from _walk(child)


def test_wiki_markup_link_and_mention_are_inert() -> None:
    wiki = plain_text(
        "CHG-1",
        _open("[~admin] [x|https://evil.example] {html}<b>x</b>{html}"),
        1,
        "b" * 64,
        markup="wiki",
    )
    assert "\\[~admin\\]" in wiki and "\\{html\\}" in wiki
    note = plain_text("CHG-1", _open("[code]<img src=x onerror=alert(1)>[/code]"), 1, "b" * 64)
    assert "[code]" not in note and "[/code]" not in note
