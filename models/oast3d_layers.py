"""3D (time x height x width) building blocks of the authors' network (``--arch oast3d``).

The clip has two time steps, the RGB frame and the flow image. Every convolution has a
temporal kernel of 3 (zero padded, stride 1) so that it can be *inflated* from a 2D ImageNet
kernel: the 2D weights go into the centre temporal slice and the other slices start at zero.
MobileViT blocks unfold both time steps into one set of 2x2 patches, so attention mixes frame
and flow. Attribute names follow timm's MobileViT (``conv1_1x1``, ``conv_kxk``, ...), which
makes timm's 2D state dicts map onto these modules key by key.

Two flavours of block internals (``blocks=``):
  * ``"timm"``: timm's / Apple's MobileViT (conv-BN-SiLU everywhere, timm's transformer
    ``Block`` with 4 heads and biases, a LayerNorm after the transformer); initialised from
    timm's ImageNet files.
  * ``"authors"``: the unofficial MobileViT the authors built on (no BN or activation on the
    stem, fusion and final convolutions, which carry biases; no activation after the
    inverted residual's expansion; one 32-wide attention head scaled by ``dim ** -0.5``
    without biases; dropout 0.1 in the MLP; no LayerNorm after the transformer); what their
    released checkpoints hold.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from timm.models.vision_transformer import Block as TimmTransformerBlock

BLOCKS = ("timm", "authors")
TIME_KERNEL = 3
PATCH = 2  # MobileViT patch side, both flavours and every stage


def check_blocks(blocks: str) -> str:
    """``blocks`` when it is one of :data:`BLOCKS`, else a ValueError listing them."""
    if blocks not in BLOCKS:
        raise ValueError(f"unknown oast3d blocks {blocks!r}; choose from {BLOCKS}")
    return blocks


def inflate_kernel(w2d: torch.Tensor, time: int = TIME_KERNEL) -> torch.Tensor:
    """``O x I x kh x kw`` -> ``O x I x time x kh x kw`` with ``w2d`` in the centre slice, zeros elsewhere.

    With zeros around the centre, each time step sees only itself through the convolution,
    exactly as the 2D network would; the temporal taps are learned from there.
    """
    out = w2d.new_zeros(w2d.shape[0], w2d.shape[1], time, *w2d.shape[2:])
    out[:, :, time // 2] = w2d
    return out


def centre_init_(conv: nn.Conv3d) -> None:
    """PyTorch's default 2D initialisation in the centre slice, zeros elsewhere (a random 2D net, inflated)."""
    k = conv.weight
    w2d = torch.empty(k.shape[0], k.shape[1], *k.shape[3:], dtype=k.dtype, device=k.device)
    nn.init.kaiming_uniform_(w2d, a=math.sqrt(5))
    with torch.no_grad():
        k.copy_(inflate_kernel(w2d, k.shape[2]))
        if conv.bias is not None:
            bound = 1 / math.sqrt(w2d[0].numel()) if w2d[0].numel() else 0
            conv.bias.uniform_(-bound, bound)


