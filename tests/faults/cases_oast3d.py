"""Faults around the authors' network (``--arch oast3d``) and their released files: an Apple
ml-cvnets file as --pretrained, a truncated authors' checkpoint, an authors' checkpoint with
a contradicting --model_scale."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from tests.faults.common import (ROOT, Case, Outcome, error_names, last_error, lost_files, run_script, snapshot,
                                 synthetic_data)

TINY_TRAIN = ["--model_scale", "xxs", "--size", "64", "96", "--workers", "0", "--batch_size", "2", "--epochs", "1",
              "--max_steps_per_epoch", "2", "--no_tensorboard", "--val_every", "0", "--device", "cpu"]
TINY_TEST = ["--test_datasets", "FBMS", "--size", "64", "96", "--workers", "0", "--device", "cpu"]


def _authors_checkpoint(path: Path) -> Path:
    """An authors'-format xxs checkpoint (their keys, ``args``), filled by the tests' rule."""
    from tests.test_oast3d import FIXTURES, authors_state_dict

    meta = json.loads((FIXTURES / "oast3d_authors_keys.json").read_text())
    torch.save({"model": authors_state_dict(meta, "xxs"), "epoch": 4,
                "args": argparse.Namespace(model_scale="xxs", dropout=0.0)}, path)
    return path


def _refused(r, what: str, *named: Path, extra: str = "") -> Outcome:
    if r.returncode == 0:
        return Outcome(f"{what} was accepted{extra}", lost=1)
    ok = error_names(last_error(r.stderr), *named)
    return Outcome(f"refused, {'names' if ok else 'does NOT name'} {named[0].name}{extra}", unnamed=0 if ok else 1)


def cvnets_file_as_pretrained(tmp: Path) -> Outcome:
    """--arch oast3d --pretrained with Apple ml-cvnets keys: refused before training, naming the file."""
    data = synthetic_data(tmp)
    bad = tmp / "mobilevit_xxs.pt"
    torch.save({"conv_1.block.conv.weight": torch.zeros(16, 3, 3, 3),
                "layer_1.0.block.exp_1x1.block.conv.weight": torch.zeros(32, 16, 1, 1)}, bad)
    before = snapshot(data)
    r = run_script([str(ROOT / "unlabeled_train.py"), "--data_dir", str(data), *TINY_TRAIN, "--arch", "oast3d",
                    "--pretrained", str(bad), "--output_dir", str(tmp / "run")], cwd=tmp)
    out = _refused(r, "an ml-cvnets file", bad)
    out.lost += len(lost_files(before, snapshot(data)))
    return out


def truncated_authors_checkpoint(tmp: Path) -> Outcome:
    """test.py --weights with the authors' checkpoint cut in half: refused naming it, no masks."""
    data = synthetic_data(tmp)
    ckpt = _authors_checkpoint(tmp / "online-finetunebest.pth")
    raw = ckpt.read_bytes()
    ckpt.write_bytes(raw[: len(raw) // 2])
    save = tmp / "masks"
    r = run_script(["test.py", "--weights", str(ckpt), "--data_dir", str(data), *TINY_TEST, "--save_dir", str(save)])
    masks = list(save.rglob("*.png")) if save.exists() else []
    out = _refused(r, "a truncated checkpoint", ckpt, extra=f"; {len(masks)} masks written")
    out.lost += len(masks)
    return out


def authors_checkpoint_wrong_scale(tmp: Path) -> Outcome:
    """The authors' xxs checkpoint with --model_scale s: refused naming it (not a shape dump)."""
    data = synthetic_data(tmp)
    ckpt = _authors_checkpoint(tmp / "online-finetunebest.pth")
    r = run_script(["test.py", "--weights", str(ckpt), "--data_dir", str(data), *TINY_TEST, "--model_scale", "s",
                    "--save_dir", str(tmp / "masks")])
    out = _refused(r, "a contradicting --model_scale", ckpt)
    if r.returncode != 0 and "model_scale" not in last_error(r.stderr):
        out.outcome += " (but does not say model_scale)"
        out.unnamed += 1
    return out


CASES = [
    Case("oast3d_cvnets_file_as_pretrained", cvnets_file_as_pretrained),
    Case("oast3d_truncated_authors_checkpoint", truncated_authors_checkpoint),
    Case("oast3d_authors_checkpoint_wrong_scale", authors_checkpoint_wrong_scale),
]
