"""Snapshot files under tests/snapshots: compare, or rewrite them with UPDATE_SNAPSHOTS=1."""

from __future__ import annotations

import os
from pathlib import Path

SNAPSHOTS = Path(__file__).parent / "snapshots"


def assert_snapshot(name: str, actual: str) -> None:
    """Compare ``actual`` with tests/snapshots/<name>; ``UPDATE_SNAPSHOTS=1`` rewrites it instead."""
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"no snapshot {path}; run with UPDATE_SNAPSHOTS=1 to create it"
    assert actual == path.read_text(encoding="utf-8"), (
        f"{name} differs from its snapshot (UPDATE_SNAPSHOTS=1 rewrites it)"
    )
