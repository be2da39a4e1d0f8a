"""camvid-real: CamVid's labelled val sequence (0016E5) as the video it was cut from.

The val split is 101 consecutive frames of one drive, every second frame of a 30 Hz camera, so
15 Hz, each with a hand-made label: real motion (the car drives, others cross, light changes)
with a label on every frame. The frames are encoded as they are (480x360, CamVid's SegNet
size) with x264 through GStreamer, four ways:

    p12.mp4  b12.mp4   I-frame every 12 frames (0.8 s), P-only (ref=1) / B-frames (bframes=2, ref=3)
    p6.mp4   b6.mp4    I-frame every 6 frames (0.4 s, like 12 frames at 30 Hz)

plus labels/000000.png ... (class ids, 11 = void) and meta.json. No randomness: x264 runs on
one thread at constant QP, and the MP4 times are zeroed, so the files are the same every run.
None of the val frames is in CamVid's train split, which is all that camvid-espnet (and every
bundle trained here) saw; camvid-cgnet's upstream weights saw train+val (see models/README.md).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from PIL import Image

from . import camvid, paths
from .camvid_motion import X264_COMMON, encode_all, gstreamer_version

# Bump when the frames or the encodes change: a folder of another version is redone.
GENERATOR_VERSION = 1
SEQUENCE = "0016E5"
WIDTH, HEIGHT = 480, 360
FPS = 15
META_FILE = "meta.json"
LABELS_DIR = "labels"
KINDS: Dict[str, str] = {
    "p": "bframes=0 ref=1",
    "b": "bframes=2 b-adapt=false ref=3",
}
GOPS = (12, 6)
ENCODES: Dict[str, str] = {f"{kind}{gop}": f"key-int-max={gop} {opts}" for gop in GOPS for kind, opts in KINDS.items()}


def frames(camvid_root: Optional[Path] = None) -> List[Tuple[Path, Path]]:
    """The sequence's (image, label) pairs in time order."""
    pairs = [p for p in camvid.split_pairs("val", camvid_root) if p[0].name.startswith(SEQUENCE + "_")]
    pairs.sort(key=lambda p: p[0].name)
    if not pairs:
        raise camvid.DataMissing(f"no {SEQUENCE} frames in CamVid's val split")
    return pairs


def encoder_pipeline(raw: Path, out: Path, encode: str) -> str:
    return (
        f"filesrc location={raw} ! rawvideoparse format=rgb width={WIDTH} height={HEIGHT} "
        f"framerate={FPS}/1 ! videoconvert ! video/x-raw,format=I420 "
        f"! x264enc {ENCODES[encode]} {X264_COMMON} ! h264parse ! mp4mux ! filesink location={out}"
    )


def spec(pairs: List[Tuple[Path, Path]]) -> Dict:
    """Everything that decides the output (also what meta.json compares)."""
    return {
        "dataset": "camvid-real",
        "generator_version": GENERATOR_VERSION,
        "sequence": SEQUENCE,
        "frames": len(pairs),
        "fps": FPS,
        "size": [WIDTH, HEIGHT],
        "images": [p[0].name for p in pairs],
        "encodes": {name: encoder_pipeline(Path("frames.rgb"), Path(f"{name}.mp4"), name) for name in ENCODES},
    }


def is_complete(seq_dir: Path, want: Dict) -> bool:
    try:
        meta = json.loads((seq_dir / META_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if any(meta.get(k) != v for k, v in want.items()):
        return False
    return all((seq_dir / f"{name}.mp4").is_file() for name in ENCODES) and all(
        (seq_dir / LABELS_DIR / f"{i:06d}.png").is_file() for i in range(want["frames"])
    )


def generate(out: Path, camvid_root: Optional[Path] = None) -> Tuple[Path, bool]:
    """Writes out/0016E5 unless it is complete; returns (folder, whether it was made)."""
    pairs = frames(camvid_root)
    want = spec(pairs)
    seq_dir = out / SEQUENCE
    if is_complete(seq_dir, want):
        return seq_dir, False
    tmp = seq_dir.with_name(seq_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / LABELS_DIR).mkdir(parents=True)
    raw = tmp / "frames.rgb"
    with open(raw, "wb") as f:
        for i, (image_path, label_path) in enumerate(pairs):
            image = camvid.read_image(image_path)
            label = camvid.read_label(label_path)
            if image.shape != (HEIGHT, WIDTH, 3) or label.shape != (HEIGHT, WIDTH):
                raise ValueError(f"{image_path}: expected {WIDTH}x{HEIGHT}, got {image.shape} / {label.shape}")
            f.write(image.tobytes())
            Image.fromarray(label, mode="L").save(tmp / LABELS_DIR / f"{i:06d}.png")
    encode_all(raw, tmp, ENCODES, encoder_pipeline)
    raw.unlink()
    meta = dict(want)
    meta["encoder"] = gstreamer_version()
    meta["void"] = 11
    (tmp / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")
    shutil.rmtree(seq_dir, ignore_errors=True)
    tmp.rename(seq_dir)
    return seq_dir, True


DEFAULT_OUT = paths.MODELS_DIR.parent / ".cache" / "camvid-real"
