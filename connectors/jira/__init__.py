"""Jira Cloud and Data Center connector: search pages, history, approvals and Assets CIs.

One concern a module; each module's docstring holds the decisions it owns:

- :mod:`.jql`: the JQL of every read (scope, issue types, the incremental clause in the
  API user's time zone minus the lookback, keys; ``ORDER BY updated ASC, key ASC``).
- :mod:`.paging`: paginators (``nextPageToken``, ``startAt``) that detect loops.
- :mod:`.search`: search pages, Cloud ``POST /rest/api/3/search/jql`` by token (never the
  removed ``/rest/api/3/search``), Data Center ``POST /rest/api/2/search`` by ``startAt``.
- :mod:`.history`: Cloud changelog bulkfetch, and JSM approvals per request.
- :mod:`.issues`: an issue stream into mapped batches (de-duplication, the changelog
  buffer, the re-read of records that changed reviews complete).
- :mod:`.assets`: CIs from JSM Assets (AQL) as the ``ci`` stream.
- :mod:`.site`: what the connector learns about the site once (deployment, time zone,
  fields, statuses, the mapper).
- :mod:`.doctor`: ``ticketlint doctor`` for a Jira source.
- :mod:`.connector`: :class:`JiraConnector`, wiring the pieces for one source.

Imports flow one way: jql / paging -> search / history -> site -> issues / assets ->
doctor -> connector. Everything here may import ``ticketlint.config``,
``ticketlint.connectors`` (base, http) and ``ticketlint.mapping``.
"""

from __future__ import annotations

from ticketlint.connectors.jira.connector import JiraConnector
from ticketlint.connectors.jira.jql import build_jql, incremental_clause

__all__ = ["JiraConnector", "build_jql", "incremental_clause"]
