"""The real-data recipe's held-out folds: disjoint sets of 10 that cover the 30 DAVIS-2016 train
sequences, built as symlink splits that follow a changed holdout."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.davis_real import FOLDS, HOLDOUT, holdout_splits, make_holdout_splits


def test_folds_partition_the_train_sequences_and_fold_1_is_the_original():
    names = [n for fold in FOLDS.values() for n in fold]
    assert [len(f) for f in FOLDS.values()] == [10, 10, 10]
    assert len(set(names)) == 30
    assert FOLDS[1] == HOLDOUT
    assert holdout_splits(1) == ("train20", "holdout")  # cached runs of earlier sessions keep their names
    assert holdout_splits(2) == ("train20_fold2", "holdout_fold2")


def _train_tree(root: Path, names: list[str]) -> None:
    for kind in ("images", "flows", "labels"):
        for n in names:
            (root / "train" / kind / n).mkdir(parents=True)


def _linked(root: Path, split: str) -> list[str]:
    return sorted(p.name for p in (root / split / "images").iterdir())


def test_fold_splits_are_symlinks_and_follow_a_changed_holdout(tmp_path):
    names = ["a", "b", "c", "d"]
    _train_tree(tmp_path, names)
    make_holdout_splits(tmp_path, ("a", "c"), "tr_f", "ho_f")
    assert _linked(tmp_path, "tr_f") == ["b", "d"] and _linked(tmp_path, "ho_f") == ["a", "c"]
    link = tmp_path / "ho_f" / "labels" / "a"
    assert link.is_symlink() and link.resolve() == (tmp_path / "train" / "labels" / "a").resolve()
    make_holdout_splits(tmp_path, ("b",), "tr_f", "ho_f")  # stale links of the earlier holdout go
    assert _linked(tmp_path, "tr_f") == ["a", "c", "d"] and _linked(tmp_path, "ho_f") == ["b"]
    assert not (tmp_path / "holdout").exists()  # another fold's split names are not touched


def test_unknown_holdout_sequence_is_named(tmp_path):
    _train_tree(tmp_path, ["a", "b"])
    with pytest.raises(ValueError, match="zebra"):
        make_holdout_splits(tmp_path, ("a", "zebra"), "tr_f", "ho_f")


def test_fold_needs_holdout_eval(capsys):
    from benchmarks import davis_real

    with pytest.raises(SystemExit):
        davis_real.main(["--eval", "val", "--fold", "2", "--davis", "/nonexistent"])
    assert "--fold 2 needs --eval holdout" in capsys.readouterr().err


class _Stop(Exception):
    pass


def _training_argv(tmp_path, monkeypatch, extra: list[str]) -> list[str]:
    """The training command ``davis_real.main`` builds with ``extra`` (training itself is stopped)."""
    import unlabeled_train
    from benchmarks import davis_real

    (tmp_path / "JPEGImages").mkdir()
    seen = []

    def fake_train(argv):
        seen.append(list(argv))
        raise _Stop

    monkeypatch.setattr(davis_real, "prepare", lambda *a, **k: {})
    monkeypatch.setattr(unlabeled_train, "main", fake_train)
    with pytest.raises(_Stop):
        davis_real.main(["--davis", str(tmp_path), "--out_dir", str(tmp_path / "out"), *extra])
    return seen[0]


@pytest.mark.parametrize("extra, want", [([], "1.0"), (["--encoder_lr_mult", "0.1"], "0.1")])
def test_recipe_passes_its_encoder_lr_multiplier_to_training(tmp_path, monkeypatch, extra, want):
    """The recipe's training command carries the encoder lr multiplier once: the recipe's (1) or
    the option's."""
    argv = _training_argv(tmp_path, monkeypatch, extra)
    assert argv.count("--encoder_lr_mult") == 1
    assert argv[argv.index("--encoder_lr_mult") + 1] == want


@pytest.mark.parametrize("seed_args, seed", [([], "0"), (["--seed", "3"], "3")])
def test_recipe_trains_the_seed_in_its_own_folder_with_the_trainers_lr_d(tmp_path, monkeypatch, seed_args, seed):
    """--seed N: the training's seed, its folder <name>_s<N>; the feature discriminator's lr is the
    trainer's own default, not the generator's."""
    argv = _training_argv(tmp_path, monkeypatch, seed_args)
    assert argv[argv.index("--seed") + 1] == seed and "--lr_d" not in argv
    assert argv[argv.index("--output_dir") + 1] == str(tmp_path / "out" / f"val_s{seed}" / "train")


def test_several_seeds_train_one_after_another(tmp_path, monkeypatch):
    from benchmarks import davis_real

    (tmp_path / "JPEGImages").mkdir()
    monkeypatch.setattr(davis_real, "run", lambda a, seed: {"seed": seed})
    got = davis_real.main(["--davis", str(tmp_path), "--seed", "2", "0", "1"])
    assert [r["seed"] for r in got] == [2, 0, 1]


def test_seed_inside_train_args_is_refused(capsys):
    from benchmarks import davis_real

    with pytest.raises(SystemExit):
        davis_real.main(["--davis", "/nonexistent", "--train_args=--seed 2"])
    assert "give the training seed as --seed" in capsys.readouterr().err
