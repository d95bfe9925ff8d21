"""Shared setup of the write-back tests: a store with records and findings, a config."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ticketlint.config import Config, parse_config
from ticketlint.store.db import Store
from ticketlint.store.models import FindingRow, RecordRow, WritebackRow

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
JIRA = "https://acme.atlassian.net"
SNOW = "https://acme.service-now.com"


def make_config(
    tmp_path: Path, *, enabled: bool = True, label: str = "ticketlint", comment: bool = True
) -> Config:
    return parse_config(f"""
database: "sqlite:///{tmp_path / "wb.db"}"
sources:
  - name: jira
    type: jira
    url: {JIRA}
    auth: {{email: bot@example.com, token: secret-jira-token}}
    max_attempts: 3
  - name: snow
    type: servicenow
    url: {SNOW}
    auth: {{user: svc, password: secret-snow-password}}
    max_attempts: 3
writeback: {{enabled: {str(enabled).lower()}, label: {label}, comment: {str(comment).lower()}}}
""")


def add_record(
    store: Store, source: str, key: str, process: str, native_id: str, *, deleted: bool = False
) -> None:
    with store.session() as s, s.begin():
        s.add(
            RecordRow(
                source=source,
                key=key,
                process=process,
                data={"native_id": native_id, "key": key},
                raw={"id": native_id},
                seen_at=NOW,
                deleted=deleted,
            )
        )


def add_finding(
    store: Store,
    source: str,
    key: str,
    rule: str,
    *,
    state: str = "open",
    severity: str = "high",
    process: str = "change",
) -> str:
    fp = f"{rule}-{source}-{key}".lower().ljust(16, "0")
    detail = {
        "code": rule,
        "name": rule.lower(),
        "title": f"Title of {rule}",
        "severity": severity,
        "message": f"{key} is missing something for {rule}",
        "remediation": f"Fill in the field {rule} needs.",
    }
    with store.session() as s, s.begin():
        s.add(
            FindingRow(
                fingerprint=fp,
                rule=rule,
                source=source,
                key=key,
                process=process,
                severity=severity,
                state=state,
                first_seen=NOW,
                last_seen=NOW,
                message=detail["message"],
                evidence={},
                detail=detail,
                waiver="W1" if state == "waived" else None,
            )
        )
    return fp


def set_state(store: Store, fingerprint: str, state: str) -> None:
    with store.session() as s, s.begin():
        row = s.query(FindingRow).filter_by(fingerprint=fingerprint).one()
        row.state = state


def log(store: Store) -> list[WritebackRow]:
    with store.session() as s:
        return list(s.query(WritebackRow).order_by(WritebackRow.id))


def body(call: Any) -> Any:
    return json.loads(call.request.body) if call.request.body else None


def server_info(deployment: str = "Cloud") -> dict[str, Any]:
    return {
        "baseUrl": JIRA,
        "version": "1001.0.0",
        "deploymentType": deployment,
        "serverTitle": "Jira",
    }
