"""An exported ``sys_dictionary.json`` beside a ServiceNow export types its columns as a
live read does (issue 19, follow-up): ``check --input`` maps with the declared types,
says so in its log, and refuses a malformed dictionary naming the file and what it
expected, never falling back to guessing in silence.

Fixture: tests/fixtures/servicenow_export_dictionary, two changes and the task and
change_request rows of a dictionary where ``cab_date`` is ``glide_date`` and
``backout_plan`` is ``string`` (internal_type half as plain names, half as
``{link, value}`` references; one ``{}`` row an ACL hid).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ticketlint.cli import cli
from ticketlint.connectors.files import InputError, load_inputs
from ticketlint.mapping.common import MappingOptions

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "servicenow_export_dictionary"
AS_OF = "2026-03-10T00:00:00Z"


def _export(tmp_path: Path, dictionary: Any = None) -> Path:
    folder = tmp_path / "export"
    folder.mkdir()
    shutil.copy(FIX / "change_request.json", folder / "change_request.json")
    if dictionary is not None:
        text = dictionary if isinstance(dictionary, str) else json.dumps(dictionary)
        (folder / "sys_dictionary.json").write_text(text)
    return folder


def _fixture_dictionary() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIX / "sys_dictionary.json").read_text())
    return data


def _by_key(folder: Path) -> dict[str, Any]:
    loaded = load_inputs([folder], MappingOptions(source="file"))
    return {r.key: r for r in loaded.records}


def test_an_exported_glide_date_cab_date_types_the_column(tmp_path: Path) -> None:
    loaded = load_inputs([FIX], MappingOptions(source="file"))
    records = {r.key: r for r in loaded.records}
    assert str(records["CHG0030002"].cab_date) == "2026-03-02"
    assert records["CHG0030002"].unreadable is None
    # A time in a glide_date column contradicts its type: unknown, the record checked.
    late = records["CHG0030003"]
    assert late.cab_date is None
    assert late.unreadable == {
        "cab_date": "not a glide_date (sys_dictionary type): column 'cab_date': "
        "'2026-03-02 16:00:00'"
    }
    assert loaded.report.unreadable == {
        ("change.cab_date", "not a glide_date (sys_dictionary type)"): 1
    }
    # backout_plan is declared string: "<p><br></p>" is literal text, not empty HTML.
    assert late.backout_plan == "<p><br></p>"
    assert loaded.report.warnings == {
        "sys_dictionary.json: rows hidden by an ACL ({}) are not used": 1
    }
    assert not loaded.report.errors


def test_without_the_dictionary_the_same_export_is_read_by_shapes(tmp_path: Path) -> None:
    records = _by_key(_export(tmp_path))
    late = records["CHG0030003"]
    assert late.cab_date is not None and late.cab_date.hour == 16
    assert late.unreadable is None
    assert late.backout_plan == ""  # a value holding tags is HTML when no type says else


def test_one_table_file_uses_the_dictionary_beside_it(tmp_path: Path) -> None:
    folder = _export(tmp_path, _fixture_dictionary())
    loaded = load_inputs([folder / "change_request.json"], MappingOptions(source="file"))
    late = next(r for r in loaded.records if r.key == "CHG0030003")
    assert late.cab_date is None and late.unreadable is not None
    assert "not a glide_date" in late.unreadable["cab_date"]


def test_a_declared_type_the_field_cannot_use_is_warned(tmp_path: Path) -> None:
    dictionary = _fixture_dictionary()
    for row in dictionary["result"]:
        if row.get("element") == "cab_date":
            row["internal_type"] = "reference"
    loaded = load_inputs([_export(tmp_path, dictionary)], MappingOptions(source="file"))
    assert any(
        "change_request.cab_date is declared 'reference'" in w for w in loaded.report.warnings
    )
    late = next(r for r in loaded.records if r.key == "CHG0030003")
    assert late.cab_date is not None  # read by its value, as the warning says


def test_check_says_in_its_log_that_the_dictionary_was_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _export(tmp_path, _fixture_dictionary())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["-v", "check", "--input", "export", "--as-of", AS_OF, "-f", "json"]
    )
    assert result.exit_code in (0, 1), result.output
    assert (
        f"file: column types from {Path('export') / 'sys_dictionary.json'} (33 columns "
        "declared)" in result.stderr
    )
    data = json.loads(result.stdout)
    assert data["summary"]["unreadable"] == [
        {"field": "change.cab_date", "reason": "not a glide_date (sys_dictionary type)", "count": 1}
    ]
    assert folder.is_dir()


def test_without_a_dictionary_the_log_says_nothing_of_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        load_inputs([_export(tmp_path)], MappingOptions(source="file"))
    assert not [r for r in caplog.records if "sys_dictionary" in r.getMessage()]


def _row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "sys_id": "17b4717f007a35ec6b4b23053d597c1d",
        "name": "change_request",
        "element": "cab_date",
        "internal_type": "glide_date",
        "max_length": "40",
    }
    row.update(changes)
    return row


MALFORMED: list[tuple[str, Any, str]] = [
    ("not JSON", '{"result": [', "not valid JSON"),
    ("rows without result", [_row()], "expected a Table API response of sys_dictionary"),
    ("result an object", {"result": {"x": 1}}, "expected a Table API response"),
    ("a row a string", {"result": ["cab_date"]}, "result[0]: expected a row object, got str"),
    (
        "no internal_type",
        {"result": [_row(), _row(internal_type=None)]},
        "result[1]: expected internal_type as a non-empty raw value, got null",
    ),
    (
        "a display-value label",
        {"result": [_row(internal_type="Date/Time")]},
        "internal_type 'Date/Time' is not a type name such as glide_date",
    ),
    (
        "a title-case label",
        {"result": [_row(internal_type={"display_value": "Date", "value": "Date"})]},
        "internal_type 'Date' is not a type name",
    ),
    ("no element", {"result": [_row(element="")]}, "expected element as a non-empty raw value"),
    ("only hidden rows", {"result": [{}, {}]}, "holds no sys_dictionary row (2 rows, 2 hidden"),
    ("empty", {"result": []}, "holds no sys_dictionary row (0 rows"),
]


@pytest.mark.parametrize(
    ("dictionary", "expected"),
    [(d, e) for _, d, e in MALFORMED],
    ids=[name for name, _, _ in MALFORMED],
)
def test_a_malformed_dictionary_is_an_input_error_naming_the_file(
    tmp_path: Path, dictionary: Any, expected: str
) -> None:
    folder = _export(tmp_path, dictionary)
    with pytest.raises(InputError) as raised:
        load_inputs([folder], MappingOptions(source="file"))
    assert raised.value.path == folder / "sys_dictionary.json"
    assert expected in raised.value.problem
    if "JSON" not in expected:
        assert "/api/now/table/sys_dictionary" in raised.value.problem


def test_a_malformed_dictionary_fails_check_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _export(tmp_path, {"result": [_row(internal_type="Date")]})
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["check", "--input", "export", "--as-of", AS_OF])
    assert result.exit_code == 2 and result.stdout == ""
    assert str(Path("export") / "sys_dictionary.json") in result.stderr
    assert "is not a type name such as glide_date" in result.stderr


def test_the_dictionary_alone_is_refused_with_what_to_pass(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "sys_dictionary.json").write_text(json.dumps(_fixture_dictionary()))
    with pytest.raises(InputError, match="a sys_dictionary export alone has no records"):
        load_inputs([folder / "sys_dictionary.json"], MappingOptions(source="file"))
    with pytest.raises(InputError, match="holds no Jira search export"):
        load_inputs([folder], MappingOptions(source="file"))
