#!/usr/bin/env python
"""The real-data recipe: ImageNet-initialised encoders trained on DAVIS-2016 on a CPU.

Converts the shared DAVIS copy (frames symlinked), estimates DIS flow, trains on the train
sequences, writes offline masks, runs online self-tuning, and prints J&F offline vs online.
Split by sequence, as the benchmark:

* ``--eval holdout`` (for choosing settings): train on 20 train sequences, score the 10
  held out (``HOLDOUT``). Every recipe choice in benchmarks/RESULTS.md was made this way.
* ``--eval val`` (for reporting, once): train on all 30 train sequences, score the val ones.

    python benchmarks/davis_real.py --out_dir /tmp/davis_real              # the README's val figure
    python benchmarks/davis_real.py --eval holdout --train_args "--lr 1e-4" # one ablation row

Flow and converted frames are cached in ``<out_dir>/data`` (and reused across runs that
share it; ``--flow_preset`` and ``--flow_camera remove`` each have their own folder, see
``data_folder``); each run's checkpoints and masks go under ``<out_dir>/<name>_s<seed>``. One training
is one draw: ``--seed 0 1 2`` trains three, one after another. Each finished run appends one
line to the run ledger (``benchmarks/results/ledger.jsonl``; ``python benchmarks/results.py``
prints mean +- sd per setting): commit it as soon as the run ends.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LEDGER = ROOT / "benchmarks" / "results" / "ledger.jsonl"
DEFAULT_DAVIS = os.environ.get("OAST_DAVIS_DIR", str(ROOT.parent / "shared/data/DAVIS"))
# 10 of the 30 DAVIS-2016 train sequences, held out for choosing settings: the first five
# held out before, plus every sixth from the fourth in sorted order (5 were too noisy for a
# 2-point effect).
HOLDOUT = ("bear", "breakdance-flare", "car-turn", "elephant", "hike", "lucia", "mallard-water", "rhino",
           "rollerblade", "swing")
TRAIN_SPLIT = "train20"  # the other 20 train sequences
# Folds 2 and 3 split the other 20 train sequences alternately in sorted order. No setting
# was chosen on them: they check, on sequences never looked at, what fold 1 chose.
FOLDS = {1: HOLDOUT,
         2: ("bmx-bumps", "bus", "dog-agility", "flamingo", "horsejump-low", "mallard-fly", "motorbike",
             "scooter-gray", "stroller", "tennis"),
         3: ("boat", "dance-jump", "drift-turn", "hockey", "kite-walk", "motocross-bumps", "paragliding",
             "soccerball", "surf", "train")}
# The recipe (chosen on HOLDOUT, see benchmarks/RESULTS.md): lite0 ImageNet encoders.
RECIPE = {"pretrained": "efficientnet_lite0_pip", "size": (256, 448), "test_size": (320, 576), "epochs": 8,
          "steps_per_epoch": 150, "batch_size": 4, "lr": 1e-3, "lr_schedule": "cosine",
          # The encoders at the decoder's lr. 0.1x gave fold 1 78.5 (1x: 68.5, 75.2, 76.6) and fold 3
          # 64.8 (1x: 60.9) but val 73.3 (1x: 75.3, 72.8): not adopted yet (benchmarks/RESULTS.md, Encoder).
          "encoder_lr_mult": 1.0,
          "online_epochs": 1, "online_lr": 1e-4,
          # The online stage's own defaults (engine/online_config.py), chosen on the held-out sequences.
          "online_args": ""}


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    r = RECIPE
    p.add_argument("--davis", default=DEFAULT_DAVIS, help="official DAVIS-2016 layout (default: ../shared/data/DAVIS "
                                                          "or $OAST_DAVIS_DIR)")
    p.add_argument("--out_dir", default="/tmp/oast_davis_real", help="work folder (data cache, runs, masks)")
    p.add_argument("--name", default=None, help="run name under out_dir, followed by _s<seed> (default: the split "
                                                 "scored: val, holdout, holdout_fold2, holdout_fold3)")
    p.add_argument("--seed", type=int, nargs="+", default=[0],
                   help="training seeds (one training each, one after another; the online stage uses the same seed)")
    p.add_argument("--ledger", default=str(LEDGER),
                   help="run ledger (JSON lines) that each finished run appends its figures to ('' for none)")
    p.add_argument("--note", default="", help="free text kept in the ledger row (e.g. 'overlapped a test run')")
    p.add_argument("--fold", type=int, default=1, choices=sorted(FOLDS),
                   help="with --eval holdout: which 10 train sequences are held out (1: the ones every setting "
                        "was chosen on; 2, 3: never looked at, for checking)")
    p.add_argument("--eval", default="val", choices=["val", "holdout"],
                   help="val: train on 30, score val; holdout: train on 20, score the 10 held-out train sequences")
    p.add_argument("--pretrained", default=r["pretrained"], help="encoder ImageNet weights ('none': random init)")
    p.add_argument("--model_scale", default="xxs", help="MobileViT scale when --pretrained is a mobilevit file/none")
    p.add_argument("--backbone", default=None, help="timm backbone (default: the weights' own)")
    p.add_argument("--size", type=int, nargs=2, default=r["size"], help="training and test input size (H W)")
    p.add_argument("--test_size", type=int, nargs=2, default=r["test_size"],
                   help="input size of test.py and the online stage")
    p.add_argument("--epochs", type=int, default=r["epochs"], help="training epochs")
    p.add_argument("--steps_per_epoch", type=int, default=r["steps_per_epoch"], help="steps per epoch")
    p.add_argument("--batch_size", type=int, default=r["batch_size"], help="training batch")
    p.add_argument("--lr", type=float, default=r["lr"], help="AdamW learning rate")
    p.add_argument("--lr_schedule", default=r["lr_schedule"], choices=["step", "cosine"], help="lr schedule")
    p.add_argument("--encoder_lr_mult", type=float, default=r["encoder_lr_mult"],
                   help="learning rate of the encoders relative to --lr")
    p.add_argument("--flow_preset", default="medium", help="DIS preset of the cached flow")
    p.add_argument("--flow_camera", default="keep", choices=["keep", "remove"],
                   help="keep: the flow as estimated; remove: the camera's motion (a homography fitted to each "
                        "flow) subtracted, for training and testing alike. Each kind has its own data folder")
    p.add_argument("--no_flip", action="store_true", help="no flip TTA when writing masks")
    p.add_argument("--scales", type=float, nargs="+", default=[1.0],
                   help="test-time input sizes (multiples of --test_size) for test.py and the online masks")
    p.add_argument("--temporal", type=int, nargs="*", default=[1],
                   help="the best offline inference: a second test.py pass with --temporal K (nothing: skip it)")
    p.add_argument("--train_args", default="", help="extra unlabeled_train.py options (ablations)")
    p.add_argument("--online", default="per_video", help="online modes to run, comma separated ('' for none)")
    p.add_argument("--online_epochs", type=int, default=r["online_epochs"], help="online passes per video")
    p.add_argument("--online_lr", type=float, default=r["online_lr"], help="online student learning rate")
    p.add_argument("--online_args", default=r["online_args"],
                   help="online_finetuning.py options ('' for the entry script's defaults)")
    p.add_argument("--tag", default="", help="suffix of the mask folders and result file: test-time and online "
                                             "variants of one trained model")
    p.add_argument("--workers", type=int, default=1, help="loader / flow worker processes")
    return p


def holdout_splits(fold: int) -> tuple[str, str]:
    """(training split, held-out split) names of a fold; fold 1 keeps the original names."""
    return (TRAIN_SPLIT, "holdout") if fold == 1 else (f"{TRAIN_SPLIT}_fold{fold}", f"holdout_fold{fold}")


def data_folder(out_dir: str | Path, preset: str = "medium", camera: str = "keep") -> Path:
    """The cache of converted frames and flow of one flow kind: ``data`` for the recipe's flow,
    ``data_<preset>`` for another DIS preset, ``_nocam`` appended with the camera's motion removed."""
    from utils.optical_flow import check_camera

    check_camera(camera)
    if preset == "medium" and camera == "keep":
        return Path(out_dir) / "data"
    return Path(out_dir) / (f"data_{preset}" + ("_nocam" if camera == "remove" else ""))


