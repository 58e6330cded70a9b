"""Hand-counted checks of tests/anchors/neurobench_synops.py (NeuroBench's SynapticOperations rules)."""
import pytest
import torch
from torch import nn

from neurobench_synops import connection_layers, neurobench_synops


def linear_3_2() -> nn.Sequential:
    """Linear(3, 2), no bias effect, one zero weight at (0, 1); wrapped because NeuroBench never hooks the root."""
    lin = nn.Linear(3, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.5, 0.0, -1.0], [2.0, 3.0, 1.0]]))
        lin.bias.fill_(7.0)  # bias is never a synaptic op
    return nn.Sequential(lin)


def test_linear_spiking_input_counts_acs_by_hand():
    # input [1, 0, 1]: row 0 has non-zero weights at 0 and 2 -> 2 pairs; row 1 all non-zero -> 2 pairs
    r = neurobench_synops(linear_3_2(), [torch.tensor([[1.0, 0.0, 1.0]])])
    assert r == {"Effective_MACs": 0.0, "Effective_ACs": 4.0, "Dense": 6.0}


def test_zero_weight_only_removes_pairs_with_nonzero_input():
    # input [0, 1, 0]: only column 1 is active; weight (0, 1) is zero, (1, 1) is not -> 1 pair
    r = neurobench_synops(linear_3_2(), [torch.tensor([[0.0, 1.0, 0.0]])])
    assert r == {"Effective_MACs": 0.0, "Effective_ACs": 1.0, "Dense": 6.0}


@pytest.mark.parametrize("x,kind", [([0.5, 0.0, 1.0], "Effective_MACs"),   # graded -> MACs
                                    ([2.0, 0.0, 1.0], "Effective_MACs"),   # multi-bit spike -> MACs
                                    ([-1.0, 0.0, 1.0], "Effective_ACs")])  # ternary -> ACs
def test_input_values_decide_ac_or_mac_but_not_the_count(x, kind):
    r = neurobench_synops(linear_3_2(), [torch.tensor([x])])
    other = "Effective_ACs" if kind == "Effective_MACs" else "Effective_MACs"
    assert r[kind] == 4.0 and r[other] == 0.0 and r["Dense"] == 6.0


def test_one_graded_element_makes_the_whole_call_macs():
    batch = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.25]])  # sample 0 is binary, sample 1 is not
    r = neurobench_synops(linear_3_2(), [batch])
    assert r == {"Effective_MACs": (4 + 4) / 2, "Effective_ACs": 0.0, "Dense": 6.0}


def test_linear_dense_is_in_times_out_per_sample():
    net = nn.Sequential(nn.Linear(5, 7))
    batches = [torch.rand(4, 5), torch.zeros(3, 5)]
    r = neurobench_synops(net, batches)
    assert r["Dense"] == 5 * 7
    assert r["Effective_ACs"] == 0.0  # the zero batch is "spiking" and adds 0
    assert r["Effective_MACs"] == pytest.approx(4 * 35 / 7)  # rand is non-zero: 4 dense samples over 7


def test_conv2d_padding_ones_input_is_49():
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(1.0, 10.0).reshape(1, 1, 3, 3))
    # taps that land inside a 3x3 image: corners 4, edges 6, centre 9
    r = neurobench_synops(nn.Sequential(conv), [torch.ones(1, 1, 3, 3)])
    assert r == {"Effective_MACs": 0.0, "Effective_ACs": 49.0, "Dense": 49.0}
    with torch.no_grad():
        conv.weight[0, 0, 1, 1] = 0.0  # the centre tap is inside the image for all 9 outputs
    r = neurobench_synops(nn.Sequential(conv), [torch.ones(1, 1, 3, 3)])
    assert r == {"Effective_MACs": 0.0, "Effective_ACs": 40.0, "Dense": 49.0}


def test_conv2d_circular_padding_counts_every_tap():
    conv = nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular")
    r = neurobench_synops(nn.Sequential(conv), [torch.zeros(1, 1, 3, 3)])
    assert r["Dense"] == 81.0 and r["Effective_ACs"] == 0.0


