"""What the fault cases share: the outcome record, synthetic data, running scripts, file snapshots."""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    """What one case did: a one-line description, files lost or silently wrong, errors naming no file."""
    outcome: str
    lost: int = 0
    unnamed: int = 0


@dataclass
class Case:
    """A named fault; ``run(tmp)`` performs it inside the empty folder ``tmp`` and reports."""
    name: str
    run: Callable[[Path], Outcome]


_SYNTHETIC: Path | None = None


def synthetic_data(tmp: Path) -> Path:
    """A copy of the small synthetic data set (made once per process, copied per case)."""
    global _SYNTHETIC
    if _SYNTHETIC is None or not _SYNTHETIC.is_dir():
        import tempfile

        from datasets.synthetic import make_synthetic_dataset
        _SYNTHETIC = Path(tempfile.mkdtemp(prefix="oast_faults_data_")) / "data"
        make_synthetic_dataset(_SYNTHETIC, seed=0, size=(64, 96), save_exact_flow=False)
    dst = tmp / "data"
    shutil.copytree(_SYNTHETIC, dst)
    return dst


def run_script(args: list[str], cwd: Path | None = None, kill_after: float | None = None,
               kill_when: Callable[[], bool] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the repository root (one torch thread); optionally SIGKILL it.

    With ``kill_when`` the process is killed as soon as the predicate holds (polled every
    20 ms); with ``kill_after`` after that many seconds. Returns the completed process
    (``returncode`` -9 when killed), with stdout/stderr as text.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, *args], cwd=cwd or ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if kill_after is not None or kill_when is not None:
        t0 = time.time()
        while proc.poll() is None and time.time() - t0 < timeout:
            if (kill_after is not None and time.time() - t0 >= kill_after) or (kill_when and kill_when()):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha1 of every file under ``folder`` (to detect lost or changed files)."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def lost_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """Files of ``before`` that are gone or changed in ``after``."""
    return [k for k, v in before.items() if after.get(k) != v]


def unreadable_outputs(folder: Path, pattern: str = "*.png") -> list[Path]:
    """Files under their final names that do not decode (0-byte or truncated images)."""
    from PIL import Image
    bad = []
    for p in Path(folder).rglob(pattern) if Path(folder).exists() else []:
        if p.name.startswith("."):
            continue
        try:
            with Image.open(p) as im:
                im.load()
        except Exception:
            bad.append(p)
    return bad


def error_names(text: str, *paths: Path | str) -> bool:
    """Whether ``text`` (a traceback or message) names one of ``paths`` (full path or file name)."""
    return any(str(p) in text or Path(p).name in text for p in paths)


def last_error(stderr: str) -> str:
    """The final non-empty line of a traceback: the error a user reads."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""
