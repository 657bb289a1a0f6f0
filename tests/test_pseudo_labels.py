"""Cached online targets: warping, the forward-backward check, temporal fusion, confidence
labels, the masked loss, the student's view, and the tuner's cached mode."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch

import online_finetuning
from engine.pseudo_labels import (IGNORE, auto_band_weight, background_residual, band_share, hard_labels, label_cover,
                                  masked_seg_loss, motion_veto)
from engine.temporal import FlowCache, TargetConfig, consistent, pair_consistency, pair_flows, temporal_fuse, warp
from engine.views import rescaled_size


def _square(h=20, w=30, y=5, x=5, s=5):
    m = torch.zeros(1, h, w)
    m[0, y:y + s, x:x + s] = 1
    return m


def test_warp_integer_shift_is_exact():
    t = _square()
    n = torch.roll(t, 3, dims=2)  # frame n: the square 3 px to the right
    f = torch.zeros(2, 20, 30)
    f[0] = 3  # flow t -> n
    assert torch.allclose(warp(n, f), t, atol=1e-5)


def _pan_scene(t=3, h=64, w=96, pan=(1.5, 0.0), own=(-2.0, 1.0)):
    """Flows of a panning camera (background moves by ``pan``) and an object (rows 20-40, cols
    30-60) moving by ``own``; labels: object 1, background 0, except a missed part of the object
    (rows 20-40, cols 50-60) labelled background, as an appearance model's confident error."""
    region = torch.zeros(h, w, dtype=torch.bool)
    region[20:40, 30:60] = True
    flows = {}
    for i in range(t):
        for n in (i - 1, i + 1):
            if 0 <= n < t:
                sign = 1.0 if n > i else -1.0
                f = torch.empty(2, h, w)
                f[0], f[1] = sign * pan[0], sign * pan[1]
                f[0][region], f[1][region] = sign * own[0], sign * own[1]
                flows[(i, n)] = f
    labels = torch.zeros(t, 1, h, w, dtype=torch.uint8)
    labels[:, 0, 20:40, 30:50] = 1
    return flows, labels


def test_background_residual_is_the_departure_from_the_camera_motion():
    flows, labels = _pan_scene()
    res = background_residual(flows[(1, 2)], labels[1, 0] == 0)
    # The homography fits the pan (most background labels); the object moves by (-2, 1) against
    # (1.5, 0): its residual is |(-3.5, 1)| = 3.64 pixels, the background's 0.
    assert res[5:15, 5:25].abs().max() < 1e-3
    assert torch.allclose(res[25:35, 35:55], torch.full((10, 20), (3.5 ** 2 + 1) ** 0.5), atol=1e-3)
    assert background_residual(flows[(1, 2)], torch.zeros(64, 96, dtype=torch.bool)) is None  # nothing to fit


def test_motion_veto_drops_background_labels_on_the_moving_object_only():
    flows, labels = _pan_scene()
    out = motion_veto(labels, flows, rel=0.25)
    missed = torch.zeros(64, 96, dtype=torch.bool)
    missed[22:38, 52:58] = True  # inside the missed part, away from the flow's edges
    for t in range(3):
        assert (out[t, 0][missed] == IGNORE).all()
        assert (out[t, 0][:, :25] == 0).all() and (out[t, 0][45:] == 0).all()  # static background kept
        assert (out[t, 0][20:40, 30:50] == 1).all()  # object labels untouched
    # A camera-still scene where the "missed part" moves no more than the floor keeps its labels.
    slow, labels2 = _pan_scene(pan=(0.0, 0.0), own=(0.2, 0.0))
    assert torch.equal(motion_veto(labels2, slow, rel=0.25), labels2)


def test_motion_veto_leaves_a_frame_whose_background_moves_everywhere():
    flows, labels = _pan_scene()
    for (i, n), f in flows.items():  # water: the lowest 24 rows (40 % of the background) drift their own way
        f[0, 40:], f[1, 40:] = (n - i) * -3.0, (n - i) * 2.0
    out = motion_veto(labels, flows, rel=0.25, max_share=0.2)
    assert torch.equal(out, labels)  # over 20 % of the background labels would go: the frame keeps them
    assert (motion_veto(labels, flows, rel=0.25, max_share=1.0) == IGNORE).any()


