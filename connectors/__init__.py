"""Connectors: fetch from Jira, ServiceNow and exported files (HTTP and source APIs only).

:func:`open_connector` turns a configured source into its :class:`~ticketlint.connectors.base.Connector`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ticketlint.config import JiraSource, ServiceNowSource
    from ticketlint.connectors.base import Connector


def open_connector(
    source_cfg: JiraSource | ServiceNowSource, *, sleep: Callable[[float], None] = time.sleep
) -> Connector:
    """The connector for one configured source. ``sleep`` is what retries wait with
    (tests pass a recorder so nothing really waits). Imports are lazy so that a Jira-only
    run never imports the ServiceNow client and vice versa. Its secrets' environment
    variables are checked here, when the source is about to be contacted."""
    source_cfg.require_env()
    if source_cfg.type == "jira":
        from ticketlint.connectors.jira import JiraConnector

        return JiraConnector(source_cfg, sleep=sleep)
    if source_cfg.type == "servicenow":
        from ticketlint.connectors.servicenow import ServiceNowConnector

        return ServiceNowConnector(source_cfg, sleep=sleep)
    raise ValueError(f"unknown source type {source_cfg.type!r}")
