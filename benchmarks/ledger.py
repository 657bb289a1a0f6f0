"""The run ledger: one JSON line per finished real-data run, and the summaries read from it.

``benchmarks/davis_real.py`` appends a row when a run ends (:func:`append_row`);
``benchmarks/results.py`` groups the rows by setting and prints n, mean +- sd and min-max
(:func:`summarise`). Figures are J&F, J and F in percent. A row is keyed by its setting (every
option of the run that differs from the recipe's default, less those that only say where or
how it ran) and its seed: a later row of the same setting and seed replaces an earlier one.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from utils.io import atomic_write

# davis_real.py options that say where or how a run ran, not what it computes.
RUNTIME_OPTIONS = {"davis", "out_dir", "name", "seed", "ledger", "note", "workers", "tag", "argv"}


def setting_of(a: argparse.Namespace, defaults: dict[str, Any]) -> dict[str, Any]:
    """The options of ``a`` that differ from ``defaults``, less the runtime ones (the row's setting)."""
    out = {}
    for k, v in sorted(vars(a).items()):
        if k in RUNTIME_OPTIONS:
            continue
        v = list(v) if isinstance(v, tuple) else v
        d = defaults.get(k)
        if v != (list(d) if isinstance(d, tuple) else d):
            out[k] = v
    return out


def setting_key(setting: dict[str, Any]) -> str:
    """A short stable text for a setting: ``--opt value`` pairs in name order ('recipe' when empty)."""
    parts = []
    for k, v in sorted(setting.items()):
        v = " ".join(map(str, v)) if isinstance(v, list) else str(v)
        parts.append(f"--{k} {shlex.quote(v) if v else repr('')}")
    return " ".join(parts) or "recipe"


def _pct(scores: dict[str, float] | None, prefix: str = "DAVIS-2016") -> dict[str, float] | None:
    if not scores:
        return None
    return {m: round(100 * scores[f"{prefix} {m}"], 2) for m in ("J&F", "J", "F") if f"{prefix} {m}" in scores}


def ledger_row(result: dict, a: argparse.Namespace, seed: int, n_frames: int, commit: str,
               defaults: dict[str, Any]) -> dict[str, Any]:
    """The ledger row of one finished ``davis_real.run`` (its ``result``), trained with ``seed``;
    ``defaults``: ``davis_real``'s option defaults (the setting is what ``a`` changes of them)."""
    import torch

    argv = _one_seed(a.argv, seed)
    times = result["times"]
    best = result.get("best_offline")
    row: dict[str, Any] = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,
        "command": "python benchmarks/davis_real.py " + shlex.join(argv),
        "setting": setting_key(setting_of(a, defaults)),
        "seed": seed,
        "split": result["split"], "train_split": result["train_split"],
        "frames": n_frames,
        "offline": _pct(result["offline"]),
        "best_offline": _pct(best),
        "offline_per_video": _round(result.get("offline_per_video")),
        "best_offline_per_video": _round(result.get("best_offline_per_video")),
        "online": {},
        "minutes": {k: round(v / 60, 2) for k, v in times.items() if not k.endswith("per_frame")},
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_at_end": [round(x, 2) for x in os.getloadavg()],
        "note": a.note,
    }
    ref = result.get("best_offline_per_video") or result["offline_per_video"]
    ref_jf = (best or result["offline"])["DAVIS-2016 J&F"]
    for mode, r in result["online"].items():
        pv = r["per_video"]
        row["online"][mode] = {**_pct(r["scores"]), "per_video": _round(pv),
                               "gain": round(100 * (r["scores"]["DAVIS-2016 J&F"] - ref_jf), 2),
                               "gain_over": "best_offline" if best else "offline",
                               "worse_by_1": sorted(v for v in pv if pv[v] < ref[v] - 0.01),
                               "tune_s_per_frame": r["timing"].get("tune_s_per_frame"),
                               "predict_s_per_frame": r["timing"].get("predict_s_per_frame")}
    return row


def _round(pv: dict[str, float] | None) -> dict[str, float] | None:
    return None if pv is None else {k: round(100 * v, 2) for k, v in pv.items()}


