"""camvid-motion: labelled video made from CamVid stills by a virtual camera, encoded with x264.

CamVid labels one frame per second, so a temporal benchmark has to be built (models/README.md, "camvid-motion").
Each sequence takes one CamVid image and moves a camera over it: a smooth pan with a slow
wobble, a zoom (forward motion) and a small rotation; 0-2 labelled objects (cars, pedestrians,
bicyclists cut from the same image by their label mask) are pasted on top and move on their own.
Every frame is rendered at 480x360 (bilinear for the image, nearest for the labels, so each
frame has an exact label map) and the sequence is encoded through GStreamer's x264enc twice:

    p.mp4   GOP 12, P-frames only, one reference (ref=1 bframes=0): codec motion is exact to
            accumulate frame by frame
    b.mp4   GOP 12, 2 B-frames (fixed pattern), 3 references: what real streams look like

Layout: <out>/<split>/<NNN>/{p.mp4, b.mp4, labels/000000.png ..., meta.json}. meta.json is
written last and records the source image, the seed, the motion parameters, the per-frame
transforms (exact ground-truth motion can be derived from them) and the encoder pipelines.

Geometry (continuous pixel coordinates, pixel i spans [i, i + 1)): the output pixel centre p
shows the source position  q = c(t) + s(t) R(theta(t)) (p - p0),  p0 = output centre, with
s(t) = s0 exp(-zoom t) source pixels per output pixel, theta(t) = theta0 + omega t and
c(t) = c0 + s0 (v t + a * sin(2 pi t / T + phi)). c0 is chosen so that every output corner of
every frame maps inside the source image: no invalid border appears. An object k shows its
sprite position  q = sprite_centre + (s(t) / size_k) R(theta(t)) (p - o_k(t)),
o_k(t) = o_k + u_k t (output pixels).

Deterministic: a sequence depends only on (seed, split, index, frames) and the CamVid lists;
x264 runs with threads=1 and the MP4 creation times are zeroed, so the files are identical
byte for byte between runs on the same machine and software (another CPU or torch build may
round the bilinear image differently by one level, and x264 then codes different bits).

The content is a still image under a global affine camera: no parallax and no occlusion except
by the pasted objects and the frame border, so block motion describes it almost exactly. The
frames are 1.2x-2x magnified crops of CamVid (the source is only 480x360), which costs the
full-resolution model accuracy compared with CamVid's stills.
"""

from __future__ import annotations

import json
import math
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import camvid
from .classes import CAMVID_CLASSES, CAMVID_VOID

# Bump when the rendering or encoding changes: complete sequences of another version are redone.
GENERATOR_VERSION = 1
WIDTH, HEIGHT = 480, 360  # the default bundle's native size; even sides for 4:2:0
FPS = 25
GOP = 12
QUANTIZER = 23  # constant QP (x264enc pass=quant)
ENCODES: Dict[str, str] = {
    # scenecut=0: I-frames exactly every GOP frames; b-adapt=false: a fixed B pattern.
    "p": f"key-int-max={GOP} bframes=0 ref=1",
    "b": f"key-int-max={GOP} bframes=2 b-adapt=false ref=3",
}
X264_COMMON = f'threads=1 pass=quant quantizer={QUANTIZER} option-string="scenecut=0"'
OBJECT_CLASSES = (8, 9, 10)  # Car, Pedestrian, Bicyclist
META_FILE = "meta.json"
LABELS_DIR = "labels"
DEFAULT_SEQUENCES = {"test": 12, "train": 60}
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


@dataclass
class Sprite:
    """A labelled object cut from a CamVid image: RGB, its component mask, its class."""

    rgb: np.ndarray  # h x w x 3 uint8
    mask: np.ndarray  # h x w bool
    cls: int
    bbox: Tuple[int, int, int, int]  # x0, y0, x1, y1 in the source (exclusive end)


def sequence_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLIT_IDS[split], index])


def image_order(seed: int, split: str, count: int) -> List[int]:
    """Which list entry each sequence uses: a seeded permutation, so sequence i does not depend
    on how many sequences are generated (wrapping around with new motion past the list's end)."""
    return [int(i) for i in np.random.default_rng([seed, SPLIT_IDS[split]]).permutation(count)]


# ---------------------------------------------------------------------------------------------
# Objects


