"""Models of other libraries built for the interop tests (snnTorch), shared with the
calibration tests."""
import snntorch
import torch

from deploy_nets import dyadic_

T = 6


def snntorch_mlp(seed: int = 0) -> torch.nn.Sequential:
    """Linear + Leaky twice: per-neuron beta and threshold (snnTorch's exporter fails NIR's type
    inference on scalars), dyadic weights so float32 and float64 agree exactly, scaled so that
    both layers spike."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 24),
        snntorch.Leaky(beta=torch.full((24,), 0.75), threshold=torch.ones(24), init_hidden=True),
        torch.nn.Linear(24, 10), snntorch.Leaky(beta=torch.full((10,), 0.5), threshold=torch.ones(10), init_hidden=True,
                                                output=True))
    return dyadic_(net, seed, 4.0)
