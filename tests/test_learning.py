"""Seeded learning runs on the synthetic data (slow): offline training and online tuning help."""
from __future__ import annotations

import pytest

import online_finetuning
import unlabeled_train
from engine.offline import OfflineTrainer
from evaluation.summary import scores
from evaluation import evaluate_datasets

pytestmark = pytest.mark.slow
TRAIN = ["--model_scale", "xxs", "--size", "96", "160", "--batch_size", "4", "--workers", "0", "--lr", "5e-4",
         "--lr_d", "5e-4", "--no_tensorboard", "--seed", "0", "--lambda_adv", "1e-3"]


@pytest.fixture(scope="module")
def trained(synthetic_dir, tmp_path_factory):
    """A few minutes of seeded stage-1 training; returns (checkpoint, untrained J, trained J)."""
    out = tmp_path_factory.mktemp("learn")
    args = unlabeled_train.get_parser().parse_args(["--data_dir", str(synthetic_dir), "--output_dir", str(out),
                                                    *TRAIN, "--epochs", "5"])
    tr = OfflineTrainer(args)
    j0 = tr.evaluate_only()
    last = tr.fit()
    return out / "checkpoint_last.pth", j0, last["val_J"]


def test_offline_training_raises_validation_j(trained):
    _, j0, j1 = trained
    print(f"validation J: untrained {j0:.3f} -> trained {j1:.3f}")
    assert j1 > j0 + 0.1


def test_online_tuning_improves_j(trained, synthetic_dir, tmp_path):
    ckpt = trained[0]
    common = ["--weights", str(ckpt), "--data_dir", str(synthetic_dir), "--test_datasets", "DAVIS-2016",
              "--size", "96", "160", "--workers", "0", "--no_tensorboard", "--seed", "0"]
    online_finetuning.main([*common, "--epochs", "0", "--save_dir", str(tmp_path / "off"),
                            "--output_dir", str(tmp_path / "r0")])
    online_finetuning.main([*common, "--epochs", "2", "--lr", "1e-4", "--save_dir", str(tmp_path / "on"),
                            "--output_dir", str(tmp_path / "r1")])
    before = scores(evaluate_datasets(tmp_path / "off", synthetic_dir, ["DAVIS-2016"]))
    after = scores(evaluate_datasets(tmp_path / "on", synthetic_dir, ["DAVIS-2016"]))
    for k in ("DAVIS-2016 J", "DAVIS-2016 F", "DAVIS-2016 J&F"):
        print(f"{k}: offline {before[k]:.3f} -> online {after[k]:.3f}")
    # Region accuracy improves; boundary accuracy may drop a little (soft ensemble edges, README).
    assert after["DAVIS-2016 J"] > before["DAVIS-2016 J"] + 0.005
    assert after["DAVIS-2016 F"] > before["DAVIS-2016 F"] - 0.05
