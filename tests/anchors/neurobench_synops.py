"""NeuroBench's ``SynapticOperations`` metric, re-implemented for comparison in tests.

This is our own code, written from a reading of NeuroBench's source; it does not import
the ``neurobench`` package, so the project does not depend on it. Source read:

* PyPI wheel ``neurobench-2.3.0-py3-none-any.whl`` (``neurobench/version.py``: 2.3.0);
* repository NeuroBench/neurobench. These files are identical in the wheel and at commit
  d420b4f8fd5bb4ec168ca50cc7dd3ced11590cab:
  ``neurobench/metrics/workload/synaptic_operations.py`` (class ``SynapticOperations``),
  ``neurobench/metrics/utils/layers/macs.py`` (``single_layer_MACs``, ``stateless_layer_macs``) and
  ``neurobench/metrics/utils/layers/binary_copy.py`` (``binarize_tensor``, ``make_binary_copy``).
  These files are identical in the wheel and at commit cfb182c050ae1930b6b893a4486088c4ce67f8d9:
  ``neurobench/metrics/utils/layers/input.py`` (``binary_inputs``) and
  ``neurobench/hooks/layer.py`` (``LayerHook``).
  Also read, from the wheel: ``neurobench/blocks/layer.py`` (``STATELESS_LAYERS``), the
  ``connection_layers``/``register_hooks`` methods in ``neurobench/models/neurobench_model.py``,
  ``neurobench/models/torch_model.py``, ``neurobench/benchmarks/benchmark.py`` (``Benchmark.run``)
  and ``neurobench/metrics/manager/workload_manager.py`` (``run_metrics``).

Rules, as the source applies them (we reproduce each one):

1. Hooked layers. The search starts from the children of the network. A child that is an
   instance of ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d`` or ``nn.Conv3d`` (subclasses too) gets a
   forward *pre*-hook, and the search does not go inside it. Any other child that has children is
   searched the same way. So the root module itself is never hooked: a bare ``nn.Linear`` passed
   as the network counts 0. A layer found under two parents gets two hooks, and every call of it is
   counted twice. That holds under ``torch.no_grad()``; with grad enabled NeuroBench fails and
   reports 0 instead (see rule 6). This helper counts it twice and warns.
   NeuroBench also hooks ``nn.RNNCellBase`` (extra LSTM/GRU gate rules) and ``nn.RNNBase`` (its
   counter does ``raise "<str>"``, a TypeError, which ``run_metrics`` catches; the whole metric
   then reads 0). This helper refuses both kinds with ``NotImplementedError``.
2. The pre-hook appends the layer's positional-argument tuple *by reference*: nothing is cloned.
   The count is made after the whole forward pass of the batch, so a later in-place change to that
   tensor changes the count. Only calls through ``module(...)`` fire hooks; ``F.linear(x, layer.weight)``
   and ``layer.forward(x)`` are not counted.
3. For every recorded call, the counted input is ``args[0]`` (unpacked because ``len(args) == 1``):
   * spiking test: the call is *spiking* iff every element of the whole input tensor (all of the
     batch, and all timesteps if they were folded into it) is in {-1, 0, 1};
   * effective ops: binary input ``(x != 0)`` is put through a copy of the layer whose weight is
     ``(w != 0)`` and whose bias is zero ("bias is not considered as a synaptic operation"). Stride,
     padding (padding_mode included), dilation and groups are the layer's own. The sum of that
     output is the count, truncated by ``int()``. So a count is the number of (non-zero input,
     non-zero weight) pairs. The *value* of a graded input does not count, only that it is non-zero.
     (NeuroBench runs a deep copy of the layer, so a subclass with its own ``forward`` would run
     that; here the standard linear/conv op runs on ``layer.weight``);
   * dense ops: the same pass with an all-ones input and all-ones weights. Zero-padding taps stay
     zero, so border pixels of a padded conv have fewer ops;
   * the effective count goes to ``Effective_ACs`` if the call is spiking, else to ``Effective_MACs``.
     Ternary {-1, 0, 1} inputs are ACs; any other value (e.g. 0.5, or 2 for a multi-bit spike)
     makes the whole call MACs.
4. Sums run over every recorded call, so over every timestep when the layer is called once per
   step. Each sum is divided by the number of samples, which NeuroBench takes as
   ``data[0].size(0)`` of every dataloader batch (the raw data, before preprocessing). That is the
   batch dimension for NeuroBench's (batch, time, ...) layout. For time-first (T, B, ...) inputs,
   pass ``samples=`` explicitly.
5. The network is run in eval mode (``TorchModel.__init__`` calls ``net.eval()``). Grad mode is
   left as it is (``Benchmark.run`` does not use ``no_grad``); it does not change the counts.
6. Failures NeuroBench hides. ``WorkloadMetricManager.run_metrics`` catches any exception from a
   metric, prints it (invisible under ``Benchmark.run(quiet=True)``) and stores 0.0. Its binary
   copy is ``copy.deepcopy(layer)``, and that fails when the layer holds a non-leaf tensor. Two
   cases: another hook on the layer whose stored inputs carry autograd history (the
   shared-layer case of rule 1 with grad enabled), and ``weight_norm``-style layers. The same
   catch gives 0 for ``nn.RNN``/``nn.LSTM``/``nn.GRU``. This helper raises or counts instead of
   returning 0. A layer under ``torch.nn.utils.parametrize`` (e.g. the new weight_norm) is not
   binarised by NeuroBench: its ``weight.data = ...`` is lost on a recomputed weight, so it sums
   the real-valued output. That count is meaningless and can be negative. This helper binarises
   the computed ``layer.weight`` instead.

Precision: the binary pass runs in the layer's dtype (float32 as a rule), as in NeuroBench. A
single call whose count exceeds 2**24 is then rounded, the same way NeuroBench rounds it. Example:
Conv2d(96, 96, 3, padding=1) on 61 graded 33x33 samples gives a Dense total of 5289513472 in
float32, against the exact 5289513984. Pass ``dtype=torch.float64`` for exact integer counts.

Checked against the real package: neurobench 2.3.0, installed in a throw-away Python 3.10 venv
with torch 2.14.1 and numpy 1.26.4 (``Benchmark(TorchModel(net), ...)`` with ``SynapticOperations``).
Results were identical on 22 toy cases: the models of test_neurobench_synops.py, reflect/'same'
padding, a 3-layer snntorch conv SNN with graded first-layer input and pruned weights, and the
float32-rounded large conv above. The shared-layer case was run under ``no_grad`` (rule 1). Also
identical on the zoo's mlp, convnet and resnet19 in multi-step mode ((T, B, ...) input, T=4,
given ``samples=B``; NeuroBench got a (B, T, ...) loader and a wrapper that transposes).
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

CONNECTION_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_UNSUPPORTED = (nn.RNNBase, nn.RNNCellBase)  # hooked by NeuroBench too, with other rules
_CONV_FN = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}


def connection_layers(net: nn.Module) -> list[nn.Module]:
    """The layers NeuroBench hooks, in its order and multiplicity (the root is never included)."""
    found: list[nn.Module] = []
    for child in net.children():
        if isinstance(child, CONNECTION_LAYERS + _UNSUPPORTED):
            found.append(child)
        elif any(True for _ in child.children()):
            found.extend(connection_layers(child))
    return found


def is_spiking(x: torch.Tensor) -> bool:
    """NeuroBench's AC test: every element is -1, 0 or 1 (an empty tensor passes)."""
    return bool(((x == 0) | (x == 1) | (x == -1)).all())