def components(mask: np.ndarray) -> np.ndarray:
    """4-connected components of a boolean mask: int32 ids (0 = background, 1.. = components,
    numbered in raster order of their first pixel)."""
    h, w = mask.shape
    flat = np.where(mask, np.arange(1, h * w + 1, dtype=np.int64).reshape(h, w), 0)
    # Propagate the largest id inside each component until nothing changes.
    while True:
        grown = flat.copy()
        grown[1:, :] = np.maximum(grown[1:, :], flat[:-1, :])
        grown[:-1, :] = np.maximum(grown[:-1, :], flat[1:, :])
        grown[:, 1:] = np.maximum(grown[:, 1:], flat[:, :-1])
        grown[:, :-1] = np.maximum(grown[:, :-1], flat[:, 1:])
        grown[~mask] = 0
        if np.array_equal(grown, flat):
            break
        flat = grown
    _, first = np.unique(flat.ravel(), return_index=True)
    ids = flat.ravel()[np.sort(first)]
    ids = ids[ids > 0]
    relabel = np.zeros(h * w + 1, dtype=np.int32)
    relabel[ids] = np.arange(1, len(ids) + 1, dtype=np.int32)
    return relabel[flat]


def object_sprites(image: np.ndarray, label: np.ndarray) -> List[Sprite]:
    """Whole objects of the movable classes: components of 300+ pixels not touching the border,
    at most 240x200, in a fixed order."""
    h, w = label.shape
    sprites = []
    for cls in OBJECT_CLASSES:
        comp = components(label == cls)
        for k in range(1, int(comp.max()) + 1):
            ys, xs = np.nonzero(comp == k)
            if ys.size < 300:
                continue
            x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            if x0 == 0 or y0 == 0 or x1 == w or y1 == h or x1 - x0 > 240 or y1 - y0 > 200:
                continue
            x0, y0 = max(x0 - 1, 0), max(y0 - 1, 0)
            x1, y1 = min(x1 + 1, w), min(y1 + 1, h)
            sprites.append(
                Sprite(
                    rgb=image[y0:y1, x0:x1].copy(),
                    mask=comp[y0:y1, x0:x1] == k,
                    cls=cls,
                    bbox=(int(x0), int(y0), int(x1), int(y1)),
                )
            )
    return sprites


# ---------------------------------------------------------------------------------------------
# Motion


def _rotation(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def camera_params(rng: np.random.Generator, frames: int, src_w: int, src_h: int) -> Dict:
    """Samples a camera path whose frames all stay inside the source image."""
    half = np.array([WIDTH / 2, HEIGHT / 2])
    corners = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]]) * half
    t = np.arange(frames, dtype=np.float64)
    shrink = 1.0
    for attempt in range(200):
        if attempt and attempt % 20 == 0:
            shrink *= 0.7  # paths keep leaving the image: gentler motion
        p = {
            "scale0": float(rng.uniform(0.62, 0.82)),
            "zoom_per_frame": float(rng.choice([0.0, rng.uniform(0.001, 0.01)], p=[0.25, 0.75])),
            "rotation0_deg": float(rng.uniform(-2.0, 2.0)),
            "rotation_per_frame_deg": float(rng.uniform(-0.12, 0.12)),
            "pan_px_per_frame": [
                float(rng.uniform(-3.5, 3.5) * shrink),
                float(rng.uniform(-1.2, 1.2) * shrink),
            ],
            "wobble_px": [float(rng.uniform(0, 6) * shrink), float(rng.uniform(0, 3) * shrink)],
            "wobble_period_frames": float(rng.uniform(24, 72)),
            "wobble_phase": float(rng.uniform(0, 2 * math.pi)),
        }
        scale, theta, offset = _camera_curves(p, t)
        # Source position of each corner relative to c0; c0 must keep them all inside.
        rel = np.stack(
            [offset[i] + scale[i] * (_rotation(theta[i]) @ corners.T).T for i in range(frames)]
        ).reshape(-1, 2)
        lo = np.maximum(-rel.min(0), 0.0)
        hi = np.array([src_w, src_h]) - rel.max(0)
        if np.all(lo <= hi):
            p["centre0"] = [float(rng.uniform(lo[0], hi[0])), float(rng.uniform(lo[1], hi[1]))]
            return p
    raise RuntimeError("no camera path fits the source image")  # not reached with these ranges


