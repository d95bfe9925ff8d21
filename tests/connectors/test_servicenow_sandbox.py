"""The ServiceNow connector against the sandbox over real HTTP on 127.0.0.1: the bulk
related streams give the same records as the id lists, within two requests of the page
minimum (the late parents' one read per related table) plus the data dictionary's one."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ticketlint.config import parse_config
from ticketlint.connectors.servicenow import ServiceNowConnector
from ticketlint.sandbox import serve

PAGE = 500
PROCESS_TABLES = ("incident", "change_request", "problem", "sc_req_item", "cmdb_ci")


@pytest.fixture(scope="module")
def server():
    s = serve(seed=3, size=6000).start()
    yield s
    s.stop()


def connector(server: Any, *, bulk: bool) -> ServiceNowConnector:
    c = server.credentials
    cfg = parse_config(
        "sources:\n  - name: snow\n    type: servicenow\n"
        f"    url: {server.url}\n    page_size: {PAGE}\n"
        f"    auth: {{user: {c.snow_user}, password: {c.snow_password}}}\n"
    )
    return ServiceNowConnector(cfg.sources[0], bulk_related=bulk)  # type: ignore[arg-type]


def read_everything(conn: ServiceNowConnector) -> dict[tuple[str, str], dict[str, Any]]:
    conn.plan(dict.fromkeys(conn.streams))
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for stream in conn.streams:
        for batch in conn.read(stream):
            for record in batch.records:
                out[(batch.stream, record.key)] = record.model_dump(mode="json", exclude={"raw"})
    conn.close()
    return out


def page_minimum(server: Any) -> int:
    sn = server.data.servicenow
    approvals = sum(1 for a in sn.approvals if a[1] in ("change_request", "sc_req_item"))
    task_ci = sum(1 for t in sn.task_ci if t[1] in ("incident", "change_request", "problem"))
    return (
        sum(math.ceil(sn.table_size(t) / PAGE) for t in PROCESS_TABLES)
        + math.ceil(approvals / PAGE)
        + math.ceil(task_ci / PAGE)
    )


def test_bulk_related_reads_match_the_id_lists_within_two_requests_of_the_minimum(
    server: Any,
) -> None:
    bulk = connector(server, bulk=True)
    by_bulk = read_everything(bulk)
    by_ids = connector(server, bulk=False)
    by_list = read_everything(by_ids)
    assert bulk.related_path == "bulk"
    assert len(by_bulk) > 3000 and by_bulk == by_list
    assert any(r.get("approvals") for r in by_bulk.values())
    # + 1: the data dictionary, read once per run (one page)
    assert bulk.request_count <= page_minimum(server) + 1 + 2 < by_ids.request_count
