#!/usr/bin/env python
"""Ablations of the real-data recipe, scored on the 10 held-out DAVIS-2016 train sequences.

Each row is ``benchmarks/davis_real.py --eval holdout`` with one change from the base
settings (the val sequences are never read). Rows already run in ``--out_dir`` are read
back from their ``result.json``, so an interrupted sweep resumes where it stopped.

    python benchmarks/ablation_real.py --out_dir /tmp/davis_real [--rows base lr_1e-4 ...]
    python benchmarks/ablation_real.py --out_dir /tmp/davis_real --rows --online_rows defaults defaults_no_temporal
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.davis_real import DEFAULT_DAVIS  # noqa: E402

# The base row: short enough to run many rows (6 x 150 steps of 4 frames at 192 x 352).
BASE = "--epochs 6 --steps_per_epoch 150 --size 192 352 --test_size 192 352 --lr 3e-4 --online ''"
ROWS = {
    "base": "",
    "lr_1e-4": "--lr 1e-4",
    "lr_1e-3": "--lr 1e-3",
    "step_schedule": "--lr_schedule step",
    "size_256x448": "--size 256 448 --test_size 256 448",
    "steps_x2": "--steps_per_epoch 300",
    "random_init_xxs": "--pretrained none --model_scale xxs --lr 5e-4",
    "adv_unlabeled_holdout": "--train_args '--lambda_adv 1e-4 --unlabeled_datasets DAVIS-2016 "
                             "--unlabeled_split holdout'",
    "freeze_encoder_bn": "--train_args '--freeze_encoder_bn'",
    "encoder_lr_x0.1_lr_1e-3": "--lr 1e-3 --encoder_lr_mult 0.1",
    "flow_dis_fast": "--flow_preset fast",
    "batch_8": "--batch_size 8 --steps_per_epoch 75",
}
# Test-time variants of one row's model (--online_base; no retraining).
TEST_ROWS = {
    "test_no_flip": "--no_flip",
    "test_size_256x448": "--test_size 256 448",
    "test_size_288x512": "--test_size 288 512",
    "test_size_320x576": "--test_size 320 576",
}
# Online variants, each tuned on one model (--online_base), scored on the held-out sequences.
# "authors" is the authors' public online setting as far as it fits a CPU budget: one model
# over the whole test set, EMA 0.9996, logits of the views averaged, no sharpening (they run
# 10 passes; 2 here).
ONLINE_ROWS = {
    "per_video": "--online per_video",
    "per_video_lr_1e-4": "--online per_video --online_lr 1e-4",
    "per_video_2_passes": "--online per_video --online_epochs 2",
    "per_video_logit_avg": "--online per_video --online_args '--tta_average logits'",
    "per_video_no_sharpen": "--online per_video --online_args '--sharpen 1'",
    "per_video_no_adv": "--online per_video --online_args '--lambda_adv 0'",
    "transductive": "--online transductive",
    "authors": "--online transductive --online_epochs 2 --online_args '--ema 0.9996 --tta_average logits "
               "--sharpen 1'",
}
# The online defaults (engine/online_config.py: cached targets, the student on the plain frame, the
# mask discriminator off, the --min_cover guard and the --motion_veto), then one change at a time.
# Rows "defaults" ... "defaults_no_temporal" (and the retired "defaults_target_scales_1_1.25") were run
# before the motion veto was a default (it was then row "defaults_motion_veto_0.25");
# "defaults_no_motion_veto" is that earlier "defaults". The rows that changed one thing from the strong
# student view ("cached", "cached_no_aug", ...) and "defaults_target_scales_1_1.25" went with the
# options they needed (benchmarks/RESULTS.md, "Retired options": git checkout 5ca93f8 runs them).
def _defaults(extra: str = "", passes: int = 1) -> str:
    return f"--online per_video --online_lr 1e-4 --online_epochs {passes} --online_args='{extra}'"


ONLINE_ROWS.update({
    "defaults": _defaults(),
    "defaults_min_cover_0": _defaults("--min_cover 0"),
    "defaults_2_passes": _defaults(passes=2),
    "defaults_no_temporal": _defaults("--temporal"),
    "defaults_temporal_1_2": _defaults("--temporal 1 2"),
    "defaults_motion_veto_0.25": _defaults("--motion_veto 0.25"),
    "defaults_no_motion_veto": _defaults("--motion_veto 0"),
})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--davis", default=DEFAULT_DAVIS, help="official DAVIS-2016 layout")
    p.add_argument("--out_dir", default="/tmp/oast_davis_real", help="work folder shared with davis_real.py")
    p.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS), help="offline rows to run")
    p.add_argument("--online_base", default="recipe", choices=["recipe", *ROWS],
                   help="the model the test-time and online rows use: the recipe's (davis_real.py defaults, "
                        "trained on the 20 train sequences) or an offline row's")
    p.add_argument("--test_rows", nargs="*", default=[], choices=list(TEST_ROWS),
                   help="test-time rows to run on the base row's model")
    p.add_argument("--online_rows", nargs="*", default=[], choices=list(ONLINE_ROWS),
                   help="online rows to run on the base row's model")
    a = p.parse_args()
    if not (Path(a.davis) / "JPEGImages").is_dir():
        print(f"skipped: no DAVIS data at {a.davis}")
        return
    from benchmarks import davis_real

    results = {}
    for row in a.rows:
        name = f"ablation_{row}"
        argv = ["--davis", a.davis, "--out_dir", a.out_dir, "--eval", "holdout", "--name", name,
                *shlex.split(BASE), *shlex.split(ROWS[row])]
        done = davis_real.result_path(davis_real.get_parser().parse_args(argv), 0)
        if not done.is_file():
            davis_real.main(argv)
        results[row] = json.loads(done.read_text())
    def on_base(row: str, options: str) -> dict:
        recipe = a.online_base == "recipe"
        base = "recipe_holdout" if recipe else f"ablation_{a.online_base}"
        settings = [] if recipe else [*shlex.split(BASE), *shlex.split(ROWS[a.online_base])]
        argv = ["--davis", a.davis, "--out_dir", a.out_dir, "--eval", "holdout", "--name", base,
                *settings, *shlex.split(options), "--tag", f"_{row}"]
        done = davis_real.result_path(davis_real.get_parser().parse_args(argv), 0)
        if not done.is_file():
            davis_real.main(argv)
        return json.loads(done.read_text())

    for row in a.test_rows:
        results[row] = on_base(row, TEST_ROWS[row])
    online = {row: on_base(row, ONLINE_ROWS[row]) for row in a.online_rows}
    print(f"\nheld-out DAVIS-2016 train sequences ({', '.join(davis_real.HOLDOUT)}); base: {BASE}")
    print(f"{'row':24s} {'J&F':>6s} {'J':>6s} {'F':>6s} {'train min':>10s}  change")
    for row, r in results.items():
        s = r["offline"]
        print(f"{row:24s} {100 * s['DAVIS-2016 J&F']:6.1f} {100 * s['DAVIS-2016 J']:6.1f} "
              f"{100 * s['DAVIS-2016 F']:6.1f} {r['times']['train'] / 60:10.1f}  {({**ROWS, **TEST_ROWS})[row] or '-'}")
    if online:
        print(f"\nonline rows on the {a.online_base} row's model: J&F (delta vs offline), videos worse by > 1 point, "
              f"tuning s/frame")
        for row, r in online.items():
            (mode, o), = r["online"].items()
            off, on = r["offline"]["DAVIS-2016 J&F"], o["scores"]["DAVIS-2016 J&F"]
            worse = sum(d < -0.01 for d in o["per_video_delta"].values())
            print(f"{row:24s} {100 * on:6.1f} ({100 * (on - off):+.1f})  worse {worse}/{len(o['per_video_delta'])}  "
                  f"{o['timing']['tune_s_per_frame']:.3f}  {ONLINE_ROWS[row]}")


if __name__ == "__main__":
    main()
