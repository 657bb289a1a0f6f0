"""What the fault cases share: the outcome record, synthetic data, running scripts, file snapshots."""
from __future__ import annotations

import hashlib
import json
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

        import torch

        from datasets.synthetic import make_synthetic_dataset
        _SYNTHETIC = Path(tempfile.mkdtemp(prefix="oast_faults_data_")) / "data"
        # One torch thread: its flow images are many tiny torch operations, where a second thread
        # (tests/conftest.py sets two) only adds waiting: 12x the CPU time on a busy machine.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            make_synthetic_dataset(_SYNTHETIC, seed=0, size=(64, 96), save_exact_flow=False)
        finally:
            torch.set_num_threads(threads)
    dst = tmp / "data"
    shutil.copytree(_SYNTHETIC, dst)
    return dst


@dataclass(frozen=True)
class KillAt:
    """A kill point inside the script: its ``n``-th file written under ``folder`` (see :func:`run_script`).

    Counted are the files this run puts in place under ``folder`` (any depth) whose name ends
    with ``suffix``: every output is written to a hidden part file and renamed into place
    (``utils.io.atomic_write``), and each rename is one file. ``before_rename``: the kill
    comes once the ``n``-th file is written but before its rename, leaving its part file.
    """
    folder: Path
    n: int
    suffix: str = ""
    before_rename: bool = False


# Runs the script as ``python <script> <args>`` would, after wrapping ``os.replace`` so that the
# process SIGKILLs itself at the $OAST_FAULT_KILL_AT point (JSON of a KillAt). Used only by the
# fault cases: the script's own code is unchanged.
_KILL_AT_BOOT = """
import json, os, runpy, signal, sys, threading
at = json.loads(os.environ.pop("OAST_FAULT_KILL_AT"))
folder, lock, done = os.path.realpath(at["folder"]) + os.sep, threading.Lock(), [0]
real_replace = os.replace

def replace(src, dst, *a, **k):
    path = os.path.realpath(os.fspath(dst))
    watched = path.startswith(folder) and path.endswith(at["suffix"])
    if watched and at["before_rename"]:
        with lock:
            if done[0] + 1 == at["n"]:
                os.kill(os.getpid(), signal.SIGKILL)
    out = real_replace(src, dst, *a, **k)
    if watched:
        with lock:
            done[0] += 1
            if done[0] == at["n"]:
                os.kill(os.getpid(), signal.SIGKILL)
    return out

os.replace = replace
sys.argv = sys.argv[1:]
if sys.argv[0] == "-m":
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
else:
    sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_script(args: list[str], cwd: Path | None = None, kill_when: Callable[[], bool] | None = None,
               kill_at: KillAt | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the repository root (one torch thread); optionally SIGKILL it.

    With ``kill_at`` the script kills itself at that point of its own writes (a real
    ``SIGKILL``: no handler, no cleanup), the same point on any machine however loaded. With
    ``kill_when`` the process is killed from outside as soon as the predicate holds (polled
    every 20 ms): only for a stage that lasts long past the point where the predicate turns
    true (on a loaded machine a short stage can end between two polls, or a few files later).
    Returns the completed process (``returncode`` -9 when killed), with stdout/stderr as text.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, *args]
    if kill_at is not None:
        env["OAST_FAULT_KILL_AT"] = json.dumps({"folder": str(kill_at.folder), "n": kill_at.n,
                                                "suffix": kill_at.suffix, "before_rename": kill_at.before_rename})
        cmd = [sys.executable, "-c", _KILL_AT_BOOT, *args]
    proc = subprocess.Popen(cmd, cwd=cwd or ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = err = None
    if kill_when is not None:
        t0 = time.time()
        while time.time() - t0 < timeout:
            try:  # reads the pipes while it waits: a script that fills one would block on it, unkilled
                out, err = proc.communicate(timeout=0.02)
                break
            except subprocess.TimeoutExpired:  # retrying loses no output
                if kill_when():
                    proc.send_signal(signal.SIGKILL)
                    break
    if out is None:
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
