"""``ticketlint exposure`` on the report tests' store (three fixed sync runs): a snapshot
per format, the JSON shape, the period's verdicts replayed from history, options and
their errors; the HTML section, the evidence pack's CSVs and the digest's line."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import responses
from report_support import WorldConnector, write_config
from snapshot_support import assert_snapshot

from ticketlint.config import load_config
from ticketlint.report import charts
from ticketlint.report.evidence import write_csv
from ticketlint.report.exposure import (
    Failing,
    PopulationRecord,
    build_table,
    exposure,
)
from ticketlint.report.exposure_formats import FIX_CSV_KEYS, fix_csv_rows
from ticketlint.report.html_report import exposure as exposure_section
from ticketlint.store.db import open_store
from ticketlint.store.models import OutboxRow
from ticketlint.sync.commands import standard_hooks
from ticketlint.sync.progress import Progress
from ticketlint.sync.runner import SyncOptions, run_sync

Q3 = "2026-07-01..2026-09-30"
JULY = "2026-07-01..2026-07-31"
PROCESS_KEYS = {
    "population",
    "nonconforming",
    "unknown",
    "waived",
    "sample",
    "exposure",
    "exposure_pessimistic",
    "fixes_to_target",
}


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_exposure_output_matches_snapshot(run_cli: Any, fmt: str) -> None:
    result = run_cli("exposure", "--period", Q3, "-f", fmt)
    assert result.exit_code == 0, result.output
    suffix = {"text": "txt", "json": "json", "markdown": "md"}[fmt]
    assert_snapshot(f"report/exposure.{suffix}", result.output)


def test_json_has_the_issue_shape_and_exact_figures(run_cli: Any) -> None:
    data = json.loads(run_cli("exposure", "--period", Q3, "-f", "json").output)
    assert set(data["processes"]) == {"change", "incident"}
    for row in data["processes"].values():
        assert set(row) == PROCESS_KEYS
    change = data["processes"]["change"]
    # Q3: 29 changes live in the period; CHG-5 and CHG-10 fail at its end (CHG-2 was
    # fixed in September); CHG-8 lacks the backout field (unknown).
    assert (change["population"], change["nonconforming"], change["unknown"]) == (29, 2, 1)
    assert change["sample"] == 25
    assert change["exposure"] == float(exposure(29, 2, 25))
    assert change["exposure_pessimistic"] == float(exposure(29, 3, 25))
    assert data["target"] == 0.1
    assert data["overall"] == float(1 - (1 - exposure(29, 2, 25)) * (1 - exposure(16, 0, 16)))
    incident = data["processes"]["incident"]
    # INC1006's only failure is waived by the config.
    assert (incident["nonconforming"], incident["waived"]) == (0, 1)


def test_verdicts_are_those_at_the_end_of_the_period(run_cli: Any) -> None:
    """CHG-2 failed in July and August and was fixed in September; INC1009 failed in
    July only: July's table counts them, Q3's does not."""
    july = json.loads(run_cli("exposure", "--period", JULY, "-f", "json").output)
    keys = {r["key"] for groups in july["fix_first"].values() for g in groups for r in g["records"]}
    assert {"CHG-2", "INC1009"} <= keys
    assert "CHG-10" not in keys  # it broke in August
    q3 = json.loads(run_cli("exposure", "--period", Q3, "-f", "json").output)
    keys_q3 = {
        r["key"] for groups in q3["fix_first"].values() for g in groups for r in g["records"]
    }
    assert "CHG-2" not in keys_q3 and "INC1009" not in keys_q3 and "CHG-10" in keys_q3


def test_sample_and_target_options(run_cli: Any) -> None:
    data = json.loads(
        run_cli(
            "exposure", "--period", Q3, "--sample", "5,change=3", "--target", "50%", "-f", "json"
        ).output
    )
    assert data["processes"]["change"]["sample"] == 3
    assert data["processes"]["incident"]["sample"] == 5
    assert data["target"] == 0.5
    assert data["processes"]["change"]["exposure"] == float(exposure(29, 2, 3))
    assert data["processes"]["change"]["fixes_to_target"] == 0  # 20% is under 50%


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sample", "chg=4"], "'chg' is not one of"),
        (["--sample", "0"], "at least 1 record"),
        (["--target", "2"], "at most 1"),
        (["--period", "2026-09-01..2026-07-01"], "ends before it starts"),
        (["-f", "csv"], "Invalid value"),
    ],
)
def test_bad_options_exit_2(run_cli: Any, args: list[str], message: str) -> None:
    result = run_cli("exposure", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_audit_config_sets_samples_target_and_period(run_cli: Any, filled: Path) -> None:
    config = filled.parent / "audit.yaml"
    config.write_text(
        filled.read_text(encoding="utf-8")
        + f"audit: {{sample: {{change: 7, default: 3}}, target: 0.5, period: '{JULY}'}}\n",
        encoding="utf-8",
    )
    from click.testing import CliRunner

    from ticketlint.cli import cli

    result = CliRunner().invoke(cli, ["--config", str(config), "exposure", "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["processes"]["change"]["sample"] == 7
    assert data["processes"]["incident"]["sample"] == 3
    assert data["target"] == 0.5 and data["period"] == "2026-07-01 to 2026-07-31"


# --- the HTML report -----------------------------------------------------------------------


def test_report_has_the_exposure_section(run_cli: Any) -> None:
    result = run_cli("report", "-o", "r.html", "--period", Q3)
    assert result.exit_code == 0, result.output
    page = Path("r.html").read_text(encoding="utf-8")
    section = page[page.index('<section id="exposure">') :]
    section = section[: section.index("</section>")]
    assert '<a href="#exposure">Audit exposure</a>' in page
    assert section.count('class="exp-now"') == 2 + 1  # two processes + the legend
    assert section.count('class="exp-after"') == 3
    assert "N=29 k=2 n=25" in section and "N=16 k=0 n=16" in section
    assert "P = 1 - C(N-k, n) / C(N, n)" in section
    assert "CHG-5" in section and "CHG-10" in section


def hostile_table() -> Any:
    bad = PopulationRecord(
        source="s",
        key='=HYPERLINK("http://evil")',
        process="change",
        created_at=datetime(2026, 7, 1, tzinfo=timezone.utc),
        assignee="<script>alert(1)</script>",
        group="+cmd|' /C calc'!A0",
        url="javascript:alert(1)",
        failing=(Failing("CHG001", "8.5.1.3", "high"),),
    )
    good = [PopulationRecord("s", f"G{i}", "change") for i in range(3)]
    return build_table([bad, *good], samples={}, target=Fraction(1, 10))


def test_html_section_escapes_ticket_strings_and_drops_unsafe_links() -> None:
    from ticketlint.report.data import ReportData

    data = ReportData.__new__(ReportData)
    data.exposure = hostile_table()
    html = exposure_section(data)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "javascript:" not in html
    assert "=HYPERLINK(&quot;http://evil&quot;)" in html


def test_exposure_chart_draws_three_bars_per_process() -> None:
    svg = charts.exposure_bars(
        [("change", 0.5, 0.75, 0.0, "N=10 k=1 n=5"), ("<b>", 1.0, 1.0, 0.25, "x")], "label"
    )
    assert svg.count('class="exp-now"') == 2 and svg.count('class="exp-pess"') == 2
    assert 'width="160.0"' in svg  # 50 % of the 320-unit span
    assert "&lt;b&gt;" in svg and "<b>" not in svg


# --- the evidence pack ---------------------------------------------------------------------


def test_evidence_pack_has_the_exposure_csvs(run_cli: Any) -> None:
    result = run_cli("evidence", "--clause", "8.5.1", "--period", Q3, "--seed", "1", "-o", "pack")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(Path("pack/exposure.csv").read_text("utf-8"))))
    change = next(r for r in rows if r["scope"] == "process" and r["name"] == "change")
    assert (change["population_N"], change["nonconforming_k"], change["sample_n"]) == (
        "29",
        "2",
        "25",
    )
    assert change["exposure"] == f"{float(exposure(29, 2, 25)):.6f}"
    assert all(r["formula"] for r in rows)
    assert rows[-1]["scope"] == "overall"
    manifest = json.loads(Path("pack/manifest.json").read_text("utf-8"))
    assert manifest["exposure"]["formula"] == "P = 1 - C(N-k, n) / C(N, n)"
    assert {"exposure.csv", "exposure_fixes.csv"} <= {f["name"] for f in manifest["files"]}
    fixes = list(csv.DictReader(io.StringIO(Path("pack/exposure_fixes.csv").read_text("utf-8"))))
    assert [f["key"] for f in fixes] == ["CHG-5", "CHG-10"]  # high before medium


def test_fix_csv_guards_against_formula_injection(tmp_path: Path) -> None:
    write_csv(tmp_path / "f.csv", FIX_CSV_KEYS, fix_csv_rows(hostile_table()))
    row = next(csv.DictReader(io.StringIO((tmp_path / "f.csv").read_text("utf-8"))))
    assert row["key"] == '\'=HYPERLINK("http://evil")'
    assert row["group"].startswith("'+")


# --- the chat digest -----------------------------------------------------------------------


@responses.activate
def test_digest_has_a_line_per_process_whose_exposure_rose(tmp_path: Path) -> None:
    """Run 1 (stage 0) then run 2 (stage 1), both after every record was created:
    CHG-10 starts failing (change rises); INC1009 is fixed (incident falls, no line)."""
    config = write_config(tmp_path)
    config.write_text(
        config.read_text(encoding="utf-8")
        + "notify:\n  - {name: hook, type: webhook, url: 'https://hooks.example/x', always: true}\n"
        + "audit: {sample: {default: 10}}\n",
        encoding="utf-8",
    )
    cfg = load_config(config)
    responses.post("https://hooks.example/x", status=200)
    nights = (
        datetime(2026, 10, 1, 6, tzinfo=timezone.utc),
        datetime(2026, 10, 2, 6, tzinfo=timezone.utc),
    )
    for stage, day in enumerate(nights):
        options = SyncOptions(full=True, as_of=day, notify=True, writeback=False)
        result = run_sync(
            cfg,
            options,
            hooks=standard_hooks(options),
            connector_factory=lambda src, stage=stage: WorldConnector(src.name, stage),
            progress=Progress(io.StringIO()),
            clock=lambda day=day: day + timedelta(minutes=1),
        )
        assert result.sources and all(s.status == "ok" for s in result.sources)
    store = open_store(cfg.database)
    with store.session() as s:
        payloads = [r.payload for r in s.query(OutboxRow).order_by(OutboxRow.run_id)]
    store.dispose()
    assert len(payloads) == 2 and len(responses.calls) == 2
    assert (
        json.loads(responses.calls[1].request.body)["exposure"] == payloads[1]["body"]["exposure"]
    )
    assert payloads[0]["body"]["exposure"] == []  # no run before the first
    lines = payloads[1]["body"]["exposure"]
    assert [x["process"] for x in lines] == ["change"]
    assert lines[0]["before"] < lines[0]["after"]
    # 30 changes, 3 failing now (CHG-2, CHG-5, CHG-10) against 2 after run 1.
    assert lines[0]["after"] == float(exposure(30, 3, 10))
    assert lines[0]["before"] == float(exposure(30, 2, 10))
    assert lines[0]["text"] == "change: audit exposure 56.3% → 71.9% (N=30, k=3, n=10)"
