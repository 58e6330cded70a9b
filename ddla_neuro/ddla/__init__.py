"""DDLA: temporal differential decoupling (tdd), the gradient sensitivity criterion (gsc),
the per-layer approximation (approx) and the executor that applies them to a network."""
