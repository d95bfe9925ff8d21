"""``make bench``: the end-to-end figures of issue 18 in one run, as ratios to their floors.

Every timed run is a child process started here (``ticketlint`` or a bare ``python``)
against the built-in sandbox served from this process; each figure is the median of
``--repeat`` runs (default 3), the runs of the compared commands alternating so that load
on the machine hits them alike. The machine is shared: read the ratios, not the seconds.

1. ``check --input`` on exports made from the sandbox (Jira search pages, changelog
   bulkfetch pages, field/status lists; ServiceNow ``<table>.json``) of ``--input-sizes``
   records, beside a child that only ``json.load``-s the same files once each (one
   process: the floor the issue set). ``check`` runs with its default ``--jobs`` (a
   worker per CPU). Also its peak RSS, and its largest worker's, beside the largest
   single input file; and ``ticketlint --version``, the process start every run pays
   (interpreter and imports: pydantic, click, the rules), as a share of the floor and
   of the target's budget (at 10,000 records it is most of the floor).
2. ``check`` (every configured source, live) and a first ``sync`` into a fresh SQLite
   store, beside the page minimum: a child that makes only the requests any complete read
   needs (search pages and changelog bulkfetch for Jira, the Table API pages for
   ServiceNow; :mod:`bench.evaluate`'s fetchers) and parses them. Wall and requests.
   Then 1% of the records is touched and ``sync`` runs again (incremental) from copies of
   the first sync's store: its wall and requests beside the first sync's. With
   ``BENCH_POSTGRES_URL`` (a PostgreSQL database the bench may empty: its ``public``
   schema is dropped and created again before each run), the first ``sync`` into it too.
3. Peak RSS of a first sync at ``--rss-sizes`` (20k and 100k; add 200k with ``--with-200k``:
   about 4 minutes alone, much more on a busy machine, so it is opt-in). One run each.
4. With ``BENCH_TAP_JIRA=/path/to/venv`` (a side venv where ``tap-jira`` is installed), the
   Singer tap's extract (discover, then sync its issue streams) of the same Jira data.

Run: ``python bench/run.py [--repeat 3] [--input-sizes 10000,100000] [--with-200k]``.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # childenv, also when loaded by path

from childenv import child_env

from ticketlint.sandbox.commands import DEMO_JIRA_ENV, DEMO_SNOW_ENV, config_yaml
from ticketlint.sandbox.server import SandboxServer
from ticketlint.workers import default_jobs

TARGETS = {"check --input": 2.5, "check --source": 1.15, "sync": 1.3, "requests": 1.05}
RSS_TARGET_MB = 250


def _bench_module(name: str) -> ModuleType:
    """A sibling bench script as a module (bench/ is no package; ``sync`` would also
    collide with the project's own ``sync`` room on sys.path)."""
    spec = importlib.util.spec_from_file_location(
        f"bench_{name}", Path(__file__).with_name(f"{name}.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EVALUATE = _bench_module("evaluate")
SYNC = _bench_module("sync")


@dataclass
class Child:
    seconds: float
    peak_mb: float
    stdout: str
    worker_peak_mb: float = 0.0
    """The largest peak RSS of the child's own children (``check --input`` workers),
    shared pages of the fork included: 0 when it started none."""


PEAK_WRAPPER = """
import atexit, os, resource, runpy, sys
def _peak():
    with open("/proc/self/status", encoding="ascii") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(os.environ["BENCH_PEAK_FILE"], "w", encoding="ascii") as out:
        out.write(f"{kib} {workers}")
atexit.register(_peak)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
"""Runs a Python script and writes its own peak RSS (``VmHWM``) at exit. ``wait4``'s
``ru_maxrss`` cannot be used: a child started by this (large) process inherits its high
water mark through fork and exec, so every child would look at least as big as the bench."""


def run_python(
    script: Path, args: list[str], *, env: dict[str, str], cwd: Path, ok: tuple[int, ...] = (0,)
) -> Child:
    """A Python script (``ticketlint`` itself, or a floor) in a child, with its own peak RSS."""
    peak_file = cwd / "peak-rss.txt"
    peak_file.unlink(missing_ok=True)
    child = run_child(
        [sys.executable, "-c", PEAK_WRAPPER, str(script), *args],
        env={**env, "BENCH_PEAK_FILE": str(peak_file)},
        cwd=cwd,
        ok=ok,
    )
    own, workers = peak_file.read_text(encoding="ascii").split()
    child.peak_mb, child.worker_peak_mb = int(own) / 1024, int(workers) / 1024
    return child


def run_child(
    argv: list[str], *, env: dict[str, str], cwd: Path, ok: tuple[int, ...] = (0,)
) -> Child:
    """One child process: wall seconds, ``wait4``'s peak RSS (see :data:`PEAK_WRAPPER`), stdout."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        if code not in ok:
            sys.stderr.write(err.read().decode("utf-8", "replace")[-4000:])
            raise SystemExit(f"{argv[0]} {' '.join(argv[1:3])} exited with {code}")
    return Child(seconds, usage.ru_maxrss / 1024, stdout)


@dataclass
class Row:
    label: str
    seconds: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    worker_peak_mb: list[float] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(self.seconds)

    @property
    def reqs(self) -> int:
        return int(statistics.median(self.requests)) if self.requests else 0

    @property
    def peak(self) -> float:
        return statistics.median(self.peak_mb) if self.peak_mb else 0.0

    @property
    def worker_peak(self) -> float:
        return statistics.median(self.worker_peak_mb) if self.worker_peak_mb else 0.0


def _verdict(ratio: float, target: float) -> str:
    return f"{ratio:5.2f}x (target {target}x: {'met' if ratio <= target else 'MISSED'})"


# --- 1. check --input vs json.load ------------------------------------------------------

FLOOR_SCRIPT = """
import json, sys
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        json.load(f)
"""


def write_export(server: SandboxServer, folder: Path) -> tuple[list[Path], int]:
    """Save what a person would export: Jira search and changelog pages as served, the
    field and status lists, and one Table API response per ServiceNow table."""
    session = requests.Session()
    session.auth = (server.credentials.jira_email, server.credentials.jira_token)
    jira = EVALUATE.fetch_jira(session, server.url)
    session.auth = (server.credentials.snow_user, server.credentials.snow_password)
    snow = EVALUATE.fetch_servicenow(session, server.url)
    jira_dir, snow_dir = folder / "jira", folder / "servicenow"
    jira_dir.mkdir(parents=True)
    snow_dir.mkdir()
    (jira_dir / "field.json").write_text(jira["fields"], encoding="utf-8")
    (jira_dir / "status.json").write_text(jira["statuses"], encoding="utf-8")
    for n, text in enumerate(jira["pages"], start=1):
        (jira_dir / f"search-{n:05d}.json").write_text(text, encoding="utf-8")
    for n, text in enumerate(jira["changelogs"], start=1):
        (jira_dir / f"changelog-{n:05d}.json").write_text(text, encoding="utf-8")
    records = sum(len(json.loads(t)["issues"]) for t in jira["pages"])
    for table, texts in snow.items():
        rows = [row for text in texts for row in json.loads(text)["result"]]
        (snow_dir / f"{table}.json").write_text(json.dumps({"result": rows}), encoding="utf-8")
        if table not in ("sysapproval_approver", "task_ci"):
            records += len(rows)
    return [jira_dir, snow_dir], records


def bench_check_input(size: int, repeat: int, seed: int, binary: Path) -> dict[str, Any]:
    print(f"[check --input] exporting ~{size:,} records from the sandbox...", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="ticketlint-bench-input-") as tmp:
        work = Path(tmp)
        with SandboxServer(seed=seed, size=size, hidden_share=0.0) as server:
            inputs, records = write_export(server, work / "export")
        files = sorted(p for d in inputs for p in d.iterdir())
        total_mb = sum(p.stat().st_size for p in files) / 2**20
        largest_mb = max(p.stat().st_size for p in files) / 2**20
        env = child_env()
        floor, check, start = Row("json.load"), Row("check --input"), Row("start")
        argv = ["-q", "check", "--exit-zero", "-f", "json"]
        argv += [a for p in inputs for a in ("--input", str(p))]
        argv += ["-o", str(work / "out.json")]
        floor_script = work / "floor.py"
        floor_script.write_text(FLOOR_SCRIPT, encoding="utf-8")
        for _ in range(repeat):
            child = run_python(floor_script, [str(p) for p in files], env=env, cwd=work)
            floor.seconds.append(child.seconds)
            floor.peak_mb.append(child.peak_mb)
            child = run_python(binary, argv, env=env, cwd=work)
            check.seconds.append(child.seconds)
            check.peak_mb.append(child.peak_mb)
            check.worker_peak_mb.append(child.worker_peak_mb)
            child = run_python(binary, ["--version"], env=env, cwd=work)
            start.seconds.append(child.seconds)
            start.peak_mb.append(child.peak_mb)
        findings = len(json.loads((work / "out.json").read_text(encoding="utf-8"))["findings"])
    return {
        "size": size,
        "records": records,
        "findings": findings,
        "files": len(files),
        "total_mb": total_mb,
        "largest_mb": largest_mb,
        "floor": floor,
        "check": check,
        "start": start,
    }


# --- 2. live check and sync vs the page minimum -----------------------------------------

MINIMUM_SCRIPT = """
import json, sys
import requests
url, jira_user, jira_token, snow_user, snow_password = sys.argv[1:6]
session = requests.Session()
# Jira: the field list (to name the mapped fields), every issue in search pages at the
# server's cap, and the changelog bulkfetch of the changes only (as page_minimum counts).
session.auth = (jira_user, jira_token)
from ticketlint.mapping.common import MappingOptions
from ticketlint.mapping.jira import JiraFieldCatalog, JiraMapper
catalog = JiraFieldCatalog.from_field_list(session.get(f"{url}/rest/api/3/field").json())
session.get(f"{url}/rest/api/2/status").json()  # history statuses' categories
session.get(f"{url}/rest/api/2/issuetype").json()  # the site's spelling of the types
mapper = JiraMapper(MappingOptions(source="floor", base_url=url), catalog)
fields = list(dict.fromkeys([*mapper.search_fields(), "updated", "issuetype", "status"]))
changes, token = [], None
while True:
    body = {"jql": "project in (OPS, CHG) ORDER BY updated ASC, key ASC", "fields": fields,
            "maxResults": 5000}
    if token:
        body["nextPageToken"] = token
    page = session.post(f"{url}/rest/api/3/search/jql", json=body).json()
    changes += [i["id"] for i in page["issues"] if mapper.process_of(i) == "change"]
    token = page.get("nextPageToken")
    if page.get("isLast", not token) or not token:
        break
for start in range(0, len(changes), 1000):
    token = None
    while True:
        body = {"issueIdsOrKeys": changes[start:start + 1000], "fieldIds": ["status"],
                "maxResults": 10000}
        if token:
            body["nextPageToken"] = token
        token = session.post(f"{url}/rest/api/3/changelog/bulkfetch", json=body).json().get(
            "nextPageToken")
        if not token:
            break
# ServiceNow: each table in pages of 1000 until a short page, the mapped fields only.
session.auth = (snow_user, snow_password)
from ticketlint.mapping.servicenow import (APPROVAL_FIELDS, APPROVAL_TABLE, DEFAULT_TABLES,
    TASK_CI_FIELDS, TASK_CI_TABLE, ServiceNowMapper)
smapper = ServiceNowMapper(MappingOptions(source="floor", base_url=url))
wanted = {table: smapper.fields_for(process) for process, table in DEFAULT_TABLES.items()}
wanted[APPROVAL_TABLE], wanted[TASK_CI_TABLE] = APPROVAL_FIELDS, TASK_CI_FIELDS
from ticketlint.connectors.servicenow.dictionary import dictionary_query
session.get(f"{url}/api/now/table/sys_dictionary", params={  # the mapped columns' types
    "sysparm_query": dictionary_query({t: n for t, n in wanted.items()}),
    "sysparm_fields": "name,element,internal_type", "sysparm_limit": 10000}).json()
for table, names in wanted.items():
    last = ""
    while True:
        query = "ORDERBYsys_id" if not last else f"sys_id>{last}^ORDERBYsys_id"
        rows = session.get(f"{url}/api/now/table/{table}", params={
            "sysparm_fields": ",".join(names), "sysparm_limit": 1000, "sysparm_query": query,
            "sysparm_exclude_reference_link": "true", "sysparm_no_count": "true"}).json()["result"]
        if len(rows) < 1000:
            break
        last = rows[-1]["sys_id"]
"""
"""The page minimum as a reader that knew nothing else would make it: the requests that
:func:`bench.sync.page_minimum` counts, keyset-paged, plus the :data:`SETUP_READS` the
answer depends on."""

SETUP_READS = {
    "jira": ("field list", "status list", "issue types"),
    "servicenow": ("sys_dictionary",),
}
"""Reads a complete answer needs besides the record pages: the custom fields' ids, the
categories of the statuses histories name, the site's spelling of the issue types (JQL
must name them; settled reading 20) and the declared types of the mapped columns (a
date-only column, literal text; settled readings 17-19). One request each."""


POSTGRES_ENV = "BENCH_POSTGRES_URL"
"""A PostgreSQL database URL (``postgresql+psycopg://user:password@host/db``) for the first
sync into PostgreSQL; the database is emptied before each run."""


def empty_postgres(url: str) -> None:
    """Drop and create ``url``'s ``public`` schema: the next sync starts from an empty
    store, as a fresh SQLite file does (tables, Alembic's version table and all)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    finally:
        engine.dispose()


def sync_argv(config: Path) -> list[str]:
    """``ticketlint``'s arguments for the timed sync: the run alone, no chat, no write-back."""
    return ["--config", str(config), "-q", "sync", "--no-notify", "--no-writeback"]


def bench_live(size: int, repeat: int, seed: int, binary: Path) -> dict[str, Any]:
    print(f"[live] sandbox with ~{size:,} records...", file=sys.stderr)
    postgres = os.environ.get(POSTGRES_ENV) or None
    names = ["page minimum", "check --source", "sync", "incremental sync"]
    names += ["sync (PostgreSQL)"] if postgres else []
    rows = {name: Row(name) for name in names}
    with (
        SandboxServer(seed=seed, size=size, hidden_share=0.0) as server,
        tempfile.TemporaryDirectory(prefix="ticketlint-bench-live-") as tmp,
    ):
        work = Path(tmp)
        c = server.credentials
        env = child_env(**{DEMO_JIRA_ENV: c.jira_token, DEMO_SNOW_ENV: c.snow_password})
        minimum = SYNC.page_minimum(server)
        minimum_script = work / "page_minimum.py"
        minimum_script.write_text(MINIMUM_SCRIPT, encoding="utf-8")
        for n in range(repeat):
            config = work / f"ticketlint-{n}.yaml"
            config.write_text(
                config_yaml(server, f"sqlite:///{work / f'sync-{n}.db'}"), encoding="utf-8"
            )
            check_args = ["--config", str(config), "-q", "check", "--exit-zero", "-f", "json"]
            check_args += ["-o", str(work / "check.json")]
            runs = {
                "page minimum": (
                    minimum_script,
                    [server.url, c.jira_email, c.jira_token, c.snow_user, c.snow_password],
                ),
                "check --source": (
                    binary,
                    check_args,
                ),
                "sync": (
                    binary,
                    sync_argv(config),
                ),
            }
            if postgres is not None:
                pg_config = work / f"ticketlint-pg-{n}.yaml"
                pg_config.write_text(config_yaml(server, postgres), encoding="utf-8")
                runs["sync (PostgreSQL)"] = (binary, sync_argv(pg_config))
            for name, (script, args) in runs.items():
                if name == "sync (PostgreSQL)":
                    empty_postgres(postgres)
                server.stats.clear()
                child = run_python(script, args, env=env, cwd=work)
                row = rows[name]
                row.seconds.append(child.seconds)
                row.peak_mb.append(child.peak_mb)
                row.requests.append(sum(SYNC.requests_by_system(server).values()))
        records = len(server.data.jira) + sum(
            server.data.servicenow.table_size(t) for t in (*SYNC.TASK_TABLES, "cmdb_ci")
        )
        touched = bench_incremental(server, work, env, repeat, binary, seed, rows)
        tap = bench_tap_jira(server, work, env, repeat, binary, config)
    return {
        "size": size,
        "records": records,
        "touched": touched,
        "page_requests": sum(minimum.values()),
        "minimum_requests": sum(minimum.values()) + sum(map(len, SETUP_READS.values())),
        "rows": rows,
        "tap": tap,
    }


CHANGED_SHARE = 0.01
"""Share of the records touched (their updated time bumped) before the incremental syncs."""


def bench_incremental(
    server: SandboxServer,
    work: Path,
    env: dict[str, str],
    repeat: int,
    binary: Path,
    seed: int,
    rows: dict[str, Row],
) -> int:
    """:data:`CHANGED_SHARE` of the records touched, then ``repeat`` incremental syncs,
    each from a copy of the first sync's store (``sync-0.db``). Returns how many records
    were touched."""
    touched: int = SYNC.touch_some(server, CHANGED_SHARE, seed)
    first = work / "sync-0.db"
    for n in range(repeat):
        db = work / f"incremental-{n}.db"
        for suffix in ("", "-wal", "-shm"):  # the WAL is normally gone once the sync ends
            source = Path(f"{first}{suffix}")
            if source.exists():
                shutil.copyfile(source, Path(f"{db}{suffix}"))
        config = work / f"incremental-{n}.yaml"
        config.write_text(config_yaml(server, f"sqlite:///{db}"), encoding="utf-8")
        server.stats.clear()
        child = run_python(
            binary,
            sync_argv(config),
            env=env,
            cwd=work,
        )
        row = rows["incremental sync"]
        row.seconds.append(child.seconds)
        row.peak_mb.append(child.peak_mb)
        row.requests.append(sum(SYNC.requests_by_system(server).values()))
    return touched


TAP_SHIM = """
import sys
import tap_jira
import tap_jira.http as tap_http

_url = tap_http.Client.url


def url(self, path):
    full = _url(self, path)
    if self.base_url.startswith("http://"):  # the tap writes https:// before every host
        full = "http://" + full[len("https://"):]
    return full


tap_http.Client.url = url
sys.exit(tap_jira.main())
"""
"""tap-jira (2.6) with one change: it may speak plain HTTP to the local sandbox. Its client
rewrites every base URL to ``https://``; nothing else of the tap is touched."""

TAP_STREAMS = ("issues", "issue_comments", "changelogs")
"""The tap's streams that read what ticketlint reads (issues with their comments and
embedded histories); the others read Jira administration (projects, users, roles,
worklogs, transitions) that the sandbox does not serve and no rule needs."""


def bench_tap_jira(
    server: SandboxServer,
    work: Path,
    env: dict[str, str],
    repeat: int,
    binary: Path,
    config: Path,
) -> tuple[Row, Row] | None:
    """tap-jira (singer-io) from a side venv (discover, select the issue streams, sync),
    beside ``ticketlint check`` of the Jira source alone, runs alternating."""
    venv = os.environ.get("BENCH_TAP_JIRA")
    if not venv:
        return None
    python = Path(venv) / "bin" / "python"
    if not (Path(venv) / "bin" / "tap-jira").exists():
        raise SystemExit(f"BENCH_TAP_JIRA={venv}: no bin/tap-jira there")
    shim = work / "tap_jira_http.py"
    shim.write_text(TAP_SHIM, encoding="utf-8")
    c = server.credentials
    tap_config = work / "tap-config.json"
    tap_config.write_text(
        json.dumps(
            {
                "base_url": server.url,
                "username": c.jira_email,
                "password": c.jira_token,
                "start_date": "2000-01-01T00:00:00Z",
                "user_agent": "ticketlint-bench",
            }
        ),
        encoding="utf-8",
    )
    tap = [str(python), str(shim), "--config", str(tap_config)]
    catalog = json.loads(run_child([*tap, "--discover"], env=env, cwd=work).stdout)
    for stream in catalog.get("streams", []):
        for entry in stream.get("metadata", []):
            if not entry.get("breadcrumb"):
                selected = stream.get("tap_stream_id") in TAP_STREAMS
                entry.setdefault("metadata", {})["selected"] = selected
    properties = work / "tap-properties.json"
    properties.write_text(json.dumps(catalog), encoding="utf-8")
    row, ours = Row("tap-jira extract"), Row("check --source jira")
    check = ["--config", str(config), "-q", "check", "--source", "jira-sandbox", "--exit-zero"]
    check += ["-f", "json", "-o", str(work / "check-jira.json")]
    for _ in range(repeat):
        server.stats.clear()
        # tap-jira 2.x reads its catalog from --properties (--catalog is ignored: it would
        # discover again and select nothing)
        child = run_child([*tap, "--properties", str(properties)], env=env, cwd=work)
        if '"type": "RECORD", "stream": "issues"' not in child.stdout:
            raise SystemExit("tap-jira extracted no issue")
        row.seconds.append(child.seconds)
        row.requests.append(SYNC.requests_by_system(server)["jira"])
        server.stats.clear()
        mine = run_python(binary, check, env=env, cwd=work)
        ours.seconds.append(mine.seconds)
        ours.peak_mb.append(mine.peak_mb)
        ours.requests.append(SYNC.requests_by_system(server)["jira"])
    return row, ours


# --- 3. peak RSS of a first sync at several sizes ---------------------------------------


def bench_rss(size: int, seed: int, binary: Path) -> tuple[int, float, float]:
    print(f"[rss] first sync of ~{size:,} records...", file=sys.stderr)
    with (
        SandboxServer(seed=seed, size=size, hidden_share=0.0) as server,
        tempfile.TemporaryDirectory(prefix="ticketlint-bench-rss-") as tmp,
    ):
        work = Path(tmp)
        config = work / "ticketlint.yaml"
        config.write_text(config_yaml(server, f"sqlite:///{work / 'sync.db'}"), encoding="utf-8")
        c = server.credentials
        env = child_env(**{DEMO_JIRA_ENV: c.jira_token, DEMO_SNOW_ENV: c.snow_password})
        argv = sync_argv(config)
        child = run_python(binary, argv, env=env, cwd=work)
        records = len(server.data.jira) + sum(
            server.data.servicenow.table_size(t) for t in (*SYNC.TASK_TABLES, "cmdb_ci")
        )
    return records, child.seconds, child.peak_mb


# --- the table --------------------------------------------------------------------------


def precompile() -> None:
    """Compile the package's modules to ``__pycache__`` before any timed run.

    An editable install with ``PYTHONDONTWRITEBYTECODE`` set (or a read-only checkout)
    would otherwise compile every imported module again in every child, a cost an
    installed wheel never pays; the bench measures what users run."""
    root = Path(__file__).resolve().parents[1]
    skip = r"[/\\](\.venv|\.git|tests|build)[/\\]"
    if not compileall.compile_dir(root, quiet=1, rx=re.compile(skip), workers=0):
        raise SystemExit(f"compileall failed under {root}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per timed figure (median)")
    parser.add_argument("--input-sizes", default="10000,100000", help="check --input export sizes")
    parser.add_argument("--live-size", type=int, default=20_000, help="records for check/sync")
    parser.add_argument("--rss-sizes", default="20000,100000", help="first-sync peak RSS sizes")
    parser.add_argument("--with-200k", action="store_true", help="also measure RSS at 200,000")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--parts", default="input,live,rss", help="which parts to run (input, live, rss)"
    )
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    binary = Path(sys.executable).parent / "ticketlint"
    repeat = max(1, args.repeat)
    rss_sizes = [int(s) for s in args.rss_sizes.split(",") if s]
    if args.with_200k and 200_000 not in rss_sizes:
        rss_sizes.append(200_000)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    precompile()

    sizes = [int(s) for s in args.input_sizes.split(",") if s] if "input" in parts else []
    inputs = [bench_check_input(size, repeat, args.seed, binary) for size in sizes]
    live = bench_live(args.live_size, repeat, args.seed, binary) if "live" in parts else None
    rss = [bench_rss(size, args.seed, binary) for size in rss_sizes] if "rss" in parts else []

    load = os.getloadavg()
    print(
        f"\nticketlint bench, {started}, {os.cpu_count()} cores, load {load[0]:.1f}/{load[1]:.1f};"
        f" median of {repeat} runs; ratios are what count on a shared machine"
    )
    print("\n| run (same data) | wall | ratio | requests | ratio | peak RSS |")
    print("|---|---|---|---|---|---|")
    for item in inputs:
        floor, check = item["floor"], item["check"]
        print(
            f"| json.load of a {item['records']:,}-record export ({item['files']} files,"
            f" {item['total_mb']:.0f} MB, largest {item['largest_mb']:.1f} MB) | {floor.wall:.2f} s | 1.00 | — | — |"
            f" {floor.peak:.0f} MB |"
        )
        ratio = check.wall / floor.wall
        print(
            f"| `check --input` ({default_jobs()} worker processes, the default here),"
            f" {item['findings']:,} findings | {check.wall:.2f} s |"
            f" {_verdict(ratio, TARGETS['check --input'])} | — | — | {check.peak:.0f} MB"
            f"{f' + workers of {check.worker_peak:.0f} MB each' if check.worker_peak else ''}"
            f" (2x the largest file: {2 * item['largest_mb']:.0f} MB; json.load"
            f" {floor.peak:.0f} MB) |"
        )
        start = item["start"]
        budget = TARGETS["check --input"] * floor.wall
        print(
            f"| of which `ticketlint --version` (process start: interpreter and imports, paid"
            f" by every run) | {start.wall:.2f} s | {start.wall / floor.wall:.2f}"
            f" ({start.wall / budget:.0%} of the {TARGETS['check --input']}x budget) | — | — |"
            f" {start.peak:.0f} MB |"
        )
    if live is not None:
        print_live(live)
    for records, seconds, peak in rss:
        verdict = "met" if peak < RSS_TARGET_MB else "MISSED"
        print(
            f"| first sync, {records:,} records (one run) | {seconds:.1f} s | — | — | — |"
            f" {peak:.0f} MB (target {RSS_TARGET_MB} MB: {verdict}) |"
        )
    if "rss" in parts and 200_000 not in rss_sizes:
        print("(200,000-record RSS not measured: pass --with-200k, ~4 min alone)")
    return 0


def print_live(live: dict[str, Any]) -> None:
    rows = live["rows"]
    base = rows["page minimum"]
    setup = sum(map(len, SETUP_READS.values()))
    print(
        f"| page minimum, {live['records']:,} records (search pages, changes' changelogs,"
        f" table pages, keyset; + {setup} setup reads: Jira fields, statuses, issue types;"
        f" ServiceNow sys_dictionary) | {base.wall:.2f} s | 1.00 |"
        f" {live['page_requests']} + {setup} = {live['minimum_requests']}"
        f" (this child: {base.reqs}) | 1.00 | {base.peak:.0f} MB |"
    )
    compared = [
        ("check --source", "`check --source`", TARGETS["check --source"]),
        ("sync", "`sync`, fresh SQLite", TARGETS["sync"]),
    ]
    if "sync (PostgreSQL)" in rows:
        compared.append(("sync (PostgreSQL)", "`sync`, fresh PostgreSQL", TARGETS["sync"]))
    for name, label, target in compared:
        row = rows[name]
        print(
            f"| {label} | {row.wall:.2f} s |"
            f" {_verdict(row.wall / base.wall, target)} | {row.reqs} |"
            f" {_verdict(row.reqs / live['minimum_requests'], TARGETS['requests'])}"
            f" (record pages alone: {row.reqs / live['page_requests']:.2f}x) |"
            f" {row.peak:.0f} MB |"
        )
    if "sync (PostgreSQL)" not in rows:
        print(
            f"| `sync`, fresh PostgreSQL | not run (set {POSTGRES_ENV}=postgresql+psycopg://...) | | | | |"
        )
    incremental, first = rows["incremental sync"], rows["sync"]
    print(
        f"| `sync` again after {live['touched']:,} records changed ({CHANGED_SHARE:.0%},"
        f" incremental) | {incremental.wall:.2f} s | {incremental.wall / first.wall:.2f}x the"
        f" first sync (in proportion to what changed: {CHANGED_SHARE:.2f}x plus the start-up)"
        f" | {incremental.reqs} | {incremental.reqs / max(1, first.reqs):.2f}x the first sync |"
        f" {incremental.peak:.0f} MB |"
    )
    if live["tap"] is not None:
        tap, ours = live["tap"]
        print(
            f"| `check --source jira-sandbox` (Jira alone) | {ours.wall:.2f} s | 1.00 |"
            f" {ours.reqs} | 1.00 | {ours.peak:.0f} MB |"
        )
        print(
            f"| tap-jira 2.x extract, same Jira (issues, comments, embedded histories) |"
            f" {tap.wall:.2f} s | {tap.wall / ours.wall:.2f}x | {tap.reqs} |"
            f" {tap.reqs / max(1, ours.reqs):.2f}x | — |"
        )
    else:
        print(
            "| tap-jira | not run (set BENCH_TAP_JIRA=/path/to/venv with tap-jira installed) | | | | |"
        )


if __name__ == "__main__":
    raise SystemExit(main())
