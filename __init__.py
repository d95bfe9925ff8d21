"""ticketlint: ISO/IEC 20000-1 conformity checks for Jira and ServiceNow records.

The one import name of the distribution. Its rooms, each importing only the rooms before
it (tests/layout checks this, dynamic imports by name included):

``mapping`` (records, translation; pure) -> ``config`` -> ``rules`` (judge; pure) ->
``connectors`` (fetch) -> ``store`` (remember) -> ``sync`` (incremental runs) ->
``notify`` / ``report`` -> ``plugin`` (write-back, serve) -> ``cli``. Data still flows
connector -> mapper -> record -> rules -> store -> notify / write-back / report: the
connector hands raw pages to a mapper, the runner hands records to the engine. Command
modules (``*/commands.py``) are the CLI layer wherever they live. ``sandbox`` imitates
Jira and ServiceNow for the demo and the tests.

Stable for third parties: ``ticketlint.rules.registry`` (``Pack``, ``rule``, the
``ticketlint.packs`` entry-point group), ``ticketlint.mapping.model`` (the record
types), ``ticketlint.rules.outcome`` (outcomes). Everything else may change between
minor versions.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("ticketlint")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
