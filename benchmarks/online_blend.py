#!/usr/bin/env python
"""What ``online_finetuning.py --write_blend W`` gives, for many W, from two runs' probability maps.

The online stage's written probability with ``--write_blend W`` is ``W x`` the tuned
student's (fused over time) ``+ (1 - W) x`` the first targets' (the offline model's views,
fused over time: what ``--epochs 0`` writes with the default views). Both are linear, so one
online run and one ``--epochs 0`` run, each with ``--save_prob``, give every W: this script
mixes their 8-bit probability maps, thresholds at 0.5, scores each W against the annotations,
and prints per W the J&F, the change against W = 0 (the offline masks fused over time, the
best offline inference) and the videos worse than it by more than a point.

Run it on held-out *train* sequences to choose a W; it reads their annotations to score.

    python benchmarks/davis_real.py --eval holdout --online_args=--save_prob --tag _prob
    python benchmarks/davis_real.py --eval holdout --online_epochs 0 --online_args=--save_prob --tag _t1_prob
    python benchmarks/online_blend.py --data_dir /tmp/davis_real/data --split holdout \\
        --offline /tmp/davis_real/holdout/online_per_video_t1_prob_prob \\
        --online /tmp/davis_real/holdout/online_per_video_prob_prob --out_dir /tmp/davis_real/blend
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datasets.io import write_mask  # noqa: E402
from evaluation import evaluate_dataset  # noqa: E402
from evaluation.files import EvaluationError, read_prob  # noqa: E402
from utils.io import atomic_write  # noqa: E402

DATASET = "DAVIS-2016"


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_dir", required=True, help="data root holding DAVIS-2016/<split> with its labels")
    p.add_argument("--split", default="holdout", help="split folder to score")
    p.add_argument("--offline", required=True, help="probability maps of the --epochs 0 run (W = 0)")
    p.add_argument("--online", required=True, help="probability maps of the online run (W = 1)")
    p.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                   help="the W to score (0 first: the reference of the changes)")
    p.add_argument("--out_dir", required=True, help="where the mixed masks (w<W>/) and blend.json go")
    return p


def blend_masks(offline: Path, online: Path, out: Path, w: float) -> int:
    """Write ``out/<dataset>/<video>/<frame>.png``: ``w x online + (1 - w) x offline >= 0.5``.
    Every offline map needs its online twin: a missing one is named."""
    n = 0
    for a_path in sorted((offline / DATASET).glob("*/*.png")):
        rel = a_path.relative_to(offline)
        b_path = online / rel
        if not b_path.is_file():
            raise EvaluationError(f"no online probability map for {a_path}: expected {b_path}")
        a, b = read_prob(a_path).astype(np.float32), read_prob(b_path).astype(np.float32)
        if a.shape != b.shape:
            raise EvaluationError(f"probability maps differ in size: {a_path} {a.shape}, {b_path} {b.shape}")
        write_mask(out / rel, (w * b + (1 - w) * a) / 255 >= 0.5)
        n += 1
    if n == 0:
        raise EvaluationError(f"no probability maps under {offline / DATASET}")
    return n


def main(argv: list[str] | None = None) -> dict:
    a = get_parser().parse_args(argv)
    out = Path(a.out_dir)
    per_w: dict[float, dict[str, float]] = {}
    for w in a.weights:
        d = out / f"w{w:g}"
        blend_masks(Path(a.offline), Path(a.online), d, w)
        res = evaluate_dataset(d, a.data_dir, DATASET, split=a.split, workers=1)
        per_w[w] = {s.name: 100 * s.metrics["JF_mean"] for s in res.sequences}
    ref = per_w[a.weights[0]]
    print(f"{'W':>5} {'J&F':>6} {'change':>7}  videos worse than W={a.weights[0]:g} by > 1 point")
    for w, pv in per_w.items():
        delta = {k: pv[k] - ref[k] for k in pv}
        worse = sorted((v, k) for k, v in delta.items() if v < -1)
        print(f"{w:5g} {np.mean(list(pv.values())):6.1f} {np.mean(list(delta.values())):+7.2f}  {len(worse)}"
              + (": " + ", ".join(f"{k} {v:+.1f}" for v, k in worse) if worse else ""))
    result = {f"{w:g}": pv for w, pv in per_w.items()}
    text = json.dumps(result, indent=1)
    atomic_write(out / "blend.json", lambda tmp: tmp.write_text(text))
    return result


if __name__ == "__main__":
    main()
