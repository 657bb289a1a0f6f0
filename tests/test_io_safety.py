"""Nothing a user has is lost or silently wrong: atomic writes, and readers that refuse broken files.

Interruptions are simulated by write functions that write part of a file and then fail, or
by a child process that SIGKILLs itself in the middle of a save.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from datasets.io import read_flow, read_image, read_mask, write_mask, write_probability
from engine.inference import MaskWriter
from models.loading import load_model_weights
from utils.checkpoint import load_checkpoint, remove_orphan_tmp, save_checkpoint
from utils.flow import read_flo, read_flow_image, write_flo
from utils.io import atomic_write, image_file_problem, list_files, part_path, read_rgb

ROOT = Path(__file__).resolve().parents[1]


def _frame(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (5, 5), 2)


def _jpeg(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), _frame(seed=seed), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((_frame()[..., 0] > 128).astype(np.uint8) * 255, mode="L").save(path)
    return path


def _cut(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


# --------------------------------------------------------------------------- the writer
def test_atomic_write_failure_keeps_old_file_and_leaves_no_part(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    atomic_write(target, lambda tmp: tmp.write_bytes(b"old content"))

    def half_then_fail(tmp: Path) -> None:
        tmp.write_bytes(b"new con")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old content"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]

    fresh = tmp_path / "never.bin"
    with pytest.raises(OSError):
        atomic_write(fresh, half_then_fail)
    assert not fresh.exists() and not part_path(fresh).exists()


def test_atomic_write_uses_hidden_part_file_and_replaces_links(tmp_path):
    seen = []
    target = tmp_path / "a.txt"
    atomic_write(target, lambda tmp: (seen.append(tmp), tmp.write_text("x")), fsync=True)
    assert seen == [tmp_path / ".a.txt.part"] and target.read_text() == "x"
    assert list_files(tmp_path, (".txt", ".part")) == [target]  # the part file would be hidden
    # A symlink at the target is replaced, never written through (it may point into a download).
    src = tmp_path / "download.jpg"
    src.write_bytes(b"original")
    link = tmp_path / "linked.jpg"
    link.symlink_to(src)
    atomic_write(link, lambda tmp: tmp.write_bytes(b"new"))
    assert src.read_bytes() == b"original" and not link.is_symlink() and link.read_bytes() == b"new"
    # A leftover part file that is a symlink is not written through either.
    os.symlink(src, part_path(target))
    atomic_write(target, lambda tmp: tmp.write_text("y"))
    assert src.read_bytes() == b"original" and target.read_text() == "y"


def _failing_png_save(monkeypatch):
    """Make PIL write the first bytes of a PNG and then fail, like a full disk or a kill."""
    def save(self, fp, *a, **k):
        with open(fp, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n\x00\x00")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", save)


def test_write_mask_and_probability_are_atomic(tmp_path, monkeypatch):
    mask = _frame()[..., 0] > 128
    write_mask(tmp_path / "keep.png", mask)
    before = (tmp_path / "keep.png").read_bytes()
    _failing_png_save(monkeypatch)
    for fn, arg in ((write_mask, mask), (write_probability, mask * 0.7)):
        with pytest.raises(OSError):
            fn(tmp_path / "new.png", arg)
        with pytest.raises(OSError):
            fn(tmp_path / "keep.png", arg)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.png"]
    assert (tmp_path / "keep.png").read_bytes() == before


def test_mask_writer_leaves_no_partial_png(tmp_path, monkeypatch):
    writer = MaskWriter(tmp_path / "masks", tmp_path / "probs")
    prob = np.linspace(0, 1, 48 * 64).reshape(48, 64)
    _failing_png_save(monkeypatch)
    with pytest.raises(OSError):
        writer.write("DAVIS-2016", "bear", "00000", prob)
    assert list(tmp_path.rglob("*.png")) == [] and list(tmp_path.rglob(".*.part")) == []
    monkeypatch.undo()
    writer.write("DAVIS-2016", "bear", "00000", prob)
    m = read_mask(tmp_path / "masks/DAVIS-2016/bear/00000.png")
    np.testing.assert_array_equal(m, (prob >= 0.5).astype(np.uint8))
    with Image.open(tmp_path / "probs/DAVIS-2016/bear/00000.png") as im:
        assert abs(int(np.asarray(im)[-1, -1]) - 255) <= 1
    assert not list(tmp_path.rglob(".*.part"))


def test_flo_write_is_atomic_and_bad_flo_names_file(tmp_path, monkeypatch):
    flow = np.random.default_rng(0).normal(size=(6, 8, 2)).astype(np.float32)
    write_flo(tmp_path / "a.flo", flow)
    np.testing.assert_array_equal(read_flo(tmp_path / "a.flo"), flow)
    header_only = tmp_path / "header.flo"
    header_only.write_bytes((tmp_path / "a.flo").read_bytes()[:6])
    with pytest.raises(ValueError, match="header.flo.*truncated"):
        read_flo(header_only)
    cut = tmp_path / "cut.flo"
    cut.write_bytes((tmp_path / "a.flo").read_bytes())
    with pytest.raises(ValueError, match="cut.flo.*truncated"):
        read_flo(_cut(cut))
    # An interrupted write keeps the old file.
    def half_then_fail(self, data):
        open(self, "wb").write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_fail)
    with pytest.raises(OSError):
        write_flo(tmp_path / "a.flo", flow * 2)
    monkeypatch.undo()
    np.testing.assert_array_equal(read_flo(tmp_path / "a.flo"), flow)


# --------------------------------------------------------------------------- readers
def test_truncated_jpeg_frame_is_an_error_naming_the_file(tmp_path):
    good = _jpeg(tmp_path / "good.jpg")
    bad = _cut(_jpeg(tmp_path / "images/bear/00003.jpg"))
    # OpenCV alone decodes the cut file, grey below the cut: the silent corruption we refuse.
    assert cv2.imread(str(bad)) is not None
    for reader in (read_image, read_flow, read_flow_image, read_rgb):
        assert reader(good).shape == (48, 64, 3)
        with pytest.raises(OSError, match=r"images/bear/00003\.jpg.*truncated JPEG"):
            reader(bad)
    assert "truncated JPEG" in image_file_problem(bad)
    assert image_file_problem(good) is None


def test_jpeg_with_bytes_after_its_end_is_still_read(tmp_path):
    path = _jpeg(tmp_path / "padded.jpg")
    ref = read_image(path)
    path.write_bytes(path.read_bytes() + b"\x00" * 100)  # some cameras pad after the end marker
    np.testing.assert_array_equal(read_image(path), ref)
    assert image_file_problem(path) is None


@pytest.mark.parametrize("how", ["empty", "truncated"])
def test_broken_png_is_an_error_naming_the_file(tmp_path, how):
    path = _png(tmp_path / "labels/bear/00001.png")
    if how == "empty":
        path.write_bytes(b"")
    else:
        _cut(path)
    word = "empty" if how == "empty" else "truncated PNG"
    for reader in (read_mask, read_image, read_flow_image):
        with pytest.raises(OSError, match=rf"labels/bear/00001\.png.*{word}"):
            reader(path)


def test_missing_and_foreign_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        read_image(tmp_path / "nope.jpg")
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"this is not an image at all")
    with pytest.raises(OSError, match="junk.jpg"):
        read_image(junk)
    with pytest.raises(OSError, match="junk.jpg"):
        read_mask(junk)
    assert "not an image" in image_file_problem(junk)


def test_truncation_check_is_cheap(tmp_path):
    """The check must not slow frame reading: compare with a plain OpenCV decode of an 854x480 JPEG."""
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), cv2.resize(_frame(), (854, 480)), [cv2.IMWRITE_JPEG_QUALITY, 95])

    def best(fn, n=15):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    plain = best(lambda: cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
    checked = best(lambda: read_rgb(path))
    assert checked < plain * 1.3 + 2e-4, (checked, plain)


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("content", [123, [1, 2], {"a": 1, "b": 2}, {"model": 5}, {"model": {"w": 1}},
                                     {"model": {"w": torch.zeros(1)}, "teacher": {"w": "x"}}])
def test_random_pth_is_not_a_checkpoint(tmp_path, content):
    from models import build_model

    path = tmp_path / "random.pth"
    torch.save(content, path)
    model = build_model("xxs")
    if isinstance(content, dict) and "teacher" in content:
        load_checkpoint(path)  # a valid 'model' entry...
        with pytest.raises(ValueError, match=rf"{path} is not a checkpoint: .*'teacher'.*'w' holds str"):
            load_model_weights(model, path, key="teacher")  # ...but the requested one is not a state dict
        return
    with pytest.raises(ValueError, match=rf"{path} is not a checkpoint: "):
        load_checkpoint(path)
    with pytest.raises(ValueError, match=rf"{path} is not a checkpoint: "):
        load_model_weights(model, path)


def test_checkpoint_round_trip_and_part_file_name(tmp_path, monkeypatch):
    path = tmp_path / "run" / "checkpoint_last.pth"
    saved = []
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: (saved.append(Path(f)), real_save(obj, f, *a, **k)))
    save_checkpoint(path, {"model": {"w": torch.ones(2)}, "epoch": 3})
    monkeypatch.undo()
    assert saved == [tmp_path / "run" / ".checkpoint_last.pth.part"]
    ck = load_checkpoint(path)
    assert ck["epoch"] == 3 and torch.equal(ck["model"]["w"], torch.ones(2))


_KILLED_SAVE = """
import os, signal, sys, torch
sys.path.insert(0, {root!r})
from utils.checkpoint import save_checkpoint
real = torch.save
def half_then_die(obj, f, *a, **k):
    real(obj, f, *a, **k)
    data = open(f, "rb").read()
    open(f, "wb").write(data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = half_then_die
save_checkpoint({path!r}, {{"model": {{"w": torch.zeros(1000)}}, "epoch": 2}})
"""


def test_killed_save_keeps_old_checkpoint_and_orphan_is_cleaned(tmp_path):
    path = tmp_path / "checkpoint_last.pth"
    save_checkpoint(path, {"model": {"w": torch.ones(1000)}, "epoch": 1})
    proc = subprocess.run([sys.executable, "-c", _KILLED_SAVE.format(root=str(ROOT), path=str(path))],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert load_checkpoint(path)["epoch"] == 1  # the old checkpoint, whole
    part = tmp_path / ".checkpoint_last.pth.part"
    assert part.is_file() and 0 < part.stat().st_size
    old_style = tmp_path / "checkpoint_best.pth.k2j4h1.tmp"  # left by earlier versions
    old_style.write_bytes(b"x")
    other = tmp_path / "notes.tmp"
    other.write_text("user file")
    assert sorted(remove_orphan_tmp(tmp_path)) == sorted([part, old_style])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_last.pth", "notes.tmp"]
    assert remove_orphan_tmp(tmp_path / "absent") == []


def test_mask_path_is_the_writers_and_the_evaluations_rule(tmp_path):
    """One rule for where a frame's mask lies: the writer, the evaluation and the tools agree."""
    from evaluation.files import frame_paths
    from utils.paths import mask_path

    assert mask_path("r", "v", "00003") == Path("r/v/00003.png")
    assert mask_path("r", "v", "00003", "DAVIS-2016") == Path("r/DAVIS-2016/v/00003.png")
    w = MaskWriter(tmp_path / "m")
    w.write("D", "v", "00001", np.ones((4, 5), np.float32))
    assert mask_path(tmp_path / "m", "v", "00001", "D").is_file()
    assert MaskWriter(tmp_path, per_dataset=False).relative("D", "v", "00001") == mask_path("", "v", "00001")
    assert frame_paths(tmp_path / "m" / "D", "v", ["00001"]) == [mask_path(tmp_path / "m", "v", "00001", "D")]
