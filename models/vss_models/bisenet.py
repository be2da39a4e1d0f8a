"""BiSeNet V1 (Yu et al., ECCV 2018) at CPU scale, its context path ImageNet-initialised.

The paper's structure at reduced width: a spatial path (3 ConvBNReLU, stride 2 each -> 1/8,
wide maps for detail), a context path (EfficientNet-Lite0 with its ImageNet weights, in place of
the paper's ResNet-18: 112 channels at stride 16, 320 at stride 32) with attention refinement
modules (ARM) on the stride-16 and stride-32 maps plus the global-average-pooled tail, and the
feature fusion module (FFM) joining both paths at 1/8. Two auxiliary heads supervise the context
path's stride-16 and stride-8 outputs during training (the paper's alpha = 1).

forward returns (logits at the input size, features = the FFM output, 128 channels, stride 8).
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn

from .blocks import ConvBNReLU, SegHead, crop, outputs, pad_to_multiple, upsample
from .efficientnet_lite import EfficientNetLite0, load_imagenet

FEATURE_STRIDE = 8


class SpatialPath(nn.Module):
    def __init__(self, widths: Tuple[int, int, int] = (32, 48, 64)):
        super().__init__()
        a, b, c = widths
        self.layers = nn.Sequential(ConvBNReLU(3, a, 3, 2), ConvBNReLU(a, b, 3, 2), ConvBNReLU(b, c, 3, 2))
        self.channels = c

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class AttentionRefinement(nn.Module):
    """3x3 ConvBNReLU, then channel attention: global pool -> 1x1 conv -> BN -> sigmoid."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = ConvBNReLU(c_in, c_out, 3)
        self.attention = nn.Sequential(nn.Conv2d(c_out, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        a = torch.sigmoid(self.attention(y.mean(dim=(2, 3), keepdim=True)))
        return y * a


class FeatureFusion(nn.Module):
    """concat(spatial, context) -> 1x1 ConvBNReLU -> f; out = f + f * SE(f)."""

    def __init__(self, c_in: int, c_out: int, reduction: int = 4):
        super().__init__()
        self.conv = ConvBNReLU(c_in, c_out, 1)
        self.attention = nn.Sequential(
            nn.Conv2d(c_out, c_out // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out // reduction, c_out, 1),
        )

    def forward(self, spatial: Tensor, context: Tensor) -> Tensor:
        f = self.conv(torch.cat([spatial, context], 1))
        a = torch.sigmoid(self.attention(f.mean(dim=(2, 3), keepdim=True)))
        return f + f * a


class BiSeNet(nn.Module):
    def __init__(self, classes: int = 11, context_width: int = 64, fusion_width: int = 128):
        super().__init__()
        self.spatial = SpatialPath()
        self.backbone = EfficientNetLite0()
        _, _, c16, c32 = self.backbone.channels
        self.arm16 = AttentionRefinement(c16, context_width)
        self.arm32 = AttentionRefinement(c32, context_width)
        self.global_context = ConvBNReLU(c32, context_width, 1)
        self.refine32 = ConvBNReLU(context_width, context_width, 3)
        self.refine16 = ConvBNReLU(context_width, context_width, 3)
        self.ffm = FeatureFusion(self.spatial.channels + context_width, fusion_width)
        self.head = SegHead(fusion_width, 64, classes)
        # Auxiliary heads on the context path's stride-16 and stride-8 outputs (training only).
        self.aux16 = SegHead(context_width, 64, classes)
        self.aux8 = SegHead(context_width, 64, classes)
        self.aux_weights: List[float] = [1.0, 1.0]
        self.feature_stride = FEATURE_STRIDE

    def imagenet_init(self) -> None:
        """Starts the context path from EfficientNet-Lite0's ImageNet weights (training only)."""
        load_imagenet(self.backbone)

    def context(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """(the FFM output, the context path's stride-16 and stride-8 maps) of a padded input."""
        spatial = self.spatial(x)
        _, _, s16, s32 = self.backbone(x)
        tail = self.global_context(s32.mean(dim=(2, 3), keepdim=True))
        ctx16 = self.refine32(upsample(self.arm32(s32) + tail, s16.shape[2], s16.shape[3]))
        ctx8 = self.refine16(upsample(self.arm16(s16) + ctx16, spatial.shape[2], spatial.shape[3]))
        return self.ffm(spatial, ctx8), ctx16, ctx8

    def run(self, x: Tensor, aux: bool) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """(logits, features, auxiliary logits at the input size when `aux`)."""
        x, h, w = pad_to_multiple(x)
        features, ctx16, ctx8 = self.context(x)
        logits, features = outputs(self.head(features), features, x, h, w, self.feature_stride)
        extra: List[Tensor] = []
        if aux:
            extra.append(crop(upsample(self.aux16(ctx16), x.shape[2], x.shape[3]), h, w))
            extra.append(crop(upsample(self.aux8(ctx8), x.shape[2], x.shape[3]), h, w))
        return logits, features, extra

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        logits, features, _ = self.run(x, False)
        return logits, features

    def features(self, x: Tensor) -> Tensor:
        """The map the shared classifier reads (AR-Seg's fusion point): the FFM output,
        [N, 128, ceil(H/8), ceil(W/8)], as `forward` returns it."""
        padded, h, w = pad_to_multiple(x)
        features, _, _ = self.context(padded)
        s = self.feature_stride
        return crop(features, -(-h // s), -(-w // s))

    def classify(self, features: Tensor) -> Tensor:
        """Logits at `feature_stride` x the map's size from a `features` map (the head, then
        bilinear upsampling)."""
        s = self.feature_stride
        return upsample(self.head(features), s * features.shape[2], s * features.shape[3])
