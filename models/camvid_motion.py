#!/usr/bin/env python3
"""Generates camvid-motion: labelled video from CamVid stills, encoded with x264 through GStreamer.

    .venv/bin/python models/camvid_motion.py                         # 12 test sequences x 36 frames
    .venv/bin/python models/camvid_motion.py --split train --sequences 60
    .venv/bin/python models/camvid_motion.py --sequences 24 --frames 48 --seed 1 --out /tmp/cm

Output: <out>/<split>/<NNN>/{p.mp4, b.mp4, labels/000000.png ..., meta.json} (default out:
.cache/camvid-motion at the repository root). Sequences already complete with the same
parameters are skipped; see vss_models/camvid_motion.py for the camera model and the encodes.
Evaluation sequences come from CamVid's test split only, training ones from its train split.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vss_models import camvid_motion, paths  # noqa: E402

DEFAULT_OUT = paths.MODELS_DIR.parent / ".cache" / "camvid-motion"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", choices=["test", "train"], default="test")
    parser.add_argument(
        "--sequences",
        type=int,
        help=f"how many (default: {camvid_motion.DEFAULT_SEQUENCES['test']} test, "
        f"{camvid_motion.DEFAULT_SEQUENCES['train']} train)",
    )
    parser.add_argument("--frames", type=int, default=36, help="frames per sequence (default 36, 3 GOPs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--camvid", type=Path, help="CamVid folder (default: $VSS_DATA/camvid)")
    args = parser.parse_args()
    sequences = args.sequences if args.sequences is not None else camvid_motion.DEFAULT_SEQUENCES[args.split]
    torch.set_num_threads(1)  # the two encoders run beside the renderer

    start = time.perf_counter()

    def progress(index: int, seq_dir: Path) -> None:
        print(f"\r{args.split} {index + 1}/{sequences} {seq_dir}", end="", file=sys.stderr, flush=True)

    made, skipped = camvid_motion.generate(
        args.split, sequences, args.frames, args.seed, args.out, args.camvid, progress
    )
    print(file=sys.stderr)
    print(
        f"{args.out / args.split}: {made} generated, {skipped} already complete, "
        f"{time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
