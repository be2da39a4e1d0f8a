"""The `tdnet` bundle scheme: TDNet-style temporally distributed segmentation (Hu et al., CVPR
2020) on ESPNet pieces.

TDNet splits a deep network's work over consecutive frames: N shallow sub-networks run round
robin, one per frame, and an attention propagation module (APM) lets the current frame's
features read the previous frames', so that N frames together see about one deep network's
worth of features at the cost of one shallow sub-network per frame. No keyframes: every frame
costs the same (flat latency), which is the point.

Here (N = 2, CPU scale):
- Every frame runs ESPNet's stride-2/4 stem (`level1`, `level2`, the stride-8 `level3_0`) and
  **one** sub-network: half of ESPNet's eight stride-8 ESP blocks, `sub[t % N]`. Sub-network 0
  starts from the pretrained blocks 0-3, sub-network 1 from blocks 4-7 (camvid-espnet), so each
  frame runs 4 of the 8 blocks that dominate ESPNet's cost.
- APM on the stride-8 map (256 channels = ESPNet's `b3` output): Q and K are 1x1 convolutions
  to 64 channels, V the map itself; the memory holds the previous frame's K and V average-pooled
  with stride 4, so the attention of a 45x60 map reads 12x15 past positions. The output is
  `features + gamma * attention` (gamma learnt, 0 at the start: the network starts as a
  single-frame one). Attention is chained frame to frame (the memory is rebuilt from the fused
  map, so older frames reach the current one through the previous one), not all pairs.
- ESPNet's RUM decoder (pretrained) turns the current frame's stride-2/4 maps and the fused
  stride-8 map into logits at the input resolution.

Distillation from camvid-cgnet (the teacher), in `models/train_tdnet.py`: cross entropy on the
labels, KL to the teacher's logits at a temperature, and TDNet's grouped knowledge distillation:
the teacher's 256-channel stride-8 feature map is split into N channel groups, sub-network i's
own stride-8 map (`step_parts`, before the attention) learns group i through a 1x1 adapter, and
the fused map learns the whole teacher map through another. The adapters exist only in
training (CGNet's channels have no counterpart in ESPNet's); the bundle is unchanged by them.

Bundle method (the element calls it once per frame):

    step(img, slot, memory) -> (logits, features, memory')
      img      uint8 [1, 3, H, W] RGB
      slot     int, frames since the last reset modulo N: which sub-network runs
      memory   List[Tensor]: [] right after a reset, else what the previous step returned
               ([K [1, 64, h, w], V [1, 256, h, w]], the previous frame's pooled keys/values)
      logits   float32 [1, K, H, W]; features: float32 [1, 256, H/8, W/8] (the fused map)

`forward(img)` = `step(img, 0, [])[:2]`, so every path that runs an image bundle runs this one.
"""

from __future__ import annotations

import copy
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .espnet import ESPNet, image_pyramid_level

SUBNETWORKS = 2
KEY_CHANNELS = 64
POOL = 4


class APM(nn.Module):
    """Attention propagation from the previous frame's pooled keys and values."""

    def __init__(self, channels: int, key_channels: int = KEY_CHANNELS, pool: int = POOL):
        super().__init__()
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.pool = pool
        self.scale = key_channels**-0.5
        self.gamma = nn.Parameter(torch.zeros(1))

    def memory_of(self, features: Tensor) -> List[Tensor]:
        """What this frame leaves for the next: its keys and values, pooled."""
        k = F.avg_pool2d(self.key(features), self.pool, self.pool, ceil_mode=True)
        v = F.avg_pool2d(features, self.pool, self.pool, ceil_mode=True)
        return [k, v]

    def forward(self, features: Tensor, memory: List[Tensor]) -> Tensor:
        if len(memory) != 2:
            return features
        k, v = memory[0], memory[1]
        n, c, h, w = features.shape
        q = self.query(features).flatten(2).transpose(1, 2)  # n, hw, ck
        attn = torch.softmax(torch.bmm(q, k.flatten(2)) * self.scale, -1)  # n, hw, past
        out = torch.bmm(v.flatten(2), attn.transpose(1, 2))  # n, c, hw
        return features + self.gamma * out.view(n, c, h, w)


