"""Optical flow <-> colour image encoding used everywhere in the project.

Encoding (the convention of published UVOS models and of RAFT's visualiser, identical to
``torchvision.utils.flow_to_image`` when ``max_norm`` is None):

* flow ``(H, W, 2)`` holds forward displacements ``(u, v)`` in pixels, frame t -> t+1;
* vectors are divided by ``max_norm`` (default: the largest vector length of that frame),
  so the longest vector of each frame has radius 1 and the encoding is scale free;
* direction picks a hue on the Middlebury colour wheel (55 entries: red-yellow 15,
  yellow-green 6, green-cyan 4, cyan-blue 11, blue-magenta 13, magenta-red 6), radius
  blends from white (zero motion) to the wheel colour (radius 1);
* stored as 8-bit RGB (``.jpg`` or ``.png``).

``image_to_flow`` inverts it up to that per-frame scale: it returns flow with radius <= 1.
Augmentations that must change vectors (horizontal flip, rotation) decode, transform and
re-encode with ``max_norm=1`` so the per-frame normalisation is preserved. The wheel has a
seam between its last and first entry (direction pointing left, ``u > 0, v = 0`` after
``atan2(-v, -u)``): vectors right on it may decode to either side, a colour error of up to
about 45 levels on those few pixels, inherent to the encoding.

The core works on torch tensors (batched, any device); ``flow_to_image`` and
``image_to_flow`` are NumPy conveniences for channels-last single frames.
"""
from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch

from utils.io import atomic_write, read_rgb

__all__ = [
    "make_colorwheel",
    "encode_flow",
    "decode_flow",
    "transform_flow_image",
    "hflip_flow_image",
    "flow_to_image",
    "image_to_flow",
    "read_flow_image",
    "write_flow_image",
    "read_flo",
    "write_flo",
]

_SEGMENTS = (15, 6, 4, 11, 13, 6)  # RY, YG, GC, CB, BM, MR


@lru_cache(maxsize=1)
def make_colorwheel() -> np.ndarray:
    """The 55 x 3 Middlebury colour wheel, values in [0, 255] (float64)."""
    wheel = np.zeros((sum(_SEGMENTS), 3))
    # Each segment holds one channel at 255, ramps a second up or down; the ramp uses
    # floor(255 * i / n) like the reference so our images match torchvision bit for bit.
    ramps = [(0, 1, +1), (1, 0, -1), (1, 2, +1), (2, 1, -1), (2, 0, +1), (0, 2, -1)]
    row = 0
    for n, (full, ramp, sign) in zip(_SEGMENTS, ramps):
        steps = np.floor(255 * np.arange(n) / n)
        wheel[row:row + n, full] = 255
        wheel[row:row + n, ramp] = steps if sign > 0 else 255 - steps
        row += n
    return wheel


