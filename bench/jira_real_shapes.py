"""HTTP requests of a Jira Cloud read of a JSM site with real shapes, beside the page
minimum, and agreement with a read of every comment list and history (issue 19).

Starts the sandbox with ``--real-shapes`` ("[System]" issue types, searches that truncate
comment lists, closed incidents without ``resolutiondate``) and ``--size`` records, then
reads every Jira stream twice with :class:`ticketlint.connectors.jira.JiraConnector`:
as shipped (comment lists and histories read only where a rule needs them) and with a
mapper that asks for every truncated comment list and every history. It prints the
requests of both, the page minimum of the first (setup, search pages, approvals, one
bulkfetch per 1000 issues needing history, one comment read per issue whose notes decide
a rule) and whether INC001, INC004 and INC005 agree record by record.
Run: ``python bench/jira_real_shapes.py [--size N]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sandbox"))

from test_real_shapes import (  # type: ignore[import-not-found]
    _jira_source,
    _outcomes,
    _read,
    _reference_factory,
)

from ticketlint.connectors.jira import JiraConnector
from ticketlint.sandbox.server import SandboxServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=5000)
    args = parser.parse_args()
    server = SandboxServer(seed=5, size=args.size, anchor=1772460000000, real_shapes=True).start()
    try:
        conn = JiraConnector(_jira_source(server), sleep=lambda s: None)
        ref = JiraConnector(
            _jira_source(server), sleep=lambda s: None, mapper_factory=_reference_factory
        )
        server.stats.clear()
        records, requests, _ = _read(conn)
        used = dict(server.stats)
        ref_records, ref_requests, _ = _read(ref)
        conn.close()
        ref.close()
    finally:
        server.stop()
    count = {
        what: sum(n for route, n in used.items() if key in route)
        for what, key in (
            ("search", "search/jql"),
            ("approvals", "/approval"),
            ("comments", "/comment"),
            ("bulkfetch", "changelog/bulkfetch"),
        )
    }
    minimum = 5 + count["search"] + count["approvals"] + count["comments"] + count["bulkfetch"]
    agree = _outcomes(records) == _outcomes(ref_records)
    print(
        f"records {len(records)}; requests {requests}; page minimum {minimum} "
        f"({requests / minimum:.3f}x); read-everything {ref_requests}; by kind {count}"
    )
    print(f"INC001/INC004/INC005 agree with the read-everything check: {agree}")


if __name__ == "__main__":
    main()
