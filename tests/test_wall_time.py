"""The wall-time estimate's arithmetic (benchmarks/wall_time.py) against the loaders it models."""
import importlib.util
import sys
from pathlib import Path

import pytest
from torch.utils.data import DataLoader, DistributedSampler

_spec = importlib.util.spec_from_file_location("wall_time", Path(__file__).parents[1] / "benchmarks" / "wall_time.py")
wt = importlib.util.module_from_spec(_spec)
sys.modules["wall_time"] = wt  # dataclasses look their module up
_spec.loader.exec_module(wt)


@pytest.mark.parametrize("frames,ngpu,batch", [(2079, 2, 2), (2079, 1, 2), (10, 3, 2), (7, 2, 4), (3, 2, 2)])
def test_offline_steps_match_the_trainers_loader(frames, ngpu, batch):
    # The offline trainer: DistributedSampler(drop_last=True) + DataLoader(drop_last=True).
    lengths = {len(DataLoader(range(frames), batch, drop_last=True,
                              sampler=DistributedSampler(range(frames), ngpu, r, shuffle=True, drop_last=True)))
               for r in range(ngpu)}
    assert lengths == {wt.offline_steps(frames, batch, ngpu)}


def test_online_steps_batch_each_video_separately():
    assert wt.online_steps(wt.Counts(93, [43, 50]), batch=2, passes=2) == 2 * (22 + 25)
    assert wt.online_steps(wt.Counts(93), batch=2, passes=1) == 47  # per-video sizes unknown


def test_schedule_hand_computed():
    counts = {("YouTubeVOS-2018", "train"): wt.Counts(100), ("DAVIS-2016", "train"): wt.Counts(20),
              ("DAVIS-2016", "val"): wt.Counts(10, [4, 6]), ("FBMS", "val"): None, ("Youtube-objects", "val"): None}
    speeds = wt.Speeds(offline_step=2.0, online_step=3.0, infer_frame=0.5, online_video_overhead=1.0)
    rows = wt.schedule(counts, speeds, ngpu=2, batch=2, online_passes=2, online_batch=2, stage1_epochs=3,
                       stage2_epochs=2)
    by = {r["stage"].strip(): r for r in rows}
    s1 = by["stage 1 (3 epochs)"]
    assert (s1["frames"], s1["steps"], s1["seconds"], s1["missing"]) == (120, 3 * 30, 180.0, [])
    assert by["stage 2 (2 epochs)"]["steps"] == 2 * 5
    assert by["validation (3x DAVIS-2016 val)"]["seconds"] == 3 * 5 * 0.5
    assert by["offline masks (test.py)"]["seconds"] == 5 * 0.5
    online = by["online tuning (per_video, 2 passes)"]
    # 2 passes x (2 + 3) steps x 3 s + 2 videos x 1 s + 10 frames x 0.5 s, over 2 processes
    assert online["steps"] == 10 and online["seconds"] == (30 + 2 + 5) / 2
    assert online["missing"] == ["FBMS/val", "Youtube-objects/val"]


def test_missing_stage1_set_is_reported_and_left_out():
    counts = {("DAVIS-2016", "train"): wt.Counts(20)}
    rows = wt.schedule(counts, wt.Speeds(1.0, 1.0, 1.0), 1, 2, 1, 2, stage1_epochs=1, stage2_epochs=1)
    assert rows[0]["missing"] == ["YouTubeVOS-2018/train"] and rows[0]["steps"] == 10


def test_frames_option_parsing():
    assert wt.parse_frames(["YouTubeVOS-2018/train=18000"]) == {("YouTubeVOS-2018", "train"): wt.Counts(18000)}
    with pytest.raises(SystemExit, match="NAME/SPLIT=COUNT"):
        wt.parse_frames(["YouTubeVOS-2018=18000"])


def test_validation_count_follows_the_trainer():
    counts = {("DAVIS-2016", "train"): wt.Counts(20), ("DAVIS-2016", "val"): wt.Counts(10)}
    rows = wt.schedule(counts, wt.Speeds(1.0, 1.0, 1.0), 1, 2, 1, 2, stage1_epochs=30, stage2_epochs=8, val_every=4)
    # epochs 3, 7, ..., 27 and the last (29): 8; for 8 epochs: 3 and 7
    assert [r["stage"].strip() for r in rows if "validation" in r["stage"]] == [
        "validation (8x DAVIS-2016 val)", "validation (2x DAVIS-2016 val)"]
