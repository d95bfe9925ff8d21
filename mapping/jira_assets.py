"""Jira Service Management Assets objects (AQL results) -> CIRecord (docs/record-model.md, ci fields).

The connector pages the AQL endpoint; this module only knows the object's JSON: its
attributes (named inline or through the page's ``objectTypeAttributes``), the status
words that map to the normalised CI status, and the owner / support group / last
verified attributes looked up by their usual names.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from ticketlint.mapping.common import parse_jira_time
from ticketlint.mapping.model import CIRecord, CIStatus, Person

# Status words (case-folded) per normalised CI status; anything else is "other".
_CI_STATUS: dict[CIStatus, tuple[str, ...]] = {
    "installed": (
        "in service",
        "active",
        "installed",
        "production",
        "in use",
        "running",
        "live",
        "operational",
    ),
    "planned": ("planned", "ordered", "in stock", "received", "pending", "new", "build"),
    "in_maintenance": ("in maintenance", "maintenance", "in repair", "repair", "degraded"),
    "retired": (
        "retired",
        "disposed",
        "decommissioned",
        "closed",
        "expired",
        "deleted",
        "end of life",
    ),
}


def _attributes(obj: dict[str, Any], names: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for attr in obj.get("attributes") or []:
        name = (attr.get("objectTypeAttribute") or {}).get("name") or names.get(
            str(attr.get("objectTypeAttributeId"))
        )
        if name:
            out[str(name).casefold()] = list(attr.get("objectAttributeValues") or [])
    return out


def _first_text(values: Iterable[dict[str, Any]]) -> str | None:
    for v in values:
        status = v.get("status")
        if isinstance(status, dict) and status.get("name"):
            return str(status["name"])
        for k in ("displayValue", "value", "searchValue"):
            if v.get(k) not in (None, ""):
                return str(v[k])
    return None


def map_assets_object(
    obj: dict[str, Any], names: dict[str, Any], *, source: str, key_attribute: str = "Key"
) -> CIRecord:
    """One Assets object (AQL result entry) -> CIRecord (docs/record-model.md, ci fields)."""
    attrs = _attributes(obj, names)
    key = (
        _first_text(attrs.get(key_attribute.casefold(), []))
        or obj.get("objectKey")
        or obj.get("label")
    )
    if not key:
        raise ValueError("Assets object without a key")
    raw_status = _first_text(attrs.get("status", []))
    status: CIStatus | None = None
    if raw_status is not None:
        folded = raw_status.casefold()
        status = next((s for s, words in _CI_STATUS.items() if folded in words), "other")
    owner = None
    for attr_name in ("owner", "owned by", "managed by"):
        for v in attrs.get(attr_name, []):
            user = v.get("user") if isinstance(v.get("user"), dict) else None
            if user:
                owner = Person(
                    id=user.get("key") or user.get("accountId") or user.get("name"),
                    name=user.get("displayName"),
                    email=user.get("emailAddress"),
                )
            elif v.get("displayValue") or v.get("value"):
                owner = Person(
                    id=str(v.get("value") or v.get("displayValue")), name=v.get("displayValue")
                )
            if owner:
                break
        if owner:
            break
    group = None
    for attr_name in ("support group", "team", "assignment group"):
        group = _first_text(attrs.get(attr_name, []))
        if group:
            break
    verified_text = None
    for attr_name in ("last verified", "last discovered", "last audit"):
        verified_text = _first_text(attrs.get(attr_name, []))
        if verified_text:
            break
    links = obj.get("_links") or {}
    return CIRecord(
        source=source,
        system="jira",
        key=str(key),
        native_id=str(obj.get("id")) if obj.get("id") else None,
        url=links.get("self") if isinstance(links, dict) else None,
        title=obj.get("label") or obj.get("name"),
        ci_class=(obj.get("objectType") or {}).get("name"),
        status=status,
        raw_state=raw_status,
        owner=owner,
        support_group=group,
        last_verified_at=_parse_assets_time(verified_text) if verified_text else None,
        created_at=_parse_assets_time(obj.get("created")),
        updated_at=_parse_assets_time(obj.get("updated")),
        raw=obj,
    )


def _parse_assets_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return parse_jira_time(value)
    except ValueError:
        try:
            return datetime.fromisoformat(value.strip()).replace(tzinfo=timezone.utc)
        except ValueError:
            return None
