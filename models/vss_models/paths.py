"""Where the models package finds the project's shared data and its shipped bundles."""

from __future__ import annotations

import os
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent.parent
BUNDLES_DIR = MODELS_DIR / "bundles"
CACHE_DIR = MODELS_DIR / ".cache"  # git-ignored scratch space


def data_dir() -> Path:
    """The read-only shared data folder: $VSS_DATA, else ../shared/data beside the repository."""
    env = os.environ.get("VSS_DATA")
    if env:
        return Path(env)
    return MODELS_DIR.parent.parent / "shared" / "data"


def weights_dir() -> Path:
    return data_dir() / "weights"


def camvid_dir() -> Path:
    return data_dir() / "camvid"
