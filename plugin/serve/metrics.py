"""``GET /metrics``: the Prometheus text exposition format (version 0.0.4), written by hand.

Store-backed gauges are read from the database on every scrape (so every replica
reports the same numbers): sync runs by status, the newest finished run, findings by
state and severity. Process-local counters (this replica since it started): webhook
deliveries by endpoint and outcome, re-checks by source and outcome, errors by kind.
Sum the counters over replicas in PromQL.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping

from sqlalchemy import func, select

from ticketlint.store.db import Store
from ticketlint.store.models import FindingRow, RunRow

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WEBHOOK_OUTCOMES = (
    "accepted",
    "coalesced",
    "duplicate",
    "ignored",
    "bad_request",
    "unauthorized",
    "stale",
    "too_large",
)
ENDPOINTS = ("jira", "servicenow")
RUN_STATUSES = ("running", "ok", "failed", "interrupted")
STATES = ("open", "resolved", "waived", "gone")
SEVERITIES = ("info", "low", "medium", "high", "critical")


class Counters:
    """Thread-safe labelled counters of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.webhooks: Counter[tuple[str, str]] = Counter()
        self.rechecks: Counter[tuple[str, str]] = Counter()
        self.errors: Counter[str] = Counter()

    def webhook(self, endpoint: str, outcome: str) -> None:
        with self._lock:
            self.webhooks[(endpoint, outcome)] += 1

    def recheck(self, source: str, outcome: str) -> None:
        with self._lock:
            self.rechecks[(source, outcome)] += 1

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def snapshot(self) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]], Counter[str]]:
        with self._lock:
            return Counter(self.webhooks), Counter(self.rechecks), Counter(self.errors)


def escape(value: str) -> str:
    """A label value as the exposition format wants it."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Mapping[str, str]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{escape(str(v))}"' for k, v in pairs.items()) + "}"


def _format_value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: Iterable[tuple[Mapping[str, str], float]],
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {_format_value(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def store_numbers(store: Store) -> tuple[Counter[str], Counter[tuple[str, str]], float | None]:
    """Runs by status, findings by (state, severity) and the newest finished run's time."""
    with store.session() as s:
        runs: Counter[str] = Counter(
            dict(s.execute(select(RunRow.status, func.count()).group_by(RunRow.status)).all())
        )
        findings: Counter[tuple[str, str]] = Counter(
            {
                (state, severity): n
                for state, severity, n in s.execute(
                    select(FindingRow.state, FindingRow.severity, func.count()).group_by(
                        FindingRow.state, FindingRow.severity
                    )
                ).all()
            }
        )
        last = s.scalar(select(func.max(RunRow.finished_at)))
    return runs, findings, (last.timestamp() if last is not None else None)


def render(
    store: Store,
    counters: Counters,
    *,
    pending: int = 0,
    extra_errors: Mapping[str, int] | None = None,
) -> str:
    out = _Writer()
    webhooks, rechecks, errors = counters.snapshot()
    for kind, n in (extra_errors or {}).items():
        errors[kind] += n
    try:
        runs, findings, last = store_numbers(store)
        store_up = 1
    except Exception:  # noqa: BLE001 - the scrape still answers, and says the store is unreachable
        runs, findings, last, store_up = Counter(), Counter(), None, 0
        errors["metrics_store"] += 1
    out.family(
        "ticketlint_store_up", "gauge", "1 when the store answered this scrape.", [({}, store_up)]
    )
    out.family(
        "ticketlint_sync_runs",
        "gauge",
        "Sync runs in the store by status.",
        [({"status": st}, runs.get(st, 0)) for st in sorted(set(RUN_STATUSES) | set(runs))],
    )
    if last is not None:
        out.family(
            "ticketlint_last_sync_finished_timestamp_seconds",
            "gauge",
            "When the newest finished sync run ended (Unix time).",
            [({}, last)],
        )
    states = sorted(set(STATES) | {s for s, _ in findings})
    severities = list(SEVERITIES) + sorted({sev for _, sev in findings} - set(SEVERITIES))
    out.family(
        "ticketlint_findings",
        "gauge",
        "Findings in the store by lifecycle state and severity.",
        [
            ({"state": st, "severity": sev}, findings.get((st, sev), 0))
            for st in states
            for sev in severities
        ],
    )
    keys = sorted({(e, o) for e in ENDPOINTS for o in WEBHOOK_OUTCOMES} | set(webhooks))
    out.family(
        "ticketlint_webhook_events_total",
        "counter",
        "Webhook deliveries received by this process, by endpoint and outcome.",
        [({"endpoint": e, "outcome": o}, webhooks.get((e, o), 0)) for e, o in keys],
    )
    out.family(
        "ticketlint_rechecks_total",
        "counter",
        "Ticket re-checks run by this process, by source and outcome.",
        [({"source": s, "outcome": o}, n) for (s, o), n in sorted(rechecks.items())],
    )
    out.family(
        "ticketlint_recheck_pending",
        "gauge",
        "Re-checks waiting or running in this process.",
        [({}, pending)],
    )
    out.family(
        "ticketlint_errors_total",
        "counter",
        "Errors in this process by kind.",
        [
            ({"kind": k}, errors.get(k, 0))
            for k in sorted(set(errors) | {"recheck", "writeback", "notify", "metrics_store"})
        ],
    )
    return out.text()