def test_conv_stride_dilation_groups_dense():
    conv = nn.Conv2d(4, 6, 3, stride=2, dilation=2, groups=2)  # 9x9 -> (9 - 4 - 1) // 2 + 1 = 3
    r = neurobench_synops(nn.Sequential(conv), [torch.rand(2, 4, 9, 9)])
    assert r["Dense"] == 6 * 3 * 3 * (4 // 2) * 9
    conv1 = nn.Conv1d(2, 3, 3)  # length 5 -> 3
    conv3 = nn.Conv3d(1, 2, 2)  # 3^3 -> 2^3
    assert neurobench_synops(nn.Sequential(conv1), [torch.ones(1, 2, 5)])["Dense"] == 3 * 3 * 2 * 3
    assert neurobench_synops(nn.Sequential(conv3), [torch.ones(1, 1, 3, 3, 3)])["Dense"] == 2 * 8 * 8


class PerStep(nn.Module):
    """Calls its linear once per timestep of a (T, B, F) input."""

    def __init__(self):
        super().__init__()
        self.fc = linear_3_2()[0]

    def forward(self, x):
        return torch.stack([self.fc(xt) for xt in x])


class Folded(PerStep):
    """Calls its linear once on all timesteps folded into the batch."""

    def forward(self, x):
        t, b = x.shape[:2]
        return self.fc(x.reshape(t * b, -1)).reshape(t, b, -1)


@pytest.mark.parametrize("net", [PerStep(), Folded()])
def test_sums_over_timesteps_and_divides_by_samples(net):
    x = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]],     # t=0: 4 + 1 pairs
                      [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]],     # t=1: 5 + 0
                      [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]])    # t=2: 2 + 2
    r = neurobench_synops(net, [x], samples=2)
    assert r == {"Effective_MACs": 0.0, "Effective_ACs": 14 / 2, "Dense": 3 * 2 * 6 / 2}
    # default: NeuroBench's data[0].size(0), here T
    assert neurobench_synops(net, [x])["Effective_ACs"] == 14 / 3


def test_mixed_layers_and_details():
    net = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid(), nn.Linear(4, 2))
    details = []
    r = neurobench_synops(net, [torch.tensor([[1.0, 0.0, 0.0]])], details=details)
    assert [d["layer"] for d in details] == ["0", "2"]
    assert details[0]["spiking"] and not details[1]["spiking"]
    assert r["Dense"] == 12 + 8
    assert r["Effective_ACs"] == details[0]["effective"] and r["Effective_MACs"] == details[1]["effective"]


def test_root_layer_is_not_hooked_and_shared_layer_double_counts():
    with pytest.warns(UserWarning):
        assert neurobench_synops(nn.Linear(3, 2), [torch.ones(1, 3)])["Dense"] == 0
    shared = nn.Linear(3, 2)
    net = nn.Sequential(nn.Sequential(shared), nn.Sequential(nn.Linear(2, 3), shared))
    assert connection_layers(net) == [shared, net[1][0], shared]  # found under two parents: two hooks
    # shared: 2 calls x 2 hooks x 6 dense ops; the middle Linear(2, 3): 6
    with pytest.warns(UserWarning, match="twice"):
        assert neurobench_synops(net, [torch.ones(1, 3)])["Dense"] == 2 * 2 * 6 + 6


def test_hooks_removed_and_modes_restored_even_on_error():
    net = nn.Sequential(nn.Linear(3, 2), nn.Dropout())
    net.train()
    neurobench_synops(net, [torch.ones(2, 3)])
    assert all(m.training for m in net.modules())
    assert not net[0]._forward_pre_hooks
    with pytest.raises(RuntimeError):
        neurobench_synops(net, [torch.ones(2, 4)])  # wrong width
    assert not net[0]._forward_pre_hooks and net.training


def test_recurrent_layers_refused():
    with pytest.raises(NotImplementedError):
        neurobench_synops(nn.Sequential(nn.GRUCell(3, 2)), [torch.ones(1, 3)])


def test_float64_matches_default_on_small_counts():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, stride=2))
    x = [(torch.rand(2, 3, 8, 8) > 0.5).float()]
    assert neurobench_synops(net, x) == neurobench_synops(net, x, dtype=torch.float64)
