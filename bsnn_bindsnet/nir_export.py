"""B-SNN plans to NIR graphs (:func:`to_nir`, :func:`write_nir`); see :mod:`bsnn_bindsnet.nir_io`
for the mapping."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.modules.utils import _pair

from bsnn_bindsnet.checkpoint import atomic_write
from bsnn_bindsnet.nir_common import (METADATA_KEY, NIR_FORMAT, SPIKE_CONDITION, _f32, _key,
                                      _require_nir, nir)
from bsnn_bindsnet.plan import (INPUT, READOUT, AvgPoolSynapse, BSNNPlan, ConvSynapse,
                                LinearSynapse, MaxPoolSynapse, Synapse)


def _pool_node(args: dict[str, Any], shape: Sequence[int], where: str) -> Any:
    """A NIR ``AvgPool2d`` for torch pooling ``args`` applied to ``shape`` ``(C, H, W)``."""
    k, s = _pair(args["kernel_size"]), _pair(args["stride"] if args["stride"] is not None
                                             else args["kernel_size"])
    p = _pair(args["padding"])
    if args.get("ceil_mode"):
        x = torch.empty(1, *shape, device="meta")
        sizes = {tuple(torch.nn.functional.avg_pool2d(x, k, s, p, ceil_mode=c).shape)
                 for c in (False, True)}
        if len(sizes) > 1:
            raise NotImplementedError(f"{where}: average pooling with ceil_mode=True changes "
                                      "the output size here, and NIR's AvgPool2d has no "
                                      "ceil_mode")
    return nir.AvgPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p))


def _synapse_chain(syn: Synapse, src_shape: Sequence[int], prefix: str,
                   where: str) -> list[tuple[str, Any]]:
    """NIR nodes (key, node), in signal order, for one plan synapse."""
    if isinstance(syn, MaxPoolSynapse):
        raise NotImplementedError(
            f"{where}: spike max-pooling cannot be exported: NIR {nir.version} has no "
            "max-pooling node (supported synapses: conv, linear, avgpool). Convert with "
            "average pooling (--pool avg-before/avg-after) to move the network through NIR")
    if isinstance(syn, AvgPoolSynapse):
        return [(prefix, _pool_node(syn.to_dict(), src_shape, where))]
    if not isinstance(syn, (ConvSynapse, LinearSynapse)):
        raise ValueError(f"{where}: synapse type {syn.type!r} has no NIR form")
    w = _f32(syn.effective_weight())
    meta = {"binary": bool(syn.binary)}
    bias = syn.bias
    if isinstance(syn, ConvSynapse):
        b = np.zeros(w.shape[0], np.float32) if bias is None else _f32(bias)
        conv = nir.Conv2d(input_shape=tuple(int(d) for d in src_shape[1:]), weight=w,
                          stride=_pair(syn.stride), padding=_pair(syn.padding),
                          dilation=(1, 1), groups=1, bias=b, metadata=meta)
        chain = [(prefix, conv)]
        if syn.pool is not None:
            shape = syn.conv_shape(tuple(src_shape))
            chain.append((f"{prefix}_pool", _pool_node(syn.pool, shape, where)))
        return chain
    chain = []
    if len(src_shape) > 1:
        chain.append((f"{prefix}_flat", nir.Flatten(
            input_type={"input": np.array(src_shape)}, start_dim=0, end_dim=-1)))
    node = (nir.Linear(weight=w, metadata=meta) if bias is None
            else nir.Affine(weight=w, bias=_f32(bias), metadata=meta))
    return chain + [(prefix, node)]


def _json_default(obj: Any) -> Any:
    return obj.tolist() if hasattr(obj, "tolist") else str(obj)


def to_nir(network_or_plan: Any) -> Any:
    """Export a B-SNN to a ``nir.NIRGraph`` (see the module docstring for the mapping).

    Args:
        network_or_plan: A :class:`~bsnn_bindsnet.convert.BSNNPlan` or a ``Network`` built by
            :func:`~bsnn_bindsnet.network.build_network` (``ann_to_bsnn``, ``direct_to_bsnn``,
            ``load_network``), which carries its plan.

    Raises:
        TypeError: a ``Network`` without a plan (not built by this package).
        NotImplementedError: a spike max-pool layer (named), or a pooling NIR cannot express.
    """
    _require_nir()
    plan = network_or_plan
    if not isinstance(plan, BSNNPlan):
        plan = getattr(network_or_plan, "bsnn_plan", None)
        if not isinstance(plan, BSNNPlan):
            raise TypeError(f"expected a BSNNPlan or a Network built by build_network, got "
                            f"{type(network_or_plan).__name__} without a bsnn_plan")
    shapes = {INPUT: tuple(plan.input_shape)}
    keys = {INPUT: "input"}
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(plan.input_shape)})}
    edges: list[tuple[str, str]] = []
    for layer in plan.layers:
        key = READOUT if layer.kind == "readout" else _key(layer.name)
        if key in nodes or key in ("input", "output"):
            raise ValueError(f"layer {layer.name!r}: its NIR node name {key!r} is taken")
        keys[layer.name], shapes[layer.name] = key, tuple(layer.shape)
        inputs = [(layer.source, layer.synapse, f"{key}_syn", "synapse")]
        if layer.residual is not None:
            inputs.append((layer.residual.source, layer.residual.synapse, f"{key}_res",
                           "residual"))
        for src, syn, prefix, role in inputs:
            chain = _synapse_chain(syn, shapes[src], prefix, f"layer {layer.name!r} ({role})")
            prev = keys[src]
            for k, node in chain:
                node.metadata = {**node.metadata, "role": role}
                nodes[k] = node
                edges.append((prev, k))
                prev = k
            edges.append((prev, key))
        shape = tuple(layer.shape)
        if layer.kind == "readout":
            nodes[key] = nir.I(r=np.ones(shape, np.float32), metadata={"name": layer.name})
        else:
            t = torch.as_tensor(layer.thresh, dtype=torch.float32)
            if t.dim() == 1 and len(shape) > 1 and t.numel() == shape[0] and t.numel() > 1:
                t = t.reshape(-1, *([1] * (len(shape) - 1)))
            thr = _f32(torch.broadcast_to(t.reshape(()) if t.numel() == 1 else t, shape))
            nodes[key] = nir.IF(r=np.ones(shape, np.float32), v_threshold=thr,
                                v_reset=np.zeros(shape, np.float32),
                                metadata={"name": layer.name, "reset": plan.reset,
                                          "v_init": plan.v_init})
    nodes["output"] = nir.Output(output_type={"output": np.array(shapes[plan.layers[-1].name])})
    edges.append((keys[plan.layers[-1].name], "output"))
    from bsnn_bindsnet import __version__

    meta = {METADATA_KEY: {"format": NIR_FORMAT, "version": __version__, "reset": plan.reset,
                           "v_init": plan.v_init, "spike_condition": SPIKE_CONDITION,
                           "info": json.dumps(plan.info, default=_json_default)}}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def write_nir(graph_or_network: Any, path: str | os.PathLike) -> Path:
    """Write a NIR graph (or a plan / network, exported with :func:`to_nir`) to ``path``
    atomically: the HDF5 file is built in memory and renamed into place."""
    _require_nir()

    graph = graph_or_network if isinstance(graph_or_network, nir.NIRGraph) else \
        to_nir(graph_or_network)
    buf = io.BytesIO()
    nir.write(buf, graph)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))
