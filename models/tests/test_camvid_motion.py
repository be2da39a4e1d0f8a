"""camvid-motion generator: deterministic, exact labels, the GOP structure the evaluation needs."""

from __future__ import annotations

import json
import shutil

import av
import numpy as np
import pytest
from conftest import require
from PIL import Image
from vss_models import camvid_motion, paths

FRAMES = 26  # I-frames at 0, 12, 24


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, camvid_test_pairs):
    if shutil.which("gst-launch-1.0") is None:
        pytest.skip("gst-launch-1.0 not installed")
    root = paths.camvid_dir()
    spec = camvid_motion.sequence_spec("test", 1, 0, FRAMES, camvid_test_pairs)
    require(root / spec["image"], "CamVid test frame")
    dirs = []
    for run in ("a", "b"):
        seq_dir = tmp_path_factory.mktemp(run) / "001"
        camvid_motion.generate_sequence(seq_dir, spec, root)
        dirs.append(seq_dir)
    return spec, dirs


def picture_types(path):
    with av.open(str(path)) as container:
        return "".join("?IPB"[int(frame.pict_type)] for frame in container.decode(video=0))


def test_two_runs_are_identical(two_runs):
    _, (a, b) = two_runs
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert len([f for f in files if f.parts[0] == "labels"]) == FRAMES
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_labels_are_class_ids(two_runs):
    spec, (seq_dir, _) = two_runs
    source = np.asarray(Image.open(paths.camvid_dir() / spec["label"]))
    for i in range(FRAMES):
        label = np.asarray(Image.open(seq_dir / "labels" / f"{i:06d}.png"))
        assert label.shape == (camvid_motion.HEIGHT, camvid_motion.WIDTH)
        assert label.max() <= 11
        # Every id comes from the source image (objects are cut from it too).
        assert set(np.unique(label)) <= set(np.unique(source))


def test_gop_structure(two_runs):
    _, (seq_dir, _) = two_runs
    p = picture_types(seq_dir / "p.mp4")
    assert len(p) == FRAMES
    assert [i for i, t in enumerate(p) if t == "I"] == [0, 12, 24]
    assert set(p) == {"I", "P"}
    b = picture_types(seq_dir / "b.mp4")
    assert len(b) == FRAMES
    assert [i for i, t in enumerate(b) if t == "I"] == [0, 12, 24]
    assert "B" in b


def test_first_frame_matches_the_camera_model(two_runs):
    """The rendered labels follow meta.json's camera transform (objects aside)."""
    spec, (seq_dir, _) = two_runs
    meta = json.loads((seq_dir / "meta.json").read_text())
    source = np.asarray(Image.open(paths.camvid_dir() / spec["label"]))
    label = np.asarray(Image.open(seq_dir / "labels" / "000000.png"))
    a = np.asarray(meta["transforms"]["camera"][0])
    ys, xs = np.mgrid[5:360:40, 5:480:40]
    q = a @ np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5, np.ones(xs.size)])
    assert (q[0] >= 0).all() and (q[0] <= 480).all() and (q[1] >= 0).all() and (q[1] <= 360).all()
    expected = source[np.floor(q[1]).astype(int), np.floor(q[0]).astype(int)]
    agree = (expected == label[ys.ravel(), xs.ravel()]).mean()
    assert agree > 0.9, agree  # objects and exact-boundary rounding make up the rest
