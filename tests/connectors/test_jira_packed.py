"""Packed review issues (:mod:`ticketlint.connectors.jira.packed`): exact round trip,
and merged pages identical to those built from the parsed issues."""

from __future__ import annotations

from typing import Any

from ticketlint.connectors.jira.issues import merged_pages, updated_order
from ticketlint.connectors.jira.packed import PackedReviews
from ticketlint.packing import pack, unpack


def issue(key: str, minute: int) -> dict[str, Any]:
    return {
        "id": key.rsplit("-", 1)[1],
        "key": key,
        "fields": {
            "updated": f"2026-03-02T10:{minute:02d}:00.000+0000",
            "summary": "Résumé ✓",
            "story_points": 2.5,
            "issuelinks": [{"outwardIssue": {"key": "OPS-1"}}],
            "nothing": None,
        },
    }


def test_pack_round_trips_exactly_and_each_unpack_is_a_fresh_copy() -> None:
    original = issue("OPS-7", 3)
    blob = pack(original)
    first, second = unpack(blob), unpack(blob)
    assert first == original and second == original
    first["fields"]["summary"] = "changed"
    assert unpack(blob) == original and second == original


def test_merged_pages_are_the_same_with_packed_reviews() -> None:
    pages = [[issue("OPS-2", 1), issue("OPS-10", 5)], [issue("OPS-11", 9)]]
    reviews = [issue("OPS-1", 1), issue("OPS-3", 1), issue("OPS-9", 7), issue("OPS-12", 30)]
    packed = PackedReviews([(updated_order(r), pack(r)) for r in reviews])
    assert len(packed) == 4 and list(packed) == reviews and packed[1:3] == reviews[1:3]
    for cap in (None, 3):
        for cut in (pages, pages[:1], [[]]):
            assert list(merged_pages(iter(cut), packed, cap)) == list(
                merged_pages(iter(cut), reviews, cap)
            )
