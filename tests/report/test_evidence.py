"""``ticketlint evidence``: golden pack files, the manifest verifies (and catches
tampering), the same seed draws the same sample, the size rule, errors exit 2."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest
from test_report import assert_snapshot, external_references

from ticketlint.report.evidence import DEFAULT_SAMPLE_SIZE, draw_sample, sample_size_for

ARGS = ("evidence", "--clause", "8.5.1", "--period", "2026-07-01..2026-09-30")
EXACT = (
    "population.csv",
    "exceptions.csv",
    "sample.csv",
    "waivers.csv",
    "rules.json",
    "exposure.csv",
    "exposure_fixes.csv",
)


def make_pack(run_cli: Any, out: str, *extra: str) -> Path:
    result = run_cli(*ARGS, "-o", out, *extra)
    assert result.exit_code == 0, result.output
    return Path(out)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_pack_matches_golden_files(run_cli: Any) -> None:
    pack = make_pack(run_cli, "pack", "--seed", "42")
    for name in EXACT:
        assert_snapshot(f"evidence/{name}", (pack / name).read_text(encoding="utf-8"))
    summary = re.sub(
        r"generated [^·]+·",
        "generated GENERATED ·",
        (pack / "summary.html").read_text(encoding="utf-8"),
    )
    assert_snapshot("evidence/summary.html", summary)
    manifest = json.loads((pack / "manifest.json").read_text(encoding="utf-8"))
    manifest["generated_at"] = "GENERATED"
    for f in manifest["files"]:
        if f["name"] == "summary.html":  # holds the generation time
            f["sha256"], f["bytes"] = "SCRUBBED", 0
    assert_snapshot("evidence/manifest.json", json.dumps(manifest, indent=2) + "\n")


def test_population_exceptions_and_sample_content(run_cli: Any) -> None:
    pack = make_pack(run_cli, "pack", "--seed", "42")
    population = rows(pack / "population.csv")
    # Changes only (8.5.1 rules apply to changes); CHG-1 was closed on 2026-06-25, before the period.
    assert {r["process"] for r in population} == {"change"} and len(population) == 29
    assert "CHG-1" not in {r["key"] for r in population} and "CHG-3" in {
        r["key"] for r in population
    }
    exceptions = rows(pack / "exceptions.csv")
    by_key = {(r["key"], r["rule"]): r for r in exceptions}
    assert by_key[("CHG-2", "RPT001")]["state"] == "resolved"
    assert "opened (run 1)" in by_key[("CHG-2", "RPT001")]["history"]
    assert "resolved (run 3)" in by_key[("CHG-2", "RPT001")]["history"]
    assert by_key[("CHG-5", "RPT001")]["state"] == "open"
    assert {r for _, r in by_key} <= {"RPT001", "RPT002"}  # no incident rule leaks in
    # A title that a spreadsheet would run as a formula is neutralised.
    chg5 = next(r for r in population if r["key"] == "CHG-5")
    assert chg5["title"].startswith("'=HYPERLINK")
    sample = rows(pack / "sample.csv")
    assert len(sample) == DEFAULT_SAMPLE_SIZE and [r["draw"] for r in sample] == [
        str(i) for i in range(1, 26)
    ]
    assert len({r["key"] for r in sample}) == 25
    definitions = json.loads((pack / "rules.json").read_text(encoding="utf-8"))
    assert [d["code"] for d in definitions] == ["RPT001", "RPT002"]
    assert {"Why", "Fails when", "Passes when", "Remediation"} <= set(definitions[0]["sections"])
    assert rows(pack / "waivers.csv") == []  # the only waiver is for an incident rule


def test_manifest_verifies_and_catches_tampering(run_cli: Any) -> None:
    pack = make_pack(run_cli, "pack", "--seed", "1")
    manifest = json.loads((pack / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(f["name"] for f in manifest["files"]) == sorted([*EXACT, "summary.html"])
    assert all(re.fullmatch(r"[0-9a-f]{64}", f["sha256"]) for f in manifest["files"])
    ok = run_cli("evidence", "verify", str(pack))
    assert ok.exit_code == 0 and "every file matches" in ok.output

    with (pack / "exceptions.csv").open("a", encoding="utf-8") as fh:
        fh.write("x\n")
    (pack / "sample.csv").unlink()
    (pack / "notes.txt").write_text("added later", encoding="utf-8")
    bad = run_cli("evidence", "verify", str(pack))
    assert bad.exit_code == 1
    assert "exceptions.csv: SHA-256 differs" in bad.output
    assert "sample.csv: missing" in bad.output and "notes.txt: not in the manifest" in bad.output


def test_same_seed_same_sample_other_seed_other_sample(run_cli: Any) -> None:
    a = (make_pack(run_cli, "a", "--seed", "7") / "sample.csv").read_text(encoding="utf-8")
    b = (make_pack(run_cli, "b", "--seed", "7") / "sample.csv").read_text(encoding="utf-8")
    c = (make_pack(run_cli, "c", "--seed", "8") / "sample.csv").read_text(encoding="utf-8")
    assert a == b and a != c


def test_without_a_seed_the_drawn_seed_is_recorded_and_reproduces(run_cli: Any) -> None:
    first = make_pack(run_cli, "first")
    seed = json.loads((first / "manifest.json").read_text(encoding="utf-8"))["sample"]["seed"]
    again = make_pack(run_cli, "again", "--seed", str(seed))
    assert (first / "sample.csv").read_bytes() == (again / "sample.csv").read_bytes()


def test_sample_size_rule() -> None:
    assert sample_size_for(100, None) == 25 and sample_size_for(10, None) == 10
    assert (
        sample_size_for(100, 40) == 40
        and sample_size_for(100, -1) == 100
        and sample_size_for(5, 40) == 5
    )
    keys = [("s", f"K{i}") for i in range(50)]
    assert draw_sample(keys, 3, 10) == draw_sample(list(reversed(keys)), 3, 10)  # order-independent


def test_sample_size_option(run_cli: Any) -> None:
    assert (
        len(rows(make_pack(run_cli, "all", "--seed", "1", "--sample-size", "all") / "sample.csv"))
        == 29
    )
    assert (
        len(rows(make_pack(run_cli, "five", "--seed", "1", "--sample-size", "5") / "sample.csv"))
        == 5
    )


def test_summary_is_self_contained(run_cli: Any) -> None:
    pack = make_pack(run_cli, "pack", "--seed", "42")
    page = (pack / "summary.html").read_text(encoding="utf-8")
    assert external_references(page) == [] and "Content-Security-Policy" in page
    assert "seed <code>42</code>" in page


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ("--clause", "4.4", "--period", "2026-07-01..2026-09-30", "-o", "x"),
            "no selected rule maps to clause",
        ),
        (("--clause", "8.5.1", "-o", "x"), "--period"),
        (("--clause", "8.5.1", "--period", "2026-13-01..", "-o", "x"), "ISO dates"),
    ],
)
def test_errors_exit_2(run_cli: Any, args: tuple[str, ...], message: str) -> None:
    result = run_cli("evidence", *args)
    assert result.exit_code == 2 and message in result.output


def test_never_overwrites_a_pack(run_cli: Any) -> None:
    make_pack(run_cli, "pack", "--seed", "1")
    result = run_cli(*ARGS, "-o", "pack", "--seed", "1")
    assert result.exit_code == 2 and "not empty" in result.output
