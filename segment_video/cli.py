"""Command-line options of ``scripts/segment_video.py`` (model and runtime options come from
the parent parsers of :mod:`utils.config`).

The options that a ``--quality`` setting bundles (:mod:`segment_video.quality`) default to
``None`` here, meaning "not given": :class:`~segment_video.config.VideoConfig` fills them from
the setting, so an option on the command line wins over its setting's value."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from engine.online_config import OnlineConfig
from segment_video.overlay import DEFAULT_FPS, OVERLAY_MODES
from segment_video.precision import CUDA_PRECISIONS
from segment_video.quality import DEFAULT_QUALITY, QUALITIES, describe
from utils.config import unit_interval
from utils.optical_flow import DIS_PRESETS, METHODS

PIPELINES = ("auto", "memory", "files")
FLOW_SIZES = ("frame", "network")
MEMORY_FORMATS = ("channels_last", "contiguous")
RUNTIMES = ("auto", "onnx", "int8", "openvino", "openvino_int8", "torch")


def flow_size_arg(text: str) -> str | tuple[int, int]:
    """``--flow_size`` value: ``frame``, ``network``, or ``HxW`` (e.g. ``240x427``)."""
    if text in FLOW_SIZES:
        return text
    m = re.fullmatch(r"\s*(\d+)\s*[xX,]\s*(\d+)\s*", text)
    if m is None or min(int(m.group(1)), int(m.group(2))) < 8:
        raise argparse.ArgumentTypeError(f"expected 'frame', 'network' or HxW (each >= 8), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def add_video_args(p: argparse.ArgumentParser) -> None:
    """Options of ``scripts/segment_video.py``."""
    g = p.add_argument_group("setting")
    g.add_argument("--quality", default=DEFAULT_QUALITY, choices=sorted(QUALITIES),
                   help="named setting: the defaults of the options it bundles (an option given on the command line "
                        "wins). " + "; ".join(f"{q}: {describe(q)}" for q in QUALITIES)
                        + ". accurate gives the masks of test.py --flip --temporal 1 at that size (docs/video_tool.md)")

    g = p.add_argument_group("input")
    g.add_argument("--input", dest="inputs", nargs="+", required=True, type=Path,
                   help="video file (mp4, avi, ... anything OpenCV decodes) or folder of .jpg/.png frames (sorted); "
                        "several of them, or a folder holding video files and/or frames folders, segment each "
                        "video into its own <output_dir>/<video>/ with the model loaded once")
    g.add_argument("--name", default=None,
                   help="video name used for output folders; default: the input's file or folder name (one "
                        "video only)")
    g.add_argument("--stride", type=int, default=1, help="keep every N-th input frame")
    g.add_argument("--max_frames", type=int, default=None, help="keep at most N frames (after --stride)")
    g.add_argument("--pipeline", default="auto", choices=PIPELINES,
                   help="memory: frames and flow stay in memory and each batch goes decode -> flow -> network -> "
                        "mask -> overlay (fastest; the flow image is colour-encoded at the network input size and "
                        "handed over as it is, no image file or JPEG in between; nothing to resume); files: frames "
                        "and flow images are written as JPEGs under <output_dir>/work and read back (a rerun "
                        "reuses them); auto: memory, or files with --online (the tuner reads the work folder) or "
                        "temporal fusion (--temporal: it needs the whole video)")

    g.add_argument("--no_overlap", dest="overlap", action="store_false",
                   help="memory pipeline: run decoding and flow, the network, and writing one after another "
                        "instead of in three overlapping threads (same masks; for timing each stage alone)")

    g = p.add_argument_group("optical flow")
    g.add_argument("--flow", default="dis", choices=METHODS,
                   help="flow back end: OpenCV DIS (CPU, no weights) or torchvision RAFT")
    g.add_argument("--dis_preset", default=None, choices=sorted(DIS_PRESETS),
                   help="DIS speed/quality preset; default: --quality's")
    g.add_argument("--flow_size", type=flow_size_arg, default=None, metavar="{frame,network,HxW}",
                   help="default: --quality's. Size the frames are downscaled to before flow estimation: frame "
                        "(none), network "
                        "(--size), or HxW; never upscaled. Much cheaper, but less accurate (benchmarks/RESULTS.md, Speed). "
                        "Files pipeline: the flow is scaled back to the frame size before encoding")
    g.add_argument("--raft_weights", type=Path, default=None,
                   help="RAFT state dict file; omitted: torchvision's pretrained weights (needs internet)")
    g.add_argument("--raft_size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="run RAFT at this size (multiples of 8); the flow is resized back")
    g.add_argument("--flow_batch_size", type=int, default=4, help="frame pairs per RAFT forward pass")
    g.add_argument("--flow_jpeg", action="store_true",
                   help="memory pipeline (and the int8 calibration): pass each flow image through JPEG "
                        "(quality 95) and back, as the tool did before; default: the network gets the 8-bit "
                        "colour encoding itself, without that extra encode and decode (masks differ slightly; "
                        "docs/video_tool.md). The files pipeline always stores JPEG flow images, as the "
                        "training data does")

    g = p.add_argument_group("segmentation")
    g.add_argument("--weights", "--weight", nargs="+", required=True,
                   help="trained checkpoint(s); several are averaged into one model")
    g.add_argument("--output_dir", type=Path, required=True,
                   help="output folder: masks/<video>/, overlay.mp4 or overlay/, work/ (frames, flows). The tool "
                        "owns it, marked by .segment_video.json (input, weights, options); a folder that is not "
                        "empty and holds no run of the same input and weights is refused")
    g.add_argument("--overwrite", action="store_true",
                   help="take over an output folder that is not this run's (other files, or a run of another "
                        "input or weights): its masks/<video>/, probs/<video>/, overlay and work files are "
                        "replaced; other files there are kept")
    g.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="network input size (frames are resized to it; masks come back at the frame size); "
                        "default: --quality's (fast: the size the checkpoint was trained at, else 384 640)")
    g.add_argument("--batch_size", type=int, default=4, help="frames per forward pass")
    g.add_argument("--memory_format", default=None, choices=MEMORY_FORMATS,
                   help="default: --quality's. Network tensor layout for plain inference; channels_last is faster "
                        "for convolutions on "
                        "CPU and gives the same masks up to float rounding")
    g.add_argument("--runtime", default=None, choices=RUNTIMES,
                   help="default: --quality's. Network runtime for plain inference: onnx (ONNX Runtime on the CPU: "
                        "the network is exported "
                        "once per checkpoint and size, cached beside the checkpoint and checked against PyTorch; "
                        "needs requirements-onnx.txt), int8 (that network quantised to int8, calibrated on "
                        "--int8_calibration; faster, slightly less accurate: benchmarks/RESULTS.md, Speed), "
                        "openvino and openvino_int8 (the same two ONNX files compiled by OpenVINO for the CPU and "
                        "checked against ONNX Runtime; needs requirements-openvino.txt; not timed yet, so auto "
                        "does not pick them), torch (the reference; on CUDA the only runtime, in "
                        "--cuda_precision's arithmetic), or auto: onnx on the CPU when its packages are installed "
                        "and the export succeeds, else torch")
    g.add_argument("--cuda_precision", default=None, choices=CUDA_PRECISIONS,
                   help="default: --quality's. The network's arithmetic on CUDA (plain inference): fp16 autocast, "
                        "or fp32; --amp with --amp_dtype wins where given. Ignored on the CPU; --online tuning keeps "
                        "its own --amp")
    g.add_argument("--int8_calibration", type=Path, default=None,
                   help="--runtime int8 and openvino_int8: video file or frames folder whose frames calibrate the "
                        "int8 network (cached beside the checkpoint per source: one source for many videos "
                        "quantises once); default: the input video itself (quantised once per video, a few "
                        "seconds; with several videos, the first that can be read, once for all). An unreadable "
                        "source given here is refused before any video")
    g.add_argument("--int8_frames", type=int, default=16,
                   help="--runtime int8 and openvino_int8: evenly spaced calibration frames (with their flow)")
    g.add_argument("--workers", type=int, default=2,
                   help="DataLoader worker processes (files pipeline and --online)")
    g.add_argument("--flip", action="store_true", default=None,
                   help="horizontal-flip test-time augmentation; default: --quality's")
    g.add_argument("--no_flip", dest="flip", action="store_false", default=None,
                   help="no flip, whatever --quality says")
    g.add_argument("--temporal", type=int, nargs="*", default=None, metavar="K",
                   help="fuse each frame's probability with its neighbours t-k and t+k, warped in with DIS flow "
                        "where a forward-backward check passes, as test.py --temporal (the same code; files "
                        "pipeline; plain inference, the online stage fuses its own); --temporal alone: none; "
                        "default: --quality's")
    g.add_argument("--threshold", type=float, default=0.5, help="foreground probability threshold of the masks")
    g.add_argument("--save_prob", action="store_true", help="also write probability maps to <output_dir>/probs/")

    g = p.add_argument_group("online self-tuning")
    # The online stage's own defaults (engine/online_config.py).
    g.add_argument("--online", action="store_true",
                   help="adapt the model to this video first (OAST online stage with its defaults: cached "
                        "confident targets, the tuned student writes the masks)")
    g.add_argument("--online_epochs", type=int, default=OnlineConfig.epochs, help="tuning passes over the video's frames")
    g.add_argument("--online_batch_size", type=int, default=OnlineConfig.batch_size, help="frames per tuning step")
    g.add_argument("--online_lr", type=float, default=OnlineConfig.lr, help="student learning rate")

    g = p.add_argument_group("overlay")
    g.add_argument("--overlay", default="video", choices=OVERLAY_MODES,
                   help="video: <output_dir>/overlay.mp4; frames: <output_dir>/overlay/<frame>.jpg; none: skip")
    g.add_argument("--fps", type=float, default=None,
                   help=f"overlay video frame rate; default: the input's (divided by --stride), {DEFAULT_FPS:g} "
                        "for folders")
    g.add_argument("--overlay_color", type=int, nargs=3, default=(255, 40, 40), metavar=("R", "G", "B"),
                   help="mask fill and contour colour")
    g.add_argument("--overlay_alpha", type=unit_interval, default=0.45, help="opacity of the mask fill, in [0, 1]")
    g.add_argument("--clean_work", action="store_true",
                   help="delete the frames, flows and records of this video in <output_dir>/work at the end (other "
                        "files there are kept); a rerun then starts over")
