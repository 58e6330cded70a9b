"""Spiking building blocks: neuron dynamics, encoders, dual-mode layers, the network wrapper."""
from .functional import NeuronParameters, if_parameters, lif_box_parameters, lif_parameters, neuron_step
from .layers import Neuron, Residual, Sequential, Stateless, conv_bn
from .network import NetworkState, SpikingNetwork

__all__ = [
    "NeuronParameters", "if_parameters", "lif_parameters", "lif_box_parameters", "neuron_step",
    "Neuron", "Residual", "Sequential", "Stateless", "conv_bn",
    "NetworkState", "SpikingNetwork",
]
