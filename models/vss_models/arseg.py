"""The `arseg` bundle scheme: AR-Seg (Hu et al., CVPR 2023) on a keyframe network.

Keyframes run the full-resolution network (frozen, a shipped image bundle's); other frames run
the same architecture on a downscaled frame, and CReFF fuses its feature map with the
keyframe's, warped to the current frame by the codec motion accumulated back to the keyframe.
The shared classifier (frozen, the full-resolution network's) turns the fused map into logits.

The keyframe network provides `forward(x) -> (logits, features)`, `features(x)` (the map its
classifier reads) and `classify(features)` (logits at the input size). Two are used:

- ESPNet (`camvid-espnet`): the 12-channel stride-2 map that ESPNet's final 2x transposed-conv
  classifier reads. AR-Seg fuses "the final feature before the shared classifier", and this is
  ESPNet's: everything before it, including the decoder that merges the stride-4 and stride-2
  skip maps, belongs to each branch and runs on that branch's own frame, so no branch mixes skip
  maps of different resolutions or frames. The price of the late point is a thin map (12
  channels) for the attention's similarities, at 4x the positions of stride 8. With a
  0.36 M-parameter network CReFF at stride 2 costs about what the low-resolution branch saves.
- BiSeNet (`camvid-bisenet`): the 128-channel stride-8 FFM output that its head reads, as in
  the paper's BiSeNet experiments. The keyframe network is about 3x ESPNet's time and the fusion
  runs on 1/16 of the positions of the stride-2 map (measured, a non-keyframe still costs 0.62
  of a keyframe: models/README.md, "AR-Seg on BiSeNet").

CReFF (AR-Seg, CVPR 2023; models/README.md, "AR-Seg fusion"): the low-resolution map is upsampled bilinearly to
the keyframe map's size; Q = depthwise3x3(it), K and V = depthwise3x3(warped keyframe map);
for each of the 7x7 offsets the similarity is the channel sum of Q * shifted K; softmax over
the 49 offsets; output = upsampled low-res + sum of weights * shifted V. Positions outside the
image contribute similarity 0 and value 0 (zero padding). The 49 offsets are a loop over
shifted views of the padded K and V, never an unfold (49x the memory).

The gated variant (`CReFF(gated=True)`, used for BiSeNet with a 5x5 window): similarities
scaled by 1/sqrt(C) plus a learnt bias per offset (starting peaked on the centre), and the
output a learnt per-position mix g * attended + (1 - g) * low-res instead of their sum, g
starting at 0.88. Trained as the plain one, it starts at the warped keyframe map and learns
where to leave it; the plain one, with 128 channels, started below the warped map and stayed
below it (models/README.md, "AR-Seg on BiSeNet").

Warping is `warp(features, grid)`: `grid_sample` (bilinear, border padding, align_corners=False)
with the grid of `motion.to_grid` / Rust's `MotionField::to_grid`. It lives inside the module so
that training and the element run the same code.
"""

from __future__ import annotations

import copy
import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .espnet import ESPNet

WINDOW = 7


def depthwise3x3(channels: int) -> nn.Conv2d:
    """A depthwise 3x3 convolution initialised to the identity (centre tap 1, bias 0)."""
    conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=True)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, 0, 1, 1] = 1.0
        conv.bias.zero_()
    return conv