def prepare(davis: str | Path, data: Path, preset: str, workers: int, camera: str = "keep") -> dict[str, float]:
    """Converted DAVIS-2016 with DIS flow in ``data`` (cached), plus every fold's holdout splits."""
    from datasets.prepare import prepare_dataset
    from utils.optical_flow import compute_dataset_flow

    times, t = {}, time.time()
    prepare_dataset("DAVIS-2016", davis, data, link=True, progress=False)
    times["prepare"] = time.time() - t
    t = time.time()
    compute_dataset_flow(data, "DAVIS-2016", "dis", workers=workers, preset=preset, camera=camera)
    times["flow"] = time.time() - t
    for fold, names in FOLDS.items():
        make_holdout_splits(data / "DAVIS-2016", names, *holdout_splits(fold))
    return times


def make_holdout_splits(root: Path, holdout: tuple[str, ...] = HOLDOUT, train_split: str = TRAIN_SPLIT,
                        holdout_split: str = "holdout") -> None:
    """``train_split`` and ``holdout_split`` splits of ``root/train`` as folders of symlinks;
    links of an earlier holdout that no longer belong are removed."""
    train = root / "train"
    names = sorted(d.name for d in (train / "images").iterdir())
    missing = sorted(set(holdout) - set(names))
    if missing:
        raise ValueError(f"holdout sequences {missing} are not in {train / 'images'}")
    for split, keep in ((train_split, [n for n in names if n not in holdout]), (holdout_split, list(holdout))):
        for kind in ("images", "flows", "labels"):
            (root / split / kind).mkdir(parents=True, exist_ok=True)
            for old in (root / split / kind).iterdir():
                if old.is_symlink() and old.name not in keep:
                    old.unlink()
            for n in keep:
                link = root / split / kind / n
                if not link.exists():
                    link.symlink_to((train / kind / n).resolve(), target_is_directory=True)


