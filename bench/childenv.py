"""The environment every bench child runs in: the caller's, without the variables that
change how the interpreter runs (``PYTHONUNBUFFERED``, ``PYTHONDEVMODE``,
``PYTHONMALLOC``, ...), so that a figure does not depend on the shell it was taken from
(a shell with ``PYTHONUNBUFFERED=1`` made every child write its output unbuffered).
``PYTHONPATH`` and ``PYTHONHOME`` stay: they say which code runs."""

from __future__ import annotations

import os

KEPT = frozenset({"PYTHONPATH", "PYTHONHOME"})


def child_env(**extra: str) -> dict[str, str]:
    """``os.environ`` less the interpreter's own ``PYTHON*`` settings, with ``NO_COLOR``
    and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") or k in KEPT}
    return {**env, "NO_COLOR": "1", **extra}
