"""Online self-tuning: no ground truth read, epochs 0 == test.py, EMA, TTA, modes, resume."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import online_finetuning
import test as test_script
from engine.inference import predict_probs
from engine.online import OnlineTuner, ema_update
from engine.tta import rescaled_size, tta_probs
from models import build_model, model_config
from utils.checkpoint import save_checkpoint

BASE = ["--size", "64", "96", "--workers", "0", "--no_tensorboard", "--batch_size", "2", "--lr", "1e-4"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("online_ckpt") / "xxs.pth"
    save_checkpoint(path, {"model": build_model("xxs").state_dict(), "model_config": model_config("xxs")})
    return path


@pytest.fixture
def davis_copy(synthetic_dir, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(synthetic_dir / "DAVIS-2016" / "val", dst / "DAVIS-2016" / "val",
                    ignore=shutil.ignore_patterns("flows_exact"))
    return dst


def _masks(root):
    return {p.relative_to(root): np.asarray(Image.open(p)) for p in sorted(root.rglob("*.png"))}


@pytest.mark.parametrize("mode", ["per_video", "causal"])
def test_epochs_zero_equals_test_py(ckpt, davis_copy, tmp_path, mode):
    test_script.main(["--weights", str(ckpt), "--data_dir", str(davis_copy), "--test_datasets", "DAVIS-2016",
                      "--size", "64", "96", "--workers", "0", "--save_dir", str(tmp_path / "test")])
    online_finetuning.main(["--weights", str(ckpt), "--data_dir", str(davis_copy), "--test_datasets", "DAVIS-2016",
                            *BASE, "--epochs", "0", "--mode", mode, "--save_dir", str(tmp_path / "online"),
                            "--output_dir", str(tmp_path / "run")])
    a, b = _masks(tmp_path / "test"), _masks(tmp_path / "online")
    assert a.keys() == b.keys() and len(a) == 4 * 20
    assert all(np.array_equal(a[k], b[k]) for k in a)


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
    online_finetuning.main([*args, "--save_dir", str(tmp_path / "b"), "--mode", "causal"])
    assert len(list((tmp_path / "b").rglob("*.png"))) == 20


def test_tuning_changes_student_and_teacher_follows(ckpt, davis_copy, tmp_path):
    args = online_finetuning.get_parser().parse_args(
        ["--weights", str(ckpt), "--data_dir", str(davis_copy), "--test_datasets", "DAVIS-2016", *BASE,
         "--epochs", "1", "--videos", "davis001", "--output_dir", str(tmp_path / "run"),
         "--save_dir", str(tmp_path / "m"), "--ema", "0.5"])
    tuner = OnlineTuner(args)
    key, idx = next(iter(tuner.data.video_items().items()))
    tuner.tune_video(key, idx, seed=0)
    off = tuner.offline.state_dict()
    stu, tea = tuner.student.state_dict(), tuner.teacher.state_dict()
    k = "decoder.head.1.weight"
    assert not torch.equal(stu[k], off[k]) and not torch.equal(tea[k], off[k])
    # BatchNorm statistics are frozen during tuning.
    bn = "decoder.head.0.1.running_mean"
    assert torch.equal(stu[bn], off[bn])


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
