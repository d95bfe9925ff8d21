"""The ``iso20000`` pack: 29 rules for ISO/IEC 20000-1:2018 (docs/rules.md).

The clause map (``clauses.yaml``) is data: clause -> title paraphrase -> rule codes, so
another framework is another data file, not code.
"""

from pathlib import Path

from ticketlint.rules.packs.iso20000 import (
    change,
    configuration,
    incident,
    problem,
    release,
    request,
)
from ticketlint.rules.registry import Pack

PACK = Pack.from_modules(
    "iso20000",
    [change, incident, request, problem, configuration, release],
    title="ISO/IEC 20000-1:2018 service management system",
    clause_map=Path(__file__).with_name("clauses.yaml"),
)
