"""The graph IR: each exchange format in its own module, all reading into a NetSpec.

    torch_nir.py   a checkpoint's network -> NIR graph (dt = 1), -> NetSpec (`checkpoint_to_spec`)
    nir_spec.py    NIR graph -> NetSpec, with each exporter's conventions (`NIR_SOURCES`)
    netx.py        lava-dl netx files -> NetSpec
    netx_input.py  the frames a netx input layer takes
    nodes.py       our NIR node types (`MaxPool2d`, `Product`), the node families, `IRError`
"""
from .nir_spec import (NEURON_PARAMS, NIR_SOURCES, NirSource, fix_exported_graph, input_sends, nir_to_spec,
                       population_sends, read_nir)
from .nodes import LINEAR_NODES, NEURON_NODES, POPULATION_NODES, IRError, MaxPool2d, Product
from .torch_nir import checkpoint_to_spec, input_frames, network_to_nir

__all__ = ["LINEAR_NODES", "NEURON_NODES", "NEURON_PARAMS", "NIR_SOURCES", "POPULATION_NODES", "IRError", "MaxPool2d",
           "NirSource", "Product", "checkpoint_to_spec", "fix_exported_graph", "input_frames", "input_sends",
           "network_to_nir", "nir_to_spec", "population_sends", "read_nir"]
