"""TDD identities, GSC against finite differences, top-k selection, the DDLA step."""
import math
from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from ddla_neuro.ddla.approx import ddla_step
from ddla_neuro.ddla.gsc import Priority, keep_count, priority_cut, sensitivity, topk_mask
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


@given(st.integers(1, 60), st.integers(0, 10**6), st.integers(0, 10**6))
@settings(max_examples=80, deadline=None)
def test_topk_keeps_exactly_ceil_k_n(n, keep_millionths, seed):
    keep = keep_millionths / 10**6  # k has a resolution of 1e-6
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(3, n, generator=g)
    cand = torch.rand(3, n, generator=g) < 0.6
    mask = topk_mask(scores, cand, keep)
    assert not (mask & ~cand).any()
    for b in range(3):
        nb = int(cand[b].sum())
        assert int(mask[b].sum()) == int(keep_count(torch.tensor(nb), keep))
        assert int(mask[b].sum()) == math.ceil(Fraction(keep_millionths, 10**6) * nb)
        if mask[b].any() and (cand[b] & ~mask[b]).any():  # every kept score >= every dropped one
            assert scores[b][mask[b]].min() >= scores[b][cand[b] & ~mask[b]].max()


def test_keep_count_is_exact():
    assert keep_count(torch.tensor(10), 0.7).item() == 7  # float 0.7 * 10 = 7.000000000000001
    assert keep_count(torch.tensor(3), 0.5).item() == 2
    assert keep_count(torch.tensor(0), 0.5).item() == 0


@given(st.integers(1, 60), st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 5))
@settings(max_examples=80, deadline=None)
def test_priority_cut_selects_as_topk_on_unit_deltas(n, keep_millionths, seed, levels):
    # per-neuron statistics with many ties (few levels, zeros included), deltas of +-1
    keep = keep_millionths / 10**6
    g = torch.Generator().manual_seed(seed)
    stats = torch.randint(0, levels, (n,), generator=g).float() / levels
    d = torch.randint(-1, 2, (4, n), generator=g).float()
    expected = topk_mask(stats * d.abs(), d != 0, keep)
    assert torch.equal(d.abs() * priority_cut(Priority(stats), d.abs(), keep) == 1, expected)


@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 10**6), st.integers(0, 10**6),
       st.sampled_from(["contiguous", "channels_last", "flat"]))
@settings(max_examples=60, deadline=None)
def test_priority_cut_is_the_same_selection_in_every_memory_layout(c, hw, keep_millionths, seed, layout):
    """Conv feature maps in channels-last memory (which the selection reads in memory order,
    through a permuted priority) or flattened select exactly what top-k selects on the
    contiguous map, and the mask comes back in the input's layout."""
    keep = keep_millionths / 10**6
    g = torch.Generator().manual_seed(seed)
    stats = torch.randint(0, 3, (c, hw, hw), generator=g).float()
    d = torch.randint(-1, 2, (3, c, hw, hw), generator=g).float()
    expected = topk_mask(stats * d.abs(), d != 0, keep)
    x = {"contiguous": d, "channels_last": d.contiguous(memory_format=torch.channels_last),
         "flat": d.reshape(3, -1)}[layout]
    cut = priority_cut(Priority(stats), x.abs(), keep)
    assert cut.stride() == x.stride()
    assert torch.equal((x.abs() * cut == 1).reshape(expected.shape), expected)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_priority_cut_selects_the_same_in_every_float_dtype(dtype):
    # ranks past 256 (bfloat16) or 2048 (float16) are not integers in a half type
    g = torch.Generator().manual_seed(0)
    stats = torch.rand(5000, generator=g)
    d = torch.randint(-1, 2, (3, 5000), generator=g).float()
    expected = priority_cut(Priority(stats), d.abs(), 0.5)
    cut = priority_cut(Priority(stats), d.abs().to(dtype), 0.5)
    assert cut.dtype == dtype and torch.equal(cut.float(), expected)


def test_topk_breaks_ties_by_lower_index():
    scores = torch.ones(1, 6)
    mask = topk_mask(scores, torch.ones(1, 6, dtype=torch.bool), 0.5)
    assert mask.tolist() == [[True, True, True, False, False, False]]


def test_dropped_deltas_are_held_not_zeroed():
    held = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    s = torch.tensor([[0.0, 0.0, 1.0, 1.0]])  # every entry changes
    scores = torch.tensor([[4.0, 1.0, 3.0, 2.0]])
    step = ddla_step(s, held, scores, keep=0.5)
    # kept: entries 0 and 2 (highest scores); entries 1 and 3 keep what the receiver held
    assert step.transmitted.tolist() == [[0.0, 1.0, 1.0, 0.0]]
    assert step.sent.tolist() == [[-1.0, 0.0, 1.0, 0.0]]
    assert step.dropped.tolist() == [[False, True, False, True]]
    assert math.isclose(step.sensitivity_loss.item(), 0.5)


def test_first_step_and_keep_one_are_lossless():
    s = (torch.rand(2, 10) < 0.5).float()
    first = ddla_step(s, None, None, keep=0.1)
    assert torch.equal(first.transmitted, s) and first.sensitivity_loss.item() == 0
    held = (torch.rand(2, 10) < 0.5).float()
    full = ddla_step(s, held, torch.rand(2, 10), keep=1.0)
    assert torch.equal(full.transmitted, s) and not full.dropped.any()


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.booleans())
@settings(max_examples=40, deadline=None)
def test_priority_path_of_the_ddla_step_is_the_top_k_path_values_and_gradients(keep_millionths, seed, channels_last):
    """The O(n) selection by a fixed priority and the top-k of statistics * |delta| send the
    same deltas and pass the same gradients to the spikes and to what the receivers held (none
    where no delta was sent), in either memory layout."""
    keep = keep_millionths / 10**6
    g = torch.Generator().manual_seed(seed)
    stats = torch.randint(0, 4, (3, 4, 4), generator=g).float()
    spikes = [(torch.rand(5, 3, 4, 4, generator=g) > 0.5).float() for _ in range(2)]
    upstream = torch.randn(5, 3, 4, 4, generator=g)
    if channels_last:
        spikes = [x.contiguous(memory_format=torch.channels_last) for x in spikes]
    results = []
    for by_priority in (True, False):
        s, held = (x.clone().requires_grad_() for x in spikes)
        step = (ddla_step(s, held, None, keep, Priority(stats)) if by_priority
                else ddla_step(s, held, stats * (s - held).detach().abs(), keep))
        ((step.transmitted * upstream).sum() + step.sensitivity_loss).backward()
        results.append((step.sent.detach(), step.transmitted.detach(), s.grad, held.grad))
    for a, b in zip(*results):  # keep = 1 sends everything: nothing reaches held
        assert (a is None and b is None) or torch.equal(a, b)
