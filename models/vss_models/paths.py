"""Where the models package finds the project's shared data and its shipped bundles."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

MODELS_DIR = Path(__file__).resolve().parent.parent
BUNDLES_DIR = MODELS_DIR / "bundles"
CACHE_DIR = MODELS_DIR / ".cache"  # git-ignored scratch space
MODEL_PATH_ENV = "VSS_MODEL_PATH"
DATA_SUBDIR = Path("vss") / "models"


def bundle_dirs() -> List[Path]:
    """Folders holding bundles by name, in the Rust plugin's search order (src/model/bundle.rs):
    each folder of $VSS_MODEL_PATH, then vss/models under $XDG_DATA_HOME (default
    ~/.local/share) and under each folder of $XDG_DATA_DIRS (default /usr/local/share:/usr/share).
    Without $VSS_MODEL_PATH the checkout's models/bundles comes first, as .cargo/config.toml
    makes it for cargo."""
    model_path = os.environ.get(MODEL_PATH_ENV)
    dirs = [Path(d) for d in model_path.split(os.pathsep) if d] if model_path else [BUNDLES_DIR]
    data_home = Path(os.environ.get("XDG_DATA_HOME") or "")
    if not data_home.is_absolute():
        home = os.environ.get("HOME")
        data_home = Path(home) / ".local" / "share" if home else None
    data_dirs = (os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share").split(":")
    for data in [data_home, *map(Path, data_dirs)]:
        if data is not None and data.is_absolute():
            dirs.append(data / DATA_SUBDIR)
    return list(dict.fromkeys(dirs))


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
