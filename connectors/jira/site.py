"""What the Jira connector learns about a site once, before the first read: server info,
the API user (and their time zone), the field list, the statuses, the issue types the site
lists (the JQL names them as the site spells them: "[System] Incident" on a JSM Cloud
site, settled reading 20) and the mapper built from them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ticketlint.mapping.jira import JiraFieldCatalog, JiraMapper

log = logging.getLogger(__name__)

APPROVALS_CUSTOM_TYPE = "com.atlassian.servicedesk.approvals-plugin:sd-approvals"

MapperFactory = Callable[[Any, list[dict[str, Any]], list[dict[str, Any]], str], tuple[Any, Any]]
"""(mapping options, field list, statuses, deployment) -> (mapper, field catalog)."""


def default_mapper_factory(
    options: Any, fields: list[dict[str, Any]], statuses: list[dict[str, Any]], deployment: str
) -> tuple[Any, Any]:
    catalog = JiraFieldCatalog.from_field_list(fields)
    return JiraMapper(options, catalog, statuses=statuses, deployment=deployment), catalog


@dataclass
class Instance:
    """What the connector learns about the site once, before the first read.

    The API user (``/myself``) is read only when its time zone is first needed: JQL
    that compares times (incremental reads, Data Center's page bounds). A full read of
    a Cloud site never needs it, so it costs no request there."""

    source: str
    server_info: dict[str, Any]
    read_myself: Callable[[], dict[str, Any]]
    fields: list[dict[str, Any]]
    statuses: list[dict[str, Any]]
    mapper: Any
    catalog: Any
    issue_types: list[str] | None = None
    """Names of the site's issue types (``/rest/api/2/issuetype``); None when unread."""

    @cached_property
    def myself(self) -> dict[str, Any]:
        me = self.read_myself()
        return me if isinstance(me, dict) else {}

    @cached_property
    def time_zone(self) -> str:
        return time_zone(self.source, self.myself, self.server_info)

    @property
    def deployment(self) -> str:
        return str(self.server_info.get("deploymentType") or "Server")

    @property
    def cloud(self) -> bool:
        return self.deployment == "Cloud"

    def approval_field_ids(self) -> set[str]:
        """Ids of the JSM Approvals fields on this site."""
        return {
            f["id"]
            for f in self.fields
            if isinstance(f, dict)
            and (f.get("schema") or {}).get("custom") == APPROVALS_CUSTOM_TYPE
        }


ISSUE_TYPES = "/rest/api/2/issuetype"


def type_names(types: object) -> list[str] | None:
    """Names from the ``/rest/api/2/issuetype`` response (a list of issue types)."""
    if not isinstance(types, list):
        return None
    return [t["name"] for t in types if isinstance(t, dict) and isinstance(t.get("name"), str)]


def time_zone(source: str, me: dict[str, Any], info: dict[str, Any]) -> str:
    """The API user's time zone (incremental JQL is written in it), else the server's,
    else UTC (with a warning)."""
    for tz in (me.get("timeZone"), info.get("serverTimeZone")):
        if isinstance(tz, str) and tz:
            try:
                ZoneInfo(tz)
                return tz
            except (ZoneInfoNotFoundError, ValueError):
                log.warning("%s: unknown time zone %r; trying the next source of it", source, tz)
    log.warning("%s: the API user's time zone is unknown; writing incremental JQL in UTC", source)
    return "UTC"
