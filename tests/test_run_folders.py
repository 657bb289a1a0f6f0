"""Training runs never lose or silently replace a user's files (issue 12, cases 1, 4 and 7).

Run folders: an occupied --output_dir is refused unless the run resumes it or --overwrite is
given; stage 2 defaults to its own folder; nothing is written before the options are checked.
Bad files: the epoch is saved before validation reads a file; --skip_bad_frames; tracebacks
in log.txt. Authors' command lines: every one of the original README parses.
"""
from __future__ import annotations

import hashlib
import logging
import shlex
import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.data import DistributedSampler

import online_finetuning
import test as test_script
import unlabeled_train
from datasets import FrameDataset
from engine.offline import RANDOM_INIT_WARNING, OfflineTrainer, default_output_dir
from utils.checkpoint import load_checkpoint
from utils.config import parse_with_config, report_ignored_options

TINY = ["--model_scale", "xxs", "--size", "64", "96", "--batch_size", "2", "--workers", "0", "--epochs", "1",
        "--max_steps_per_epoch", "1", "--no_tensorboard", "--lambda_adv", "0", "--val_every", "0"]
VAL = ["--val_every", "1", "--val_datasets", "FBMS"]  # 12 annotated frames: a quick validation


def _train(data: Path, out: Path | None, *extra: str) -> dict:
    return unlabeled_train.main(["--data_dir", str(data), *(["--output_dir", str(out)] if out else []), *TINY,
                                 *extra])


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _corrupt(path: Path) -> None:
    path.write_bytes(b"not an image")


@pytest.fixture
def data(synthetic_dir, tmp_path) -> Path:
    """A private copy of the synthetic data, so a test may damage files."""
    dst = tmp_path / "data"
    shutil.copytree(synthetic_dir, dst, ignore=shutil.ignore_patterns("flows_exact"))
    return dst


