#!/usr/bin/env python3
"""The peers vss is measured against, as a user would write them without vss (PyAV + torch).

    .venv/bin/python models/peer_baseline.py segment VIDEO [--bundle camvid-espnet] [--threads 2]
    .venv/bin/python models/peer_baseline.py camvid-motion SEQ_DIR... [--encode p]
    .venv/bin/python models/peer_baseline.py decode VIDEO [--export-mvs]

`segment`: decode every frame with PyAV, convert it to RGB at the bundle's native size (swscale,
through `frame.to_ndarray`), run the same TorchScript bundle that vsssegment loads, argmax to a
class map (through `max`'s indices: torch's CPU `argmax` over the classes costs ~28 ms a frame
at 360x480, and a baseline that paid it would flatter vss). One frame at a time, in order: the
per-frame baseline. Prints JSON with per-frame times:
`frame_ms` (everything from the end of the previous frame: decode + conversion + network + argmax)
and `compute_ms` (conversion + network + argmax, what vsssegment's compute time covers).

`camvid-motion`: the same loop over camvid-motion sequences (models/camvid_motion.py), scored
against their labels (11 CamVid classes, void ignored): the per-frame baseline's mIoU.

`decode`: PyAV decode throughput of one file, with `flags2=+export_mvs` and each frame's motion
vectors read as an array (`--export-mvs`) or plain. Times only the decode loop (not the import).

The bundle warms up with 2 untimed calls at its native size first, as vsssegment does when it
loads one. Denormal floats are flushed to zero (`torch.set_flush_denormal`), as vsssegment's
libtorch thread does: on Intel cores the network is ~3x slower without it, and a baseline that
left it off would flatter vss by a CPU flag rather than by its pipeline. Decoding uses frame+slice threads with one thread per core, as vssdec and avdec_h264 do.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vss_models import bundle, metrics  # noqa: E402
from vss_models.classes import CAMVID_CLASSES  # noqa: E402
from vss_models.evaluation import predict  # noqa: E402

WARMUP_CALLS = 2  # vsssegment's WARMUP_PASSES


def open_video(path: Path, export_mvs: bool = False):
    container = av.open(str(path))
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = os.cpu_count() or 1
    if export_mvs:
        stream.codec_context.options = {"flags2": "+export_mvs"}
    return container, stream


def load_module(name: str):
    b = bundle.read(name)
    module = b.load_module()
    h, w = b.native_size
    warm = torch.zeros((1, 3, h, w), dtype=torch.uint8)
    for _ in range(WARMUP_CALLS):
        predict(module, warm, (h, w))
    return b, module


def segment_video(
    module,
    size: List[int],
    video: Path,
    max_frames: Optional[int] = None,
    on_frame: Optional[Callable[[int, np.ndarray], None]] = None,
) -> Dict:
    """The per-frame loop; `on_frame(index, class_ids)` sees every prediction (untimed)."""
    h, w = size
    frame_ms: List[float] = []
    compute_ms: List[float] = []
    container, stream = open_video(video)
    with container:
        start = time.perf_counter()
        previous = start
        scoring = 0.0
        for index, frame in enumerate(container.decode(stream)):
            if max_frames is not None and index >= max_frames:
                break
            decoded = time.perf_counter()
            rgb = frame.to_ndarray(format="rgb24", width=w, height=h)
            image = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0)
            ids = predict(module, image, (h, w))
            done = time.perf_counter()
            frame_ms.append(1e3 * (done - previous))
            compute_ms.append(1e3 * (done - decoded))
            if on_frame is not None:
                on_frame(index, ids)
                after = time.perf_counter()
                scoring += after - done
                done = after
            previous = done
        wall = previous - start - scoring
    frames = len(frame_ms)
    return {
        "video": str(video),
        "frames": frames,
        "wall_s": wall,
        "fps": frames / wall if wall > 0 else float("nan"),
        "frame_ms": frame_ms,
        "compute_ms": compute_ms,
    }


def cmd_segment(args) -> Dict:
    b, module = load_module(args.bundle)
    result = segment_video(module, b.native_size, args.video, args.max_frames)
    result.update(bundle=b.name, size=b.native_size, threads=torch.get_num_threads())
    return result


def read_label(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path))


def cmd_camvid_motion(args) -> Dict:
    b, module = load_module(args.bundle)
    if b.manifest["dataset"] != "camvid":
        raise SystemExit(f"bundle {b.name} predicts {b.manifest['dataset']} classes, not CamVid's")
    n = len(CAMVID_CLASSES)
    matrix = np.zeros((n, n), np.int64)
    frames = 0
    wall = 0.0
    compute: List[float] = []
    per_frame: List[float] = []
    for seq in args.sequences:
        labels = seq / "labels"

        def score(index: int, ids: np.ndarray, labels: Path = labels) -> None:
            path = labels / f"{index:06d}.png"
            if not path.is_file():
                raise SystemExit(f"{path}: no label for decoded frame {index}")
            matrix[...] += metrics.confusion(read_label(path), ids, n)

        result = segment_video(module, b.native_size, seq / f"{args.encode}.mp4", on_frame=score)
        expected = len(list(labels.glob("*.png")))
        if result["frames"] != expected:
            raise SystemExit(f"{seq}: {result['frames']} frames decoded, {expected} labels")
        frames += result["frames"]
        wall += result["wall_s"]
        compute += result["compute_ms"]
        per_frame += result["frame_ms"]
    s = metrics.scores(matrix)
    return {
        "bundle": b.name,
        "encode": args.encode,
        "sequences": len(args.sequences),
        "frames": frames,
        "threads": torch.get_num_threads(),
        "miou": s.miou,
        "pixel_accuracy": s.pixel_accuracy,
        "wall_s": wall,
        "compute_ms_mean": float(np.mean(compute)) if compute else float("nan"),
        "frame_ms_mean": float(np.mean(per_frame)) if per_frame else float("nan"),
        "confusion": matrix.tolist(),
    }


def cmd_decode(args) -> Dict:
    container, stream = open_video(args.video, export_mvs=args.export_mvs)
    frames = 0
    vectors = 0
    with container:
        start = time.perf_counter()
        for frame in container.decode(stream):
            if args.max_frames is not None and frames >= args.max_frames:
                break
            frames += 1
            if args.export_mvs:
                side = frame.side_data.get("MOTION_VECTORS")
                if side is not None:
                    vectors += len(side.to_ndarray())
        seconds = time.perf_counter() - start
    return {
        "video": str(args.video),
        "export_mvs": args.export_mvs,
        "frames": frames,
        "vectors": vectors,
        "seconds": seconds,
        "fps": frames / seconds if seconds > 0 else float("nan"),
    }


def strict_json(value):
    """NaN and infinities (an undefined score) as null: strict JSON readers refuse them."""
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strict_json(v) for v in value]
    return value


def versions() -> Dict:
    libs = {name: ".".join(str(v) for v in version) for name, version in av.library_versions.items()}
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "av": av.__version__,
        "av_ffmpeg": libs,
        "torch_threads": torch.get_num_threads(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="per-frame PyAV + TorchScript loop over one video")
    seg.add_argument("video", type=Path)
    cm = sub.add_parser("camvid-motion", help="the same loop over camvid-motion sequences, scored")
    cm.add_argument("sequences", type=Path, nargs="+", help="sequence folders (<NNN>/ with labels/)")
    cm.add_argument("--encode", default="p", choices=["p", "b"])
    for p in (seg, cm):
        p.add_argument("--bundle", default="camvid-espnet", help="bundle folder or shipped name")
        p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    seg.add_argument("--max-frames", type=int, help="stop after N frames")
    dec = sub.add_parser("decode", help="PyAV decode throughput of one video")
    dec.add_argument("video", type=Path)
    dec.add_argument(
        "--export-mvs", action="store_true", help="flags2=+export_mvs, read every frame's vectors"
    )
    dec.add_argument("--max-frames", type=int, help="stop after N frames")
    sub.add_parser("versions", help="library versions as JSON")
    args = parser.parse_args(argv)

    if getattr(args, "threads", 0):
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    for attr in ("video",):
        path = getattr(args, attr, None)
        if path is not None and not path.is_file():
            parser.error(f"{path}: no such file")
    try:
        result = {
            "segment": cmd_segment,
            "camvid-motion": cmd_camvid_motion,
            "decode": cmd_decode,
            "versions": lambda _: versions(),
        }[args.command](args)
    except bundle.BundleError as e:
        parser.error(str(e))
    print(json.dumps(strict_json(result), allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
