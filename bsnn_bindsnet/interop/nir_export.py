"""B-SNN plans to NIR graphs (:func:`to_nir`, :func:`write_nir`); see :mod:`bsnn_bindsnet.interop.nir_io`
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

from bsnn_bindsnet.checkpoint import atomic_write
from bsnn_bindsnet.interop.nir_common import (METADATA_KEY, NIR_FORMAT, SPIKE_CONDITION, _f32, _key,
                                      _require_nir, nir)
from bsnn_bindsnet.interop.nir_common import THRESHOLD_RULE, nir_threshold, peer_gaps
from bsnn_bindsnet.interop.peers import peer_compatible_graph
from bsnn_bindsnet.snn.neurons import get_neuron, unsupported
from bsnn_bindsnet.snn.plan import INPUT, READOUT, BSNNPlan, Synapse


def _synapse_chain(syn: Synapse, src_shape: Sequence[int], prefix: str,
                   where: str) -> list[tuple[str, Any]]:
    """NIR nodes (key, node), in signal order, for one plan synapse: the synapse's own
    :meth:`~bsnn_bindsnet.snn.synapses.Synapse.to_nir` (a type without one is refused by name)."""
    try:
        return syn.to_nir(tuple(src_shape), prefix)
    except NotImplementedError as err:
        raise NotImplementedError(f"{where}: {err}") from None


def _neuron_node(plan: BSNNPlan, layer: Any, v_threshold: np.ndarray) -> Any:
    """The NIR node of an IF layer: the neuron model's own
    :meth:`~bsnn_bindsnet.snn.neurons.NeuronModel.nir_node`, or a refusal naming it."""
    try:
        return get_neuron(plan.reset).nir_node(nir, v_threshold)
    except NotImplementedError as err:
        raise NotImplementedError(f"layer {layer.name!r}: " + unsupported(
            plan.reset, "NIR export", str(err))) from None


def _json_default(obj: Any) -> Any:
    return obj.tolist() if hasattr(obj, "tolist") else str(obj)


def to_nir(network_or_plan: Any, *, peer_compatible: bool = False) -> Any:
    """Export a B-SNN to a ``nir.NIRGraph`` (see the module docstring for the mapping).

    Every ``IF`` threshold is written as ``nextafter(theta, -inf)`` in float32, so that NIR's
    ``v > v_threshold`` fires exactly when this package's ``v >= theta`` does.

    Args:
        network_or_plan: A :class:`~bsnn_bindsnet.conversion.convert.BSNNPlan` or a ``Network`` built by
            :func:`~bsnn_bindsnet.snn.network.build_network` (``ann_to_bsnn``, ``direct_to_bsnn``,
            ``load_network``), which carries its plan.
        peer_compatible: Write only what a reader that ignores ``bsnn_bindsnet``'s metadata (every
            peer) runs as this package does: refuse a reset other than to zero and
            a non-zero :math:`v(0)`, end the graph at the readout's synapse instead of NIR's ``I``
            (the output is then the readout's input current per step; its running sum is the
            readout's potential), and write each ``Flatten`` with negative dimensions
            (:func:`~bsnn_bindsnet.interop.peers.peer_compatible_graph`).

    Raises:
        TypeError: a ``Network`` without a plan (not built by this package).
        ValueError: ``peer_compatible`` and a network NIR cannot express for peers (SIF, half).
        NotImplementedError: a spike max-pool layer (named), or a pooling NIR cannot express.
    """
    _require_nir()
    plan = network_or_plan
    if not isinstance(plan, BSNNPlan):
        plan = getattr(network_or_plan, "bsnn_plan", None)
        if not isinstance(plan, BSNNPlan):
            raise TypeError(f"expected a BSNNPlan or a Network built by build_network, got "
                            f"{type(network_or_plan).__name__} without a bsnn_plan")
    if peer_compatible and (gaps := peer_gaps(plan.reset, plan.v_init)):
        raise ValueError("peer-compatible export: a peer cannot run this network as exported: "
                         + "; ".join(gaps) + ". Convert with --reset zero --v-init zero "
                         "(ann_to_bsnn(..., reset='zero', v_init='zero'))")
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
            nodes[key] = _neuron_node(plan, layer, nir_threshold(thr))  # NIR fires at v >
            nodes[key].metadata = {**(nodes[key].metadata or {}), "name": layer.name,
                                   "reset": plan.reset, "v_init": plan.v_init}
    nodes["output"] = nir.Output(output_type={"output": np.array(shapes[plan.layers[-1].name])})
    edges.append((keys[plan.layers[-1].name], "output"))
    from bsnn_bindsnet import __version__

    meta = {METADATA_KEY: {"format": NIR_FORMAT, "version": __version__, "reset": plan.reset,
                           "v_init": plan.v_init, "spike_condition": SPIKE_CONDITION,
                           "threshold_rule": THRESHOLD_RULE, "peer_compatible": peer_compatible,
                           "info": json.dumps(plan.info.to_dict(), default=_json_default)}}
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)
    return peer_compatible_graph(graph) if peer_compatible else graph


def write_nir(graph_or_network: Any, path: str | os.PathLike) -> Path:
    """Write a NIR graph (or a plan / network, exported with :func:`to_nir`) to ``path``
    atomically: the HDF5 file is built in memory and renamed into place."""
    _require_nir()

    graph = graph_or_network if isinstance(graph_or_network, nir.NIRGraph) else \
        to_nir(graph_or_network)
    buf = io.BytesIO()
    try:
        nir.write(buf, graph)
    except TypeError:  # h5py cannot gzip scalar parameters (Norse writes them): no compression
        buf = io.BytesIO()
        nir.write(buf, graph, compression=None)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))
