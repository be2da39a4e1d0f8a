"""AR-Seg parts: CReFF against a naive unfold reference, its borders and crops, the feature warp,
and the shipped `arseg` bundle's methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from vss_models import arseg, bundle, motion
from vss_models.bisenet import BiSeNet


def randomised(channels: int, seed: int = 0) -> arseg.CReFF:
    torch.manual_seed(seed)
    creff = arseg.CReFF(channels)
    for conv in (creff.query, creff.key, creff.value):
        torch.nn.init.normal_(conv.weight)
        torch.nn.init.normal_(conv.bias)
    return creff


def naive(creff: arseg.CReFF, low: torch.Tensor, warped: torch.Tensor) -> torch.Tensor:
    """The attention written with unfold (49x the memory): the definition the loop must match."""
    n, c, h, w = low.shape
    win = creff.window
    q = creff.query(low)
    k = F.unfold(creff.key(warped), win, padding=win // 2).view(n, c, win * win, h, w)
    v = F.unfold(creff.value(warped), win, padding=win // 2).view(n, c, win * win, h, w)
    weights = torch.softmax((q[:, :, None] * k).sum(1), 1)  # [n, 49, h, w]
    return low + (weights[:, None] * v).sum(2)


def test_creff_equals_the_unfold_reference_with_and_without_autograd():
    creff = randomised(5)
    low, warped = torch.randn(2, 5, 11, 13), torch.randn(2, 5, 11, 13)
    with torch.no_grad():
        want = naive(creff, low, warped)
        in_place = creff(low, warped)
        scripted = torch.jit.script(creff)(low, warped)
    trained = creff(low, warped)  # parameters require grad: the autograd path
    assert trained.requires_grad and not in_place.requires_grad
    for got in (in_place, scripted, trained.detach()):
        assert got.shape == (2, 5, 11, 13)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_outside_positions_contribute_zero_similarity_and_value():
    # A 1x1 map: 48 of the 49 offsets fall outside. They weigh exp(0) each and bring value 0;
    # the one inside brings exp(q.k) * v.
    creff = randomised(3, seed=1)
    low, warped = torch.randn(1, 3, 1, 1), torch.randn(1, 3, 1, 1)
    with torch.no_grad():
        q, k, v = creff.query(low), creff.key(warped), creff.value(warped)
        inside = torch.exp((q * k).sum(1, keepdim=True))
        want = low + inside / (inside + 48.0) * v
        got = creff(low, warped)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("crop", [(0, 0, 5, 6), (3, 4, 6, 7), (9, 10, 4, 5), (0, 0, 13, 15)])
def test_training_crops_equal_the_full_map(crop):
    creff = randomised(4, seed=2)
    low, warped = torch.randn(2, 4, 13, 15), torch.randn(2, 4, 13, 15)
    top, left, h, w = crop
    with torch.no_grad():
        full = creff(low, warped)[:, :, top : top + h, left : left + w]
        got = creff.forward_crop(low, warped, *crop)
    torch.testing.assert_close(got, full, rtol=1e-5, atol=1e-5)


def test_feature_warp_follows_the_motion_twin():
    # A uniform 2 px move to the right in the keyframe = one feature position at stride 2.
    field = motion.zero_field(48, 32, 4)
    field.dx[:] = 2.0
    grid = torch.from_numpy(motion.to_grid(field, 16, 24))[None]
    features = torch.randn(1, 3, 16, 24)
    warped = arseg.warp_features(features, grid)
    torch.testing.assert_close(warped[..., :-1], features[..., 1:], rtol=1e-5, atol=1e-5)
    # Border padding: the last column reads the keyframe's last column.
    torch.testing.assert_close(warped[..., -1], features[..., -1], rtol=1e-5, atol=1e-5)
    identity = torch.from_numpy(motion.to_grid(motion.zero_field(48, 32, 4), 16, 24))[None]
    torch.testing.assert_close(arseg.warp_features(features, identity), features, rtol=1e-5, atol=1e-5)


def shipped_arseg():
    names = [n for n in bundle.shipped_names() if bundle.read(n).manifest["scheme"] == "arseg"]
    if not names:
        pytest.skip("no arseg bundle shipped")
    return names


def test_shipped_arseg_bundles_run_their_methods():
    for name in shipped_arseg():
        b = bundle.read(name)
        m = b.manifest
        module = b.load_module()
        h, w = m["input"]["native_size"]
        lh, lw = m["lowres_size"]
        img = torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8)
        img_lr = torch.randint(0, 256, (1, 3, lh, lw), dtype=torch.uint8)
        with torch.inference_mode():
            logits, features = module.keyframe(img)
            fwd_logits, _ = module(img)
            s = m["features"]["stride"]
            identity = torch.from_numpy(motion.to_grid(motion.zero_field(w, h, 4), h // s, w // s))[None]
            warped = module.warp(features, identity)
            fused_logits, fused = module.nonkeyframe(img_lr, warped)
        k = len(m["classes"])
        assert logits.shape == fused_logits.shape == (1, k, h, w)
        assert features.shape == fused.shape == (1, m["features"]["channels"], h // s, w // s)
        assert torch.equal(logits, fwd_logits)
        torch.testing.assert_close(warped, features, rtol=1e-4, atol=1e-4 * float(features.abs().max()))
        assert np.isfinite(fused_logits.numpy()).all()


def test_bisenet_fusion_point_is_the_map_its_head_reads():
    """AR-Seg on BiSeNet: `features` is the map `forward` returns, `classify` of it gives
    `forward`'s logits (away from the bottom and right edges, where `forward`'s head saw the
    padding to 32 and its upsampling the padded rows); a
    low-res branch built from it starts as the same network with its map halved."""
    torch.manual_seed(0)
    net = BiSeNet().eval()
    x = torch.randn(1, 3, 72, 104)  # padded to 96x128 inside
    with torch.no_grad():
        logits, features = net(x)
        assert torch.equal(net.features(x), features)
        assert features.shape == (1, 128, 9, 13)
        classified = net.classify(features)
        assert classified.shape == logits.shape
        torch.testing.assert_close(classified[:, :, :56, :88], logits[:, :, :56, :88], rtol=1e-4, atol=1e-4)
        lowres, creff, low_scale = arseg.build(net, 128, window=5)
        assert low_scale == 0.5 and creff.window == 5
        assert torch.equal(lowres.features(x), features)


def test_gated_creff_mixes_by_its_gate_and_crops_agree():
    """Gated CReFF: a gate shut to the attended map gives the low-res map, opened fully the
    attended one; the crop path equals the full map's window; TorchScript agrees."""
    torch.manual_seed(0)
    creff = arseg.CReFF(8, 5, gated=True).eval()
    low, warped = torch.randn(1, 8, 14, 18), torch.randn(1, 8, 14, 18)
    with torch.no_grad():
        attended = creff.attention(creff.query(low), creff.key(warped), creff.value(warped))
        creff.gate.bias.fill_(-50.0)
        torch.testing.assert_close(creff(low, warped), low)
        creff.gate.bias.fill_(50.0)
        torch.testing.assert_close(creff(low, warped), attended)
        torch.nn.init.normal_(creff.gate.weight, std=0.3)
        creff.gate.bias.fill_(0.0)
        full = creff(low, warped)
        crop = creff.forward_crop(low, warped, 2, 3, 8, 10)
        torch.testing.assert_close(crop, full[:, :, 2:10, 3:13], rtol=1e-5, atol=1e-5)
        scripted = torch.jit.freeze(torch.jit.script(creff))
        torch.testing.assert_close(scripted(low, warped), full, rtol=1e-5, atol=1e-5)
