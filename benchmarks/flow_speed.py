"""Time the flow back ends per 854x480 frame on CPU, on a shared DAVIS validation sequence.

    python benchmarks/flow_speed.py [--davis PATH] [--video blackswan] [--frames 20] [--no_raft]

Each figure is timed over ``--rounds`` rounds and printed as best / median (the machine may
be shared: the best round is the cost of the code, the median what a busy machine gives).
Prints, for DIS (each preset): the OpenCV computation alone and the whole per-frame cost of
``compute_video_flow`` (read, flow, colour encoding, JPEG write); then raft_small with random
weights (speed does not depend on the weight values) for a few frames. Skips cleanly (exit 0)
when the DAVIS copy is absent.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import statistics
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from utils.flow import flow_to_image  # noqa: E402
from utils.io import read_rgb  # noqa: E402
from utils.optical_flow import DIS_PRESETS, DISFlow, RAFTFlow, compute_video_flow  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def default_davis() -> Path:
    return Path(os.environ.get("OAST_DAVIS_DIR", ROOT.parent / "shared" / "data" / "DAVIS"))


def timed(fn: Callable[[], int], rounds: int) -> tuple[float, float]:
    """(best, median) seconds per item; ``fn`` runs one round and returns its item count."""
    per = []
    for _ in range(rounds):
        t = time.perf_counter()
        n = fn()
        per.append((time.perf_counter() - t) / n)
    return min(per), statistics.median(per)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--davis", type=Path, default=default_davis())
    p.add_argument("--video", default="blackswan")
    p.add_argument("--frames", type=int, default=20, help="frames timed per DIS measurement")
    p.add_argument("--raft_frames", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no_raft", action="store_true")
    args = p.parse_args()

    video = args.davis / "JPEGImages" / "480p" / args.video
    if not video.is_dir():
        print(f"skipped: {video} not found (set OAST_DAVIS_DIR or --davis)")
        return 0
    paths = sorted(video.glob("*.jpg"))[: args.frames + 1]
    frames = [read_rgb(q) for q in paths]
    h, w = frames[0].shape[:2]
    n = len(frames) - 1
    print(f"{args.video}: {n} frame pairs of {w}x{h}, CPU, cv2 threads={cv2.getNumThreads()}, "
          f"os cpus={os.cpu_count()}")

    flows: list[np.ndarray] = []
    for preset in DIS_PRESETS:
        dis = DISFlow(preset)
        dis(frames[:1], frames[1:2])  # warm-up

        def run_dis() -> int:
            flows[:] = [dis([a], [b])[0] for a, b in zip(frames[:-1], frames[1:])]
            return n

        best, med = timed(run_dis, args.rounds)
        print(f"DIS {preset:9s}          : {best * 1000:7.1f} / {med * 1000:7.1f} ms/frame (flow only)")

    for dtype in (torch.float64, torch.float32):  # the stored flow images / the video tool
        def run_encode() -> int:
            for f in flows[:5]:
                flow_to_image(f, dtype=dtype)
            return min(5, len(flows))

        best, med = timed(run_encode, args.rounds)
        print(f"flow_to_image {str(dtype)[6:]:8s} : {best * 1000:7.1f} / {med * 1000:7.1f} ms/frame "
              f"(utils.flow colour encoding)")

    with tempfile.TemporaryDirectory() as tmp:
        img_dir = Path(tmp) / "images"
        img_dir.mkdir()
        for q in paths:
            os.symlink(q.resolve(), img_dir / q.name)

        def run_all() -> int:
            return compute_video_flow(img_dir, Path(tmp) / "flows", DISFlow("medium"), overwrite=True).computed

        best, med = timed(run_all, args.rounds)
    print(f"DIS medium end to end  : {best * 1000:7.1f} / {med * 1000:7.1f} ms/frame "
          f"(read + flow + encode + JPEG write, 1 process; --workers scales over videos)")

    if not args.no_raft:
        from torchvision.models.optical_flow import raft_small

        with tempfile.TemporaryDirectory() as tmp:
            wpath = Path(tmp) / "raft_small_random.pth"
            torch.manual_seed(0)
            torch.save(raft_small(weights=None).state_dict(), wpath)
            est = RAFTFlow("raft_small", wpath, "cpu", iters=12, batch_size=1)
        k = min(args.raft_frames, n)
        est(frames[:1], frames[1:2])  # warm-up (allocations)

        def run_raft() -> int:
            for a, b in zip(frames[:k], frames[1:k + 1]):
                est([a], [b])
            return k

        best, med = timed(run_raft, 1)
        print(f"raft_small CPU 12 iters: {best:7.2f} s/frame at {w}x{h} "
              f"(random weights, torch threads={torch.get_num_threads()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
