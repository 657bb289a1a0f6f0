"""Which files of an output folder ``scripts/segment_video.py`` wrote, so that it replaces and deletes only those.

``<output_dir>/.segment_video.json`` (the *manifest*) lists, relative to the output folder,
every file a run wrote or was about to write, with its owner (video name and weights) and,
once the run finished, its size, modification time and SHA-1; and the folders the tool
created. A file is the tool's own while it is listed and unchanged (same size, and the same
modification time or the same content: a copied output folder stays the tool's, a mask
edited by hand becomes the user's). Every other file is the user's: it is never deleted,
and never overwritten without ``--overwrite``.

Files are *claimed* (listed, without size) and the manifest saved before they are written,
so a kill at any moment leaves a manifest that names every file the tool had started to
write. Numbered outputs (``00000.png, 00001.png, ...``) are claimed ahead in growing blocks,
so a video of N frames costs O(log N) manifest writes, not N; claims that were never
written are dropped when the run finishes, or when the next run loads a manifest whose
claimed file does not exist.

``<output_dir>/.segment_video.lock`` (``flock``) keeps two runs from sharing one output folder;
the kernel releases it when a run dies.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from utils.io import atomic_write

MANIFEST = ".segment_video.json"
LOCK = ".segment_video.lock"
FORMAT = "segment_video manifest"
VERSION = 1
# Claim-ahead block: at least this many names, else as many as already claimed in the folder.
MIN_CLAIM_AHEAD = 64
WORK_PREFIX = "work/"  # the work folder, relative to the output folder


class OutputConflict(ValueError):
    """A run would replace or delete a file it does not own, or share its output folder; the message
    names the file and how to proceed."""


def part_path(path: Path) -> Path:
    """The hidden ``.<name>.part`` file :func:`utils.io.atomic_write` fills before renaming it to ``path``."""
    return path.with_name(f".{path.name}.part")


def file_sha1(path: Path) -> str:
    """SHA-1 of a file's content."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Owner:
    """Who writes a run's files: the video (output name) and an id of the weights' files."""
    video: str
    weights_id: str
    weights: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def of(cls, video: str, weights: Iterable[str | Path]) -> "Owner":
        """``video`` with the weights files identified by resolved path, size and modification time."""
        desc, ident = [], []
        for w in weights:
            p = Path(w)
            st = p.stat() if p.is_file() else None
            desc.append(str(p))
            ident.append([str(p.resolve()), st.st_size if st else None, st.st_mtime_ns if st else None])
        wid = hashlib.sha1(json.dumps(ident).encode()).hexdigest()[:12]
        return cls(video, wid, tuple(desc))


