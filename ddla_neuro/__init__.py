"""ddla-neuro: DDLA training, delta-spike Lava deployment and a Loihi cost model for SNNs."""

__version__ = "0.1.0"
