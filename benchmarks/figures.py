#!/usr/bin/env python
"""Per-video bar chart from the run ledger: best offline inference against an online mode, over seeds.

    python benchmarks/figures.py --split val --out docs/figures/val_bars.png
    python benchmarks/figures.py --split val --setting "--train_args '...'" --out bars.png

Reads the rows of one split and one setting of ``benchmarks/results/ledger.jsonl`` (the last
row of each seed, as ``benchmarks/results.py`` does) and draws, per video, the mean J&F over
the seeds of the best offline inference (``best_offline_per_video``; ``offline_per_video`` for
rows without it) and of the online mode, with each seed's value as a dot, sorted by the mean
change (online - offline), largest gain first. The bars are drawn by ``scripts/visualize.py``.
The picture strips of one training's masks are ``scripts/visualize.py``'s (see
benchmarks/RESULTS.md for the commands of the figures in docs/figures).
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.ledger import latest, read_rows  # noqa: E402
from utils.io import atomic_write  # noqa: E402

LEDGER = ROOT / "benchmarks" / "results" / "ledger.jsonl"


def _load_visualize():
    """``scripts/visualize.py`` as a module (``scripts`` is not a package)."""
    name = "visualize_for_figures"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "visualize.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


vis = _load_visualize()


def select_rows(rows: Sequence[dict[str, Any]], split: str, setting: str | None) -> list[dict[str, Any]]:
    """The last row per seed of ``split`` and ``setting`` (``None``: the setting of the split's
    last row), by seed; raises ``ValueError`` naming what is missing."""
    of_split = [r for r in rows if r["split"] == split]
    if not of_split:
        raise ValueError(f"no ledger row of split {split!r}")
    if setting is None:
        setting = of_split[-1]["setting"]
    chosen = [r for r in latest(of_split) if r["setting"] == setting]
    if not chosen:
        known = sorted({r["setting"] for r in of_split})
        raise ValueError(f"no ledger row of split {split!r} with setting {setting!r}; settings: {known}")
    return sorted(chosen, key=lambda r: r.get("seed", 0))


def per_seed_scores(rows: Sequence[dict[str, Any]], mode: str) -> dict[str, tuple[list[float], list[float]]]:
    """Per video, the (offline, online) J&F fractions of each row, in row order. Offline is the
    row's best offline inference, else its plain offline figure; raises ``ValueError`` when a row
    lacks per-video figures or the rows do not hold the same videos."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    videos: set[str] | None = None
    for r in rows:
        where = f"ledger row of seed {r.get('seed')} ({r.get('time', '?')})"
        offline = r.get("best_offline_per_video") or r.get("offline_per_video")
        online = (r.get("online") or {}).get(mode, {}).get("per_video")
        if not offline:
            raise ValueError(f"{where}: no per-video offline figures")
        if not online:
            raise ValueError(f"{where}: no per-video figures of online mode {mode!r}")
        if set(offline) != set(online) or (videos is not None and set(offline) != videos):
            raise ValueError(f"{where}: its videos differ from the other rows' or between offline and online")
        videos = set(offline)
        for v in sorted(videos):
            a, b = out.setdefault(v, ([], []))
            a.append(offline[v] / 100)
            b.append(online[v] / 100)
    return out


def offline_label(rows: Sequence[dict[str, Any]]) -> str:
    """``best offline`` when every row has the best offline inference, else ``offline``."""
    return "best offline" if all(r.get("best_offline_per_video") for r in rows) else "offline"


def ledger_bars(rows: Sequence[dict[str, Any]], split: str, mode: str = "per_video"):
    """The bar chart (a matplotlib ``Figure``) of ``rows`` (one setting, one row per seed)."""
    scores = per_seed_scores(rows, mode)
    means = [vis.VideoScore(v, sum(a) / len(a), sum(b) / len(b), {}, {}) for v, (a, b) in scores.items()]
    ordered = vis.bar_order(means)
    seeds = ", ".join(str(r.get("seed")) for r in rows)
    labels = [offline_label(rows), "online" if mode == "per_video" else f"online ({mode})"]
    title = (f"DAVIS-2016 {split}: per-video J&F, mean over {len(rows)} seed{'s' * (len(rows) != 1)} ({seeds})\n"
             f"sorted by the mean change ({labels[1]} - {labels[0]}), largest gain first")
    return vis.bar_figure(ordered, labels, "J&F", title, points=[scores[s.name] for s in ordered],
                          points_label="one seed")


def main(argv: list[str] | None = None) -> Path:
    """Entry point; returns the written path."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ledger", nargs="+", default=[str(LEDGER)], help="ledger file(s), JSON lines")
    p.add_argument("--split", default="val", help="the rows' split (default: %(default)s)")
    p.add_argument("--setting", default=None,
                   help="the rows' setting, as benchmarks/results.py prints it (default: the split's last row's)")
    p.add_argument("--mode", default="per_video", help="online mode of the rows (default: %(default)s)")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write (overwritten)")
    a = p.parse_args(argv)
    if a.out.suffix.lower() != ".png":
        p.error("--out must end in .png")
    try:
        rows = [r for path in a.ledger for r in read_rows(path)]
        chosen = select_rows(rows, a.split, a.setting)
        fig = ledger_bars(chosen, a.split, a.mode)
    except ValueError as e:
        p.error(str(e))
    atomic_write(a.out, lambda tmp: fig.savefig(tmp, format="png"))
    print(f"wrote {a.out.resolve()} ({len(chosen)} seeds of setting {chosen[0]['setting']!r})")
    return a.out


if __name__ == "__main__":
    main()
