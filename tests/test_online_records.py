"""The online stage's resume records and planning (engine/online_records.py), on plain values:
which videos a ``--resume`` run reuses, which it re-tunes and why, and the transductive state's key.
The end-to-end runs are in tests/test_online.py."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from datasets.index import Video
from engine.online_config import OnlineConfig
from engine.online_records import (NOT_IN_KEY, OUTPUT_ONLY, check_record, file_stats, key_fields, key_mismatches,
                                   mask_options, plan_videos, record_path, resume_messages, save_roots,
                                   state_mismatches, transductive_key, write_record, written_files)

WEIGHTS = [{"path": "/ckpt/w.pth", "sha1": "a" * 40}]
TIMING = {"frames": 3, "tune_s": 1.5, "predict_s": 0.5, "passes": 1}


def _video(data: Path, name: str, frames: int = 3, dataset: str = "DAVIS-2016") -> Video:
    names = [f"{i:05d}" for i in range(frames)]
    paths = {}
    for kind in ("images", "flows"):
        folder = data / dataset / "val" / kind / name
        folder.mkdir(parents=True)
        paths[kind] = {n: folder / f"{n}.jpg" for n in names}
        for f in paths[kind].values():
            f.write_bytes(b"jpg " + f.name.encode())
    return Video(dataset, name, names, paths["images"], paths["flows"])


class _Run:
    """A run folder, a save folder and two videos, planned and finished as the tuner does."""

    def __init__(self, tmp_path: Path, prob: bool = False):
        self.run_dir, self.tmp = tmp_path / "run", tmp_path
        self.videos = [_video(tmp_path / "data", "b"), _video(tmp_path / "data", "a")]  # listed unsorted
        self.config = OnlineConfig(weights=("w.pth",), seed=5, resume=True)
        self.roots = save_roots(tmp_path / "m", tmp_path / "m_prob" if prob else None)
        # rank_videos' entries: (index in the sorted set, (dataset, video), frame indices)
        self.mine = [(0, ("DAVIS-2016", "a"), [3, 4, 5]), (1, ("DAVIS-2016", "b"), [0, 1, 2])]

    def plan(self, config: OnlineConfig | None = None, weights: list[dict] = WEIGHTS, roots: dict | None = None):
        return plan_videos(self.run_dir, config or self.config, weights, roots or self.roots, self.mine, self.videos)

    def mask(self, video: str, frame: int, kind: str = "masks") -> Path:
        return Path(self.roots[kind]) / "DAVIS-2016" / video / f"{frame:05d}.png"

    def finish(self, plan) -> None:
        """Write each planned video's masks, then its record (the tuner's order)."""
        for p in plan.todo:
            names = [f"{p.video[0]}/{p.video[1]}/{i:05d}.png" for i in range(len(p.indices))]
            for root in filter(None, self.roots.values()):
                for n in names:
                    (Path(root) / n).parent.mkdir(parents=True, exist_ok=True)
                    (Path(root) / n).write_bytes(b"png")
            write_record(record_path(self.run_dir, *p.video), p.key, written_files(self.roots, names), TIMING)


def _retuned(plan) -> dict[str, set[str]]:
    """Video -> the reasons it is planned again for."""
    out: dict[str, set[str]] = {}
    for reason, _, _, video in plan.stale:
        out.setdefault(video, set()).add(reason)
    return out


def test_record_path_is_the_run_folders_done_tree(tmp_path):
    assert record_path(tmp_path, "DAVIS-2016", "cows") == tmp_path / "done" / "DAVIS-2016" / "cows.json"


def test_first_run_tunes_every_video_and_keys_each_by_its_seed(tmp_path):
    run = _Run(tmp_path)
    plan = run.plan()
    assert [(p.index, p.video, p.indices) for p in plan.todo] == [(i, v, idx) for i, v, idx in run.mine]
    assert plan.reused == [] and _retuned(plan) == {"DAVIS-2016/a": {"no record"}, "DAVIS-2016/b": {"no record"}}
    line, = resume_messages(plan.stale)
    assert line == (f"not finished in an earlier run (no record in {run.run_dir / 'done'}): tuning 2 video(s) "
                    f"(DAVIS-2016/a, DAVIS-2016/b)")
    a, b = (p.key for p in plan.todo)
    assert (a["video"], a["weights"], a["save_dirs"]) == ("DAVIS-2016/a", WEIGHTS, run.roots)
    # The seed is the config's plus the video's place in the sorted set.
    assert (a["options"]["video_seed"], b["options"]["video_seed"]) == (5, 6)
    assert a["options"] == mask_options(run.config, video_seed=5) and a["inputs"] != b["inputs"]


def test_finished_video_with_all_masks_is_reused(tmp_path):
    run = _Run(tmp_path, prob=True)
    run.finish(run.plan())
    plan = run.plan()
    assert plan.todo == [] and plan.stale == [] and plan.reused == [TIMING, TIMING]
    # Options that cannot change a mask are not a reason to re-tune.
    plan = run.plan(dataclasses.replace(run.config, workers=8, device="cpu", no_tensorboard=True,
                                        output_dir="elsewhere", preset="authors"))
    assert plan.todo == [] and len(plan.reused) == 2


def test_without_resume_records_are_not_read(tmp_path):
    run = _Run(tmp_path)
    run.finish(run.plan())
    plan = run.plan(dataclasses.replace(run.config, resume=False))
    assert [p.video[1] for p in plan.todo] == ["a", "b"] and plan.reused == [] and plan.stale == []


def _touch_later(path: Path) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


# (what happens after the first run finished both videos, the plan's arguments, videos re-tuned and why)
CHANGES = {
    "option": (lambda run: None, {"config_changes": {"lr": 3e-4}},
               {"a": "mask-affecting options changed", "b": "mask-affecting options changed"}),
    "output_option": (lambda run: None, {"config_changes": {"flip": True}},
                      {"a": "mask-affecting options changed", "b": "mask-affecting options changed"}),
    "weights": (lambda run: None, {"weights": [{"path": "/ckpt/w.pth", "sha1": "b" * 40}]},
                {"a": "weights changed", "b": "weights changed"}),
    "save_dir": (lambda run: None, {"save": "m2"}, {"a": "save folder changed", "b": "save folder changed"}),
    "mask_deleted": (lambda run: run.mask("b", 1).unlink(), {}, {"b": "masks missing"}),
    "prob_deleted": (lambda run: run.mask("a", 0, "probs").unlink(), {}, {"a": "probability maps missing"}),
    "mask_rewritten": (lambda run: _touch_later(run.mask("a", 2)), {}, {"a": "masks rewritten by something else"}),
    "flow_replaced": (lambda run: _touch_later(run.videos[0].flow_paths["00001"]), {},
                      {"b": "input frames or flows changed"}),
    "record_deleted": (lambda run: record_path(run.run_dir, "DAVIS-2016", "a").unlink(), {}, {"a": "no record"}),
    "record_broken": (lambda run: record_path(run.run_dir, "DAVIS-2016", "b").write_text("{"), {},
                      {"b": "unreadable record (JSONDecodeError)"}),
}


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_a_change_since_the_record_re_tunes_the_videos_it_touches(tmp_path, change):
    act, plan_args, expected = CHANGES[change]
    run = _Run(tmp_path, prob=True)
    run.finish(run.plan())
    act(run)
    config = dataclasses.replace(run.config, **plan_args.get("config_changes", {}))
    roots = save_roots(tmp_path / plan_args["save"], tmp_path / "m_prob") if "save" in plan_args else None
    plan = run.plan(config, plan_args.get("weights", WEIGHTS), roots)
    assert _retuned(plan) == {f"DAVIS-2016/{v}": {r} for v, r in expected.items()}
    assert [p.video[1] for p in plan.todo] == sorted(expected)
    assert len(plan.reused) == 2 - len(expected)
    # Each stale entry names the record it was read from, and the log has one line per reason.
    assert all(rec == str(record_path(run.run_dir, *video.split("/"))) for _, _, rec, video in plan.stale)
    lines = resume_messages(plan.stale)
    videos = ", ".join(f"DAVIS-2016/{v}" for v in sorted(expected))
    assert len(lines) == 1 and lines[0].endswith(f"{len(expected)} video(s) ({videos})")


def test_a_deleted_mask_is_named(tmp_path):
    run = _Run(tmp_path)
    run.finish(run.plan())
    gone = run.mask("b", 1)
    gone.unlink()
    (reason, detail, record, video), = run.plan().stale
    assert (reason, video) == ("masks missing", "DAVIS-2016/b")
    assert record == str(record_path(run.run_dir, "DAVIS-2016", "b"))
    assert detail == f"1 of 3, e.g. {gone}"
    line, = resume_messages(run.plan().stale)
    assert line == f"masks missing (1 of 3, e.g. {gone}) since {record}: re-tuning 1 video(s) (DAVIS-2016/b)"


def test_a_video_at_another_place_in_the_set_re_tunes(tmp_path):
    """Its seed follows its place in the sorted set: another --videos selection moves it."""
    run = _Run(tmp_path)
    run.finish(run.plan())
    run.mine = [(1, ("DAVIS-2016", "a"), [3, 4, 5])]
    (reason, detail, _, _), = run.plan().stale
    assert reason == "mask-affecting options changed" and detail == "video_seed 5 -> 6"


def test_written_files_lists_each_save_folder(tmp_path):
    (tmp_path / "m" / "v").mkdir(parents=True)
    (tmp_path / "m" / "v" / "00000.png").write_bytes(b"png")
    roots = save_roots(tmp_path / "m", None)
    files = written_files(roots, (n for n in ["v/00000.png", "v/00001.png"]))  # any iterable, read once per folder
    st = os.stat(tmp_path / "m" / "v" / "00000.png")
    assert files == {"masks": [["v/00000.png", st.st_size, st.st_mtime_ns], ["v/00001.png", None, None]]}
    roots = save_roots(tmp_path / "m", tmp_path / "p")
    assert set(written_files(roots, ["v/00000.png"])) == {"masks", "probs"}


def test_transductive_key_is_the_whole_sets_without_save_folders_and_output_options(tmp_path):
    run = _Run(tmp_path)
    names = [("DAVIS-2016", "b"), ("DAVIS-2016", "a")]
    key = transductive_key(run.config, WEIGHTS, names, run.videos, world_size=1)
    assert set(key) == {"weights", "options", "inputs", "videos", "world_size"}  # no save folders
    assert key["videos"] == ["DAVIS-2016/a", "DAVIS-2016/b"] and key["world_size"] == 1
    assert set(key["options"]) == set(key_fields()) - set(OUTPUT_ONLY)
    a, b = run.plan().todo
    assert key["inputs"] != a.key["inputs"] != b.key["inputs"]  # over every video's files
    same = transductive_key(dataclasses.replace(run.config, flip=True, scales=(1.0, 1.5)), WEIGHTS, names[::-1],
                            run.videos[::-1], 1)
    assert same == key and state_mismatches({"resume_key": key}, same) == []

    def reasons(**kw):
        other = transductive_key(dataclasses.replace(run.config, **kw.pop("config", {})), kw.pop("weights", WEIGHTS),
                                 kw.pop("names", names), run.videos, kw.pop("world_size", 1))
        return [r for r, _ in state_mismatches({"resume_key": key}, other)]

    assert reasons(world_size=2) == ["world size changed"]
    assert reasons(names=names[:1]) == ["input frames or flows changed", "videos changed"]
    assert reasons(config={"lr": 3e-4}) == ["mask-affecting options changed"]
    assert reasons(weights=[{"path": "/x", "sha1": "c" * 40}]) == ["weights changed"]
    _touch_later(run.videos[1].image_paths["00000"])
    assert reasons() == ["input frames or flows changed"]
    assert state_mismatches({"model": {}}, key) == [
        ("state of an older version (does not name its weights and options)", "")]


# The records' key ------------------------------------------------------------------------------
def test_resume_key_is_every_config_field_but_those_that_cannot_change_a_mask():
    """The records' options are OnlineConfig's fields minus NOT_IN_KEY: no hand-kept list to forget."""
    fields = {f.name for f in dataclasses.fields(OnlineConfig)}
    assert set(NOT_IN_KEY) <= fields  # every name left out is a field (none stale)
    assert set(mask_options(OnlineConfig(weights=("w",)))) == fields - set(NOT_IN_KEY) == set(key_fields())
    assert set(OUTPUT_ONLY) <= set(key_fields())
    assert "iou_smooth" in key_fields()  # the hand-kept list had left it out

    @dataclasses.dataclass(frozen=True)
    class Later(OnlineConfig):  # an option added later is keyed without being listed anywhere
        new_option: int = 0

    assert mask_options(Later(weights=("w",)))["new_option"] == 0


def test_mask_options_make_a_record_stale_and_the_others_do_not():
    c = OnlineConfig(weights=("w",))
    rec = {"options": mask_options(c, video_seed=3)}

    def mismatches(**changes):
        return key_mismatches(rec, {"options": mask_options(dataclasses.replace(c, **changes), video_seed=3)})

    assert mismatches(workers=8, device="cpu", no_tensorboard=True, resume=True, preset="authors",
                      output_dir="elsewhere", data_dir="other_copy") == []
    assert mismatches(amp_dtype="fp16") == []  # unused without --amp
    assert mismatches(lr=3e-4) == [("mask-affecting options changed", "lr 0.0001 -> 0.0003")]
    assert mismatches(iou_smooth=0.0) == [("mask-affecting options changed", "iou_smooth 1.0 -> 0.0")]


def test_record_naming_retired_options_is_stale_and_says_why(tmp_path):
    """A record of a version that still had the retired options re-tunes its video, with the usual line."""
    c = OnlineConfig(weights=("w",))
    mask = tmp_path / "m" / "DAVIS-2016" / "v" / "00000.png"
    mask.parent.mkdir(parents=True)
    mask.write_bytes(b"png")
    roots = save_roots(tmp_path / "m", None)
    files = {"masks": file_stats(roots["masks"], ["DAVIS-2016/v/00000.png"])}
    key = {"options": mask_options(c, video_seed=0), "save_dirs": roots}
    old = {k: v for k, v in key["options"].items() if k != "iou_smooth"}
    old |= {"student_aug": 0, "aug_scale": [0.8, 1.25], "tune": "all", "write_blend": 1.0, "target_scales": [1.0],
            "target_flip": 1, "causal_steps": 1}
    write_record(tmp_path / "old.json", {**key, "options": old}, files, {})
    rec, reasons = check_record(tmp_path / "old.json", key)
    assert rec is None and [r for r, _ in reasons] == ["mask-affecting options changed"]
    assert "student_aug 0 -> None" in reasons[0][1] and "iou_smooth None -> 1.0" in reasons[0][1]
    line, = resume_messages([(*reasons[0], str(tmp_path / "old.json"), "DAVIS-2016/v")])
    assert line.startswith("mask-affecting options changed (") and line.endswith("re-tuning 1 video(s) (DAVIS-2016/v)")
    write_record(tmp_path / "new.json", key, files, {})  # today's record of the same masks is reused
    assert check_record(tmp_path / "new.json", key)[1] == []
