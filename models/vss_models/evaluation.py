"""Scores a bundle on CamVid by running its TorchScript module the way the element does:
uint8 RGB frame (resized to the inference size) in, argmax of the logits (bilinearly upsampled
to the label size when they are smaller) out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import camvid, metrics
from .bundle import Bundle
from .classes import CAMVID_CLASSES, CLASS_MAPS


@dataclass
class Evaluation:
    bundle: str
    split: str
    size: List[int]  # inference [height, width]
    class_map: Optional[str]
    images: int
    matrix: np.ndarray  # 11 x 11 CamVid confusion, void ignored
    scores: metrics.Scores
    seconds_per_frame: float  # forward + upsampling + argmax, minimum over the images


def frame_tensor(rgb: np.ndarray, size: Sequence[int]) -> torch.Tensor:
    """HxWx3 uint8 RGB -> [1,3,h,w] uint8 at `size` (PIL bilinear when it differs)."""
    h, w = size
    if rgb.shape[:2] != (h, w):
        rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR))
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).unsqueeze(0)


def class_map_for(bundle: Bundle, requested: str = "auto") -> Optional[str]:
    """The prediction mapping to CamVid's ids: 'auto' picks one from the bundle's dataset."""
    if requested == "none":
        return None
    if requested == "auto":
        if bundle.manifest["dataset"] == "camvid":
            return None
        requested = f"{bundle.manifest['dataset']}-to-camvid"
        if requested not in CLASS_MAPS:
            raise ValueError(
                f"bundle {bundle.name} predicts {bundle.manifest['dataset']} classes and no mapping "
                f"to CamVid exists (known: {list(CLASS_MAPS)})"
            )
    if requested not in CLASS_MAPS:
        raise ValueError(f"unknown class map {requested!r} (known: {list(CLASS_MAPS)})")
    if len(CLASS_MAPS[requested]) != bundle.num_classes:
        raise ValueError(
            f"class map {requested} maps {len(CLASS_MAPS[requested])} classes; "
            f"bundle {bundle.name} has {bundle.num_classes}"
        )
    return requested


def predict(module, frame: torch.Tensor, out_hw: Sequence[int]) -> np.ndarray:
    """Class ids (H, W) at `out_hw` from the module's logits."""
    with torch.inference_mode():
        logits, _ = module(frame)
        if list(logits.shape[2:]) != list(out_hw):
            logits = F.interpolate(logits, size=list(out_hw), mode="bilinear", align_corners=False)
        # max's indices, not argmax: the same ids (first maximum on ties), but libtorch's CPU
        # argmax over the class dim of 11x360x480 logits takes ~28 ms, max ~2 ms.
        return logits[0].max(0).indices.to(torch.uint8).numpy()


def evaluate(
    bundle: Bundle,
    split: str = "test",
    limit: Optional[int] = None,
    size: Optional[Sequence[int]] = None,
    class_map: str = "auto",
    on_image: Optional[Callable[[int, Path, np.ndarray, np.ndarray], None]] = None,
    progress: bool = False,
) -> Evaluation:
    """Confusion matrix and scores over the first `limit` images of a CamVid split.
    `on_image(index, image_path, label, prediction)` sees every CamVid-id prediction."""
    if bundle.manifest["scheme"] != "image":
        raise ValueError(f"bundle {bundle.name}: evaluation supports scheme 'image' only")
    size = list(size) if size else bundle.native_size
    m = bundle.size_multiple
    if size[0] % m or size[1] % m:
        raise ValueError(f"size {size[0]}x{size[1]} is not a multiple of {m} (bundle {bundle.name})")
    mapping_name = class_map_for(bundle, class_map)
    lookup = np.array(CLASS_MAPS[mapping_name], np.uint8) if mapping_name else None
    if lookup is None and bundle.num_classes != len(CAMVID_CLASSES):
        raise ValueError(
            f"bundle {bundle.name} has {bundle.num_classes} classes, CamVid 11: pass a class map"
        )

    pairs = camvid.split_pairs(split)[:limit]
    module = bundle.load_module()
    n = len(CAMVID_CLASSES)
    matrix = np.zeros((n, n), np.int64)
    fastest = float("inf")
    iterator = pairs
    if progress:
        from tqdm import tqdm

        iterator = tqdm(pairs, desc=f"{bundle.name} {split}", unit="img")
    for index, (image_path, label_path) in enumerate(iterator):
        rgb = camvid.read_image(image_path)
        label = camvid.read_label(label_path)
        frame = frame_tensor(rgb, size)
        start = time.perf_counter()
        pred = predict(module, frame, label.shape)
        fastest = min(fastest, time.perf_counter() - start)
        if lookup is not None:
            pred = lookup[pred]
        matrix += metrics.confusion(label, pred, n)
        if on_image is not None:
            on_image(index, image_path, label, pred)
    return Evaluation(
        bundle=bundle.name,
        split=split,
        size=size,
        class_map=mapping_name,
        images=len(pairs),
        matrix=matrix,
        scores=metrics.scores(matrix),
        seconds_per_frame=fastest,
    )
