"""ESPNetv2 (Mehta et al., CVPR 2019) segmentation network, width scale s=2.0, Cityscapes.

EESP encoder (levels 1-4 of the ImageNet network, input reinforcement on) with the EdgeNets
bottom-up decoder of efficient pyramid pooling (EPP) modules. Parameter names follow the
published checkpoint (sacmehta/EdgeNets, model_zoo/espnetv2) so that
`load_state_dict(strict=True)` accepts it. forward returns (logits, features): logits upsampled to
the input size (bilinear, align_corners=True, as the original), features = the stride-2 decoder
map the last EPP module (the classification head) reads.
"""

from __future__ import annotations

import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# s=2.0 channel widths of levels 1..4; EESP branch count; receptive field limits per level.
WIDTHS = [32, 128, 256, 512]
BRANCHES = 4
LEVEL3_BLOCKS = 3
LEVEL4_BLOCKS = 7
RECEPTIVE_LIMIT = [13, 11, 9, 7]
REINFORCE_WIDTH = 3  # the input image is re-injected at every down-sampling


class ConvBN(nn.Module):
    """Conv -> BN (-> PReLU when `act`), weights under conv/bn/act (EESP naming)."""

    def __init__(self, c_in, c_out, k, stride=1, groups=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.PReLU(c_out) if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))


class BNPReLU(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(c)
        self.act = nn.PReLU(c)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(x))


