"""Shared fixtures: the shared data folder is required in CI and optional elsewhere."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

MODELS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(MODELS))

from vss_models import camvid, paths  # noqa: E402

torch.set_num_threads(2)


def require(path: Path, what: str) -> None:
    """Skips when shared data is missing, but fails loudly in CI (CI=true) so that a broken data
    mount cannot turn the suite green."""
    if path.exists():
        return
    message = f"{what} not found at {path} (set VSS_DATA to the shared data folder)"
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def camvid_test_pairs():
    require(paths.camvid_dir() / "test.txt", "CamVid")
    return camvid.split_pairs("test")


@pytest.fixture(scope="session")
def first_test_frame(camvid_test_pairs):
    """The first CamVid test frame, HxWx3 uint8 RGB."""
    image_path, _ = camvid_test_pairs[0]
    require(image_path, "CamVid test frame")
    return camvid.read_image(image_path)


@pytest.fixture(scope="session")
def weights_available():
    require(paths.weights_dir(), "published weights")
