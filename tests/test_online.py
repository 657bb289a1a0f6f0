"""Online self-tuning: no ground truth read, epochs 0 == test.py, EMA, TTA, modes, resume; its typed
config, and a tuner that leaves the caller's logging as it found it."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import online_finetuning
import test as test_script
from engine.inference import predict_probs
from engine.online import OnlineTuner, ema_update
from engine.online_config import ENTRY_ONLY_OPTIONS, OnlineConfig
from engine.tta import rescaled_size, tta_probs
from models import build_model, model_config
from utils.checkpoint import save_checkpoint
from utils.config import parse_with_config

# These tests exercise the per-step path (the defaults' cached targets: tests/test_pseudo_labels.py).
PER_STEP = ["--targets", "per_step", "--temporal", "--write_temporal", "--predict_with", "teacher", "--epochs", "2",
            "--lambda_adv", "1e-4"]
BASE = ["--size", "64", "96", "--workers", "0", "--no_tensorboard", "--batch_size", "2", "--lr", "1e-4", *PER_STEP]


@pytest.fixture
def davis_copy(synthetic_dir, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(synthetic_dir / "DAVIS-2016" / "val", dst / "DAVIS-2016" / "val",
                    ignore=shutil.ignore_patterns("flows_exact"))
    return dst


def _masks(root):
    return {p.relative_to(root): np.asarray(Image.open(p)) for p in sorted(root.rglob("*.png"))}


def test_epochs_zero_equals_test_py(ckpt, davis_copy, tmp_path):
    test_script.main(["--weights", str(ckpt), "--data_dir", str(davis_copy), "--test_datasets", "DAVIS-2016",
                      "--size", "64", "96", "--workers", "0", "--save_dir", str(tmp_path / "test")])
    online_finetuning.main(["--weights", str(ckpt), "--data_dir", str(davis_copy), "--test_datasets", "DAVIS-2016",
                            *BASE, "--epochs", "0", "--save_dir", str(tmp_path / "online"),
                            "--output_dir", str(tmp_path / "run")])
    a, b = _masks(tmp_path / "test"), _masks(tmp_path / "online")
    assert a.keys() == b.keys() and len(a) == 4 * 20
    assert all(np.array_equal(a[k], b[k]) for k in a)
    log = (tmp_path / "run" / "log.txt").read_text()  # and the closing line does not claim any tuning
    assert "online per_video: --epochs 0, nothing tuned: the offline model's masks of 4 video(s) written" in log


@pytest.mark.parametrize("mode", ["per_video", "transductive"])
def test_write_temporal_with_zero_epochs_equals_test_py_temporal(ckpt, davis_copy, tmp_path, mode):
    """``--write_temporal 1`` writes what ``test.py --temporal 1`` writes from the same network, so
    the fusion is the same code path on both sides of an offline/online comparison."""
    common = ["--weights", str(ckpt), "--data_dir", str(davis_copy), "--test_datasets", "DAVIS-2016", "--size", "64",
              "96", "--workers", "0", "--flip", "--videos", "davis000", "davis002"]
    test_script.main([*common, "--temporal", "1", "--save_dir", str(tmp_path / "test")])
    test_script.main([*common, "--save_dir", str(tmp_path / "plain")])
    online_finetuning.main([*common, *BASE, "--epochs", "0", "--mode", mode, "--write_temporal", "1",
                            "--save_dir", str(tmp_path / "online"), "--output_dir", str(tmp_path / "run")])
    a, b, plain = _masks(tmp_path / "test"), _masks(tmp_path / "online"), _masks(tmp_path / "plain")
    assert a.keys() == b.keys() == plain.keys() and len(a) == 2 * 20
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], plain[k]) for k in a)  # the fusion changed something


def test_never_reads_ground_truth(ckpt, davis_copy, tmp_path, monkeypatch):
    # Every label file is garbage, and any mask read at all fails the test.
    for p in (davis_copy / "DAVIS-2016/val/labels").rglob("*.png"):
        p.write_bytes(b"not a png")

    def forbidden(path):
        raise AssertionError(f"ground truth opened during online tuning: {path}")

    monkeypatch.setattr("datasets.frames.read_mask", forbidden)
    monkeypatch.setattr("datasets.io.read_mask", forbidden)
    args = ["--weights", str(ckpt), "--data_dir", str(davis_copy), "--test_datasets", "DAVIS-2016", *BASE,
            "--epochs", "1", "--videos", "davis000", "--output_dir", str(tmp_path / "run")]
    online_finetuning.main([*args, "--save_dir", str(tmp_path / "a")])
    assert len(list((tmp_path / "a").rglob("*.png"))) == 20
    # And with the label folder gone entirely.
    shutil.rmtree(davis_copy / "DAVIS-2016/val/labels")
    online_finetuning.main([*args, "--save_dir", str(tmp_path / "b"), "--mode", "transductive"])
    assert len(list((tmp_path / "b").rglob("*.png"))) == 20


def test_tuning_changes_student_and_teacher_follows(ckpt, davis_copy, tmp_path):
    args = online_finetuning.get_parser().parse_args(
        ["--weights", str(ckpt), "--data_dir", str(davis_copy), "--test_datasets", "DAVIS-2016", *BASE,
         "--epochs", "1", "--videos", "davis001", "--output_dir", str(tmp_path / "run"),
         "--save_dir", str(tmp_path / "m"), "--ema", "0.5"])
    tuner = OnlineTuner(OnlineConfig.from_args(args))
    key, idx = next(iter(tuner.data.video_items().items()))
    tuner.tune_video(key, idx, seed=0)
    off = tuner.offline.state_dict()
    stu, tea = tuner.student.state_dict(), tuner.teacher.state_dict()
    k = "decoder.head.1.weight"
    assert not torch.equal(stu[k], off[k]) and not torch.equal(tea[k], off[k])
    # BatchNorm statistics are frozen during tuning.
    bn = "decoder.head.0.1.running_mean"
    assert torch.equal(stu[bn], off[bn])


def test_writing_pass_reuses_the_targets_flows(ckpt, davis_copy, tmp_path):
    """The masks fused over time reuse the flow the targets computed (one DIS pass per video),
    and are the masks a tuner that keeps no flow writes."""
    from engine.temporal import FlowCache

    masks = {}
    for name, room in (("kept", 1 << 30), ("none", 0)):
        args = online_finetuning.get_parser().parse_args(
            ["--weights", str(ckpt), "--data_dir", str(davis_copy), "--test_datasets", "DAVIS-2016", "--size", "64",
             "96", "--workers", "0", "--no_tensorboard", "--batch_size", "2", "--lr", "1e-3", "--videos", "davis000",
             "--confidence", "0.5", "0.5", "--output_dir", str(tmp_path / f"run_{name}"),
             "--save_dir", str(tmp_path / name)])
        tuner = OnlineTuner(OnlineConfig.from_args(args))
        assert tuner.config.targets == "cached" and tuner.config.write_temporal == (1,)
        tuner.flow_cache = FlowCache(room)
        key, idx = next(iter(tuner.data.video_items().items()))
        assert tuner.tune_video(key, idx, seed=0)["passes"] == 1
        assert tuner.flow_cache.computed == (1 if room else 2)
        masks[name] = _masks(tmp_path / name)
    assert len(masks["kept"]) == 20 and masks["kept"].keys() == masks["none"].keys()
    assert all(np.array_equal(masks["kept"][k], masks["none"][k]) for k in masks["kept"])


def test_ema_update_hand_computed():
    t, s = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        t.weight.fill_(1.0)
        s.weight.fill_(0.0)
    ema_update(t, s, 0.9)
    assert torch.allclose(t.weight, torch.full_like(t.weight, 0.9))


def test_tta_views():
    torch.manual_seed(0)
    model = build_model("xxs").eval()
    x, f = torch.rand(1, 3, 64, 96), torch.rand(1, 3, 64, 96)
    g = torch.Generator().manual_seed(0)
    assert torch.allclose(tta_probs(model, x, f, ("identity",), g), predict_probs(model, x, f), atol=1e-6)
    assert torch.allclose(tta_probs(model, x, f, ("identity", "flip"), g), predict_probs(model, x, f, flip=True),
                          atol=1e-6)
    p = tta_probs(model, x, f, ("identity", "flip", "jitter", "scale"), g)
    assert p.shape == (1, 1, 64, 96) and (p >= 0).all() and (p <= 1).all()
    # 240/32 = 7.5 rounds to 8 (256); 427/32 = 13.3 rounds to 13 (416); tiny sizes clamp to 32.
    assert rescaled_size((480, 854), 0.5) == (256, 416) and rescaled_size((64, 96), 0.1) == (32, 32)
    with pytest.raises(ValueError, match="unknown TTA view"):
        tta_probs(model, x, f, ("rotate",), g)


class _ConstantLogits(torch.nn.Module):
    """Logit +4 on the identity view, -1 on the flipped one (flow is ignored)."""

    def forward(self, image: torch.Tensor, flow: torch.Tensor) -> dict:
        flipped = image[..., 0, 0, 0] > 0.5  # the test puts 1 in the left column of the identity view
        val = torch.where(flipped, torch.tensor(-1.0), torch.tensor(4.0)).view(-1, 1, 1, 1)
        return {"logits": val.expand(image.shape[0], 1, *image.shape[-2:])}


def test_tta_average_logits_vs_probs():
    x, f = torch.zeros(1, 3, 4, 6), torch.zeros(1, 3, 4, 6)
    x[..., -1] = 1.0  # after the flip view mirrors it, the left column is 1
    g = torch.Generator().manual_seed(0)
    views = ("identity", "flip")
    probs = tta_probs(_ConstantLogits(), x, f, views, g, average="probs")
    logits = tta_probs(_ConstantLogits(), x, f, views, g, average="logits")
    s = torch.sigmoid
    assert torch.allclose(probs, (s(torch.tensor(4.0)) + s(torch.tensor(-1.0))) / 2 * torch.ones_like(probs))
    assert torch.allclose(logits, s(torch.tensor(1.5)) * torch.ones_like(logits))  # sigmoid((4 - 1) / 2)
    with pytest.raises(ValueError, match="'probs' or 'logits'"):
        tta_probs(_ConstantLogits(), x, f, views, g, average="median")


def test_resume_continues_at_unfinished_video(ckpt, davis_copy, tmp_path, monkeypatch):
    args = ["--weights", str(ckpt), "--data_dir", str(davis_copy), "--test_datasets", "DAVIS-2016", *BASE,
            "--epochs", "1", "--videos", "davis000", "davis001", "davis002", "--output_dir", str(tmp_path / "run"),
            "--save_dir", str(tmp_path / "m")]
    real = OnlineTuner.tune_video
    seen = []

    def crash_on_second(self, key, idx, seed):
        seen.append(key[1])
        if len(seen) == 2:
            raise KeyboardInterrupt("simulated crash")
        return real(self, key, idx, seed)

    monkeypatch.setattr(OnlineTuner, "tune_video", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        online_finetuning.main(args)
    monkeypatch.setattr(OnlineTuner, "tune_video", lambda self, k, i, s: (seen.append(k[1]), real(self, k, i, s))[1])
    online_finetuning.main([*args, "--resume"])
    assert seen == ["davis000", "davis001", "davis001", "davis002"]
    assert len(list((tmp_path / "m").rglob("*.png"))) == 3 * 20


def test_transductive_mode_writes_all(ckpt, davis_copy, tmp_path):
    out = online_finetuning.main(["--weights", str(ckpt), "--data_dir", str(davis_copy), "--test_datasets",
                                  "DAVIS-2016", *BASE, "--epochs", "1", "--mode", "transductive", "--tta", "identity",
                                  "--lambda_adv", "0", "--output_dir", str(tmp_path / "run"),
                                  "--save_dir", str(tmp_path / "m")])
    assert out["frames"] == 80 and len(list((tmp_path / "m").rglob("*.png"))) == 80
    assert (tmp_path / "run/transductive_last.pth").is_file() and (tmp_path / "run/timing.json").is_file()


# --resume reuses a finished video only when its record names the same weights, options,
# inputs and save folder, and its masks are still there unchanged (engine/online_records.py).
def _weights(path, seed):
    torch.manual_seed(seed)
    save_checkpoint(path, {"model": build_model("xxs").state_dict(), "model_config": model_config("xxs")})
    return path


def _resume_args(weights, data, tmp_path, save="m", videos=("davis000", "davis001")):
    return ["--weights", str(weights), "--data_dir", str(data), "--test_datasets", "DAVIS-2016", *BASE,
            "--epochs", "1", "--tta", "identity", "--videos", *videos, "--output_dir", str(tmp_path / "run"),
            "--save_dir", str(tmp_path / save)]


def _run_logged(argv, tmp_path, monkeypatch):
    """Run the online stage; returns (videos tuned, this run's log text)."""
    log = tmp_path / "run" / "log.txt"
    start = log.stat().st_size if log.is_file() else 0
    tuned, real = [], OnlineTuner.tune_video
    monkeypatch.setattr(OnlineTuner, "tune_video", lambda self, k, i, s: (tuned.append(k[1]), real(self, k, i, s))[1])
    online_finetuning.main(argv)
    return tuned, log.read_text()[start:]


def test_resume_into_new_save_dir_retunes(ckpt, davis_copy, tmp_path, monkeypatch):
    # Before: the records of the first run made --resume skip every video, writing no mask.
    online_finetuning.main(_resume_args(ckpt, davis_copy, tmp_path, "m1"))
    tuned, log = _run_logged([*_resume_args(ckpt, davis_copy, tmp_path, "m2"), "--resume"], tmp_path, monkeypatch)
    assert tuned == ["davis000", "davis001"]
    assert "save folder changed" in log and "re-tuning 2 video(s)" in log
    a, b = _masks(tmp_path / "m1"), _masks(tmp_path / "m2")
    assert len(b) == 40 and a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_resume_after_new_weights_retunes(ckpt, davis_copy, tmp_path, monkeypatch):
    # Retraining writes other weights to the same checkpoint path; before, resume kept the old masks.
    w = _weights(tmp_path / "checkpoint_last.pth", 0)
    online_finetuning.main(_resume_args(w, davis_copy, tmp_path))
    old = _masks(tmp_path / "m")
    _weights(w, 1)
    tuned, log = _run_logged([*_resume_args(w, davis_copy, tmp_path), "--resume"], tmp_path, monkeypatch)
    assert tuned == ["davis000", "davis001"] and "weights changed" in log and "re-tuning 2 video(s)" in log
    new = _masks(tmp_path / "m")
    online_finetuning.main([*_resume_args(w, davis_copy, tmp_path / "ref")])  # a fresh run, new weights
    ref = _masks(tmp_path / "ref" / "m")
    assert new.keys() == ref.keys() == old.keys() and all(np.array_equal(new[k], ref[k]) for k in ref)
    assert any(not np.array_equal(new[k], old[k]) for k in old)


def test_resume_same_everything_skips(ckpt, davis_copy, tmp_path, monkeypatch):
    import time
    args = [*_resume_args(ckpt, davis_copy, tmp_path), "--save_prob"]
    t0 = time.perf_counter()
    online_finetuning.main(args)
    first = time.perf_counter() - t0
    files = sorted(tmp_path.glob("m*/**/*.png"))
    before = {p: p.stat().st_mtime_ns for p in files}
    t0 = time.perf_counter()
    tuned, log = _run_logged([*args, "--resume"], tmp_path, monkeypatch)
    assert tuned == [] and time.perf_counter() - t0 < first
    assert len(files) == 80 and {p: p.stat().st_mtime_ns for p in files} == before
    # Not a silent exit: one line says everything was already done.
    assert "all 2 video(s) were already done" in log and "nothing re-tuned" in log


@pytest.mark.parametrize("change", [["--lr", "3e-4"], ["--tta", "identity", "flip"], ["--flip"],
                                    ["--band_weight", "1"]], ids=["lr", "tta", "flip", "band_weight"])
def test_resume_with_changed_option_retunes(ckpt, davis_copy, tmp_path, monkeypatch, change):
    online_finetuning.main(_resume_args(ckpt, davis_copy, tmp_path, videos=("davis000",)))
    tuned, log = _run_logged([*_resume_args(ckpt, davis_copy, tmp_path, videos=("davis000",)), *change, "--resume"],
                             tmp_path, monkeypatch)
    assert tuned == ["davis000"]
    assert "mask-affecting options changed" in log and change[0].lstrip("-") in log
    # Options that cannot change a mask are not a reason to re-tune.
    tuned, log = _run_logged([*_resume_args(ckpt, davis_copy, tmp_path, videos=("davis000",)), *change, "--resume",
                              "--workers", "1", "--no_tensorboard"], tmp_path, monkeypatch)
    assert tuned == [] and "already done" in log


def test_resume_retunes_video_whose_masks_were_deleted(ckpt, davis_copy, tmp_path, monkeypatch):
    online_finetuning.main(_resume_args(ckpt, davis_copy, tmp_path))
    ref = _masks(tmp_path / "m")
    gone = tmp_path / "m/DAVIS-2016/davis001/00007.png"
    gone.unlink()
    tuned, log = _run_logged([*_resume_args(ckpt, davis_copy, tmp_path), "--resume"], tmp_path, monkeypatch)
    assert tuned == ["davis001"] and "masks missing" in log and str(gone) in log
    after = _masks(tmp_path / "m")
    assert after.keys() == ref.keys() and all(np.array_equal(after[k], ref[k]) for k in ref)


def test_resume_retunes_video_whose_masks_another_run_rewrote(ckpt, davis_copy, tmp_path, monkeypatch):
    # Another run (other weights, its own run folder) wrote into the same save folder.
    online_finetuning.main(_resume_args(ckpt, davis_copy, tmp_path, videos=("davis000",)))
    other = _weights(tmp_path / "other.pth", 1)
    online_finetuning.main(["--weights", str(other), *_resume_args(ckpt, davis_copy, tmp_path / "o",
                                                                   videos=("davis000",))[2:-2],
                            "--save_dir", str(tmp_path / "m")])
    tuned, log = _run_logged([*_resume_args(ckpt, davis_copy, tmp_path, videos=("davis000",)), "--resume"],
                             tmp_path, monkeypatch)
    assert tuned == ["davis000"] and "masks rewritten by something else" in log


def test_transductive_resume_keyed_by_weights(ckpt, davis_copy, tmp_path, monkeypatch):
    # Before: the state of the old weights was loaded at its last epoch and its masks written.
    w = _weights(tmp_path / "w.pth", 0)
    extra = ["--mode", "transductive"]
    args = [*_resume_args(w, davis_copy, tmp_path, videos=("davis000",)), *extra]
    online_finetuning.main(args)
    _weights(w, 1)
    _, log = _run_logged([*args, "--resume"], tmp_path, monkeypatch)
    assert "weights changed" in log and "tuning the 1 videos from the offline weights again" in log
    new = _masks(tmp_path / "m")
    online_finetuning.main([*_resume_args(w, davis_copy, tmp_path / "ref", videos=("davis000",)), *extra])
    ref = _masks(tmp_path / "ref" / "m")
    assert len(ref) == 20 and new.keys() == ref.keys() and all(np.array_equal(new[k], ref[k]) for k in ref)
    # Same everything: the finished state is reused, nothing is tuned again.
    _, log = _run_logged([*args, "--resume"], tmp_path, monkeypatch)
    assert "tuning was finished: nothing to tune" in log


# The typed config ----------------------------------------------------------------------------
def test_config_defaults_are_the_command_line_defaults():
    parser = online_finetuning.get_parser()
    assert OnlineConfig.from_args(parser.parse_args(["--weights", "w.pth"])) == OnlineConfig(weights=("w.pth",))
    # Every option of the script is a field, but for those the entry point keeps for itself.
    dests = {a.dest for a in parser._actions} - {"help"}
    fields = {f.name for f in dataclasses.fields(OnlineConfig)}
    assert fields <= dests and dests - fields == set(ENTRY_ONLY_OPTIONS)


def test_defaults_are_the_held_out_recipe():
    parser = online_finetuning.get_parser()
    c = OnlineConfig.from_args(parser.parse_args(["--weights", "w.pth"]))
    # The setting chosen on held-out DAVIS train sequences (benchmarks/RESULTS.md).
    assert (c.mode, c.epochs, c.lr, c.targets, c.temporal, c.confidence) == ("per_video", 1, 1e-4, "cached", (1,),
                                                                              (0.1, 0.9))
    assert (c.predict_with, c.lambda_adv, c.min_cover, c.motion_veto) == ("student", 0.0, 0.3, 0.25)
    assert c.write_temporal == (1,)  # the masks are fused over time as test.py --temporal 1 fuses them
    assert (c.band_weight, c.band_share) == ("auto", (0.2, 0.4))  # the band's weight read per video
    # Retired choices are refused (benchmarks/RESULTS.md, "Retired options").
    for retired in (["--mode", "causal"], ["--targets", "auto"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["--weights", "w", *retired])
    # The authors' preset keeps their per-step targets and the teacher writing the masks.
    a = OnlineConfig.from_args(parse_with_config(parser, ["--weights", "w", "--preset", "authors"]))
    assert (a.targets, a.predict_with, a.lr, a.epochs, a.lambda_adv, a.write_temporal) == (
        "per_step", "teacher", 1e-5, 10, 1e-4, ())


def test_config_normalises_and_refuses():
    c = OnlineConfig(weights="w.pth", size=[64, 96], data_dir=Path("d"), tta=["identity"], videos=["v"])
    assert (c.weights, c.size, c.data_dir, c.tta, c.videos) == (("w.pth",), (64, 96), "d", ("identity",), ("v",))
    assert c.to_dict()["size"] == [64, 96] and c.to_dict()["weights"] == ["w.pth"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.lr = 1.0
    with pytest.raises(ValueError, match="--epochs must be >= 0"):
        OnlineConfig(weights=("w",), epochs=-1)
    for retired in ({"mode": "causal"}, {"targets": "auto"}):  # benchmarks/RESULTS.md, "Retired options"
        with pytest.raises(ValueError, match=f"--{next(iter(retired))} must be one of"):
            OnlineConfig(weights=("w",), **retired)
    for bad in (-1.0, "half"):
        with pytest.raises(ValueError, match="--band_weight must be a weight >= 0 or 'auto'"):
            OnlineConfig(weights=("w",), band_weight=bad)
    with pytest.raises(ValueError, match="--band_share LO HI needs 0 <= LO < HI <= 1"):
        OnlineConfig(weights=("w",), band_share=(0.4, 0.2))
    with pytest.raises(SystemExit):  # neither a number nor auto
        online_finetuning.get_parser().parse_args(["--weights", "w", "--band_weight", "half"])
    assert online_finetuning.get_parser().parse_args(["--weights", "w", "--band_weight", "0.5"]).band_weight == 0.5
    with pytest.raises(ValueError, match="lack .*'lr'"):
        OnlineConfig.from_args(argparse.Namespace(weights=["w"]))


def test_args_yaml_reads_back_as_the_same_config(ckpt, davis_copy, tmp_path):
    argv = ["--weights", str(ckpt), "--data_dir", str(davis_copy), *BASE, "--preset", "authors", "--test_datasets",
            "DAVIS-2016", "--videos", "davis000", "--epochs", "1", "--output_dir", str(tmp_path / "run"),
            "--save_dir", str(tmp_path / "m")]
    config = OnlineConfig.from_args(parse_with_config(online_finetuning.get_parser(), argv))
    OnlineTuner(config)  # writes args.yaml once the weights and data are checked
    saved = tmp_path / "run/args.yaml"
    again = parse_with_config(online_finetuning.get_parser(), ["--weights", str(ckpt), "--config", str(saved)])
    assert OnlineConfig.from_args(again) == config and config.preset == "authors" and config.mode == "transductive"


def test_tuner_leaves_logging_as_it_found_it(ckpt, davis_copy, tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    config = OnlineConfig(weights=(str(ckpt),), data_dir=str(davis_copy), test_datasets=("DAVIS-2016",),
                          videos=("davis000",), size=(64, 96), workers=0, epochs=1, lr=1e-4, tta=("identity",),
                          no_tensorboard=True, save_dir=str(tmp_path / "m"), output_dir=str(tmp_path / "run"))
    tuner = OnlineTuner(config)
    assert (list(root.handlers), root.level) == before
    tuner.run()
    assert (list(root.handlers), root.level) == before
    log = (tmp_path / "run/log.txt").read_text()
    # The run's records, those of its start (before run() opened the file) included, reach its log.
    assert "test set: 20 frames from 1 videos" in log and "reused 0 finished earlier" in log  # the closing summary
    assert "test set: 20 frames" in caplog.text  # and the caller's handlers saw them too
    # A failing run takes its handler off as well, and closes the file.

    def fail(self):
        logging.getLogger("engine.online").info("about to fail")
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(OnlineTuner, "_tune_all", fail)
    with pytest.raises(RuntimeError, match="simulated"):
        OnlineTuner(dataclasses.replace(config, output_dir=str(tmp_path / "run2"))).run()
    assert (list(root.handlers), root.level) == before
    assert "about to fail" in (tmp_path / "run2/log.txt").read_text()



@pytest.mark.parametrize("share_range, weight", [((0.6, 0.7), 0.0), ((0.3, 0.4), 1.0), ((0.4, 0.6), 0.5)],
                         ids=["below", "above", "between"])
def test_band_weight_auto_takes_the_weight_the_videos_band_share_gives(ckpt, davis_copy, tmp_path, monkeypatch,
                                                                      caplog, share_range, weight):
    """``--band_weight auto`` keeps each video's weight, read from its band share on the ramp,
    with its targets, and a step learns exactly as with that fixed weight."""
    import engine.online
    from engine.pseudo_labels import hard_labels

    # Targets of one 20-frame video: a left third of background labels, a middle band, a right
    # third of object labels (the test checkpoint's own probabilities are all near 0.5).
    prob = torch.linspace(0.0, 1.0, 96).expand(20, 1, 64, 96).contiguous()
    monkeypatch.setattr(engine.online, "build_targets", lambda *a, **k: (prob, hard_labels(prob, 0.1, 0.9)))
    monkeypatch.setattr(engine.online, "band_share", lambda p, lo, hi: 0.5)
    caplog.set_level(logging.INFO, logger="engine.online")

    def first_step_loss(name: str, *extra: str) -> tuple[torch.Tensor, OnlineTuner]:
        args = online_finetuning.get_parser().parse_args(
            ["--weights", str(ckpt), "--data_dir", str(davis_copy), "--test_datasets", "DAVIS-2016", "--size", "64",
             "96", "--workers", "0", "--no_tensorboard", "--videos", "davis000", "--min_cover", "0", *extra,
             "--output_dir", str(tmp_path / f"run_{name}"), "--save_dir", str(tmp_path / name)])
        tuner = OnlineTuner(OnlineConfig.from_args(args))
        key, idx = next(iter(tuner.data.video_items().items()))
        tuner._fresh(seed=0)
        assert tuner.make_targets(idx) and len(tuner.targets) == 20
        return tuner.step_cached(next(iter(tuner._loader(idx[:2], None))))["loss"], tuner

    auto, tuner = first_step_loss("auto", "--band_weight", "auto", "--band_share", *map(str, share_range))
    assert [w for _, _, w in tuner.targets.values()] == pytest.approx([weight] * 20)
    assert f"davis000: 50.0% of the pixels between the --confidence thresholds: band weight {weight:.2f}" in caplog.text
    fixed = {w: first_step_loss(f"w{w}", "--band_weight", str(w))[0] for w in (0.0, weight, 1.0)}
    assert torch.equal(auto, fixed[weight])
    assert fixed[1.0] > fixed[0.0]  # the band term is there to be weighed