@pytest.fixture(scope="module")
def finished_run(synthetic_dir, tmp_path_factory) -> Path:
    """A finished one-epoch run (no --pretrained)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    _train(synthetic_dir, out)
    return out


# Case 1: run folders --------------------------------------------------------------------------
def test_rerun_into_finished_run_is_refused_naming_the_file(synthetic_dir, finished_run):
    before = _digests(finished_run)
    with pytest.raises(FileExistsError) as e:
        _train(synthetic_dir, finished_run)
    msg = str(e.value)
    assert str(finished_run) in msg and "checkpoint_last.pth" in msg
    assert "--resume auto" in msg and "--overwrite" in msg and "another --output_dir" in msg
    assert _digests(finished_run) == before  # nothing rewritten, not even args.yaml or log.txt


def test_resume_auto_of_finished_run_reports_finished(synthetic_dir, finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = _digests(run)
    out = _train(synthetic_dir, run, "--resume", "auto")
    assert out["epoch"] == 0 and "loss" in out  # the finished run's figures
    after = _digests(run)
    assert {k: v for k, v in after.items() if k != "log.txt"} == {k: v for k, v in before.items() if k != "log.txt"}
    assert "the run is finished" in (run / "log.txt").read_text()


def test_overwrite_replaces_the_old_run(synthetic_dir, finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    shutil.copy(run / "checkpoint_last.pth", run / "checkpoint_best.pth")  # the old run's best
    (run / "notes.txt").write_text("mine")
    old_log = (run / "log.txt").read_text()
    _train(synthetic_dir, run, "--overwrite", "--seed", "3")
    assert not (run / "checkpoint_best.pth").exists()  # no stale best left beside the new run
    assert load_checkpoint(run / "checkpoint_last.pth")["args"]["seed"] == 3
    log = (run / "log.txt").read_text()
    assert old_log not in log and "--overwrite: deleted the previous run's" in log
    assert (run / "notes.txt").read_text() == "mine"  # not a run file: left alone


def test_resume_and_overwrite_together_are_refused(synthetic_dir, finished_run):
    with pytest.raises(ValueError, match="only one of them"):
        _train(synthetic_dir, finished_run, "--resume", "auto", "--overwrite")


def test_resume_from_another_folder_into_an_occupied_one_is_refused(synthetic_dir, finished_run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(finished_run, other)
    with pytest.raises(FileExistsError, match="checkpoint of another folder"):
        _train(synthetic_dir, finished_run, "--resume", str(other / "checkpoint_last.pth"), "--epochs", "2")


def test_stage2_defaults_to_its_own_folder(synthetic_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _train(synthetic_dir, None)  # the authors' stage 1: no --output_dir
    stage1 = tmp_path / "runs/stage1"
    before = _digests(stage1)
    _train(synthetic_dir, None, "--labeled_datasets", "DAVIS-2016", "--finetune",
           "runs/stage1/checkpoint_last.pth")  # the authors' stage 2: no --output_dir either
    assert _digests(stage1) == before
    assert load_checkpoint(tmp_path / "runs/stage2/checkpoint_last.pth")["args"]["finetune"] == \
        "runs/stage1/checkpoint_last.pth"


def test_bad_pretrained_writes_nothing(synthetic_dir, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Exception, match="pretrained/mobilevit_typo.pth"):
        _train(synthetic_dir, out, "--pretrained", "pretrained/mobilevit_typo.pth")
    assert not out.exists()


def test_bad_data_dir_in_a_resumable_run_changes_nothing(synthetic_dir, finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = _digests(run)
    with pytest.raises(Exception):
        _train(tmp_path / "no_such_data", run, "--resume", "auto", "--epochs", "2")
    assert _digests(run) == before


def test_orphan_checkpoint_temp_files_are_removed_on_resume(synthetic_dir, finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    orphan = run / "checkpoint_last.pth.abc123.tmp"
    orphan.write_bytes(b"half a checkpoint")
    _train(synthetic_dir, run, "--resume", "auto")
    assert not orphan.exists()
    assert "interrupted checkpoint save" in (run / "log.txt").read_text()


def test_args_yaml_written_atomically(synthetic_dir, tmp_path, monkeypatch):
    import utils.io
    calls = []
    real = utils.io.atomic_write
    monkeypatch.setattr(utils.io, "atomic_write", lambda path, write, *a, **k: (calls.append(Path(path).name),
                                                                               real(path, write, *a, **k))[1])
    _train(synthetic_dir, tmp_path / "run")
    assert "args.yaml" in calls


def test_random_init_warning_once(finished_run):
    log = (finished_run / "log.txt").read_text()
    assert log.count(RANDOM_INIT_WARNING) == 1
    assert "WARNING" in next(line for line in log.splitlines() if RANDOM_INIT_WARNING[:40] in line)


# Case 4: bad files ------------------------------------------------------------------------------
def test_corrupt_validation_label_keeps_the_epoch(data, tmp_path):
    label = sorted((data / "FBMS/val/labels").rglob("*.png"))[0]
    good = label.read_bytes()
    _corrupt(label)
    run = tmp_path / "run"
    with pytest.raises(OSError):
        _train(data, run, *VAL)
    ckpt = load_checkpoint(run / "checkpoint_last.pth")
    assert ckpt["epoch"] == 0 and ckpt["val_pending"]
    log = (run / "log.txt").read_text()
    assert str(label) in log and "Traceback" in log and "validation of epoch 0" in log
    # Fixed file: the resumed run validates the saved epoch and finishes it.
    label.write_bytes(good)
    out = _train(data, run, *VAL, "--resume", "auto")
    assert "val_J" in out
    assert not load_checkpoint(run / "checkpoint_last.pth")["val_pending"]
    assert (run / "checkpoint_best.pth").is_file()


def _first_training_image(data: Path, seed: int = 0) -> Path:
    """The image of the first labeled sample epoch 0 draws (same sampler as the trainer)."""
    ds = FrameDataset(data, ["DAVIS-2016"], "labeled", "train", (64, 96))
    sampler = DistributedSampler(ds, 1, 0, shuffle=True, seed=seed, drop_last=True)
    sampler.set_epoch(0)
    vid, frame = ds.items[next(iter(sampler))]
    return ds.videos[vid].image_paths[frame]


def test_corrupt_training_frame_stops_with_traceback_in_log(data, tmp_path):
    bad = _first_training_image(data)
    _corrupt(bad)
    run = tmp_path / "run"
    with pytest.raises(OSError, match=str(bad.name)):
        _train(data, run, "--labeled_datasets", "DAVIS-2016")
    log = (run / "log.txt").read_text()
    assert str(bad) in log and "Traceback" in log and "--skip_bad_frames" in log and "--resume auto" in log


def test_skip_bad_frames_skips_counts_and_names(data, tmp_path):
    bad = _first_training_image(data)
    _corrupt(bad)
    run = tmp_path / "run"
    out = _train(data, run, "--labeled_datasets", "DAVIS-2016", "--skip_bad_frames", "--max_steps_per_epoch", "2",
                 "--epochs", "2")
    assert "skipped" in out and load_checkpoint(run / "checkpoint_last.pth")["epoch"] == 1
    log = (run / "log.txt").read_text()
    assert log.count(f"skipped unreadable training file {bad}") == 1  # named once, however often it is hit
    assert "epoch 0:" in log and " skipped 1" in next(line for line in log.splitlines() if "epoch 0:" in line)


def test_skip_bad_frames_in_validation_leaves_the_frame_out(data, tmp_path):
    label = sorted((data / "FBMS/val/labels").rglob("*.png"))[0]
    _corrupt(label)
    run = tmp_path / "run"
    out = _train(data, run, *VAL, "--skip_bad_frames")
    assert out["val_skipped"] == 1 and out["val_J"] == out["val_J"]  # counted; J still a number
    assert f"skipped unreadable validation file {label}" in (run / "log.txt").read_text()


def test_skipped_training_sample_is_deterministic(data):
    bad = _first_training_image(data)
    _corrupt(bad)
    ds = FrameDataset(data, ["DAVIS-2016"], "labeled", "train", (64, 96), skip_bad=True)
    i = next(k for k, (v, f) in enumerate(ds.items) if ds.videos[v].image_paths[f] == bad)
    a, b = ds[i], ds[i]
    assert [p for p, _ in a["skipped"]] == [str(bad)] and torch.equal(a["image"], b["image"])
    assert a["frame"] == ds.items[(i + 1) % len(ds)][1]  # the next sample stands in


# Case 7: the authors' command lines -------------------------------------------------------------
AUTHORS = {  # the original README's command lines, script arguments as written
    "stage1": (unlabeled_train, "--epochs 30 --data_dir /your/data/path --pretrained /your/pretrained/path --sync-bn"),
    "stage2": (unlabeled_train, "--epochs 25 --data_dir /your/data/path --labeled_datasets DAVIS-2016 --pretrained "
                                "/your/pretrained/path --finetune /your/first_stage/path --sync-bn"),
    "online": (online_finetuning, "--epochs 10 --data_dir /your/data/path --pretrained /your/pretrained/path "
                                  "--weight /your/trained/weight --sync-bn"),
    "test": (test_script, "--data_dir /your/data/path --save_dir /save/reuslts/path --weights "
                          "/your/final/weight/path"),
}


@pytest.mark.parametrize("launcher", ["torchrun", "--local_rank=1", "--local-rank=1"])
@pytest.mark.parametrize("name", sorted(AUTHORS))
def test_authors_command_lines_parse(name, launcher):
    module, line = AUTHORS[name]
    argv = shlex.split(line)
    if launcher != "torchrun":  # python -m torch.distributed.launch puts it first
        argv = [launcher, *argv]
    args = parse_with_config(module.get_parser(), argv)
    assert args.data_dir == "/your/data/path"
    assert args.local_rank == (None if launcher == "torchrun" else 1)
    if name in ("stage1", "stage2", "online"):
        assert args.pretrained == "/your/pretrained/path" and args.sync_bn
    if name == "stage1":
        assert args.epochs == 30 and default_output_dir(args) == "runs/stage1"
    if name == "stage2":
        assert args.finetune == "/your/first_stage/path" and default_output_dir(args) == "runs/stage2"
    if name == "online":
        assert args.weights == ["/your/trained/weight"] and args.epochs == 10
    if name == "test":
        assert args.weights == ["/your/final/weight/path"] and args.save_dir == "/save/reuslts/path"


def test_unused_options_reported_in_one_warning(caplog):
    args = parse_with_config(online_finetuning.get_parser(), shlex.split(AUTHORS["online"][1]))
    with caplog.at_level(logging.WARNING):
        assert report_ignored_options(args, "online_finetuning.py") == ["--pretrained /your/pretrained/path",
                                                                        "--sync-bn"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "--pretrained" in warnings[0].getMessage() and "--sync-bn" in warnings[0].getMessage()
    caplog.clear()
    args = parse_with_config(test_script.get_parser(), shlex.split(AUTHORS["test"][1]))
    assert report_ignored_options(args, "test.py") == [] and not caplog.records


def test_trainer_api_keeps_explicit_output_dir(synthetic_dir, tmp_path):
    args = unlabeled_train.get_parser().parse_args(["--data_dir", str(synthetic_dir), "--output_dir",
                                                    str(tmp_path / "x"), *TINY])
    tr = OfflineTrainer(args)
    assert tr.run_dir == tmp_path / "x" and (tmp_path / "x/args.yaml").is_file()


def test_no_random_init_warning_with_pretrained_or_when_resuming_such_a_run(synthetic_dir, tmp_path):
    import timm
    weights = tmp_path / "mobilevit_xxs.pth"
    torch.save(timm.create_model("mobilevit_xxs", pretrained=False).state_dict(), weights)  # stands in for ImageNet
    run = tmp_path / "run"
    _train(synthetic_dir, run, "--pretrained", str(weights))
    _train(synthetic_dir, run, "--resume", "auto", "--epochs", "2")  # weights from the checkpoint, not random
    log = (run / "log.txt").read_text()
    assert RANDOM_INIT_WARNING not in log and "resumed" in log