def _camera_curves(p: Dict, t: np.ndarray):
    scale = p["scale0"] * np.exp(-p["zoom_per_frame"] * t)
    theta = np.radians(p["rotation0_deg"] + p["rotation_per_frame_deg"] * t)
    wobble = np.sin(2 * math.pi * t / p["wobble_period_frames"] + p["wobble_phase"])
    pan = np.outer(t, p["pan_px_per_frame"]) + np.outer(wobble, p["wobble_px"])
    return scale, theta, p["scale0"] * pan


def camera_affines(p: Dict, frames: int) -> List[List[List[float]]]:
    """Per frame, the 2x3 affine from output to source pixel coordinates."""
    scale, theta, offset = _camera_curves(p, np.arange(frames, dtype=np.float64))
    p0 = np.array([WIDTH / 2, HEIGHT / 2])
    out = []
    for i in range(frames):
        a = scale[i] * _rotation(theta[i])
        b = np.array(p["centre0"]) + offset[i] - a @ p0
        out.append(np.hstack([a, b[:, None]]).tolist())
    return out


def object_params(rng: np.random.Generator, sprites: List[Sprite], frames: int) -> List[Dict]:
    count = int(rng.choice([0, 1, 2], p=[0.25, 0.45, 0.3]))
    count = min(count, len(sprites))
    chosen = sorted(rng.choice(len(sprites), size=count, replace=False).tolist()) if count else []
    objects = []
    for k in chosen:
        sprite = sprites[k]
        speed = rng.uniform(1.0, 4.0) * rng.choice([-1.0, 1.0])
        vy = rng.uniform(-0.5, 0.5)
        x_mid = rng.uniform(0.25, 0.75) * WIDTH
        y = rng.uniform(0.55, 0.85) * HEIGHT
        objects.append(
            {
                "sprite": k,
                "class": sprite.cls,
                "class_name": CAMVID_CLASSES[sprite.cls]["name"],
                "source_bbox": list(sprite.bbox),
                "pixels": int(sprite.mask.sum()),
                "size": float(rng.uniform(0.8, 1.3)),
                "start": [float(x_mid - speed * (frames - 1) / 2), float(y - vy * (frames - 1) / 2)],
                "velocity_px_per_frame": [float(speed), float(vy)],
            }
        )
    return objects


def object_affines(obj: Dict, sprite: Sprite, camera: Dict, frames: int) -> List[List[List[float]]]:
    """Per frame, the 2x3 affine from output to sprite pixel coordinates."""
    scale, theta, _ = _camera_curves(camera, np.arange(frames, dtype=np.float64))
    h, w = sprite.mask.shape
    centre = np.array([w / 2, h / 2])
    out = []
    for i in range(frames):
        a = scale[i] / obj["size"] * _rotation(theta[i])
        o = np.array(obj["start"]) + i * np.array(obj["velocity_px_per_frame"])
        b = centre - a @ o
        out.append(np.hstack([a, b[:, None]]).tolist())
    return out


# ---------------------------------------------------------------------------------------------
# Rendering


def _grid(affine: Sequence[Sequence[float]], src_w: int, src_h: int) -> torch.Tensor:
    """grid_sample grid (align_corners=False) reading output pixel centres through `affine`."""
    a = np.asarray(affine, dtype=np.float64)
    xs = np.arange(WIDTH, dtype=np.float64) + 0.5
    ys = np.arange(HEIGHT, dtype=np.float64) + 0.5
    px, py = np.meshgrid(xs, ys)
    qx = a[0, 0] * px + a[0, 1] * py + a[0, 2]
    qy = a[1, 0] * px + a[1, 1] * py + a[1, 2]
    grid = np.stack([2 * qx / src_w - 1, 2 * qy / src_h - 1], axis=-1).astype(np.float32)
    return torch.from_numpy(grid)[None]


