"""Checks of the fields of the files we read (netx, NIR), so that a damaged file gets one line
naming where it is damaged (an IRError), never a raw Python error: numbers where numbers belong,
finite, whole where they are read as integers."""
from __future__ import annotations

import dataclasses

import nir
import numpy as np

from .nodes import IRError

# NIR fields read as whole numbers: the least value each may take
NIR_WHOLE = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "kernel_size": 1}


def numbers(value, what: str) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.kind not in "biuf":
        raise IRError(f"{what} holds {shown(value)}, not numbers; export the file again")
    return a


def finite(value, what: str) -> None:
    if isinstance(value, str):
        return
    a = numbers(value, what)
    if a.size and not np.all(np.isfinite(a)):
        raise IRError(f"{what} holds NaN or infinite values; export the file again")


def whole(value, what: str, least: int, sizes: tuple[int, ...]) -> None:
    a = numbers(value, what).ravel()
    if a.size not in sizes:
        raise IRError(f"{what} holds {a.size} values, the reader takes {' or '.join(map(str, sizes))}")
    if not np.all(np.isfinite(a)) or np.any(a != np.round(a)) or np.any(a < least) or np.any(np.abs(a) > 2 ** 31):
        raise IRError(f"{what} holds {shown(value)}: whole numbers of at least {least} expected; export the file "
                      f"again")


def shown(value) -> str:
    text = np.array2string(np.asarray(value), threshold=4) if not isinstance(value, str) else repr(value)
    return text.replace("\n", " ")[:40]


def check_nir_nodes(graph: nir.NIRGraph) -> None:
    """Every node's fields: whole numbers where NIR_WHOLE says (a padding may be a name, 'same'),
    shapes of whole numbers of at least 1, finite numbers elsewhere."""
    for name, node in graph.nodes.items():
        where = f"NIR node {name!r} ({type(node).__name__})"
        for f in dataclasses.fields(node):
            value = getattr(node, f.name, None)
            what = f"{where}: its '{f.name}'"
            if value is None or isinstance(value, str):
                continue
            if f.name in ("input_type", "output_type"):
                for shape in (value or {}).values():
                    if shape is not None:
                        whole(shape, what, 1, tuple(range(1, 6)))
            elif f.name in NIR_WHOLE:
                whole(value, what, NIR_WHOLE[f.name], (1, 2))
            elif not isinstance(value, dict):
                finite(value, what)
