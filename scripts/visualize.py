"""Pictures comparing two mask folders (e.g. offline vs online masks) on an annotated dataset.

Example::

    python scripts/visualize.py --data_dir data --dataset DAVIS-2016 --split val \\
        --pred_a outputs/offline --pred_b outputs/online --labels offline online \\
        --out_dir outputs/pictures --frames 5 --gt

Both folders use the prediction layout ``<pred>/<dataset>/<video>/<frame>.png`` (0/255, read
as :mod:`evaluation` reads predictions: value >= 128 is foreground) and are scored with the
evaluation toolbox: DAVIS-2016 with the DAVIS protocol (J&F, first and last frame skipped),
any other dataset with mean J over annotated frames. Writes, and overwrites, only:

* ``<out_dir>/<video>.png``: a strip of ``--frames`` evenly spaced annotated frames, one row
  per folder (and a ground-truth row with ``--gt``), under a title with both scores
  (``<video>.jpg`` with ``--strip_format jpg``);
* ``<out_dir>/bars.png``: per-video scores of both folders, sorted by the change (b - a),
  largest gain first, with each folder's mean in the legend;
* ``<out_dir>/per_video.csv``: the same figures in percent, in the bar order, last row ``MEAN``.

``--strips_only`` writes the strips alone; ``--prefix`` puts a text before every name (e.g.
``--prefix val_`` writes ``val_<video>.png``). Every file is written atomically. Exit code 2:
a missing folder or file (named in the message).
"""
from __future__ import annotations

import argparse
import csv
import io
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from matplotlib.figure import Figure

# The repository is not pip-installed: make the packages importable from any cwd.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from datasets.io import read_image  # noqa: E402
from evaluation import EvaluationError, evaluate_dataset, protocol_for, read_gt, read_pred  # noqa: E402
from evaluation.files import labels_root, list_frames  # noqa: E402
from utils.io import FRAME_EXTS, atomic_write  # noqa: E402
from utils.paths import mask_path  # noqa: E402

logger = logging.getLogger("visualize")

BARS_NAME = "bars.png"
CSV_NAME = "per_video.csv"
GAP = 4  # pixels between tiles and rows of a strip
JPEG_QUALITY = 85  # of strips written with --strip_format jpg
ROW_COLORS_RGB = ((255, 96, 32), (32, 144, 255), (48, 208, 64))  # folder a, folder b, ground truth
BAR_COLORS = ("#f06020", "#2090ff")
BACKGROUND = 24  # grey level of the strip's title bar and gaps


class VisualizeError(Exception):
    """A problem with the inputs (the message names the files or folders)."""


