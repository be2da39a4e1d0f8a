"""ICNet (Zhao et al., ECCV 2018) at CPU scale, its heavy branches ImageNet-initialised.

The paper's image cascade, with EfficientNet-Lite0 (ImageNet weights) in place of its PSPNet-50:
- sub1, full resolution: 3 ConvBNReLU of stride 2 -> 1/8 (64 channels), cheap and wide;
- sub2, the image at 1/2 through Lite0's first stages: its stride-8 map, 1/16 of the input
  (40 channels);
- sub4: the same network continued (as the authors' Caffe model does, the 1/4 branch shares the
  1/2 branch's first layers): Lite0's stride-16 stages, 1/32 of the input, then its last stages
  dilated instead of strided (still 1/32, 320 channels) and pyramid pooling (bins 1, 2, 3, 6,
  summed) -> 128 channels. Every heavy layer runs on a quarter of the pixels or fewer.
Cascade feature fusion (CFF) joins 1/32 with 1/16, then with 1/8: the low-resolution map is
upsampled x2 and goes through a 3x3 dilation-2 conv + BN, the high-resolution one through a 1x1
conv + BN, sum, ReLU; each CFF has a classifier on its upsampled low-resolution input for cascade
label guidance (auxiliary losses at 1/16 and 1/8, weight 0.4, labels downsampled to match). The
final map is upsampled x2 to 1/4 and classified, then upsampled to the input.

forward returns (logits at the input size, features = the last CFF's output, 128 ch, stride 8).
"""

from __future__ import annotations

from typing import List, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import ConvBN, ConvBNReLU, crop, outputs, pad_to_multiple, upsample
from .efficientnet_lite import EfficientNetLite0, load_imagenet

FEATURE_STRIDE = 8


class PyramidPooling(nn.Module):
    """ICNet's PSP variant: average pools at several bins, upsampled and summed with the input."""

    def __init__(self, bins: Tuple[int, ...] = (1, 2, 3, 6)):
        super().__init__()
        self.bins = list(bins)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[2], x.shape[3]
        out = x
        for b in self.bins:
            out = out + upsample(F.adaptive_avg_pool2d(x, b), h, w)
        return out


class CascadeFeatureFusion(nn.Module):
    def __init__(self, c_low: int, c_high: int, c_out: int, classes: int):
        super().__init__()
        self.low = ConvBN(c_low, c_out, 3, dilation=2)
        self.high = ConvBN(c_high, c_out, 1)
        self.classifier = nn.Conv2d(c_low, classes, 1)  # cascade label guidance (training)

    def forward(self, low: Tensor, high: Tensor) -> Tuple[Tensor, Tensor]:
        """(fused map at high's resolution, upsampled low map for the auxiliary classifier)."""
        up = upsample(low, high.shape[2], high.shape[3])
        return F.relu(self.low(up) + self.high(high)), up


class ICNet(nn.Module):
    def __init__(self, classes: int = 11, width: int = 128):
        super().__init__()
        self.sub1 = nn.Sequential(ConvBNReLU(3, 32, 3, 2), ConvBNReLU(32, 32, 3, 2), ConvBNReLU(32, 64, 3, 2))
        self.backbone = EfficientNetLite0(dilated=True)
        _, c_sub2, _, c_sub4 = self.backbone.channels
        self.ppm = PyramidPooling()
        self.reduce = ConvBNReLU(c_sub4, width, 1)
        self.cff_16 = CascadeFeatureFusion(width, c_sub2, width, classes)
        self.cff_8 = CascadeFeatureFusion(width, 64, width, classes)
        self.classifier = nn.Conv2d(width, classes, 1)
        self.aux_weights: List[float] = [0.4, 0.4]
        self.feature_stride = FEATURE_STRIDE

    def imagenet_init(self) -> None:
        """Starts the 1/2 and 1/4 branches from EfficientNet-Lite0's ImageNet weights (training)."""
        load_imagenet(self.backbone)

    def run(self, x: Tensor, aux: bool) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """(logits, features, auxiliary logits at 1/16 and 1/8 when `aux`)."""
        x, h, w = pad_to_multiple(x)
        f1 = self.sub1(x)
        half = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        _, f2, _, f4 = self.backbone(half)
        f4 = self.reduce(self.ppm(f4))
        g16, low16 = self.cff_16(f4, f2)
        g8, low8 = self.cff_8(g16, f1)
        quarter_map = F.interpolate(g8, scale_factor=2.0, mode="bilinear", align_corners=False)
        logits, features = outputs(self.classifier(quarter_map), g8, x, h, w, self.feature_stride)
        extra: List[Tensor] = []
        if aux:
            extra.append(crop(self.cff_16.classifier(low16), -(-h // 16), -(-w // 16)))
            extra.append(crop(self.cff_8.classifier(low8), -(-h // 8), -(-w // 8)))
        return logits, features, extra

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        logits, features, _ = self.run(x, False)
        return logits, features
