"""Losses of models/losses.py against hand-computed cases."""
from __future__ import annotations

import argparse
import math

import pytest
import torch
import torch.nn.functional as F

from models.losses import boundary_band, boundary_loss, non_negative, positive_int


def test_boundary_band_of_a_small_square_is_its_dilation():
    t = torch.zeros(1, 1, 6, 6)
    t[..., 2:4, 2:4] = 1  # 2x2 square: a 3x3 erosion removes it, a 3x3 dilation makes it 4x4
    want = torch.zeros(1, 1, 6, 6, dtype=torch.bool)
    want[..., 1:5, 1:5] = True
    assert torch.equal(boundary_band(t, 1), want)


def test_boundary_band_of_a_straight_edge_is_both_sides_and_the_frame_border_is_no_edge():
    t = torch.zeros(1, 1, 4, 8)
    t[..., 4:] = 1
    band = boundary_band(t, 2)
    assert torch.equal(band[0, 0, 0], torch.tensor([False, False, True, True, True, True, False, False]))
    assert (band == band[:, :, :1]).all()  # every row alike: the top and bottom borders add nothing
    assert not boundary_band(torch.ones(1, 1, 5, 5), 1).any()
    assert not boundary_band(torch.zeros(1, 1, 5, 5), 1).any()


def test_boundary_loss_is_bce_over_the_band_only():
    t = torch.zeros(2, 1, 8, 8)
    t[0, :, 2:6, 2:6] = 1
    logits = torch.zeros(2, 1, 8, 8)
    assert boundary_loss(logits, t, 1).item() == pytest.approx(math.log(2))  # sigmoid 0.5 everywhere
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 8, 8, generator=g)
    band = boundary_band(t, 1)
    want = F.binary_cross_entropy_with_logits(logits[band], t[band])
    assert boundary_loss(logits, t, 1).item() == pytest.approx(want.item(), rel=1e-6)
    far = logits.clone()
    far[~band] = 50.0  # pixels outside the band do not count, however wrong
    assert boundary_loss(far, t, 1).item() == pytest.approx(want.item(), rel=1e-6)


def test_boundary_loss_without_edges_is_zero_and_keeps_the_graph():
    logits = torch.randn(1, 1, 4, 4, requires_grad=True)
    loss = boundary_loss(logits, torch.zeros(1, 1, 4, 4), 2)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_boundary_radius_and_weight_refuse_bad_values():
    with pytest.raises(ValueError, match="radius"):
        boundary_band(torch.zeros(1, 1, 4, 4), 0)
    with pytest.raises(argparse.ArgumentTypeError):
        positive_int("0")
    with pytest.raises(argparse.ArgumentTypeError):
        non_negative("-0.5")
    assert positive_int("3") == 3 and non_negative("0") == 0.0
