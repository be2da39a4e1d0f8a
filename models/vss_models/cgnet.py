"""CGNet (Wu et al., TIP 2020), Context Guided Network, CamVid M=3, N=21.

Parameter names follow the published checkpoint (wutianyiRosun/CGNet) so that
`load_state_dict(strict=True)` accepts it. forward returns (logits, features): logits bilinearly
upsampled to the input size as the original does, features = the stride-8 map the 1x1 classifier
reads.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BN_EPS = 1e-3


class Conv(nn.Module):
    """Bias-free 'same' convolution (weights under `.conv`); depthwise when `depthwise`."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, dilation: int = 1, depthwise=False):
        super().__init__()
        pad = (k - 1) // 2 * dilation
        groups = c_in if depthwise else 1
        self.conv = nn.Conv2d(c_in, c_out, k, stride, pad, dilation, groups, bias=False)

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


class GlobalContext(nn.Module):
    """f_glo: channel reweighting from the global average (squeeze-and-excitation form)."""

    def __init__(self, c: int, reduction: int):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(c, c // reduction), nn.ReLU(), nn.Linear(c // reduction, c), nn.Sigmoid()
        )

    def forward(self, x: Tensor) -> Tensor:
        w = self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
        return x * w.unsqueeze(2).unsqueeze(3)


class CGBlockDown(nn.Module):
    """Context guided block that halves the resolution: 3x3/2 conv, local + surrounding
    depthwise context, BN-PReLU, 1x1 reduction, global reweighting."""

    def __init__(self, c_in: int, c_out: int, dilation: int, reduction: int):
        super().__init__()
        self.conv1x1 = ConvBNPReLU(c_in, c_out, 3, 2)  # named so in the checkpoint; it is 3x3
        self.F_loc = Conv(c_out, c_out, 3, depthwise=True)
        self.F_sur = Conv(c_out, c_out, 3, dilation=dilation, depthwise=True)
        self.bn = nn.BatchNorm2d(2 * c_out, eps=BN_EPS)
        self.act = nn.PReLU(2 * c_out)
        self.reduce = Conv(2 * c_out, c_out, 1)
        self.F_glo = GlobalContext(c_out, reduction)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv1x1(x)
        joint = self.act(self.bn(torch.cat([self.F_loc(y), self.F_sur(y)], 1)))
        return self.F_glo(self.reduce(joint))


class CGBlock(nn.Module):
    """Residual context guided block: 1x1 to half width, local + surrounding context, global."""

    def __init__(self, c: int, dilation: int, reduction: int):
        super().__init__()
        half = c // 2
        self.conv1x1 = ConvBNPReLU(c, half, 1)
        self.F_loc = Conv(half, half, 3, depthwise=True)
        self.F_sur = Conv(half, half, 3, dilation=dilation, depthwise=True)
        self.bn_prelu = BNPReLU(c)
        self.F_glo = GlobalContext(c, reduction)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv1x1(x)
        joint = self.bn_prelu(torch.cat([self.F_loc(y), self.F_sur(y)], 1))
        return x + self.F_glo(joint)


class CGNet(nn.Module):
    def __init__(self, classes: int = 11, m: int = 3, n: int = 21):
        super().__init__()
        self.level1_0 = ConvBNPReLU(3, 32, 3, 2)
        self.level1_1 = ConvBNPReLU(32, 32, 3)
        self.level1_2 = ConvBNPReLU(32, 32, 3)
        self.b1 = BNPReLU(32 + 3)
        self.level2_0 = CGBlockDown(32 + 3, 64, dilation=2, reduction=8)
        self.level2 = nn.ModuleList([CGBlock(64, 2, 8) for _ in range(m - 1)])
        self.bn_prelu_2 = BNPReLU(128 + 3)
        self.level3_0 = CGBlockDown(128 + 3, 128, dilation=4, reduction=16)
        self.level3 = nn.ModuleList([CGBlock(128, 4, 16) for _ in range(n - 1)])
        self.bn_prelu_3 = BNPReLU(256)
        self.classifier = nn.Sequential(Conv(256, classes, 1))

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        img2 = F.avg_pool2d(x, 3, 2, 1)
        img4 = F.avg_pool2d(img2, 3, 2, 1)
        y = self.level1_2(self.level1_1(self.level1_0(x)))
        s2 = self.b1(torch.cat([y, img2], 1))
        down4 = self.level2_0(s2)
        y = down4
        for block in self.level2:
            y = block(y)
        s4 = self.bn_prelu_2(torch.cat([y, down4, img4], 1))
        down8 = self.level3_0(s4)
        y = down8
        for block in self.level3:
            y = block(y)
        features = self.bn_prelu_3(torch.cat([down8, y], 1))
        logits = self.classifier(features)
        size: List[int] = [x.shape[2], x.shape[3]]
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits, features
