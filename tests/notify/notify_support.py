"""Shared helpers of the notify tests: findings, run results, configs and local receivers."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from snapshot_support import assert_snapshot as shared_assert_snapshot

from ticketlint.config import Config, parse_config
from ticketlint.rules.engine import Finding
from ticketlint.store.lifecycle import Change, Diff, StoredFinding
from ticketlint.sync.runner import SourceResult, SyncResult

AS_OF = datetime(2026, 3, 31, tzinfo=timezone.utc)
SEVERITIES = ("critical", "high", "medium", "low", "info")


def finding(
    n: int,
    *,
    severity: str = "high",
    source: str = "jira-prod",
    process: str = "change",
    code: str = "CHG006",
    group: str | None = "CAB",
    message: str | None = None,
) -> Finding:
    key = f"CHG-{n}"
    return Finding(
        code=code,
        name="change-backout-plan",
        title="A change has a backout plan",
        severity=severity,
        clause="8.5.1.3",
        source=source,
        key=key,
        process=process,
        url=f"https://example.atlassian.net/browse/{key}",
        message=message or f"change {key} has no backout plan",
        assignee=f"Person {n}",
        group=group,
        fingerprint=f"fp-{source}-{code}-{n}",
        remediation="Write one.",
        evidence={"backout_plan": ""},
    )


def many_findings(count: int, *, long: bool = False) -> list[Finding]:
    """``count`` findings over every severity; ``long`` gives each a 2,000-character message."""
    return [
        finding(
            i,
            severity=SEVERITIES[i % 5],
            code=f"CHG{i % 13:03d}",
            message=("x" * 2000 if long else None),
        )
        for i in range(count)
    ]


def result(
    run_id: int | None,
    *,
    new: list[Finding] = (),
    still_open: list[Finding] = (),
    resolved: list[str] = (),
    failed: str | None = None,
    dry_run: bool = False,
    source: str = "jira-prod",
) -> SyncResult:
    changes = [Change(f.fingerprint, "new", "open", f, None) for f in new]
    changes += [
        Change(
            f.fingerprint,
            "open",
            "open",
            f,
            StoredFinding(f.fingerprint, f.code, f.source, f.key, "open"),
        )
        for f in still_open
    ]
    changes += [
        Change(
            fp,
            "resolved",
            "resolved",
            None,
            StoredFinding(fp, "CHG006", source, "CHG-x", "open"),
            resolution="no longer fails",
        )
        for fp in resolved
    ]
    res = SyncResult(run_id=run_id, as_of=AS_OF, dry_run=dry_run)
    res.sources.append(SourceResult(source, diff=Diff(changes)))
    if failed:
        res.sources.append(SourceResult("snow-prod", status="failed", error=failed))
    return res


def config(db_url: str, destinations: str) -> Config:
    return parse_config(f'database: "{db_url}"\nnotify:\n{destinations}')


@dataclass
class Receiver:
    """One local HTTP server; each path is a destination. ``fail[path] = n`` answers the
    next n posts there with 500; ``status[path]`` overrides the success status."""

    server: ThreadingHTTPServer
    posts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    fail: dict[str, int] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def bodies(self, path: str) -> list[Any]:
        with self.lock:
            return [p["json"] for p in self.posts.get(path, [])]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_receiver() -> Receiver:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            rec = holder["r"]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with rec.lock:
                if rec.fail.get(self.path, 0) > 0:
                    rec.fail[self.path] -= 1
                    code, answer = 500, b"upstream exploded"
                else:
                    rec.posts.setdefault(self.path, []).append(
                        {
                            "json": json.loads(body),
                            "raw": body,
                            "headers": dict(self.headers.items()),
                        }
                    )
                    code, answer = rec.status.get(self.path, 200), b"ok"
            self.send_response(code)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return holder["r"]


def assert_snapshot(name: str, payload: Any) -> None:
    """Compare a payload with tests/snapshots/notify/<name>; ``UPDATE_SNAPSHOTS=1`` rewrites it."""
    shared_assert_snapshot(
        f"notify/{name}", json.dumps(payload, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
    )
