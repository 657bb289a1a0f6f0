"""The fault cases of ``tests/faults/`` as tests: ``python -m pytest -m faults`` (excluded from the
default run; ``.ci/run`` runs them after the fast suite).

Each case runs the entry scripts end to end on the synthetic data (kills are real
``SIGKILL``s) and fails when a file was lost or silently wrong, or an error named no file.
``python -m tests.faults`` runs the same cases and prints the README's table.
"""
from __future__ import annotations

import re

import pytest

from tests.faults import all_cases

CASES = all_cases()


@pytest.mark.faults
@pytest.mark.parametrize("case", [c for _, c in CASES],
                         ids=[re.sub(r"\W+", "_", f"{area} {c.name}").strip("_") for area, c in CASES])
def test_fault_case(case, tmp_path):
    out = case.run(tmp_path)
    print(out.outcome)  # shown with -rA or -s: the table's outcome column
    assert out.lost == 0 and out.unnamed == 0, out.outcome
