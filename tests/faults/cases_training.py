"""Faults around offline training and the authors' command lines: reruns into a finished run's
folder, stage 2 without --output_dir, a --pretrained typo, corrupt validation and training files,
SIGKILL then --resume auto, and the original README's online command line."""
from __future__ import annotations

import subprocess
from pathlib import Path

from tests.faults.common import (ROOT, Case, Outcome, error_names, last_error, lost_files, run_script, snapshot,
                                 synthetic_data)

TINY = ["--model_scale", "xxs", "--size", "64", "96", "--workers", "0", "--batch_size", "2", "--epochs", "1",
        "--max_steps_per_epoch", "2", "--no_tensorboard", "--lambda_adv", "0", "--val_every", "0", "--device", "cpu"]
VAL = ["--val_every", "1", "--val_datasets", "FBMS"]


def _train(tmp: Path, data: Path, *extra: str, **kill) -> subprocess.CompletedProcess:
    """``unlabeled_train.py`` run from ``tmp`` (default run folders land in ``tmp/runs``)."""
    return run_script([str(ROOT / "unlabeled_train.py"), "--data_dir", str(data), *TINY, *extra], cwd=tmp, **kill)


def _fail(r: subprocess.CompletedProcess, what: str) -> Outcome:
    return Outcome(f"{what} failed: {last_error(r.stderr)}", lost=1)


def _first_training_image(data: Path) -> Path:
    """The labeled DAVIS-2016 image that epoch 0 (seed 0) draws first."""
    from torch.utils.data import DistributedSampler

    from datasets import FrameDataset

    ds = FrameDataset(data, ["DAVIS-2016"], "labeled", "train", (64, 96))
    sampler = DistributedSampler(ds, 1, 0, shuffle=True, seed=0, drop_last=True)
    sampler.set_epoch(0)
    vid, frame = ds.items[next(iter(sampler))]
    return Path(ds.videos[vid].image_paths[frame])


def rerun_into_finished_run(tmp: Path) -> Outcome:
    """The stage-1 command run twice: the second must not replace the first run's checkpoints."""
    data = synthetic_data(tmp)
    r = _train(tmp, data)
    if r.returncode != 0:
        return _fail(r, "first run")
    run = tmp / "runs" / "stage1"
    before = snapshot(run)
    r = _train(tmp, data)
    lost = lost_files(before, snapshot(run))
    if r.returncode == 0:
        return Outcome(f"second run replaced the first; {len(lost)} files changed", lost=max(len(lost), 1))
    named = error_names(last_error(r.stderr), run / "checkpoint_last.pth")
    return Outcome(f"refused, {'names' if named else 'does NOT name'} runs/stage1/checkpoint_last.pth; "
                   f"{len(lost)} files changed", lost=len(lost), unnamed=0 if named else 1)


def authors_stage2_no_output_dir(tmp: Path) -> Outcome:
    """The README's stage 2 (--finetune, no --output_dir) after stage 1: stage 1's files stay as they were."""
    data = synthetic_data(tmp)
    r = _train(tmp, data)
    if r.returncode != 0:
        return _fail(r, "stage 1")
    stage1 = tmp / "runs" / "stage1"
    before = snapshot(stage1)
    r = _train(tmp, data, "--labeled_datasets", "DAVIS-2016", "--finetune", "runs/stage1/checkpoint_last.pth",
               "--sync-bn")
    lost = lost_files(before, snapshot(stage1))
    if r.returncode != 0:
        return Outcome(f"stage 2 failed: {last_error(r.stderr)}; {len(lost)} stage-1 files changed",
                       lost=len(lost) or 1)
    where = "runs/stage2" if (tmp / "runs" / "stage2" / "checkpoint_last.pth").is_file() else "?"
    return Outcome(f"stage 2 wrote {where}; {len(lost)} stage-1 files changed", lost=len(lost))


def bad_pretrained_typo(tmp: Path) -> Outcome:
    """--resume auto into a finished run with a mistyped --pretrained: refused, the run's files untouched."""
    data = synthetic_data(tmp)
    run = tmp / "runs" / "stage1"
    r = _train(tmp, data)
    if r.returncode != 0:
        return _fail(r, "first run")
    before = snapshot(run)
    typo = "pretrained/mobilevit_ss.pth"
    r = _train(tmp, data, "--resume", "auto", "--epochs", "2", "--pretrained", typo)
    lost = lost_files(before, snapshot(run))
    if r.returncode == 0:
        return Outcome("ran with a missing --pretrained file", lost=max(len(lost), 1))
    named = error_names(last_error(r.stderr), typo)
    return Outcome(f"refused, {'names' if named else 'does NOT name'} {typo}; {len(lost)} run files changed",
                   lost=len(lost), unnamed=0 if named else 1)


def corrupt_validation_label(tmp: Path) -> Outcome:
    """A garbage FBMS label read by validation: the epoch's checkpoint is kept, log.txt names the file."""
    import torch

    data = synthetic_data(tmp)
    label = sorted((data / "FBMS" / "val" / "labels").rglob("*.png"))[0]
    label.write_bytes(b"not a png")
    run = tmp / "runs" / "stage1"
    r = _train(tmp, data, *VAL)
    ckpt = run / "checkpoint_last.pth"
    epoch = torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"] if ckpt.is_file() else None
    log = (run / "log.txt").read_text() if (run / "log.txt").is_file() else ""
    named = error_names(last_error(r.stderr), label) and str(label) in log
    kept = f"checkpoint_last.pth of epoch {epoch} kept" if epoch == 0 else "the epoch's checkpoint LOST"
    return Outcome(f"{'stopped' if r.returncode else 'finished'}; {kept}; log.txt "
                   f"{'names the label, with traceback' if named and 'Traceback' in log else 'does NOT name it'}",
                   lost=0 if epoch == 0 else 1, unnamed=0 if named else 1)


