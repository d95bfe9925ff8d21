"""The documents users read ship in the repository and are current (issue 17 item 7):
generated references match the code, the record model names every field, and no file
cites a document that is not in the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ticketlint import docs_gen
from ticketlint.mapping.model import RECORD_CLASSES

ROOT = Path(__file__).resolve().parents[2]
CITED_MD = re.compile(r"(?<![\w/.-])([A-Za-z0-9_][\w./-]*\.md)\b")


def test_generated_references_are_current() -> None:
    stale = [str(p.relative_to(ROOT)) for p in docs_gen.stale()]
    assert stale == [], f"{stale} not current: run `python -m ticketlint.docs_gen`"


def test_the_record_model_document_names_every_field() -> None:
    text = (ROOT / "docs" / "record-model.md").read_text(encoding="utf-8")
    missing = sorted(
        {
            f"{process}.{name}"
            for process, model in RECORD_CLASSES.items()
            for name in model.model_fields
            if f"`{name}`" not in text and f"`{name}`," not in text
        }
    )
    assert missing == []


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [
        ROOT / name
        for name in listed
        if Path(name).suffix in {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ""}
        and (ROOT / name).is_file()
    ]


def test_no_file_cites_a_document_that_is_not_in_the_repository() -> None:
    present = {p.name for p in ROOT.rglob("*.md") if ".venv" not in p.parts}
    cited: list[str] = []
    for path in _tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for name in CITED_MD.findall(line):
                if Path(name).name not in present:
                    cited.append(f"{path.relative_to(ROOT)}:{number}: {name}")
    assert cited == []
