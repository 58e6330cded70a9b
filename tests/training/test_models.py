"""Every zoo model: forward/backward, multi-step == single-step, and BN folding."""
import pytest
import torch
from torch import nn

from ddla_neuro.snn.fold import fold_batchnorm, fold_bn
from ddla_neuro.snn.layers import neurons
from ddla_neuro.zoo import build_model

SHAPES = {"mlp": (1, 8, 8), "convnet": (1, 8, 8), "vgg": (3, 32, 32), "resnet19": (3, 32, 32), "sdt": (3, 32, 32)}


def randomise_bn(net: nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics and affine parameters, so folding has something to do."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_forward_backward_batch2_T2(name):
    torch.manual_seed(0)
    net = build_model(name, num_classes=10, input_shape=SHAPES[name], timesteps=2)
    out = net.run(torch.rand(2, *SHAPES[name]) * 2)
    assert out.shape == (2, 2, 10)
    out.mean().backward()
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_multi_step_equals_single_step(name):
    torch.manual_seed(1)
    net = build_model(name, num_classes=10, input_shape=SHAPES[name], timesteps=3).eval()
    randomise_bn(net)
    x = torch.rand(2, *SHAPES[name]) * 3
    spikes = {"multi": {}, "single": {}}

    def recorder(mode):  # the transmission hook: records every population's spikes, sends them unchanged
        def record(neuron, z):
            spikes[mode].setdefault(neuron.key, []).append(z.detach())
            return z
        return record

    with torch.no_grad():
        a = net.run(x, transmit=recorder("multi"))
        b = net.run(x, single_step=True, transmit=recorder("single"))
    # float32 GEMMs over T*B rows vs B rows may round differently (torch does not promise
    # batch-invariant results; torch 2.14 differs by one ulp): outputs agree to rounding, spikes exactly
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    keys = [n.key for n in neurons(net)]
    assert list(spikes["multi"]) == list(spikes["single"]) == keys  # every population, in call order
    for key in keys:
        (multi,), single = spikes["multi"][key], spikes["single"][key]
        assert multi.shape[0] == len(single) == 3
        for t in range(3):  # per layer and step
            assert torch.equal(multi[t], single[t]), (key, t)
    assert sum(float(z.sum()) for zs in spikes["single"].values() for z in zs) > 0


def test_multi_step_equals_single_step_in_training_gradients():
    # Without BN (whose batch statistics differ between the modes) training is identical too.
    torch.manual_seed(2)
    net = build_model("mlp", num_classes=10, input_shape=(1, 8, 8), timesteps=4)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.eval()
    x = torch.rand(4, 1, 8, 8) * 2
    grads = []
    for single in (False, True):
        net.zero_grad()
        net.run(x, single_step=single).square().sum().backward()
        grads.append([p.grad.clone() for p in net.parameters()])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))


def test_fold_bn_conv_and_linear_exact_in_eval():
    torch.manual_seed(3)
    conv, bn = nn.Conv2d(3, 8, 3, padding=1, bias=True), nn.BatchNorm2d(8)
    lin, bn1 = nn.Linear(16, 5, bias=False), nn.BatchNorm1d(5)
    for b in (bn, bn1):
        randomise_bn(nn.Sequential(b))
        b.eval()
    x = torch.randn(4, 3, 6, 6)
    assert torch.allclose(fold_bn(conv, bn)(x), bn(conv(x)), atol=1e-5)
    y = torch.randn(4, 16)
    assert torch.allclose(fold_bn(lin, bn1)(y), bn1(lin(y)), atol=1e-5)


@pytest.mark.parametrize("name", ["convnet", "resnet19"])
def test_fold_batchnorm_network(name):
    torch.manual_seed(4)
    net = build_model(name, num_classes=10, input_shape=SHAPES[name], timesteps=2).eval()
    randomise_bn(net)
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    x = torch.rand(2, *SHAPES[name])
    with torch.no_grad():
        assert torch.allclose(folded.run(x), net.run(x), atol=1e-4)
