"""ServiceNow Table API connector: keyset-paged reads of incident, change_request, problem,
sc_req_item and cmdb_ci, with approvals and CI links read as bulk streams beside them.

One concern a module; each module's docstring holds the decisions it owns:

- :mod:`.query`: encoded queries (time values, scopes, the keyset forms, dot-walking).
- :mod:`.paging`: :class:`~.paging.KeysetPaginator`, the position of one read on
  ``(sys_updated_on, sys_id)``: the next query, ``{}`` rows, when to stop, loops.
- :mod:`.auth`: the pysnow basic-auth session, or OAuth tokens through our HTTP client.
- :mod:`.client`: :class:`~.client.TableAPI`, one page per request, errors in the
  server's words, keyset reads; X-Total-Count and ``Link`` end a read early.
- :mod:`.dictionary`: ``sys_dictionary``, read once per run: the declared type of each
  mapped column, handed to the mapper (a refused read leaves the types guessed).
- :mod:`.related`: the related-row prefetch (bulk dot-walked streams), the join, late
  parents, and the fallback to id lists.
- :mod:`.stream`: what each stream declares (table, keys, replication key, related
  tables) and the reader that maps its pages into batches.
- :mod:`.doctor`: ``ticketlint doctor`` for a ServiceNow source.
- :mod:`.connector`: :class:`ServiceNowConnector`, wiring the pieces for one source.

Imports flow one way: query -> paging -> auth / client -> dictionary / related -> stream
-> doctor -> connector. Everything here may import ``ticketlint.config``, ``ticketlint.connectors``
(base, http) and ``ticketlint.mapping``; only doctor imports ``ticketlint.rules``, lazily.
"""

from __future__ import annotations

from ticketlint.connectors.servicenow.connector import ServiceNowConnector
from ticketlint.connectors.servicenow.query import (
    check_scope,
    first_page_query,
    next_page_query,
    walk_query,
)

__all__ = [
    "ServiceNowConnector",
    "check_scope",
    "first_page_query",
    "next_page_query",
    "walk_query",
]
