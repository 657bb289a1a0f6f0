"""The project's flow <-> image encoding (utils/flow.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.utils import _normalized_flow_to_image, flow_to_image as tv_flow_to_image

from utils.flow import (decode_flow, encode_flow, flow_to_image, hflip_flow_image, image_to_flow, read_flo,
                        write_flo)


def _random_flow(seed=0, hw=(40, 56), scale=5.0):
    return np.random.default_rng(seed).normal(size=(*hw, 2)).astype(np.float32) * scale


def test_matches_torchvision_bit_for_bit():
    f = _random_flow()
    norm = float(np.linalg.norm(f, axis=-1).max()) * 1.25  # keep away from radius 1 (float32 wrap in torchvision)
    ours = flow_to_image(f, max_norm=norm)
    ref = _normalized_flow_to_image(torch.from_numpy(f / norm).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    diff = np.abs(ours.astype(int) - ref)
    # torchvision works in float32, we in float64: floor() may differ by one level, rarely.
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99
    # Default normalisation equals torchvision's public function except where it wraps at radius 1.
    pub = tv_flow_to_image(torch.from_numpy(f).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    assert (np.abs(flow_to_image(f).astype(int) - pub) > 1).sum() <= 1


def test_float32_encoding_is_torchvisions_and_near_ours():
    f = _random_flow(1)
    norm = float(np.linalg.norm(f, axis=-1).max()) * 1.25
    fast = flow_to_image(f, max_norm=norm, dtype=torch.float32)
    ref = _normalized_flow_to_image(torch.from_numpy(f / norm).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    assert np.array_equal(fast, ref)  # the same arithmetic as torchvision
    diff = np.abs(fast.astype(int) - flow_to_image(f, max_norm=norm))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99
    assert fast.dtype == np.uint8 and fast.shape == (40, 56, 3)


def test_known_colours():
    # Zero motion is white; pure rightward motion of radius 1 is the wheel colour at angle pi.
    assert (flow_to_image(np.zeros((2, 2, 2)), max_norm=1.0) == 255).all()
    # Leftward: atan2(-v, -u) = 0 -> wheel index 27 (cyan-blue, G = 255 - floor(255*2/11) = 209).
    left = flow_to_image(np.array([[[-1.0, 0.0]]]), max_norm=1.0)[0, 0]
    assert tuple(int(c) for c in left) == (0, 209, 255)
    # Upward: angle pi/2 -> index 40.5, halfway between R = floor(255*4/13) = 78 and floor(255*5/13) = 98.
    up = flow_to_image(np.array([[[0.0, -1.0]]]), max_norm=1.0)[0, 0]
    assert tuple(int(c) for c in up) == (88, 0, 255)
    # Half radius blends halfway to white: 255 * (1 - 0.5 * (1 - 209/255)) = 232.
    half = flow_to_image(np.array([[[-0.5, 0.0]]]), max_norm=1.0)[0, 0]
    assert tuple(int(c) for c in half) == (127, 232, 255)


def test_decode_round_trip_png():
    f = _random_flow(1)
    truth = f / np.linalg.norm(f, axis=-1).max()
    epe = np.linalg.norm(image_to_flow(flow_to_image(f)) - truth, axis=-1)
    assert epe.mean() < 0.005 and epe.max() < 0.02


def test_batched_torch_encode_decode():
    f = torch.from_numpy(np.stack([_random_flow(2), _random_flow(3) * 10])).permute(0, 3, 1, 2)
    img = encode_flow(f)
    assert img.shape == (2, 3, 40, 56) and img.dtype == torch.uint8
    dec = decode_flow(img)
    truth = f / f.norm(dim=1, keepdim=True).amax(dim=(2, 3), keepdim=True)  # each frame by its own max
    assert (dec - truth).norm(dim=1).mean() < 0.005
    # Float input in [0, 1] decodes the same as uint8.
    close = (decode_flow(img.float() / 255) - dec).norm(dim=1) < 0.01  # float32 input rounding
    assert close.float().mean() > 0.99  # only pixels on the wheel's seam may flip side


def test_hflip_negates_u():
    f = _random_flow(4)
    n = np.linalg.norm(f, axis=-1).max()
    img = torch.from_numpy(flow_to_image(f)).permute(2, 0, 1).float() / 255
    flipped = decode_flow(hflip_flow_image(img)).permute(1, 2, 0).numpy()
    expect = np.stack([-f[:, ::-1, 0], f[:, ::-1, 1]], -1) / n
    epe = np.linalg.norm(flipped - expect, axis=-1)
    assert np.median(epe) < 0.01 and epe.mean() < 0.03  # a few pixels sit on the wheel's seam


def test_flo_round_trip_and_errors(tmp_path):
    f = _random_flow(5)
    write_flo(tmp_path / "a.flo", f)
    assert np.array_equal(read_flo(tmp_path / "a.flo"), f)
    (tmp_path / "bad.flo").write_bytes(b"\x00" * 16)
    with pytest.raises(ValueError, match="bad.flo"):
        read_flo(tmp_path / "bad.flo")
    with pytest.raises(ValueError):
        flow_to_image(np.zeros((4, 4, 3)))
