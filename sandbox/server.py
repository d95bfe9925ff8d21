"""One local HTTP server for both imitated systems, with fault injection and admin endpoints.

Jira lives under ``/rest/...``, ServiceNow under ``/api/now/...`` and ``/oauth_token.do``.
``/_sandbox/stats`` (request counts per endpoint, faults injected), ``/_sandbox/info``
(seed, size, counts, credentials) and ``POST /_sandbox/mutate`` (change a record's
fields and bump its updated time) are for tests; they are never faulted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from typing_extensions import Self

from ticketlint.sandbox.data import Dataset
from ticketlint.sandbox.faults import FaultPlan
from ticketlint.sandbox.http import Credentials, Request, Response, json_response
from ticketlint.sandbox.jira_api import JiraApi
from ticketlint.sandbox.mutations import MutationError, Mutator
from ticketlint.sandbox.servicenow_api import ServiceNowApi, failure
from ticketlint.sandbox.servicenow_data import TASK_TABLES

MAX_BODY = 10 * 1024 * 1024


class SandboxServer:
    """The running sandbox. ``start()`` serves in a daemon thread; ``stop()`` shuts down."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        seed: int = 1,
        size: int = 600,
        faults: str | FaultPlan | None = None,
        anchor: int | None = None,
        hidden_share: float = 0.01,
        credentials: Credentials | None = None,
        real_shapes: bool = False,
        jira_deployment: str = "Cloud",
    ) -> None:
        self.seed, self.size = seed, size
        self.credentials = credentials or Credentials()
        self.data = Dataset(seed, size, anchor=anchor, hidden_share=hidden_share)
        # issue 19: "[System]" JSM types, truncated comment lists, closed incidents
        # without resolutiondate, date-only cab_date (see JiraData / ServiceNowData)
        self.data.jira.real_shapes = real_shapes
        self.data.servicenow.real_shapes = real_shapes
        self.faults = faults if isinstance(faults, FaultPlan) else FaultPlan.parse(faults, seed)
        self.jira = JiraApi(self.data.jira, self.credentials, jira_deployment)
        self.servicenow = ServiceNowApi(self.data.servicenow, self.credentials)
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self.httpd.daemon_threads = True
        bound_host, self.port = self.httpd.server_address[:2]
        # An AF_INET server reports its host as text; typeshed also allows bytes.
        self.host = bound_host if isinstance(bound_host, str) else bytes(bound_host).decode()
        self.data.base_url = self.url
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="ticketlint-sandbox", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch ----------------------------------------------------------------------
    def dispatch(self, req: Request) -> Response | None:
        """The response, or None when the connection must be reset (a fault)."""
        if req.path.startswith("/_sandbox"):
            return self.admin(req)
        api: JiraApi | ServiceNowApi | None = (
            self.jira
            if self.jira.owns(req.path)
            else self.servicenow
            if self.servicenow.owns(req.path)
            else None
        )
        if api is None:
            return json_response(404, {"error": "not found", "path": req.path})
        with self._stats_lock:
            self.stats[api.route(req)] += 1
        n, fault = self.faults.next()
        if fault == "reset":
            return None
        if fault == "429":
            headers = (
                {"Retry-After": f"{self.faults.retry_after:g}"}
                if self.faults.with_retry_after(n)
                else {}
            )
            if api is self.jira:
                return json_response(
                    429, {"errorMessages": ["Rate limit exceeded."], "errors": {}}, **headers
                )
            resp = failure(
                429, "Rate limit exceeded", "The rate limit for this user has been exceeded"
            )
            resp.headers.update(headers)
            return resp
        if fault in ("500", "502", "503"):
            status = int(fault)
            if status == 502:
                return Response(
                    502,
                    b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                    {"Content-Type": "text/html"},
                )
            if api is self.jira:
                return json_response(
                    status, {"errorMessages": ["Internal server error"], "errors": {}}
                )
            return failure(
                status,
                "Internal server error",
                "Transaction cancelled: maximum execution time exceeded",
            )
        if fault == "slow":
            time.sleep(self.faults.slow_seconds)
        if fault == "mutate":
            self.mutate_random(api is self.jira, n)
        return api.handle(req)

    def mutate_random(self, jira: bool, n: int) -> None:
        """Another user edits a finished record between two page requests: only its
        updated time moves, so no rule outcome changes (open records are left alone,
        because staleness rules read their updated time)."""
        pick = int(hashlib.sha256(f"{self.seed}:mutate:{n}".encode()).hexdigest()[:12], 16)
        if jira:
            data = self.data.jira
            for k in range(64):
                idx = (pick + k) % len(data)
                if data._plan(idx).sc.state in ("resolved", "closed", "cancelled"):
                    data.touch(idx)
                    return
            return
        sn = self.data.servicenow
        tables = list(TASK_TABLES)
        table = tables[pick % len(tables)]
        for k in range(64):
            idx = (pick // 7 + k) % sn.counts[table]
            if sn._plan(table, idx)[0].state in ("resolved", "closed", "cancelled"):
                sn.bump(table, idx)
                return

    # -- admin -------------------------------------------------------------------------
    def admin(self, req: Request) -> Response:
        if req.path == "/_sandbox/stats" and req.method == "GET":
            with self._stats_lock:
                return json_response(
                    200,
                    {
                        "requests": dict(self.stats),
                        "total": sum(self.stats.values()),
                        "faults": dict(self.faults.injected),
                    },
                )
        if req.path == "/_sandbox/info" and req.method == "GET":
            c = self.credentials
            return json_response(
                200,
                {
                    "url": self.url,
                    "seed": self.seed,
                    "size": self.size,
                    "jira": {
                        "issues": len(self.data.jira),
                        "email": c.jira_email,
                        "token": c.jira_token,
                        "pat": c.jira_pat,
                        "fields": self.data.jira.field_ids,
                        "timeZone": self.data.users[0].zone,
                    },
                    "servicenow": {
                        "tables": {
                            t: self.data.servicenow.table_size(t)
                            for t in self.data.servicenow.tables()
                        },
                        "user": c.snow_user,
                        "password": c.snow_password,
                        "client_id": c.oauth_client_id,
                        "client_secret": c.oauth_client_secret,
                    },
                },
            )
        if req.path == "/_sandbox/mutate" and req.method == "POST":
            return self.admin_mutate(req.json() or {})
        return json_response(404, {"error": "unknown admin endpoint"})

    def admin_mutate(self, body: dict[str, Any]) -> Response:
        """``{"key": "OPS-12", "fields": {...}}`` for Jira (field names or ids; values in
        REST v3 shape) or ``{"table": "incident", "sys_id"|"number": ..., "fields": {...}}``
        for ServiceNow (raw values). Bumps the record's updated time either way.

        ``{"op": ..., ...}`` applies one realistic change and ``{"random": {"seed", "count",
        "system"}}`` a seeded batch of them (:mod:`ticketlint.sandbox.mutations`); both answer
        ``{"changes": [{"kind", "system", "record", "before", "after"}, ...]}``."""
        if "random" in body or "op" in body:
            return self._apply_changes(body)
        fields = body.get("fields") or {}
        if "key" in body:
            data = self.data.jira
            idx = data.index_of(str(body["key"]))
            if idx is None:
                return json_response(404, {"error": f"no issue {body['key']}"})
            data.set_fields(idx, dict(fields))
            return json_response(
                200, {"key": data.key(idx), "updated": data.issue(idx)["fields"]["updated"]}
            )
        sn = self.data.servicenow
        table = body.get("table")
        if table not in sn.sys_ids:
            return json_response(400, {"error": f"table must be one of {sorted(sn.sys_ids)}"})
        idx = None
        if body.get("sys_id"):
            found = sn.lookup(str(body["sys_id"]))
            idx = found[1] if found and found[0] == table else None
        elif body.get("number"):
            idx = next(
                (
                    i
                    for i in range(sn.counts[table])
                    if sn.row(table, i).get("number") == body["number"]
                ),
                None,
            )
        if idx is None:
            return json_response(404, {"error": "no such record"})
        with sn.lock:
            if fields:
                sn.overrides.setdefault((table, idx), {}).update(
                    {k: str(v) for k, v in fields.items()}
                )
            sn.bump(table, idx)
        row = sn.row(table, idx)
        return json_response(
            200, {"sys_id": row["sys_id"], "sys_updated_on": row["sys_updated_on"]}
        )

    def _apply_changes(self, body: dict[str, Any]) -> Response:
        mutator = Mutator(self.data)
        try:
            if "random" in body:
                spec = body["random"] or {}
                changes = mutator.random_batch(
                    int(spec.get("seed", 0)), int(spec.get("count", 10)), str(spec.get("system"))
                )
            elif "key" in body:
                changes = [mutator.jira(body)]
            else:
                changes = [mutator.servicenow(body)]
        except MutationError as exc:
            return json_response(404, {"error": str(exc)})
        except (TypeError, ValueError) as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(200, {"changes": changes})


def _handler_for(server: SandboxServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ticketlint-sandbox"
        # TCP_NODELAY, as web servers set it: the body, written after the headers, went out
        # only once the client acknowledged them, and clients delay that ACK by 40 ms, so
        # every small answer on a kept-alive connection took 40 ms more than Jira's or
        # ServiceNow's would (an incremental sync of the 20k sandbox: 3.3 s -> 2.3 s).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests and the demo print their own progress

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self.send_error(413)
                return
            body = self.rfile.read(length) if length else b""
            req = Request(
                self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
            )
            try:
                resp = server.dispatch(req)
            except json.JSONDecodeError:
                resp = json_response(400, {"errorMessages": ["Invalid JSON body."], "errors": {}})
            if resp is None:
                self._reset()
                return
            payload = resp.payload()
            self.send_response(resp.status)
            for name, value in resp.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _reset(self) -> None:
            # SO_LINGER 0: close sends RST, which clients see as "connection reset by peer"
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.close()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    seed: int = 1,
    size: int = 600,
    faults: str | None = None,
    anchor: int | None = None,
    hidden_share: float = 0.01,
    real_shapes: bool = False,
    jira_deployment: str = "Cloud",
) -> SandboxServer:
    """Build the sandbox bound to ``host:port`` (0 = a free port); call ``.start()``.
    ``jira_deployment="Server"`` serves Jira as a Data Center site."""
    return SandboxServer(
        host,
        port,
        seed=seed,
        size=size,
        faults=faults,
        anchor=anchor,
        hidden_share=hidden_share,
        real_shapes=real_shapes,
        jira_deployment=jira_deployment,
    )
