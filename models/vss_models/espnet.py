"""ESPNet (Mehta et al., ECCV 2018): ESPNet-C encoder plus the light RUM decoder, CamVid p=2, q=8.

Parameter names follow the published checkpoint (sacmehta/ESPNet, train/Model.py layout) so that
`load_state_dict(strict=True)` accepts it. forward returns (logits, features): logits at input
resolution, features = the map the final classifier (a 2x transposed conv) reads, at stride 2.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BN_EPS = 1e-3


class Conv(nn.Module):
    """Bias-free 'same' convolution (weights under `.conv`)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        pad = (k - 1) // 2 * dilation
        self.conv = nn.Conv2d(c_in, c_out, k, stride, pad, dilation=dilation, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class BNPReLU(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(c, eps=BN_EPS)
        self.act = nn.PReLU(c)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(x))


class ConvBNPReLU(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.act = nn.PReLU(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class ESPBranches(nn.Module):
    """Reduce (c1) -> split into 5 dilated 3x3 branches (rates 1..16) -> hierarchical sums -> concat.

    The first branch takes the channels left over when n_out is not a multiple of 5.
    """

    def __init__(self, c_in: int, c_out: int, reduce_k: int, reduce_stride: int):
        super().__init__()
        n = c_out // 5
        n1 = c_out - 4 * n
        self.c1 = Conv(c_in, n, reduce_k, reduce_stride)
        self.d1 = Conv(n, n1, 3, dilation=1)
        self.d2 = Conv(n, n, 3, dilation=2)
        self.d4 = Conv(n, n, 3, dilation=4)
        self.d8 = Conv(n, n, 3, dilation=8)
        self.d16 = Conv(n, n, 3, dilation=16)

    def branches(self, x: Tensor) -> Tensor:
        r = self.c1(x)
        s2 = self.d2(r)
        s4 = s2 + self.d4(r)
        s8 = s4 + self.d8(r)
        s16 = s8 + self.d16(r)
        return torch.cat([self.d1(r), s2, s4, s8, s16], 1)


class ESPDown(ESPBranches):
    """Strided ESP module (3x3 stride-2 reduction); halves the resolution."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, 3, 2)
        self.bn = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.act = nn.PReLU(c_out)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.branches(x)))


class ESPBlock(ESPBranches):
    """ESP module with 1x1 reduction; residual when in and out widths match and `residual`."""

    def __init__(self, c_in: int, c_out: int, residual: bool = True):
        super().__init__(c_in, c_out, 1, 1)
        self.bn = BNPReLU(c_out)
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        y = self.branches(x)
        if self.residual:
            y = y + x
        return self.bn(y)


def image_pyramid_level(x: Tensor, times: int) -> Tensor:
    """The input image average-pooled `times` times (3x3, stride 2), as ESPNet injects it."""
    for _ in range(times):
        x = F.avg_pool2d(x, 3, 2, 1)
    return x


class ESPNetEncoder(nn.Module):
    """ESPNet-C: output at 1/8 resolution."""

    def __init__(self, classes: int, p: int, q: int):
        super().__init__()
        self.level1 = ConvBNPReLU(3, 16, 3, 2)
        self.b1 = BNPReLU(16 + 3)
        self.level2_0 = ESPDown(16 + 3, 64)
        self.level2 = nn.ModuleList([ESPBlock(64, 64) for _ in range(p)])
        self.b2 = BNPReLU(128 + 3)
        self.level3_0 = ESPDown(128 + 3, 128)
        self.level3 = nn.ModuleList([ESPBlock(128, 128) for _ in range(q)])
        self.b3 = BNPReLU(256)
        self.classifier = Conv(256, classes, 1)

    def stages(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Returns the stride-2, stride-4 and stride-8 concatenated feature maps."""
        img2 = image_pyramid_level(x, 1)
        img4 = F.avg_pool2d(img2, 3, 2, 1)
        s2 = self.b1(torch.cat([self.level1(x), img2], 1))
        down4 = self.level2_0(s2)
        y = down4
        for block in self.level2:
            y = block(y)
        s4 = self.b2(torch.cat([y, down4, img4], 1))
        down8 = self.level3_0(s4)
        y = down8
        for block in self.level3:
            y = block(y)
        s8 = self.b3(torch.cat([down8, y], 1))
        return s2, s4, s8

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.stages(x)[2])


class ESPNet(nn.Module):
    """ESPNet with the reverse-upsampling (RUM) decoder."""

    def __init__(self, classes: int = 12, p: int = 2, q: int = 8):
        super().__init__()
        self.encoder = ESPNetEncoder(classes, p, q)
        self.level3_C = Conv(128 + 3, classes, 1)
        self.br = nn.BatchNorm2d(classes, eps=BN_EPS)
        self.conv = ConvBNPReLU(19 + classes, classes, 3)
        self.up_l3 = nn.Sequential(nn.ConvTranspose2d(classes, classes, 2, 2, bias=False))
        self.combine_l2_l3 = nn.Sequential(
            BNPReLU(2 * classes), ESPBlock(2 * classes, classes, residual=False)
        )
        self.up_l2 = nn.Sequential(nn.ConvTranspose2d(classes, classes, 2, 2, bias=False), BNPReLU(classes))
        self.classifier = nn.ConvTranspose2d(classes, classes, 2, 2, bias=False)

    def features(self, x: Tensor) -> Tensor:
        """The map the final classifier reads: [N, classes, H/2, W/2]."""
        s2, s4, s8 = self.encoder.stages(x)
        up8 = self.up_l3(self.br(self.encoder.classifier(s8)))
        up4 = self.up_l2(self.combine_l2_l3(torch.cat([self.level3_C(s4), up8], 1)))
        return self.conv(torch.cat([up4, s2], 1))

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        features = self.features(x)
        return self.classifier(features), features

    def classify(self, features: Tensor) -> Tensor:
        """Logits at twice the map's size from a `features` map (the final classifier)."""
        return self.classifier(features)

    def keep_classes(self, keep: List[int]) -> None:
        """Restricts the final classifier to the output channels `keep` (drops CamVid's void)."""
        old = self.classifier
        new = nn.ConvTranspose2d(old.in_channels, len(keep), 2, 2, bias=False)
        new.weight.data = old.weight.data[:, keep].clone()  # (in, out, kh, kw)
        self.classifier = new
