"""The `tdnet` scheme (vss_models/tdnet.py): the step contract the element relies on, round-robin
sub-networks, attention propagation, and that training unrolls the very step the bundle exports."""

from __future__ import annotations

import pytest
import torch

import train_tdnet
from vss_models import tdnet
from vss_models.espnet import ESPNet

SIZE = (64, 96)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def model(gamma: float = 0.0) -> tdnet.TDNetSegmenter:
    torch.manual_seed(0)
    net = tdnet.TDNet(ESPNet(classes=12, p=2, q=8))
    net.keep_classes(list(range(11)))
    with torch.no_grad():
        net.apm.gamma.fill_(gamma)
    return tdnet.TDNetSegmenter(net, [2, 1, 0], [110.0, 108.0, 105.0], [72.0, 72.0, 70.0]).eval()


def frames(n: int):
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, 256, (1, 3, *SIZE), dtype=torch.uint8, generator=g) for _ in range(n)]


def test_step_shapes_and_memory():
    m = model()
    img = frames(1)[0]
    with torch.no_grad():
        logits, features, memory = m.step(img, 0, [])
    h, w = SIZE
    assert logits.shape == (1, 11, h, w) and logits.is_contiguous()
    assert features.shape == (1, 256, h // 8, w // 8)
    k, v = memory
    pooled = (-(-h // 8 // tdnet.POOL), -(-w // 8 // tdnet.POOL))
    assert k.shape == (1, tdnet.KEY_CHANNELS, *pooled)
    assert v.shape == (1, 256, *pooled)


def test_forward_is_a_step_from_a_reset():
    m = model(gamma=0.5)
    img = frames(1)[0]
    with torch.no_grad():
        a = m(img)
        b = m.step(img, 0, [])
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_slots_pick_different_subnetworks_and_wrap():
    m = model()
    img = frames(1)[0]
    with torch.no_grad():
        s0 = m.step(img, 0, [])[0]
        s1 = m.step(img, 1, [])[0]
        s2 = m.step(img, tdnet.SUBNETWORKS, [])[0]
    assert not torch.allclose(s0, s1)
    assert torch.equal(s0, s2)


def test_memory_matters_only_through_the_attention_gain():
    first, second = frames(2)
    closed, opened = model(gamma=0.0), model(gamma=1.0)
    with torch.no_grad():
        for m, should_change in ((closed, False), (opened, True)):
            memory = m.step(first, 0, [])[2]
            with_memory = m.step(second, 1, memory)[0]
            without = m.step(second, 1, [])[0]
            assert torch.allclose(with_memory, without) != should_change


def test_torchscript_step_equals_eager():
    m = model(gamma=0.7)
    scripted = torch.jit.freeze(torch.jit.script(m), preserved_attrs=["step"])
    memory_e: list = []
    memory_s: list = []
    with torch.no_grad():
        for i, img in enumerate(frames(3)):
            le, fe, memory_e = m.step(img, i, memory_e)
            ls, fs, memory_s = scripted.step(img, i, memory_s)
            assert torch.allclose(le, ls, atol=1e-4), (i, (le - ls).abs().max())
            assert torch.allclose(fe, fs, atol=1e-4)


def test_training_unrolls_the_exported_step_and_reaches_the_attention():
    m = model(gamma=0.1)
    m.train()
    train_tdnet.freeze_bn(m)
    k = 11
    window = [
        (
            img,
            torch.randint(0, 12, (1, *SIZE)),
            torch.randn(1, k, SIZE[0] // 4, SIZE[1] // 4),
            torch.randn(1, train_tdnet.FEATURE_CHANNELS, SIZE[0] // 8, SIZE[1] // 8),
        )
        for img in frames(2)
    ]
    adapters = train_tdnet.Adapters()
    out = train_tdnet.losses(m, window, slot=1, adapters=adapters)
    assert set(out) == {"ce", "kd", "gkd"} and all(torch.isfinite(v) for v in out.values())
    (out["ce"] + out["kd"] + out["gkd"]).backward()
    # Grouped distillation: both sub-networks' group adapters (slots 1 then 0) and the whole-map
    # adapter learn.
    for conv in [*adapters.groups, adapters.whole]:
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    # The second frame read the first's memory: the attention's parameters get gradients.
    assert m.net.apm.gamma.grad is not None and float(m.net.apm.gamma.grad.abs()) > 0
    assert m.net.apm.query.weight.grad.abs().sum() > 0
    # Sub-network 1 ran for the first frame, sub-network 0 (wrapped) for the second.
    for sub in m.net.subnets:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in sub.parameters())
