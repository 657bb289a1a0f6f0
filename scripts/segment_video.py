#!/usr/bin/env python
"""Segment the primary moving object of your own video with a trained OAST model.

    python scripts/segment_video.py --input my.mp4 --weights ckpt.pth --output_dir out/
    python scripts/segment_video.py --input frames_folder/ --weights ckpt.pth --output_dir out/ \\
        --flow raft_small --raft_weights raft_small.pth --online --online_epochs 2 --overlay frames
    python scripts/segment_video.py --input my.mp4 --weights ckpt.pth --output_dir out/ \\
        --size 224 416 --flow_size network          # fast: flow at the network input size

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

from segment_video import segment_video  # noqa: E402
from segment_video.config import VideoConfig  # noqa: E402
from segment_video.cli import add_video_args  # noqa: E402
from utils.config import HelpFormatter, model_parser, parse_with_config, runtime_parser  # noqa: E402
from utils.log import setup_logging  # noqa: E402
from utils.optical_flow import FlowComputationError  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter,
                                parents=[model_parser(from_checkpoint=True), runtime_parser()])
    add_video_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse_with_config(get_parser(), argv)
    setup_logging(None)
    try:
        segment_video(VideoConfig.from_args(args))
    except (OSError, ValueError, FlowComputationError) as e:  # user-facing: missing/bad input, checkpoint
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
