"""Headline figures of evaluation results and an offline-vs-online comparison table."""
from __future__ import annotations

from .results import DatasetResult


def scores(results: list[DatasetResult]) -> dict[str, float]:
    """Headline figures of evaluation results: DAVIS J&F/J/F, sparse J (and class means)."""
    out: dict[str, float] = {}
    for r in results:
        if r.protocol == "davis":
            out |= {f"{r.dataset} J&F": r.summary["JF_mean"], f"{r.dataset} J": r.summary["J_mean"],
                    f"{r.dataset} F": r.summary["F_mean"]}
        elif r.protocol == "sparse":
            out[f"{r.dataset} J"] = r.summary["J_mean"]
            if "J_class_mean" in r.summary:
                out[f"{r.dataset} J (class mean)"] = r.summary["J_class_mean"]
    return out


def comparison_table(before: list[DatasetResult], after: list[DatasetResult]) -> str:
    """Dataset figures before/after online tuning, then per-video DAVIS J&F deltas."""
    b, a = scores(before), scores(after)
    lines = [f"{'metric':34s} {'offline':>8s} {'online':>8s} {'delta':>8s}"]
    for k in b:
        lines.append(f"{k:34s} {100 * b[k]:8.1f} {100 * a[k]:8.1f} {100 * (a[k] - b[k]):+8.1f}")
    for rb, ra in zip(before, after):
        if rb.protocol != "davis":
            continue
        lines.append(f"\nper-video J&F on {rb.dataset}:")
        after_seq = {s.name: s for s in ra.sequences}
        for s in rb.sequences:
            jb, ja = s.metrics["JF_mean"], after_seq[s.name].metrics["JF_mean"]
            lines.append(f"  {s.name:32s} {100 * jb:8.1f} {100 * ja:8.1f} {100 * (ja - jb):+8.1f}")
    return "\n".join(lines)
