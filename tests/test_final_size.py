"""--final_size / --final_epochs: the last epochs of an offline training at another crop size."""
from __future__ import annotations

import logging
import shlex

import pytest
import torch

import unlabeled_train
from engine.offline import OfflineTrainer, check_final_size, train_size
from segment_video.pipeline import training_size
from tests.training_runs import run_killed_at_step
from utils.checkpoint import load_checkpoint

SIZE, FINAL = (64, 96), (80, 128)
SMALL = ["--model_scale", "xxs", "--size", *map(str, SIZE), "--batch_size", "2", "--workers", "0",
         "--max_steps_per_epoch", "3", "--no_tensorboard", "--val_every", "0", "--lr", "1e-3", "--epochs", "2"]
FINAL_ARGS = ["--final_epochs", "1", "--final_size", *map(str, FINAL)]


def _argv(data, out, *extra):
    return ["--data_dir", str(data), "--output_dir", str(out), *SMALL, *extra]


class _Messages(logging.Handler):
    """The messages of one logger, on the logger itself: the trainer's setup_logging replaces the
    root's handlers (caplog's among them)."""

    def __init__(self, name: str):
        super().__init__(logging.INFO)
        self.logger, self.messages = logging.getLogger(name), []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        self.level = self.logger.level
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)
        self.logger.setLevel(self.level)


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _record_sizes(monkeypatch) -> dict[int, list]:
    """Epoch -> the (H, W) of every labeled, mask and unlabeled batch the trainer steps on."""
    seen: dict[int, list] = {}
    real_step, real_unlabeled = OfflineTrainer.step, OfflineTrainer._unlabeled_batches

    def step(self, batch, unl):
        epoch = int(self._where.rsplit(" ", 1)[1])  # "training of epoch E"
        seen.setdefault(epoch, []).append(("labeled", tuple(batch["image"].shape[-2:])))
        seen[epoch].append(("flow", tuple(batch["flow"].shape[-2:])))
        seen[epoch].append(("mask", tuple(batch["mask"].shape[-2:])))
        return real_step(self, batch, unl)

    def unlabeled_batches(self, epoch):
        for b in real_unlabeled(self, epoch):
            seen.setdefault(epoch, []).append(("unlabeled", tuple(b["image"].shape[-2:])))
            yield b

    monkeypatch.setattr(OfflineTrainer, "step", step)
    monkeypatch.setattr(OfflineTrainer, "_unlabeled_batches", unlabeled_batches)
    return seen


def test_last_epoch_trains_at_the_final_size(synthetic_dir, tmp_path, monkeypatch):
    """Epoch 0 at --size, epoch 1 at --final_size: labeled and unlabeled batches, also from a
    loader worker process (the size reaches the workers); the checkpoint records the final size."""
    seen = _record_sizes(monkeypatch)
    with _Messages("engine.offline") as log:
        unlabeled_train.main(_argv(synthetic_dir, tmp_path / "r", *FINAL_ARGS, "--workers", "1"))
    kinds = {k for k, _ in seen[0]}
    assert kinds == {"labeled", "flow", "mask", "unlabeled"}  # the adversarial term is on: both sets
    assert {hw for _, hw in seen[0]} == {SIZE} and len(seen[0]) == 3 * 4
    assert {hw for _, hw in seen[1]} == {FINAL} and len(seen[1]) == 3 * 4
    switches = [m for m in log.messages if "from here" in m]
    assert switches == [f"epoch 1: training at {FINAL[0]}x{FINAL[1]} from here (--final_size, the last 1 epochs)"]
    ckpt = load_checkpoint(tmp_path / "r" / "checkpoint_last.pth")
    assert ckpt["train_size"] == list(FINAL) and ckpt["epoch"] == 1
    assert list(ckpt["args"]["size"]) == list(SIZE)  # the options stay as given (resume, --config)
    assert training_size(tmp_path / "r" / "checkpoint_last.pth") == FINAL


def test_resume_after_epoch_0_matches_uninterrupted(synthetic_dir, tmp_path, monkeypatch):
    """Killed in epoch 1, resumed from epoch 0's checkpoint: the resumed epoch trains at the final
    size, and the weights equal the uninterrupted run's bit for bit."""
    unlabeled_train.main(_argv(synthetic_dir, tmp_path / "full", *FINAL_ARGS))
    run_killed_at_step(monkeypatch, _argv(synthetic_dir, tmp_path / "cut", *FINAL_ARGS), 5)  # epoch 1, step 2
    cut_ckpt = load_checkpoint(tmp_path / "cut" / "checkpoint_last.pth")
    assert cut_ckpt["epoch"] == 0 and cut_ckpt["train_size"] == list(SIZE)

    seen = _record_sizes(monkeypatch)
    with _Messages("engine.offline") as log:
        unlabeled_train.main(_argv(synthetic_dir, tmp_path / "cut", *FINAL_ARGS, "--resume", "auto"))
    assert list(seen) == [1] and {hw for _, hw in seen[1]} == {FINAL}
    assert any(m.startswith("epoch 1: training at 80x128 from here") for m in log.messages)
    full, cut = (load_checkpoint(tmp_path / x / "checkpoint_last.pth") for x in ("full", "cut"))
    assert _same(full["model"], cut["model"]) and _same(full["discriminator"], cut["discriminator"])
    assert full["opt_g"]["state"].keys() == cut["opt_g"]["state"].keys()
    assert all(torch.equal(full["opt_g"]["state"][k]["exp_avg"], cut["opt_g"]["state"][k]["exp_avg"])
               for k in full["opt_g"]["state"])
    assert cut["epoch"] == 1 and cut["train_size"] == full["train_size"] == list(FINAL)


