"""Dynamic routing for semantic segmentation (Li et al., CVPR 2020) at CPU scale, on an
ImageNet-initialised trunk.

The routing space: `layers` layers of candidate nodes at strides 4, 8, 16 and 32. Each node's cell
sums whatever reached it, applies two separable convolutions with an identity shortcut, and a
soft conditional gate (1x1 conv -> global pool -> linear -> max(0, tanh)) weighs its three
outgoing paths: up (1x1 conv, x2 bilinear), keep (identity), down (3x3 depthwise stride 2 + 1x1
conv). A gate value of exactly 0 closes the path for that image: the path is not computed (an
`if` on the gate value, in TorchScript too), and a node that nothing reaches is skipped whole. A
fixed decoder adds the last layer's outputs from coarse to fine (1x1 projections, x2 upsampling)
at stride 4 and classifies.

The paper trains its routing space from scratch on Cityscapes for 186K iterations; a 2-core CPU
cannot. Here the space's first layer is fed by EfficientNet-Lite0 (ImageNet weights, the trunk
BiSeNet's context path uses): its maps at strides 4, 8, 16 and 32, each projected by a 1x1
ConvBNReLU to the routing width of its stride, enter the four nodes of layer 0 (the paper's
space opens as a triangle from one stride-4 stem node; here every node of the first layer has
an input, so the gates choose among all scales from the start). The trunk always runs; the
routing space is where per-image computation is saved.

Training adds the paper's budget term: the expected cost of the routing space,
    C = sum_cells a_cell * C(cell) + sum_paths g_path * C(path),
with a_cell = min(1, sum of the gates reaching it) (1 for the first layer's nodes) and costs in
multiply-accumulates per input pixel, normalised by the cost with every gate open;
L_budget = (C / C_max - mu)^2.

Skipping happens per batch: a path runs when its gate is open for any image of the batch (the
element runs batch 1, so per frame), multiplied by the per-image gate value either way.

forward returns (logits at the input size, features = the decoder's fused map, 64 ch, stride 4).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import ConvBN, ConvBNReLU, conv_macs, outputs, pad_to_multiple, upsample
from .efficientnet_lite import EfficientNetLite0, load_imagenet

FEATURE_STRIDE = 4
STRIDES = (4, 8, 16, 32)
UP, KEEP, DOWN = 0, 1, 2


def _add(a: Optional[Tensor], b: Optional[Tensor]) -> Optional[Tensor]:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


class SepConv(nn.Sequential):
    def __init__(self, c: int):
        super().__init__(ConvBN(c, c, 3, groups=c), ConvBNReLU(c, c, 1))


class Cell(nn.Module):
    """One candidate node: cell operation, soft conditional gate, and its outgoing paths."""

    def __init__(self, channels: Tuple[int, ...], level: int, gate_width: int = 16):
        super().__init__()
        c = channels[level]
        self.has_up = level > 0
        self.has_down = level < len(channels) - 1
        self.op = nn.Sequential(SepConv(c), SepConv(c))
        self.gate_conv = ConvBNReLU(c, gate_width, 1)
        self.gate_fc = nn.Linear(gate_width, 3)
        nn.init.zeros_(self.gate_fc.weight)
        nn.init.constant_(self.gate_fc.bias, 1.5)  # every path starts open (tanh(1.5) = 0.9)
        self.up = ConvBNReLU(c, channels[level - 1], 1) if self.has_up else nn.Identity()
        self.down = (
            nn.Sequential(ConvBN(c, c, 3, 2, groups=c), ConvBNReLU(c, channels[level + 1], 1))
            if self.has_down
            else nn.Identity()
        )
        mask = [1.0 if self.has_up else 0.0, 1.0, 1.0 if self.has_down else 0.0]
        self.register_buffer("path_mask", torch.tensor(mask), persistent=False)

    def gates(self, y: Tensor) -> Tensor:
        """[N, 3] gate values (up, keep, down) in [0, 1); 0 = closed."""
        pooled = self.gate_conv(y).mean(dim=(2, 3))
        return F.relu(torch.tanh(self.gate_fc(pooled))) * self.path_mask

    def forward(self, h: Tensor) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor], Tensor]:
        y = h + self.op(h)
        g = self.gates(y)
        up: Optional[Tensor] = None
        keep: Optional[Tensor] = None
        down: Optional[Tensor] = None
        # Columns 0, 1, 2 = UP, KEEP, DOWN (literals: TorchScript reads no module globals).
        if self.has_up and bool((g[:, 0] > 0).any()):
            t = self.up(y)
            up = upsample(t, 2 * t.shape[2], 2 * t.shape[3]) * g[:, 0].view(-1, 1, 1, 1)
        if bool((g[:, 1] > 0).any()):
            keep = y * g[:, 1].view(-1, 1, 1, 1)
        if self.has_down and bool((g[:, 2] > 0).any()):
            down = self.down(y) * g[:, 2].view(-1, 1, 1, 1)
        return up, keep, down, g


class RoutingLayer(nn.Module):
    def __init__(self, channels: Tuple[int, ...], gate_width: int):
        super().__init__()
        self.cells = nn.ModuleList([Cell(channels, i, gate_width) for i in range(len(channels))])

    def forward(self, inputs: List[Optional[Tensor]], like: Tensor) -> Tuple[List[Optional[Tensor]], Tensor]:
        """Next layer's node inputs (None = nothing reached the node) and the gates [N, 4, 3]
        (zeros for skipped nodes)."""
        n = like.shape[0]
        outs: List[Optional[Tensor]] = [None, None, None, None]
        gates: List[Tensor] = []
        for i, cell in enumerate(self.cells):
            x = inputs[i]
            if x is None:
                gates.append(torch.zeros(n, 3, dtype=like.dtype, device=like.device))
            else:
                up, keep, down, g = cell(x)
                gates.append(g)
                outs[i] = _add(outs[i], keep)
                if up is not None:
                    outs[i - 1] = _add(outs[i - 1], up)
                if down is not None:
                    outs[i + 1] = _add(outs[i + 1], down)
        return outs, torch.stack(gates, 1)


class DynamicRouting(nn.Module):
    """No `aux_weights`: run()'s extra outputs are the gates, which feed `budget_loss`."""

    def __init__(
        self,
        classes: int = 11,
        channels: Tuple[int, int, int, int] = (32, 64, 128, 256),
        layers: int = 4,
        gate_width: int = 16,
        decoder_width: int = 64,
    ):
        super().__init__()
        self.backbone = EfficientNetLite0()
        self.entry = nn.ModuleList([ConvBNReLU(a, b, 1) for a, b in zip(self.backbone.channels, channels)])
        self.layers = nn.ModuleList([RoutingLayer(channels, gate_width) for _ in range(layers)])
        self.project = nn.ModuleList([ConvBNReLU(c, decoder_width, 1) for c in channels])
        self.fuse = SepConv(decoder_width)
        self.classifier = nn.Conv2d(decoder_width, classes, 1)
        self.decoder_width = decoder_width
        self.feature_stride = FEATURE_STRIDE
        cell_costs, path_costs = self._cost_table()
        self.register_buffer("cell_costs", cell_costs, persistent=False)
        self.register_buffer("path_costs", path_costs, persistent=False)

    def imagenet_init(self) -> None:
        """Starts the trunk from EfficientNet-Lite0's ImageNet weights (training only)."""
        load_imagenet(self.backbone)

    def _cost_table(self) -> Tuple[Tensor, Tensor]:
        """MACs per input pixel: cells [L, 4] (cell op + gate), paths [L, 4, 3] (up, keep, down)."""
        layers = len(self.layers)
        cells = torch.zeros(layers, len(STRIDES))
        paths = torch.zeros(layers, len(STRIDES), 3)
        for li, layer in enumerate(self.layers):
            for si, cell in enumerate(layer.cells):
                area = float(STRIDES[si] ** 2)
                cells[li, si] = (conv_macs(cell.op) + conv_macs(cell.gate_conv)) / area
                if cell.has_up:
                    paths[li, si, UP] = conv_macs(cell.up) / area
                if cell.has_down:
                    paths[li, si, DOWN] = conv_macs(cell.down) / (4.0 * area)
        return cells, paths

    def run(self, x: Tensor, aux: bool) -> Tuple[Tensor, Tensor, List[Tensor]]:
        """(logits, features, the gates of every layer [N, 4, 3] when `aux`)."""
        x, h, w = pad_to_multiple(x)
        s4, s8, s16, s32 = self.backbone(x)
        nodes: List[Optional[Tensor]] = [
            self.entry[0](s4),
            self.entry[1](s8),
            self.entry[2](s16),
            self.entry[3](s32),
        ]
        gates: List[Tensor] = []
        for layer in self.layers:
            nodes, g = layer(nodes, x)
            gates.append(g)
        projected: List[Optional[Tensor]] = []
        for i, project in enumerate(self.project):
            node = nodes[i]
            projected.append(project(node) if node is not None else None)
        acc: Optional[Tensor] = None
        for i in range(len(projected) - 1, -1, -1):
            p = projected[i]
            if p is not None:
                acc = p if acc is None else upsample(acc, p.shape[2], p.shape[3]) + p
        fh, fw = x.shape[2] // self.feature_stride, x.shape[3] // self.feature_stride
        if acc is None:  # every last-layer path closed for every image
            acc = torch.zeros(x.shape[0], self.decoder_width, fh, fw, dtype=x.dtype, device=x.device)
        elif acc.shape[2] != fh:
            acc = upsample(acc, fh, fw)
        features = self.fuse(acc)
        logits, features = outputs(self.classifier(features), features, x, h, w, self.feature_stride)
        return logits, features, gates if aux else []

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        logits, features, _ = self.run(x, False)
        return logits, features

    def expected_cost(self, gates: List[Tensor]) -> Tensor:
        """[N] expected routing-space cost / the cost with every gate open (see the module doc)."""
        g = torch.stack(gates, 1)  # [N, L, 4, 3]
        n, layers = g.shape[0], g.shape[1]
        activity = torch.zeros(n, layers, len(STRIDES), dtype=g.dtype, device=g.device)
        activity[:, 0] = 1.0
        for li in range(1, layers):
            prev = g[:, li - 1]
            incoming = prev[:, :, KEEP].clone()
            incoming[:, :-1] = incoming[:, :-1] + prev[:, 1:, UP]
            incoming[:, 1:] = incoming[:, 1:] + prev[:, :-1, DOWN]
            activity[:, li] = incoming.clamp(max=1.0)
        cost = (activity * self.cell_costs).sum((1, 2)) + (g * self.path_costs).sum((1, 2, 3))
        return cost / self.max_cost()

    def max_cost(self) -> Tensor:
        """Routing-space cost with every gate fully open (every node of every layer runs)."""
        return self.cell_costs.sum() + self.path_costs.sum()

    def budget_loss(self, gates: List[Tensor], target: float) -> Tuple[Tensor, Tensor]:
        """((mean expected cost ratio - target)^2, mean expected cost ratio)."""
        ratio = self.expected_cost(gates).mean()
        return (ratio - target) ** 2, ratio
