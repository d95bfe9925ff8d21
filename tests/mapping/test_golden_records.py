"""Mapping results are pinned: every payload set of ``golden_sets`` maps to exactly the
records and report of the golden written before the mappers' speed work."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from golden_sets import GOLDEN, dump, payload_sets

from ticketlint.mapping.model import record_from_dict

SETS = payload_sets()
EXPECTED: dict[str, Any] = json.loads(gzip.decompress(GOLDEN.read_bytes()))


def test_golden_covers_every_payload_set() -> None:
    assert set(EXPECTED) == set(SETS)
    assert sum(len(v["records"]) for v in EXPECTED.values()) > 1500


@pytest.mark.parametrize("name", sorted(SETS))
def test_mapping_matches_golden(name: str) -> None:
    records, report = SETS[name]()
    got = dump((records, report))
    want = EXPECTED[name]
    assert got["report"] == want["report"]
    assert len(got["records"]) == len(want["records"])
    for g, w in zip(got["records"], want["records"], strict=False):
        assert g == w, f"{name}: {w.get('key')}"
    # the unvalidated construction must equal what validation would build
    for rec in records[:200]:
        assert record_from_dict(rec.model_dump()) == rec, rec.key
