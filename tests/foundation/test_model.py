"""The record model keeps None (not provided) apart from empty."""

from datetime import timezone

import pytest
from pydantic import ValidationError

from ticketlint.mapping.model import Review, has_value, is_empty, record_from_dict


@pytest.mark.parametrize(
    "value, empty",
    [
        ("", True),
        (" \t\n", True),
        ("\u00a0\u2003", True),
        ("x", False),
        ([], True),
        ([1], False),
        (False, True),
        (True, False),
        (None, False),
        (Review(completed=False), True),
        (Review(completed=True), False),
        (0, False),
    ],
)
def test_is_empty(value, empty):
    assert is_empty(value) is empty
    assert has_value(value) is (value is not None and not empty)


def test_typed_scalars_take_the_empty_marker_and_convert_to_utc():
    record = record_from_dict(
        {
            "source": "s",
            "system": "file",
            "key": "INC-1",
            "process": "incident",
            "priority": "",
            "resolved_at": "",
            "created_at": "2026-03-02T14:10:05.123-07:00",
        }
    )
    assert record.priority == "" and record.resolved_at == "" and record.closed_at is None
    assert record.created_at.tzinfo == timezone.utc and record.created_at.hour == 21


def test_naive_datetimes_and_unknown_processes_are_rejected():
    with pytest.raises(ValidationError):
        record_from_dict(
            {
                "source": "s",
                "system": "file",
                "key": "A",
                "process": "incident",
                "created_at": "2026-03-02T14:10:05",
            }
        )
    with pytest.raises(ValueError, match="unknown process"):
        record_from_dict({"source": "s", "system": "file", "key": "A", "process": "audit"})
    for process in (["incident"], {"name": "incident"}, None):
        with pytest.raises(ValueError, match="unknown process"):
            record_from_dict({"source": "s", "system": "file", "key": "A", "process": process})


def test_extra_fields_are_rejected():
    with pytest.raises(ValidationError, match="Extra inputs"):
        record_from_dict(
            {"source": "s", "system": "file", "key": "A", "process": "ci", "risk": "x"}
        )
