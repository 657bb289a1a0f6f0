"""Fault injection: every way a user can lose work or get a silently wrong result, run end to end.

Each case of the ``cases_*.py`` modules runs in a fresh temporary folder on the synthetic
data and reports an :class:`Outcome`. ``python -m pytest -m faults`` runs them as tests
(``tests/test_faults.py``; not part of the default run, but ``.ci/run`` runs them after it);
``python -m tests.faults`` prints a table case -> outcome, ending with ``N cases, 0 lost
files, 0 unnamed errors`` when nothing was lost and every error named its file. Each case
module exports ``CASES``, a list of :class:`Case`.
"""
from __future__ import annotations

import importlib
import pkgutil

from tests.faults.common import Case, Outcome  # noqa: F401


def all_cases() -> list[tuple[str, Case]]:
    """(area, case) for every ``cases_*`` module of this package, in name order."""
    found = []
    for m in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if m.name.startswith("cases_"):
            mod = importlib.import_module(f"{__name__}.{m.name}")
            found += [(m.name.removeprefix("cases_"), c) for c in mod.CASES]
    return found