class Ledger:
    """The manifest of one output folder and the rules for touching its files.

    ``owner`` is the current run; ``overwrite`` lets it replace files it does not own (never
    delete them). Paths passed in are built from ``root`` (``root / "masks" / ...``).
    """

    def __init__(self, root: Path, owner: Owner, overwrite: bool = False) -> None:
        self.root, self.owner, self.overwrite = Path(root), owner, overwrite
        self.path = self.root / MANIFEST
        self.files: dict[str, dict] = {}
        self.dirs: set[str] = set()
        self.runs: dict[str, dict] = {}
        self.written: set[str] = set()
        self._lock_fd: int | None = None
        self._load()

    # ------------------------------------------------------------------ manifest file
    def _load(self) -> None:
        if not self.path.is_file():
            return
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError("not a segment_video manifest")
            files, dirs, runs = data["files"], data["dirs"], data["runs"]
            if not (isinstance(files, dict) and isinstance(dirs, list) and isinstance(runs, dict)):
                raise ValueError("unexpected structure")
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise OutputConflict(
                f"cannot read the manifest {self.path} ({type(e).__name__}: {e}); it lists the files segment_video "
                f"wrote in {self.root}. Move it away to start afresh (the files it listed then count as yours and are "
                "not replaced without --overwrite), or choose another --output_dir") from e
        self.files, self.dirs, self.runs = files, set(dirs), runs
        # A claim whose file (and part file) does not exist was never written, or was deleted since:
        # forget it, so that a file the user puts there later is theirs.
        for rel in [r for r in self.files if not self._exists(r)]:
            del self.files[rel]

    def save(self) -> None:
        """Write the manifest atomically."""
        data = {"format": FORMAT, "version": VERSION, "tool": "scripts/segment_video.py",
                "runs": self.runs, "dirs": sorted(self.dirs), "files": dict(sorted(self.files.items()))}
        text = json.dumps(data, indent=0)
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, lambda tmp: tmp.write_text(text))

    @contextlib.contextmanager
    def locked(self) -> Iterator["Ledger"]:
        """Hold ``<root>/.segment_video.lock`` for the block; refuse when another run holds it."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        lock = self.root / LOCK
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OutputConflict(f"another segment_video run is writing to {self.root} (it holds {lock}); wait for "
                                 "it to finish or choose another --output_dir") from None
        try:
            # The run that held the lock before may have changed the manifest since it was read.
            self.files, self.dirs, self.runs = {}, set(), {}
            self._load()
            yield self
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # ------------------------------------------------------------------ ownership
    def rel(self, path: Path) -> str:
        """``path`` relative to the output folder, POSIX style (the manifest's keys)."""
        path = Path(path)
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.resolve().relative_to(self.root.resolve()).as_posix()

    def _exists(self, rel: str) -> bool:
        p = self.root / rel
        return os.path.lexists(p) or os.path.lexists(part_path(p))

    def entry(self, path: Path) -> dict | None:
        """The manifest entry of an existing file the tool owns (listed and unchanged), else None."""
        rel = self.rel(path)
        e = self.files.get(rel)
        p = self.root / rel
        if e is None:
            return None
        if "size" not in e:  # claimed; a kill came before the run finished
            return e
        try:
            st = p.stat()
        except OSError:
            return None
        if st.st_size != e["size"]:
            return None
        if st.st_mtime_ns == e.get("mtime_ns") or file_sha1(p) == e.get("sha1"):
            return e
        return None

    def status(self, path: Path) -> str:
        """``absent``, ``own``, ``other`` (the tool's, of another video or other weights) or ``user`` (not
        listed, or changed since it was written).

        Results (masks, probabilities, overlay) are ``own`` only for this video and these weights; files
        of the work folder (frames, flows, records, the online run folder) do not depend on the weights
        and are ``own`` whenever the tool wrote them, as are its hidden temporary files.
        """
        if not os.path.lexists(path):
            return "absent"
        e = self.entry(path)
        if e is None:
            return "user"
        if self.rel(path).startswith(WORK_PREFIX) or Path(path).name.startswith("."):
            return "own"  # work files, and the hidden temporary files of interrupted writes, serve any run
        if e.get("video") != self.owner.video or e.get("weights") != self.owner.weights_id:
            return "other"
        return "own"

    def describe(self, path: Path) -> str:
        """Who wrote ``path``, for messages."""
        e = self.entry(path)
        if e is None:
            return f"not written by segment_video (not listed in {self.path}, or changed since)"
        run = self.runs.get(e.get("video"), {})
        weights = run.get("weights") if run.get("weights_id") == e.get("weights") else None
        return (f"written by segment_video for video {e.get('video')!r} with "
                f"{'weights ' + ' '.join(weights) if weights else 'other weights'}")

    def entries_under(self, folder: Path) -> list[Path]:
        """Listed files inside ``folder`` (at any depth), existing or not."""
        prefix = self.rel(folder).rstrip("/") + "/"
        return [self.root / r for r in self.files if r.startswith(prefix)]

    # ------------------------------------------------------------------ writing
    def _record_dirs(self, folder: Path) -> list[Path]:
        """Record the missing folders from ``folder`` up to the root; returns them, outermost first."""
        missing = []
        f = Path(folder)
        while f != self.root and not f.exists() and f != f.parent:
            missing.append(f)
            f = f.parent
        for d in missing:
            self.dirs.add(self.rel(d))
        return missing[::-1]

    def claim(self, paths: Iterable[Path]) -> None:
        """List ``paths`` as this run's (pending) files and save, before any of them is written."""
        made = []
        for p in paths:
            made += self._record_dirs(Path(p).parent)
            self.files[self.rel(p)] = {"video": self.owner.video, "weights": self.owner.weights_id}
        self.save()
        for d in made:
            d.mkdir(parents=True, exist_ok=True)

    def _claim_block(self, path: Path) -> list[Path]:
        """``path`` and, for a numbered name, the next free numbered names of its folder."""
        stem, suffix = path.stem, path.suffix
        if not stem.isdigit():
            return [path]
        start = int(stem)
        block = max(MIN_CLAIM_AHEAD, len(self.entries_under(path.parent)))
        out = [path]
        for k in range(start + 1, start + block):
            q = path.with_name(f"{k:0{len(stem)}d}{suffix}")
            # Only free names: an existing file is claimed when (and if) it is written.
            if self.rel(q) not in self.files and not os.path.lexists(q):
                out.append(q)
        return out

    def before_write(self, path: Path) -> None:
        """Call before writing ``path``: refuses a file the run may not replace, claims the name."""
        path = Path(path)
        st = self.status(path)
        if st in ("user", "other") and not self.overwrite:
            raise OutputConflict(f"refusing to overwrite {path}: {self.describe(path)}; pass --overwrite to replace "
                                 "it, or choose another --output_dir")
        rel = self.rel(path)
        e = self.files.get(rel)
        mine = e is not None and e.get("video") == self.owner.video and e.get("weights") == self.owner.weights_id
        if not mine or "size" in e:  # not claimed by this run yet, or about to change a finished file
            self.claim(self._claim_block(path) if not os.path.lexists(path) else [path])
        self.written.add(rel)

    def remove(self, path: Path) -> bool:
        """Delete ``path`` (and its part file) if the tool owns it; a user's file is kept. Call :meth:`save`."""
        path = Path(path)
        rel = self.rel(path)
        if rel not in self.files:
            return False
        if os.path.lexists(path) and self.entry(path) is None:
            return False
        for p in (path, part_path(path)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        del self.files[rel]
        self.written.discard(rel)
        return True

    def prune_dirs(self, under: Path) -> list[Path]:
        """Remove the empty folders the tool created inside ``under`` (and ``under`` itself), deepest first."""
        top = self.rel(under).rstrip("/")
        removed = []
        for rel in sorted((d for d in self.dirs if d == top or d.startswith(top + "/")),
                          key=lambda d: d.count("/"), reverse=True):
            d = self.root / rel
            if d.is_dir():
                try:
                    d.rmdir()
                except OSError:  # not empty: a user's file, or one of ours kept on purpose
                    continue
                removed.append(d)
            self.dirs.discard(rel)
        return removed

    def adopt_written(self, paths: Iterable[Path]) -> None:
        """Mark ``paths`` (claimed earlier) as written by this run."""
        for p in paths:
            self.written.add(self.rel(p))

    def confirm(self) -> None:
        """Record size, modification time and SHA-1 of what this run wrote; forget claims never written."""
        for rel in list(self.files):
            e = self.files[rel]
            if e.get("video") != self.owner.video or e.get("weights") != self.owner.weights_id or "size" in e:
                continue
            p = self.root / rel
            if rel in self.written and p.is_file():
                st = p.stat()
                e.update(size=st.st_size, mtime_ns=st.st_mtime_ns, sha1=file_sha1(p))
            elif not self._exists(rel):
                del self.files[rel]
        self.written.clear()
        self.save()

    def start_run(self, options: dict) -> None:
        """Record that this owner's run started (state ``running``) and save."""
        self.runs[self.owner.video] = {"weights": list(self.owner.weights), "weights_id": self.owner.weights_id,
                                       "state": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                       "options": options}
        self.save()

    def finish_run(self, frames: int) -> None:
        """Confirm the written files and mark this owner's run ``done``."""
        run = self.runs.setdefault(self.owner.video, {})
        run.update(state="done", frames=frames, finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
        self.confirm()


class Unguarded:
    """The :class:`Ledger` interface without a manifest (library use, tests): every file is fair game."""

    overwrite = True

    def before_write(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)

    def status(self, path: Path) -> str:
        return "own" if os.path.lexists(path) else "absent"

    def remove(self, path: Path) -> bool:
        for p in (Path(path), part_path(Path(path))):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        return True

    def prune_dirs(self, under: Path) -> list[Path]:
        with contextlib.suppress(OSError):
            Path(under).rmdir()
            return [Path(under)]
        return []

    def save(self) -> None:
        pass

    def claim(self, paths: Iterable[Path]) -> None:
        for p in paths:
            Path(p).parent.mkdir(parents=True, exist_ok=True)

    def adopt_written(self, paths: Iterable[Path]) -> None:
        pass
