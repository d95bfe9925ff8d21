"""HTTP requests of a ServiceNow read against the sandbox, beside the page minimum.

Starts the sandbox in this process with ``--size`` records (``hidden_share`` 1%: some
``{}`` rows), reads every stream with :class:`ticketlint.connectors.servicenow.ServiceNowConnector`
(a full read), touches ``--changed`` of the task and CI rows, then reads again from each
stream's watermark (an incremental read, as ``ticketlint sync`` does).

The page minimum (README, "Performance") is what a reader that knew every row's place
would need: ``ceil(N / page)`` per table plus the related tables' pages. For the full
read N is the table size; for the incremental read N counts the rows a read from the
watermarks must see (changed rows plus those inside the lookback) and the related rows
of those parents. Run: ``python bench/servicenow_requests.py [--size N]``.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ticketlint.config import parse_config
from ticketlint.connectors.base import plan_reads
from ticketlint.connectors.servicenow import ServiceNowConnector
from ticketlint.sandbox.data import utc_text
from ticketlint.sandbox.server import SandboxServer

TASK_TABLES = ("incident", "change_request", "problem", "sc_req_item")
PROCESS_TABLE = {
    "ci": "cmdb_ci",
    "incident": "incident",
    "change": "change_request",
    "problem": "problem",
    "service_request": "sc_req_item",
}
APPROVAL_TABLES = ("change_request", "sc_req_item")
TASK_CI_TABLES = ("incident", "change_request", "problem")


def connector(server: SandboxServer, page: int) -> ServiceNowConnector:
    c = server.credentials
    cfg = parse_config(
        "sources:\n  - name: snow\n    type: servicenow\n"
        f"    url: {server.url}\n    page_size: {page}\n"
        f"    auth: {{user: {c.snow_user}, password: {c.snow_password}}}\n"
    )
    return ServiceNowConnector(cfg.sources[0])  # type: ignore[arg-type]


def page_minimum(
    server: SandboxServer, page: int, since: dict[str, datetime] | None, lookback: timedelta
) -> int:
    """ceil(rows / page) per table, counting only the rows a read from ``since`` must see."""
    sn = server.data.servicenow
    parents: set[str] = set()
    total = 0
    for process, table in PROCESS_TABLE.items():
        start = None
        if since is not None and process in since:
            start = utc_text(int((since[process] - lookback).timestamp() * 1000))
        ids = [
            sid
            for i, sid in enumerate(sn.sys_ids[table])
            if start is None or utc_text(sn.updated[table][i]) >= start
        ]
        total += math.ceil(len(ids) / page)
        parents.update(ids)
    approvals = sum(
        1 for a in sn.approvals if a[1] in APPROVAL_TABLES and sn.sys_ids[a[1]][a[2]] in parents
    )
    task_ci = sum(
        1 for t in sn.task_ci if t[1] in TASK_CI_TABLES and sn.sys_ids[t[1]][t[2]] in parents
    )
    return total + math.ceil(approvals / page) + math.ceil(task_ci / page)


def read_all(
    conn: ServiceNowConnector, since: dict[str, datetime] | None
) -> tuple[int, dict[str, datetime], float]:
    marks: dict[str, datetime] = {}
    records = 0
    t0 = time.perf_counter()
    if "--no-plan" not in sys.argv:  # as the sync runner and check do
        plan_reads(conn, since if since is not None else dict.fromkeys(conn.streams))
    for stream in conn.streams:
        for batch in conn.read(stream, since=None if since is None else since.get(stream)):
            records += len(batch.records)
            if batch.watermark is not None:
                marks[stream] = max(batch.watermark, marks.get(stream, batch.watermark))
    return records, marks, time.perf_counter() - t0


def print_requests(conn: ServiceNowConnector, minimum: int) -> None:
    n = conn.request_count
    print(
        f"  requests {n}   page minimum {minimum}   ({n / max(1, minimum):.2f}x)"
        f"   related path: {conn.related_path}"
    )
    conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=12_000, help="records across both systems")
    parser.add_argument("--page", type=int, default=1000)
    parser.add_argument(
        "--changed", type=float, default=0.01, help="share of rows changed before run 2"
    )
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--no-plan",
        action="store_true",
        help="do not tell the connector every stream's watermark up front",
    )
    args = parser.parse_args(argv)
    with SandboxServer(seed=args.seed, size=args.size) as server:
        sn = server.data.servicenow
        conn = connector(server, args.page)
        rows = sum(sn.table_size(t) for t in PROCESS_TABLE.values())
        minimum = page_minimum(server, args.page, None, timedelta(0))
        records, marks, seconds = read_all(conn, None)
        print(f"full read: {rows:,} rows ({records:,} records mapped) in {seconds:.1f} s")
        print_requests(conn, minimum)

        rng = random.Random(args.seed)
        touched = 0
        for table in (*TASK_TABLES, "cmdb_ci"):
            size = sn.table_size(table)
            for idx in rng.sample(range(size), max(1, int(size * args.changed))):
                sn.bump(table, idx)
                touched += 1
        conn = connector(server, args.page)
        lookback = timedelta(minutes=conn.cfg.lookback_minutes)
        minimum = page_minimum(server, args.page, marks, lookback)
        records, _, seconds = read_all(conn, marks)
        print(
            f"incremental read after {touched:,} changed rows: {records:,} records in {seconds:.1f} s"
        )
        print_requests(conn, minimum)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
