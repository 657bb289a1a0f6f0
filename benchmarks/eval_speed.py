"""Time the DAVIS-2016 evaluation (J and F) on the 10 shared val sequences.

Builds a temporary project layout whose labels are symlinks to the shared DAVIS
annotations and whose predictions are perturbed ground truth (erosion, dilation,
shift, untouched, cycling over frames), then times ``evaluate_dataset``.

    python benchmarks/eval_speed.py [--davis_dir DIR] [--workers N] [--repeats R]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from evaluation import evaluate_dataset, read_gt  # noqa: E402

DEFAULT_DAVIS = Path(os.environ.get("OAST_DAVIS_DIR", REPO.parent / "shared/data/DAVIS"))


def perturb(mask: np.ndarray, i: int) -> np.ndarray:
    """Deterministic perturbation of a bool mask, cycling over four kinds by frame index."""
    m = mask.astype(np.uint8)
    kernel = np.ones((5, 5), np.uint8)
    kind = i % 4
    if kind == 0:
        m = cv2.erode(m, kernel, iterations=2)
    elif kind == 1:
        m = cv2.dilate(m, kernel, iterations=2)
    elif kind == 2:
        m = np.roll(m, shift=(3, 12), axis=(0, 1))
    return m * 255


def build_layout(davis_dir: Path, root: Path) -> list[str]:
    """Create ``root/data/DAVIS-2016/val/labels`` (symlinks) and ``root/pred/DAVIS-2016`` (perturbed)."""
    seqs = (davis_dir / "ImageSets/2016/val.txt").read_text().split()
    labels = root / "data/DAVIS-2016/val/labels"
    labels.mkdir(parents=True)
    for seq in seqs:
        src = davis_dir / "Annotations/480p" / seq
        (labels / seq).symlink_to(src.resolve(), target_is_directory=True)
        out = root / "pred/DAVIS-2016" / seq
        out.mkdir(parents=True)
        for i, png in enumerate(sorted(src.glob("*.png"))):
            cv2.imwrite(str(out / png.name), perturb(read_gt(png), i))
    return seqs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--davis_dir", type=Path, default=DEFAULT_DAVIS,
                        help="DAVIS root in the official layout (default: %(default)s; env OAST_DAVIS_DIR)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="worker processes (default: %(default)s = os.cpu_count())")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs; the best is reported (default: %(default)s)")
    args = parser.parse_args()

    if not (args.davis_dir / "ImageSets/2016/val.txt").is_file():
        print(f"SKIP: DAVIS data not found at {args.davis_dir} (set OAST_DAVIS_DIR or --davis_dir)")
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        seqs = build_layout(args.davis_dir, root)
        print(f"built perturbed predictions for {len(seqs)} sequences in {time.perf_counter() - t0:.1f} s")
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            res = evaluate_dataset(root / "pred", root / "data", "DAVIS-2016", workers=args.workers)
            times.append(time.perf_counter() - t0)
        best = min(times)
        n_files = sum(len(list((root / "data/DAVIS-2016/val/labels" / s).glob("*.png"))) for s in seqs)
        print(f"DAVIS-2016 val: {len(res.sequences)} sequences, {n_files} frames "
              f"({res.n_frames} scored), workers={args.workers}, cpu_count={os.cpu_count()}")
        runs = ", ".join(f"{t:.2f}" for t in times)
        print(f"evaluate_dataset: best {best:.2f} s of {args.repeats} (runs: {runs}); "
              f"{n_files / best:.0f} annotated frames/s, {res.n_frames / best:.0f} scored frames/s")
        s = res.summary
        print(f"J&F {s['JF_mean']:.4f}  J {s['J_mean']:.4f}  F {s['F_mean']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
