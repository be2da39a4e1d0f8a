#!/usr/bin/env python3
"""Writes the shipped bundles (manifest.json + frozen TorchScript) under models/bundles/.

    .venv/bin/python models/export.py                 # the published-weights bundles + every trained one
    .venv/bin/python models/export.py camvid-espnet   # one
    .venv/bin/python models/export.py camvid-bisenet  # a network trained by train_image.py (best.pt)
    .venv/bin/python models/export.py camvid-bisenet --checkpoint models/.cache/train/bisenet/latest.pt
    .venv/bin/python models/export.py --out /tmp/b    # elsewhere

Networks trained here (camvid-bisenet, camvid-icnet, camvid-dynroute) are exported only from
an existing checkpoint of train_image.py; without one they are skipped (never exported untrained).
Their manifest records the training facts (epochs, minutes, val-subset mIoU).

Each saved module is reloaded and checked against the eager network at the native size, 360x480,
720x960 and an odd size (all rounded up to the bundle's size multiple).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vss_models import bundle, paths, torchscript, zoo  # noqa: E402

MODULE_FILE = "model.pt"
VERIFY_TOLERANCE = 1e-3  # logits differ from eager only by float reassociation (BN folding)


def round_up(size: List[int], multiple: int) -> List[int]:
    return [-(-s // multiple) * multiple for s in size]


def manifest_for(spec: zoo.BundleSpec, logits_stride: int, feat_channels: int, feat_stride: int) -> Dict:
    k = len(spec.classes)
    out_h = "H" if logits_stride == 1 else f"H/{logits_stride}"
    out_w = "W" if logits_stride == 1 else f"W/{logits_stride}"
    return {
        **bundle.manifest_head(spec, spec.name, spec.description, "image"),
        "methods": {
            "forward": {
                "inputs": ["image uint8 [1,3,H,W] RGB"],
                "outputs": [
                    f"logits float32 [1,{k},{out_h},{out_w}]",
                    f"features float32 [1,{feat_channels},H/{feat_stride},W/{feat_stride}]",
                ],
            }
        },
        "logits_stride": logits_stride,
        "features": {"channels": feat_channels, "stride": feat_stride},
        "files": {"module": MODULE_FILE},
        "source": spec.source,
        "license": spec.license,
    }


def training_facts(checkpoint: Path) -> Dict:
    """What the manifest says about a train_image.py checkpoint."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    state, args = ckpt["state"], ckpt["args"]
    val = ckpt.get("val") or (state["history"][-1] if state["history"] else None)
    images = len(camvid_train_pairs())
    steps_per_epoch = max(images // args["batch"], 1)
    note = zoo.training_note(ckpt["arch"])
    if state.get("backbone_from"):
        note += f"; its backbone started from {state['backbone_from']} (not counted in train_minutes)"
    return {
        "note": note,
        "command": f"models/train_image.py --arch {ckpt['arch']}",
        "checkpoint": checkpoint.name,
        "data": (
            f"CamVid train split ({images} images); val subset: {val['images'] if val else 0} val images"
        ),
        "epochs": round(state["epoch"] + state["batch_in_epoch"] / steps_per_epoch, 2),
        "steps": int(state["step"]),
        "train_minutes": round(state["train_seconds"] / 60.0, 1),
        "schedule_epochs": int(args["epochs"]),
        "val_subset_miou": round(float(val["miou"]), 2) if val else None,
        "recipe": (
            f"batch {args['batch']}, crops {args['crop'][0]}x{args['crop'][1]}, scale "
            f"{args['scale_min']}-{args['scale_max']}, flip; ENet-weighted cross-entropy (void ignored)"
            f" + auxiliary/budget terms; AdamW lr {args['lr']} poly 0.9, {args['threads']} CPU thread(s)"
        ),
    }


def camvid_train_pairs():
    from vss_models import camvid

    return camvid.split_pairs("train")


def check_sizes(spec: zoo.BundleSpec) -> List[List[int]]:
    m = spec.size_multiple
    odd = [m * (232 // m + 1), m * (328 // m + 1)]  # not a common frame size, not the native one
    sizes = [spec.native_size, round_up([360, 480], m), round_up([720, 960], m), odd]
    unique = []
    for s in sizes:
        if s not in unique:
            unique.append(s)
    return unique


def export(spec: zoo.BundleSpec, out_root: Path) -> Path:
    eager = torchscript.image_module(spec, channels_last=True)
    h, w = spec.native_size
    probe = torch.zeros(1, 3, h, w, dtype=torch.uint8)
    with torch.inference_mode():
        logits, features = eager(probe)
    assert logits.shape[1] == len(spec.classes), (spec.name, logits.shape)
    logits_stride = h // logits.shape[2]
    feat_stride = h // features.shape[2]

    folder = out_root / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torchscript.to_torchscript(eager, freeze=True), str(folder / MODULE_FILE))
    manifest = manifest_for(spec, logits_stride, features.shape[1], feat_stride)
    if spec.checkpoint is not None:
        manifest["training"] = training_facts(spec.checkpoint)
    bundle.write_manifest(folder, manifest)

    loaded = bundle.read(folder)
    module = loaded.load_module()
    gen = torch.Generator().manual_seed(0)
    for size in check_sizes(spec):
        img = torch.randint(0, 256, (1, 3, *size), dtype=torch.uint8, generator=gen)
        with torch.inference_mode():
            ref_logits, ref_features = eager(img)
            got_logits, got_features = module(img)
        want_l = [1, len(spec.classes), size[0] // logits_stride, size[1] // logits_stride]
        want_f = [1, features.shape[1], size[0] // feat_stride, size[1] // feat_stride]
        if list(got_logits.shape) != want_l or list(got_features.shape) != want_f:
            raise SystemExit(
                f"{spec.name} at {size}: shapes {list(got_logits.shape)} {list(got_features.shape)}, "
                f"expected {want_l} {want_f}"
            )
        diff = max(
            (got_logits - ref_logits).abs().max().item(),
            (got_features - ref_features).abs().max().item(),
        )
        if diff > VERIFY_TOLERANCE:
            raise SystemExit(f"{spec.name} at {size}: saved module differs from eager by {diff}")
        print(f"  {spec.name} {size[0]}x{size[1]}: logits {want_l} features {want_f}, max |diff| {diff:.2e}")
    size_mb = (folder / MODULE_FILE).stat().st_size / 1e6
    print(f"wrote {folder} ({MODULE_FILE} {size_mb:.1f} MB)")
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    trained = [zoo.trained_spec(arch).name for arch in zoo.ARCHITECTURES]
    parser.add_argument(
        "names", nargs="*", help=f"bundles to write (default: {list(zoo.SPECS)} + trained ones of {trained})"
    )
    parser.add_argument("--out", type=Path, default=paths.BUNDLES_DIR, help="folder for the bundles")
    parser.add_argument(
        "--checkpoint", type=Path, help="trained bundles: this train_image.py checkpoint instead of best.pt"
    )
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    by_name = {zoo.trained_spec(arch).name: arch for arch in zoo.ARCHITECTURES}
    specs = []
    for name in args.names or list(zoo.SPECS) + list(by_name):
        if name in zoo.SPECS:
            specs.append(zoo.SPECS[name])
            continue
        if name not in by_name:
            parser.error(f"unknown bundle {name!r}; known: {list(zoo.SPECS) + list(by_name)}")
        spec = zoo.trained_spec(by_name[name], args.checkpoint)
        if not spec.checkpoint.is_file():
            message = (
                f"{name}: no trained checkpoint at {spec.checkpoint} "
                f"(run models/train_image.py --arch {by_name[name]})"
            )
            if args.names:
                raise SystemExit(message)
            print(f"skipped {message}")
            continue
        specs.append(spec)
    for spec in specs:
        export(spec, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
