#!/usr/bin/env python3
"""Regenerates tests/data/reference_logits.npz from the ORIGINAL authors' code (not ours).

    .venv/bin/python models/tests/make_reference.py \
        --espnet /path/to/sacmehta/ESPNet --cgnet /path/to/wutianyiRosun/CGNet \
        --edgenets /path/to/sacmehta/EdgeNets

Each reference network loads its published .pth and runs on the first CamVid test frame with the
preprocessing of the authors' own scripts (numpy, float32). The file keeps the logits of the
bundle's classes at 512 fixed pixels, so test_bundles.py can check that a shipped bundle (our
architecture, exported) reproduces the original network without the original code at hand.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import torch

MODELS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(MODELS))

from vss_models import camvid, zoo  # noqa: E402

OUT = Path(__file__).resolve().parent / "data" / "reference_logits.npz"
PIXELS = 512
ESPNETV2_ROWS = 352  # the EdgeNets decoder needs sides divisible by 16: crop, do not resample


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checkpoint(spec: zoo.BundleSpec):
    return torch.load(spec.weights_path(), map_location="cpu", weights_only=False)


def espnet_reference(repo: Path, rgb: np.ndarray) -> torch.Tensor:
    spec = zoo.SPECS["camvid-espnet"]
    net = load_module("espnet_ref", repo / "train" / "Model.py").ESPNet(12, 2, 8)
    net.load_state_dict(checkpoint(spec))
    img = rgb[:, :, ::-1].astype(np.float32)  # cv2.imread order
    for j, (m, s) in enumerate(zip(zoo.ESPNET_MEAN_BGR, zoo.ESPNET_STD_BGR)):
        img[:, :, j] = (img[:, :, j] - m) / s
    img /= 255
    return run(net, img)


def cgnet_reference(repo: Path, rgb: np.ndarray) -> torch.Tensor:
    spec = zoo.SPECS["camvid-cgnet"]
    import torch.nn.functional as F

    if not hasattr(F, "upsample"):
        F.upsample = F.interpolate
    net = load_module("cgnet_ref", repo / "model" / "CGNet.py").Context_Guided_Network(11, 3, 21)
    net.load_state_dict(checkpoint(spec)["model"])
    img = rgb.astype(np.float32) - np.array(zoo.CGNET_MEAN_BGR, np.float32)
    return run(net, img)


def espnetv2_reference(repo: Path, rgb: np.ndarray) -> torch.Tensor:
    spec = zoo.SPECS["cityscapes-espnetv2"]
    sys.path.insert(0, str(repo))
    from model.segmentation.espnetv2 import espnetv2_seg

    net = espnetv2_seg(types.SimpleNamespace(classes=20, s=2.0, weights="", dataset="city"))
    net.load_state_dict(checkpoint(spec))
    img = rgb[:ESPNETV2_ROWS].astype(np.float32) / 255
    img = (img - np.array(zoo.IMAGENET_MEAN, np.float32)) / np.array(zoo.IMAGENET_STD, np.float32)
    return run(net, img)


def run(net, hwc: np.ndarray) -> torch.Tensor:
    net.eval()
    with torch.no_grad():
        return net(torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)))[None])[0]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--espnet", type=Path, required=True)
    parser.add_argument("--cgnet", type=Path, required=True)
    parser.add_argument("--edgenets", type=Path, required=True)
    args = parser.parse_args()
    image_path, _ = camvid.split_pairs("test")[0]
    rgb = camvid.read_image(image_path)
    rng = np.random.default_rng(0)
    out = {"image": np.array(image_path.name)}
    for name, fn, repo, rows in [
        ("camvid-espnet", espnet_reference, args.espnet, rgb.shape[0]),
        ("camvid-cgnet", cgnet_reference, args.cgnet, rgb.shape[0]),
        ("cityscapes-espnetv2", espnetv2_reference, args.edgenets, ESPNETV2_ROWS),
    ]:
        logits = fn(repo, rgb)
        keep = zoo.SPECS[name].keep_channels or list(range(logits.shape[0]))
        ys = rng.integers(0, rows, PIXELS)
        xs = rng.integers(0, rgb.shape[1], PIXELS)
        out[f"{name}/rows"] = np.array(rows)
        out[f"{name}/yx"] = np.stack([ys, xs], 1).astype(np.int16)
        out[f"{name}/logits"] = logits[keep][:, ys, xs].T.numpy().astype(np.float32)
        print(f"{name}: logits {tuple(logits.shape)}, kept {len(keep)} channels")
    OUT.parent.mkdir(exist_ok=True)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
