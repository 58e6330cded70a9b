"""Neuron dynamics against hand-computed traces and against Norse's own functional steps."""
import pytest
import torch
from norse.torch.functional.iaf import IAFParameters, iaf_feed_forward_step, IAFFeedForwardState
from norse.torch.functional.lif_box import LIFBoxFeedForwardState, LIFBoxParameters, lif_box_feed_forward_step

from ddla_neuro.snn.functional import (NeuronParameters, if_parameters, lif_box_parameters, lif_parameters,
                                       neuron_sequence, neuron_step)


def trace(x, p):
    z, _ = neuron_sequence(torch.tensor(x).reshape(-1, 1), p)
    return z.flatten().tolist()


def test_if_reset_to_zero_hand_trace():
    # v: 0.6, 1.2 -> fire, 0 ; 0.6 ; 1.2 -> fire ; 0.3 ; 0.3+0.9=1.2 fire
    assert trace([0.6, 0.6, 0.6, 0.6, 0.3, 0.9], if_parameters()) == [0, 1, 0, 1, 0, 1]


def test_if_reset_by_subtraction_keeps_the_residue():
    # v: 0.6 ; 1.2 fire -> 0.2 ; 0.8 ; 1.4 fire -> 0.4 ; 0.7 ; 1.6 fire
    assert trace([0.6, 0.6, 0.6, 0.6, 0.3, 0.9], if_parameters(reset="subtract")) == [0, 1, 0, 1, 0, 1]
    _, v = neuron_sequence(torch.tensor([[0.6], [0.6], [0.6], [0.6], [0.3], [0.9]]), if_parameters(reset="subtract"))
    assert v.item() == pytest.approx(0.6)
    _, v0 = neuron_sequence(torch.tensor([[0.6], [0.6], [0.6], [0.6], [0.3], [0.9]]), if_parameters())
    assert v0.item() == 0.0


def test_threshold_is_strict():
    assert trace([1.0, 0.0], if_parameters()) == [0, 0]
    assert trace([1.0, 1e-6], if_parameters()) == [0, 1]


def test_lif_tet_form_hand_trace():
    # v = 0.5 v + x: 0.8 ; 0.4+0.8=1.2 fire -> 0 ; 0.8 ; 1.2 fire
    assert trace([0.8, 0.8, 0.8, 0.8], lif_parameters(decay=0.5)) == [0, 1, 0, 1]
    # a constant 0.5 input never reaches 1 with decay 0.5 (fixed point 1.0, approached from below)
    assert trace([0.5] * 10, lif_parameters(decay=0.5)) == [0] * 10


def test_threshold_and_leak_are_parameters():
    assert trace([0.6, 0.6, 0.6], if_parameters(v_th=1.5)) == [0, 0, 1]
    assert trace([0.6, 0.6, 0.6], lif_parameters(decay=0.1)) == [0, 0, 0]


def test_if_equals_norse_iaf_exactly():
    torch.manual_seed(0)
    x = torch.rand(20, 64) * 0.8
    z, _ = neuron_sequence(x, if_parameters(v_th=1.0))
    state, ref = IAFFeedForwardState(v=torch.zeros(64)), []
    for xt in x:
        zt, state = iaf_feed_forward_step(xt, state, IAFParameters(method="heaviside"))
        ref.append(zt)
    assert torch.equal(z, torch.stack(ref))


def test_lif_box_matches_norse_lif_box():
    torch.manual_seed(1)
    x = torch.rand(20, 64) * 2.5
    tau = 2.0
    z, _ = neuron_sequence(x, lif_box_parameters(tau=tau))
    p = LIFBoxParameters(tau_mem_inv=torch.tensor(1 / tau), method="heaviside", alpha=1.0)
    state, ref = LIFBoxFeedForwardState(v=torch.zeros(64)), []
    for xt in x:
        zt, state = lif_box_feed_forward_step(xt, state, p, dt=1.0)
        ref.append(zt)
    assert torch.equal(z, torch.stack(ref))


def test_triangle_surrogate_gradient():
    x = torch.tensor([0.5, 1.0, 1.5, 3.0], requires_grad=True)
    z, _ = neuron_step(x, torch.zeros(4), if_parameters())
    z.sum().backward()
    # d/dx of triangle surrogate around v_th = 1: relu(1 - |x - 1|)
    assert torch.allclose(x.grad, torch.tensor([0.5, 1.0, 0.5, 0.0]))


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError):
        NeuronParameters(reset="random")
    with pytest.raises(ValueError):
        NeuronParameters(decay=1.5)
