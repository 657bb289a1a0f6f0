"""The camera's motion in a flow field: a homography fitted (RANSAC) to the flow.

A flow field ``f`` (``2 x H x W``, pixels, ``u`` right, ``v`` down) moves pixel ``x`` to
``x + f(x)``. Where the scene is far or flat, the camera's motion moves every pixel by one
homography ``H``; :func:`homography_residual` fits ``H`` to the flow (at the pixels of a mask,
or at every pixel, sampled on a stride) and returns what is left, ``x + f(x) - H(x)``: about
zero on the static background, the object's own motion (relative to the background) on the
object. Two users:

* :func:`remove_camera_motion`: the flow input with the camera's motion removed
  (``utils.optical_flow.compute_dataset_flow(camera="remove")``);
* ``engine.pseudo_labels.background_residual``: how far each pixel moves unlike the
  background (the motion veto of the online stage).

The fit is deterministic: RANSAC draws from OpenCV's global generator, seeded here on every call.
"""
from __future__ import annotations

import logging

import numpy as np

_log = logging.getLogger(__name__)

STRIDE = 4  # fit on every 4th pixel in each direction
MIN_POINTS = 50  # fewer samples: no fit
RANSAC_PX = 1.0  # RANSAC inlier threshold (pixels)


def homography_residual(flow: np.ndarray, fit: np.ndarray | None = None, stride: int = STRIDE,
                        min_points: int = MIN_POINTS, ransac_px: float = RANSAC_PX) -> np.ndarray | None:
    """``2 x H x W`` float64: ``x + flow(x) - H(x)`` per pixel, where ``H`` is the homography that
    RANSAC fits to ``flow`` (``2 x H x W`` float32, pixels) at ``fit`` (``H x W`` bool; None: every
    pixel), sampled every ``stride`` pixels. None when fewer than ``min_points`` samples or no fit.
    Pixels that ``H`` maps to infinity hold non-finite values; the caller decides what they mean."""
    import cv2  # OpenCV, imported only where motion is fitted

    h, w = flow.shape[-2:]
    f = flow
    ys, xs = np.mgrid[0:h:stride, 0:w:stride]
    sel = np.ones(xs.shape, bool) if fit is None else fit[::stride, ::stride]
    if sel.sum() < min_points:
        return None
    src = np.stack([xs[sel], ys[sel]], -1).astype(np.float32)
    dst = src + np.stack([f[0, ::stride, ::stride][sel], f[1, ::stride, ::stride][sel]], -1)
    cv2.setRNGSeed(0)  # RANSAC draws from OpenCV's global generator: the same fit on every run
    hom, _ = cv2.findHomography(src, dst, cv2.RANSAC, ransac_px, maxIters=500)
    if hom is None:
        return None
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    pts = hom @ np.stack([xx.ravel(), yy.ravel(), np.ones(h * w, np.float32)])
    with np.errstate(divide="ignore", invalid="ignore"):
        px, py = pts[0] / pts[2], pts[1] / pts[2]
    return np.stack([xx.ravel() + f[0].ravel() - px, yy.ravel() + f[1].ravel() - py]).reshape(2, h, w)


def remove_camera_motion(flow: np.ndarray, stride: int = STRIDE, min_points: int = MIN_POINTS,
                         ransac_px: float = RANSAC_PX) -> tuple[np.ndarray, bool]:
    """``(flow with the camera's motion removed, fitted)`` for one frame's flow (``2 x H x W``,
    pixels): the flow minus the flow that a homography fitted to all of it (RANSAC, every
    ``stride`` pixels, no mask) induces, float32. When the fit fails (too few samples, no
    homography, an OpenCV error, or a non-finite result) the flow comes back unchanged with
    ``fitted`` False. An all-zero flow fits the identity and stays zero."""
    import cv2

    f = np.ascontiguousarray(flow, dtype=np.float32)
    try:
        res = homography_residual(f, None, stride, min_points, ransac_px)
    except cv2.error as e:  # degenerate sample sets may make OpenCV refuse the fit
        _log.debug("homography fit failed: %s", e)
        res = None
    if res is None or not np.isfinite(res).all():
        return f, False
    return res.astype(np.float32), True