def test_forward_backward_check():
    f, b = torch.zeros(2, 20, 30), torch.zeros(2, 20, 30)
    f[0], b[0] = 3, -3
    ok = consistent(f, b, 0.01, 0.5)
    assert ok[:, :27].all() and not ok[:, 27:].any()  # the last 3 columns leave the frame
    assert not consistent(f, torch.zeros_like(b), 0.01, 0.5).any()  # |3 + 0|^2 = 9 > 0.01 * 9 + 0.5


def test_dis_pair_flows_recover_a_shift():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur((rng.random((64, 96, 3)) * 255).astype(np.uint8), (0, 0), 2)
    flows = pair_flows([img, np.roll(img, 2, axis=1)], [1])
    assert set(flows) == {(0, 1), (1, 0)}
    assert abs(flows[(0, 1)][0, 10:-10, 10:-10].mean().item() - 2) < 0.1
    assert abs(flows[(1, 0)][0, 10:-10, 10:-10].mean().item() + 2) < 0.1


def test_flow_cache_computes_each_video_once_and_gives_what_it_would_compute():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur((rng.random((64, 96, 3)) * 255).astype(np.uint8), (0, 0), 2)
    frames = [np.roll(img, 2 * i, axis=1) for i in range(4)]
    fresh = pair_flows(frames, [1, 2])
    cache, cfg = FlowCache(), TargetConfig()
    flows, checks = cache.get((0, 1, 2, 3), frames, [1], cfg)
    assert set(flows) == {(i, i + 1) for i in range(3)} | {(i + 1, i) for i in range(3)} and set(checks) == set(flows)
    assert all(torch.equal(flows[k], fresh[k]) for k in flows)
    assert all(torch.equal(checks[k], v) for k, v in pair_consistency({k: fresh[k] for k in flows}).items())
    assert cache.get((0, 1, 2, 3), frames, [1], cfg)[0] is flows and cache.computed == 1  # held: not computed again
    flows, _ = cache.get((0, 1, 2, 3), frames, [1, 2], cfg)  # only offset 2 is new
    assert cache.computed == 2 and set(flows) == set(fresh) and torch.equal(flows[(0, 2)], fresh[(0, 2)])
    cache.get((4, 5, 6, 7), frames, [1], cfg)  # another video: computed afresh
    assert cache.computed == 3 and cache.offsets == {1}
    cache.get((4, 5, 6, 7), frames, [1], TargetConfig(fb_beta=1.0))  # another check: afresh too
    assert cache.computed == 4
    small = FlowCache(max_bytes=0)  # too little room: hands the flows over, holds nothing
    flows, _ = small.get((0, 1, 2, 3), frames, [1], cfg)
    assert torch.equal(flows[(0, 1)], fresh[(0, 1)]) and small.flows == {} and small.key is None
    small.get((0, 1, 2, 3), frames, [1], cfg)
    assert small.computed == 2


def test_temporal_fuse_hand_computed():
    probs = torch.tensor([1.0, 0.0, 1.0]).view(3, 1, 1, 1).expand(3, 1, 4, 4).clone()
    zero = torch.zeros(2, 4, 4)
    flows = {(0, 1): zero, (1, 0): zero, (1, 2): zero, (2, 1): zero}
    out = temporal_fuse(probs, flows, [1])
    assert torch.allclose(out[1], torch.full((1, 4, 4), 2 / 3))  # (0 + 1 + 1) / 3
    assert torch.allclose(out[0], torch.full((1, 4, 4), 0.5))  # (1 + 0) / 2: no t-1
    # an inconsistent neighbour does not take part
    bad = torch.zeros(2, 4, 4)
    bad[0] = 2
    flows[(1, 2)] = bad  # 1 -> 2 says +2 px, 2 -> 1 says 0: fails the check
    out = temporal_fuse(probs, flows, [1])
    assert torch.allclose(out[1], torch.full((1, 4, 4), 0.5))  # (0 + 1) / 2


