"""camvid-real generator: the val sequence in time order, four encodes with the GOPs they name,
labels equal to CamVid's, and a second run that leaves a complete folder alone."""

from __future__ import annotations

import json
import shutil

import av
import numpy as np
import pytest
from conftest import require
from PIL import Image
from vss_models import camvid, camvid_real, paths


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    if shutil.which("gst-launch-1.0") is None:
        pytest.skip("gst-launch-1.0 not installed")
    require(paths.camvid_dir() / "val.txt", "CamVid")
    out = tmp_path_factory.mktemp("camvid-real")
    seq_dir, made = camvid_real.generate(out)
    return out, seq_dir, made


def picture_types(path):
    with av.open(str(path)) as container:
        return "".join("?IPB"[int(frame.pict_type)] for frame in container.decode(video=0))


def test_frames_are_the_val_sequence_in_order():
    require(paths.camvid_dir() / "val.txt", "CamVid")
    pairs = camvid_real.frames()
    assert len(pairs) == 101
    names = [p[0].name for p in pairs]
    assert names == sorted(names) and all(n.startswith("0016E5_") for n in names)
    # Every second frame of the 30 Hz camera: 15 Hz.
    numbers = [int(n.split("_")[1].split(".")[0]) for n in names]
    assert set(np.diff(numbers)) == {2}


def test_encodes_have_the_gop_and_frame_types_they_name(generated):
    _, seq_dir, made = generated
    assert made
    for name in camvid_real.ENCODES:
        types = picture_types(seq_dir / f"{name}.mp4")
        assert len(types) == 101, name
        gop = int(name[1:])
        assert [i for i, t in enumerate(types) if t == "I"] == list(range(0, 101, gop)), name
        assert ("B" in types) == name.startswith("b"), name


def test_labels_are_camvids(generated):
    _, seq_dir, _ = generated
    pairs = camvid_real.frames()
    for i in (0, 50, 100):
        ours = np.asarray(Image.open(seq_dir / "labels" / f"{i:06d}.png"))
        assert np.array_equal(ours, camvid.read_label(pairs[i][1]))
    meta = json.loads((seq_dir / "meta.json").read_text())
    assert meta["dataset"] == "camvid-real" and meta["frames"] == 101


def test_a_complete_folder_is_left_alone(generated):
    out, seq_dir, _ = generated
    before = {p: p.stat().st_mtime_ns for p in seq_dir.rglob("*") if p.is_file()}
    again, made = camvid_real.generate(out)
    assert again == seq_dir and not made
    assert before == {p: p.stat().st_mtime_ns for p in seq_dir.rglob("*") if p.is_file()}
