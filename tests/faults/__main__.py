"""Run every fault case and print case -> outcome; ``python -m tests.faults [-k substring]``.

The same cases run under pytest with ``python -m pytest -m faults`` (``tests/test_faults.py``).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from tests.faults import all_cases
from tests.faults.common import ROOT, Outcome


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("-k", default=None, help="only cases whose name contains this")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    cases = [(g, c) for g, c in all_cases() if args.k is None or args.k in c.name]
    rows, lost, unnamed = [], 0, 0
    for group, case in cases:
        tmp = Path(tempfile.mkdtemp(prefix="oast_fault_"))
        t0 = time.time()
        try:
            out = case.run(tmp)
        except Exception as e:  # a case that crashes counts as a failure, shown in the table
            traceback.print_exc()
            out = Outcome(f"CASE CRASHED: {type(e).__name__}: {e}", lost=1)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        lost, unnamed = lost + out.lost, unnamed + out.unnamed
        flag = "" if out.lost == 0 and out.unnamed == 0 else "  <-- FAIL"
        rows.append((group, case.name, out.outcome + flag, time.time() - t0))
        print(f"{group:<10} {case.name:<44} {out.outcome}{flag} ({time.time() - t0:.0f} s)", flush=True)
    print()
    w = max([len(r[1]) for r in rows] + [4])
    print(f"| area | case{' ' * (w - 4)} | outcome |")
    print(f"| --- | {'-' * w} | --- |")
    for g, name, outcome, _ in rows:
        print(f"| {g} | {name:<{w}} | {outcome} |")
    print(f"\n{len(rows)} cases, {lost} lost files, {unnamed} unnamed errors")
    return 0 if lost == 0 and unnamed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
