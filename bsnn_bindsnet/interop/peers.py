r"""Peer simulators' NIR importers, with the pieces they lack for this package's graphs.

Norse 1.1.0 (``norse.torch.from_nir``) and snnTorch 1.0.0 (``snntorch.import_nir.import_from_nir``)
load a NIR graph into a torch module that runs one step per call. Both miss pieces that a
converted B-SNN uses. :func:`norse_from_nir` and :func:`snntorch_from_nir` are the peers' own
importers with those pieces supplied; each gap is the peer's, and each is checked in
``tests/test_nir_peers.py``:

=============  ===================================  ===================================
NIR node       Norse 1.1.0 as shipped               snnTorch 1.0.0 as shipped
=============  ===================================  ===================================
``AvgPool2d``  no mapping: ``from_nir`` fails       imported (``nn.AvgPool2d``)
``I``          dropped without a word: the output   no mapping: ``import_from_nir``
               is the current into the readout      fails
``Flatten``    ``nn.Flatten(0)``: the batch too     ``nn.Flatten(0)``: the batch too
``IF``         ``IAFCell``: exact                   ``Leaky(beta=0.9)``: leaky, with a
                                                    ``(spk, mem)`` output the next layer
                                                    cannot take; per-neuron thresholds
                                                    refused
=============  ===================================  ===================================

NIR counts a ``Flatten``'s dimensions from the sample's first (its shapes exclude the batch);
both peers hand them to ``nn.Flatten`` unchanged, so ``start_dim = 0`` flattens the whole batch
into one vector and only one sample at a time runs.

The adapters map ``AvgPool2d`` to ``nn.AvgPool2d``, ``I`` to :class:`Integrator`, ``Flatten`` to
:func:`batch_flatten` and (snnTorch) ``IF`` to ``Leaky(beta=1, reset_mechanism="zero",
init_hidden=True)`` with the thresholds it read. Everything else is the peer's own mapping.
A graph exported with ``to_nir(..., peer_compatible=True)`` (:func:`peer_compatible_graph`) has
neither an ``I`` nor a batch-flattening ``Flatten``: Norse then runs a network without pooling
unmodified. :func:`snntorch_to_nir` works around snnTorch's exporter for scalar parameters, and
:func:`run_peer` runs a peer module on a constant input for ``T`` steps, recording spikes.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bsnn_bindsnet.interop.nir_common import _require_nir, _type, nir, read_nir

__all__ = ["Integrator", "batch_flatten", "norse_from_nir", "peer_compatible_graph", "run_peer",
           "snntorch_from_nir", "snntorch_to_nir"]


class Integrator(nn.Module):
    r"""NIR's ``I`` node, one step per call: :math:`v_t = v_{t-1} + r\,x_t` from :math:`v_0 = 0`,
    output :math:`v_t` (what this package's readout holds).

    Shape:
        ``forward(x, state)``: ``x`` is ``[B, *shape]``; returns ``(v, v)`` (nirtorch's
        ``(output, state)`` convention).
    """

    def __init__(self, r: Any) -> None:
        super().__init__()
        self.register_buffer("r", torch.as_tensor(np.asarray(r, np.float32)))

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        v = self.r * x if state is None else state + self.r * x
        return v, v


def batch_flatten(node: Any) -> nn.Flatten:
    """``nn.Flatten`` for a NIR ``Flatten`` on a batch: NIR counts dimensions from the sample's
    first, torch from the batch's, so non-negative dimensions move up by one."""
    start, end = int(node.start_dim), int(node.end_dim)
    return nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)


def _avg_pool(node: Any) -> nn.AvgPool2d:
    def pair(v: Any) -> tuple[int, ...]:
        return tuple(int(d) for d in np.broadcast_to(np.asarray(v).reshape(-1), (2,)))

    return nn.AvgPool2d(pair(node.kernel_size), pair(node.stride), pair(node.padding))


def _graph(graph_or_path: Any) -> Any:
    _require_nir()
    if isinstance(graph_or_path, (str, os.PathLike)):
        return read_nir(graph_or_path)
    return graph_or_path


def norse_from_nir(graph_or_path: Any) -> nn.Module:
    """``norse.torch.from_nir`` (Norse 1.1.0) with ``AvgPool2d``, ``I`` and a batch-aware
    ``Flatten`` supplied. Call the module as ``out, state = module(x, state)``."""
    import nirtorch
    from norse.torch.utils.import_nir import _import_norse_module  # what from_nir maps with

    extra = {nir.AvgPool2d: _avg_pool, nir.I: lambda n: Integrator(n.r), nir.Flatten: batch_flatten}

    def node_map(node: Any) -> nn.Module | None:
        fix = extra.get(type(node))
        return fix(node) if fix is not None else _import_norse_module(node)

    with warnings.catch_warnings():  # Norse's own from_nir calls the deprecated nirtorch.load
        warnings.simplefilter("ignore", DeprecationWarning)
        return nirtorch.load(_graph(graph_or_path), node_map)


def _snntorch_if(node: Any) -> nn.Module:
    """The IF that snnTorch 1.0.0's importer should build: no leak, reset to zero, the node's
    thresholds (one per neuron when they differ)."""
    import snntorch as snn

    v_reset = np.zeros(()) if node.v_reset is None else np.asarray(node.v_reset)
    if not np.all(np.asarray(node.r) == 1) or np.any(v_reset != 0):
        raise NotImplementedError("snnTorch adapter: an IF with r != 1 or v_reset != 0 has no "
                                  "snnTorch Leaky form")
    thr = np.asarray(node.v_threshold, np.float32)
    threshold = float(thr.flat[0]) if np.all(thr == thr.flat[0]) else torch.from_numpy(thr.copy())
    return snn.Leaky(beta=1.0, threshold=threshold, reset_mechanism="zero", init_hidden=True,
                     reset_delay=False)


