"""The run ledger: rows from a run's result, atomic appends, readers that name the bad line,
and mean ± sd per setting against hand-computed values."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import davis_real, results
from benchmarks.ledger import append_row, ledger_row, read_rows, summarise


def _result(offline: float, best: float, online: float, seed: int = 0) -> dict:
    def sc(jf):
        return {"DAVIS-2016 J&F": jf, "DAVIS-2016 J": jf + 0.01, "DAVIS-2016 F": jf - 0.01}

    return {"offline": sc(offline), "best_offline": sc(best), "split": "holdout", "train_split": "train20",
            "seed": seed, "times": {"train": 600.0, "test": 120.0, "test_s_per_frame": 0.2},
            "offline_per_video": {"a": offline, "b": offline},
            "best_offline_per_video": {"a": best, "b": best},
            "online": {"per_video": {"scores": sc(online), "per_video": {"a": best + 0.05, "b": best - 0.02},
                                     "timing": {"tune_s_per_frame": 0.9, "predict_s_per_frame": 0.3}}}}


DEFAULTS = vars(davis_real.get_parser().parse_args([]))


def _args(argv: list[str]):
    a = davis_real.get_parser().parse_args(argv)
    a.argv = argv
    return a


def test_row_of_a_run_names_its_setting_seed_and_gain():
    a = _args(["--eval", "holdout", "--out_dir", "/tmp/x", "--seed", "0", "1", "--train_args=--ema_decay 0.99"])
    row = ledger_row(_result(0.70, 0.72, 0.745), a, 1, 728, "abc", DEFAULTS)
    assert row["setting"] == "--eval holdout --train_args '--ema_decay 0.99'"  # out_dir and seed are not the setting
    assert row["command"].endswith("--seed 1") and row["command"].count("--seed") == 1
    assert row["offline"] == {"J&F": 70.0, "J": 71.0, "F": 69.0} and row["best_offline"]["J&F"] == 72.0
    online = row["online"]["per_video"]
    assert online["gain"] == pytest.approx(2.5) and online["gain_over"] == "best_offline"
    assert online["worse_by_1"] == ["b"]  # 2 points below the best offline inference; "a" is better
    assert row["minutes"] == {"train": 10.0, "test": 2.0} and row["commit"] == "abc" and row["frames"] == 728
    assert ledger_row(_result(0.7, 0.7, 0.7), _args([]), 0, 1, "c", DEFAULTS)["setting"] == "recipe"


def test_append_keeps_earlier_rows_and_reader_names_a_bad_line(tmp_path):
    path = tmp_path / "ledger.jsonl"
    a = _args(["--eval", "holdout"])
    append_row(path, ledger_row(_result(0.70, 0.71, 0.72), a, 0, 10, "c", DEFAULTS))
    append_row(path, ledger_row(_result(0.74, 0.75, 0.76), a, 1, 10, "c", DEFAULTS))
    assert [r["seed"] for r in read_rows(path)] == [0, 1]
    assert not list(tmp_path.glob(".*part"))  # no temporary file left beside it
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(ValueError, match=r"ledger\.jsonl, line 3: not JSON"):
        read_rows(path)
    path.write_text(json.dumps([1, 2]) + "\n")
    with pytest.raises(ValueError, match=r"line 1: not a ledger row"):
        read_rows(path)


def test_summary_mean_sd_by_hand_and_the_last_row_of_a_seed_wins(tmp_path):
    path = tmp_path / "ledger.jsonl"
    a = _args(["--eval", "holdout"])
    for seed, jf in ((0, 0.99), (0, 0.70), (1, 0.72), (2, 0.74)):  # seed 0 rerun: its first row is replaced
        append_row(path, ledger_row(_result(jf, jf + 0.01, jf + 0.03), a, seed, 10, "c", DEFAULTS))
    append_row(path, ledger_row(_result(0.5, 0.5, 0.5), _args(["--eval", "holdout", "--lr", "1e-4"]), 0, 10, "c",
                                DEFAULTS))
    (s, other) = summarise(read_rows(path))
    assert s["seeds"] == [0, 1, 2] and other["setting"] == "--eval holdout --lr 0.0001"
    st = s["offline J&F"]
    assert (st["n"], st["mean"], st["min"], st["max"]) == (3, pytest.approx(72.0), pytest.approx(70.0), pytest.approx(74.0))
    assert st["sd"] == pytest.approx(2.0)  # sample sd of 70, 72, 74
    assert s["online per_video gain"]["mean"] == pytest.approx(2.0)
    text = results.main(["--ledger", str(path), "--write", str(tmp_path / "tables.md")])
    assert "72.0 ± 2.0 (70.0–74.0)" in text and "50.0 (n=1)" in text
    assert "72.0 ± 2.0" in (tmp_path / "tables.md").read_text()


def test_results_names_the_bad_ledger(tmp_path, capsys):
    bad = tmp_path / "l.jsonl"
    bad.write_text("oops\n")
    with pytest.raises(SystemExit):
        results.main(["--ledger", str(bad)])
    assert "l.jsonl, line 1" in capsys.readouterr().err


def test_result_file_is_named_for_the_test_options_so_a_retest_keeps_the_first():
    """Testing a finished model again another way (size, scales, flip) writes its own result file."""
    base = ["--eval", "holdout", "--out_dir", "/tmp/x", "--name", "scr"]
    path = lambda *extra: davis_real.result_path(_args([*base, *extra]), 2)  # noqa: E731
    assert path() == Path("/tmp/x/scr_s2/result.json")
    assert path("--scales", "1.0", "1.25") == Path("/tmp/x/scr_s2/result_320_576_s1.0+1.25.json")
    assert path("--test_size", "256", "448") == Path("/tmp/x/scr_s2/result_256_448.json")
    assert path("--no_flip", "--tag", "_a") == Path("/tmp/x/scr_s2/result_320_576_noflip_a.json")
    assert len({path(), path("--scales", "1.0", "1.25"), path("--test_size", "256", "448"), path("--no_flip")}) == 4
    # the offline masks' folder follows the same options
    assert davis_real.offline_folder_name(_args([*base, "--test_size", "256", "448", "--scales", "1.0", "1.25"])) \
        == "offline_256_448_s1.0+1.25"
    assert davis_real.run_folder(_args(["--eval", "holdout", "--fold", "2", "--out_dir", "/tmp/x"]), 0) \
        == Path("/tmp/x/holdout_fold2_s0")


def test_train_minutes_leave_out_retests_that_trained_nothing(tmp_path):
    """A retest of finished models (training resumed as done: 0 minutes) has no training time to
    report, rather than a mean of 0."""
    path = tmp_path / "ledger.jsonl"
    trained, retest = _result(0.7, 0.7, 0.7), _result(0.72, 0.72, 0.72)
    retest["times"]["train"] = 0.4  # seconds: the resumed run found every epoch done
    append_row(path, ledger_row(trained, _args(["--eval", "holdout"]), 0, 10, "c", DEFAULTS))
    append_row(path, ledger_row(retest, _args(["--eval", "holdout", "--scales", "1.0", "1.25"]), 0, 10, "c", DEFAULTS))
    first, second = summarise(read_rows(path))
    assert first["train minutes"]["mean"] == pytest.approx(10.0) and "train minutes" not in second
