"""The numpy motion field (vss_models.motion) equals the Rust one on the golden fixture."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vss_models import motion  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "motion_golden.json"
TOLERANCE = 1e-5

# The dtype PyAV's MOTION_VECTORS side data has (FFmpeg's AVMotionVector).
PYAV_DTYPE = np.dtype(
    {
        "names": [
            "source",
            "w",
            "h",
            "src_x",
            "src_y",
            "dst_x",
            "dst_y",
            "flags",
            "motion_x",
            "motion_y",
            "motion_scale",
        ],
        "formats": ["<i4", "u1", "u1", "<i2", "<i2", "<i2", "<i2", "<u8", "<i4", "<i4", "<u2"],
        "offsets": [0, 4, 5, 6, 8, 10, 12, 16, 24, 28, 32],
        "itemsize": 40,
    }
)


@pytest.fixture(scope="module")
def golden():
    return json.loads(FIXTURE.read_text())


def _shape(golden):
    cell = golden["cell"]
    return -(-golden["height"] // cell), -(-golden["width"] // cell)


def _check_field(what, field, want, shape):
    np.testing.assert_allclose(field.dx, np.reshape(want["dx"], shape), atol=TOLERANCE, err_msg=f"{what}.dx")
    np.testing.assert_allclose(field.dy, np.reshape(want["dy"], shape), atol=TOLERANCE, err_msg=f"{what}.dy")
    np.testing.assert_array_equal(
        field.uncovered, np.reshape(want["uncovered"], shape) == 1, err_msg=f"{what}.uncovered"
    )


def _accumulated(golden, as_pyav=False):
    size = (golden["width"], golden["height"], golden["cell"])
    accumulated = motion.zero_field(*size)
    for frame in golden["frames"]:
        vectors = frame["vectors"]
        if as_pyav:
            vectors = np.array(
                [tuple(v.get(name, 0) for name in PYAV_DTYPE.names) for v in vectors], dtype=PYAV_DTYPE
            )
        step = motion.paint(vectors, *size)
        accumulated = motion.accumulate(accumulated, step)
        yield frame, step, accumulated


def test_paint_accumulate_and_stats_match_rust(golden):
    shape = _shape(golden)
    for t, (frame, step, accumulated) in enumerate(_accumulated(golden)):
        _check_field(f"frames[{t}].step", step, frame["step"], shape)
        _check_field(f"frames[{t}].accumulated", accumulated, frame["accumulated"], shape)
        stats = motion.field_stats(accumulated)
        for key, value in frame["stats"].items():
            assert stats[key] == pytest.approx(value, abs=TOLERANCE), key


def test_pyav_structured_vectors_paint_the_same(golden):
    shape = _shape(golden)
    for t, (frame, step, accumulated) in enumerate(_accumulated(golden, as_pyav=True)):
        _check_field(f"frames[{t}].accumulated", accumulated, frame["accumulated"], shape)


def test_grid_matches_rust(golden):
    *_, (_, _, accumulated) = _accumulated(golden)
    grid = golden["grid"]
    got = motion.to_grid(accumulated, grid["height"], grid["width"])
    assert got.shape == (grid["height"], grid["width"], 2) and got.dtype == np.float32
    np.testing.assert_allclose(got.reshape(-1), grid["values"], atol=TOLERANCE)


def test_zero_field_grid_is_identity_under_grid_sample():
    torch = pytest.importorskip("torch")
    field = motion.zero_field(64, 48, 4)
    features = torch.arange(2 * 12 * 16, dtype=torch.float32).reshape(1, 2, 12, 16)
    grid = torch.from_numpy(motion.to_grid(field, 12, 16))[None]
    out = torch.nn.functional.grid_sample(features, grid, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, features, atol=1e-4, rtol=0)


def test_rust_class_map_warp_equals_torch_grid_sample(golden):
    """Rust's CPU warp (warp_class_map) is grid_sample(nearest, border) on this grid."""
    torch = pytest.importorskip("torch")
    *_, (_, _, accumulated) = _accumulated(golden)
    maps = golden["class_map"]
    h, w = maps["height"], maps["width"]
    class_map = torch.tensor(maps["map"], dtype=torch.float32).reshape(1, 1, h, w)
    grid = motion.to_grid(accumulated, h, w)
    out = torch.nn.functional.grid_sample(
        class_map,
        torch.from_numpy(grid)[None],
        mode="nearest",
        padding_mode="border",
        align_corners=False,
    )
    got = out.reshape(h, w).numpy().astype(np.int64)
    want = np.reshape(maps["warped"], (h, w))
    # Positions exactly halfway between two pixels may round either way by an ulp.
    pos_x = ((grid[..., 0] + 1) * w - 1) / 2
    pos_y = ((grid[..., 1] + 1) * h - 1) / 2
    tie = (np.abs(pos_x - np.floor(pos_x) - 0.5) < 1e-4) | (np.abs(pos_y - np.floor(pos_y) - 0.5) < 1e-4)
    mismatch = (got != want) & ~tie
    assert not mismatch.any(), np.argwhere(mismatch)[:10]
    assert (got == want).mean() > 0.9


def _global(width, height, motion_x, scale=4, block=16):
    """Past vectors covering the frame, every block displaced by motion_x / scale px."""
    return [
        {
            "source": -1,
            "w": block,
            "h": block,
            "dst_x": x + block // 2,
            "dst_y": y + block // 2,
            "motion_x": motion_x,
            "motion_y": 0,
            "motion_scale": scale,
        }
        for y in range(0, height, block)
        for x in range(0, width, block)
    ]


def test_p_frames_chain_to_the_anchor_and_b_frames_to_the_previous_frame():
    """The same I B B P B P sequence as the Rust MotionTrack test."""
    w, h = 64, 48
    one, three = _global(w, h, 4), _global(w, h, 12)
    fields = list(motion.accumulate_frames([one, one, three, one, three], w, h, 4, ["B", "B", "P", "B", "P"]))
    assert [float(f.dx[6, 8]) for f in fields] == [1.0, 2.0, 3.0, 4.0, 6.0]
    assert not any(bool(f.uncovered[6, 8]) for f in fields)
