#!/usr/bin/env python
"""What ``scripts/segment_video.py --online`` changes on DAVIS sequences, as a user runs it.

For each sequence, the tool runs twice on ``JPEGImages/480p/<sequence>`` (its own defaults:
the checkpoint's training size, no flip, DIS flow at the frame size): plain inference and
``--online`` (plus ``--online_args``). J and F (``evaluation.davis``) are scored against
``Annotations/480p`` on every annotated frame. Choose settings on the held-out train
sequences with their model (the default list); the val sequences are for reporting.

    python benchmarks/video_online.py --weights /tmp/dr/recipe_holdout/train/checkpoint_last.pth \\
        --out_dir /tmp/video_online                       # the 10 held-out train sequences
    python benchmarks/video_online.py --weights CKPT --sequences blackswan --out_dir /tmp/vo_val

Each sequence's result is saved in ``<out_dir>/<tag>/<sequence>.json`` and read back on a
rerun, so an interrupted sweep resumes. Skips (exit 0) when the DAVIS folder is absent.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.davis_real import HOLDOUT  # noqa: E402
from benchmarks.segment_speed import _script, default_davis  # noqa: E402
from evaluation.davis import boundary_f, jaccard  # noqa: E402
from utils.io import atomic_write  # noqa: E402


def score(masks_dir: Path, work_dir: Path, video: str, annotations: Path) -> dict[str, float]:
    """Mean J and F of the tool's masks over the annotated frames (through its source record)."""
    record = json.loads((work_dir / f"{video}.source.json").read_text())
    js, fs = [], []
    for frame, source in zip(record["frames"], record["sources"]):
        gt_path = annotations / f"{Path(source).stem}.png"
        if gt_path.is_file():
            pred = cv2.imread(str(masks_dir / f"{frame}.png"), cv2.IMREAD_GRAYSCALE) > 0
            gt = cv2.imread(str(gt_path), cv2.IMREAD_GRAYSCALE) > 0
            js.append(jaccard(pred, gt))
            fs.append(boundary_f(pred, gt))
    if not js:
        raise RuntimeError(f"no annotation of {video} found in {annotations}")
    return {"J": float(np.mean(js)), "F": float(np.mean(fs)), "frames": len(js)}


def run(script, source: Path, weights: list[str], options: list[str]) -> tuple[dict, dict]:
    """One tool run into a temporary folder: (scores, stage timing)."""
    from segment_video import segment_video

    with tempfile.TemporaryDirectory(prefix="video_online_") as tmp:
        args = script.get_parser().parse_args(["--input", str(source), "--weights", *weights, "--output_dir",
                                               str(Path(tmp) / "out"), "--overlay", "none", *options])
        result = segment_video(args, progress=False)
        annotations = source.parents[2] / "Annotations" / "480p" / source.name
        return score(result.masks_dir, result.work_dir, result.video, annotations), result.timing


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, nargs="+", help="checkpoint(s) the tool segments with")
    p.add_argument("--davis", type=Path, default=default_davis(), help="DAVIS root (JPEGImages/480p, Annotations/480p)")
    p.add_argument("--sequences", nargs="+", default=list(HOLDOUT), help="DAVIS sequences (default: the held-out ten)")
    p.add_argument("--out_dir", type=Path, required=True, help="per-sequence results (resumable)")
    p.add_argument("--tool_args", default="--device cpu --workers 0", help="options of both runs")
    p.add_argument("--online_args", default="", help="extra options of the --online run")
    p.add_argument("--tag", default="defaults", help="name of this online setting (results folder)")
    a = p.parse_args(argv)
    if not (a.davis / "JPEGImages" / "480p").is_dir():
        print(f"skipped: no DAVIS data at {a.davis}")
        return 0

    script = _script()
    rows = {}
    for seq in a.sequences:
        done = a.out_dir / a.tag / f"{seq}.json"
        if not done.is_file():
            source = a.davis / "JPEGImages" / "480p" / seq
            common = shlex.split(a.tool_args)
            t = time.perf_counter()
            off, off_t = run(script, source, a.weights, common)
            on, on_t = run(script, source, a.weights, [*common, "--online", *shlex.split(a.online_args)])
            res = {"offline": off, "online": on, "offline_timing": off_t, "online_timing": on_t,
                   "seconds": time.perf_counter() - t, "options": {"tool": a.tool_args, "online": a.online_args}}
            atomic_write(done, lambda tmp: tmp.write_text(json.dumps(res, indent=2) + "\n"))
        rows[seq] = json.loads(done.read_text())
        r = rows[seq]
        jf = [(r[k]["J"] + r[k]["F"]) / 2 for k in ("offline", "online")]
        print(f"{seq:20s} J&F {100 * jf[0]:5.1f} -> {100 * jf[1]:5.1f} ({100 * (jf[1] - jf[0]):+5.1f})  "
              f"J {100 * r['offline']['J']:5.1f} -> {100 * r['online']['J']:5.1f}  "
              f"tune {r['online_timing']['tune_s'] / r['online']['frames']:.2f} s/frame", flush=True)
    off = np.mean([(r["offline"]["J"] + r["offline"]["F"]) / 2 for r in rows.values()])
    on = np.mean([(r["online"]["J"] + r["online"]["F"]) / 2 for r in rows.values()])
    worse = sum((r["online"]["J"] + r["online"]["F"]) / 2 < (r["offline"]["J"] + r["offline"]["F"]) / 2 - 0.01
                for r in rows.values())
    print(f"\nmean over {len(rows)} sequences: J&F {100 * off:.1f} -> {100 * on:.1f} ({100 * (on - off):+.1f}), "
          f"{worse} worse by > 1 point; online options: {a.online_args or '(the tool defaults)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