def test_shared_checks_give_the_same_results_and_are_used():
    flows, labels = _pan_scene()
    checks = pair_consistency(flows)
    assert set(checks) == set(flows)
    assert torch.equal(motion_veto(labels, flows, rel=0.25, checks=checks), motion_veto(labels, flows, rel=0.25))
    probs = torch.rand(3, 1, 64, 96, generator=torch.Generator().manual_seed(0))
    assert torch.equal(temporal_fuse(probs, flows, [1], checks=checks), temporal_fuse(probs, flows, [1]))
    # Checks that pass nowhere leave no neighbour and no evidence of motion: nothing changes.
    none = {k: torch.zeros_like(v) for k, v in checks.items()}
    assert torch.equal(temporal_fuse(probs, flows, [1], checks=none), probs)
    assert torch.equal(motion_veto(labels, flows, rel=0.25, checks=none), labels)


def test_hard_labels_and_view_size():
    lab = hard_labels(torch.tensor([0.05, 0.1, 0.5, 0.9, 0.95]), 0.1, 0.9)
    assert lab.tolist() == [0, IGNORE, IGNORE, IGNORE, 1]
    assert rescaled_size((320, 576), 1.25) == (384, 704) and rescaled_size((320, 576), 1.0) == (320, 576)


def test_label_cover_hand_computed():
    prob = torch.tensor([[0.95, 0.7, 0.6, 0.4, 0.05, 0.02, 0.3, 0.5],  # mask: 3 px, 1 object label; rest 5, 2 bg
                         [0.95, 0.92, 0.3, 0.2, 0.2, 0.2, 0.2, 0.2],  # a teacher never below LO: no bg label
                         [0.05, 0.2, 0.3, 0.2, 0.2, 0.2, 0.2, 0.2]]).view(3, 1, 1, 8)  # empty mask
    fg, bg = label_cover(prob, hard_labels(prob, 0.1, 0.9))
    assert torch.allclose(fg, torch.tensor([1 / 3, 1.0, 0.0]))
    assert torch.allclose(bg, torch.tensor([2 / 5, 0.0, 1 / 8]))


def test_masked_loss_ignores_unlabelled_pixels():
    labels = torch.tensor([[1, 0, IGNORE, IGNORE]], dtype=torch.uint8).view(1, 1, 1, 4)
    a = torch.tensor([2.0, -1.0, 5.0, -5.0]).view(1, 1, 1, 4)
    b = a.clone()
    b[..., 2:] = torch.tensor([-7.0, 3.0])
    assert torch.allclose(masked_seg_loss(a, labels), masked_seg_loss(b, labels))
    # by hand: BCE over the two labelled pixels, soft IoU with eps 1
    p1, p0 = torch.sigmoid(torch.tensor(2.0)), torch.sigmoid(torch.tensor(-1.0))
    bce = (-torch.log(p1) - torch.log(1 - p0)) / 2
    iou = 1 - (p1 + 1) / (1 + p0 + 1)  # inter = p1, union = p1 + p0 + 1 - p1
    assert torch.allclose(masked_seg_loss(a, labels), bce + iou, atol=1e-6)
    assert torch.allclose(masked_seg_loss(a, labels, iou_weight=0.0), bce, atol=1e-6)  # --iou_weight 0: BCE only
    assert torch.allclose(masked_seg_loss(a, labels, iou_weight=0.5), bce + 0.5 * iou, atol=1e-6)
    # nothing labelled: zero loss, no NaN
    none = torch.full((1, 1, 1, 4), IGNORE, dtype=torch.uint8)
    assert masked_seg_loss(a, none).item() == 0


