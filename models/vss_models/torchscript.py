"""From published weights to the module a bundle ships: eager wrapper, TorchScript, frozen."""

from __future__ import annotations

import torch
from torch import nn

from . import zoo
from .image_module import ImageSegmenter


def image_module(spec: zoo.BundleSpec, channels_last: bool = True) -> ImageSegmenter:
    """The eager bundle module: preprocessing + network with its published weights, restricted
    to the bundle's classes, in eval mode (weights in channels_last when `channels_last`)."""
    net = zoo.load_network(spec)
    if spec.keep_channels is not None:
        net.keep_classes(spec.keep_channels)
    p = spec.preprocessing
    module = ImageSegmenter(net, p.channel_order, p.mean, p.std, channels_last=channels_last)
    module.eval()
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module


def to_torchscript(module: nn.Module, freeze: bool = True) -> torch.jit.ScriptModule:
    """Scripted (not traced: ESPNetv2's pyramid pooling sizes depend on the input), then frozen:
    weights become constants and conv+BN pairs fold. Still accepts any input size."""
    scripted = torch.jit.script(module.eval())
    return torch.jit.freeze(scripted) if freeze else scripted
