"""Augmentations. Geometry is drawn once per sample and applied to image, flow and mask."""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from utils.flow import transform_flow_image

ZERO_FLOW_RGB = 255  # the flow image's encoding of "no motion": white



@dataclass
class GeometricParams:
    """One draw of the geometric augmentation (kept for tests and debugging)."""
    scale: float
    angle: float  # degrees, counter-clockwise on screen
    flip: bool
    center: tuple[float, float]  # (x, y) in the input that lands at the crop centre


def affine_matrix(p: GeometricParams, out_hw: tuple[int, int]) -> np.ndarray:
    """2x3 matrix mapping input pixel coordinates to output (crop) coordinates."""
    t = math.radians(p.angle)
    c, s = math.cos(t), math.sin(t)
    rot = np.array([[c, s], [-s, c]])  # screen CCW with y pointing down (as cv2)
    flip = np.diag([-1.0 if p.flip else 1.0, 1.0])
    lin = p.scale * rot @ flip
    out_c = np.array([(out_hw[1] - 1) / 2, (out_hw[0] - 1) / 2])
    shift = out_c - lin @ np.asarray(p.center)
    return np.concatenate([lin, shift[:, None]], 1)


def vector_matrix(p: GeometricParams) -> np.ndarray:
    """How flow vectors turn under ``p`` (scale left out: flow images are normalised per frame)."""
    t = math.radians(p.angle)
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, s], [-s, c]]) @ np.diag([-1.0 if p.flip else 1.0, 1.0])


def warp_sample(image: np.ndarray, flow: np.ndarray, mask: np.ndarray | None, p: GeometricParams,
                out_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Apply one geometric draw to image (bilinear), flow image (bilinear + vector turn), mask (nearest).

    Outside the frame all three repeat their edge pixel (one fill rule, so image, flow and mask
    agree there); :meth:`TrainAugment.draw` keeps the crop inside the frame, so training never
    samples it.
    """
    m = affine_matrix(p, out_hw)
    size = (out_hw[1], out_hw[0])
    image = cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    flow = cv2.warpAffine(flow, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if p.flip or p.angle:
        flow = transform_flow_image(torch.from_numpy(flow).permute(2, 0, 1), vector_matrix(p)).permute(1, 2, 0).numpy()
    if mask is not None:
        mask = cv2.warpAffine(mask, m, size, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    return image, flow, mask


def crop_extent(out_hw: tuple[int, int], angle: float, scale: float) -> tuple[float, float]:
    """Half width and half height, in input pixels, of the box around a crop turned by ``angle``.

    Measured between pixel centres (a crop of W pixels spans W - 1), as ``cv2.warpAffine`` samples.
    """
    t = math.radians(angle)
    c, s = abs(math.cos(t)), abs(math.sin(t))
    w, h = out_hw[1] - 1, out_hw[0] - 1
    return (w * c + h * s) / (2 * scale), (w * s + h * c) / (2 * scale)


def min_inside_scale(in_hw: tuple[int, int], out_hw: tuple[int, int], angle: float) -> float:
    """The smallest scale at which a crop turned by ``angle`` fits inside the frame."""
    hx, hy = crop_extent(out_hw, angle, 1.0)
    return max(2 * hx / max(in_hw[1] - 1, 1), 2 * hy / max(in_hw[0] - 1, 1))


class TrainAugment:
    """Random scale, crop, horizontal flip and small rotation (paired), photometric jitter (image).

    Every crop lies inside the frame: a zoom-out or a turned corner never shows pixels from
    outside it. Filling them (a mirrored image with a background mask and still flow, as
    before) taught mirrored objects as background. ``scale_range`` multiplies the scale at
    which the unturned crop just covers the frame; draws below what the drawn angle needs to
    stay inside are taken from the part of the range above it (its upper end when none is).
    """

    def __init__(self, out_hw: tuple[int, int] = (384, 640), scale_range: tuple[float, float] = (0.8, 1.25),
                 max_rotation: float = 10.0, flip_prob: float = 0.5, color_jitter: float = 0.3,
                 blur_prob: float = 0.1, zero_flow_prob: float = 0.0):
        if not 0 <= zero_flow_prob <= 1:
            raise ValueError(f"zero_flow_prob must be in [0, 1], got {zero_flow_prob}")
        self.out_hw, self.scale_range, self.max_rotation = tuple(out_hw), scale_range, max_rotation
        self.flip_prob, self.color_jitter, self.blur_prob = flip_prob, color_jitter, blur_prob
        self.zero_flow_prob = zero_flow_prob

    def draw(self, in_hw: tuple[int, int], rng: np.random.Generator) -> GeometricParams:
        h, w = in_hw
        angle = float(rng.uniform(-self.max_rotation, self.max_rotation))
        base = min_inside_scale(in_hw, self.out_hw, 0.0)
        need = min_inside_scale(in_hw, self.out_hw, angle)
        lo, hi = (base * r for r in self.scale_range)
        scale = float(rng.uniform(max(lo, need), max(hi, need)))
        hx, hy = crop_extent(self.out_hw, angle, scale)
        # Centre anywhere the turned crop stays inside (pixel centres 0 .. w - 1).
        center = (float(rng.uniform(hx, max(w - 1 - hx, hx))), float(rng.uniform(hy, max(h - 1 - hy, hy))))
        return GeometricParams(scale, angle, bool(rng.random() < self.flip_prob), center)

    def photometric(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = image.astype(np.float32)
        j = self.color_jitter
        if j > 0:
            x = x * rng.uniform(1 - j, 1 + j)  # brightness
            mean = x.mean()
            x = (x - mean) * rng.uniform(1 - j, 1 + j) + mean  # contrast
            grey = x.mean(-1, keepdims=True)
            x = (x - grey) * rng.uniform(1 - j, 1 + j) + grey  # saturation
        if rng.random() < self.blur_prob:
            x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.5))
        return np.clip(x, 0, 255).astype(np.uint8)

    def __call__(self, image: np.ndarray, flow: np.ndarray, mask: np.ndarray | None,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        p = self.draw(image.shape[:2], rng)
        image, flow, mask = warp_sample(image, flow, mask, p, self.out_hw)
        image = self.photometric(image, rng)
        # Motion as an option (TMO, WACV 2023): with no motion to go by, the appearance path has to
        # find the object itself. Drawn last, and only when on, so other draws stay as they were.
        if self.zero_flow_prob > 0 and rng.random() < self.zero_flow_prob:
            flow = np.full_like(flow, ZERO_FLOW_RGB)
        return image, flow, mask


def resize_pair(image: np.ndarray, flow: np.ndarray, out_hw: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Test-time resize of image and flow image (bilinear); ``None`` keeps the size."""
    if out_hw is None or tuple(image.shape[:2]) == tuple(out_hw):
        return image, flow
    size = (out_hw[1], out_hw[0])
    return (cv2.resize(image, size, interpolation=cv2.INTER_LINEAR),
            cv2.resize(flow, size, interpolation=cv2.INTER_LINEAR))


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """``uint8`` ``H x W x 3`` -> float ``3 x H x W`` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255)
