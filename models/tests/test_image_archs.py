"""The networks trained from scratch (BiSeNet, ICNet, dynamic routing) and their training loop:
bundle contract shapes, TorchScript = eager, gate skipping, budget loss, resumable training."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import train_image
from vss_models import torchscript, zoo
from vss_models.bisenet import BiSeNet
from vss_models.dynroute import DOWN, KEEP, UP, DynamicRouting
from vss_models.icnet import ICNet

ARCHS = list(zoo.ARCHITECTURES)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: these are small tensors, and 2 OpenMP threads on a shared 2-core
    machine spend more time waiting for each other than computing."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FEATURES = {"bisenet": (128, 8), "icnet": (128, 8), "dynroute": (64, 4)}


def segmenter(arch: str):
    torch.manual_seed(0)
    return train_image.build_segmenter(arch).eval()


def frame(h: int, w: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (1, 3, h, w), dtype=torch.uint8, generator=gen)


@pytest.mark.parametrize("arch", ARCHS)
def test_bundle_contract_shapes(arch):
    """uint8 RGB in, (logits [1,11,H,W], features [1,C,H/s,W/s]) out, contiguous, at CamVid's
    360x480 (not a multiple of 32: padded inside) and at a small size."""
    module = segmenter(arch)
    channels, stride = FEATURES[arch]
    for h, w in ((360, 480), (72, 104)):
        with torch.inference_mode():
            logits, features = module(frame(h, w))
        assert list(logits.shape) == [1, 11, h, w]
        assert list(features.shape) == [1, channels, h // stride, w // stride]
        assert logits.is_contiguous() and features.is_contiguous()
        assert torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_frozen_torchscript_matches_eager(arch):
    """The module export.py writes (scripted + frozen, channels_last) gives the eager outputs.
    Dynamic routing is checked with 1 routing layer here (scripting all 8 takes ~40 s; the same
    cell code) and with more in the gate test."""
    module = segmenter(arch)
    if arch == "dynroute":
        module.net = DynamicRouting(layers=1).eval()
    module.channels_last = True
    module = module.to(memory_format=torch.channels_last)
    scripted = torchscript.to_torchscript(module, freeze=True)
    img = frame(72, 104, seed=1)
    with torch.inference_mode():
        logits, features = module(img)
        s_logits, s_features = scripted(img)
    assert s_logits.shape == logits.shape and s_features.shape == features.shape
    assert (s_logits - logits).abs().max().item() < 1e-3
    assert (s_features - features).abs().max().item() < 1e-3


@pytest.mark.parametrize(
    "build,low,high", [(BiSeNet, 2.5e6, 4.5e6), (ICNet, 2.5e6, 4.5e6), (DynamicRouting, 3.5e6, 5.5e6)]
)
def test_parameter_counts(build, low, high):
    params = sum(p.numel() for p in build().parameters())
    assert low <= params <= high, params


def close_gate(net: DynamicRouting, layer: int, level: int, path: int) -> None:
    """Gate weights are zero at init, so a very negative bias closes the path for any image."""
    with torch.no_grad():
        net.layers[layer].cells[level].gate_fc.bias[path] = -20.0


def poison(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(float("nan"))


def test_dynroute_closed_gate_skips_the_path():
    """A closed path is never computed (its weights poisoned with NaN leave the output finite
    and unchanged), in eager mode and in the frozen TorchScript module; a node that nothing
    reaches is skipped whole."""
    torch.manual_seed(0)
    net = DynamicRouting(layers=2).eval()
    x = torch.randn(1, 3, 64, 64)
    close_gate(net, 1, 0, DOWN)  # layer 1, stride 4 -> stride 8
    # Every path into layer 1's stride-8 node closed: the node is skipped whole.
    close_gate(net, 0, 0, DOWN)
    close_gate(net, 0, 1, KEEP)
    close_gate(net, 0, 2, UP)
    with torch.no_grad():
        ref_logits, _, gates = net.run(x, True)
    assert gates[1][0, 0, DOWN].item() == 0.0 and gates[0][0, 0, DOWN].item() == 0.0
    assert gates[0][0, 1, KEEP].item() == 0.0 and gates[0][0, 2, UP].item() == 0.0
    assert gates[1][0, 1].abs().sum().item() == 0.0  # the unreached node reports closed gates
    assert gates[1][0, 0, KEEP].item() > 0.0
    opened = copy.deepcopy(net)
    calls = []
    hooks = [
        net.layers[1].cells[0].down.register_forward_hook(lambda *_: calls.append("down")),
        net.layers[1].cells[1].register_forward_hook(lambda *_: calls.append("node")),
    ]
    with torch.no_grad():
        logits, _ = net(x)
    assert calls == [] and torch.equal(logits, ref_logits)
    for hook in hooks:
        hook.remove()
    poison(net.layers[1].cells[0].down)
    poison(net.layers[1].cells[1])  # the unreached node's cell, gate and paths
    poison(net.layers[0].cells[0].down)
    poison(net.layers[0].cells[2].up)
    scripted = torch.jit.freeze(torch.jit.script(net))
    with torch.no_grad():
        s_logits, _ = scripted(x)
    assert torch.isfinite(s_logits).all()
    assert (s_logits - ref_logits).abs().max().item() < 1e-4
    # The same path open: it runs and changes the output.
    with torch.no_grad():
        opened.layers[1].cells[0].gate_fc.bias[DOWN] = 1.5
        assert (opened(x)[0] - ref_logits).abs().max().item() > 1e-6


def reachable_gates(net: DynamicRouting, value: float) -> list:
    """Synthetic gates: `value` on every existing path of every node (all reachable: the trunk
    feeds every node of the first layer)."""
    layers = len(net.layers)
    gates = []
    for li in range(layers):
        g = torch.zeros(1, 4, 3)
        for si in range(4):
            g[0, si] = value * net.layers[li].cells[si].path_mask
        gates.append(g)
    return gates


def test_dynroute_budget_loss_grows_with_open_gates_and_is_differentiable():
    torch.manual_seed(0)
    net = DynamicRouting(layers=4)
    full = net.expected_cost(reachable_gates(net, 1.0))
    assert math.isclose(full.item(), 1.0, rel_tol=1e-5)
    costs = [net.budget_loss(reachable_gates(net, v), 0.1)[0].item() for v in (0.2, 0.5, 0.9)]
    assert costs[0] < costs[1] < costs[2]
    closed = reachable_gates(net, 1.0)
    closed[2][0, 1, UP] = 0.0
    assert net.expected_cost(closed).item() < full.item()
    # Through the real gates: the budget term reaches the gate heads' parameters.
    net.train()
    _, _, gates = net.run(torch.randn(2, 3, 64, 64), True)
    loss, ratio = net.budget_loss(gates, 0.0)
    assert 0.0 < ratio.item() <= 1.0
    loss.backward()
    grads = [
        c.gate_fc.bias.grad for layer in net.layers for c in layer.cells if c.gate_fc.bias.grad is not None
    ]
    assert grads and any(g.abs().sum().item() > 0 for g in grads)


def tiny_split(n: int = 2, seed: int = 0) -> train_image.Split:
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(n)]
    labels = [rng.integers(0, 12, (48, 48), dtype=np.uint8) for _ in range(n)]
    return train_image.Split(images, labels)


def train_args(arch: str, steps: int, folder):
    return train_image.parser().parse_args(
        [
            "--arch",
            arch,
            "--max-steps",
            str(steps),
            "--batch",
            "2",
            "--crop",
            "32x32",
            "--threads",
            "1",
            "--epochs",
            "10",
            "--warmup-steps",
            "0",
            "--out",
            str(folder),
        ]
    )


def test_training_resumes_to_the_same_step_and_weights(tmp_path):
    """2 steps in one run equal 1 step + a resumed step: same step count, same weights."""
    data = tiny_split()
    straight = train_image.train(train_args("bisenet", 2, tmp_path / "a"), data, data, tmp_path / "a")
    train_image.train(train_args("bisenet", 1, tmp_path / "b"), data, data, tmp_path / "b")
    resumed = train_image.train(train_args("bisenet", 2, tmp_path / "b"), data, data, tmp_path / "b")
    assert straight["step"] == resumed["step"] == 2
    assert straight["epoch"] == resumed["epoch"] == 2  # 2 images, batch 2: one step per epoch
    a = torch.load(tmp_path / "a" / "latest.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / "latest.pt", weights_only=False)["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k
    assert (tmp_path / "b" / "best.pt").is_file()
    assert "resumed" in (tmp_path / "b" / "train.log").read_text()


def test_backbone_from_another_checkpoint_starts_a_new_run(tmp_path):
    """--backbone-from: ICNet's new run starts with the backbone of a BiSeNet checkpoint (same
    EfficientNet-Lite0 weights, dilated or not), and says so in the state export.py reads; a
    checkpoint without a backbone fails naming the file."""
    data = tiny_split()
    train_image.train(train_args("bisenet", 1, tmp_path / "b"), data, data, tmp_path / "b")
    source = tmp_path / "b" / "latest.pt"
    args = train_args("icnet", 0, tmp_path / "i")
    args.backbone_from = source
    state = train_image.train(args, data, data, tmp_path / "i")
    assert state["backbone_from"].startswith("latest.pt of bisenet step 1")
    bisenet = torch.load(source, weights_only=False)["model"]
    icnet = torch.load(tmp_path / "i" / "latest.pt", weights_only=False)["model"]
    backbone = [k for k in icnet if k.startswith("backbone.")]
    assert backbone and all(torch.equal(icnet[k], bisenet[k]) for k in backbone)
    args = train_args("icnet", 0, tmp_path / "d")
    args.backbone_from = tmp_path / "dyn.pt"
    torch.save({"arch": "dynroute", "model": {"stem.0.weight": torch.zeros(1)}}, args.backbone_from)
    with pytest.raises(SystemExit, match="dyn.pt: no backbone"):
        train_image.train(args, data, data, tmp_path / "d")


def test_dynroute_training_step_uses_the_budget(tmp_path):
    data = tiny_split()
    args = train_args("dynroute", 1, tmp_path)
    net = DynamicRouting(layers=2)
    x, label = train_image.batch_for(data, args, 0, 0)
    out = train_image.segmentation_loss(net, x / 255.0, label, train_image.class_weights(data.labels), args)
    assert "budget" in out["parts"] and 0.0 < out["parts"]["cost"] <= 1.0
    out["total"].backward()
