"""Shipped bundles reproduce the published networks and honour the manifest's shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from vss_models import bundle, torchscript, zoo

SHIPPED = list(zoo.SPECS)
REFERENCE = Path(__file__).resolve().parent / "data" / "reference_logits.npz"
TOLERANCE = 1e-4  # float32 reassociation only (BN folded by freezing, channels_last kernels)


def frame_rows(name: str, rgb: np.ndarray) -> np.ndarray:
    """The frame the reference logits were computed on (ESPNetv2's is cropped to 352 rows)."""
    rows = int(np.load(REFERENCE)[f"{name}/rows"])
    return rgb[:rows]


def as_input(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).unsqueeze(0)


def run_bundle(name: str, rgb: np.ndarray):
    module = bundle.read(name).load_module()
    with torch.inference_mode():
        return module(as_input(rgb))


@pytest.mark.parametrize("name", SHIPPED)
def test_bundle_matches_original_code(name, first_test_frame):
    """Logits of the authors' own code (tests/make_reference.py) at 512 fixed pixels."""
    ref = np.load(REFERENCE)
    rgb = frame_rows(name, first_test_frame)
    logits, _ = run_bundle(name, rgb)
    yx = ref[f"{name}/yx"].astype(np.int64)
    got = logits[0][:, yx[:, 0], yx[:, 1]].T.numpy()
    want = ref[f"{name}/logits"]
    assert got.shape == want.shape
    assert np.abs(got - want).max() < TOLERANCE


def preprocess_like_authors(name: str, rgb: np.ndarray) -> torch.Tensor:
    """Float input as each authors' script built it (numpy, outside any module)."""
    img = rgb.astype(np.float32)
    if name == "camvid-espnet":
        img = img[:, :, ::-1]
        img = (img - np.float32(zoo.ESPNET_MEAN_BGR)) / np.float32(zoo.ESPNET_STD_BGR) / 255
    elif name == "camvid-cgnet":
        img = img - np.float32(zoo.CGNET_MEAN_BGR)
    else:
        img = (img / 255 - np.float32(zoo.IMAGENET_MEAN)) / np.float32(zoo.IMAGENET_STD)
    return as_input(img)


@pytest.mark.parametrize("name", SHIPPED)
def test_bundle_matches_published_weights(name, first_test_frame, weights_available):
    """Our eager architecture with the .pth loaded strictly vs the shipped TorchScript module,
    on a whole real frame: every logit and feature."""
    spec = zoo.SPECS[name]
    rgb = frame_rows(name, first_test_frame)
    net = zoo.load_network(spec)  # strict=True inside
    with torch.inference_mode():
        ref_logits, ref_features = net(preprocess_like_authors(name, rgb))
    keep = spec.keep_channels or list(range(ref_logits.shape[1]))
    logits, features = run_bundle(name, rgb)
    assert logits.dtype == torch.float32 and logits.is_contiguous()
    assert (logits - ref_logits[:, keep]).abs().max().item() < TOLERANCE
    assert (features - ref_features).abs().max().item() < TOLERANCE


@pytest.mark.parametrize("name", SHIPPED)
def test_bundle_shapes_follow_manifest(name):
    b = bundle.read(name)
    module = b.load_module()
    m = b.size_multiple
    for h, w in [(-(-360 // m) * m, 480), (720, 960), (15 * m, 23 * m)]:
        img = torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8)
        with torch.inference_mode():
            logits, features = module(img)
        s, f = b.logits_stride, b.manifest["features"]["stride"]
        assert list(logits.shape) == [1, b.num_classes, h // s, w // s]
        assert list(features.shape) == [1, b.manifest["features"]["channels"], h // f, w // f]


def test_export_reproduces_shipped_bundle(tmp_path, weights_available, first_test_frame):
    """Re-exporting the default bundle from the architecture code gives the shipped module's
    outputs: the committed bundle is not stale."""
    name = zoo.DEFAULT_BUNDLE
    fresh = torchscript.to_torchscript(torchscript.image_module(zoo.SPECS[name]))
    x = as_input(first_test_frame)
    with torch.inference_mode():
        want_l, want_f = fresh(x)
    got_l, got_f = run_bundle(name, first_test_frame)
    assert torch.equal(got_l, want_l) and torch.equal(got_f, want_f)


@pytest.mark.parametrize("name", SHIPPED)
def test_packed_rgb_view_is_accepted(name, first_test_frame):
    """The element may hand over its packed RGB buffer as [1,H,W,3] permuted to [1,3,H,W]
    (channels_last strides, no copy): same outputs as a contiguous NCHW copy."""
    rgb = frame_rows(name, first_test_frame)
    module = bundle.read(name).load_module()
    view = torch.from_numpy(np.array(rgb)).unsqueeze(0).permute(0, 3, 1, 2)
    with torch.inference_mode():
        a_l, a_f = module(view)
        b_l, b_f = module(view.contiguous())
    assert torch.equal(a_l, b_l) and torch.equal(a_f, b_f)