def corrupt_training_frame_skipped(tmp: Path) -> Outcome:
    """A garbage training frame with --skip_bad_frames: the run finishes, the skip is counted and named."""
    data = synthetic_data(tmp)
    bad = _first_training_image(data)
    bad.write_bytes(b"not a jpeg")
    run = tmp / "runs" / "stage1"
    r = _train(tmp, data, "--labeled_datasets", "DAVIS-2016", "--skip_bad_frames")
    log = (run / "log.txt").read_text() if (run / "log.txt").is_file() else ""
    if r.returncode != 0:
        return Outcome(f"stopped: {last_error(r.stderr)}", lost=1, unnamed=0 if error_names(r.stderr, bad) else 1)
    summary = next((ln for ln in log.splitlines() if "epoch 0:" in ln), "")
    count = summary.split(" skipped ")[1].split()[0] if " skipped " in summary else "?"
    named = str(bad) in log
    return Outcome(f"finished; {count} skipped in the epoch summary, file {'named' if named else 'NOT named'} "
                   f"in log.txt", lost=0 if count == "1" else 1, unnamed=0 if named else 1)


def sigkill_then_resume(tmp: Path) -> Outcome:
    """SIGKILL in epoch 1 (after epoch 0 was saved), then --resume auto: same final weights as a clean run."""
    import torch

    data = synthetic_data(tmp)
    extra = ["--epochs", "3", "--lr_step", "1", *VAL]
    r = _train(tmp, data, *extra, "--output_dir", "runs/clean")
    if r.returncode != 0:
        return _fail(r, "clean run")
    cut = tmp / "runs" / "cut"
    r = _train(tmp, data, *extra, "--output_dir", "runs/cut", kill_when=lambda: (cut / "checkpoint_best.pth").exists())
    if r.returncode != -9:
        return Outcome(f"not killed (exit {r.returncode})", lost=1)
    kept = (cut / "checkpoint_last.pth").is_file()
    r = _train(tmp, data, *extra, "--output_dir", "runs/cut", "--resume", "auto")
    if r.returncode != 0:
        return _fail(r, "resume")

    def load(p: Path) -> dict:
        return torch.load(p, map_location="cpu", weights_only=False)

    a, b = load(tmp / "runs/clean/checkpoint_last.pth"), load(cut / "checkpoint_last.pth")
    same = b["epoch"] == 2 and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    best = load(tmp / "runs/clean/checkpoint_best.pth")["epoch"] == load(cut / "checkpoint_best.pth")["epoch"]
    return Outcome(f"killed, {'checkpoint kept' if kept else 'checkpoint LOST'}; resumed: final weights "
                   f"{'identical to' if same else 'DIFFER from'} a clean run, best epoch "
                   f"{'same' if best else 'DIFFERS'}", lost=0 if same and best and kept else 1)


def authors_online_command_line(tmp: Path) -> Outcome:
    """The README's online command line via torch.distributed.launch: runs, one warning names the unused options."""
    data = synthetic_data(tmp)
    r = _train(tmp, data)
    if r.returncode != 0:
        return _fail(r, "training")
    weight = tmp / "runs" / "stage1" / "checkpoint_last.pth"
    authors = ["--epochs", "10", "--data_dir", str(data), "--pretrained", "/your/pretrained/path", "--weight",
               str(weight), "--sync-bn"]
    tiny = ["--epochs", "1", "--size", "64", "96", "--workers", "0", "--test_datasets", "FBMS", "--videos",
            "fbms000", "--tta", "identity", "--no_tensorboard", "--device", "cpu", "--save_dir",
            str(tmp / "masks"), "--output_dir", str(tmp / "runs" / "online")]
    r = run_script(["-m", "torch.distributed.launch", "--nproc_per_node=1", str(ROOT / "online_finetuning.py"),
                    *authors, *tiny], cwd=tmp)
    if r.returncode != 0:
        return Outcome(f"rejected: {last_error(r.stderr)}", lost=1)
    warns = [ln for ln in r.stderr.splitlines() if "WARNING" in ln and "--pretrained" in ln and "--sync-bn" in ln]
    masks = len(list((tmp / "masks").rglob("*.png")))
    return Outcome(f"ran ({masks} masks); {len(warns)} warning line naming --pretrained and --sync-bn as unused",
                   lost=0 if masks and len(warns) == 1 else 1)


CASES = [
    Case("stage 1 rerun into finished run folder", rerun_into_finished_run),
    Case("authors' stage 2 with no --output_dir", authors_stage2_no_output_dir),
    Case("bad --pretrained typo (resume of a run)", bad_pretrained_typo),
    Case("corrupt validation label", corrupt_validation_label),
    Case("corrupt training frame (--skip_bad_frames)", corrupt_training_frame_skipped),
    Case("SIGKILL during training then --resume auto", sigkill_then_resume),
    Case("authors' online command line", authors_online_command_line),
]
