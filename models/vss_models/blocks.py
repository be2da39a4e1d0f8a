"""Building blocks shared by the networks trained from scratch here (BiSeNet, ICNet, dynamic routing).

They all reach stride 32, so `pad_to_multiple` lets them take any input whose sides are
multiples of 8 (CamVid's 360x480 is not a multiple of 32): the normalised image is zero-padded
at the bottom and right (zero = the mean colour), and the outputs are cropped back.
"""

from __future__ import annotations

from typing import Tuple

import torch.nn.functional as F
from torch import Tensor, nn

PAD_MULTIPLE = 32


class ConvBNReLU(nn.Sequential):
    def __init__(
        self, c_in: int, c_out: int, k: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1
    ):
        pad = (k - 1) // 2 * dilation
        super().__init__(
            nn.Conv2d(c_in, c_out, k, stride, pad, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class ConvBN(nn.Sequential):
    def __init__(
        self, c_in: int, c_out: int, k: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1
    ):
        pad = (k - 1) // 2 * dilation
        super().__init__(
            nn.Conv2d(c_in, c_out, k, stride, pad, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
        )


class BasicBlock(nn.Module):
    """ResNet's basic block (two 3x3 convs + identity or 1x1 projection), optionally dilated."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = ConvBNReLU(c_in, c_out, 3, stride, dilation)
        self.conv2 = ConvBN(c_out, c_out, 3, 1, dilation)
        self.project = c_in != c_out or stride != 1
        self.shortcut = ConvBN(c_in, c_out, 1, stride) if self.project else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


def stage(c_in: int, c_out: int, blocks: int, stride: int, dilation: int = 1) -> nn.Sequential:
    layers = [BasicBlock(c_in, c_out, stride, dilation)]
    layers += [BasicBlock(c_out, c_out, 1, dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class SegHead(nn.Sequential):
    """3x3 ConvBNReLU then a 1x1 classifier (BiSeNet's output and auxiliary heads)."""

    def __init__(self, c_in: int, c_mid: int, classes: int):
        super().__init__(ConvBNReLU(c_in, c_mid, 3), nn.Conv2d(c_mid, classes, 1))


def pad_to_multiple(x: Tensor, multiple: int = PAD_MULTIPLE) -> Tuple[Tensor, int, int]:
    """(padded input, original height, original width)."""
    h, w = x.shape[2], x.shape[3]
    ph = (multiple - h % multiple) % multiple
    pw = (multiple - w % multiple) % multiple
    if ph or pw:
        x = F.pad(x, [0, pw, 0, ph])
    return x, h, w


def upsample(x: Tensor, h: int, w: int) -> Tensor:
    return F.interpolate(x, size=[h, w], mode="bilinear", align_corners=False)


def crop(x: Tensor, h: int, w: int) -> Tensor:
    """The top-left h x w window (undoes `pad_to_multiple` on a map of the same stride)."""
    return x[:, :, :h, :w]


def outputs(
    logits: Tensor, features: Tensor, padded: Tensor, h: int, w: int, feature_stride: int
) -> Tuple[Tensor, Tensor]:
    """Logits upsampled to the padded input's size, then logits and features cropped to the
    unpadded input (h, w) and its feature grid (h / feature_stride, w / feature_stride)."""
    logits = crop(upsample(logits, padded.shape[2], padded.shape[3]), h, w)
    return logits, crop(features, -(-h // feature_stride), -(-w // feature_stride))


def conv_macs(module: nn.Module) -> int:
    """Multiply-accumulates per output pixel of every conv and linear layer in `module`
    (weight elements: cout * cin/groups * k * k); the caller scales by the pixel count."""
    total = 0
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            total += m.weight.numel()
    return total
