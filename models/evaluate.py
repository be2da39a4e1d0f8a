#!/usr/bin/env python3
"""Scores a bundle on CamVid (11 classes, void ignored): per-class IoU, mIoU, pixel accuracy.

    .venv/bin/python models/evaluate.py camvid-espnet --split test
    .venv/bin/python models/evaluate.py camvid-cgnet --limit 20
    .venv/bin/python models/evaluate.py cityscapes-espnetv2 --size 720x960 --limit 60
    .venv/bin/python models/evaluate.py camvid-espnet --cityscapes-check

The bundle (a folder, a manifest.json or a shipped bundle's name) runs through its TorchScript
module exactly as the element runs it: uint8 RGB frame resized to --size (default: the bundle's
native size), argmax of the logits, upsampled bilinearly to the label size when smaller.
Bundles of another dataset are scored through --class-map (auto: <dataset>-to-camvid).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vss_models import bundle, camvid, evaluation, paths  # noqa: E402
from vss_models.classes import CAMVID_CLASSES, CLASS_MAPS  # noqa: E402

AGREEMENT = 0.01  # mIoU points within which cityscapesscripts must agree


def parse_size(text: str):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 360x480, got {text!r}") from None
    return [h, w]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("bundle", nargs="?", default="camvid-espnet", help="bundle folder or shipped name")
    parser.add_argument("--split", default="test", choices=camvid.SPLITS)
    parser.add_argument("--limit", type=int, help="only the first N images of the split")
    parser.add_argument(
        "--size", type=parse_size, help="inference size HxW (default: the bundle's native size)"
    )
    parser.add_argument(
        "--class-map",
        default="auto",
        choices=["auto", "none", *CLASS_MAPS],
        help="map predicted ids to CamVid's",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument(
        "--cityscapes-check",
        action="store_true",
        help="also score with cityscapesscripts (PNGs under models/.cache/) and require agreement",
    )
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument("--progress", action="store_true", help="show a progress bar")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    # As vsssegment's libtorch thread (src/model/executor.rs): ~3x faster on Intel, same maps.
    torch.set_flush_denormal(True)
    try:
        b = bundle.read(args.bundle)
    except bundle.BundleError as e:
        parser.error(str(e))
    check = None
    if args.cityscapes_check:
        check = evaluation_layout(b.name, args.split)
    result = evaluation.evaluate(
        b,
        split=args.split,
        limit=args.limit,
        size=args.size,
        class_map=args.class_map,
        on_image=check.add if check else None,
        progress=args.progress,
    )

    print(f"command: {' '.join(shlex.quote(a) for a in [sys.executable, *sys.argv])}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}"
    )
    print(
        f"bundle {result.bundle} on CamVid {result.split}: {result.images} images at "
        f"{result.size[0]}x{result.size[1]}, class map: {result.class_map or 'none'}"
    )
    print(f"{'class':<12} {'IoU %':>7}")
    for cls, iou in zip(CAMVID_CLASSES, result.scores.iou):
        print(f"{cls['name']:<12} {100 * iou:7.2f}")
    print(f"{'mIoU':<12} {100 * result.scores.miou:7.2f}")
    print(f"{'pixel acc.':<12} {100 * result.scores.pixel_accuracy:7.2f}")
    print(f"fastest frame (forward + argmax): {1000 * result.seconds_per_frame:.0f} ms")

    report = {
        "bundle": result.bundle,
        "split": result.split,
        "images": result.images,
        "size": result.size,
        "class_map": result.class_map,
        "miou": result.scores.miou,
        "pixel_accuracy": result.scores.pixel_accuracy,
        "iou": {c["name"]: v for c, v in zip(CAMVID_CLASSES, result.scores.iou)},
        "confusion": result.matrix.tolist(),
    }
    status = 0
    if check:
        cs = check.evaluate()
        cs_miou = cs["averageScoreClasses"]
        diff = abs(100 * cs_miou - 100 * result.scores.miou)
        agree = diff <= AGREEMENT
        print(
            f"cityscapesscripts evalPixelLevelSemanticLabeling: mIoU {100 * cs_miou:.4f} "
            f"vs ours {100 * result.scores.miou:.4f}: |diff| {diff:.2e} points "
            f"({'agree' if agree else 'DISAGREE'} to {AGREEMENT})"
        )
        report["cityscapesscripts_miou"] = cs_miou
        status = 0 if agree else 1
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return status


def evaluation_layout(name: str, split: str):
    from vss_models.cityscapes_check import CityscapesLayout

    return CityscapesLayout(paths.CACHE_DIR / "cityscapes-eval" / f"{name}-{split}", split)


if __name__ == "__main__":
    sys.exit(main())