def run(a: argparse.Namespace, seed: int = 0) -> dict:
    """Train (with ``seed``), test, tune online, evaluate; returns the figures (also written as
    JSON in the run folder, and appended to the ledger)."""
    import online_finetuning
    import unlabeled_train
    from evaluation.summary import comparison_table, scores
    from evaluation import evaluate_datasets
    from utils.io import atomic_write

    t0 = time.time()
    out = Path(a.out_dir)
    data = data_folder(out, a.flow_preset, a.flow_camera)
    times = prepare(a.davis, data, a.flow_preset, a.workers, a.flow_camera)
    train_split, test_split = ("train", "val") if a.eval == "val" else holdout_splits(a.fold)
    run_dir = run_folder(a, seed)
    common = ["--data_dir", str(data), "--size", *map(str, a.size), "--workers", str(a.workers)]
    test_common = ["--data_dir", str(data), "--size", *map(str, a.test_size or a.size), "--workers", str(a.workers)]
    train = [*common, "--labeled_datasets", "DAVIS-2016", "--labeled_split", train_split,
             "--epochs", str(a.epochs), "--max_steps_per_epoch", str(a.steps_per_epoch),
             "--batch_size", str(a.batch_size), "--lr", str(a.lr), "--seed", str(seed),
             "--lr_schedule", a.lr_schedule, "--lr_step", str(max(a.epochs - 2, 1)), "--lambda_adv", "0",
             "--encoder_lr_mult", str(a.encoder_lr_mult),
             "--val_every", "0", "--output_dir", str(run_dir / "train"), "--resume", "auto", "--no_tensorboard",
             "--model_scale", a.model_scale]
    if a.pretrained and a.pretrained != "none":
        train += ["--pretrained", a.pretrained]
    if a.backbone:
        train += ["--backbone", a.backbone]
    train += shlex.split(a.train_args)
    t = time.time()
    unlabeled_train.main(train)
    times["train"] = time.time() - t
    weights = str(run_dir / "train" / "checkpoint_last.pth")
    flip = [] if a.no_flip else ["--flip"]
    views = [*flip, "--scales", *map(str, a.scales)]
    # Offline masks depend on the test-time options only: one folder for every online row.
    offline = run_dir / offline_folder_name(a)
    test_argv = [*test_common, "--weights", weights, "--test_datasets", "DAVIS-2016", "--split", test_split,
                 "--save_dir", str(offline), *views]
    _test_once(test_argv, offline, times, "test")
    before = evaluate_datasets(offline, data, ["DAVIS-2016"], split=test_split)
    best = None
    if a.temporal:  # the best offline inference: the same views fused over time
        best_dir = offline.with_name(offline.name + "_t" + "+".join(map(str, a.temporal)))
        _test_once([*test_argv[:test_argv.index("--save_dir")], "--save_dir", str(best_dir), *views,
                    "--temporal", *map(str, a.temporal)], best_dir, times, "best_offline")
        best = evaluate_datasets(best_dir, data, ["DAVIS-2016"], split=test_split)
    n_frames = sum(1 for _ in (data / "DAVIS-2016" / test_split / "images").glob("*/*.jpg"))
    if "test" in times:
        times["test_s_per_frame"] = times["test"] / max(n_frames, 1)
    result = {"eval": a.eval, "offline": scores(before), "times": times, "argv": a.argv, "online": {},
              "offline_dir": str(offline), "seed": seed, "split": test_split, "train_split": train_split,
              "offline_per_video": per_video(before)}
    if best is not None:
        result["best_offline"], result["best_offline_per_video"] = scores(best), per_video(best)
    print(f"\nDAVIS-2016 {test_split} ({len(before[0].sequences)} sequences), trained on {train_split}")
    for mode in [m for m in a.online.split(",") if m]:
        t = time.time()
        timing = online_finetuning.main([*test_common, "--weights", weights, "--test_datasets", "DAVIS-2016",
                                         "--split", test_split, "--mode", mode, "--epochs", str(a.online_epochs),
                                         "--lr", str(a.online_lr), "--save_dir", str(run_dir / f"online_{mode}{a.tag}"),
                                         "--output_dir", str(run_dir / f"runs_online_{mode}{a.tag}"), "--no_tensorboard",
                                         "--seed", str(seed),
                                         *views, *shlex.split(a.online_args)])
        times[f"online_{mode}"] = time.time() - t
        after = evaluate_datasets(run_dir / f"online_{mode}{a.tag}", data, ["DAVIS-2016"], split=test_split)
        result["online"][mode] = {"scores": scores(after), "timing": timing, "per_video": per_video(after),
                                  "per_video_delta": per_video_delta(before, after)}
        print(f"\nonline mode {mode}:\n" + comparison_table(before, after))
        print(f"online: {timing['tune_s_per_frame']:.3f} s/frame tuning, "
              f"{timing['predict_s_per_frame']:.3f} s/frame inference")
    if not result["online"]:
        print(f"offline J&F {100 * result['offline']['DAVIS-2016 J&F']:.1f}  J "
              f"{100 * result['offline']['DAVIS-2016 J']:.1f}  F {100 * result['offline']['DAVIS-2016 F']:.1f}")
    times["total"] = time.time() - t0
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    text = json.dumps(result, indent=1, default=str)
    atomic_write(result_path(a, seed), lambda tmp: tmp.write_text(text))
    if a.ledger:
        from benchmarks.ledger import append_row, ledger_row

        append_row(a.ledger, ledger_row(result, a, seed, n_frames, git_commit(), vars(get_parser().parse_args([]))))
        print(f"ledger: appended to {a.ledger} (commit it now)")
    return result


