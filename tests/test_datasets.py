"""Dataset indexing, stride, paired augmentation alignment, mask formats, bad-input errors."""
from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from datasets import FrameDataset, TrainAugment, collate_frames, labeled_frames, read_mask, scan_split
from datasets.synthetic import SYNTHETIC_LAYOUT
from datasets.transforms import GeometricParams, affine_matrix, crop_extent, min_inside_scale, vector_matrix, warp_sample
from utils.flow import decode_flow, flow_to_image, read_flo


def test_index_counts_and_youtube_stride(synthetic_dir):
    (_, _, n_yt, len_yt, _), = SYNTHETIC_LAYOUT["YouTubeVOS-2018"]  # every frame labeled
    (_, _, n_dv, len_dv, _), _ = SYNTHETIC_LAYOUT["DAVIS-2016"]
    ds = FrameDataset(synthetic_dir, ["YouTubeVOS-2018", "DAVIS-2016"], "labeled", size=(64, 96), youtube_stride=10)
    assert len(ds) == n_yt * -(-len_yt // 10) + n_dv * len_dv
    yt = [f for v, f in ds.items if ds.videos[v].dataset == "YouTubeVOS-2018" and ds.videos[v].name == "youtubevos000"]
    assert yt == ["00000", "00010", "00020"]
    ds1 = FrameDataset(synthetic_dir, ["YouTubeVOS-2018"], "labeled", size=(64, 96), youtube_stride=1)
    assert len(ds1) == n_yt * len_yt


def test_sparse_labels_and_test_mode(synthetic_dir):
    ds = FrameDataset(synthetic_dir, ["FBMS"], "test", size=None)
    assert len(ds) == 3 * 20  # every frame, labeled or not
    flags = [ds[i]["has_mask"] for i in range(20)]
    assert flags == [i % 5 == 0 for i in range(20)]  # FBMS-like: every 5th frame annotated
    s = ds[0]
    assert s["image"].shape == (3, 96, 160) and s["mask"].shape == (1, 96, 160)
    assert tuple(s["orig_size"].tolist()) == (96, 160)
    batch = collate_frames([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 96, 160) and batch["video"] == ["fbms000", "fbms000"]


def test_unlabeled_and_no_label_reads(synthetic_dir):
    ds = FrameDataset(synthetic_dir, ["Youtube-objects"], "unlabeled", size=(64, 96))
    s = ds[3]
    assert "mask" not in s and s["image"].shape == (3, 64, 96)
    assert all(not v.label_paths for v in ds.videos)  # labels never indexed
    ds_t = FrameDataset(synthetic_dir, ["Youtube-objects"], "test", with_labels=False)
    assert all(not v.label_paths for v in ds_t.videos)


def test_labeled_frames_stride_validation(synthetic_dir):
    v = scan_split(synthetic_dir, "FBMS", "val")[0]
    assert labeled_frames(v, 2) == ["00000", "00010"]
    with pytest.raises(ValueError):
        labeled_frames(v, 0)


def _object_mask_from_flow(flow_rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Pixels (inside ``valid``) whose decoded flow differs from the dominant background flow."""
    f = decode_flow(torch.from_numpy(flow_rgb).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    bg = np.median(f[valid], 0)
    return (np.linalg.norm(f - bg, axis=-1) > 0.08) & valid


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.mark.parametrize("seed", range(4))
def test_paired_augmentation_keeps_alignment(synthetic_dir, seed):
    root = synthetic_dir / "DAVIS-2016" / "train"
    image = cv2.cvtColor(cv2.imread(str(root / "images/davis000/00005.jpg")), cv2.COLOR_BGR2RGB)
    flow = cv2.cvtColor(cv2.imread(str(root / "flows/davis000/00005.jpg")), cv2.COLOR_BGR2RGB)
    mask = read_mask(root / "labels/davis000/00005.png")
    # A marker image built from the mask checks that the image moves exactly like the mask.
    marker = np.repeat(mask[..., None] * 255, 3, 2).astype(np.uint8)
    aug = TrainAugment((64, 112), scale_range=(0.9, 1.3), max_rotation=15, flip_prob=0.5, color_jitter=0)
    rng = np.random.default_rng(seed)
    p = aug.draw(image.shape[:2], rng)
    m_img, m_flow, m_mask = warp_sample(marker, flow, mask, p, (64, 112))
    # Pixels that come from inside the frame (borders are filled with zero motion).
    _, _, inside = warp_sample(marker, flow, np.ones_like(mask), p, (64, 112))
    inside = cv2.erode(inside, np.ones((3, 3), np.uint8)) > 0
    assert m_img.shape == (64, 112, 3) and m_flow.shape == (64, 112, 3) and m_mask.shape == (64, 112)
    assert set(np.unique(m_mask)) <= {0, 1}
    if m_mask.sum() > 50:
        assert _iou(m_img[..., 0] > 127, m_mask > 0) > 0.9
        assert _iou(_object_mask_from_flow(m_flow, inside), (m_mask > 0) & inside) > 0.8


@pytest.mark.parametrize("flip,angle", [(True, 0.0), (False, 12.0), (True, -9.0)])
def test_flow_vectors_follow_the_geometry(synthetic_dir, flip, angle):
    """Against the exact flow: augmenting the flow image equals transforming the true field."""
    root = synthetic_dir / "DAVIS-2016" / "train"
    true = read_flo(root / "flows_exact/davis001/00004.flo")
    h, w = true.shape[:2]
    p = GeometricParams(scale=1.0, angle=angle, flip=flip, center=((w - 1) / 2, (h - 1) / 2))
    flow_rgb = flow_to_image(true)
    _, aug, _ = warp_sample(np.zeros((h, w, 3), np.uint8), flow_rgb, None, p, (h, w))
    got = decode_flow(torch.from_numpy(aug).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    # Reference: warp each true vector component with the same matrix, then turn the vectors.
    from datasets.transforms import affine_matrix
    m = affine_matrix(p, (h, w))
    warped = np.stack([cv2.warpAffine(true[..., c], m, (w, h), flags=cv2.INTER_NEAREST) for c in range(2)], -1)
    ref = warped @ vector_matrix(p).T / np.linalg.norm(true, axis=-1).max()
    valid = cv2.warpAffine(np.ones((h, w), np.uint8), m, (w, h), flags=cv2.INTER_NEAREST) > 0
    valid = cv2.erode(valid.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    epe = np.linalg.norm(got - ref, axis=-1)[valid]
    assert np.median(epe) < 0.02 and epe.mean() < 0.06


def test_mask_formats(tmp_path):
    m = np.zeros((5, 6), np.uint8)
    m[1:3, 2:5] = 1
    Image.fromarray(m * 255, "L").save(tmp_path / "grey.png")
    Image.fromarray(m, "L").save(tmp_path / "01.png")
    pal = Image.fromarray(m * 3, "P")  # object id 3
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    pal.save(tmp_path / "palette.png")
    for name in ("grey.png", "01.png", "palette.png"):
        assert np.array_equal(read_mask(tmp_path / name), m), name


@pytest.fixture
def broken_copy(synthetic_dir, tmp_path):
    """A writable copy of one synthetic dataset to break."""
    dst = tmp_path / "data"
    shutil.copytree(synthetic_dir / "FBMS", dst / "FBMS")
    return dst


def test_missing_flow_names_video_and_frame(broken_copy):
    (broken_copy / "FBMS/val/flows/fbms001/00007.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"fbms001.*00007"):
        FrameDataset(broken_copy, ["FBMS"], "test")


def test_missing_flow_folder(broken_copy):
    shutil.rmtree(broken_copy / "FBMS/val/flows/fbms002")
    with pytest.raises(FileNotFoundError, match=r"fbms002.*compute_flow"):
        FrameDataset(broken_copy, ["FBMS"], "test")


def test_size_mismatch_names_video_and_frame(broken_copy):
    cv2.imwrite(str(broken_copy / "FBMS/val/flows/fbms000/00003.jpg"), np.full((50, 60, 3), 255, np.uint8))
    ds = FrameDataset(broken_copy, ["FBMS"], "test")
    with pytest.raises(ValueError, match=r"fbms000.*00003.*sizes differ"):
        ds[3]


def test_unreadable_image_names_file(broken_copy):
    (broken_copy / "FBMS/val/images/fbms000/00002.jpg").write_bytes(b"garbage")
    ds = FrameDataset(broken_copy, ["FBMS"], "test")
    with pytest.raises(OSError, match=r"fbms000/00002.jpg"):
        ds[2]


def test_empty_folders_reported(broken_copy):
    (broken_copy / "FBMS/val/images/empty_video").mkdir()
    with pytest.raises(FileNotFoundError, match="empty_video.*no frames"):
        FrameDataset(broken_copy, ["FBMS"], "test")
    with pytest.raises(FileNotFoundError, match="Nope/val/images"):
        FrameDataset(broken_copy, ["Nope"], "test")


def test_labeled_mode_requires_labels(broken_copy):
    shutil.rmtree(broken_copy / "FBMS/val/labels/fbms001")
    with pytest.raises(FileNotFoundError, match="fbms001.*no label"):
        FrameDataset(broken_copy, ["FBMS"], "labeled", split="val")


def test_augmentation_is_seeded(synthetic_dir):
    ds = FrameDataset(synthetic_dir, ["DAVIS-2016"], "labeled", size=(64, 96), seed=3)
    a, b = ds[5], ds[5]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    ds.set_epoch(1)
    assert not torch.equal(ds[5]["image"], a["image"])


def _border_object_frame() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 60 x 100 frame whose object (red, moving right) fills the left 30 columns, up to the border."""
    image = np.full((60, 100, 3), 128, np.uint8)
    image[:, :30] = (255, 0, 0)
    flow = np.full((60, 100, 3), 255, np.uint8)  # white: no motion
    flow[:, :30] = (255, 0, 0)  # red hue: motion to the right
    mask = np.zeros((60, 100), np.uint8)
    mask[:, :30] = 1
    return image, flow, mask


@pytest.mark.parametrize("scale_range,rotation", [((0.5, 0.8), 0.0), ((0.6, 1.0), 15.0), ((0.9, 1.3), 10.0)])
def test_augmented_crop_never_shows_the_outside_of_the_frame(scale_range, rotation):
    """Zoom-out and rotation draws used to fill the outside with a mirrored image under a background
    mask and still flow: a mirrored object learnt as background. Every crop now lies in the frame."""
    image, flow, mask = _border_object_frame()
    aug = TrainAugment((40, 72), scale_range=scale_range, max_rotation=rotation, color_jitter=0, blur_prob=0)
    for seed in range(40):
        rng = np.random.default_rng(seed)
        p = aug.draw(image.shape[:2], rng)
        # Every output pixel's centre maps inside the frame's pixel centres.
        m = affine_matrix(p, (40, 72))
        inv = cv2.invertAffineTransform(m)
        ys, xs = np.mgrid[0:40, 0:72]
        src = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
        x, y = inv @ src
        assert x.min() >= -1e-6 and x.max() <= 99 + 1e-6 and y.min() >= -1e-6 and y.max() <= 59 + 1e-6, (seed, p)
        img, flo, msk = warp_sample(image, flow, mask, p, (40, 72))
        red = (img[..., 0] > 200) & (img[..., 1] < 60)
        grey = (np.abs(img.astype(int) - 128) < 10).all(-1)
        speed = np.linalg.norm(decode_flow(torch.from_numpy(flo).permute(2, 0, 1)).numpy(), axis=0)
        # Object pixels are red, carry the object's motion and are labelled 1; background is grey, still, 0.
        assert not (red & (msk == 0)).any() and not (grey & (msk == 1)).any(), seed
        assert not ((speed > 0.6) & (msk == 0)).any() and not ((speed < 0.1) & (msk == 1)).any(), seed


def test_min_inside_scale_by_hand():
    # Unturned: the crop's span over the frame's (pixel centres), the larger of the two axes.
    assert min_inside_scale((61, 101), (41, 51), 0.0) == pytest.approx(max(50 / 100, 40 / 60))
    # Turned 90 degrees the crop's width lies along the frame's height.
    assert min_inside_scale((61, 101), (41, 51), 90.0) == pytest.approx(max(40 / 100, 50 / 60))
    hx, hy = crop_extent((41, 51), 30.0, 2.0)
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    assert (hx, hy) == pytest.approx(((50 * c + 40 * s) / 4, (50 * s + 40 * c) / 4))


def test_zero_flow_prob_replaces_the_flow_with_no_motion_and_leaves_other_draws_alone():
    image, flow, mask = _border_object_frame()
    plain = TrainAugment((40, 72))
    always = TrainAugment((40, 72), zero_flow_prob=1.0)
    half = TrainAugment((40, 72), zero_flow_prob=0.5)
    zeroed = 0
    for seed in range(40):
        i0, f0, m0 = plain(image, flow, mask, np.random.default_rng(seed))
        i1, f1, m1 = always(image, flow, mask, np.random.default_rng(seed))
        assert np.array_equal(i0, i1) and np.array_equal(m0, m1)  # the same crop and colours
        assert (f1 == 255).all() and not (f0 == 255).all()  # white: no motion (the object moves in every crop)
        _, fh, _ = half(image, flow, mask, np.random.default_rng(seed))
        zeroed += int((fh == 255).all())
    assert 10 <= zeroed <= 30  # about half of 40
    with pytest.raises(ValueError, match="zero_flow_prob"):
        TrainAugment((40, 72), zero_flow_prob=1.5)