@dataclass
class VideoScore:
    """Per-video score (a fraction in [0, 1]) of both folders and the per-frame J of each."""

    name: str
    a: float
    b: float
    frame_j_a: dict[str, float]
    frame_j_b: dict[str, float]

    @property
    def change(self) -> float:
        """Score of b minus score of a."""
        return self.b - self.a


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description="Compare two mask folders on an annotated dataset: one picture strip per video, "
                    "a bar chart of per-video scores and a CSV.")
    p.add_argument("--data_dir", type=Path, default=Path("data"),
                   help="root of the data <data_dir>/<dataset>/<split>/{images,labels}/... (default: %(default)s)")
    p.add_argument("--dataset", default="DAVIS-2016",
                   help="dataset folder name; DAVIS-2016 is scored with J&F, others with mean J (default: %(default)s)")
    p.add_argument("--split", default="val", help="data split folder (default: %(default)s)")
    p.add_argument("--pred_a", type=Path, required=True,
                   help="first mask folder, <pred_a>/<dataset>/<video>/<frame>.png")
    p.add_argument("--pred_b", type=Path, required=True, help="second mask folder, same layout")
    p.add_argument("--labels", nargs=2, default=["offline", "online"], metavar=("A", "B"),
                   help="names of the two folders in titles, legend and CSV (default: offline online)")
    p.add_argument("--out_dir", type=Path, required=True,
                   help="where <video>.png, bars.png and per_video.csv go (only these names are written)")
    p.add_argument("--frames", type=int, default=5,
                   help="evenly spaced annotated frames per strip (default: %(default)s)")
    p.add_argument("--height", type=int, default=240,
                   help="height of each frame in a strip, pixels (default: %(default)s)")
    p.add_argument("--videos", nargs="+", default=None, help="only these videos (default: every annotated video)")
    p.add_argument("--gt", action="store_true", help="add a ground-truth row to each strip")
    p.add_argument("--strip_format", choices=["png", "jpg"], default="png",
                   help=f"file format of the strips; jpg (quality {JPEG_QUALITY}) is much smaller for photos "
                        "(default: %(default)s)")
    p.add_argument("--strips_only", action="store_true",
                   help="write the strips only, not the bar chart and the CSV")
    p.add_argument("--prefix", default="",
                   help="text put before every written file name, e.g. val_ (default: none)")
    p.add_argument("--workers", type=int, default=os.cpu_count(),
                   help="worker processes for scoring, 1 = no pool (default: %(default)s = os.cpu_count())")
    p.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="logging level (default: %(default)s)")
    args = p.parse_args(argv)
    if args.frames < 1:
        p.error("--frames must be at least 1")
    if args.height < 16:
        p.error("--height must be at least 16 pixels")
    if args.labels[0] == args.labels[1]:
        p.error("--labels must be two different names")
    if Path(args.prefix).name != args.prefix or args.prefix in (".", ".."):
        p.error("--prefix must be part of a file name (no path separator)")
    return args


def metric_of(dataset: str) -> tuple[str, str, str]:
    """``(protocol, metric key, display name)`` used to score ``dataset``'s binary masks."""
    if protocol_for(dataset) == "davis":
        return "davis", "JF_mean", "J&F"
    return "sparse", "J_mean", "J"


def check_mask_folder(pred_dir: Path, dataset: str, label: str) -> Path:
    """``<pred_dir>/<dataset>``; raises ``FileNotFoundError`` naming it when it is not a folder."""
    root = Path(pred_dir) / dataset
    if not root.is_dir():
        raise FileNotFoundError(f"mask folder of {label!r} not found: {root.resolve()} "
                                f"(expected <pred_dir>/<dataset>/<video>/<frame>.png)")
    return root


def score_folders(args: argparse.Namespace) -> list[VideoScore]:
    """Score both folders with the evaluation toolbox; one :class:`VideoScore` per video, by name."""
    protocol, key, _ = metric_of(args.dataset)
    results = []
    for pred in (args.pred_a, args.pred_b):
        results.append(evaluate_dataset(pred, args.data_dir, args.dataset, split=args.split, protocol=protocol,
                                         workers=args.workers, sequences=args.videos))
    by_name_b = {s.name: s for s in results[1].sequences}
    scores = []
    for sa in results[0].sequences:
        sb = by_name_b[sa.name]
        scores.append(VideoScore(sa.name, float(sa.metrics[key]), float(sb.metrics[key]),
                                 dict(zip(sa.frames, sa.per_frame["J"])), dict(zip(sb.frames, sb.per_frame["J"]))))
    return scores


def bar_order(scores: Sequence[VideoScore]) -> list[VideoScore]:
    """Videos sorted by change (b - a), largest gain first; ties by name."""
    return sorted(scores, key=lambda s: (-s.change, s.name))


def pick_frames(frames: Sequence[str], n: int) -> list[str]:
    """``n`` evenly spaced frames from first to last (all of them when there are at most ``n``)."""
    if len(frames) <= n:
        return list(frames)
    idx = np.unique(np.round(np.linspace(0, len(frames) - 1, n)).astype(int))
    return [frames[i] for i in idx]


def image_path(images_dir: Path, frame: str) -> Path:
    """The frame's image file (``.jpg``, ``.jpeg`` or ``.png``); raises ``FileNotFoundError`` naming it."""
    for ext in FRAME_EXTS:
        p = images_dir / f"{frame}{ext}"
        if p.is_file():
            return p
    raise FileNotFoundError(f"cannot read image {(images_dir / frame).resolve()}.jpg: file not found "
                            f"(nor .jpeg / .png)")


