"""Faults around option presets: a --config that names a preset that does not exist,
and a --config that is not a mapping. Both must be refused before anything is written, naming the file."""
from __future__ import annotations

from pathlib import Path

from tests.faults.common import ROOT, Case, Outcome, error_names, last_error, run_script, synthetic_data


def _refused(tmp: Path, script: str, config: Path, extra: list[str]) -> Outcome:
    data = synthetic_data(tmp)
    out = tmp / "run"
    r = run_script([str(ROOT / script), "--data_dir", str(data), "--config", str(config), "--output_dir", str(out),
                    "--workers", "0", "--no_tensorboard", *extra], cwd=tmp)
    written = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    if r.returncode == 0:
        return Outcome(f"ran with a bad config ({len(written)} files written)", lost=1)
    named = error_names(last_error(r.stderr), config)
    return Outcome(f"refused, {'names' if named else 'does NOT name'} {config.name}; {len(written)} files written",
                   lost=len(written), unnamed=0 if named else 1)


def unknown_preset_in_config(tmp: Path) -> Outcome:
    """``preset: authers`` (a typo) in the online stage's --config."""
    cfg = tmp / "online.yaml"
    cfg.write_text("preset: authers\nepochs: 1\n")
    return _refused(tmp, "online_finetuning.py", cfg, ["--weights", str(tmp / "none.pth")])


def config_not_a_mapping(tmp: Path) -> Outcome:
    """A --config holding a YAML list (``- preset: authors``) for offline training."""
    cfg = tmp / "offline.yaml"
    cfg.write_text("- preset: authors\n- epochs: 1\n")
    return _refused(tmp, "unlabeled_train.py", cfg, ["--model_scale", "xxs", "--size", "64", "96"])


CASES = [Case("preset: unknown preset named in --config", unknown_preset_in_config),
         Case("preset: --config not a mapping", config_not_a_mapping)]
