#!/usr/bin/env python
"""What the online stage's targets are worth with no tuning at all (the self-training ceiling).

For each video of a split, the teacher (the offline checkpoint) predicts every frame at
several input sizes (each resized from the original frame), with and without flip; the
script writes masks for each combination of views, with and without temporal fusion
(neighbours' predictions warped in with DIS flow and a forward-backward check), scores them
against the annotations, and reports how many pixels the confidence thresholds label and
how accurate those labels are, and per video the share of the mask's wrong pixels that the
thresholds label with confidence (errors the student is taught to keep). The first row is
``test.py --flip`` at the test size.

Run it on held-out *train* sequences (``davis_real.py --eval holdout``): it reads their
annotations to score, which the online stage itself never does.

    python benchmarks/online_ceiling.py --weights /tmp/dr/hold10/train/checkpoint_last.pth \\
        --data_dir /tmp/dr/data --split holdout --size 320 576 --out_dir /tmp/dr/ceiling
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name: (scales, flip, temporal offsets, motion veto REL (0: off; labels only, the mask is the same))
VARIANTS = {
    "s1_noflip": ((1.0,), False, (), 0.0),
    "s1_flip (test.py --flip)": ((1.0,), True, (), 0.0),
    "s1.25_flip": ((1.25,), True, (), 0.0),
    "s1+1.25_flip": ((1.0, 1.25), True, (), 0.0),
    "s1+1.25+1.5_flip": ((1.0, 1.25, 1.5), True, (), 0.0),
    "s0.75+1+1.25_flip": ((0.75, 1.0, 1.25), True, (), 0.0),
    "s1_flip + temporal 1": ((1.0,), True, (1,), 0.0),
    "s1_flip + temporal 1 + motion veto 0.25": ((1.0,), True, (1,), 0.25),
    "s1_flip + temporal 1,2": ((1.0,), True, (1, 2), 0.0),
    "s1+1.25_flip + temporal 1,2": ((1.0, 1.25), True, (1, 2), 0.0),
}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="offline checkpoint (the teacher)")
    p.add_argument("--data_dir", required=True, help="data root with DAVIS-2016/<split>")
    p.add_argument("--dataset", default="DAVIS-2016")
    p.add_argument("--split", default="holdout", help="held-out train sequences (annotations are read to score)")
    p.add_argument("--size", type=int, nargs=2, default=(320, 576), help="test size (H W)")
    p.add_argument("--out_dir", required=True, help="masks of each variant and result.json")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--lo", type=float, default=0.1, help="confidence threshold: background below")
    p.add_argument("--hi", type=float, default=0.9, help="confidence threshold: object above")
    p.add_argument("--videos", nargs="+", default=None)
    p.add_argument("--workers", type=int, default=1)
    a = p.parse_args(argv)

    import torch

    from datasets import FrameDataset
    from datasets.io import read_mask
    from engine.inference import MaskWriter, to_original_size
    from engine.pseudo_labels import IGNORE, hard_labels, motion_veto
    from engine.temporal import pair_flows, temporal_fuse, video_view_probs
    from evaluation import evaluate_dataset
    from evaluation.summary import scores
    from models import build_model_from_checkpoint

    dev = torch.device("cpu")
    model = build_model_from_checkpoint([a.weights]).to(dev).eval()
    # Annotations are read here only to score (held-out train sequences); FrameDataset finds them.
    data = FrameDataset(a.data_dir, [a.dataset], "test", a.split, tuple(a.size), with_labels=True, videos=a.videos)
    out = Path(a.out_dir)
    names = a.variants
    view_sets = sorted({VARIANTS[n][:2] for n in names})
    writers = {n: MaskWriter(out / f"v{i}") for i, n in enumerate(names)}
    conf = {n: [0, 0, 0] for n in names}  # labelled pixels, correct labelled pixels, all pixels
    # Per video: pixels where the mask (p > 0.5) is wrong, and those of them labelled with
    # confidence (wrongly): errors self-training is taught to keep rather than to repair.
    errors = {n: {} for n in names}
    t0 = time.time()
    for (ds, video), indices in sorted(data.video_items().items()):
        probs, rgbs = video_view_probs(model, data, indices, a.size, view_sets, dev, workers=a.workers)
        by_set = dict(zip(view_sets, probs))
        offsets = sorted({k for n in names for k in VARIANTS[n][2]} | ({1} if any(VARIANTS[n][3] for n in names)
                                                                         else set()))
        flows = pair_flows(rgbs, offsets) if offsets else {}
        for n in names:
            scales, flip, temporal, veto = VARIANTS[n]
            prob = by_set[(scales, flip)]
            if temporal:
                prob = temporal_fuse(prob, flows, temporal)
            dropped = torch.zeros(prob.shape, dtype=torch.bool)  # labels the veto removes, at the test size
            if veto:
                lab_t = hard_labels(prob, a.lo, a.hi)
                dropped = (motion_veto(lab_t, flows, veto) == IGNORE) & (lab_t != IGNORE)
            for i, pr, drop in zip(indices, prob, dropped):
                vid, frame = data.videos[data.items[i][0]], data.items[i][1]
                if frame not in vid.label_paths:
                    continue
                gt = torch.from_numpy(read_mask(vid.label_paths[frame]) > 0)
                full = next(to_original_size(pr[None], torch.tensor([gt.shape])))
                writers[n].write(ds, video, frame, full)
                lab = hard_labels(torch.from_numpy(full), a.lo, a.hi)
                if veto:
                    drop_full = next(to_original_size(drop[None].float(), torch.tensor([gt.shape]))) > 0.5
                    lab[torch.from_numpy(drop_full)] = IGNORE
                known = lab != 255
                conf[n][0] += int(known.sum())
                conf[n][1] += int(((lab == 1) == gt)[known].sum())
                conf[n][2] += gt.numel()
                wrong = (torch.from_numpy(full) > 0.5) != gt
                e = errors[n].setdefault(video, [0, 0])
                e[0] += int(wrong.sum())
                e[1] += int((known & ((lab == 1) != gt)).sum())
        print(f"{video}: {time.time() - t0:.0f} s", flush=True)
    result = {}
    print(f"\n{a.dataset} {a.split}, test size {a.size[0]}x{a.size[1]}, thresholds {a.lo}/{a.hi}")
    print(f"{'variant':34s} {'J&F':>6s} {'J':>6s} {'F':>6s} {'labelled %':>10s} {'label acc %':>11s}")
    for i, n in enumerate(names):
        s = scores([evaluate_dataset(out / f"v{i}", a.data_dir, a.dataset, split=a.split, sequences=a.videos)])
        lab, ok, tot = conf[n]
        locked = {v: e[1] / max(e[0], 1) for v, e in errors[n].items()}
        result[n] = {**s, "labelled": lab / max(tot, 1), "label_accuracy": ok / max(lab, 1),
                     "errors_labelled_confidently": locked}
        print(f"{n:34s} {100 * s[f'{a.dataset} J&F']:6.1f} {100 * s[f'{a.dataset} J']:6.1f} "
              f"{100 * s[f'{a.dataset} F']:6.1f} {100 * lab / max(tot, 1):10.1f} {100 * ok / max(lab, 1):11.2f}")
    print("\nper video: share of the mask's wrong pixels that the targets label confidently (wrongly)")
    for n in names:
        print(f"{n:34s} " + "  ".join(f"{v} {100 * x:.0f}%" for v, x in result[n]["errors_labelled_confidently"].items()))
    from utils.io import atomic_write
    atomic_write(out / "result.json", lambda tmp: tmp.write_text(json.dumps(result, indent=1)))
    return result


if __name__ == "__main__":
    main()