def title_height(tile_h: int) -> int:
    """Height in pixels of a strip's title bar for tiles ``tile_h`` pixels high."""
    return max(20, round(0.14 * tile_h))


def strip_size(n_frames: int, n_rows: int, tile_hw: tuple[int, int]) -> tuple[int, int]:
    """``(height, width)`` of a strip of ``n_frames`` columns and ``n_rows`` rows of ``tile_hw`` tiles."""
    th, tw = tile_hw
    return title_height(th) + n_rows * th + n_rows * GAP, n_frames * tw + (n_frames - 1) * GAP


def overlay(rgb: np.ndarray, mask: np.ndarray, color: Sequence[int], alpha: float = 0.45) -> np.ndarray:
    """``rgb`` with ``mask`` (non-zero = object) as a translucent colour fill plus its outer contour."""
    fg = mask > 0
    out = rgb.copy()
    col = np.asarray(color, dtype=np.float32)
    out[fg] = np.clip((1 - alpha) * rgb[fg].astype(np.float32) + alpha * col, 0, 255).astype(np.uint8)
    contours, _ = cv2.findContours(fg.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, tuple(int(c) for c in color), max(1, round(min(rgb.shape[:2]) / 120)),
                     lineType=cv2.LINE_AA)
    return out


def put_label(img: np.ndarray, text: str, org: tuple[int, int], scale: float, color: Sequence[int] = (255, 255, 255),
              box: bool = True) -> None:
    """Draw ``text`` with its baseline-left corner at ``org``, on a dark box when ``box`` (in place)."""
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, max(1, round(scale * 2))
    (w, h), base = cv2.getTextSize(text, font, scale, thick)
    x, y = org
    if box:
        pad = max(2, round(h * 0.3))
        cv2.rectangle(img, (x - pad, y - h - pad), (x + w + pad, y + base + pad // 2), (0, 0, 0), -1)
    cv2.putText(img, text, (x, y), font, scale, tuple(int(c) for c in color), thick, lineType=cv2.LINE_AA)


def fit_scale(text: str, max_w: int, max_h: int, scale: float) -> float:
    """The largest font scale <= ``scale`` at which ``text`` fits in ``max_w`` x ``max_h`` pixels."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    while scale > 0.2:
        (w, h), base = cv2.getTextSize(text, font, scale, max(1, round(scale * 2)))
        if w <= max_w and h + base <= max_h:
            break
        scale *= 0.9
    return scale


def signed(x: float) -> str:
    """``x`` with one decimal and its sign, e.g. ``+2.8``; never ``-0.0``."""
    return f"{round(x, 1) + 0.0:+.1f}"


def score_title(score: VideoScore, labels: Sequence[str], metric: str) -> str:
    """E.g. ``bear  J&F offline 71.2 -> online 74.0 (+2.8)``."""
    a, b = 100 * score.a, 100 * score.b
    return f"{score.name}  {metric} {labels[0]} {a:.1f} -> {labels[1]} {b:.1f} ({signed(b - a)})"


def render_strip(data_dir: Path, dataset: str, split: str, score: VideoScore, pred_roots: Sequence[Path],
                 labels: Sequence[str], metric: str, n_frames: int, tile_h: int, with_gt: bool) -> np.ndarray:
    """The RGB strip of one video: title bar, then one row per mask folder (and ground truth)."""
    gt_root = labels_root(data_dir, dataset, split)
    images_dir = Path(data_dir) / dataset / split / "images" / score.name
    frames = pick_frames(list_frames(gt_root / score.name), n_frames)
    rows: list[tuple[str, Path | None, dict[str, float], Sequence[int]]] = [
        (labels[0], pred_roots[0], score.frame_j_a, ROW_COLORS_RGB[0]),
        (labels[1], pred_roots[1], score.frame_j_b, ROW_COLORS_RGB[1]),
    ]
    if with_gt:
        rows.append(("ground truth", None, {}, ROW_COLORS_RGB[2]))
    tiles: list[list[np.ndarray]] = [[] for _ in rows]
    tile_w = 0
    font = max(tile_h / 480, 0.33)  # cv2 font scale of the captions (1.0 at 480 px high)
    for frame in frames:
        img_path, gt_path = image_path(images_dir, frame), mask_path(gt_root, score.name, frame)
        rgb = read_image(img_path)
        h, w = rgb.shape[:2]
        tile_w = tile_w or max(1, round(w * tile_h / h))
        small = cv2.resize(rgb, (tile_w, tile_h), interpolation=cv2.INTER_AREA)
        for r, (label, mask_root, frame_j, color) in enumerate(rows):
            path = gt_path if mask_root is None else mask_path(mask_root, score.name, frame)
            mask = read_gt(path) if mask_root is None else read_pred(path)
            if mask.shape != (h, w):
                raise VisualizeError(f"mask size {mask.shape[1]}x{mask.shape[0]} (WxH) differs from image size "
                                     f"{w}x{h}: {path.resolve()} vs {img_path.resolve()}")
            tile = overlay(small, cv2.resize(mask.astype(np.uint8), (tile_w, tile_h),
                                             interpolation=cv2.INTER_NEAREST), color)
            caption = frame if frame not in frame_j else f"{frame}  J {100 * frame_j[frame]:.1f}"
            put_label(tile, caption, (4, tile_h - max(4, round(10 * font))), 0.9 * font)
            if frame == frames[0]:
                put_label(tile, label, (4, max(12, round(30 * font))), 1.1 * font, color)
            tiles[r].append(tile)
    height, width = strip_size(len(frames), len(rows), (tile_h, tile_w))
    strip = np.full((height, width, 3), BACKGROUND, np.uint8)
    top = title_height(tile_h)
    title = score_title(score, labels, metric)
    scale = fit_scale(title, width - 8, top - 4, 1.4 * font)
    (_, th), base = cv2.getTextSize(title, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, round(scale * 2)))
    put_label(strip, title, (4, (top + th - base) // 2), scale, box=False)
    for r, row in enumerate(tiles):
        y = top + GAP + r * (tile_h + GAP)
        for c, tile in enumerate(row):
            x = c * (tile_w + GAP)
            strip[y:y + tile_h, x:x + tile_w] = tile
    return strip


def write_image(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB image atomically, as PNG or JPEG (quality ``JPEG_QUALITY``) by ``path``'s suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        params = [cv2.IMWRITE_PNG_COMPRESSION, 6]
    elif suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    else:
        raise ValueError(f"cannot write {path}: the name must end in .png, .jpg or .jpeg")
    ok, buf = cv2.imencode(suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise OSError(f"cannot encode {path} as {suffix[1:].upper()}")
    data = buf.tobytes()
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def bar_figure(ordered: Sequence[VideoScore], labels: Sequence[str], metric: str, title: str,
               points: Sequence[tuple[Sequence[float], Sequence[float]]] | None = None,
               points_label: str = "one run") -> Figure:
    """Grouped bars of per-video scores (percent), in the given order, means in the legend.

    ``points``: optionally, per video in the same order, the single values (fractions) of a and
    of b that the bars summarise (e.g. one per seed), drawn as dots on their bars and named
    ``points_label`` in the legend.
    """
    n = len(ordered)
    if points is not None and len(points) != n:
        raise ValueError(f"points: {len(points)} videos, bars: {n}")
    fig = Figure(figsize=(max(6.0, 0.55 * n + 2.0), 4.5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(n)
    a = np.array([100 * s.a for s in ordered])
    b = np.array([100 * s.b for s in ordered])
    width = 0.4
    handles = [ax.bar(x - width / 2, a, width, color=BAR_COLORS[0], label=f"{labels[0]} (mean {a.mean():.1f})"),
               ax.bar(x + width / 2, b, width, color=BAR_COLORS[1], label=f"{labels[1]} (mean {b.mean():.1f})")]
    top = np.maximum(a, b)
    if points is not None:
        for side, offset in ((0, -width / 2), (1, width / 2)):
            # spread a bar's dots across its middle half so that equal values stay apart
            px = [xi + offset + (k - (len(p[side]) - 1) / 2) * width / (2 * max(1, len(p[side]) - 1))
                  for xi, p in zip(x, points) for k in range(len(p[side]))]
            py = [100 * v for p in points for v in p[side]]
            dots = ax.scatter(px, py, s=14, facecolors="white", edgecolors="black", linewidths=0.8, zorder=3,
                              label=points_label)
        handles.append(dots)
        top = np.maximum(top, [100 * max([*p[0], *p[1]], default=0.0) for p in points])
    for xi, ti, ai, bi in zip(x, top, a, b):
        ax.text(xi, ti + 1.0, signed(bi - ai), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, [s.name for s in ordered], rotation=60 if n > 6 else 0, ha="right" if n > 6 else "center",
                  rotation_mode="anchor", fontsize=8)
    ax.set_ylim(0, 108)
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(title, fontsize=10)
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig


def csv_text(ordered: Sequence[VideoScore], labels: Sequence[str], metric: str) -> str:
    """The CSV: ``video, <metric>_<a>, <metric>_<b>, change`` in percent, last row ``MEAN``."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["video", f"{metric}_{labels[0]}", f"{metric}_{labels[1]}", "change"])
    for s in ordered:
        w.writerow([s.name, f"{100 * s.a:.3f}", f"{100 * s.b:.3f}", f"{100 * s.change:.3f}"])
    ma, mb = 100 * np.mean([s.a for s in ordered]), 100 * np.mean([s.b for s in ordered])
    w.writerow(["MEAN", f"{ma:.3f}", f"{mb:.3f}", f"{mb - ma:.3f}"])
    return buf.getvalue()


def run(args: argparse.Namespace) -> list[Path]:
    """Score both folders, write the strips (and unless ``--strips_only`` the bar chart and the
    CSV, last); return the written paths."""
    roots = [check_mask_folder(p, args.dataset, lab) for p, lab in zip((args.pred_a, args.pred_b), args.labels)]
    _, _, metric = metric_of(args.dataset)
    scores = score_folders(args)
    prefix, strip_ext = args.prefix, "." + args.strip_format
    if not args.strips_only:
        clash = sorted({s.name for s in scores} & {Path(BARS_NAME).stem, Path(CSV_NAME).stem})
        if clash:
            raise VisualizeError(f"video names {clash} would overwrite {BARS_NAME} / {CSV_NAME} in {args.out_dir}")
    out_dir = Path(args.out_dir)
    written = []
    for s in scores:
        strip = render_strip(args.data_dir, args.dataset, args.split, s, roots, args.labels, metric,
                             args.frames, args.height, args.gt)
        written.append(write_image(out_dir / f"{prefix}{s.name}{strip_ext}", strip))
        logger.info("%s", score_title(s, args.labels, metric))
    if args.strips_only:
        return written
    ordered = bar_order(scores)
    title = (f"{args.dataset} {args.split}: per-video {metric}, sorted by change "
             f"({args.labels[1]} - {args.labels[0]})")
    fig = bar_figure(ordered, args.labels, metric, title)
    written.append(atomic_write(out_dir / f"{prefix}{BARS_NAME}", lambda tmp: fig.savefig(tmp, format="png")))
    text = csv_text(ordered, args.labels, metric)
    written.append(atomic_write(out_dir / f"{prefix}{CSV_NAME}", lambda tmp: tmp.write_text(text, newline="")))
    return written


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for a missing or unreadable folder or file)."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        written = run(args)
    except (EvaluationError, OSError, VisualizeError) as err:
        # Every error names the file or folder at fault: print it, not a traceback.
        logger.error("%s", err)
        return 2
    n = len(written) - (0 if args.strips_only else 2)
    where = f"{Path(args.out_dir).resolve()}/{args.prefix}<video>.{args.strip_format}"
    if args.strips_only:
        print(f"wrote {n} strip{'s' * (n != 1)} to {where}")
    else:
        print(f"wrote {n} strip{'s' * (n != 1)} to {where}, {written[-2].resolve()} and {written[-1].resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
