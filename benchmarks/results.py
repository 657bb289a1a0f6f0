#!/usr/bin/env python
"""Summarise the run ledger: per split and setting, n, mean ± sd and min–max of every figure.

    python benchmarks/results.py                       # print the tables
    python benchmarks/results.py --write benchmarks/results/tables.md
    python benchmarks/results.py --split holdout --grep warmup

Reads ``benchmarks/results/ledger.jsonl`` (rows appended by ``benchmarks/davis_real.py``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ledger import markdown, read_rows, summarise  # noqa: E402
from utils.io import atomic_write  # noqa: E402

LEDGER = ROOT / "benchmarks" / "results" / "ledger.jsonl"


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ledger", nargs="+", default=[str(LEDGER)], help="ledger file(s), JSON lines")
    p.add_argument("--split", default=None, help="only this split (val, holdout, holdout_fold2, ...)")
    p.add_argument("--grep", default=None, help="only settings whose text contains this")
    p.add_argument("--write", default=None, help="also write the tables to this Markdown file")
    a = p.parse_args(argv)
    rows = []
    for path in a.ledger:
        try:
            rows += read_rows(path)
        except ValueError as e:
            p.error(str(e))
    rows = [r for r in rows if (a.split is None or r["split"] == a.split)
            and (a.grep is None or a.grep in r["setting"])]
    text = markdown(summarise(rows)) if rows else "no rows\n"
    print(text)
    if a.write:
        header = ("<!-- written by `python benchmarks/results.py --write` from benchmarks/results/ledger.jsonl; "
                  "do not edit by hand -->\n\n")
        atomic_write(Path(a.write), lambda tmp: tmp.write_text(header + text))
    return text


if __name__ == "__main__":
    main()
