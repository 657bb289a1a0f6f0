"""The authors' released files, mapped onto our ``oast3d`` network (``blocks="authors"``).

Two kinds of file come with the published OAST code:
  * full checkpoints (``online-finetunebest.pth``, ``*_best.pth``, ``*_student_N.pth``,
    ``*_teacher_N.pth``): a dict with ``"model"`` (the 3D network's state dict, keys such as
    ``encoder.body.2.1.transformer.layers.0.0.fn.to_qvk.weight``), ``"args"`` (an
    ``argparse.Namespace`` holding ``model_scale`` and ``dropout``), optimiser states, and in
    teacher files the discriminator pickled as a whole module of their code;
  * backbone files (``mobilevit-xxs.pth``, ``mobilevit-s.pth``): ``{"state_dict": ...}`` of
    the 2D MobileViT classifier their code builds on, keys prefixed ``module.`` (the authors
    load them with ``torch.load(path)["state_dict"]`` after stripping ``module.``, into
    ``stem.0``/``stage1.0.conv.0.conv``/... modules). These are not Apple ml-cvnets files:
    those have other keys (``conv_1.block.conv``, ``layer_1``...) and other shapes, which the
    authors' code, loading with ``strict=False``, would silently skip.

The key map is a table of renames (:data:`FULL_RULES`, :data:`BACKBONE_RULES`, and the rules
inside blocks, :data:`INNER_RULES`); every source key must match a rule and land on a distinct
key of our network with the same shape, and every key of our network must be given, or an
error names the file and the keys. ``total_ops``/``total_params`` entries (counters that the
``thop`` profiler registers as buffers, which the authors' loader also skips) are dropped.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from utils.checkpoint import tolerant_pickle

LEAF = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
PROFILER_KEYS = ("total_ops", "total_params")

# Inside one block (after the block's prefix). Inverted residual: conv.0 = expansion
# conv-BN, conv.1 = depthwise conv-BN-SiLU, conv.2/conv.3 = projection conv and BN.
# MobileViT block: local_representation.0/.1 = 3x3 and 1x1 conv-BN-SiLU, transformer layers
# of [PreNorm(attention), PreNorm(MLP)], fusion_block1/2 = plain 1x1 and 3x3 convolutions.
# conv-BN-SiLU modules: conv, norm_layer.
INNER_RULES: list[tuple[str, str]] = [
    (r"conv\.0\.conv\.", "conv1_1x1.conv."),
    (r"conv\.0\.norm_layer\.", "conv1_1x1.bn."),
    (r"conv\.1\.conv\.", "conv2_kxk.conv."),
    (r"conv\.1\.norm_layer\.", "conv2_kxk.bn."),
    (r"conv\.2\.", "conv3_1x1.conv."),
    (r"conv\.3\.", "conv3_1x1.bn."),
    (r"local_representation\.0\.conv\.", "conv_kxk.conv."),
    (r"local_representation\.0\.norm_layer\.", "conv_kxk.bn."),
    (r"local_representation\.1\.conv\.", "conv_1x1.conv."),
    (r"local_representation\.1\.norm_layer\.", "conv_1x1.bn."),
    (r"transformer\.layers\.(\d+)\.0\.norm\.", r"transformer.\1.norm1."),
    (r"transformer\.layers\.(\d+)\.0\.fn\.to_qvk\.", r"transformer.\1.attn.qkv."),
    (r"transformer\.layers\.(\d+)\.0\.fn\.w_out\.", r"transformer.\1.attn.proj."),
    (r"transformer\.layers\.(\d+)\.1\.norm\.", r"transformer.\1.norm2."),
    (r"transformer\.layers\.(\d+)\.1\.fn\.net\.0\.", r"transformer.\1.mlp.fc1."),
    (r"transformer\.layers\.(\d+)\.1\.fn\.net\.3\.", r"transformer.\1.mlp.fc2."),
    (r"fusion_block1\.", "conv_proj.conv."),
    (r"fusion_block2\.", "conv_fusion.conv."),
    (r"conv\.", "conv."),
    (r"norm_layer\.", "bn."),
]

# Whole keys of the 3D network: (pattern, replacement prefix, whether the rest is a block's).
# Their encoder is stem = [conv, inverted residual] and body.0..3 = stages 1..4, the last
# ending in the 1x1 convolution to the final width; their decoder is stage1..3 = [MobileViT
# block, conv-BN-SiLU], r1..r3 = skip conv-BN-SiLUs and conv_seg = the 3x3x3 head.
FULL_RULES: list[tuple[str, Any]] = [
    (r"encoder\.stem\.0\.", "encoder.stem.conv."),
    (r"encoder\.stem\.1\.", "encoder.stages.0.0."),
    (r"encoder\.body\.3\.2\.", "encoder.final_conv.conv."),
    (r"encoder\.body\.([0-3])\.(\d+)\.", lambda m: f"encoder.stages.{int(m[1]) + 1}.{m[2]}."),
    (r"decoder\.stage([1-3])\.([01])\.", lambda m: f"decoder.stages.{int(m[1]) - 1}.{m[2]}."),
    (r"decoder\.r([1-3])\.", lambda m: f"decoder.skips.{int(m[1]) - 1}."),
    (r"decoder\.conv_seg\.", "decoder.head."),
]

# The 2D backbone classifier (keys of our encoder, without ``encoder.``); fc is the classifier.
BACKBONE_RULES: list[tuple[str, Any]] = [
    (r"stem\.0\.", "stem.conv."),
    (r"stem\.1\.", "stages.0.0."),
    (r"stage4\.2\.", "final_conv.conv."),
    (r"stage([1-4])\.(\d+)\.", lambda m: f"stages.{m[1]}.{m[2]}."),
]
BACKBONE_IGNORED = ("fc.weight", "fc.bias")

# Prefixes whose rest is a leaf name, not a block's inner key.
_PLAIN = ("encoder.stem.conv.", "encoder.final_conv.conv.", "decoder.head.", "stem.conv.", "final_conv.conv.")

# What the final 1x1 convolution's width tells about the scale.
FINAL_WIDTHS = {320: "xxs", 384: "xs", 640: "s"}


def _rename(key: str, rules: list[tuple[str, Any]]) -> str | None:
    """Our key for ``key`` under ``rules`` (then :data:`INNER_RULES`), or None when no rule fits."""
    for pattern, repl in rules:
        m = re.match(pattern, key)
        if not m:
            continue
        prefix = repl(m) if callable(repl) else repl
        rest = key[m.end():]
        if prefix in _PLAIN:
            return prefix + rest if re.fullmatch(LEAF, rest) else None
        for inner, inner_repl in INNER_RULES:
            mi = re.match(inner, rest)
            if mi and re.fullmatch(LEAF, rest[mi.end():]):
                return prefix + mi.expand(inner_repl) + rest[mi.end():]
        return None
    return None


def _drop_profiler(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in sd.items() if k.rsplit(".", 1)[-1] not in PROFILER_KEYS}


def strip_module(sd: dict[str, Any]) -> dict[str, Any]:
    """Keys without the ``module.`` prefix that (Distributed)DataParallel adds."""
    return {k.removeprefix("module."): v for k, v in sd.items()}


def is_authors_state_dict(sd: Any) -> bool:
    """Keys of the authors' full 3D network (``encoder.body...``, ``decoder.conv_seg``)."""
    return (isinstance(sd, dict) and "decoder.conv_seg.weight" in sd
            and any(isinstance(k, str) and k.startswith("encoder.body.") for k in sd))


