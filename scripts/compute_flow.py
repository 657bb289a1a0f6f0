"""Compute the flow images ``flows/<video>/<frame>.jpg`` of a prepared dataset.

    python scripts/compute_flow.py --data_dir data --dataset DAVIS-2016 --method dis --workers 8
    python scripts/compute_flow.py --data_dir data --dataset DAVIS-2016 --method raft_large \\
        --raft_weights raft_large_C_T_SKHT_V2-ff5fadd5.pth --device cuda

Frame t gets the forward flow t -> t+1 (normalised per frame, utils.flow encoding); the
last frame gets a copy of the previous frame's flow. Existing outputs are skipped unless
--overwrite. --camera remove takes the camera's motion (a homography) out of the flow first.
See docs/data_preparation.md.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install

from utils.config import split_list  # noqa: E402
from utils.optical_flow import CAMERA, DIS_PRESETS, METHODS, FlowComputationError, compute_dataset_flow  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data_dir", required=True, type=Path, help="project data folder")
    p.add_argument("--dataset", "--datasets", dest="datasets", required=True, nargs="+",
                   help="dataset folder name(s) under --data_dir, e.g. DAVIS-2016")
    p.add_argument("--split", action="append", help="only these splits (default: every split with images/)")
    p.add_argument("--videos", action="append", metavar="NAME[,NAME]", help="only these videos")
    p.add_argument("--max_frames", type=int, default=None, help="only the first N frames of each video")
    p.add_argument("--method", choices=METHODS, default="dis")
    p.add_argument("--overwrite", action="store_true", help="recompute existing flow images")
    p.add_argument("--camera", choices=CAMERA, default="keep",
                   help="keep: the flow as estimated; remove: subtract the camera's motion (a homography fitted "
                        "with RANSAC to each frame's flow) before encoding, so the static background is about "
                        "still and a moving object keeps its motion relative to it. A folder holds one kind: "
                        "existing flow of the other kind is an error unless --overwrite")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("DIS")
    g.add_argument("--dis_preset", choices=sorted(DIS_PRESETS), default="medium")
    g.add_argument("--workers", type=int, default=1, help="processes over videos (DIS only)")
    g = p.add_argument_group("RAFT")
    g.add_argument("--raft_weights", type=Path, default=None,
                   help="state dict file; omitted: torchvision's pretrained weights (needs internet)")
    g.add_argument("--device", default=None, help="cuda / cpu (default: cuda when available)")
    g.add_argument("--batch_size", type=int, default=4, help="frame pairs per RAFT forward pass")
    g.add_argument("--raft_iters", type=int, default=12, help="RAFT refinement iterations")
    g.add_argument("--raft_size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="resize frames to H W (multiples of 8) for RAFT; flow is resized back")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.max_frames is not None and args.max_frames < 1:
        print("error: --max_frames must be >= 1", file=sys.stderr)
        return 2
    options = dict(preset=args.dis_preset, weights=args.raft_weights, device=args.device,
                   batch_size=args.batch_size, iters=args.raft_iters,
                   size=tuple(args.raft_size) if args.raft_size else None)
    for dataset in args.datasets:
        t0 = time.perf_counter()
        try:
            stats = compute_dataset_flow(args.data_dir, dataset, args.method, splits=args.split,
                                         videos=split_list(args.videos), overwrite=args.overwrite,
                                         max_frames=args.max_frames, workers=args.workers,
                                         progress=not args.quiet, camera=args.camera, **options)
        except (FileNotFoundError, ValueError, RuntimeError, FlowComputationError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        dt = time.perf_counter() - t0
        print(f"{dataset}: {stats.videos} videos, {stats.frames} frames: {stats.computed} flows computed, "
              f"{stats.copied} last-frame copies, {stats.skipped} already present ({dt:.1f} s)"
              + (f"; camera motion not removed from {stats.unfitted} (no homography fit)" if stats.unfitted else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
