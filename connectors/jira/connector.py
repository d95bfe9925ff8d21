"""The Jira connector: one configured source (Cloud or Data Center) wired from the pieces
of this package: the site it learns once (:mod:`.site`), the issue streams
(:mod:`.issues`), Assets CIs (:mod:`.assets`) and doctor (:mod:`.doctor`).

The session, server info, field list and ``/myself`` come from the ``jira`` library
(pycontribs); every request, the library's included, goes through
:class:`ticketlint.connectors.http.HttpClient`, so tenacity owns retries and errors are
:class:`SourceError` (the library's own retry loop is switched off).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import jira as jiralib

from ticketlint.config import BasicAuth, JiraCloudAuth, JiraPatAuth, JiraSource
from ticketlint.connectors.base import DoctorReport, SourceError, StreamBatch
from ticketlint.connectors.http import HttpClient
from ticketlint.connectors.jira.assets import read_assets
from ticketlint.connectors.jira.doctor import run_doctor
from ticketlint.connectors.jira.issues import IssueReader
from ticketlint.connectors.jira.site import (
    ISSUE_TYPES,
    Instance,
    MapperFactory,
    default_mapper_factory,
    type_names,
)
from ticketlint.mapping.jira import DEFAULT_ISSUE_TYPES

PROCESS_STREAMS = ("incident", "service_request", "problem", "change", "release")


class JiraConnector:
    """One configured Jira source (Cloud or Data Center). See the package docstring."""

    def __init__(
        self,
        source_cfg: JiraSource,
        *,
        sleep: Callable[[float], None] = time.sleep,
        mapper_factory: MapperFactory | None = None,
    ) -> None:
        self.cfg = source_cfg
        self.name = source_cfg.name
        self.base_url = source_cfg.url.rstrip("/")
        self.issue_types = {
            **DEFAULT_ISSUE_TYPES,
            **source_cfg.issue_types,
        }  # as the mapper reads them
        self.streams: list[str] = [p for p in PROCESS_STREAMS if self.issue_types.get(p)]
        if source_cfg.assets is not None:
            self.streams.append("ci")
        self._mapper_factory = mapper_factory or default_mapper_factory
        self.library = jiralib.JIRA(
            server=self.base_url,
            get_server_info=False,
            max_retries=0,
            logging=False,
            timeout=source_cfg.timeout,
            options={"verify": source_cfg.verify, "check_update": False},
            **_auth_kwargs(source_cfg),
        )
        session = self.library._session
        self.http = HttpClient(
            self.name,
            self.base_url,
            session,
            timeout=source_cfg.timeout,
            max_attempts=source_cfg.max_attempts,
            retry_after_max=source_cfg.retry_after_max,
            verify=source_cfg.verify,
            sleep=sleep,
        )
        # Route the library's own calls (server_info, fields, myself) through HttpClient:
        # an instance attribute shadows ResilientSession.request for Session.get/post, while
        # HttpClient itself calls the base requests.Session.request, so nothing recurses.
        # The ignore: replacing a method on this one session object is the point here.
        session.request = self._library_request  # type: ignore[method-assign, assignment]
        self._issues = IssueReader(self.http, source_cfg, self.issue_types)
        self._instance: Instance | None = None

    # -- Connector protocol -----------------------------------------------------------
    @property
    def request_count(self) -> int:
        return self.http.request_count

    def read(
        self,
        stream: str,
        *,
        since: datetime | None = None,
        query: str | None = None,
        keys: Sequence[str] | None = None,
    ) -> Iterator[StreamBatch]:
        if stream not in self.streams:
            raise SourceError(
                self.name, f"no stream {stream!r} (this source has: {', '.join(self.streams)})"
            )
        inst = self.instance()
        if stream == "ci":
            assert self.cfg.assets is not None
            yield from read_assets(self.http, self.cfg.assets)
            return
        yield from self._issues.read(inst, stream, since=since, query=query, keys=keys)

    def plan(self, since_by_stream: dict[str, datetime | None]) -> None:
        """The streams this run reads, each from its watermark (as ``sync`` and ``check``
        tell it): lets the incident and change streams share one review search."""
        self._issues.plan(since_by_stream, self.streams)

    def doctor(self) -> DoctorReport:
        return run_doctor(self)

    def close(self) -> None:
        self.http.close()

    # -- setup ----------------------------------------------------------------------
    def instance(self) -> Instance:
        """Server info, field list, statuses, issue types and the mapper (read once; the
        API user and its time zone when first needed, :class:`Instance`)."""
        if self._instance is None:
            info = self.library.server_info()
            fields = self.library.fields()
            statuses = self.http.get_json("/rest/api/2/status") or []
            types = self.http.get_json(ISSUE_TYPES)
            deployment = str(info.get("deploymentType") or "Server")
            mapper, catalog = self._mapper_factory(
                self.cfg.mapping_options(), fields, statuses, deployment
            )
            self._instance = Instance(
                self.name,
                info,
                self.library.myself,
                fields,
                statuses,
                mapper,
                catalog,
                type_names(types),
            )
        return self._instance

    def _library_request(self, method: str, url: str, **kwargs: Any) -> Any:
        response, _ = self.http._send(
            method,
            url,
            params=kwargs.get("params"),
            json=kwargs.get("json"),
            data=kwargs.get("data"),
            headers=kwargs.get("headers"),
            want_json=True,
        )
        return response


def _auth_kwargs(cfg: JiraSource) -> dict[str, Any]:
    auth = cfg.auth
    if isinstance(auth, JiraCloudAuth):
        return {"basic_auth": (auth.email, auth.token.get_secret_value())}
    if isinstance(auth, JiraPatAuth):
        return {"token_auth": auth.pat.get_secret_value()}
    if isinstance(auth, BasicAuth):
        return {"basic_auth": (auth.user, auth.password.get_secret_value())}
    raise SourceError(cfg.name, f"unsupported auth {type(auth).__name__}")  # pragma: no cover