def run_folder(a: argparse.Namespace, seed: int) -> Path:
    """``<out_dir>/<name>_s<seed>``, the name defaulting to the split scored, so that another
    fold's run never resumes or overwrites this one."""
    test_split = "val" if a.eval == "val" else holdout_splits(a.fold)[1]
    return Path(a.out_dir) / f"{a.name or test_split}_s{seed}"


def offline_folder_name(a: argparse.Namespace) -> str:
    """The folder of the offline masks: named for the test-time options (size, flip, scales)."""
    return ("offline_" + "_".join(map(str, a.test_size or a.size)) + ("_noflip" if a.no_flip else "")
            + ("" if list(a.scales) == [1.0] else "_s" + "+".join(map(str, a.scales))))


def result_path(a: argparse.Namespace, seed: int) -> Path:
    """The run's result JSON: ``result<tag>.json`` for the default test-time options, else named
    for them too (``result_256_448_s1.0+1.25<tag>.json``), so that testing a finished model
    again another way never overwrites an earlier result."""
    name, default = offline_folder_name(a), offline_folder_name(get_parser().parse_args([]))
    infix = "" if name == default else "_" + name.removeprefix("offline_")
    return run_folder(a, seed) / f"result{infix}{a.tag}.json"


def git_commit() -> str:
    """The checkout's commit, with '+dirty' when tracked files differ from it ('unknown' outside git)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def per_video(results: list) -> dict[str, float]:
    """J&F per DAVIS sequence."""
    return {s.name: s.metrics["JF_mean"] for s in results[0].sequences}


def per_video_delta(before: list, after: list) -> dict[str, float]:
    """Online minus offline J&F per DAVIS sequence."""
    a = per_video(after)
    return {name: a[name] - jf for name, jf in per_video(before).items()}


def _test_once(argv: list[str], save_dir: Path, times: dict[str, float], key: str) -> None:
    """``test.py argv`` into ``save_dir`` unless its marker says these masks are written (a killed
    run writes no marker); the seconds it took go to ``times[key]``."""
    import test as test_script
    from utils.io import atomic_write

    marker = save_dir.with_name(save_dir.name + ".done.json")
    if marker.is_file() and json.loads(marker.read_text()) == argv:
        return
    t = time.time()
    test_script.main(argv)
    atomic_write(marker, lambda tmp: tmp.write_text(json.dumps(argv)))
    times[key] = time.time() - t


def main(argv: list[str] | None = None) -> dict | list[dict] | None:
    """The figures of the run (a list of them with several ``--seed``), or None without DAVIS data."""
    p = get_parser()
    a = p.parse_args(argv)
    a.argv = list(sys.argv[1:] if argv is None else argv)  # what the ledger records
    if a.fold != 1 and a.eval != "holdout":
        p.error(f"--fold {a.fold} needs --eval holdout (val is one split, not a fold)")
    if "--seed" in shlex.split(a.train_args):
        p.error("give the training seed as --seed, not inside --train_args (it names the run folder)")
    if len(set(a.seed)) != len(a.seed):
        p.error(f"--seed {' '.join(map(str, a.seed))}: each seed once")
    if not (Path(a.davis) / "JPEGImages").is_dir():
        print(f"skipped: no DAVIS data at {a.davis}")
        return None
    results = [run(a, seed) for seed in a.seed]
    return results[0] if len(results) == 1 else results


if __name__ == "__main__":
    main()
