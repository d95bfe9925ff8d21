"""The Flask application of ``ticketlint serve``: webhook endpoints, health and metrics.

Every webhook is handled the same way, cheaply, before anything is queued:

1. the body is bounded (``serve.max_body_bytes``; larger is 413 and never read);
2. the signature is checked over the raw body when a secret is configured (401 when
   missing or wrong; nothing else happens);
3. the delivery must be fresh (Jira: the signed body's ``timestamp``; ServiceNow: the
   signed ``X-Ticketlint-Timestamp``) and not seen before within that window;
4. only identifiers are taken from the payload (Jira issue key, ServiceNow table and
   sys_id) and a re-check is queued; the answer is 202 at once.

The re-check itself (re-read, evaluate, store, write-back, chat) runs on the
:class:`~ticketlint.plugin.serve.coalesce.CoalescingQueue` workers.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask, Response, g, jsonify, request
from sqlalchemy import text
from werkzeug.exceptions import RequestEntityTooLarge

from ticketlint import safejson
from ticketlint.config import Config, ConfigError, JiraSource, ServiceNowSource
from ticketlint.mapping.common import parse_jira_time, parse_servicenow_time
from ticketlint.plugin.serve import security
from ticketlint.plugin.serve.coalesce import CoalescingQueue, TicketRef
from ticketlint.plugin.serve.metrics import CONTENT_TYPE, Counters, render
from ticketlint.plugin.serve.recheck import Rechecker, RecheckResult
from ticketlint.plugin.serve.shared import RereadGate, StoreReplayGuard
from ticketlint.store.db import Store

log = logging.getLogger(__name__)

JIRA_WINDOW = 3600.0
"""Seconds a Jira delivery stays acceptable: Jira Cloud retries failed deliveries for up
to 30 minutes, and secondary-flow events may arrive 15 minutes late."""
SERVICENOW_WINDOW = 300.0
"""Seconds a ServiceNow delivery stays acceptable (our business rule sends at once)."""

JIRA_KEY = re.compile(r"^(?:[A-Za-z][A-Za-z0-9_]*-[0-9]+|[0-9]+)$")
SYS_ID = re.compile(r"^[0-9a-f]{32}$")
TABLE = re.compile(r"^[a-z][a-z0-9_]{0,79}$")
JIRA_DELETED_EVENTS = frozenset({"jira:issue_deleted"})

STATE_KEY = "ticketlint"
JSON_MAX_DEPTH = 64
"""Nesting a webhook body may have: Jira's issue events nest about 8 levels (ADF
descriptions in Cloud payloads more, never 64)."""
access_log = logging.getLogger("ticketlint.plugin.serve.access")
"""One line per webhook: endpoint, source, key, verdict, HTTP status, latency (no body)."""


@dataclass
class ServeState:
    """What the app shares with its request handlers (``app.extensions["ticketlint"]``)."""

    cfg: Config
    store: Store
    queue: CoalescingQueue
    rechecker: Rechecker | None
    counters: Counters
    jira_replays: security.ReplayGuard | StoreReplayGuard
    servicenow_replays: security.ReplayGuard | StoreReplayGuard
    clock: Callable[[], float]
    jira_window: float
    servicenow_window: float

    def stop(self, timeout: float = 10.0) -> None:
        self.queue.stop(timeout)
        if self.rechecker is not None:
            self.rechecker.close()


class _Reject(Exception):
    def __init__(self, status: int, outcome: str, message: str) -> None:
        super().__init__(message)
        self.status, self.outcome, self.message = status, outcome, message


def create_app(
    cfg: Config,
    store: Store,
    *,
    rechecker: Rechecker | None = None,
    handler: Callable[[TicketRef], float | None] | None = None,
    counters: Counters | None = None,
    clock: Callable[[], float] = time.time,
    jira_window: float = JIRA_WINDOW,
    servicenow_window: float = SERVICENOW_WINDOW,
    debounce: float = 0.25,
    workers: int = 4,
) -> Flask:
    """The WSGI application. ``handler`` replaces the real re-check (tests of the web
    layer); otherwise a :class:`Rechecker` over ``cfg`` and ``store`` does the work."""
    counters = counters or Counters()
    if handler is None:
        rechecker = rechecker or Rechecker(cfg, store)
        previous = rechecker.on_result

        def record(result: RecheckResult) -> None:
            counters.recheck(result.source, result.outcome)
            counts = result.counts()
            log.info(
                "re-checked %s/%s: %s (%s)",
                result.source,
                result.key,
                result.outcome,
                ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()) if n)
                or "no change in findings",
            )
            if previous is not None:
                previous(result)

        rechecker.on_result = record
        handler = rechecker
    gate = RereadGate(store, cfg.serve.reread_interval, clock=clock)
    inner = handler

    def gated(ref: TicketRef) -> float | None:
        # Replicas sharing the store re-read one ticket at most once per interval; a
        # re-check that comes sooner is put back for later (not dropped, and without
        # spending one of the re-check's retry attempts).
        wait = None if ref.deleted else gate.claim(ref.source, ref.key)
        if wait is not None:
            counters.recheck(ref.source, "rate_limited")
            queue.submit(ref, delay=wait)
            return None
        return inner(ref)

    queue = CoalescingQueue(gated, workers=workers, debounce=debounce)
    state = ServeState(
        cfg,
        store,
        queue,
        rechecker,
        counters,
        StoreReplayGuard(store, jira_window, clock=clock, namespace="jira"),
        StoreReplayGuard(store, servicenow_window, clock=clock, namespace="servicenow"),
        clock,
        jira_window,
        servicenow_window,
    )
    for name, secret in (
        ("jira", cfg.serve.jira_secret),
        ("servicenow", cfg.serve.servicenow_secret),
    ):
        if secret is None or not secret.get_secret_value():
            log.warning(
                "serve.%s_secret is not set: /hooks/%s accepts unsigned deliveries", name, name
            )

    app = Flask("ticketlint.serve")
    app.config["MAX_CONTENT_LENGTH"] = cfg.serve.max_body_bytes
    app.extensions[STATE_KEY] = state

    @app.before_request
    def started() -> None:
        g.started = time.monotonic()

    @app.after_request
    def logged(response: Response) -> Response:
        if request.path.startswith("/hooks/"):
            _log_webhook(response.status_code)
        return response

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc: Exception) -> tuple[Response, int]:
        endpoint = "jira" if request.path.startswith("/hooks/jira") else "servicenow"
        counters.webhook(endpoint, "too_large")
        note(verdict="too_large")
        return jsonify(error=f"body larger than {cfg.serve.max_body_bytes} bytes"), 413

    @app.errorhandler(_Reject)
    def rejected(exc: _Reject) -> tuple[Response, int]:
        endpoint = "jira" if request.path.startswith("/hooks/jira") else "servicenow"
        counters.webhook(endpoint, exc.outcome)
        note(verdict=exc.outcome, reason=exc.message)
        return jsonify(error=exc.message, outcome=exc.outcome), exc.status

    @app.post("/hooks/jira")
    @app.post("/hooks/jira/<source>")
    def jira_hook(source: str | None = None) -> tuple[Response, int]:
        return _jira(state, source)

    @app.post("/hooks/servicenow")
    @app.post("/hooks/servicenow/<source>")
    def servicenow_hook(source: str | None = None) -> tuple[Response, int]:
        return _servicenow(state, source)

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        try:
            with store.session() as s:
                s.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - report, do not crash: the orchestrator restarts us
            counters.error("healthz_store")
            return jsonify(status="unavailable", store=f"{type(exc).__name__}"), 503
        return jsonify(status="ok", pending=_pending(state)), 200

    @app.get("/metrics")
    def metrics() -> Response:
        extra = {"recheck": queue.failed}
        if rechecker is not None:
            extra["writeback"] = rechecker.hook_errors.get("ticketlint.plugin.writeback", 0)
            extra["notify"] = rechecker.hook_errors.get("ticketlint.notify", 0)
        body = render(store, counters, pending=_pending(state), extra_errors=extra)
        return Response(body, 200, content_type=CONTENT_TYPE)

    return app


def note(**fields: str | None) -> None:
    """What the access log line of this webhook says (source, key, verdict, reason)."""
    current = getattr(g, "webhook", None) or {}
    current.update({k: v for k, v in fields.items() if v is not None})
    g.webhook = current


def _log_webhook(status: int) -> None:
    from ticketlint.escaping import plain_text

    seen = getattr(g, "webhook", None) or {}
    latency = (time.monotonic() - getattr(g, "started", time.monotonic())) * 1000
    access_log.info(
        "webhook %s source=%s key=%s verdict=%s status=%d latency_ms=%.1f%s",
        request.path,
        plain_text(seen.get("source", "-")),
        plain_text(seen.get("key", "-"))[:80],
        seen.get("verdict", "-"),
        status,
        latency,
        f" reason={plain_text(seen['reason'])[:200]}" if seen.get("reason") else "",
    )


def serve_state(app: Flask) -> ServeState:
    state: ServeState = app.extensions[STATE_KEY]  # set by create_app
    return state


def _pending(state: ServeState) -> int:
    return state.queue.pending_count()


# --- the two webhook endpoints ---------------------------------------------------------


def _pick_source(cfg: Config, kind: str, name: str | None) -> JiraSource | ServiceNowSource:
    if name is not None:
        try:
            src = cfg.source(name)
        except ConfigError:
            raise _Reject(404, "bad_request", f"no configured source named {name!r}") from None
        if src.type != kind:
            raise _Reject(404, "bad_request", f"source {name!r} is not a {kind} source")
        return src
    mine = [s for s in cfg.sources if s.type == kind]
    if len(mine) != 1:
        raise _Reject(
            404,
            "bad_request",
            f"{len(mine)} {kind} sources are configured; post to /hooks/{kind}/<source>",
        )
    return mine[0]


def _json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, within :data:`JSON_MAX_DEPTH` levels of nesting (a
    deeper body is a 400, never a ``RecursionError``); integers too long to convert are
    read as null."""
    try:
        payload = safejson.loads(body, depth=JSON_MAX_DEPTH)
    except safejson.JSONLimitError as exc:
        raise _Reject(400, "bad_request", f"body is not acceptable JSON: {exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise _Reject(400, "bad_request", "body is not JSON") from None
    if not isinstance(payload, dict):
        raise _Reject(400, "bad_request", "body is not a JSON object")
    return payload


def _accept(state: ServeState, endpoint: str, ref: TicketRef) -> tuple[Response, int]:
    fresh_job = state.queue.submit(ref)
    outcome = "accepted" if fresh_job else "coalesced"
    state.counters.webhook(endpoint, outcome)
    log.info("%s webhook for %s/%s: %s", endpoint, ref.source, ref.key, outcome)
    note(source=ref.source, key=ref.key, verdict=outcome)
    return jsonify(status=outcome, source=ref.source, key=ref.key), 202


def _jira(state: ServeState, source_name: str | None) -> tuple[Response, int]:
    body = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    secret = state.cfg.serve.jira_secret
    if (
        secret is not None
        and secret.get_secret_value()
        and not security.jira_signature_ok(
            secret.get_secret_value(), body, request.headers.get("X-Hub-Signature")
        )
    ):
        raise _Reject(401, "unauthorized", "X-Hub-Signature is missing or does not match")
    source = _pick_source(state.cfg, "jira", source_name)
    note(source=source.name)
    payload = _json_object(body)
    sent = security.parse_epoch(payload.get("timestamp"), millis=True)
    if not security.fresh(sent, state.clock(), state.jira_window):
        raise _Reject(400, "stale", "delivery timestamp is missing or outside the accepted window")
    issue = payload.get("issue")
    if not isinstance(issue, dict):
        state.counters.webhook("jira", "ignored")
        note(verdict="ignored")
        return jsonify(status="ignored", reason="not an issue event"), 200
    key = issue.get("key") or issue.get("id")
    if not isinstance(key, (str, int)) or not JIRA_KEY.match(str(key)):
        raise _Reject(400, "bad_request", "issue.key is missing or not an issue key")
    # The body digest is signed; the identifier header is not, so both are remembered:
    # a replay under a new identifier is still the same body.
    digest = hashlib.sha256(body).hexdigest()
    delivery = request.headers.get("X-Atlassian-Webhook-Identifier")
    guard = state.jira_replays
    seen = not guard.first_time(f"body:{digest}")
    if delivery:
        seen = (not guard.first_time(f"id:{source.name}:{delivery}")) or seen
    if seen:
        # 200, not 409: Jira retries 408/409/425/429/5xx, and this delivery was handled.
        state.counters.webhook("jira", "duplicate")
        note(key=str(key), verdict="duplicate")
        return jsonify(status="duplicate"), 200
    fields = issue.get("fields")
    ref = TicketRef(
        source=source.name,
        key=str(key),
        hint_updated=_hint(
            parse_jira_time, fields.get("updated") if isinstance(fields, dict) else None
        ),
        deleted=payload.get("webhookEvent") in JIRA_DELETED_EVENTS,
    )
    return _accept(state, "jira", ref)


def _servicenow(state: ServeState, source_name: str | None) -> tuple[Response, int]:
    body = request.get_data(cache=True)
    secret = state.cfg.serve.servicenow_secret
    stamp = request.headers.get("X-Ticketlint-Timestamp")
    signature = request.headers.get("X-Ticketlint-Signature")
    if secret is not None and secret.get_secret_value():
        value = secret.get_secret_value()
        if signature is not None:
            ok = stamp is not None and security.servicenow_signature_ok(
                value, stamp, body, signature
            )
        else:
            ok = security.token_ok(value, request.headers.get("X-Ticketlint-Token"))
        if not ok:
            raise _Reject(
                401,
                "unauthorized",
                "X-Ticketlint-Signature (with X-Ticketlint-Timestamp) or X-Ticketlint-Token "
                "is missing or does not match",
            )
    source = _pick_source(state.cfg, "servicenow", source_name)
    note(source=source.name)
    if stamp is not None or signature is not None:
        if not security.fresh(security.parse_epoch(stamp), state.clock(), state.servicenow_window):
            raise _Reject(
                400, "stale", "X-Ticketlint-Timestamp is missing or outside the accepted window"
            )
    payload = _json_object(body)
    table, sys_id = payload.get("table"), payload.get("sys_id")
    if not isinstance(table, str) or not TABLE.match(table):
        raise _Reject(400, "bad_request", "table is missing or not a table name")
    if not isinstance(sys_id, str) or not SYS_ID.match(sys_id):
        raise _Reject(400, "bad_request", "sys_id is missing or not 32 hexadecimal digits")
    note(key=sys_id)
    digest = hashlib.sha256((stamp or "").encode() + b"." + body).hexdigest()
    if not state.servicenow_replays.first_time(f"{source.name}:{digest}"):
        raise _Reject(409, "duplicate", "this delivery was already received")
    ref = TicketRef(
        source=source.name,
        key=sys_id,
        table=table,
        hint_updated=_hint(parse_servicenow_time, payload.get("sys_updated_on")),
        deleted=str(payload.get("operation") or "").lower() == "delete",
    )
    return _accept(state, "servicenow", ref)


def _hint(parse: Callable[[Any], datetime | None], value: Any) -> datetime | None:
    """The update time an event claims, or None when it is absent or unreadable."""
    try:
        return parse(value) if isinstance(value, str) else None
    except ValueError:
        return None
