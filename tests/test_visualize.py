"""scripts/visualize.py: strips, bar chart and CSV comparing two mask folders on synthetic data."""
from __future__ import annotations

import csv
import importlib.util
import logging
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from datasets.io import read_mask, write_mask

ROOT = Path(__file__).resolve().parents[1]
SHIFTS = (3, 1, 6, 2)  # horizontal shift (pixels) of the degraded masks, per video in name order: not monotone
FRAME_HW = (96, 160)  # the synthetic_dir fixture's frame size


def _load_script():
    spec = importlib.util.spec_from_file_location("visualize_script", ROOT / "scripts" / "visualize.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


vis = _load_script()


@pytest.fixture(scope="module")
def masks(synthetic_dir: Path, tmp_path_factory) -> dict[str, Path]:
    """Two mask folders: ``exact`` (the ground truth as 0/255) and ``shifted`` (moved right, per video)."""
    root = tmp_path_factory.mktemp("vis_masks")
    for dataset in ("DAVIS-2016", "FBMS"):
        labels = synthetic_dir / dataset / "val" / "labels"
        for i, video in enumerate(sorted(p.name for p in labels.iterdir())):
            for f in sorted((labels / video).glob("*.png")):
                m = read_mask(f)
                write_mask(root / "exact" / dataset / video / f.name, m)
                write_mask(root / "shifted" / dataset / video / f.name, np.roll(m, SHIFTS[i % len(SHIFTS)], axis=1))
    return {"exact": root / "exact", "shifted": root / "shifted"}


def _args(data: Path, a: Path, b: Path, out: Path, *extra: str, labels: tuple[str, str] = ("shifted", "exact")
          ) -> list[str]:
    return ["--data_dir", str(data), "--pred_a", str(a), "--pred_b", str(b), "--labels", *labels,
            "--out_dir", str(out), "--workers", "1", "--log_level", "WARNING", *extra]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_pick_frames_evenly_spaced():
    frames = [f"{i:05d}" for i in range(20)]
    assert vis.pick_frames(frames, 5) == ["00000", "00005", "00010", "00014", "00019"]
    assert vis.pick_frames(frames, 1) == ["00000"]
    assert vis.pick_frames(frames[:3], 5) == frames[:3]


def test_strips_bars_and_csv(synthetic_dir, masks, tmp_path):
    out = tmp_path / "pictures"
    out.mkdir()
    (out / "notes.txt").write_text("not ours")
    rc = vis.main(_args(synthetic_dir, masks["shifted"], masks["exact"], out, "--frames", "3", "--height", "60",
                        "--gt"))
    assert rc == 0
    videos = sorted(p.name for p in (synthetic_dir / "DAVIS-2016" / "val" / "labels").iterdir())
    # Only the tool's names are written (atomically: no part files left), other files are kept.
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{v}.png" for v in videos] + ["bars.png", "per_video.csv", "notes.txt"])
    assert (out / "notes.txt").read_text() == "not ours"

    # Strip layout: title bar, 3 rows (a, b, ground truth) of 3 frames, 60 px high, aspect kept.
    tile_h, tile_w = 60, round(FRAME_HW[1] * 60 / FRAME_HW[0])
    strip = cv2.cvtColor(cv2.imread(str(out / f"{videos[0]}.png")), cv2.COLOR_BGR2RGB)
    top = vis.title_height(tile_h)
    assert strip.shape == (top + 3 * (tile_h + vis.GAP), 3 * tile_w + 2 * vis.GAP, 3)
    assert vis.strip_size(3, 3, (tile_h, tile_w)) == strip.shape[:2]
    assert (strip[:top] > 200).any()  # the title's text
    rows = [strip[top + vis.GAP + r * (tile_h + vis.GAP):][:tile_h] for r in range(3)]

    def has(img: np.ndarray, rgb) -> bool:
        return bool((img == np.array(rgb, np.uint8)).all(-1).any())

    assert has(rows[0], vis.ROW_COLORS_RGB[0]) and not has(rows[0], vis.ROW_COLORS_RGB[1])
    assert has(rows[1], vis.ROW_COLORS_RGB[1]) and not has(rows[1], vis.ROW_COLORS_RGB[0])
    assert has(rows[2], vis.ROW_COLORS_RGB[2])

    # CSV: the exact folder scores 100 J&F on every video (DAVIS protocol), the shifted one less.
    table = _read_csv(out / "per_video.csv")
    assert list(table[0]) == ["video", "J&F_shifted", "J&F_exact", "change"]
    assert table[-1]["video"] == "MEAN"
    per_video = table[:-1]
    assert sorted(r["video"] for r in per_video) == videos
    for r in per_video:
        assert float(r["J&F_exact"]) == pytest.approx(100.0)
        assert float(r["J&F_shifted"]) < 99.0
        assert float(r["change"]) == pytest.approx(float(r["J&F_exact"]) - float(r["J&F_shifted"]), abs=2e-3)
    # Bar (and row) order: largest gain first; a larger shift loses more, so the order follows the shifts.
    changes = [float(r["change"]) for r in per_video]
    assert changes == sorted(changes, reverse=True)
    by_shift = [v for _, v in sorted(zip(SHIFTS, videos), reverse=True)]
    assert [r["video"] for r in per_video] == by_shift
    mean = np.mean([float(r["J&F_shifted"]) for r in per_video])
    assert float(table[-1]["J&F_shifted"]) == pytest.approx(mean, abs=2e-3)

    # The bar chart draws the videos in that order, with the means in the legend.
    scores = [vis.VideoScore(r["video"], float(r["J&F_shifted"]) / 100, float(r["J&F_exact"]) / 100, {}, {})
              for r in per_video]
    scores = scores[::-1]
    fig = vis.bar_figure(vis.bar_order(scores), ["shifted", "exact"], "J&F", "t")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == by_shift
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [f"shifted (mean {mean:.1f})", "exact (mean 100.0)"]
    bars = cv2.imread(str(out / "bars.png"))
    assert bars is not None and bars.shape[0] > 100


def test_defaults_subset_and_sparse_dataset(synthetic_dir, masks, tmp_path):
    video = sorted(p.name for p in (synthetic_dir / "DAVIS-2016" / "val" / "labels").iterdir())[2]
    out = tmp_path / "one"
    assert vis.main(_args(synthetic_dir, masks["shifted"], masks["exact"], out, "--videos", video)) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{video}.png", "bars.png", "per_video.csv"])
    strip = cv2.imread(str(out / f"{video}.png"))
    tile_w = round(FRAME_HW[1] * 240 / FRAME_HW[0])  # default: 5 frames, 240 px high, two rows
    assert strip.shape[:2] == (vis.title_height(240) + 2 * (240 + vis.GAP), 5 * tile_w + 4 * vis.GAP)

    # Other datasets: mean J over annotated frames (FBMS labels every 5th frame: 4 frames per strip).
    out = tmp_path / "fbms"
    assert vis.main(_args(synthetic_dir, masks["exact"], masks["shifted"], out, "--dataset", "FBMS",
                          "--height", "48", labels=("exact", "shifted"))) == 0
    table = _read_csv(out / "per_video.csv")
    assert list(table[0]) == ["video", "J_exact", "J_shifted", "change"]
    assert all(float(r["J_exact"]) == pytest.approx(100.0) for r in table[:-1])
    assert all(float(r["change"]) < 0 for r in table)
    name = table[0]["video"]
    strip = cv2.imread(str(out / f"{name}.png"))
    assert strip.shape[1] == 4 * round(FRAME_HW[1] * 48 / FRAME_HW[0]) + 3 * vis.GAP


def test_missing_folder_or_mask_is_named(synthetic_dir, masks, tmp_path, caplog):
    out = tmp_path / "out"
    missing = tmp_path / "nowhere"
    with caplog.at_level(logging.ERROR):
        assert vis.main(_args(synthetic_dir, masks["shifted"], missing, out)) == 2
    assert str((missing / "DAVIS-2016").resolve()) in caplog.text and "'exact'" in caplog.text
    assert not out.exists()

    broken = tmp_path / "broken"
    shutil.copytree(masks["exact"], broken)
    gone = sorted((broken / "DAVIS-2016").glob("*/*.png"))[7]
    gone.unlink()
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert vis.main(_args(synthetic_dir, masks["shifted"], broken, out)) == 2
    assert str(gone.resolve()) in caplog.text

    empty = sorted((broken / "DAVIS-2016").glob("*/*.png"))[3]
    empty.write_bytes(b"")  # a 0-byte mask: unreadable, named
    shutil.copy(masks["exact"] / "DAVIS-2016" / gone.parent.name / gone.name, gone)
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert vis.main(_args(synthetic_dir, masks["shifted"], broken, out)) == 2
    assert str(empty.resolve()) in caplog.text

    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert vis.main(_args(synthetic_dir, masks["shifted"], masks["exact"], out, "--videos", "no_such_video")) == 2
    assert "no_such_video" in caplog.text


def test_jpeg_strips_only_with_a_prefix(synthetic_dir, masks, tmp_path):
    videos = sorted(p.name for p in (synthetic_dir / "DAVIS-2016" / "val" / "labels").iterdir())[:2]
    out = tmp_path / "docs"
    out.mkdir()
    (out / "bars.png").write_bytes(b"someone else's")
    rc = vis.main(_args(synthetic_dir, masks["shifted"], masks["exact"], out, "--videos", *videos, "--gt",
                        "--frames", "2", "--height", "48", "--strip_format", "jpg", "--strips_only",
                        "--prefix", "val_"))
    assert rc == 0
    # Only the strips, named <prefix><video>.jpg; no bar chart or CSV (an existing bars.png is kept).
    assert sorted(p.name for p in out.iterdir()) == sorted(["bars.png", *(f"val_{v}.jpg" for v in videos)])
    assert (out / "bars.png").read_bytes() == b"someone else's"
    for v in videos:
        data = (out / f"val_{v}.jpg").read_bytes()
        assert data[:3] == b"\xff\xd8\xff"  # JPEG, not PNG under a .jpg name
        strip = cv2.imread(str(out / f"val_{v}.jpg"))
        tile_w = round(FRAME_HW[1] * 48 / FRAME_HW[0])
        assert strip.shape[:2] == vis.strip_size(2, 3, (48, tile_w))

    # --prefix alone names the bar chart and the CSV too.
    out2 = tmp_path / "all"
    assert vis.main(_args(synthetic_dir, masks["shifted"], masks["exact"], out2, "--videos", videos[0],
                          "--frames", "1", "--height", "32", "--prefix", "run1_")) == 0
    assert sorted(p.name for p in out2.iterdir()) == sorted(
        [f"run1_{videos[0]}.png", "run1_bars.png", "run1_per_video.csv"])
    assert (out2 / f"run1_{videos[0]}.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("prefix", ["sub/val_", "..", "/abs"])
def test_prefix_must_stay_a_file_name(prefix, tmp_path):
    with pytest.raises(SystemExit) as e:
        vis.parse_args(["--pred_a", "a", "--pred_b", "b", "--out_dir", str(tmp_path), "--prefix", prefix])
    assert e.value.code == 2


def test_write_image_by_suffix(tmp_path):
    rgb = np.zeros((8, 12, 3), np.uint8)
    rgb[:, :6] = (255, 0, 0)
    for name, magic in (("a.png", b"\x89PNG"), ("b.jpg", b"\xff\xd8\xff"), ("c.JPEG", b"\xff\xd8\xff")):
        path = vis.write_image(tmp_path / name, rgb)
        assert path.read_bytes()[:len(magic)] == magic
        back = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        assert back.shape == rgb.shape and back[4, 2, 0] > 200 and back[4, 2, 2] < 60  # red stays red
    with pytest.raises(ValueError, match="must end in"):
        vis.write_image(tmp_path / "d.gif", rgb)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.jpg", "c.JPEG"]


def test_bar_figure_with_points():
    scores = [vis.VideoScore("up", 0.5, 0.7, {}, {}), vis.VideoScore("down", 0.8, 0.6, {}, {})]
    points = [([0.4, 0.6], [0.65, 0.75]), ([0.95, 0.65], [0.5, 0.7])]
    fig = vis.bar_figure(scores, ["off", "on"], "J&F", "t", points=points, points_label="one seed")
    ax = fig.axes[0]
    dots = [c.get_offsets() for c in ax.collections]
    assert len(dots) == 2  # one scatter per folder
    # Each dot sits on its own bar: a's left of the video's tick, b's right, at the given value.
    for side, offs in enumerate(dots):
        assert len(offs) == 4
        for k, (px, py) in enumerate(offs):
            video, seed = divmod(k, 2)
            assert py == pytest.approx(100 * points[video][side][seed])
            assert (px < video) if side == 0 else (px > video)
            assert abs(px - video) < 0.4
        assert offs[0][0] < offs[1][0]  # a bar's dots are spread apart, in order
    # The change is printed above the highest dot, not inside it.
    texts = {t.get_text(): t.get_position() for t in ax.texts}
    assert set(texts) == {"+20.0", "-20.0"}
    assert texts["-20.0"][1] > 95.0 and texts["+20.0"][1] > 75.0
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["off (mean 65.0)", "on (mean 65.0)", "one seed"]
    with pytest.raises(ValueError, match="points"):
        vis.bar_figure(scores, ["off", "on"], "J&F", "t", points=points[:1])
