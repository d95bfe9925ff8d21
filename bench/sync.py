"""A full and an incremental ``ticketlint sync`` against the sandbox, measured.

Starts the built-in sandbox in this process (a thread) with ``--size`` records across
Jira and ServiceNow, then runs the real CLI as a child process:

1. a first (full) sync of both sources into a fresh SQLite store;
2. ``--changed`` (default 1%) records touched in the sandbox;
3. a second, incremental sync.

Prints per run: records read, wall time and records/s, HTTP requests beside the page
minimum (Jira: search pages at the server's page cap plus ceil(changes / 1000) changelog
calls; ServiceNow: ceil(N / 1000) per table plus the related tables' pages), and the
child's peak RSS (each run's own, from ``wait4``). Targets (README, "Performance"): peak RSS under
300 MB for 200,000 records and flat in N; an incremental run costs about ceil(k / page)
pages. Each figure is printed beside :data:`BASELINE`, the same bench before the sync
streamed its evaluation from the store. Run: ``python bench/sync.py [--size N]``.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # childenv, also when loaded by path

from childenv import child_env

from ticketlint.sandbox.commands import DEMO_JIRA_ENV, DEMO_SNOW_ENV, config_yaml
from ticketlint.sandbox.server import SandboxServer

JIRA_PAGE_CAP = 100  # what the sandbox (like Cloud) serves per search page with custom fields
SNOW_PAGE = 1000
TASK_TABLES = ("incident", "change_request", "problem", "sc_req_item")
PEAK_RSS_TARGET_MB = 300

BASELINE: dict[int, dict[str, dict[str, float]]] = {
    # --size -> run -> figures, measured at commit 36ffbb3: every stored record (with its
    # raw JSON) loaded into one list, evaluated whole, all finding rows held for the diff.
    20_000: {
        "first": {"records_per_s": 967, "peak_rss_mb": 412},
        "incremental": {"records_per_s": 3539, "peak_rss_mb": 412},
    },
}


def page_minimum(server: SandboxServer) -> dict[str, int]:
    """The fewest requests that could read every record once."""
    jira = server.data.jira
    by_type: dict[str, int] = {}
    for idx in range(len(jira)):
        by_type[jira.type_name(idx)] = by_type.get(jira.type_name(idx), 0) + 1
    changes = by_type.get("Change", 0)
    jira_min = sum(math.ceil(n / JIRA_PAGE_CAP) for n in by_type.values()) + math.ceil(
        changes / 1000
    )
    sn = server.data.servicenow
    tables = [*TASK_TABLES, "cmdb_ci", "sysapproval_approver", "task_ci"]
    snow_min = sum(math.ceil(sn.table_size(t) / SNOW_PAGE) for t in tables)
    return {"jira": jira_min, "servicenow": snow_min}


def run_sync(
    binary: Path, config: Path, env: dict[str, str], workdir: Path
) -> tuple[float, int, str]:
    """One sync in a child process: wall seconds, this child's peak RSS in KiB, stdout.

    ``wait4`` gives the child's own ``ru_maxrss``; ``RUSAGE_CHILDREN`` would report the
    largest of all children so far, so a second run could never look smaller.
    """
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [str(binary), "--config", str(config), "-q", "sync", "--no-notify", "--no-writeback"],
            stdout=out,
            stderr=err,
            env=env,
            cwd=workdir,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = (
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
        )
    if proc.returncode != 0:
        sys.stderr.write(stderr[-4000:])
        raise SystemExit(f"sync exited with {proc.returncode}")
    return elapsed, usage.ru_maxrss, stdout


def requests_by_system(server: SandboxServer) -> dict[str, int]:
    counts = {"jira": 0, "servicenow": 0}
    for endpoint, n in server.stats.items():
        if "/rest/" in endpoint:
            counts["jira"] += n
        elif "/api/now/" in endpoint or "oauth_token" in endpoint:
            counts["servicenow"] += n
    return counts


def touch_some(server: SandboxServer, share: float, seed: int) -> int:
    """Bump the updated time of ``share`` of all records, as people editing tickets would."""
    rng = random.Random(seed)
    jira, sn = server.data.jira, server.data.servicenow
    jira_pick = rng.sample(range(len(jira)), max(1, int(len(jira) * share)))
    for idx in jira_pick:
        jira.touch(idx)
    touched = len(jira_pick)
    for table in TASK_TABLES:
        size = sn.table_size(table)
        for idx in rng.sample(range(size), max(1, int(size * share))):
            sn.bump(table, idx)
            touched += 1
    return touched


def report(
    label: str,
    seconds: float,
    records: int,
    requests: dict[str, int],
    minimum: dict[str, int] | None,
    peak_kib: int,
    baseline: dict[str, float] | None = None,
    base_size: int | None = None,
) -> None:
    print(f"{label}")
    rate = records / seconds
    line = (
        f"  wall time:          {seconds:8.1f} s   ({rate:,.0f} records/s over {records:,} records)"
    )
    if baseline:
        line += f"   baseline {baseline['records_per_s']:,.0f} records/s at {base_size:,}"
    print(line)
    for system in ("jira", "servicenow"):
        line = f"  {system + ' requests:':19s} {requests[system]:8,d}"
        if minimum:
            line += f"   page minimum {minimum[system]:,}  ({requests[system] / max(1, minimum[system]):.2f}x)"
        print(line)
    peak_mb = peak_kib / 1024
    verdict = "meets" if peak_mb < PEAK_RSS_TARGET_MB else "MISSES"
    line = f"  peak RSS (child):   {peak_mb:8.0f} MB   {verdict} the {PEAK_RSS_TARGET_MB} MB target"
    if baseline:
        line += f"; baseline {baseline['peak_rss_mb']:,.0f} MB at {base_size:,}"
    print(line)


def nearest_baseline(size: int) -> tuple[int, dict[str, dict[str, float]]] | tuple[None, None]:
    """The baseline measured at the closest --size (there may be none)."""
    if not BASELINE:
        return None, None
    base_size = min(BASELINE, key=lambda n: abs(n - size))
    return base_size, BASELINE[base_size]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=200_000, help="records across both systems")
    parser.add_argument(
        "--changed", type=float, default=0.01, help="share of records changed before run 2"
    )
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    binary = Path(sys.executable).parent / "ticketlint"

    print(f"starting the sandbox with ~{args.size:,} records...", file=sys.stderr)
    with (
        SandboxServer(seed=args.seed, size=args.size, hidden_share=0.0) as server,
        tempfile.TemporaryDirectory(prefix="ticketlint-bench-") as tmp,
    ):
        workdir = Path(tmp)
        config = workdir / "ticketlint.yaml"
        config.write_text(
            config_yaml(server, f"sqlite:///{workdir / 'ticketlint.db'}"), encoding="utf-8"
        )
        env = child_env(
            **{
                DEMO_JIRA_ENV: server.credentials.jira_token,
                DEMO_SNOW_ENV: server.credentials.snow_password,
            }
        )
        records = len(server.data.jira) + sum(
            server.data.servicenow.table_size(t) for t in (*TASK_TABLES, "cmdb_ci")
        )
        minimum = page_minimum(server)

        base_size, base = nearest_baseline(args.size)
        server.stats.clear()
        seconds, peak, _ = run_sync(binary, config, env, workdir)
        report(
            "first sync (full read)",
            seconds,
            records,
            requests_by_system(server),
            minimum,
            peak,
            base["first"] if base else None,
            base_size,
        )

        touched = touch_some(server, args.changed, args.seed)
        server.stats.clear()
        seconds, peak, _ = run_sync(binary, config, env, workdir)
        print(f"\n{touched:,} records changed ({args.changed:.0%}), then:")
        report(
            "incremental sync",
            seconds,
            records,
            requests_by_system(server),
            None,
            peak,
            base["incremental"] if base else None,
            base_size,
        )
        print(
            "  (an incremental read should cost about ceil(k / page) pages per stream,"
            " plus the setup requests)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
