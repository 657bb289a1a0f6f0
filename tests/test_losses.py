"""Losses of models/losses.py against hand-computed cases."""
from __future__ import annotations

import argparse

import pytest

from models.losses import non_negative


def test_non_negative_refuses_bad_values():
    with pytest.raises(argparse.ArgumentTypeError):
        non_negative("-0.5")
    with pytest.raises(argparse.ArgumentTypeError):
        non_negative("nan")
    assert non_negative("0") == 0.0 and non_negative("2.5") == 2.5