@pytest.mark.parametrize("extra, match", [
    (["--final_size", "80", "128"], r"--final_size 80 128 needs --final_epochs N > 0"),
    (["--final_epochs", "1"], r"--final_epochs 1 needs --final_size H W"),
    (["--final_epochs", "3", "--final_size", "80", "128"], r"--final_epochs 3 must be in \[0, --epochs 2\]"),
    (["--final_epochs", "-1", "--final_size", "80", "128"], r"--final_epochs -1 must be in \[0, --epochs 2\]"),
    (["--final_epochs", "1", "--final_size", "0", "128"], r"--final_size \[0, 128\] must be two positive integers"),
    (["--final_epochs", "1", "--final_size", "80", "-8"], r"--final_size \[80, -8\] must be two positive integers"),
])
def test_bad_values_are_refused_naming_the_option(tmp_path, extra, match):
    out = tmp_path / "r"  # checked before the data, weights or run folder are looked at
    args = unlabeled_train.get_parser().parse_args(_argv(tmp_path / "no_data", out, *extra))
    with pytest.raises(ValueError, match=match):
        OfflineTrainer(args)
    assert not out.exists()  # refused before anything is written


def test_bad_values_from_a_config_file_are_refused(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("final_size: [80, 0]\nfinal_epochs: 1\n")
    with pytest.raises(ValueError, match=r"--final_size \[80, 0\] must be two positive integers"):
        unlabeled_train.main(_argv(tmp_path / "no_data", tmp_path / "r", "--config", str(cfg)))
    assert not (tmp_path / "r").exists()


def test_defaults_are_off_and_unchanged(synthetic_dir, tmp_path, monkeypatch):
    """Without the options every batch is at --size; the trainer's per-epoch size call changes
    nothing: the weights equal those of a run with it disabled (the code before the option)."""
    args = unlabeled_train.get_parser().parse_args(_argv(synthetic_dir, tmp_path / "x"))
    assert args.final_size is None and args.final_epochs == 0
    check_final_size(args)
    assert [train_size(args, e) for e in range(2)] == [SIZE, SIZE]

    seen = _record_sizes(monkeypatch)
    unlabeled_train.main(_argv(synthetic_dir, tmp_path / "a"))
    assert sorted(seen) == [0, 1] and {hw for e in seen for _, hw in seen[e]} == {SIZE}
    monkeypatch.undo()

    monkeypatch.setattr(OfflineTrainer, "_set_train_size", lambda self, epoch: None)
    unlabeled_train.main(_argv(synthetic_dir, tmp_path / "b"))
    monkeypatch.undo()
    a, b = (load_checkpoint(tmp_path / x / "checkpoint_last.pth") for x in "ab")
    assert _same(a["model"], b["model"]) and _same(a["discriminator"], b["discriminator"])
    assert a["train_size"] == list(SIZE)


def test_train_size_of_runs_before_the_option():
    """A checkpoint's options from before the option (no final_epochs) give --size every epoch,
    and a checkpoint without train_size falls back to its options' size."""
    from argparse import Namespace

    assert train_size(Namespace(size=[96, 160], epochs=3), 2) == (96, 160)
    args = Namespace(size=[96, 160], epochs=3, final_epochs=2, final_size=[128, 224])
    assert [train_size(args, e) for e in range(3)] == [(96, 160), (128, 224), (128, 224)]


def test_davis_real_passes_the_options_through_train_args(tmp_path, monkeypatch):
    """benchmarks/davis_real.py appends --train_args to the trainer's argv: the screen's command
    trains its last epoch at the test size."""
    from benchmarks import davis_real

    captured = {}

    class Stop(Exception):
        pass

    def fake_main(argv):
        captured["argv"] = argv
        raise Stop

    monkeypatch.setattr(davis_real, "prepare", lambda *a, **k: {})
    monkeypatch.setattr(unlabeled_train, "main", fake_main)
    a = davis_real.get_parser().parse_args([
        "--out_dir", str(tmp_path), "--eval", "holdout", "--fold", "1", "--online", "",
        "--train_args=--no_decay_norm_bias --warmup_steps 30 --ema_decay 0.999 --final_epochs 1 --final_size 320 576"])
    a.argv = []
    with pytest.raises(Stop):
        davis_real.run(a)
    argv = captured["argv"]
    assert argv[-10:] == shlex.split(a.train_args)
    args = unlabeled_train.get_parser().parse_args(argv)
    check_final_size(args)
    assert args.epochs == 8 and args.final_epochs == 1 and args.final_size == [320, 576]
    assert [train_size(args, e) for e in (0, 6, 7)] == [(256, 448), (256, 448), (320, 576)]
