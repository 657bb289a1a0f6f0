"""The paper's saliency table: S-measure, max F and MAE per dataset, offline and online.

    python scripts/paper/saliency_table.py --datasets DAVIS-2016 FBMS DAVSOD ViSal \\
        --results offline=outputs/eval_offline/results.json online=outputs/eval_online/results.json

Reads the ``results.json`` files that ``scripts/evaluate.py --out_dir`` writes (key
``<dataset>_saliency``) and prints one Markdown row per dataset; ``--out`` also writes it.
Figures follow the DAVSOD toolbox (docs/evaluation.md): S-measure (alpha 0.5) and MAE are
means over sequences, max F (beta^2 = 0.3) is the maximum of the F curve averaged per
sequence then over sequences; the first and last annotated frame of each sequence are skipped.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout, no install

from utils.io import atomic_write  # noqa: E402

COLUMNS = (("S", "S"), ("maxF", "max F"), ("MAE", "MAE"))


def load_results(path: Path) -> dict[str, dict]:
    """``results.json`` as a dict; raises ``SystemExit`` naming the file when it is unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: cannot read evaluation results {path.resolve()}: {e}") from e
    if not isinstance(data, dict):
        raise SystemExit(f"error: {path.resolve()} is not a scripts/evaluate.py results.json")
    return data


def saliency_table(runs: dict[str, dict[str, dict]], datasets: list[str]) -> tuple[str, list[str]]:
    """Markdown table (one row per dataset, S / max F / MAE per run) and the (run, dataset) pairs missing."""
    header = ["Dataset"] + [f"{run} {label}" for run in runs for _, label in COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    missing = []
    for ds in datasets:
        cells = [ds]
        for run, results in runs.items():
            summary = results.get(f"{ds}_saliency", {}).get("summary")
            if summary is None:
                missing.append(f"{run}: {ds}")
            cells += [f"{summary[key]:.3f}" if summary and key in summary else "-" for key, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), missing


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", required=True, help="rows, in this order")
    p.add_argument("--results", nargs="+", required=True, metavar="RUN=PATH",
                   help="column groups: a name and the results.json of scripts/evaluate.py --out_dir")
    p.add_argument("--out", type=Path, default=None, help="also write the table to this Markdown file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = {}
    for item in args.results:
        run, sep, path = item.partition("=")
        if not sep or not run or not path:
            print(f"error: --results takes RUN=PATH, got {item!r}", file=sys.stderr)
            return 2
        runs[run] = load_results(Path(path))
    table, missing = saliency_table(runs, args.datasets)
    print("Saliency (DAVSOD toolbox protocol; first/last annotated frame skipped): "
          "S-measure, max F (beta^2 = 0.3), MAE")
    print(table)
    if missing:
        print(f"warning: no saliency results for {', '.join(missing)} (was the set in --saliency?)",
              file=sys.stderr)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.out, lambda tmp: tmp.write_text(table + "\n"))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