class TDNet(nn.Module):
    """ESPNet stem + N sub-networks of stride-8 ESP blocks + APM + ESPNet's decoder."""

    def __init__(self, base: ESPNet, subnetworks: int = SUBNETWORKS):
        super().__init__()
        enc = base.encoder
        blocks = len(enc.level3)
        if blocks % subnetworks != 0:
            raise ValueError(f"{blocks} stride-8 blocks do not split into {subnetworks} sub-networks")
        per = blocks // subnetworks
        self.level1, self.b1 = enc.level1, enc.b1
        self.level2_0, self.level2, self.b2 = enc.level2_0, enc.level2, enc.b2
        self.level3_0 = enc.level3_0
        self.subnets = nn.ModuleList(
            [
                nn.Sequential(*[copy.deepcopy(enc.level3[i * per + j]) for j in range(per)])
                for i in range(subnetworks)
            ]
        )
        self.b3 = enc.b3
        self.encoder_classifier = enc.classifier
        self.level3_C, self.br, self.conv = base.level3_C, base.br, base.conv
        self.up_l3, self.combine_l2_l3, self.up_l2 = base.up_l3, base.combine_l2_l3, base.up_l2
        self.classifier = base.classifier
        self.apm = APM(self.b3.bn.num_features)
        self.subnetworks = subnetworks

    def stem(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """ESPNet's stride-2 and stride-4 maps and the stride-8 down-sampled map."""
        img2 = image_pyramid_level(x, 1)
        img4 = F.avg_pool2d(img2, 3, 2, 1)
        s2 = self.b1(torch.cat([self.level1(x), img2], 1))
        down4 = self.level2_0(s2)
        y = down4
        for block in self.level2:
            y = block(y)
        s4 = self.b2(torch.cat([y, down4, img4], 1))
        return s2, s4, self.level3_0(s4)

    def sub(self, slot: int, down8: Tensor) -> Tensor:
        """Sub-network `slot` (TorchScript needs a literal loop to index a ModuleList)."""
        y = down8
        for i, net in enumerate(self.subnets):
            if i == slot:
                y = net(down8)
        return self.b3(torch.cat([down8, y], 1))

    def decode(self, s2: Tensor, s4: Tensor, s8: Tensor) -> Tensor:
        up8 = self.up_l3(self.br(self.encoder_classifier(s8)))
        up4 = self.up_l2(self.combine_l2_l3(torch.cat([self.level3_C(s4), up8], 1)))
        return self.classifier(self.conv(torch.cat([up4, s2], 1)))

    def step(self, x: Tensor, slot: int, memory: List[Tensor]) -> Tuple[Tensor, Tensor, List[Tensor]]:
        logits, fused, memory, _ = self.step_parts(x, slot, memory)
        return logits, fused, memory

    def step_parts(
        self, x: Tensor, slot: int, memory: List[Tensor]
    ) -> Tuple[Tensor, Tensor, List[Tensor], Tensor]:
        """`step` and the sub-network's own stride-8 map before the attention (what grouped
        distillation trains against its group of the teacher's channels)."""
        s2, s4, down8 = self.stem(x)
        s8 = self.sub(slot % self.subnetworks, down8)
        fused = self.apm(s8, memory)
        return self.decode(s2, s4, fused), fused, self.apm.memory_of(fused), s8

    def keep_classes(self, keep: List[int]) -> None:
        old = self.classifier
        new = nn.ConvTranspose2d(old.in_channels, len(keep), 2, 2, bias=False)
        new.weight.data = old.weight.data[:, keep].clone()
        self.classifier = new


class TDNetSegmenter(nn.Module):
    """The `tdnet` bundle module: uint8 RGB frames in, preprocessing inside (as ImageSegmenter)."""

    def __init__(self, net: TDNet, channel_order: List[int], mean: List[float], std: List[float]):
        super().__init__()
        self.net = net
        self.reorder = channel_order != [0, 1, 2]
        self.register_buffer("order", torch.tensor(channel_order, dtype=torch.long))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def normalize(self, img: Tensor) -> Tensor:
        x = img.to(torch.float32)
        if self.reorder:
            x = x.index_select(1, self.order)
        return (x - self.mean) / self.std

    def forward(self, img: Tensor) -> Tuple[Tensor, Tensor]:
        logits, features, _ = self.step(img, 0, [])
        return logits, features

    @torch.jit.export
    def step(self, img: Tensor, slot: int, memory: List[Tensor]) -> Tuple[Tensor, Tensor, List[Tensor]]:
        logits, features, memory = self.net.step(self.normalize(img), slot, memory)
        return logits.contiguous(), features.contiguous(), memory