def snntorch_from_nir(graph_or_path: Any) -> nn.Module:
    """``snntorch.import_nir.import_from_nir`` (snnTorch 1.0.0) for feed-forward graphs, with
    ``IF``, ``I`` and a batch-aware ``Flatten`` supplied. Call the module as ``out, state =
    module(x, state)``; its ``Leaky`` neurons keep their potential (:func:`run_peer` resets it)."""
    import nirtorch
    from snntorch.import_nir import _nir_to_snntorch_module  # what import_from_nir maps with

    def own(node: Any) -> nn.Module:
        return _nir_to_snntorch_module(node, init_hidden=True)

    node_map = {t: own for t in (nir.Affine, nir.Linear, nir.Conv2d, nir.AvgPool2d, nir.LIF,
                                 nir.CubaLIF)}
    node_map.update({nir.IF: _snntorch_if, nir.I: lambda n: Integrator(n.r),
                     nir.Flatten: batch_flatten})
    return nirtorch.nir_to_torch(_graph(graph_or_path), node_map)


def snntorch_to_nir(module: nn.Module, sample: Tensor) -> Any:
    """``snntorch.export_nir.export_to_nir`` (snnTorch 1.0.0) without its last step, nir's type
    inference, which fails on scalar ``beta`` / ``threshold`` (its ``LIF`` nodes get no shape);
    :func:`~bsnn_bindsnet.interop.nir_io.from_nir` takes a layer's shape from its synapse."""
    import nirtorch
    import snntorch as snn
    from snntorch.export_nir import _extract_snntorch_module

    return nirtorch.extract_nir_graph(module, _extract_snntorch_module, sample,
                                      model_name="snntorch",
                                      ignore_submodules_of=[snn.RLeaky, snn.RSynaptic])


def peer_compatible_graph(graph: Any) -> Any:
    """The graph a NIR reader without this package's adapters runs as written: the ``I`` readout
    removed (its synapse feeds the ``Output``; the output is the current per step, whose running
    sum is the readout's potential), and each ``Flatten`` written with negative dimensions
    (the same in NIR, and right in torch for a batch as for a single sample)."""
    _require_nir()
    nodes, edges = dict(graph.nodes), list(graph.edges)
    for key, node in list(nodes.items()):
        if _type(node) == "I":
            preds = [a for a, b in edges if b == key]
            succs = [b for a, b in edges if a == key]
            if len(preds) != 1 or any(_type(nodes[s]) != "Output" for s in succs):
                raise ValueError(f"I node {key!r}: expected one input and only Output nodes after "
                                 "it")
            del nodes[key]
            edges = [(a, b) for a, b in edges if key not in (a, b)] + [(preds[0], s)
                                                                      for s in succs]
        elif _type(node) == "Flatten" and node.input_type.get("input") is not None:
            n = len(np.asarray(node.input_type["input"]).reshape(-1))
            start, end = int(node.start_dim), int(node.end_dim)
            nodes[key] = nir.Flatten(input_type=node.input_type,
                                     start_dim=start - n if start >= 0 else start,
                                     end_dim=end - n if end >= 0 else end,
                                     metadata=dict(node.metadata or {}))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=graph.metadata, type_check=False)


def run_peer(module: nn.Module, x: Tensor, timesteps: int,
             record: Sequence[str] = ()) -> tuple[dict[str, Tensor], Tensor]:
    """Run a peer's module for ``timesteps`` steps on the constant input ``x`` (this package's
    ``"current"`` coding), from a fresh state.

    Args:
        module: From :func:`norse_from_nir`, :func:`snntorch_from_nir` or a peer's importer.
        x: ``[B, *input_shape]``.
        timesteps: Steps :math:`T`.
        record: Names of submodules (the graph's node keys) whose spikes to keep.

    Returns:
        ``({name: bool [T, B, *shape]}, outputs [T, B, *out])``: the module's output at each
        step (with an :class:`Integrator` readout, the readout's potential).
    """
    import torch.fx  # nirtorch's nir_to_torch builds a GraphModule

    rec: dict[str, list[Tensor]] = {name: [] for name in record}

    def hook(name: str) -> Any:
        return lambda mod, inp, out: rec[name].append(
            (out[0] if isinstance(out, tuple) else out).detach().clone())

    handles = [module.get_submodule(name).register_forward_hook(hook(name)) for name in record]
    for m in module.modules():  # snnTorch's init_hidden neurons keep their potential inside
        if getattr(m, "init_hidden", False) and callable(getattr(m, "reset_mem", None)):
            m.reset_mem()
    # nirtorch's GraphModule shares one default state dict between calls: start a fresh one
    state = ({name: None for name, _ in module.named_children()}
             if isinstance(module, torch.fx.GraphModule) else None)
    outs = []
    try:
        with torch.no_grad():
            for _ in range(timesteps):
                out, state = module(x, state)
                outs.append(out.detach().clone())
    finally:
        for h in handles:
            h.remove()
    return {name: torch.stack(v).bool() for name, v in rec.items()}, torch.stack(outs)
