"""The README's rule table is the registry's (regenerate: UPDATE_SNAPSHOTS=1)."""

from __future__ import annotations

import os
from pathlib import Path

from ticketlint.report.formats import (
    README_RULES_END,
    README_RULES_START,
    rules_markdown_table,
    with_rules_table,
)
from ticketlint.rules.registry import load_registry

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_rule_table_matches_the_registry() -> None:
    rules = list(load_registry().rules.values())
    text = README.read_text(encoding="utf-8")
    expected = with_rules_table(text, rules)
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        README.write_text(expected, encoding="utf-8")
        text = expected
    block = text[
        text.index(README_RULES_START) + len(README_RULES_START) : text.index(README_RULES_END)
    ]
    assert block == "\n" + rules_markdown_table(rules), (
        "README rule table is stale: run UPDATE_SNAPSHOTS=1 pytest tests/cli/test_readme.py"
    )
    for r in rules:
        assert f"| {r.code} | {r.name} |" in block


def test_readme_has_the_promised_sections() -> None:
    text = README.read_text(encoding="utf-8")
    for heading in (
        "## Quick start",
        "## CLI reference",
        "## Configuration reference",
        "## Rules",
        "## Dependencies",
        "## Performance",
    ):
        assert heading in text
    assert "make demo" in text and "make test" in text
    performance = text.split("## Performance", 1)[1]
    assert "bench/evaluate.py" in performance and "records/s" in performance