def backbone_format(sd: dict[str, torch.Tensor]) -> str | None:
    """``"timm"``, ``"authors"`` (their 2D MobileViT) or ``"cvnets"`` (Apple's), from the keys."""
    if "stem.0.weight" in sd and any(k.startswith("stage1.") for k in sd):
        return "authors"
    if "stem.conv.weight" in sd and any(k.startswith("stages.") for k in sd):
        return "timm"
    if any(k.startswith(("conv_1.block.", "layer_1.")) for k in sd):
        return "cvnets"
    return None


def _apply(sd: dict[str, torch.Tensor], rules: list[tuple[str, Any]], target: dict[str, torch.Tensor],
           path: str | Path, what: str, ignored: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Rename ``sd`` by ``rules`` onto ``target``'s keys with every check; raise naming ``path``."""
    out: dict[str, torch.Tensor] = {}
    source_of: dict[str, str] = {}
    unknown, bad, twice = [], [], []
    for k, v in _drop_profiler(sd).items():
        if k in ignored:
            continue
        new = _rename(k, rules)
        if new is None or new not in target:
            unknown.append(k)
            continue
        if new in out:
            twice.append(f"{source_of[new]} and {k} -> {new}")
            continue
        if tuple(v.shape) != tuple(target[new].shape):
            bad.append(f"{k} {tuple(v.shape)} (our {new} is {tuple(target[new].shape)})")
            continue
        out[new], source_of[new] = v, k
    missing = [k for k in target if k not in out]
    if unknown or bad or twice or missing:
        raise ValueError(
            f"{path} does not fit the oast3d network as {what}: {len(unknown)} unknown keys (e.g. {unknown[:3]}), "
            f"{len(bad)} shape mismatches (e.g. {bad[:3]}), {len(twice)} keys mapped twice (e.g. {twice[:2]}), "
            f"{len(missing)} of our keys not given (e.g. {missing[:3]}); is it for another --model_scale?")
    return {k: v.to(target[k].dtype) for k, v in out.items()}


def map_authors_state_dict(sd: dict[str, torch.Tensor], model: nn.Module, path: str | Path) -> dict[str, torch.Tensor]:
    """The authors' 3D network's state dict under our keys, checked against ``model`` (an OAST3D)."""
    return _apply(strip_module(sd), FULL_RULES, model.state_dict(), path, "the authors' network")


def map_authors_backbone(sd: dict[str, torch.Tensor], path: str | Path) -> tuple[dict[str, torch.Tensor], list[str]]:
    """(The authors' 2D backbone under our encoder's keys, the ignored classifier keys); names
    are checked here, shapes when inflating (:func:`models.oast3d.inflate_into`)."""
    sd = _drop_profiler(strip_module(sd))
    ignored = [k for k in sd if k in BACKBONE_IGNORED]
    out, unknown = {}, []
    for k, v in sd.items():
        if k in BACKBONE_IGNORED:
            continue
        new = _rename(k, BACKBONE_RULES)
        if new is None or new in out:
            unknown.append(k)
        else:
            out[new] = v
    if unknown:
        raise ValueError(f"{path} is not the authors' MobileViT backbone: {len(unknown)} keys match no layer "
                         f"(e.g. {unknown[:3]})")
    return out, ignored


def authors_scale(sd: dict[str, torch.Tensor], path: str | Path) -> str:
    """``xxs``/``xs``/``s`` from the width of the authors' final encoder convolution."""
    w = strip_module(sd).get("encoder.body.3.2.weight")
    scale = FINAL_WIDTHS.get(int(w.shape[0])) if w is not None else None
    if scale is None:
        raise ValueError(f"{path}: cannot tell the MobileViT scale (encoder.body.3.2.weight is "
                         f"{None if w is None else tuple(w.shape)}; expected {sorted(FINAL_WIDTHS)} output channels)")
    return scale


# --- reading the authors' pickles -----------------------------------------------------------------
# Their teacher files pickle their discriminator as a whole module of their code:
# utils.checkpoint.tolerant_pickle reads them with inert stand-ins for such classes.

def read_any(path: str | Path, mmap: bool = False) -> Any:
    """``torch.load`` on CPU with :class:`TolerantUnpickler`; ``mmap`` reads tensors lazily
    (cheap sniffing of zip-format files). Raises ``ValueError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=False, pickle_module=tolerant_pickle, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            return torch.load(path, map_location="cpu", weights_only=False, pickle_module=tolerant_pickle)
    except Exception as e:  # truncated or foreign files raise many types
        raise ValueError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from e


def authors_entry(ckpt: Any) -> dict[str, torch.Tensor] | None:
    """The 3D network's state dict of a loaded authors' checkpoint, or None for other files.

    Like the authors' loader, ``model_ema`` is preferred when present, else ``model``; a
    bare state dict is accepted too."""
    if not isinstance(ckpt, dict):
        return None
    for key in ("model_ema", "model"):
        sd = ckpt.get(key)
        if isinstance(sd, dict) and is_authors_state_dict(strip_module(sd)):
            return strip_module(sd)
    return strip_module(ckpt) if is_authors_state_dict(strip_module(ckpt)) else None


def is_authors_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` holds the authors' 3D network (False when unreadable: the normal
    loader then reports the problem)."""
    try:
        return authors_entry(read_any(path, mmap=True)) is not None
    except (OSError, ValueError):
        return False


def authors_args(ckpt: Any) -> dict[str, Any]:
    """``model_scale``, ``dropout``, ``mean``/``std`` recorded in the checkpoint's ``args``, where set."""
    args = ckpt.get("args") if isinstance(ckpt, dict) else None
    if not isinstance(args, argparse.Namespace):
        return {}
    out: dict[str, Any] = {}
    if getattr(args, "model_scale", None) in FINAL_WIDTHS.values():
        out["model_scale"] = args.model_scale
    if isinstance(getattr(args, "dropout", None), (int, float)):
        out["dropout"] = float(args.dropout)
    for k in ("mean", "std"):
        v = getattr(args, k, None)
        if isinstance(v, (list, tuple)) and len(v) == 3 and all(isinstance(x, (int, float)) for x in v):
            out[k] = [float(x) for x in v]
    return out


def read_authors_checkpoints(paths: list[str | Path]) -> tuple[dict[str, torch.Tensor], str, dict[str, Any]]:
    """(State dict averaged over ``paths``, scale, the first file's ``args``) for the authors' files.

    Averaging float tensors of several files is what the authors' ``Ensemble`` does; every
    file must be the authors' network at the same scale.
    """
    avg: dict[str, torch.Tensor] = {}
    scale, info = None, {}
    for i, p in enumerate(paths):
        ckpt = read_any(p)
        sd = authors_entry(ckpt)
        if sd is None:
            raise ValueError(f"{p} is not a checkpoint of the authors' network, unlike {paths[0]}: "
                             f"checkpoints to average must all be of one kind")
        sd = _drop_profiler(sd)
        s = authors_scale(sd, p)
        if i == 0:
            scale, info = s, authors_args(ckpt)
            if info.get("model_scale", s) != s:
                raise ValueError(f"{p}: its args say model_scale={info['model_scale']!r} but its weights are {s!r}")
        elif s != scale or set(sd) != set(avg):
            raise ValueError(f"{p} holds another network ({s}) than {paths[0]} ({scale}); cannot average them")
        for k, v in sd.items():
            v = v.detach()
            if i == 0:
                avg[k] = v.float().clone() if v.is_floating_point() else v.clone()
            elif v.is_floating_point():
                avg[k] += v.float()
    for k, v in avg.items():
        if v.is_floating_point():
            avg[k] = v / len(paths)
    return avg, scale, info


def convert_if_authors(sd: dict[str, torch.Tensor], path: str | Path, model: nn.Module) -> dict[str, torch.Tensor]:
    """``sd`` unchanged, or mapped onto ``model``'s keys when it is the authors' network.

    The hook for :func:`models.loading.load_model_weights` (``--finetune``): a model that is
    not ``oast3d`` with the authors' blocks cannot take these weights, which raises naming
    ``path``.
    """
    sd = strip_module(sd)
    if not is_authors_state_dict(sd):
        return sd
    if getattr(model, "blocks", None) != "authors":
        raise ValueError(f"{path} holds the authors' network; load it into --arch oast3d with the authors' "
                         f"blocks (build the model from this checkpoint, or pass their backbone file as "
                         f"--pretrained), not into {type(model).__name__}"
                         f"{' with timm blocks' if getattr(model, 'blocks', None) else ''}")
    return map_authors_state_dict(sd, model, path)
