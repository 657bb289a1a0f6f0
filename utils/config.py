"""Command-line options shared by every entry script, and run-folder config files.

Each script builds its parser from these parent parsers (``parents=[...]``) and adds only
its own flags. Defaults are the paper's settings; ``--config FILE.yaml`` overrides the
defaults and the command line overrides the file. The resolved options are written to
``<run_dir>/args.yaml``.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml

_log = logging.getLogger(__name__)

DEFAULT_TEST_DATASETS = ["DAVIS-2016", "FBMS", "Youtube-objects"]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every default in ``--help`` and keeps the description's line breaks."""


def model_parser(from_checkpoint: bool = False) -> argparse.ArgumentParser:
    """Model options; with ``from_checkpoint`` the architecture defaults to the checkpoint's."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("model")
    g.add_argument("--arch", default=None if from_checkpoint else "two_stream", choices=["two_stream", "oast3d"],
                   help="two_stream: ours (two encoders, gated fusion); oast3d: the authors' 3D MobileViT"
                   + ("; default: the checkpoint's" if from_checkpoint else ""))
    g.add_argument("--model_scale", default=None if from_checkpoint else "s", choices=["xxs", "xs", "s"],
                   help="MobileViT scale of both encoders (ignored when --backbone is given)"
                   + ("; default: the checkpoint's" if from_checkpoint else ""))
    g.add_argument("--backbone", default=None,
                   help="any timm model with features_only support, instead of mobilevit_<scale>")
    if not from_checkpoint:  # inference and online tuning take every weight from the checkpoint
        g.add_argument("--decoder_head", default=None, choices=["relu", "linear"],
                       help="two_stream's last decoder layers: relu (a ReLU before the 1x1 logit conv) or linear "
                            "(none; the logit is not capped by the conv's bias); default: relu")
        g.add_argument("--pretrained", default=None,
                       help="local timm ImageNet state dict (.pth/.safetensors) for the encoders; "
                            "nothing is downloaded")
    return p


def data_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("data")
    g.add_argument("--data_dir", default="data", help="root of <dataset>/<split>/{images,flows,labels}/<video>/")
    g.add_argument("--size", type=int, nargs=2, default=(384, 640), metavar=("H", "W"),
                   help="network input size (training crop; frames are resized to it at test time)")
    g.add_argument("--workers", type=int, default=4, help="DataLoader worker processes per GPU/process")
    return p


def runtime_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="auto", help="auto (CUDA when available), cuda, or cpu")
    g.add_argument("--amp", action="store_true", help="automatic mixed precision on CUDA")
    g.add_argument("--amp_dtype", default="bf16", choices=["bf16", "fp16"], help="AMP precision")
    g.add_argument("--seed", type=int, default=0, help="random seed (each rank adds its rank)")
    g.add_argument("--config", default=None, help="YAML file of option defaults (command line wins)")
    # torch.distributed.launch passes --local_rank/--local-rank; torchrun sets LOCAL_RANK instead.
    g.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    return p


def parse_with_config(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse, letting ``--config`` YAML replace the defaults first (timm-style)."""
    pre, _ = parser.parse_known_args(argv)
    if getattr(pre, "config", None):
        with open(pre.config) as f:
            cfg = yaml.safe_load(f) or {}
        known = {a.dest for a in parser._actions}
        unknown = sorted(set(cfg) - known)
        if unknown:
            parser.error(f"{pre.config}: unknown options {unknown}")
        parser.set_defaults(**cfg)
    return parser.parse_args(argv)


def save_args(args: argparse.Namespace, run_dir: str | Path) -> Path:
    """Write the resolved options to ``<run_dir>/args.yaml`` atomically; returns its path."""
    from utils.io import atomic_write

    clean = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()}
    text = yaml.safe_dump(clean, sort_keys=True)
    path = Path(run_dir) / "args.yaml"
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return path


def ignored_options_parser() -> argparse.ArgumentParser:
    """``--pretrained`` and ``--sync-bn``, accepted by the from-checkpoint scripts and reported as unused.

    The authors' command lines pass them to online tuning; every weight of these scripts
    comes from the checkpoint(s), and BatchNorm is never trained there.
    """
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("accepted for the authors' command lines, unused")
    g.add_argument("--pretrained", default=None,
                   help="unused (a warning says so): every weight comes from the checkpoint(s)")
    g.add_argument("--sync-bn", "--sync_bn", dest="sync_bn", action="store_true",
                   help="unused (a warning says so): BatchNorm statistics are not trained here")
    return p


def report_ignored_options(args: argparse.Namespace, script: str) -> list[str]:
    """Log one warning naming the :func:`ignored_options_parser` options given; returns them."""
    given, why = [], []
    if getattr(args, "pretrained", None) is not None:
        given.append(f"--pretrained {args.pretrained}")
        why.append(f"--pretrained {args.pretrained} (every weight comes from --weight(s))")
    if getattr(args, "sync_bn", False):
        given.append("--sync-bn")
        why.append("--sync-bn (BatchNorm statistics are not trained here)")
    if given:
        _log.warning("%s ignores %s", script, ", ".join(why))
    return given


def split_list(values: list[str] | None) -> list[str] | None:
    """``--videos a,b --videos c`` -> ``[a, b, c]`` (None when not given)."""
    if not values:
        return None
    return [v for item in values for v in item.split(",") if v]