def _one_seed(argv: list[str], seed: int) -> list[str]:
    """``argv`` with its ``--seed`` values replaced by ``seed`` alone."""
    out, skip = [], False
    for tok in argv:
        if skip and not tok.startswith("-"):
            continue
        skip = False
        if tok == "--seed":
            skip = True
            continue
        if tok.startswith("--seed="):
            continue
        out.append(tok)
    return [*out, "--seed", str(seed)]


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append ``row`` as one JSON line; the file is rewritten atomically (a kill leaves the old one)."""
    path = Path(path)
    old = path.read_text() if path.is_file() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    line = json.dumps(row, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(old + line + "\n"))


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Every row of a ledger; a line that is not a JSON object raises ``ValueError`` naming the file and line."""
    rows = []
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"cannot read the ledger {path}: {e}") from e
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {i}: not JSON ({e.msg})") from None
        if not isinstance(row, dict) or "setting" not in row or "split" not in row:
            raise ValueError(f"{path}, line {i}: not a ledger row (a JSON object with 'setting' and 'split')")
        rows.append(row)
    return rows


def latest(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (split, setting, seed): the last one."""
    keep: dict[tuple, dict] = {}
    for r in rows:
        keep[(r["split"], r["setting"], r.get("seed"))] = r
    return list(keep.values())


def stats(values: list[float]) -> dict[str, float]:
    """n, mean, sample sd (0 for one value), min, max."""
    n = len(values)
    return {"n": n, "mean": statistics.fmean(values), "sd": statistics.stdev(values) if n > 1 else 0.0,
            "min": min(values), "max": max(values)}


def summarise(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (split, setting): the seeds and stats of offline J&F, J, F, the best offline inference and
    each online mode's J&F and gain, in the order the settings first appear."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in latest(rows):
        groups.setdefault((r["split"], r["setting"]), []).append(r)
    out = []
    for (split, setting), rs in groups.items():
        rs = sorted(rs, key=lambda r: r.get("seed", 0))
        s: dict[str, Any] = {"split": split, "setting": setting, "seeds": [r.get("seed") for r in rs]}
        for key in ("offline", "best_offline"):
            vals = [r[key] for r in rs if r.get(key)]
            for m in ("J&F", "J", "F"):
                if len(vals) == len(rs) and all(m in v for v in vals):
                    s[f"{key} {m}"] = stats([v[m] for v in vals])
        modes = sorted({m for r in rs for m in r.get("online", {})})
        for mode in modes:
            vals = [r["online"][mode] for r in rs if mode in r.get("online", {})]
            s[f"online {mode} J&F"] = stats([v["J&F"] for v in vals])
            s[f"online {mode} gain"] = stats([v["gain"] for v in vals])
            s[f"online {mode} worse"] = [len(v["worse_by_1"]) for v in vals]
        # A row whose run found its training finished (a retest) trained nothing: no minutes to average.
        minutes = [r["minutes"]["train"] for r in rs if r.get("minutes", {}).get("train", 0) >= 0.05]
        if minutes:
            s["train minutes"] = stats(minutes)
        out.append(s)
    return out


def fmt(st: dict[str, float] | None) -> str:
    """``mean ± sd (min–max)``, or the value alone for one run."""
    if not st:
        return ""
    if st["n"] == 1:
        return f"{st['mean']:.1f} (n=1)"
    return f"{st['mean']:.1f} ± {st['sd']:.1f} ({st['min']:.1f}–{st['max']:.1f})"


def markdown(summary: list[dict[str, Any]]) -> str:
    """One table per split: a row per setting, n, and each figure as mean ± sd (min–max)."""
    lines = []
    for split in dict.fromkeys(s["split"] for s in summary):
        rows = [s for s in summary if s["split"] == split]
        modes = sorted({k.split()[1] for s in rows for k in s if k.startswith("online ") and k.endswith(" J&F")})
        head = ["setting", "n (seeds)", "offline J&F", "J", "F", "best offline J&F",
                *[c for m in modes for c in (f"online {m}", "gain", "videos worse by > 1")], "train min"]
        lines += [f"### {split}", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for s in rows:
            cells = [f"`{s['setting']}`", f"{len(s['seeds'])} ({', '.join(map(str, s['seeds']))})",
                     fmt(s.get("offline J&F")), fmt(s.get("offline J")), fmt(s.get("offline F")),
                     fmt(s.get("best_offline J&F"))]
            for m in modes:
                cells += [fmt(s.get(f"online {m} J&F")), fmt(s.get(f"online {m} gain")),
                          ", ".join(map(str, s.get(f"online {m} worse", [])))]
            cells.append(fmt(s.get("train minutes")))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
