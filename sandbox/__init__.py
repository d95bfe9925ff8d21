"""A local imitation of Jira Cloud and the ServiceNow Table API with seeded ITSM data.

``serve(host, port, seed=, size=, faults=)`` starts both APIs on one port; ``ticketlint
sandbox`` runs it in the foreground and ``ticketlint demo`` runs the whole product against
it. Standard library only.
"""

from ticketlint.sandbox.server import SandboxServer, serve

__all__ = ["SandboxServer", "serve"]
