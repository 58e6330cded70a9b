"""Spiking building blocks: neuron dynamics, encoders, dual-mode layers, the network wrapper."""
from .functional import NeuronParameters, if_parameters, lif_box_parameters, lif_parameters, neuron_step
from .layers import NetworkState, Neuron, Residual, Sequential, Stateless, Transmit, conv_bn
from .network import SpikingNetwork

__all__ = [
    "NeuronParameters", "if_parameters", "lif_parameters", "lif_box_parameters", "neuron_step",
    "NetworkState", "Neuron", "Residual", "Sequential", "Stateless", "Transmit", "conv_bn",
    "SpikingNetwork",
]