class TemporalConv(nn.Conv3d):
    """``nn.Conv3d`` with a temporal kernel of 3 (stride 1, zero padding 1), run as one 2D convolution.

    Over a short clip the time steps can be folded into the channels: ``B x C x T x H x W``
    viewed as ``B x (C T) x H x W`` (no copy) convolved with a ``(O T) x (I T)`` kernel whose
    block (t_out, t_in) is the temporal tap ``t_in - t_out + 1`` (zero outside the kernel)
    gives the same output, viewed back. PyTorch's CPU Conv3d falls back to a slow
    reference kernel, depthwise ones above all, while the 2D form uses the fast ones; the
    parameters (and so the state dict) are the Conv3d's.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        if t > 4:  # the folded kernel grows as T^2; the plain 3D kernel is cheaper then
            return super().forward(x)
        k = self.weight  # O x I/g x 3 x kh x kw
        # [t_out, t_in] -> tap t_in - t_out + 1; with T <= 2 every tap exists, beyond that
        # zero taps are padded on both sides of the kernel.
        pad = 0 if t <= 2 else t
        taps = F.pad(k, (0, 0, 0, 0, pad, pad)) if pad else k
        idx = (torch.arange(t, device=x.device)[None, :] - torch.arange(t, device=x.device)[:, None]
               + TIME_KERNEL // 2 + pad)
        k2 = taps[:, :, idx]  # O x I/g x T_out x T_in x kh x kw
        k2 = k2.permute(0, 2, 1, 3, 4, 5).reshape(k.shape[0] * t, k.shape[1] * t, *k.shape[3:])
        bias = self.bias.repeat_interleave(t) if self.bias is not None else None
        y = F.conv2d(x.reshape(b, c * t, h, w), k2, bias, self.stride[1:], self.padding[1:], self.dilation[1:],
                     self.groups)
        return y.reshape(b, -1, t, *y.shape[-2:])


def conv3d(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, bias: bool = False) -> nn.Conv3d:
    """Convolution with a temporal kernel of 3 (stride 1, zero padded) and a ``k x k`` spatial one."""
    return TemporalConv(cin, cout, (TIME_KERNEL, k, k), stride=(1, stride, stride),
                        padding=(TIME_KERNEL // 2, k // 2, k // 2), groups=groups, bias=bias)


class ConvNormAct3d(nn.Module):
    """``conv`` (+ ``bn``) (+ SiLU); keys ``conv.*``/``bn.*`` like timm's ``ConvNormAct``."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1,
                 norm: bool = True, act: bool = True):
        super().__init__()
        self.conv = conv3d(cin, cout, k, stride, groups, bias=not norm)
        self.bn = nn.BatchNorm3d(cout) if norm else nn.Identity()
        self.act = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class InvertedResidual3d(nn.Module):
    """MobileNetV2 block: 1x1 expansion, depthwise 3x3 (strided), 1x1 projection (+ input)."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: float, blocks: str):
        super().__init__()
        hidden = int(round(cin * expansion))
        # timm activates the expansion; the authors' code does not.
        self.conv1_1x1 = ConvNormAct3d(cin, hidden, 1, act=blocks == "timm")
        self.conv2_kxk = ConvNormAct3d(hidden, hidden, 3, stride, groups=hidden)
        self.conv3_1x1 = ConvNormAct3d(hidden, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3_1x1(self.conv2_kxk(self.conv1_1x1(x)))
        return x + y if self.residual else y


class AuthorsAttention(nn.Module):
    """Self-attention as in the authors' MobileViT: ``heads`` x ``head_dim`` (1 x 32), no biases,
    scores scaled by ``dim ** -0.5`` (the token width, not the head width)."""

    def __init__(self, dim: int, heads: int = 1, head_dim: int = 32):
        super().__init__()
        self.heads, self.head_dim, self.scale = heads, head_dim, dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)  # q, k, v in this order
        self.proj = nn.Linear(heads * head_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, _ = x.shape
        q, k, v = (t.reshape(n, length, self.heads, self.head_dim).transpose(1, 2)
                   for t in self.qkv(x).chunk(3, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(n, length, self.heads * self.head_dim))


class AuthorsMlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float):
        super().__init__()
        self.fc1, self.act, self.drop1 = nn.Linear(dim, hidden), nn.SiLU(), nn.Dropout(drop)
        self.fc2, self.drop2 = nn.Linear(hidden, dim), nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class AuthorsTransformerLayer(nn.Module):
    """Pre-norm attention and MLP, each with a residual (keys like timm's ``Block``)."""

    def __init__(self, dim: int, mlp_hidden: int, drop: float = 0.1):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), AuthorsAttention(dim)
        self.norm2, self.mlp = nn.LayerNorm(dim), AuthorsMlp(dim, mlp_hidden, drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def unfold_patches(x: torch.Tensor) -> torch.Tensor:
    """``B x C x T x H x W`` -> ``(B * 4) x (T * H/2 * W/2) x C``: one token sequence per position
    inside the 2x2 patch, holding the patches of every time step (attention spans frame and flow)."""
    b, c, t, h, w = x.shape
    if h % PATCH or w % PATCH:
        raise ValueError(f"MobileViT block needs even feature sizes, got {h}x{w} (pad the input to a multiple of 64)")
    x = x.reshape(b, c, t, h // PATCH, PATCH, w // PATCH, PATCH)
    return x.permute(0, 4, 6, 2, 3, 5, 1).reshape(b * PATCH * PATCH, t * (h // PATCH) * (w // PATCH), c)


def fold_patches(tokens: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Inverse of :func:`unfold_patches` for a tensor of ``shape`` (B, C, T, H, W)."""
    b, c, t, h, w = shape
    x = tokens.reshape(b, PATCH, PATCH, t, h // PATCH, w // PATCH, c)
    return x.permute(0, 6, 3, 4, 1, 5, 2).reshape(b, c, t, h, w)


class MobileViTBlock3d(nn.Module):
    """Local 3x3 conv, projection to ``dim``, transformer over the patches of all time steps,
    projection back and fusion with the block's input."""

    def __init__(self, channels: int, dim: int, depth: int, mlp_ratio: float, blocks: str):
        super().__init__()
        authors = check_blocks(blocks) == "authors"
        self.conv_kxk = ConvNormAct3d(channels, channels, 3)
        if authors:
            self.conv_1x1 = ConvNormAct3d(channels, dim, 1)
            self.transformer = nn.Sequential(*[AuthorsTransformerLayer(dim, int(dim * mlp_ratio))
                                               for _ in range(depth)])
            self.norm = nn.Identity()
            self.conv_proj = ConvNormAct3d(dim, channels, 1, norm=False, act=False)
            self.conv_fusion = ConvNormAct3d(2 * channels, channels, 3, norm=False, act=False)
        else:
            self.conv_1x1 = conv3d(channels, dim, 1)
            self.transformer = nn.Sequential(*[
                TimmTransformerBlock(dim, num_heads=4, mlp_ratio=mlp_ratio, qkv_bias=True,
                                     act_layer=nn.SiLU, norm_layer=nn.LayerNorm) for _ in range(depth)])
            self.norm = nn.LayerNorm(dim)
            self.conv_proj = ConvNormAct3d(dim, channels, 1)
            self.conv_fusion = ConvNormAct3d(2 * channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_1x1(self.conv_kxk(x))
        y = fold_patches(self.norm(self.transformer(unfold_patches(y))), y.shape)
        return self.conv_fusion(torch.cat([x, self.conv_proj(y)], 1))
