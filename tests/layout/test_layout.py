"""The house rules of the source tree: one import name, rooms imported in one direction.

Static checks (AST, no imports executed), plus one wheel build that proves the installed
distribution exposes ``ticketlint`` and nothing else.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A room may import rooms of a lower rank, never of a higher one. ``commands.py`` modules
# and ``sync/cli_support.py`` are the CLI layer wherever they live: they wire rooms together.
RANK = {
    "escaping": -1,  # sink escaping, secret redaction, bounded JSON: pure helpers every
    "redact": -1,  # room may use; they import nothing of ticketlint
    "safejson": -1,
    "packing": -1,
    "yaml_lines": 0,  # YAML with line numbers, for error messages
    "mapping": 0,  # records and translation: pure
    "config": 1,  # the configuration models (name mapping defaults)
    "rules": 2,  # judging: pure functions of records
    "connectors": 3,  # fetching: HTTP and source APIs
    "store": 4,  # remembering
    "sync": 5,  # the incremental run
    "notify": 6,
    "report": 6,
    "plugin": 7,  # write-back and serve (serve posts immediate findings through notify)
    "sandbox": 8,
    "cli": 8,
    "docs_gen": 9,  # writes docs/ from the rules, the config models and the CLI
}
CLI_LAYER = re.compile(r"(^|/)(commands|cli_support)\.py$")
NO_IO = {"rules", "mapping"}
IO_MODULES = {
    "requests",
    "sqlalchemy",
    "alembic",
    "jira",
    "pysnow",
    "flask",
    "waitress",
    "socket",
    "http",
    "urllib",
    "urllib3",
}


def _room_files() -> list[tuple[str, Path]]:
    out = []
    for room in RANK:
        single = ROOT / f"{room}.py"
        paths = [single] if single.exists() else sorted((ROOT / room).rglob("*.py"))
        out += [(room, p) for p in paths]
    return out


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # importlib.import_module("ticketlint.x") by name counts as an import too.
            if re.fullmatch(r"ticketlint(\.\w+)+", node.value):
                found.append((node.lineno, node.value))
    return found


def test_rooms_import_only_downwards() -> None:
    wrong = []
    for room, path in _room_files():
        rel = path.relative_to(ROOT).as_posix()
        rank = RANK["cli"] if CLI_LAYER.search(rel) else RANK[room]
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[0] != "ticketlint" or len(parts) < 2 or parts[1] not in RANK:
                continue
            target = parts[1]
            if target != room and RANK[target] > rank:
                wrong.append(f"{rel}:{line} ({room}) imports {module}")
    assert not wrong, "imports against the direction of the rooms:\n" + "\n".join(wrong)


def test_rules_and_mapping_never_import_io() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for room, path in _room_files()
        if room in NO_IO
        for line, module in _imports(path)
        if module.split(".")[0] in IO_MODULES
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_by_an_old_top_level_name() -> None:
    old = {
        "cli",
        "config",
        "connectors",
        "mapping",
        "rules",
        "sync",
        "sandbox",
        "store",
        "notify",
        "report",
        "plugin",
    }
    files = [p for p in ROOT.rglob("*.py") if not {".venv", "build", ".git"} & set(p.parts)]
    wrong = [
        f"{p.relative_to(ROOT)}:{line} imports {module}"
        for p in files
        for line, module in _imports(p)
        if module.split(".")[0] in old
    ]
    assert not wrong, "import through ticketlint.<room> instead:\n" + "\n".join(wrong)


def test_every_package_is_listed_in_pyproject() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {"ticketlint"} | {
        "ticketlint." + ".".join(init.parent.relative_to(ROOT).parts)
        for room in RANK
        if (ROOT / room).is_dir()
        for init in (ROOT / room).rglob("__init__.py")
    }
    assert listed == on_disk


def test_every_module_has_a_docstring() -> None:
    missing = [
        str(path.relative_to(ROOT))
        for _, path in _room_files()
        if path.stat().st_size
        and ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) is None
        and "versions" not in path.parts
    ]
    assert not missing, missing


PROBE = "import ticketlint, ticketlint.rules.registry, ticketlint.cli; print(ticketlint.__file__)"


@pytest.mark.slow
def test_the_wheel_has_one_top_level_name(tmp_path: Path) -> None:
    build_dir = ROOT / "build"
    existed = build_dir.exists()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if not existed:  # setuptools builds inside the source tree; leave it as it was
        shutil.rmtree(build_dir, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = tmp_path.glob("ticketlint-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {
        "ticketlint",
        wheel.name.split("-py")[0] + ".dist-info",
    }
    assert "ticketlint/rules/packs/iso20000/clauses.yaml" in names
    assert "ticketlint/store/migrations/script.py.mako" in names
    top_level = [n for n in names if n.endswith("top_level.txt")]
    if top_level:
        assert zipfile.ZipFile(wheel).read(top_level[0]).decode().split() == ["ticketlint"]
    # Importable from the wheel alone, ahead of the editable install.
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    probe = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(target)},
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip().startswith(str(target))
