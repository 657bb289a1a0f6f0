"""benchmarks/figures.py: the per-video bar chart of a ledger setting over its seeds."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from benchmarks import davis_real, figures
from benchmarks.ledger import append_row, ledger_row, read_rows

DEFAULTS = vars(davis_real.get_parser().parse_args([]))
VIDEOS = ("a", "b", "c")


def _row(seed: int, best: dict[str, float], online: dict[str, float], train_args: str = "--ema_decay 0.99",
         with_best: bool = True) -> dict:
    """A ledger row as davis_real.py writes it, per-video J&F fractions given."""
    def sc(pv):
        m = sum(pv.values()) / len(pv)
        return {"DAVIS-2016 J&F": m, "DAVIS-2016 J": m, "DAVIS-2016 F": m}

    result = {"offline": sc(best), "split": "val", "train_split": "train", "seed": seed,
              "times": {"train": 60.0}, "offline_per_video": {v: x - 0.01 for v, x in best.items()},
              "online": {"per_video": {"scores": sc(online), "per_video": online, "timing": {}}}}
    if with_best:
        result.update(best_offline=sc(best), best_offline_per_video=best)
    argv = ["--eval", "val", f"--train_args={train_args}", "--seed", str(seed)]
    a = davis_real.get_parser().parse_args(argv)
    a.argv = argv
    return ledger_row(result, a, seed, 100, "abc", DEFAULTS)


def _pv(*values: float) -> dict[str, float]:
    return dict(zip(VIDEOS, values))


@pytest.fixture()
def ledger(tmp_path: Path) -> Path:
    """Seeds 0-2 of one setting (seed 1 written twice: the later row counts), one row of another."""
    path = tmp_path / "ledger.jsonl"
    rows = [_row(0, _pv(0.50, 0.80, 0.70), _pv(0.60, 0.78, 0.70)),
            _row(1, _pv(0.10, 0.10, 0.10), _pv(0.10, 0.10, 0.10)),  # replaced below
            _row(2, _pv(0.70, 0.90, 0.60), _pv(0.90, 0.80, 0.60)),
            _row(1, _pv(0.60, 0.70, 0.50), _pv(0.70, 0.66, 0.53)),
            _row(0, _pv(0.2, 0.2, 0.2), _pv(0.3, 0.3, 0.3), train_args="--ema_decay 0.9")]
    for r in rows:
        append_row(path, r)
    return path


def test_select_rows_last_per_seed_and_default_setting(ledger):
    rows = read_rows(ledger)
    chosen = figures.select_rows(rows, "val", rows[0]["setting"])
    assert [r["seed"] for r in chosen] == [0, 1, 2]
    assert chosen[1]["best_offline_per_video"]["a"] == 60.0  # the later row of seed 1
    # Default: the setting of the split's last row.
    last = figures.select_rows(rows, "val", None)
    assert len(last) == 1 and last[0]["setting"] == rows[-1]["setting"] != rows[0]["setting"]
    with pytest.raises(ValueError, match="settings: "):
        figures.select_rows(rows, "val", "--nothing like it")
    with pytest.raises(ValueError, match="split 'holdout'"):
        figures.select_rows(rows, "holdout", None)


def test_per_seed_scores_and_errors(ledger):
    rows = figures.select_rows(read_rows(ledger), "val", read_rows(ledger)[0]["setting"])
    scores = figures.per_seed_scores(rows, "per_video")
    assert scores["a"][0] == pytest.approx([0.50, 0.60, 0.70])
    assert scores["a"][1] == pytest.approx([0.60, 0.70, 0.90])
    assert figures.offline_label(rows) == "best offline"
    with pytest.raises(ValueError, match="online mode 'transductive'"):
        figures.per_seed_scores(rows, "transductive")
    odd = json.loads(json.dumps(rows))
    del odd[2]["online"]["per_video"]["per_video"]["c"]
    with pytest.raises(ValueError, match="seed 2.*videos differ"):
        figures.per_seed_scores(odd, "per_video")
    # Rows without the best offline inference fall back to the plain offline figures, named so.
    plain = [_row(0, _pv(0.5, 0.5, 0.5), _pv(0.6, 0.6, 0.6), with_best=False)]
    assert figures.per_seed_scores(plain, "per_video")["a"][0] == pytest.approx([0.49])
    assert figures.offline_label(plain) == "offline"


def test_bars_means_order_and_dots(ledger):
    rows = figures.select_rows(read_rows(ledger), "val", read_rows(ledger)[0]["setting"])
    fig = figures.ledger_bars(rows, "val")
    ax = fig.axes[0]
    # Mean changes over the seeds: a +0.133, b -0.053, c +0.010: largest gain first.
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "c", "b"]
    bars = [p.get_height() for p in ax.patches]
    assert bars[:3] == pytest.approx([60.0, 60.0, 80.0])  # best offline means, in bar order
    assert bars[3:] == pytest.approx([220 / 3, 61.0, 224 / 3])  # online means
    assert sum(len(c.get_offsets()) for c in ax.collections) == 2 * 3 * 3  # a dot per seed, video and side
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["best offline (mean 66.7)", "online (mean 69.7)", "one seed"]
    assert "3 seeds (0, 1, 2)" in ax.get_title()


def test_main_writes_the_png(ledger, tmp_path, capsys):
    setting = read_rows(ledger)[0]["setting"]
    out = tmp_path / "figs" / "val_bars.png"
    assert figures.main(["--ledger", str(ledger), "--setting", setting, "--out", str(out)]) == out
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 200 and img.shape[1] > 400
    assert "3 seeds" in capsys.readouterr().out
    assert sorted(p.name for p in out.parent.iterdir()) == ["val_bars.png"]  # no part file left
    for bad in (["--out", str(tmp_path / "x.jpg")], ["--split", "holdout", "--out", str(out)]):
        with pytest.raises(SystemExit) as e:
            figures.main(["--ledger", str(ledger), *bad])
        assert e.value.code == 2
