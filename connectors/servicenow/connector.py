"""The ServiceNow connector: one configured source wired from the pieces of this package.

The session and its auth (:mod:`.auth`), the Table API client (:mod:`.client`), the
related rows (:mod:`.related`), the stream reader (:mod:`.stream`) and doctor
(:mod:`.doctor`). This class holds no reading logic of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta

import requests

from ticketlint.config import BasicAuth, ServiceNowSource
from ticketlint.connectors.base import DoctorReport, StreamBatch
from ticketlint.connectors.http import HttpClient
from ticketlint.connectors.servicenow.auth import OAuthTokens, basic_session, oauth_session
from ticketlint.connectors.servicenow.client import TableAPI, http_client
from ticketlint.connectors.servicenow.dictionary import DictionaryRead, read_dictionary
from ticketlint.connectors.servicenow.doctor import run_doctor
from ticketlint.connectors.servicenow.related import (
    RELATED_CHUNK,
    RelatedIndex,
    RelatedRows,
    RelatedSpec,
)
from ticketlint.connectors.servicenow.stream import StreamReader, declare_streams
from ticketlint.mapping.common import MappingReport
from ticketlint.mapping.servicenow import ServiceNowMapper

DEFAULT_PAGE_SIZE = 1000


class ServiceNowConnector:
    """Reads the ServiceNow streams of one configured source (see the package docstring)."""

    def __init__(
        self,
        source_cfg: ServiceNowSource,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        bulk_related: bool = True,
    ) -> None:
        self.cfg = source_cfg
        self.name = source_cfg.name
        self.base_url = source_cfg.url.rstrip("/")
        self.page_size = source_cfg.page_size or DEFAULT_PAGE_SIZE
        self.related_chunk = source_cfg.related_chunk or min(self.page_size, RELATED_CHUNK)
        self.mapper = ServiceNowMapper(source_cfg.mapping_options())
        self.table_streams = declare_streams(self.mapper)
        self.streams: tuple[str, ...] = tuple(self.table_streams)
        self.ci_names: dict[str, str] = {}
        """sys_id -> name of every CI read by this connector (resolves task references)."""
        self._sleep = sleep
        self._oauth: OAuthTokens | None = None
        self._http: HttpClient = self._client(self._session(clock))
        self.api = TableAPI(self.name, self._http, self._oauth, self.page_size)
        lookback = timedelta(minutes=source_cfg.lookback_minutes)
        self.related_rows = RelatedRows(
            self.api,
            source=self.name,
            tables={p: s.table for p, s in self.table_streams.items()},
            scopes=source_cfg.query,
            lookback=lookback,
            chunk=self.related_chunk,
            bulk=bulk_related,
        )
        self._reader = StreamReader(
            source=self.name,
            streams=self.table_streams,
            api=self.api,
            related=self.related_rows,
            mapper=self.mapper,
            scopes=source_cfg.query,
            lookback=lookback,
            ci_names=self.ci_names,
            setup=self._setup,
        )
        self._dictionary: DictionaryRead | None = None

    # -- the data dictionary, read once per run
    def dictionary(self) -> DictionaryRead:
        """The declared types of the mapped columns (``sys_dictionary``), read on the
        first call and cached; the mapper reads by them from then on (see
        :mod:`.dictionary`: a refused read leaves the types guessed from values)."""
        if self._dictionary is None:
            self._dictionary = read_dictionary(self.api, self.mapper.dictionary_columns())
            if self._dictionary.types is not None:
                self.mapper.use_column_types(self._dictionary.types)
        return self._dictionary

    def _setup(self, report: MappingReport) -> None:
        """Before a stream's first page: the dictionary, read by the run's first stream,
        whose first report carries its warnings (once per run)."""
        if self._dictionary is not None:
            return
        read = self.dictionary()
        if read.problem is not None:
            report.warnings[f"{read.problem}; column types are guessed from the values"] += 1
        for problem in self.mapper.type_problems():
            report.warnings[f"{problem}; it is read by its values"] += 1

    # -- setup
    def _client(self, session: requests.Session) -> HttpClient:
        return http_client(self.cfg, session, self._sleep)

    def _session(self, clock: Callable[[], float]) -> requests.Session:
        auth = self.cfg.auth
        if isinstance(auth, BasicAuth):
            return basic_session(self.base_url, auth)
        session, self._oauth = oauth_session(auth.oauth, self._client, clock)
        return session

    # -- Connector protocol
    @property
    def request_count(self) -> int:
        """HTTP attempts sent so far (retries and token requests included)."""
        return self.api.request_count

    def close(self) -> None:
        self.api.close()

    def table(self, process: str) -> str:
        return self.mapper.table(process)

    def read(
        self,
        stream: str,
        *,
        since: datetime | None = None,
        query: str | None = None,
        keys: Sequence[str] | None = None,
    ) -> Iterator[StreamBatch]:
        """Mapped batches, one per page, of ``stream`` changed since ``since`` minus the
        lookback (``query`` is ANDed with the configured scope; ``keys`` picks records)."""
        yield from self._reader.read(stream, since=since, query=query, keys=keys)

    def plan(self, since: Mapping[str, datetime | None]) -> None:
        """Tell the connector which streams will be read, in :attr:`streams` order, and
        each one's ``since`` (optional): the related prefetch then covers each process's
        exact window in one stream, and the late parents of all of them are read by id
        once, after the last stream that uses related rows (without a plan: per stream)."""
        self.related_rows.plan(since)

    def doctor(self) -> DoctorReport:
        """Reachability, auth, readable tables, mapped fields, uncovered state values and
        the rules that cannot be evaluated here (on a sample record per table)."""
        return run_doctor(self)

    # -- state of the pieces, as read by callers and tests
    @property
    def server_time(self) -> datetime | None:
        """The instance's clock (``Date`` of the latest response)."""
        return self.api.server_time

    @property
    def related_path(self) -> str:
        """How related rows are read: "bulk" (dot-walked streams) or "in-list (why)"."""
        return self.related_rows.path

    @property
    def _related(self) -> dict[str, RelatedIndex]:
        return self.related_rows.indexes

    def _walked_scope(self, spec: RelatedSpec, process: str) -> str | None:
        return self.related_rows.walked_scope(spec, process)