def _binary_pass(layer: nn.Module, x: torch.Tensor, all_ones: bool, dtype: torch.dtype | None) -> int:
    """Sum of the layer's output for binarised input and weights, bias zero (one call's op count)."""
    dtype = layer.weight.dtype if dtype is None else dtype
    w = layer.weight.detach()
    w = torch.ones_like(w, dtype=dtype) if all_ones else (w != 0).to(dtype)
    x = x.detach()
    x = torch.ones_like(x, dtype=dtype) if all_ones else (x != 0).to(dtype)
    if isinstance(layer, nn.Linear):
        y = F.linear(x, w)
    else:
        conv = next(fn for cls, fn in _CONV_FN.items() if isinstance(layer, cls))
        padding = layer.padding
        if layer.padding_mode != "zeros":  # as torch's _ConvNd._conv_forward does
            x = F.pad(x, layer._reversed_padding_repeated_twice, mode=layer.padding_mode)
            padding = 0
        y = conv(x, w, None, layer.stride, padding, layer.dilation, layer.groups)
    return int(y.sum())


def neurobench_synops(model: torch.nn.Module, batches: Iterable, *, samples: int | None = None,
                      dtype: torch.dtype | None = None, details: list | None = None) -> dict[str, float]:
    """Runs model(batch) for each batch with forward pre-hooks on nn.Linear / nn.Conv1d/2d/3d
    (the connection layers NeuroBench supports), and returns {"Effective_MACs", "Effective_ACs", "Dense"}
    per sample, as NeuroBench's SynapticOperations computes them.

    samples: the number of samples over all batches. Default: the sum of batch.shape[0], as
        NeuroBench counts for batch-first data. Give it when the model takes (T, B, ...).
    dtype: the dtype of the binary passes. Default: the layer's own, as in NeuroBench.
        torch.float64 gives exact counts.
    details: if a list is given, one dict per recorded call is appended to it:
        {"layer": qualified name, "effective": int, "dense": int, "spiking": bool}.
    """
    layers = connection_layers(model)
    bad = [type(m).__name__ for m in layers if isinstance(m, _UNSUPPORTED)]
    if bad:
        raise NotImplementedError(f"recurrent layers are not reproduced here: {bad}")
    if isinstance(model, CONNECTION_LAYERS + _UNSUPPORTED):
        warnings.warn("NeuroBench never hooks the root module; wrap the layer in a container "
                      "(e.g. nn.Sequential) to have it counted", stacklevel=2)
    if len({id(m) for m in layers}) < len(layers):
        warnings.warn("a connection layer sits under two parents: NeuroBench hooks it twice and counts "
                      "each of its calls twice (under no_grad; with grad enabled its metric fails to 0)",
                      stacklevel=2)
    names = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}

    records: list[tuple[nn.Module, tuple]] = []
    handles = []

    def hook_for(layer: nn.Module):
        return lambda module, args: records.append((layer, args))

    was_training = {m: m.training for m in model.modules()}
    mac = ac = dense = 0
    n_samples = 0
    try:
        for layer in layers:  # one hook per entry: a layer listed twice is counted twice
            handles.append(layer.register_forward_pre_hook(hook_for(layer)))
        model.eval()
        for batch in batches:
            if samples is None:
                if not isinstance(batch, torch.Tensor):
                    raise TypeError("batch is not a tensor: pass samples= explicitly")
                n_samples += batch.shape[0]
            records.clear()
            model(batch)
            with torch.no_grad():  # counted after the whole forward pass, like NeuroBench
                for layer, args in records:
                    if len(args) != 1:
                        raise ValueError(f"{names.get(id(layer))} was called with {len(args)} "
                                         "positional arguments; NeuroBench expects one")
                    x = args[0]
                    eff = _binary_pass(layer, x, False, dtype)
                    tot = _binary_pass(layer, x, True, dtype)
                    spiking = is_spiking(x)
                    dense += tot
                    if spiking:
                        ac += eff
                    else:
                        mac += eff
                    if details is not None:
                        details.append({"layer": names.get(id(layer), "?"), "effective": eff,
                                        "dense": tot, "spiking": spiking})
            records.clear()
    finally:
        for h in handles:
            h.remove()
        for m, flag in was_training.items():
            m.train(flag)
    n = n_samples if samples is None else samples
    if n == 0:
        return {"Effective_MACs": 0, "Effective_ACs": 0, "Dense": 0}
    return {"Effective_MACs": mac / n, "Effective_ACs": ac / n, "Dense": dense / n}
