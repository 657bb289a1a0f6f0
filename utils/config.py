"""Command-line options shared by every entry script, and the one reader of their options.

Each script builds its parser from these parent parsers (``parents=[...]``) and adds only
its own flags, then calls :func:`parse_with_config`. Defaults are the paper's settings;
``--preset`` (trainers and the online stage, :mod:`utils.presets`) replaces some of them,
``--config FILE.yaml`` overrides both and the command line overrides everything. The
resolved options are written to ``<run_dir>/args.yaml``, which ``--config`` reads back.
"""
from __future__ import annotations

import argparse
import copy
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from utils.presets import PRESETS, check_preset, preset_option

_log = logging.getLogger(__name__)

DEFAULT_TEST_DATASETS = ["DAVIS-2016", "FBMS", "Youtube-objects"]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every default in ``--help`` and keeps the description's line breaks."""


def unit_interval(text: str) -> float:
    """argparse type: a number in [0, 1] (a share or an opacity)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def model_parser(from_checkpoint: bool = False,
                 add_model_args: Callable[[argparse._ActionsContainer], None] | None = None) -> argparse.ArgumentParser:
    """Model options; with ``from_checkpoint`` the architecture defaults to the checkpoint's.

    ``add_model_args(group)`` adds the caller's own options at the end of the model group (the
    training script passes :func:`models.add_blocks_arg`; ``utils`` does not import ``models``).
    """
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
                            "(none; the logit is not capped by the conv's bias); default: linear")
        g.add_argument("--pretrained", default=None,
                       help="local timm ImageNet state dict (.pth/.safetensors) for the encoders; "
                            "nothing is downloaded")
    if add_model_args is not None:
        add_model_args(g)
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
    g.add_argument("--amp", action="store_true",
                   help="automatic mixed precision: on CUDA in --amp_dtype, on a CPU in bf16 only (fp16: float32)")
    g.add_argument("--amp_dtype", default="bf16", choices=["bf16", "fp16"], help="AMP precision")
    g.add_argument("--seed", type=int, default=0, help="random seed (each rank adds its rank)")
    g.add_argument("--config", default=None, help="YAML file of option defaults (command line wins)")
    # torch.distributed.launch passes --local_rank/--local-rank; torchrun sets LOCAL_RANK instead.
    g.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    return p


def parse_with_config(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` (default ``sys.argv[1:]``) on top of the preset and the ``--config`` file.

    Precedence, lowest first: parser defaults < ``--preset`` (parsers with
    :func:`engine.variants.add_variant_args`) < ``--config FILE.yaml`` < command line. The file may
    name the preset (``preset: authors``) when the command line does not. Every key of the file is
    checked, also those the command line overrides; a file that is missing, not YAML or not a
    mapping, an unknown option, or a value that the option would refuse on the command line
    stops the script with a usage error naming the file. Sets the parser's defaults, so pass a
    freshly built parser.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    preset = preset_option(parser)
    pre = _pre_parse(parser, argv, preset is not None)
    path = getattr(pre, "config", None)
    try:
        cfg = config_values(parser, read_config(path), path) if path else {}
    except ValueError as e:
        parser.error(str(e))
    if preset is not None:
        name = pre.preset
        if name is _UNSET:
            name = cfg.get("preset") or parser.get_default(preset.dest)
        values = PRESETS[preset.stage][name]
        check_preset(parser, values, f"{preset.stage} preset {name!r}")
        parser.set_defaults(**copy.deepcopy(values), preset=name)  # runs must not share (or edit) its lists
    parser.set_defaults(**cfg)
    return parser.parse_args(argv)


def read_config(path: str | Path) -> dict[str, Any]:
    """The mapping of a ``--config`` YAML file (an empty file is ``{}``); errors name the file."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ValueError(f"--config {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"--config {path}: cannot read it ({e})") from e
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"--config {path}: not valid YAML ({e})") from e
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise ValueError(f"--config {path}: expected a mapping of option names to values, got {type(cfg).__name__}")
    return cfg


def config_values(parser: argparse.ArgumentParser, cfg: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """``cfg`` checked against the parser's options: each value as the option would take it from
    the command line (strings through its ``type``, including list items, which argparse leaves
    alone in defaults). One ``ValueError`` names the file and every unknown option or bad value.

    ``null`` is accepted for any option that takes values: ``args.yaml`` records unset options so.
    """
    actions = {a.dest: a for a in parser._actions if a.default != argparse.SUPPRESS}
    unknown = sorted(str(k) for k in cfg if k not in actions)
    if unknown:
        raise ValueError(f"--config {path}: unknown options {unknown} (not options of {parser.prog})")
    out, problems = {}, []
    for dest, value in cfg.items():
        action = actions[dest]
        try:
            out[dest] = _option_value(action, value)
        except ValueError as e:
            flag = action.option_strings[0] if action.option_strings else dest
            problems.append(f"{dest}: {e} (as {flag} would refuse it)")
    if problems:
        raise ValueError(f"--config {path}: " + "; ".join(problems))
    return out


def _option_value(action: argparse.Action, value: Any) -> Any:
    if action.nargs == 0:  # flags: store_true / store_false / store_const
        if isinstance(action.const, bool) and not isinstance(value, bool):
            raise ValueError(f"expects true or false, got {value!r}")
        return value
    if value is None:
        return None
    if action.nargs in (None, "?"):
        if isinstance(value, (list, dict)):
            raise ValueError(f"expects one value, got {value!r}")
        return _item_value(action, value)
    if not isinstance(value, list):
        raise ValueError(f"expects a list, got {value!r}")
    if isinstance(action.nargs, int) and len(value) != action.nargs:
        raise ValueError(f"expects {action.nargs} values, got {len(value)}: {value!r}")
    if action.nargs == "+" and not value:
        raise ValueError("expects at least one value, got an empty list")
    return [_item_value(action, v) for v in value]


def _item_value(action: argparse.Action, value: Any) -> Any:
    if isinstance(value, (list, dict)):
        raise ValueError(f"expects single values, got {value!r}")
    if action.type is not None:
        try:
            converted = action.type(value if isinstance(value, str) else str(value))
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            kind = getattr(action.type, "__name__", repr(action.type))
            raise ValueError(f"invalid {kind} value {value!r}") from None
        # Strings become what the command line gives; other YAML scalars (1e-4 as a float) stay.
        value = converted if isinstance(value, str) else value
    if action.choices is not None and value not in action.choices:
        raise ValueError(f"{value!r} is not one of {list(action.choices)}")
    return value


_UNSET = object()
_HELP = ("-h", "--help")


def _pre_parse(parser: argparse.ArgumentParser, argv: list[str], has_preset: bool) -> argparse.Namespace:
    """The command line's ``--config`` and ``--preset`` (``_UNSET`` when absent).

    Help flags are left to the final parse, so ``--help`` shows the preset's and the file's
    values, and required options are relaxed meanwhile, so ``--help`` alone still works.
    """
    required = [a for a in parser._actions if a.required]
    for a in required:
        a.required = False
    try:
        pre, _ = parser.parse_known_args([a for a in argv if a not in _HELP],
                                         namespace=argparse.Namespace(**({"preset": _UNSET} if has_preset else {})))
    finally:
        for a in required:
            a.required = True
    return pre


def save_args(args: argparse.Namespace | Mapping[str, Any], run_dir: str | Path) -> Path:
    """Write the resolved options (a namespace or a mapping of option names) to ``<run_dir>/args.yaml``
    atomically; returns its path."""
    from utils.io import atomic_write

    values = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    clean = {k: (list(v) if isinstance(v, tuple) else v) for k, v in values.items()}
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
