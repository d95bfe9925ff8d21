"""CIs from JSM Assets (AQL) as the Jira ``ci`` stream, when ``assets`` is configured."""

from __future__ import annotations

from collections.abc import Iterator

from ticketlint.config import AssetsOptions
from ticketlint.connectors.base import SourceError, StreamBatch
from ticketlint.connectors.http import HttpClient
from ticketlint.mapping.common import MappingError, MappingReport
from ticketlint.mapping.jira_assets import map_assets_object
from ticketlint.mapping.model import BaseRecord

ASSETS_AQL = "/jsm/assets/workspace/{workspace}/v1/object/aql"
ASSETS_WORKSPACES = "/rest/servicedeskapi/assets/workspace"
ASSETS_PAGE = 500


def read_assets(http: HttpClient, assets: AssetsOptions) -> Iterator[StreamBatch]:
    """One batch per AQL page of objects (no watermark: the ``ci`` stream is read whole)."""
    base = (assets.url or f"{http.base_url}/gateway/api").rstrip("/")
    workspace = assets.workspace_id or workspace_id(http)
    url = base + ASSETS_AQL.format(workspace=workspace)
    start = 0
    before = http.request_count
    while True:
        data = (
            http.post_json(
                url,
                json={"qlQuery": assets.aql},
                params={
                    "startAt": start,
                    "maxResults": ASSETS_PAGE,
                    "includeAttributes": "true",
                },
            )
            or {}
        )
        objects = data.get("values") or []
        names = {str(a.get("id")): a.get("name") for a in data.get("objectTypeAttributes") or []}
        report = MappingReport()
        records: list[BaseRecord] = []
        for obj in objects:
            report.rows += 1
            try:
                records.append(
                    map_assets_object(
                        obj, names, source=http.source, key_attribute=assets.key_attribute
                    )
                )
                report.mapped += 1
            except (ValueError, TypeError, KeyError) as exc:
                report.errors.append(MappingError(http.source, str(obj.get("objectKey")), str(exc)))
        start += len(objects)
        yield StreamBatch(
            stream="ci",
            records=records,
            report=report,
            watermark=None,
            requests=http.request_count - before,
        )
        before = http.request_count
        if data.get("isLast", True) or not objects:
            return


def workspace_id(http: HttpClient) -> str:
    """The site's (first) Assets workspace."""
    data = http.get_json(ASSETS_WORKSPACES) or {}
    values = data.get("values") or []
    if not values or not values[0].get("workspaceId"):
        raise SourceError(
            http.source,
            "no JSM Assets workspace on this site",
            url=http.base_url + ASSETS_WORKSPACES,
            hint="`assets.workspace_id`, and that Assets is enabled (JSM Premium)",
        )
    return str(values[0]["workspaceId"])