def test_band_term_pulls_the_unlabelled_band_toward_the_teacher():
    labels = torch.tensor([[1, 0, IGNORE, IGNORE]], dtype=torch.uint8).view(1, 1, 1, 4)
    soft = torch.tensor([0.95, 0.05, 0.6, 0.02]).view(1, 1, 1, 4)
    band = torch.tensor([False, False, True, False]).view(1, 1, 1, 4)  # pixel 3: below LO, vetoed
    a = torch.tensor([2.0, -1.0, 0.5, 4.0]).view(1, 1, 1, 4)
    base = masked_seg_loss(a, labels)
    z, p = torch.tensor(0.5), torch.tensor(0.6)
    term = -(p * torch.log(torch.sigmoid(z)) + (1 - p) * torch.log(1 - torch.sigmoid(z)))  # by hand
    got = masked_seg_loss(a, labels, soft=soft, band=band, band_weight=0.5)
    assert torch.allclose(got, base + 0.5 * term, atol=1e-6)
    assert torch.equal(masked_seg_loss(a, labels, soft=soft, band=band, band_weight=0.0), base)  # the default
    b = a.clone()
    b[..., 3] = -9.0  # outside the band and unlabelled: no loss either way
    assert torch.allclose(masked_seg_loss(b, labels, soft=soft, band=band, band_weight=0.5), got)
    # the gradient on the band pixel is band_weight x (sigmoid(z) - p), toward the teacher's probability
    c = a.clone().requires_grad_(True)
    masked_seg_loss(c, labels, soft=soft, band=band, band_weight=0.5).backward()
    assert torch.allclose(c.grad[0, 0, 0, 2], 0.5 * (torch.sigmoid(z) - p), atol=1e-6)


CACHED = ["--targets", "cached", "--temporal", "1", "--confidence", "0.5", "0.5"]


def test_cached_targets_tune_without_ground_truth(ckpt, synthetic_dir, tmp_path, monkeypatch):
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir / "DAVIS-2016" / "val", data / "DAVIS-2016" / "val",
                    ignore=shutil.ignore_patterns("flows_exact"))
    shutil.rmtree(data / "DAVIS-2016/val/labels")

    def forbidden(path):
        raise AssertionError(f"ground truth opened during online tuning: {path}")

    monkeypatch.setattr("datasets.frames.read_mask", forbidden)
    base = ["--weights", str(ckpt), "--data_dir", str(data), "--test_datasets", "DAVIS-2016", "--size", "64", "96",
            "--workers", "0", "--no_tensorboard", "--batch_size", "2", "--lr", "1e-3", "--epochs", "1",
            "--videos", "davis000", "--output_dir", str(tmp_path / "run")]
    online_finetuning.main([*base, *CACHED, "--save_dir", str(tmp_path / "m"), "--predict_with", "student"])
    assert len(list((tmp_path / "m").rglob("*.png"))) == 20


@pytest.mark.parametrize("confidence", [("0.0", "1.0"), ("0.0", "0.5")], ids=["no_labels", "object_labels_only"])
def test_video_without_labels_of_both_kinds_is_not_tuned(ckpt, synthetic_dir, tmp_path, confidence):
    """A teacher never below --confidence LO gives object labels only (a weak model's case:
    tuned on them, the student called every pixel the object); such a video keeps the offline masks,
    fused over time as the online stage writes them (``test.py --temporal 1``)."""
    import test as test_script
    from PIL import Image

    data = tmp_path / "data"
    shutil.copytree(synthetic_dir / "DAVIS-2016" / "val", data / "DAVIS-2016" / "val",
                    ignore=shutil.ignore_patterns("flows_exact"))
    common = ["--weights", str(ckpt), "--data_dir", str(data), "--test_datasets", "DAVIS-2016", "--size", "64", "96",
              "--workers", "0", "--videos", "davis000"]
    test_script.main([*common, "--temporal", "1", "--save_dir", str(tmp_path / "test")])
    online_finetuning.main([*common, "--no_tensorboard", "--batch_size", "2", "--lr", "1e-2", "--epochs", "1",
                            "--output_dir", str(tmp_path / "run"), "--save_dir", str(tmp_path / "online"),
                            "--targets", "cached", "--confidence", *confidence, "--predict_with", "student"])
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "davis000: no frame has object and background labels" in log
    assert "tuned 0 video(s), left 1 untuned" in log  # the summary does not count it
    a = sorted((tmp_path / "test").rglob("*.png"))
    b = sorted((tmp_path / "online").rglob("*.png"))
    assert len(a) == len(b) == 20
    assert all(np.array_equal(np.asarray(Image.open(x)), np.asarray(Image.open(y))) for x, y in zip(a, b))


