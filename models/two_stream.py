"""The two-stream (RGB + optical flow) segmentation network."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.backbone import Encoder, read_imagenet_file
from models.decoder import Decoder
from models.fusion import MotionAppearanceFusion
from models.pretrained import IMAGENET_MEAN, IMAGENET_STD


class TwoStreamNet(nn.Module):
    """Appearance and motion encoders, per-scale fusion, top-down decoder.

    ``forward(image, flow)`` takes RGB frames and flow images as float tensors in [0, 1]
    (``B x 3 x H x W``, any H, W) and returns ``{"logits": B x 1 x H x W, "features":
    B x C x H/32 x W/32}``; the features (fused deepest level) feed the offline
    feature discriminator. ``mean``/``std`` normalise both inputs as the encoders' ImageNet
    weights expect (flow images are images too). ``head``: the decoder's last layers
    (:class:`models.decoder.Decoder`).
    """

    def __init__(self, backbone: str, max_width: int = 128, mean: tuple = IMAGENET_MEAN, std: tuple = IMAGENET_STD,
                 head: str = "relu"):
        super().__init__()
        self.rgb_encoder = Encoder(backbone)
        self.flow_encoder = Encoder(backbone)
        in_ch = self.rgb_encoder.channels
        widths = [min(c, max_width) for c in in_ch]
        self.fusions = nn.ModuleList(MotionAppearanceFusion(c, w) for c, w in zip(in_ch, widths))
        self.decoder = Decoder(widths, head)
        self.stride = self.rgb_encoder.reductions[-1]
        self.feature_channels = widths[-1]
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor, flow: torch.Tensor) -> dict[str, torch.Tensor]:
        if image.shape != flow.shape:
            raise ValueError(f"image {tuple(image.shape)} and flow {tuple(flow.shape)} must have the same shape")
        h, w = image.shape[-2:]
        # Backbones need sizes divisible by their total stride: pad, then crop the logits.
        ph, pw = (-h) % self.stride, (-w) % self.stride
        x = torch.cat([image, flow], 0)
        x = (x - self.mean) / self.std
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        b = image.shape[0]
        # Both streams share no weights, but each runs once on its own half of the batch.
        app = self.rgb_encoder(x[:b])
        mot = self.flow_encoder(x[b:])
        fused = [f(a, m) for f, a, m in zip(self.fusions, app, mot)]
        logits = self.decoder(fused)  # B x 1 x (H+ph)/r0 x (W+pw)/r0
        logits = F.interpolate(logits, size=(h + ph, w + pw), mode="bilinear", align_corners=False)
        return {"logits": logits[..., :h, :w], "features": fused[-1]}

    def load_backbone_weights(self, path: str) -> None:
        """Initialise both encoders from one ImageNet checkpoint (flow images are images too)."""
        weights = read_imagenet_file(path, self.rgb_encoder.name)  # read and converted once for both
        self.rgb_encoder.load_imagenet(path, weights)
        self.flow_encoder.load_imagenet(path, weights)