def render_frame(
    image: torch.Tensor,
    label: torch.Tensor,
    camera: Sequence[Sequence[float]],
    objects: Sequence[Tuple[Sprite, Sequence[Sequence[float]]]],
) -> Tuple[np.ndarray, np.ndarray]:
    """One frame: HxWx3 uint8 RGB and HxW uint8 labels. `image` is [1,3,h,w] float32, `label`
    [1,1,h,w] float32."""
    src_h, src_w = image.shape[-2:]
    grid = _grid(camera, src_w, src_h)
    rgb = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    lab = F.grid_sample(label, grid, mode="nearest", padding_mode="border", align_corners=False)
    for sprite, affine in objects:
        h, w = sprite.mask.shape
        g = _grid(affine, w, h)
        s_rgb = torch.from_numpy(sprite.rgb).permute(2, 0, 1)[None].float()
        s_mask = torch.from_numpy(sprite.mask)[None, None].float()
        alpha = F.grid_sample(s_mask, g, mode="bilinear", padding_mode="zeros", align_corners=False)
        o_rgb = F.grid_sample(s_rgb, g, mode="bilinear", padding_mode="border", align_corners=False)
        inside = F.grid_sample(s_mask, g, mode="nearest", padding_mode="zeros", align_corners=False)
        rgb = rgb * (1 - alpha) + o_rgb * alpha
        lab = torch.where(inside > 0.5, torch.full_like(lab, sprite.cls), lab)
    rgb_u8 = rgb[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    lab_u8 = lab[0, 0].to(torch.uint8).numpy()
    return rgb_u8, lab_u8


# ---------------------------------------------------------------------------------------------
# Encoding


def encoder_pipeline(raw: Path, out: Path, encode: str) -> str:
    return (
        f"filesrc location={raw} ! rawvideoparse format=rgb width={WIDTH} height={HEIGHT} "
        f"framerate={FPS}/1 ! videoconvert ! video/x-raw,format=I420 "
        f"! x264enc {ENCODES[encode]} {X264_COMMON} ! h264parse ! mp4mux ! filesink location={out}"
    )


def _pipeline_for_meta(encode: str) -> str:
    return encoder_pipeline(Path("frames.rgb"), Path(f"{encode}.mp4"), encode)


def zero_mp4_times(path: Path) -> None:
    """mp4mux stamps the wall-clock time into mvhd/tkhd/mdhd; zero it so runs are identical."""
    data = bytearray(path.read_bytes())

    def walk(start: int, end: int) -> None:
        pos = start
        while pos + 8 <= end:
            size = int.from_bytes(data[pos : pos + 4], "big")
            kind = bytes(data[pos + 4 : pos + 8])
            header = 8
            if size == 1:
                size = int.from_bytes(data[pos + 8 : pos + 16], "big")
                header = 16
            elif size == 0:
                size = end - pos
            if size < header or pos + size > end:
                raise ValueError(f"{path}: malformed MP4 box at byte {pos}")
            body = pos + header
            if kind in (b"moov", b"trak", b"mdia"):
                walk(body, pos + size)
            elif kind in (b"mvhd", b"tkhd", b"mdhd"):
                width = 8 if data[body] == 1 else 4
                data[body + 4 : body + 4 + 2 * width] = bytes(2 * width)
            pos += size

    walk(0, len(data))
    path.write_bytes(bytes(data))


def encode_all(raw: Path, seq_dir: Path, names=None, pipeline=None) -> None:
    """Runs the encodes side by side (x264 has one thread each): `names` (default: the P and B
    encodes) through `pipeline(raw, out, name)` (default: `encoder_pipeline`), into
    seq_dir/<name>.mp4 with the MP4 times zeroed."""
    names = ENCODES if names is None else names
    pipeline = encoder_pipeline if pipeline is None else pipeline
    procs = []
    for name in names:
        out = seq_dir / f"{name}.mp4"
        cmd = ["gst-launch-1.0", "-q", *shlex.split(pipeline(raw, out, name))]
        procs.append((name, cmd, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
    for name, cmd, proc in procs:
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(
                f"{seq_dir}: {name} encode failed ({proc.returncode}): {' '.join(cmd)}\n"
                f"{stderr.decode(errors='replace')}{stdout.decode(errors='replace')}"
            )
        zero_mp4_times(seq_dir / f"{name}.mp4")


def gstreamer_version() -> str:
    try:
        out = subprocess.run(["gst-launch-1.0", "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise RuntimeError(f"gst-launch-1.0 is needed to encode camvid-motion: {e}") from e
    return out.stdout.splitlines()[1].strip() if len(out.stdout.splitlines()) > 1 else out.stdout.strip()


# ---------------------------------------------------------------------------------------------
# Sequences


def sequence_spec(split: str, index: int, seed: int, frames: int, pairs: List[Tuple[Path, Path]]) -> Dict:
    """Everything that decides a sequence, before rendering (also what meta.json compares)."""
    order = image_order(seed, split, len(pairs))
    image_path, label_path = pairs[order[index % len(pairs)]]
    return {
        "generator_version": GENERATOR_VERSION,
        "split": split,
        "index": index,
        "seed": seed,
        "frames": frames,
        "fps": FPS,
        "size": [WIDTH, HEIGHT],
        "gop": GOP,
        "image": f"{image_path.parent.name}/{image_path.name}",
        "label": f"{label_path.parent.name}/{label_path.name}",
    }


def is_complete(seq_dir: Path, spec: Dict) -> bool:
    meta_path = seq_dir / META_FILE
    if not meta_path.is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if any(meta.get(k) != v for k, v in spec.items()):
        return False
    labels = seq_dir / LABELS_DIR
    return all((seq_dir / f"{name}.mp4").is_file() for name in ENCODES) and all(
        (labels / f"{i:06d}.png").is_file() for i in range(spec["frames"])
    )


def generate_sequence(seq_dir: Path, spec: Dict, camvid_root: Path) -> Dict:
    """Renders, labels and encodes one sequence into seq_dir (replaced). Returns its meta."""
    frames = spec["frames"]
    image = camvid.read_image(camvid_root / spec["image"])
    label = camvid.read_label(camvid_root / spec["label"])
    src_h, src_w = label.shape
    rng = sequence_rng(spec["seed"], spec["split"], spec["index"])
    camera = camera_params(rng, frames, src_w, src_h)
    sprites = object_sprites(image, label)
    objects = object_params(rng, sprites, frames)
    cam_affines = camera_affines(camera, frames)
    obj_affines = [object_affines(o, sprites[o["sprite"]], camera, frames) for o in objects]

    tmp = seq_dir.with_name(seq_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / LABELS_DIR).mkdir(parents=True)
    img_t = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float()
    lab_t = torch.from_numpy(label.copy())[None, None].float()
    raw = tmp / "frames.rgb"
    with open(raw, "wb") as f:
        for i in range(frames):
            placed = [(sprites[o["sprite"]], a[i]) for o, a in zip(objects, obj_affines)]
            rgb, lab = render_frame(img_t, lab_t, cam_affines[i], placed)
            f.write(rgb.tobytes())
            Image.fromarray(lab, mode="L").save(tmp / LABELS_DIR / f"{i:06d}.png")
    encode_all(raw, tmp)
    raw.unlink()
    meta = dict(spec)
    meta.update(
        {
            "void": CAMVID_VOID,
            "camera": camera,
            "objects": objects,
            "transforms": {
                "doc": "2x3 affines per frame from output pixel coordinates (pixel i spans "
                "[i, i+1)) to source image (camera) or sprite (objects) coordinates",
                "camera": cam_affines,
                "objects": obj_affines,
            },
            "encodes": {name: _pipeline_for_meta(name) for name in ENCODES},
            "encoder": gstreamer_version(),
        }
    )
    (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    shutil.rmtree(seq_dir, ignore_errors=True)
    tmp.rename(seq_dir)
    return meta


def sequence_dirs(split_dir: Path) -> List[Path]:
    """The complete-looking sequences of a split folder, in order."""
    return sorted(p for p in split_dir.iterdir() if p.is_dir() and (p / META_FILE).is_file())


def generate(
    split: str,
    sequences: int,
    frames: int,
    seed: int,
    out: Path,
    camvid_root: Optional[Path] = None,
    progress=None,
) -> Tuple[int, int]:
    """Generates sequences 0..N-1 of a split under out/<split>; returns (made, skipped)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test (evaluation uses test only), got {split!r}")
    if frames < 2:
        raise ValueError(f"frames must be at least 2, got {frames}")
    root = Path(camvid_root) if camvid_root else camvid.paths.camvid_dir()
    pairs = camvid.split_pairs(split, root)
    made = skipped = 0
    split_dir = Path(out) / split
    split_dir.mkdir(parents=True, exist_ok=True)
    for index in range(sequences):
        spec = sequence_spec(split, index, seed, frames, pairs)
        seq_dir = split_dir / f"{index:03d}"
        if is_complete(seq_dir, spec):
            skipped += 1
        else:
            generate_sequence(seq_dir, spec, root)
            made += 1
        if progress:
            progress(index, seq_dir)
    return made, skipped
