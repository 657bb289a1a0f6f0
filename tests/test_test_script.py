"""test.py writes one 0/255 mask per frame at the original size (synthetic data and DAVIS)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import test as test_script
from models import build_model, model_config
from utils.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def xxs_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "xxs.pth"
    save_checkpoint(path, {"model": build_model("xxs").state_dict(), "model_config": model_config("xxs")})
    return path


def _check_outputs(pred_root, images_root, dataset, expect_prob_root=None):
    n = 0
    for vid in sorted(p for p in images_root.iterdir() if p.is_dir()):
        for img in sorted(vid.glob("*.jpg")):
            out = pred_root / dataset / vid.name / f"{img.stem}.png"
            assert out.is_file(), out
            with Image.open(img) as a, Image.open(out) as b:
                assert b.size == a.size and b.mode == "L"
                assert set(np.unique(np.asarray(b))) <= {0, 255}
            if expect_prob_root is not None:
                assert (expect_prob_root / dataset / vid.name / f"{img.stem}.png").is_file()
            n += 1
    return n


def test_writes_masks_on_synthetic(synthetic_dir, xxs_checkpoint, tmp_path):
    out = tmp_path / "masks"
    test_script.main(["--weights", str(xxs_checkpoint), "--data_dir", str(synthetic_dir), "--test_datasets",
                      "DAVIS-2016", "FBMS", "--size", "64", "96", "--save_dir", str(out), "--save_prob", "--flip",
                      "--workers", "0", "--batch_size", "3"])
    n = _check_outputs(out, synthetic_dir / "DAVIS-2016/val/images", "DAVIS-2016", tmp_path / "masks_prob")
    n += _check_outputs(out, synthetic_dir / "FBMS/val/images", "FBMS", tmp_path / "masks_prob")
    assert n == 4 * 20 + 3 * 20
    assert len(list(out.rglob("*.png"))) == n  # nothing extra


def test_oast3d_checkpoint_on_synthetic(synthetic_dir, tmp_path):
    """``test.py --arch oast3d`` writes a mask per frame from an oast3d checkpoint (input padded to 64)."""
    from models import build_model
    from utils.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_model("xxs", arch="oast3d")
    ckpt = tmp_path / "oast3d.pth"
    save_checkpoint(ckpt, {"model": model.state_dict(), "model_config": model.config})
    out = tmp_path / "masks"
    test_script.main(["--weights", str(ckpt), "--arch", "oast3d", "--data_dir", str(synthetic_dir), "--test_datasets",
                      "DAVIS-2016", "--size", "96", "160", "--workers", "0", "--save_dir", str(out)])
    frames = sorted((synthetic_dir / "DAVIS-2016/val/images").rglob("*.jpg"))
    masks = sorted(out.rglob("*.png"))
    assert len(masks) == len(frames) > 0
    with pytest.raises(ValueError, match="arch='oast3d', not --arch two_stream"):
        test_script.main(["--weights", str(ckpt), "--arch", "two_stream", "--data_dir", str(synthetic_dir),
                          "--save_dir", str(tmp_path / "other")])


def test_wrong_scale_fails_clearly(synthetic_dir, xxs_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="model_scale='xxs'"):
        test_script.main(["--weights", str(xxs_checkpoint), "--model_scale", "s", "--data_dir", str(synthetic_dir),
                          "--save_dir", str(tmp_path), "--workers", "0"])


def test_missing_weights_file(synthetic_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        test_script.main(["--weights", str(tmp_path / "missing.pth"), "--data_dir", str(synthetic_dir)])


def test_on_shared_davis(davis_root, xxs_checkpoint, tmp_path):
    """A few real 854x480 frames (white = zero-motion flow, only the writer is under test)."""
    seq = "blackswan"
    root = tmp_path / "data/DAVIS-2016/val"
    (root / "images" / seq).mkdir(parents=True)
    (root / "flows" / seq).mkdir(parents=True)
    frames = sorted((davis_root / "JPEGImages/480p" / seq).glob("*.jpg"))[:3]
    for f in frames:
        (root / "images" / seq / f.name).symlink_to(f)
        with Image.open(f) as im:
            Image.new("RGB", im.size, (255, 255, 255)).save(root / "flows" / seq / f.name)
    out = tmp_path / "masks"
    test_script.main(["--weights", str(xxs_checkpoint), "--data_dir", str(tmp_path / "data"), "--test_datasets",
                      "DAVIS-2016", "--save_dir", str(out), "--workers", "0"])
    assert _check_outputs(out, root / "images", "DAVIS-2016") == 3
    with Image.open(out / "DAVIS-2016" / seq / f"{frames[0].stem}.png") as m:
        assert m.size == (854, 480)


def test_scales(synthetic_dir, xxs_checkpoint, tmp_path):
    """``--scales``: the test size alone is test.py's own path bit for bit; other sizes change the
    probabilities, and masks stay one per frame at the original size."""
    base = ["--weights", str(xxs_checkpoint), "--data_dir", str(synthetic_dir), "--test_datasets", "DAVIS-2016",
            "--size", "64", "96", "--flip", "--workers", "0", "--videos", "davis000", "--save_prob"]
    test_script.main([*base, "--save_dir", str(tmp_path / "plain")])
    test_script.main([*base, "--save_dir", str(tmp_path / "one"), "--scales", "1", "1"])
    test_script.main([*base, "--save_dir", str(tmp_path / "two"), "--scales", "1", "1.5"])

    def read(root):
        return {p.relative_to(root): np.asarray(Image.open(p)) for p in sorted(root.rglob("*.png"))}

    plain, one, two = read(tmp_path / "plain_prob"), read(tmp_path / "one_prob"), read(tmp_path / "two_prob")
    assert plain.keys() == one.keys() == two.keys() and len(plain) == 20
    assert all(np.array_equal(plain[k], one[k]) for k in plain)
    assert any(not np.array_equal(plain[k], two[k]) for k in plain)
    masks = read(tmp_path / "two")
    with Image.open(next((synthetic_dir / "DAVIS-2016/val/images/davis000").glob("*.jpg"))) as im:
        assert len(masks) == 20 and all(m.shape == im.size[::-1] for m in masks.values())
        assert all(set(np.unique(m)) <= {0, 255} for m in masks.values())


def test_killed_run_leaves_folder_that_evaluation_refuses(synthetic_dir, xxs_checkpoint, tmp_path, monkeypatch):
    """A run that dies mid-way leaves ``.in_progress.json``: evaluation refuses the folder (a mix of
    old and new masks) naming the writer; the finished rerun removes it and scoring works."""
    from evaluation import evaluate_dataset
    from evaluation.files import EvaluationError

    argv = ["--weights", str(xxs_checkpoint), "--data_dir", str(synthetic_dir), "--test_datasets", "DAVIS-2016",
            "--size", "64", "96", "--workers", "0", "--save_dir", str(tmp_path / "m")]
    real = test_script.run_inference

    def dies(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(test_script, "run_inference", dies)
    with pytest.raises(KeyboardInterrupt):
        test_script.main(argv)
    assert (tmp_path / "m" / ".in_progress.json").is_file()
    with pytest.raises(EvaluationError, match=r"incomplete: test.py was writing DAVIS-2016"):
        evaluate_dataset(tmp_path / "m", synthetic_dir, "DAVIS-2016", workers=1)
    monkeypatch.setattr(test_script, "run_inference", real)
    test_script.main(argv)
    assert not (tmp_path / "m" / ".in_progress.json").exists()
    assert len(evaluate_dataset(tmp_path / "m", synthetic_dir, "DAVIS-2016", workers=1).sequences) == 4


def test_temporal(synthetic_dir, xxs_checkpoint, tmp_path):
    """``--temporal 1``: the probability written for each frame is the online stage's fused
    target probability (engine.temporal.fused_video_probs) at the original size; it
    differs from the plain one; one mask per frame."""
    from datasets import FrameDataset
    from engine.inference import to_original_size
    from engine.temporal import TargetConfig, fused_video_probs
    from models import build_model_from_checkpoint

    base = ["--weights", str(xxs_checkpoint), "--data_dir", str(synthetic_dir), "--test_datasets", "DAVIS-2016",
            "--size", "64", "96", "--flip", "--workers", "0", "--videos", "davis000", "davis001", "--save_prob"]
    test_script.main([*base, "--save_dir", str(tmp_path / "plain")])
    test_script.main([*base, "--save_dir", str(tmp_path / "fused"), "--temporal", "1"])

    def read(root):
        return {p.relative_to(root): np.asarray(Image.open(p)).astype(int) for p in sorted(root.rglob("*.png"))}

    plain, fused = read(tmp_path / "plain_prob"), read(tmp_path / "fused_prob")
    assert plain.keys() == fused.keys() and len(fused) == 40 and len(read(tmp_path / "fused")) == 40
    assert any(np.abs(plain[k] - fused[k]).max() > 0 for k in plain)  # this random model varies little

    data = FrameDataset(synthetic_dir, ["DAVIS-2016"], "test", split="val", size=(64, 96), with_labels=False,
                        videos=["davis001"])
    model = build_model_from_checkpoint(xxs_checkpoint).eval()
    (key, indices), = data.video_items().items()
    prob = fused_video_probs(model, data, indices, (64, 96), TargetConfig(flip=True, temporal=(1,)),
                             torch.device("cpu"))
    for p, i in zip(prob, indices):
        frame = data.items[i][1]
        with Image.open(data.videos[0].image_paths[frame]) as im:
            w, h = im.size
        want = next(to_original_size(p[None], torch.tensor([[h, w]])))
        got = fused[Path("DAVIS-2016", "davis001", f"{frame}.png")] / 255.0
        assert got.shape == want.shape and np.abs(got - want).max() <= 1 / 255 + 1e-6


def test_rank_videos_split_whole_videos_across_ranks(synthetic_dir):
    """Each rank gets whole videos (all of a video's frames, in temporal order), no video twice
    and none left out, with the same global index whatever the number of ranks."""
    from datasets import FrameDataset
    from engine.inference import rank_videos
    from utils.distributed import DistInfo

    data = FrameDataset(synthetic_dir, ["DAVIS-2016"], "test", split="val", size=(64, 96), with_labels=False)
    alone = rank_videos(data, DistInfo())
    assert [v for v, _, _ in alone] == list(range(len(alone))) and len(alone) >= 3
    assert sorted(i for _, _, ix in alone for i in ix) == list(range(len(data)))
    for _, (ds, name), ix in alone:
        assert {(data.videos[data.items[i][0]].dataset, data.videos[data.items[i][0]].name) for i in ix} == {(ds, name)}
        assert ix == sorted(ix)
    ranks = [rank_videos(data, DistInfo(rank=r, world_size=2)) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == alone
    assert not {k for _, k, _ in ranks[0]} & {k for _, k, _ in ranks[1]}
    assert [v for v, _, _ in ranks[1]] == [1, 3, 5, 7][:len(ranks[1])]  # global indices, not per-rank counts
