"""The `image` bundle scheme as a module: uint8 RGB frame in, (logits, features) out.

All preprocessing lives here so that callers (the Rust element, evaluate.py) hand over raw
frames: float conversion, channel order, per-channel (x - mean) / std in 0..255 pixel units.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn


class ImageSegmenter(nn.Module):
    def __init__(
        self,
        net: nn.Module,
        channel_order: List[int],
        mean: List[float],
        std: List[float],
        channels_last: bool = False,
    ):
        """`channel_order` picks the network's input channels from RGB (e.g. [2, 1, 0] = BGR);
        `mean` and `std` are in that order, in 0..255 units."""
        super().__init__()
        self.net = net
        self.reorder = channel_order != [0, 1, 2]
        self.register_buffer("order", torch.tensor(channel_order, dtype=torch.long))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.channels_last = channels_last

    def normalize(self, img: Tensor) -> Tensor:
        """The network's input from uint8 (or 0..255 float) RGB: the one definition that
        training (train_image.py) and the bundle share."""
        x = img.to(torch.float32)
        if self.reorder:
            x = x.index_select(1, self.order)
        return (x - self.mean) / self.std

    def forward(self, img: Tensor) -> Tuple[Tensor, Tensor]:
        x = self.normalize(img)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits, features = self.net(x)
        # Hand back plain NCHW tensors whatever layout ran inside.
        return logits.contiguous(), features.contiguous()
