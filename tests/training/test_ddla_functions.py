"""TDD identities, GSC against finite differences, exact k counts, the DDLA step."""
import math

import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from ddla_neuro.ddla.approx import ddla_step
from ddla_neuro.ddla.gsc import sensitivity
from ddla_neuro.ddla.transmission import keep_count
from ddla_neuro.ddla.tdd import deltas, overlap_ratio, reconstruct, static_dynamic, static_share, xor_changes

binary_seqs = st.builds(
    lambda t, n, seed: (torch.rand(t, n, generator=torch.Generator().manual_seed(seed)) < 0.4).float(),
    st.integers(1, 8), st.integers(1, 40), st.integers(0, 2**31 - 1))


@given(binary_seqs)
@settings(max_examples=60, deadline=None)
def test_deltas_reconstruct_the_sequence(seq):
    assert torch.equal(reconstruct(deltas(seq)), seq)
    static, dynamic = static_dynamic(seq)
    assert torch.equal(static + dynamic, seq)
    assert torch.equal(dynamic, deltas(seq))


@given(binary_seqs, st.integers(0, 1000))
@settings(max_examples=40, deadline=None)
def test_linear_map_of_the_delta(seq, seed):
    # dyadic weights make the float sums exact, so the identity holds bit for bit
    g = torch.Generator().manual_seed(seed)
    w = torch.randint(-64, 64, (7, seq.shape[1]), generator=g).float() / 64
    f = lambda x: x @ w.T  # noqa: E731
    d = deltas(seq)
    for t in range(1, seq.shape[0]):
        assert torch.equal(f(seq[t]), f(seq[t - 1]) + f(d[t]))


def test_conv_of_the_delta():
    torch.manual_seed(0)
    seq = (torch.rand(4, 2, 3, 6, 6) < 0.5).float()
    w = torch.randint(-8, 8, (5, 3, 3, 3)).float() / 8
    f = lambda x: F.conv2d(x, w, padding=1)  # noqa: E731
    d = deltas(seq)
    for t in range(1, 4):
        assert torch.equal(f(seq[t]), f(seq[t - 1]) + f(d[t]))


def test_xor_overlap_and_static_share_hand_counted():
    seq = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0]]).float()
    assert xor_changes(seq).tolist() == [[False, True, True, False], [False, False, False, False]]
    assert overlap_ratio(seq).tolist() == [0.5, 1.0]
    assert static_share(seq).tolist() == [0.5, 1.0]  # t=2: of spikes {0, 2} only 0 was there at t=1


def test_gsc_matches_a_finite_difference_of_the_loss():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    x, y = torch.randn(4, 6, dtype=torch.float64), torch.tensor([0, 2, 1, 1])
    hidden = net[1](net[0](x))
    loss_of = lambda h: F.cross_entropy(net[2](h), y)  # noqa: E731
    zeta = sensitivity(loss_of(hidden), [hidden])[0]
    eps = 1e-6
    base = loss_of(hidden).item()
    for b in range(4):
        for i in range(5):
            h = hidden.detach().clone()
            h[b, i] -= eps * h[b, i]  # move feature i a fraction eps of the way to zero
            fd = (base - loss_of(h).item()) / eps
            assert math.isclose(abs(fd), zeta[b, i].item(), rel_tol=1e-4, abs_tol=1e-9)


def test_keep_count_is_exact():
    assert keep_count(torch.tensor(10), 0.7).item() == 7  # float 0.7 * 10 = 7.000000000000001
    assert keep_count(torch.tensor(3), 0.5).item() == 2
    assert keep_count(torch.tensor(0), 0.5).item() == 0


def test_dropped_deltas_are_held_not_zeroed():
    held = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    s = torch.tensor([[0.0, 0.0, 1.0, 1.0]])  # every entry changes
    step = ddla_step(s, held, torch.tensor([[True, False, True, False]]))
    # sent: entries 0 and 2; entries 1 and 3 keep what the receiver held
    assert step.transmitted.tolist() == [[0.0, 1.0, 1.0, 0.0]]
    assert step.sent.tolist() == [[-1.0, 0.0, 1.0, 0.0]]
    assert (step.delta != step.sent).tolist() == [[False, True, False, True]]
    assert math.isclose(step.sensitivity_loss.item(), 0.5)


def test_first_step_and_sending_everything_are_lossless():
    s = (torch.rand(2, 10) < 0.5).float()
    first = ddla_step(s, None, torch.zeros(2, 10, dtype=torch.bool))
    assert torch.equal(first.transmitted, s) and first.sensitivity_loss.item() == 0
    held = (torch.rand(2, 10) < 0.5).float()
    full = ddla_step(s, held, None)
    assert torch.equal(full.transmitted, s) and full.sensitivity_loss.item() == 0


def test_the_gradient_passes_to_the_spikes_where_sent_and_to_what_was_held_elsewhere():
    g = torch.Generator().manual_seed(0)
    s = (torch.rand(3, 12, generator=g) > 0.5).float().requires_grad_()
    held = (torch.rand(3, 12, generator=g) > 0.5).float().requires_grad_()
    send = torch.rand(3, 12, generator=g) > 0.5
    upstream = torch.randn(3, 12, generator=g)
    (ddla_step(s, held, send).transmitted * upstream).sum().backward()
    torch.testing.assert_close(s.grad, upstream * send)
    torch.testing.assert_close(held.grad, upstream * ~send)
