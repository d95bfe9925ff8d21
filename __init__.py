"""ticketlint: ISO/IEC 20000-1 conformity checks for Jira and ServiceNow records.

The one import name of the distribution. Its rooms, in the one direction imports may go
(a later room may import an earlier one, never the reverse):

``config`` -> ``connectors`` (fetch) -> ``mapping`` (translate) -> ``rules`` (judge) ->
``store`` (remember) -> ``sync`` (incremental runs) -> ``notify`` / ``report`` /
``plugin`` (tell and act) -> ``cli`` (wires them). ``sandbox`` imitates Jira and
ServiceNow for the demo and the tests and is imported by nothing but the CLI.

Stable for third parties: ``ticketlint.rules.registry`` (``Pack``, ``rule``, the
``ticketlint.packs`` entry-point group), ``ticketlint.mapping.model`` (the record
types), ``ticketlint.rules.outcome`` (outcomes). Everything else may change between
minor versions; see CHANGELOG.md.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("ticketlint")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
