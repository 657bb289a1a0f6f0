"""Evaluate saved predictions on DAVIS-2016, FBMS, Youtube-objects, DAVSOD, ...

Example::

    python scripts/evaluate.py --pred_dir outputs/preds --data_dir data \\
        --datasets DAVIS-2016 FBMS Youtube-objects DAVSOD --out_dir outputs/eval

See docs/evaluation.md for the folder layout and the exact protocols.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

# The repository is not pip-installed: make `evaluation` importable from any cwd.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from evaluation import EvaluationError, evaluate_datasets, format_table  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Evaluate unsupervised VOS predictions (J/F, J over annotated frames, saliency metrics).",
    )
    parser.add_argument("--pred_dir", type=Path, required=True,
                        help="root of binary 0/255 predictions <pred_dir>/<dataset>/<video>/<frame>.png (required)")
    parser.add_argument("--data_dir", type=Path, default=Path("data"),
                        help="root of the data <data_dir>/<dataset>/<split>/labels/<video>/<frame>.png "
                             "(default: %(default)s)")
    parser.add_argument("--datasets", nargs="+", default=["DAVIS-2016"],
                        help="dataset folder names; DAVIS-2016 gets the DAVIS protocol, DAVSOD saliency metrics, "
                             "others mean J over annotated frames (default: %(default)s)")
    parser.add_argument("--prob_dir", type=Path, default=None,
                        help="root of uint8 probability maps for saliency metrics (default: same as --pred_dir)")
    parser.add_argument("--saliency", nargs="*", default=[],
                        help="datasets that also get saliency metrics from --prob_dir (default: none; "
                             "DAVSOD always does)")
    parser.add_argument("--split", default="val", help="data split folder (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="worker processes, 1 = no pool (default: %(default)s = os.cpu_count())")
    parser.add_argument("--out_dir", type=Path, default=None,
                        help="folder for per-sequence CSV files and results.json (default: none, print only)")
    parser.add_argument("--keep_first_last", action="store_true",
                        help="score the first and last frame too in the DAVIS and saliency protocols "
                             "(default: off, as in the DAVIS-2016 toolkit)")
    parser.add_argument("--summary_only", action="store_true",
                        help="print only the dataset means, not one row per sequence (default: off)")
    parser.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging level (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation and print one table per dataset and protocol."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        results = evaluate_datasets(
            args.pred_dir,
            args.data_dir,
            args.datasets,
            split=args.split,
            prob_dir=args.prob_dir,
            saliency=args.saliency,
            workers=args.workers,
            skip_first_last=not args.keep_first_last,
            out_dir=args.out_dir,
            progress=sys.stderr.isatty(),
        )
    except (EvaluationError, OSError) as err:
        # Every error of the toolbox names the file or folder at fault: print it, not a traceback.
        logging.getLogger("evaluate").error("%s", err)
        return 2
    for res in results:
        print(format_table(res, per_sequence=not args.summary_only))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
