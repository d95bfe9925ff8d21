"""The collector pause around parsing and mapping is always undone, also on errors.

``check --input`` parses and maps with the cyclic garbage collector paused
(:func:`ticketlint.mapping.common.gc_paused`); a pause left behind would make every later
allocation in the process pile up uncollected cycles, so these tests check the state after
failures as well as after success, from both starting states.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ticketlint.connectors.files import InputError, load_inputs
from ticketlint.mapping.common import MappingOptions, gc_paused

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(params=[True, False], ids=["collector-on", "collector-off"])
def collector(request: pytest.FixtureRequest) -> Iterator[bool]:
    """Run the test with the collector on, then off; restore the process's state after."""
    before = gc.isenabled()
    if request.param:
        gc.enable()
    else:
        gc.disable()
    try:
        yield request.param
    finally:
        if before:
            gc.enable()
        else:
            gc.disable()


@pytest.mark.parametrize("promote", [False, True])
def test_pause_is_restored_when_the_body_raises(collector: bool, promote: bool) -> None:
    frozen = gc.get_freeze_count()
    with pytest.raises(ZeroDivisionError), gc_paused(promote=promote):
        assert not gc.isenabled()
        _ = 1 / 0
    assert gc.isenabled() is collector
    assert gc.get_freeze_count() == frozen


def test_nested_pause_is_restored_through_an_inner_error(collector: bool) -> None:
    with gc_paused():
        with pytest.raises(KeyError), gc_paused(promote=True):
            raise KeyError("inner")
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled() is collector


def test_invalid_json_input_leaves_the_collector_as_it_was(collector: bool, tmp_path: Path) -> None:
    bad = tmp_path / "incident.json"
    bad.write_text('{"result": [{"number": "INC1"', encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON"):
        load_inputs([bad], MappingOptions(source="file"))
    assert gc.isenabled() is collector


def test_a_mapping_failure_leaves_the_collector_as_it_was(collector: bool, tmp_path: Path) -> None:
    # Parsed fine, then rejected while reading the export: the pause around the parse
    # has ended and the error surfaces with the collector in its earlier state.
    table = tmp_path / "incident.json"
    table.write_text(json.dumps({"result": "no rows here"}), encoding="utf-8")
    with pytest.raises(InputError, match="not a ServiceNow Table API response"):
        load_inputs([table], MappingOptions(source="file"))
    assert gc.isenabled() is collector


def test_a_successful_load_leaves_the_collector_as_it_was(collector: bool) -> None:
    loaded = load_inputs(
        [
            FIXTURES / "jira" / "datacenter_search.json",
            FIXTURES / "servicenow_api" / "incident.json",
        ],
        MappingOptions(source="file"),
    )
    assert loaded.records
    assert gc.isenabled() is collector
