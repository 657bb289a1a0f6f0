"""A small synthetic UVOS data set with exact masks and exact optical flow.

Each video shows one textured foreground object that translates, scales, rotates and
deforms over a textured background that pans (camera motion); some videos add a
distractor object fixed to the background (same look as objects, no own motion), so
appearance alone cannot tell which object is primary. Flow is rendered analytically:
background pixels move with the pan, object pixels with the object's similarity transform.

Domains differ in palette, texture frequency, noise and blur: ``source`` (labeled sets),
``target`` (unlabeled and test sets; a shifted style) so that adaptation methods have
something to adapt to.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from utils.flow import flow_to_image, write_flow_image

__all__ = ["Domain", "DOMAINS", "render_video", "make_synthetic_dataset", "SYNTHETIC_LAYOUT"]


@dataclass(frozen=True)
class Domain:
    """Visual style of a set of videos."""
    hue_range: tuple[float, float]  # object/background hues (OpenCV 0..180)
    texture_scale: float  # larger = coarser texture
    noise: float  # std of additive Gaussian noise (0..255)
    blur: float  # Gaussian blur sigma, 0 = none
    contrast: float  # saturation spread of textures
    hue_gap: tuple[float, float]  # object hue minus background hue (OpenCV units)
    brightness: float = 0.0  # palette shift of the value channel (0..255 units)


DOMAINS = {
    "source": Domain((0, 180), 6.0, 2.0, 0.0, 1.0, (40, 90)),
    "target": Domain((0, 180), 4.0, 6.0, 0.8, 0.7, (25, 60), brightness=-35.0),
}

# dataset -> list of (split, domain, number of videos, frames per video, label every k-th frame)
SYNTHETIC_LAYOUT = {
    "YouTubeVOS-2018": [("train", "source", 12, 30, 1)],
    "DAVIS-2016": [("train", "source", 6, 24, 1), ("val", "target", 4, 20, 1)],
    "FBMS": [("val", "target", 3, 20, 5)],
    "Youtube-objects": [("val", "target", 4, 16, 4)],
}
_YTO_CLASSES = ("aeroplane", "bird", "boat", "car", "cat", "cow", "dog", "horse", "motorbike", "train")


def _texture(rng: np.random.Generator, hw: tuple[int, int], dom: Domain, hue: float) -> np.ndarray:
    """Smooth random colour texture around ``hue`` (RGB uint8)."""
    h, w = hw
    small = (max(2, int(h / dom.texture_scale)), max(2, int(w / dom.texture_scale)))
    noise = rng.random((small[0], small[1], 3)).astype(np.float32)
    noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    hsv = np.empty((h, w, 3), np.float32)
    hsv[..., 0] = (hue + 20 * (noise[..., 0] - 0.5)) % 180
    hsv[..., 1] = np.clip(90 + 150 * noise[..., 1] * dom.contrast, 0, 255)
    hsv[..., 2] = np.clip(70 + dom.brightness + 170 * noise[..., 2], 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def _similarity(center, scale, angle):
    """2x2 linear part and offset mapping object-local coordinates to the frame."""
    c, s = math.cos(angle), math.sin(angle)
    return scale * np.array([[c, -s], [s, c]]), np.asarray(center, np.float64)


def render_video(rng: np.random.Generator, n_frames: int, hw: tuple[int, int], dom: Domain,
                 distractor: bool) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Render frames (RGB uint8), masks (uint8 0/1) and forward flows (float H x W x 2).

    ``flows[t]`` is the exact displacement of each pixel of frame t to frame t+1 (the last
    frame gets a copy of the previous flow, the project's convention for real flow too).
    """
    h, w = hw
    bg_hue = rng.uniform(*dom.hue_range)
    obj_hue = lambda: (bg_hue + rng.choice([-1, 1]) * rng.uniform(*dom.hue_gap)) % 180  # noqa: E731
    tex_obj = _texture(rng, (128, 128), dom, obj_hue())
    bg_size = (h + 2 * 40, w + 2 * 60)
    tex_bg = _texture(rng, bg_size, dom, bg_hue)
    radius = rng.uniform(0.18, 0.28) * min(h, w)
    # Smooth random trajectories: position, log-scale and angle, each a random walk with drift.
    pos = np.array([rng.uniform(0.35, 0.65) * w, rng.uniform(0.35, 0.65) * h])
    vel = rng.normal(0, 1.8, 2)
    scale, dscale = 1.0, rng.normal(0, 0.01)
    angle, dangle = rng.uniform(0, 2 * math.pi), rng.normal(0, 0.04)
    pan, dpan = np.array([40.0, 60.0])[::-1].copy(), rng.normal(0, 1.2, 2)  # (x, y) offset into tex_bg
    lobes, phase, amp = int(rng.integers(2, 5)), rng.uniform(0, 2 * math.pi), rng.uniform(0.08, 0.2)
    d_pos = np.array([rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h]) if distractor else None
    tex_d = _texture(rng, (128, 128), dom, obj_hue()) if distractor else None
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    poses = []
    for _ in range(n_frames + 1):
        poses.append((pos.copy(), scale, angle, pan.copy()))
        vel = 0.9 * vel + rng.normal(0, 0.6, 2)
        # Bounce off the borders so the object stays mostly in view.
        for k, lim in enumerate((w, h)):
            if not 0.2 * lim < pos[k] + vel[k] < 0.8 * lim:
                vel[k] = -vel[k]
        pos = pos + vel
        scale = float(np.clip(scale * math.exp(dscale + rng.normal(0, 0.01)), 0.7, 1.4))
        angle += dangle
        pan = np.clip(pan + dpan, [0, 0], [2 * 60 - 1, 2 * 40 - 1])

    frames, masks, flows = [], [], []
    for t in range(n_frames):
        (c0, s0, a0, p0), (c1, s1, a1, p1) = poses[t], poses[t + 1]
        # Background: frame pixel x shows texture at x + pan_t; it shows up at x + pan_t - pan_{t+1}.
        bg = cv2.remap(tex_bg, (xs + p0[0]).astype(np.float32), (ys + p0[1]).astype(np.float32), cv2.INTER_LINEAR)
        flow = np.empty((h, w, 2))
        flow[..., 0], flow[..., 1] = p0[0] - p1[0], p0[1] - p1[1]
        img = bg.copy()
        if distractor:
            # Fixed in the world: it moves exactly like the background.
            dc = d_pos - (p0 - poses[0][3])
            lx, ly = (xs - dc[0]) / (0.14 * w), (ys - dc[1]) / (0.12 * h)  # ellipse-local coords
            dm = lx ** 2 + ly ** 2 <= 1
            dtex = cv2.remap(tex_d, ((lx + 1) / 2 * 127).astype(np.float32), ((ly + 1) / 2 * 127).astype(np.float32),
                             cv2.INTER_LINEAR)
            img[dm] = dtex[dm]
        lin0, off0 = _similarity(c0, radius * s0, a0)
        inv0 = np.linalg.inv(lin0)
        q = np.einsum("ij,hwj->hwi", inv0, np.stack([xs - off0[0], ys - off0[1]], -1))  # object-local coords
        r, phi = np.hypot(q[..., 0], q[..., 1]), np.arctan2(q[..., 1], q[..., 0])
        boundary = 1 + amp * np.sin(lobes * phi + phase + 0.3 * t)  # deformation over time
        mask = r <= boundary
        otex = cv2.remap(tex_obj, ((q[..., 0] + 1.5) / 3 * 127).astype(np.float32),
                         ((q[..., 1] + 1.5) / 3 * 127).astype(np.float32), cv2.INTER_LINEAR)
        img[mask] = otex[mask]
        lin1, off1 = _similarity(c1, radius * s1, a1)
        moved = np.einsum("ij,hwj->hwi", lin1, q) + off1
        flow[mask] = moved[mask] - np.stack([xs, ys], -1)[mask]
        img = img.astype(np.float32)
        if dom.blur > 0:
            img = cv2.GaussianBlur(img, (0, 0), dom.blur)
        img += rng.normal(0, dom.noise, img.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
        masks.append(mask.astype(np.uint8))
        flows.append(flow)
    flows[-1] = flows[-2].copy() if n_frames > 1 else flows[-1]
    return frames, masks, flows


def make_synthetic_dataset(out_dir: str | Path, seed: int = 0, size: tuple[int, int] = (144, 256),
                           layout: dict | None = None, save_exact_flow: bool = False) -> dict[str, int]:
    """Write the synthetic data set in the project layout; returns frame counts per dataset/split.

    With ``save_exact_flow`` the exact flow also goes to ``<split>/flows_exact/<video>/<frame>.flo``.
    """
    from utils.flow import write_flo

    out_dir = Path(out_dir)
    layout = layout or SYNTHETIC_LAYOUT
    counts: dict[str, int] = {}
    for d_i, (dataset, splits) in enumerate(sorted(layout.items())):
        for s_i, (split, domain, n_videos, n_frames, label_every) in enumerate(splits):
            for v in range(n_videos):
                rng = np.random.default_rng([seed, d_i, s_i, v])
                name = (f"{_YTO_CLASSES[v % len(_YTO_CLASSES)]}_{v:04d}" if dataset == "Youtube-objects"
                        else f"{dataset.split('-')[0].lower()}{v:03d}")
                frames, masks, flows = render_video(rng, n_frames, size, DOMAINS[domain], distractor=v % 2 == 1)
                root = out_dir / dataset / split
                for t, (img, m, f) in enumerate(zip(frames, masks, flows)):
                    stem = f"{t:05d}"
                    (root / "images" / name).mkdir(parents=True, exist_ok=True)
                    Image.fromarray(img).save(root / "images" / name / f"{stem}.jpg", quality=95)
                    write_flow_image(root / "flows" / name / f"{stem}.jpg", flow_to_image(f))
                    if t % label_every == 0:
                        (root / "labels" / name).mkdir(parents=True, exist_ok=True)
                        Image.fromarray(m * 255, mode="L").save(root / "labels" / name / f"{stem}.png")
                    if save_exact_flow:
                        (root / "flows_exact" / name).mkdir(parents=True, exist_ok=True)
                        write_flo(root / "flows_exact" / name / f"{stem}.flo", f.astype(np.float32))
                counts[f"{dataset}/{split}"] = counts.get(f"{dataset}/{split}", 0) + n_frames
    return counts