class CReFF(nn.Module):
    """Local attention of a low-resolution map over a warped keyframe map (`window` x `window`
    offsets, 7x7 by default), added to it or, `gated`, mixed with it."""

    def __init__(self, channels: int, window: int = WINDOW, value_scale: float = 1.0, gated: bool = False):
        super().__init__()
        if window % 2 != 1:
            raise ValueError(f"CReFF window must be odd, got {window}")
        self.window = window
        self.query = depthwise3x3(channels)
        self.key = depthwise3x3(channels)
        self.value = depthwise3x3(channels)
        with torch.no_grad():
            self.value.weight.mul_(value_scale)
        # `gated`: a per-position trust g = sigmoid(1x1 conv of [low, attended]) mixes the two,
        # g * attended + (1 - g) * low, instead of adding them; it starts at 0.88 everywhere
        # (zero weights, bias 2), i.e. mostly the attended keyframe map, and learns where the
        # carried map is wrong (objects that move on their own, occlusions).
        # It also divides the similarities by sqrt(channels), as dot-product attention does (an
        # unscaled dot product of 128-channel maps picks the neighbour with the largest norm,
        # not the most similar one), and adds a learnt bias per offset, starting at +5 for the
        # centre (weight ~0.86 there): the attended map starts as the warped keyframe map itself
        # rather than a mix of its neighbours.
        self.gated = gated
        self.gate = nn.Conv2d(2 * channels, 1, 1) if gated else nn.Identity()
        bias = torch.zeros(window * window)
        if gated:
            with torch.no_grad():
                self.gate.weight.zero_()
                self.gate.bias.fill_(2.0)
            bias[window * window // 2] = 5.0
            self.offset_bias = nn.Parameter(bias)
        else:
            self.register_buffer("offset_bias", bias, persistent=False)
        self.similarity_scale = 1.0 / math.sqrt(channels) if gated else 1.0

    def attention(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        """sum over offsets o of softmax_o(<q(p), k(p + o)>) * v(p + o), zeros outside."""
        r = self.window // 2
        return self.attend(query, F.pad(key, [r, r, r, r]), F.pad(value, [r, r, r, r]))

    def attend(self, query: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """The attention with K and V given `window // 2` positions wider on each side than Q
        (zeros where that lies outside the image): training crops pass real neighbours.
        Without autograd (the element) the same sums run in place: the 49 similarity maps
        written straight into one buffer, the weighted values accumulated with addcmul_."""
        if self.gated:
            query = query * self.similarity_scale
        if query.requires_grad or k.requires_grad or v.requires_grad:
            return self._attend_autograd(query, k, v)
        return self._attend_in_place(query, k, v)

    def _attend_autograd(self, query: Tensor, k: Tensor, v: Tensor) -> Tensor:
        h, w = query.shape[2], query.shape[3]
        sims: List[Tensor] = []
        for dy in range(self.window):
            for dx in range(self.window):
                sims.append((query * k[:, :, dy : dy + h, dx : dx + w]).sum(1))
        stacked = torch.stack(sims, 1)
        if self.gated:
            stacked = stacked + self.offset_bias.view(1, -1, 1, 1)
        weights = torch.softmax(stacked, 1)
        out = torch.zeros_like(query)
        i = 0
        for dy in range(self.window):
            for dx in range(self.window):
                out = out + weights[:, i : i + 1] * v[:, :, dy : dy + h, dx : dx + w]
                i += 1
        return out

    def _attend_in_place(self, query: Tensor, k: Tensor, v: Tensor) -> Tensor:
        n, h, w = query.shape[0], query.shape[2], query.shape[3]
        win = self.window
        sims = torch.empty([n, win * win, h, w], dtype=query.dtype, device=query.device)
        i = 0
        for dy in range(win):
            for dx in range(win):
                torch.sum(query * k[:, :, dy : dy + h, dx : dx + w], 1, out=sims[:, i])
                i += 1
        if self.gated:
            sims.add_(self.offset_bias.view(1, -1, 1, 1))
        weights = torch.softmax(sims, 1)
        out = torch.zeros_like(query)
        i = 0
        for dy in range(win):
            for dx in range(win):
                out.addcmul_(weights[:, i : i + 1], v[:, :, dy : dy + h, dx : dx + w])
                i += 1
        return out

    def combine(self, low: Tensor, attended: Tensor) -> Tensor:
        if self.gated:
            g = torch.sigmoid(self.gate(torch.cat([low, attended], 1)))
            return low + g * (attended - low)
        return low + attended

    def forward(self, low: Tensor, warped: Tensor) -> Tensor:
        """`low` already upsampled to `warped`'s size; both [N, C, h, w]."""
        return self.combine(low, self.attention(self.query(low), self.key(warped), self.value(warped)))

    def forward_crop(
        self, low: Tensor, warped: Tensor, top: int, left: int, height: int, width: int
    ) -> Tensor:
        """`forward(low, warped)[:, :, top:top+height, left:left+width]`, computed on the crop
        and its neighbourhood only (training: a fraction of the cost, the same numbers)."""
        r = self.window // 2
        big_h, big_w = low.shape[2], low.shape[3]
        low_p = F.pad(low, [1, 1, 1, 1])
        q = F.conv2d(
            low_p[:, :, top : top + height + 2, left : left + width + 2],
            self.query.weight,
            self.query.bias,
            groups=low.shape[1],
        )
        m = r + 1
        warped_p = F.pad(warped, [m, m, m, m])
        region = warped_p[:, :, top : top + height + 2 * m, left : left + width + 2 * m]
        k = F.conv2d(region, self.key.weight, self.key.bias, groups=low.shape[1])
        v = F.conv2d(region, self.value.weight, self.value.bias, groups=low.shape[1])
        # K and V are zero outside the image (as the padding in `attention` makes them).
        rows = torch.arange(top - r, top + height + r, device=low.device)
        cols = torch.arange(left - r, left + width + r, device=low.device)
        inside = ((rows >= 0) & (rows < big_h))[:, None] & ((cols >= 0) & (cols < big_w))[None, :]
        inside = inside.to(k.dtype)[None, None]
        low_crop = low[:, :, top : top + height, left : left + width]
        return self.combine(low_crop, self.attend(q, k * inside, v * inside))

    def attention_macs(self, channels: int, height: int, width: int) -> int:
        """Multiply-accumulates of the attention on a [1, channels, height, width] map: 49
        similarity maps and 49 weighted sums (element-wise, so FLOP counters that count
        convolutions and matrix products miss them; softmax not counted)."""
        return 2 * self.window * self.window * channels * height * width


def warp_features(features: Tensor, grid: Tensor) -> Tensor:
    """THE feature warp: `grid` [N, h, w, 2] from `motion.to_grid` (x, y in [-1, 1])."""
    return F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)


class ArsegSegmenter(nn.Module):
    """The `arseg` bundle module: uint8 RGB frames in, preprocessing inside.

    forward(img) = keyframe(img) -> (logits, features)      full resolution, frozen network
    nonkeyframe(img_lr, warped) -> (logits, fused features) low-res branch + CReFF + classifier
    warp(features, grid) -> warped features
    """

    def __init__(
        self,
        keyframe_net: nn.Module,
        lowres_net: nn.Module,
        creff: CReFF,
        channel_order: List[int],
        mean: List[float],
        std: List[float],
        channels_last: bool = False,
        low_scale: float = 1.0,
    ):
        super().__init__()
        self.keyframe_net = keyframe_net
        self.lowres_net = lowres_net
        self.creff = creff
        # A constant factor on the low-res branch's map (see `build`); 1.0 for ESPNet, whose
        # branch halves its own last BN instead.
        self.low_scale = low_scale
        self.reorder = channel_order != [0, 1, 2]
        self.register_buffer("order", torch.tensor(channel_order, dtype=torch.long))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.channels_last = channels_last

    def normalise(self, img: Tensor) -> Tensor:
        x = img.to(torch.float32)
        if self.reorder:
            x = x.index_select(1, self.order)
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, img: Tensor) -> Tuple[Tensor, Tensor]:
        return self.keyframe(img)

    @torch.jit.export
    def keyframe(self, img: Tensor) -> Tuple[Tensor, Tensor]:
        logits, features = self.keyframe_net(self.normalise(img))
        return logits.contiguous(), features.contiguous()

    @torch.jit.export
    def lowres_features(self, img_lr: Tensor, height: int, width: int) -> Tensor:
        """The low-resolution branch's map, upsampled to height x width (NCHW)."""
        low = self.lowres_net.features(self.normalise(img_lr)).contiguous()
        if self.low_scale != 1.0:
            low = low * self.low_scale
        return F.interpolate(low, size=[height, width], mode="bilinear", align_corners=False)

    @torch.jit.export
    def fuse(self, img_lr: Tensor, warped: Tensor) -> Tensor:
        low = self.lowres_features(img_lr, warped.shape[2], warped.shape[3])
        return self.creff(low, warped.contiguous())

    @torch.jit.export
    def nonkeyframe(self, img_lr: Tensor, warped: Tensor) -> Tuple[Tensor, Tensor]:
        fused = self.fuse(img_lr, warped)
        x = fused
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.keyframe_net.classify(x).contiguous(), fused

    @torch.jit.export
    def warp(self, features: Tensor, grid: Tensor) -> Tensor:
        return warp_features(features, grid)


def build(
    keyframe_net: nn.Module, channels: int, window: int = WINDOW, gated: bool = False
) -> Tuple[nn.Module, CReFF, float]:
    """A low-resolution branch (a copy of the pretrained network), a CReFF (`window` x `window`
    offsets) for its `channels`-channel map, and the constant factor on the branch's map
    (`ArsegSegmenter.low_scale`).

    `gated`: CReFF mixes instead of adding (`CReFF.combine`), starting mostly from the attended
    keyframe map; V starts as the identity and the branch's map is not scaled. Otherwise:

    Initialised so that the fused map starts as the mean of the two sources: V starts as half
    the identity and the branch's map is halved (Q and K start as the identity, so the attention
    peaks where the low-resolution map agrees with the warped one). ESPNet's branch halves its
    last BN affine (PReLU is positively homogeneous, so its output halves; the bundle then needs
    no factor); other networks get the factor 0.5 on the map, and their branch learns around it."""
    lowres = copy.deepcopy(keyframe_net)
    if gated:
        return lowres, CReFF(channels, window, value_scale=1.0, gated=True), 1.0
    low_scale = 0.5
    if isinstance(lowres, ESPNet):
        with torch.no_grad():
            lowres.conv.bn.weight.mul_(0.5)
            lowres.conv.bn.bias.mul_(0.5)
        low_scale = 1.0
    return lowres, CReFF(channels, window, value_scale=0.5), low_scale
