"""Motion field twin of src/motion/field.rs: paint codec vectors, accumulate, make the warp grid.

Training warps keyframe features exactly as the element does at inference: this module is the
numpy copy of the Rust definition, tested equal on tests/fixtures/motion_golden.json (written
by the Rust code) in models/tests/test_motion_twin.py. Change both or neither.

Conventions (see the doc of src/motion/field.rs):
- Pixel i spans [i, i + 1). The frame (width x height) is covered by cells of `cell` pixels,
  cols = ceil(width / cell), rows = ceil(height / cell); cell (c, r) stands for its centre
  ((c + 0.5) * cell, (r + 0.5) * cell); "outside" means outside [0, cols*cell) x [0, rows*cell).
- A cell holds a backward displacement (dx, dy) in pixels, FFmpeg's convention
  src = dst + motion / motion_scale: content at p in this frame was at p + (dx, dy) in the
  reference.
- Sampling between cell centres is bilinear, clamped to the outermost centres; a pixel
  position x sits at u = x / cell - 0.5 in cell units.

All arithmetic is float32 in the same order as the Rust code, so results agree to the last bit
or nearly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Tuple

import numpy as np

F32 = np.float32

_NONE, _FUTURE, _PAST = 0, 1, 2


@dataclass
class MotionField:
    """Displacement per cell ([rows, cols] float32 dx, dy) and the uncovered flags (bool)."""

    width: int
    height: int
    cell: int
    dx: np.ndarray
    dy: np.ndarray
    uncovered: np.ndarray

    @property
    def cols(self) -> int:
        return self.dx.shape[1]

    @property
    def rows(self) -> int:
        return self.dx.shape[0]


def zero_field(width: int, height: int, cell: int = 4) -> MotionField:
    """Zero motion, all covered: the accumulated field of a keyframe."""
    if width <= 0 or height <= 0 or cell <= 0:
        raise ValueError(f"invalid motion field geometry: frame {width}x{height}, cell {cell} px")
    rows, cols = -(-height // cell), -(-width // cell)
    return MotionField(
        width,
        height,
        cell,
        np.zeros((rows, cols), F32),
        np.zeros((rows, cols), F32),
        np.zeros((rows, cols), bool),
    )


def _cells_with_centre_in(centre: int, size: int, cell: int, n: int) -> Tuple[int, int]:
    """Cells [first, end) whose centre lies in the block of `size` px centred on `centre`."""
    start = centre - size // 2
    end = start + size

    def first_at_or_after(edge: int) -> int:
        return min(max(-((cell - 2 * edge) // (2 * cell)), 0), n)

    return first_at_or_after(start), first_at_or_after(end)


def paint(vectors: Iterable[Mapping[str, Any]], width: int, height: int, cell: int = 4) -> MotionField:
    """One frame's vectors as a field (MotionField::paint).

    `vectors`: PyAV's `frame.side_data.get("MOTION_VECTORS").to_ndarray()` (a structured array)
    or any iterable of mappings with source, w, h, dst_x, dst_y, motion_x, motion_y,
    motion_scale. A block covers [dst - size // 2, dst - size // 2 + size) on each axis and
    paints the cells whose centre it contains. Past vectors (source <= 0) are used as they are;
    a future-only cell (source > 0) gets the negated vector; a past vector always wins. Cells no
    vector covers are uncovered and take the mean of their known 4-neighbours, ring by ring
    (zero when the frame has no vectors).
    """
    field = zero_field(width, height, cell)
    painted = np.zeros((field.rows, field.cols), np.uint8)
    for v in vectors:
        c0, c1 = _cells_with_centre_in(int(v["dst_x"]), int(v["w"]), cell, field.cols)
        r0, r1 = _cells_with_centre_in(int(v["dst_y"]), int(v["h"]), cell, field.rows)
        if c0 >= c1 or r0 >= r1:
            continue
        scale = F32(max(int(v["motion_scale"]), 1))
        dx = F32(int(v["motion_x"])) / scale
        dy = F32(int(v["motion_y"])) / scale
        if int(v["source"]) <= 0:
            state = _PAST
        else:
            state, dx, dy = _FUTURE, -dx, -dy
        window = (slice(r0, r1), slice(c0, c1))
        take = painted[window] <= state
        field.dx[window][take] = dx
        field.dy[window][take] = dy
        painted[window][take] = state
    field.uncovered = painted == _NONE
    _fill_from_neighbours(field)
    return field


def _shifted(a: np.ndarray, fill, dr: int, dc: int) -> np.ndarray:
    """out[r, c] = a[r + dr, c + dc], `fill` where that is outside."""
    out = np.full_like(a, fill)
    rows, cols = a.shape
    out[max(-dr, 0) : rows - max(dr, 0), max(-dc, 0) : cols - max(dc, 0)] = a[
        max(dr, 0) : rows + min(dr, 0), max(dc, 0) : cols + min(dc, 0)
    ]
    return out


def _fill_from_neighbours(field: MotionField) -> None:
    known = ~field.uncovered
    # Neighbour order left, right, up, down: the order the Rust code sums in.
    offsets = ((0, -1), (0, 1), (-1, 0), (1, 0))
    while not known.all():
        sum_x = np.zeros_like(field.dx)
        sum_y = np.zeros_like(field.dy)
        count = np.zeros(known.shape, np.int32)
        for dr, dc in offsets:
            nb_known = _shifted(known, False, dr, dc)
            sum_x = sum_x + np.where(nb_known, _shifted(field.dx, F32(0), dr, dc), F32(0))
            sum_y = sum_y + np.where(nb_known, _shifted(field.dy, F32(0), dr, dc), F32(0))
            count += nb_known
        new = ~known & (count > 0)
        if not new.any():
            break
        n = count[new].astype(F32)
        field.dx[new] = sum_x[new] / n
        field.dy[new] = sum_y[new] / n
        known = known | new


def _axis(u: np.ndarray, n: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two neighbouring cell indices and the weight of the second; u clamped to [0, n - 1]."""
    last = n - 1
    u = np.clip(u, F32(0), F32(last)).astype(F32)
    i0 = np.minimum(np.floor(u).astype(np.int64), last)
    i1 = np.minimum(i0 + 1, last)
    return i0, i1, u - i0.astype(F32)


def sample(field: MotionField, x: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Bilinear displacement at pixel positions (x, y) (arrays of the same shape)."""
    cell = F32(field.cell)
    x0, x1, fx = _axis(np.asarray(x, F32) / cell - F32(0.5), field.cols)
    y0, y1, fy = _axis(np.asarray(y, F32) / cell - F32(0.5), field.rows)

    def lerp2(v: np.ndarray) -> np.ndarray:
        top = v[y0, x0] + (v[y0, x1] - v[y0, x0]) * fx
        bottom = v[y1, x0] + (v[y1, x1] - v[y1, x0]) * fx
        return top + (bottom - top) * fy

    return lerp2(field.dx), lerp2(field.dy)


def _centres(field: MotionField) -> Tuple[np.ndarray, np.ndarray]:
    cell = F32(field.cell)
    cx = (np.arange(field.cols, dtype=F32) + F32(0.5)) * cell
    cy = (np.arange(field.rows, dtype=F32) + F32(0.5)) * cell
    shape = field.dx.shape
    return np.broadcast_to(cx[None, :], shape), np.broadcast_to(cy[:, None], shape)


def _outside(field: MotionField, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Whether pixel positions fall outside the grid (the cell containing them does not exist)."""
    cell = F32(field.cell)
    col = np.floor(x / cell)
    row = np.floor(y / cell)
    return (col < 0) | (row < 0) | (col >= F32(field.cols)) | (row >= F32(field.rows))


def accumulate(previous: MotionField, step: MotionField) -> MotionField:
    """A_t(p) = D_t(p) + sample(A_{t-1}, p + D_t(p)) (MotionField::accumulate).

    A cell is uncovered when D_t leaves it uncovered, when p + D_t(p) or p + A_t(p) falls
    outside the grid, or when the cell containing p + D_t(p) is uncovered in A_{t-1}.
    """
    geometry = (step.width, step.height, step.cell)
    if (previous.width, previous.height, previous.cell) != geometry:
        raise ValueError(
            f"motion field geometry mismatch: {(previous.width, previous.height, previous.cell)}"
            f" vs {geometry}"
        )
    cx, cy = _centres(step)
    sx = cx + step.dx
    sy = cy + step.dy
    ax, ay = sample(previous, sx, sy)
    dx = step.dx + ax
    dy = step.dy + ay
    cell = F32(step.cell)
    source_outside = _outside(step, sx, sy)
    col = np.clip(np.floor(sx / cell).astype(np.int64), 0, step.cols - 1)
    row = np.clip(np.floor(sy / cell).astype(np.int64), 0, step.rows - 1)
    source_uncovered = source_outside | previous.uncovered[row, col]
    keyframe_outside = _outside(step, cx + dx, cy + dy)
    uncovered = step.uncovered | source_uncovered | keyframe_outside
    return MotionField(step.width, step.height, step.cell, dx, dy, uncovered)


def accumulate_frames(
    frames: Iterable[Iterable[Mapping[str, Any]]],
    width: int,
    height: int,
    cell: int = 4,
    picture_types: Optional[Iterable[str]] = None,
):
    """Yields the accumulated field after each frame's vectors, starting from a keyframe.

    `picture_types` ("I", "P", "B", or "?" for our own estimate) chain each frame as
    MotionTrack::advance_picture does: a P-frame's vectors point to the last I/P frame (the
    anchor), a B-frame's to the frame before it. Without them every frame chains to the
    previous one (P-only single-reference streams, estimated motion).
    """
    accumulated = zero_field(width, height, cell)
    anchor = accumulated
    types = iter(picture_types) if picture_types is not None else None
    for vectors in frames:
        kind = next(types) if types is not None else "?"
        base = anchor if kind == "P" else accumulated
        accumulated = accumulate(base, paint(vectors, width, height, cell))
        if kind != "B":
            anchor = accumulated
        yield accumulated


def field_stats(field: MotionField) -> dict:
    """uncovered_share, mean_magnitude (px), outside_share (MotionField::stats)."""
    cx, cy = _centres(field)
    sx = cx + field.dx
    sy = cy + field.dy
    extent_x = F32(field.cols) * F32(field.cell)
    extent_y = F32(field.rows) * F32(field.cell)
    outside = ~((sx >= 0) & (sx < extent_x)) | ~((sy >= 0) & (sy < extent_y))
    magnitude = np.sqrt(field.dx * field.dx + field.dy * field.dy)
    return {
        "uncovered_share": float(field.uncovered.mean()),
        "mean_magnitude": float(magnitude.astype(np.float64).mean()),
        "outside_share": float(outside.mean()),
    }


def to_grid(field: MotionField, height: int, width: int) -> np.ndarray:
    """The field as a grid_sample grid ([height, width, 2], (x, y), align_corners=False).

    For a map of height x width covering the frame (W x H):
        x = (j + 0.5) * W / width,   y = (i + 0.5) * H / height
        (dx, dy) = sample(field, x, y)
        grid[i, j] = (2 * (x + dx) / W - 1, 2 * (y + dy) / H - 1)
    so `F.grid_sample(keyframe_map, torch.from_numpy(grid)[None], align_corners=False)` reads
    every output position where its content was in the keyframe.
    """
    frame_w, frame_h = F32(field.width), F32(field.height)
    y = (np.arange(height, dtype=F32) + F32(0.5)) * frame_h / F32(height)
    x = (np.arange(width, dtype=F32) + F32(0.5)) * frame_w / F32(width)
    xx, yy = np.meshgrid(x, y)
    dx, dy = sample(field, xx, yy)
    gx = F32(2) * (xx + dx) / frame_w - F32(1)
    gy = F32(2) * (yy + dy) / frame_h - F32(1)
    return np.stack([gx, gy], axis=-1).astype(F32)
