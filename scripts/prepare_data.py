"""Convert an official dataset download into the project layout.

    python scripts/prepare_data.py --dataset DAVIS-2017 --src /path/DAVIS --data_dir data

Writes ``<data_dir>/<dataset>/<split>/{images,labels}/<video>/``; re-running skips outputs
that are up to date with their source and re-makes those whose source changed. Then run
``scripts/compute_flow.py`` for the flow images. See docs/data_preparation.md.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install

from utils.config import split_list  # noqa: E402
from datasets.prepare import OUTPUT_NAME, SOURCES, DatasetLayoutError, prepare_dataset  # noqa: E402
from datasets.prepare.fbms import BACKGROUNDS, TRAININGSET  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", required=True, choices=SOURCES,
                   help="which download --src holds (DAVIS-2016 and DAVIS-2017 both give DAVIS-2016)")
    p.add_argument("--src", required=True, type=Path, help="the unpacked official download")
    p.add_argument("--data_dir", required=True, type=Path, help="project data folder to write into")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--link", dest="link", action="store_true", default=True,
                   help="symlink JPEG frames (saves disk; the download must stay in place)")
    g.add_argument("--copy", dest="link", action="store_false", help="copy JPEG frames instead of linking")
    p.add_argument("--videos", action="append", metavar="NAME[,NAME]",
                   help="only these videos (output names; repeatable or comma separated)")
    p.add_argument("--overwrite", action="store_true",
                   help="rewrite every output (by default only missing ones and those whose source changed)")
    p.add_argument("--workers", type=int, default=4, help="threads over videos")
    p.add_argument("--resolution", default="480p", help="DAVIS resolution folder")
    p.add_argument("--ytvos_all_frames", type=Path, default=None,
                   help="YouTube-VOS: folder of all frames (train_all_frames/JPEGImages); "
                        "default: found next to train/ when present")
    p.add_argument("--fbms_trainingset", choices=TRAININGSET, default="skip",
                   help="FBMS: also convert the Trainingset into this split")
    p.add_argument("--fbms_background", choices=BACKGROUNDS, default="auto",
                   help="FBMS: background colour of the GroundTruth images")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = prepare_dataset(
            args.dataset, args.src, args.data_dir, link=args.link, videos=split_list(args.videos),
            overwrite=args.overwrite, workers=args.workers, progress=not args.quiet,
            resolution=args.resolution, all_frames=args.ytvos_all_frames, trainingset=args.fbms_trainingset,
            background=args.fbms_background)
    except (DatasetLayoutError, OSError) as e:
        # The messages name the file at fault; a traceback would bury it.
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary.format())
    for w in summary.warnings[1:20]:
        print(f"  warning: {w}")
    out = args.data_dir / OUTPUT_NAME[args.dataset]
    print(f"next: python scripts/compute_flow.py --data_dir {args.data_dir} --dataset {out.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