def encode_flow(flow: torch.Tensor, max_norm: float | None = None,
                dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Render flow ``(..., 2, H, W)`` as RGB ``uint8`` ``(..., 3, H, W)``.

    ``max_norm`` None normalises each frame by its longest vector (torchvision's behaviour).
    ``dtype``: the arithmetic. float64 (the stored flow images) and float32 (torchvision's,
    half the time on a CPU: the video tool) differ by one level on a few pixels.
    """
    if flow.dim() < 3 or flow.shape[-3] != 2:
        raise ValueError(f"flow must be (..., 2, H, W), got {tuple(flow.shape)}")
    flow = flow.to(dtype)
    if max_norm is None:
        norm = flow.pow(2).sum(-3).sqrt().amax(dim=(-2, -1), keepdim=True).unsqueeze(-3)
    else:
        norm = torch.tensor(float(max_norm), dtype=dtype)
    flow = flow / (norm + torch.finfo(torch.float32).eps)
    u, v = flow.unbind(-3)
    wheel = torch.from_numpy(make_colorwheel() / 255.0).to(flow.device, dtype)  # 55 x 3
    ncols = wheel.shape[0]
    rad = torch.sqrt(u ** 2 + v ** 2)
    fk = (torch.atan2(-v, -u) / math.pi + 1) / 2 * (ncols - 1)
    k0 = fk.floor().long()
    k1 = torch.where(k0 + 1 == ncols, 0, k0 + 1)
    f = (fk - k0).unsqueeze(-1)
    col = (1 - f) * wheel[k0] + f * wheel[k1]  # ... x H x W x 3
    r = rad.unsqueeze(-1)
    col = torch.where(r <= 1, 1 - r * (1 - col), col * 0.75)
    return torch.floor(255 * col).clamp(0, 255).to(torch.uint8).movedim(-1, -3)


@lru_cache(maxsize=1)
def _hue_table() -> tuple[torch.Tensor, torch.Tensor]:
    """Monotone map from HSV hue of a wheel colour to the flow angle ``atan2(-v, -u)``."""
    angles = torch.linspace(-math.pi, math.pi, 4097, dtype=torch.float64)
    flow = torch.stack([-torch.cos(angles), -torch.sin(angles)])[:, None]  # 2 x 1 x N, radius 1
    rgb = encode_flow(flow, max_norm=1.0)[:, 0].double() / 255  # 3 x N
    hue = _hue(rgb.T.contiguous())
    # The wheel runs red -> yellow -> ... -> magenta -> red: hue grows with the angle
    # except for one wrap back to 0, which sorting handles.
    order = torch.argsort(hue, stable=True)
    return hue[order].contiguous(), angles[order].contiguous()


def _hue(rgb: torch.Tensor) -> torch.Tensor:
    """HSV hue in [0, 1) of float RGB in [0, 1], channels last."""
    r, g, b = rgb.unbind(-1)
    mx, mn = rgb.amax(-1), rgb.amin(-1)
    d = torch.where(mx - mn > 1e-12, mx - mn, torch.ones_like(mx))
    h = torch.where(mx == r, torch.remainder((g - b) / d, 6),
                    torch.where(mx == g, (b - r) / d + 2, (r - g) / d + 4))
    return torch.remainder(h / 6.0, 1.0)


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """``np.interp`` for torch (clamped at the ends)."""
    i = torch.searchsorted(xp, x.clamp(xp[0], xp[-1])).clamp(1, len(xp) - 1)
    x0, x1, y0, y1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    w = (x - x0) / (x1 - x0).clamp_min(1e-12)
    return y0 + w.clamp(0, 1) * (y1 - y0)


def decode_flow(image: torch.Tensor) -> torch.Tensor:
    """Decode encoded flow ``(..., 3, H, W)`` (uint8, or float in [0, 1]) to ``(..., 2, H, W)``.

    Returns float32 flow of radius <= 1 (the per-frame scale is not stored in the image).
    """
    if image.dim() < 3 or image.shape[-3] != 3:
        raise ValueError(f"flow image must be (..., 3, H, W), got {tuple(image.shape)}")
    x = image.double() / 255.0 if image.dtype == torch.uint8 else image.double()
    d = (1.0 - x).movedim(-3, -1)  # = rad * (1 - wheel colour), channels last
    # The wheel colour always has one channel at 0, so max(1 - wheel) == 1 and rad = max(d).
    rad = d.amax(-1).clamp(0.0, 1.0)
    safe = torch.where(rad > 1e-6, rad, torch.ones_like(rad)).unsqueeze(-1)
    hue_tab, ang_tab = _hue_table()
    hue_tab, ang_tab = hue_tab.to(x.device), ang_tab.to(x.device)
    h = _hue((1.0 - d / safe).clamp(0.0, 1.0))
    h = torch.where(h < hue_tab[0], h + 1.0, h)
    ang = _interp(h.reshape(-1), hue_tab, ang_tab).reshape(h.shape)
    return torch.stack([-torch.cos(ang) * rad, -torch.sin(ang) * rad], -3).float()


def transform_flow_image(image: torch.Tensor, matrix: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Apply a 2x2 linear map to the vectors of an encoded flow image (pixels untouched).

    Used after warping the pixels of a flow image: a flip or rotation of the frame changes
    what each colour must mean. Output keeps the input dtype; the frame normalisation is kept.
    """
    m = torch.as_tensor(np.asarray(matrix), dtype=torch.float64)
    flow = decode_flow(image).double()
    flow = torch.einsum("ij,...jhw->...ihw", m, flow)
    out = encode_flow(flow, max_norm=1.0)
    return out if image.dtype == torch.uint8 else out.to(image.dtype) / 255.0


def hflip_flow_image(image: torch.Tensor) -> torch.Tensor:
    """Horizontally flip encoded flow images ``(..., 3, H, W)``: mirror pixels, negate ``u``."""
    return transform_flow_image(image.flip(-1), np.diag([-1.0, 1.0]))


def flow_to_image(flow: np.ndarray, max_norm: float | None = None,
                  dtype: torch.dtype = torch.float64) -> np.ndarray:
    """NumPy convenience: flow ``(H, W, 2)`` -> RGB ``uint8`` ``(H, W, 3)`` (:func:`encode_flow`)."""
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"flow must be (H, W, 2), got {flow.shape}")
    return encode_flow(torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1), max_norm,
                       dtype).permute(1, 2, 0).numpy()


def image_to_flow(image: np.ndarray) -> np.ndarray:
    """NumPy convenience: RGB ``uint8`` ``(H, W, 3)`` -> flow ``(H, W, 2)``, radius <= 1."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"flow image must be (H, W, 3), got {image.shape}")
    return decode_flow(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)).permute(1, 2, 0).numpy()


def read_flow_image(path: str | Path) -> np.ndarray:
    """Read an encoded flow image as RGB uint8; ``OSError`` naming the file when missing, empty or truncated."""
    return read_rgb(path, "flow image")


def write_flow_image(path: str | Path, rgb: np.ndarray, jpeg_quality: int = 95) -> None:
    """Write an RGB flow image atomically; JPEG quality applies to ``.jpg`` paths."""
    suffix = Path(path).suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise OSError(f"cannot encode flow image {path}")
    atomic_write(path, lambda tmp: tmp.write_bytes(buf.tobytes()))


_FLO_TAG = 202021.25


def read_flo(path: str | Path) -> np.ndarray:
    """Read a Middlebury ``.flo`` file as ``(H, W, 2)`` float32; raises ``ValueError`` naming a bad file."""
    with open(path, "rb") as f:
        tag = np.fromfile(f, np.float32, 1)
        if tag.size != 1 or tag[0] != _FLO_TAG:
            raise ValueError(f"{path} is not a .flo file (bad magic number)")
        size = np.fromfile(f, np.int32, 2)
        if size.size != 2 or (size < 0).any():
            raise ValueError(f"{path} is truncated or corrupt (no valid width/height)")
        w, h = (int(x) for x in size)
        data = np.fromfile(f, np.float32, 2 * w * h)
    if data.size != 2 * w * h:
        raise ValueError(f"{path} is truncated ({data.size} of {2 * w * h} values)")
    return data.reshape(h, w, 2)


def write_flo(path: str | Path, flow: np.ndarray) -> None:
    """Write ``(H, W, 2)`` flow as a Middlebury ``.flo`` file (atomically)."""
    h, w = flow.shape[:2]
    header = np.array([_FLO_TAG], np.float32).tobytes() + np.array([w, h], np.int32).tobytes()
    atomic_write(path, lambda tmp: tmp.write_bytes(header + flow.astype(np.float32).tobytes()))