def test_frames_below_min_cover_are_not_learnt_from(ckpt, synthetic_dir, tmp_path, monkeypatch):
    """Frame-level: only frames whose labels cover --min_cover of both sides enter the pass's targets."""
    import engine.online
    from engine.online import OnlineTuner
    from engine.online_config import OnlineConfig
    data = tmp_path / "data"
    shutil.copytree(synthetic_dir / "DAVIS-2016" / "val", data / "DAVIS-2016" / "val",
                    ignore=shutil.ignore_patterns("flows_exact"))
    tuner = OnlineTuner(OnlineConfig(weights=str(ckpt), data_dir=str(data), test_datasets=["DAVIS-2016"],
                                     size=(64, 96), workers=0, videos=["davis000"], no_tensorboard=True,
                                     output_dir=str(tmp_path / "run"), min_cover=0.5))
    key, idx = next(iter(tuner.data.video_items().items()))
    prob = torch.full((len(idx), 1, 64, 96), 0.02)
    prob[:, :, :8, :8] = 0.95  # object labels on the whole mask, background on the rest
    prob[1, :, 8:40] = 0.3  # frame 1: background labels on 1/3 of the rest (below 0.5)
    prob[2, :, :8, :4] = 0.7  # frame 2: object labels on half the mask (0.5 passes)
    monkeypatch.setattr(engine.online, "build_targets", lambda *a, **k: (prob, hard_labels(prob, 0.1, 0.9)))
    tuner._fresh(0)
    assert tuner.make_targets(idx)
    assert sorted(tuner.targets) == sorted(i for k, i in enumerate(idx) if k != 1)


def test_band_share_and_the_auto_weights_ramp():
    prob = torch.tensor([0.0, 0.05, 0.1, 0.5, 0.9, 0.95, 1.0, 0.3]).view(2, 1, 2, 2)
    assert band_share(prob, 0.1, 0.9) == pytest.approx(4 / 8)  # 0.1, 0.5, 0.9 (inclusive) and 0.3
    assert [auto_band_weight(s, (0.2, 0.4)) for s in (0.0, 0.2, 0.25, 0.3, 0.4, 0.9)] == pytest.approx(
        [0.0, 0.0, 0.25, 0.5, 1.0, 1.0])


def test_band_term_with_one_weight_per_sample():
    """Each sample's band pixels weigh its own weight; the sum is still over all band pixels."""
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 3, 3)
    soft = torch.rand(2, 1, 3, 3)
    labels = torch.full((2, 1, 3, 3), IGNORE, dtype=torch.uint8)
    labels[:, :, 0] = 1
    labels[:, :, 2] = 0
    band = labels == IGNORE  # row 1 of each sample: 6 band pixels in all
    base = masked_seg_loss(logits, labels)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, soft, reduction="none")[:, 0, 1].sum(1)
    got = masked_seg_loss(logits, labels, soft=soft, band=band, band_weight=torch.tensor([0.0, 0.5]))
    assert torch.allclose(got, base + 0.5 * bce[1] / 6)
    # equal weights per sample are the one weight
    assert torch.allclose(masked_seg_loss(logits, labels, soft=soft, band=band, band_weight=torch.tensor([0.5, 0.5])),
                          masked_seg_loss(logits, labels, soft=soft, band=band, band_weight=0.5))
    assert torch.equal(masked_seg_loss(logits, labels, soft=soft, band=band, band_weight=torch.zeros(2)), base)
