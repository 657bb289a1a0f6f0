#!/usr/bin/env python
"""Segment the primary moving object of your own video with a trained OAST model.

    python scripts/segment_video.py --input my.mp4 --weights ckpt.pth --output_dir out/
    python scripts/segment_video.py --input frames_folder/ --weights ckpt.pth --output_dir out/ \\
        --flow raft_small --raft_weights raft_small.pth --online --online_epochs 2 --overlay frames
    python scripts/segment_video.py --input my.mp4 --weights ckpt.pth --output_dir out/ \\
        --size 224 416 --flow_size network          # faster: flow at the network input size
    python scripts/segment_video.py --input my.mp4 --weights ckpt.pth --output_dir out/ \\
        --quality accurate                          # the masks of test.py --flip --temporal 1 at 320x576
    python scripts/segment_video.py --input clips/ --weights ckpt.pth --output_dir out/
                                                    # every video of clips/ into out/<video>/

--quality fast (the default) or accurate sets the defaults of the options it bundles; an option
given on the command line wins (docs/video_tool.md).

Outputs (<video> is the input's name, or --name):
  <output_dir>/masks/<video>/<frame>.png   binary masks (0/255) at the frame size
  <output_dir>/probs/<video>/<frame>.png   probabilities (0..255), with --save_prob
  <output_dir>/overlay.mp4                 frames with the mask drawn on them (overlay.avi
                                           with MJPG if no mp4 writer is available), or
  <output_dir>/overlay/<frame>.jpg         the same as frames (--overlay frames)
  <output_dir>/work/custom/val/{images,flows}/<video>/   extracted frames and flow images
                                           (--pipeline files, and --online); a rerun with
                                           the same input and flow settings reuses them
  <output_dir>/.segment_video.json         the manifest: input, weights, options, and
                                           whether the run is "running" or "done"
Several videos (several --input paths, or a folder of video files and/or frames folders) each
get <output_dir>/<video>/ laid out as above, with the model loaded once; a video that fails is
named and the others go on; the exit status is 1 when any failed.
Frames are numbered 00000, 00001, ... after --stride/--max_frames; work/<video>.source.json
maps each back to its input frame index or file name. The default memory pipeline keeps
frames and flow in memory and writes only masks and the overlay.

The output folder is the tool's: a new or empty folder, or one holding a run of the same
input and weights (whose results a rerun replaces). Any other folder is refused, naming it
and why, before anything is written: pass --overwrite to let the run take it over (it
replaces only its own masks, probabilities, overlay and work files; your other files stay),
or choose another --output_dir. An --input inside the places it writes is refused, and the
weights are checked before any frame or flow is computed. Every file is written atomically
and the manifest says "done" only at the end, so a run killed at any moment is finished by
running the same command again.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, no install

from segment_video import segment_video, segment_videos  # noqa: E402
from segment_video.config import VideoConfig  # noqa: E402
from segment_video.cli import add_video_args  # noqa: E402
from segment_video.frames import is_many  # noqa: E402
from utils.config import HelpFormatter, model_parser, parse_with_config, runtime_parser  # noqa: E402
from utils.log import setup_logging  # noqa: E402
from utils.optical_flow import FlowComputationError  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter,
                                parents=[model_parser(from_checkpoint=True), runtime_parser()])
    add_video_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 1 some of several videos failed (each named), 2 nothing done (the error)."""
    args = parse_with_config(get_parser(), argv)
    setup_logging(None)
    try:
        cfg = VideoConfig.from_args(args)
        if not is_many(cfg.inputs):
            segment_video(cfg)
            return 0
        batch = segment_videos(cfg)
    # User-facing: a missing or bad input or checkpoint, a runtime whose packages are not installed.
    except (OSError, ValueError, ImportError, FlowComputationError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, why in batch.failed.items():
        print(f"error: video {name} failed: {why}", file=sys.stderr)
    if batch.failed:
        print(f"error: {len(batch.failed)} of {len(batch.failed) + len(batch.results)} videos failed; the others "
              f"are in {cfg.output_dir}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