class DepthwiseDilated(nn.Module):
    def __init__(self, c: int, stride: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride, dilation, dilation, groups=c, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


def branch_dilations(k: int, receptive_limit: int) -> List[int]:
    """Dilation of each of the k depthwise 3x3 branches: effective kernel 3, 5, 7, ... capped
    to 3 beyond the block's receptive-field limit, sorted ascending."""
    sizes = sorted(3 + 2 * i if 3 + 2 * i <= receptive_limit else 3 for i in range(k))
    return [(s - 1) // 2 for s in sizes]


class EESP(nn.Module):
    """Extremely efficient spatial pyramid: grouped 1x1 reduce, k depthwise dilated branches
    fused hierarchically, BN-PReLU, grouped 1x1 expand; residual + PReLU when stride 1."""

    def __init__(self, c_in: int, c_out: int, stride: int, receptive_limit: int):
        super().__init__()
        n = c_out // BRANCHES
        assert n * BRANCHES == c_out
        self.stride = stride
        self.proj_1x1 = ConvBN(c_in, n, 1, groups=BRANCHES)
        self.spp_dw = nn.ModuleList(
            [DepthwiseDilated(n, stride, d) for d in branch_dilations(BRANCHES, receptive_limit)]
        )
        self.conv_1x1_exp = ConvBN(c_out, c_out, 1, groups=BRANCHES, act=False)
        self.br_after_cat = BNPReLU(c_out)
        self.module_act = nn.PReLU(c_out)  # unused when stride 2 (the down-sampler activates)

    def forward(self, x: Tensor) -> Tensor:
        r = self.proj_1x1(x)
        outs: List[Tensor] = []
        for branch in self.spp_dw:
            y = branch(r)
            if len(outs) > 0:
                y = y + outs[-1]  # hierarchical feature fusion
            outs.append(y)
        y = self.conv_1x1_exp(self.br_after_cat(torch.cat(outs, 1)))
        if self.stride == 2:
            return y
        return self.module_act(y + x)


class DownSampler(nn.Module):
    """Strided EESP concatenated with an average-pooled copy of the input, plus the image
    reinforcement (the image pooled to this resolution, 3x3 CBR then 1x1 CB)."""

    def __init__(self, c_in: int, c_out: int, receptive_limit: int):
        super().__init__()
        self.eesp = EESP(c_in, c_out - c_in, 2, receptive_limit)
        self.inp_reinf = nn.Sequential(
            ConvBN(REINFORCE_WIDTH, REINFORCE_WIDTH, 3),
            ConvBN(REINFORCE_WIDTH, c_out, 1, act=False),
        )
        self.act = nn.PReLU(c_out)

    def forward(self, x: Tensor, image: Tensor) -> Tensor:
        y = torch.cat([F.avg_pool2d(x, 3, 2, 1), self.eesp(x)], 1)
        return self.act(y + self.inp_reinf(image))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        w = WIDTHS
        self.level1 = ConvBN(3, w[0], 3, 2)
        self.level2_0 = DownSampler(w[0], w[1], RECEPTIVE_LIMIT[0])
        self.level3_0 = DownSampler(w[1], w[2], RECEPTIVE_LIMIT[1])
        self.level3 = nn.ModuleList([EESP(w[2], w[2], 1, RECEPTIVE_LIMIT[2]) for _ in range(LEVEL3_BLOCKS)])
        self.level4_0 = DownSampler(w[2], w[3], RECEPTIVE_LIMIT[2])
        self.level4 = nn.ModuleList([EESP(w[3], w[3], 1, RECEPTIVE_LIMIT[3]) for _ in range(LEVEL4_BLOCKS)])


class ConvBNAct(nn.Module):
    """Conv -> BN -> PReLU as one Sequential under `.cbr` (EdgeNets decoder naming)."""

    def __init__(self, c_in: int, c_out: int, k: int, groups: int = 1):
        super().__init__()
        self.cbr = nn.Sequential(
            nn.Conv2d(c_in, c_out, k, 1, (k - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
            nn.PReLU(c_out),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.cbr(x)


class BNAct(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.br = nn.Sequential(nn.BatchNorm2d(c), nn.PReLU(c))

    def forward(self, x: Tensor) -> Tensor:
        return self.br(x)


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape[0], x.shape[1], x.shape[2], x.shape[3]
        x = x.reshape(b, self.groups, c // self.groups, h, w).transpose(1, 2)
        return x.reshape(b, c, h, w)


class EfficientPyramidPool(nn.Module):
    """Project to few channels, run a depthwise 3x3 at 5 scales (2, 1.5, 1, 0.5, 0.1 of the map;
    at least 5 pixels), merge with BN-PReLU, shuffle, grouped 3x3, 1x1 to the output width."""

    def __init__(self, c_in: int, c_proj: int, c_out: int, last: bool = False):
        super().__init__()
        self.scales: List[float] = [2.0, 1.5, 1.0, 0.5, 0.1]
        self.projection_layer = ConvBNAct(c_in, c_proj, 1)
        self.stages = nn.ModuleList(
            [nn.Conv2d(c_proj, c_proj, 3, 1, 1, groups=c_proj, bias=False) for _ in self.scales]
        )
        n = len(self.scales)
        self.merge_layer = nn.Sequential(
            BNAct(c_proj * n),
            ChannelShuffle(n),
            ConvBNAct(c_proj * n, c_proj, 3, groups=c_proj),
            nn.Conv2d(c_proj, c_out, 1, bias=last),
        )
        # The last module is the classifier: no BN-PReLU after its 1x1 (which has a bias).
        self.br = nn.Identity() if last else BNAct(c_out)

    def forward(self, x: Tensor) -> Tensor:
        x = self.projection_layer(x)
        h, w = x.shape[2], x.shape[3]
        size: List[int] = [h, w]
        outs: List[Tensor] = []
        for i, stage in enumerate(self.stages):
            s = self.scales[i]
            scaled: List[int] = [max(int(math.ceil(h * s)), 5), max(int(math.ceil(w * s)), 5)]
            if s < 1.0:
                y = stage(F.adaptive_avg_pool2d(x, scaled))
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=True)
            elif s > 1.0:
                y = F.interpolate(x, size=scaled, mode="bilinear", align_corners=True)
                y = F.adaptive_avg_pool2d(stage(y), size)
            else:
                y = stage(x)
            outs.append(y)
        return self.br(self.merge_layer(torch.cat(outs, 1)))


class EfficientPWConv(nn.Module):
    """Skip projection: grouped 3x3 CBR scaled by a sigmoid channel gate from the global mean."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.wt_layer = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(c_in, c_out, 1, bias=False), nn.Sigmoid()
        )
        self.expansion_layer = ConvBNAct(c_in, c_out, 3, groups=math.gcd(c_in, c_out))

    def forward(self, x: Tensor) -> Tensor:
        return self.expansion_layer(x) * self.wt_layer(x)


def upsample_to(x: Tensor, like: Tensor) -> Tensor:
    """2x bilinear (align_corners=True) up-sampling, sized to the skip it is added to."""
    size: List[int] = [like.shape[2], like.shape[3]]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class ESPNetv2(nn.Module):
    def __init__(self, classes: int = 20):
        super().__init__()
        self.base_net = Encoder()
        base = 16  # decoder width for Cityscapes
        dec = [4 * base, 3 * base, 2 * base, classes]
        proj = min(classes // 2, base)
        self.bu_dec_l1 = EfficientPyramidPool(WIDTHS[3], proj, dec[0])
        self.bu_dec_l2 = EfficientPyramidPool(dec[0], proj, dec[1])
        self.bu_dec_l3 = EfficientPyramidPool(dec[1], proj, dec[2])
        self.bu_dec_l4 = EfficientPyramidPool(dec[2], proj, dec[3], last=True)
        self.merge_enc_dec_l2 = EfficientPWConv(WIDTHS[2], dec[0])
        self.merge_enc_dec_l3 = EfficientPWConv(WIDTHS[1], dec[1])
        self.merge_enc_dec_l4 = EfficientPWConv(WIDTHS[0], dec[2])
        self.bu_br_l2 = nn.Sequential(nn.BatchNorm2d(dec[0]), nn.PReLU(dec[0]))
        self.bu_br_l3 = nn.Sequential(nn.BatchNorm2d(dec[1]), nn.PReLU(dec[1]))
        self.bu_br_l4 = nn.Sequential(nn.BatchNorm2d(dec[2]), nn.PReLU(dec[2]))

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        enc = self.base_net
        img4 = F.avg_pool2d(F.avg_pool2d(x, 3, 2, 1), 3, 2, 1)
        img8 = F.avg_pool2d(img4, 3, 2, 1)
        img16 = F.avg_pool2d(img8, 3, 2, 1)
        e1 = enc.level1(x)
        e2 = enc.level2_0(e1, img4)
        e3 = enc.level3_0(e2, img8)
        for block in enc.level3:
            e3 = block(e3)
        e4 = enc.level4_0(e3, img16)
        for block in enc.level4:
            e4 = block(e4)

        y = self.bu_dec_l1(e4)
        y = self.bu_dec_l2(self.bu_br_l2(upsample_to(y, e3) + self.merge_enc_dec_l2(e3)))
        y = self.bu_dec_l3(self.bu_br_l3(upsample_to(y, e2) + self.merge_enc_dec_l3(e2)))
        features = self.bu_br_l4(upsample_to(y, e1) + self.merge_enc_dec_l4(e1))
        logits = self.bu_dec_l4(features)
        size: List[int] = [x.shape[2], x.shape[3]]
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=True)
        return logits, features

    def keep_classes(self, keep: List[int]) -> None:
        """Restricts the classifier (last 1x1 of the last EPP) to the output channels `keep`
        (drops Cityscapes' background channel)."""
        old = self.bu_dec_l4.merge_layer[3]
        new = nn.Conv2d(old.in_channels, len(keep), 1, bias=True)
        new.weight.data = old.weight.data[keep].clone()
        new.bias.data = old.bias.data[keep].clone()
        self.bu_dec_l4.merge_layer[3] = new
