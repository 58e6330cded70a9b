import pytest
import torch

from ddla_neuro.snn.encoders import encode


def test_direct_repeats_the_input():
    x = torch.rand(3, 1, 4, 4)
    seq = encode(x, "direct", 5)
    assert seq.shape == (5, 3, 1, 4, 4)
    assert all(torch.equal(s, x) for s in seq)


def test_poisson_rate_and_reproducibility():
    x = torch.full((2000,), 0.3)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    a, b = encode(x, "poisson", 10, g1), encode(x, "poisson", 10, g2)
    assert torch.equal(a, b)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert abs(a.mean().item() - 0.3) < 0.02


def test_events_pass_through_time_first():
    x = torch.rand(2, 6, 2, 5, 5)
    assert torch.equal(encode(x, "events", 6)[3], x[:, 3])
    with pytest.raises(ValueError):
        encode(x, "events", 4)
