"""Fault injection: every way a user can lose work or get a silently wrong result, run end to end.

``python -m tests.faults`` runs each case of the ``cases_*.py`` modules in a fresh temporary
folder on the synthetic data and prints a table case -> outcome, ending with
``N cases, 0 lost files, 0 unnamed errors`` when nothing was lost and every error named its
file. Each case module exports ``CASES``, a list of :class:`Case`.
"""
from tests.faults.common import Case, Outcome  # noqa: F401
