"""NIR graphs to B-SNN plans (:func:`from_nir`, :func:`nir_to_network`); see
:mod:`bsnn_bindsnet.interop.nir_io` for the mapping and the peers' graphs that are read."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.nn.modules.utils import _pair

from bsnn_bindsnet.snn.neurons import RESETS, V_INITS
from bsnn_bindsnet.interop.nir_common import (_SYNAPSE_NODES, METADATA_KEY, SUPPORTED_NODES, _f32,
                                      _meta_str, _require_nir, _type, nir, read_nir)
from bsnn_bindsnet.interop.nir_common import (LEGACY_SPIKE_CONDITION, bsnn_threshold, check_finite,
                                              check_flatten, check_threshold, spike_rule_of)
from bsnn_bindsnet.snn.plan import (INPUT, READOUT, AvgPoolSynapse, BSNNPlan, ConvSynapse,
                                    LayerSpec, LinearSynapse, PlanInfo, Residual, Synapse,
                                    WeightSynapse)


def _refuse(key: str, node: Any, why: str = "", note: str = "") -> None:
    raise NotImplementedError(
        f"NIR node {key!r} of type {_type(node)}{why}: not supported; bsnn-bindsnet reads "
        f"graphs of {', '.join(SUPPORTED_NODES)} nodes, and LIF nodes without leak "
        f"(tau = r = inf, snnTorch's Leaky(beta=1)) as IF{note}")


def _is_if(key: str, node: Any) -> bool:
    """Whether ``node`` is a spiking integrate-and-fire neuron: an ``IF``, or a ``LIF`` that is
    one (raises, naming the node, for a ``LIF`` with a leak)."""
    if _type(node) != "LIF":
        return _type(node) == "IF"
    tau, r = np.asarray(node.tau, np.float64), np.asarray(node.r, np.float64)
    if not (np.all(np.isposinf(tau)) and np.all(np.isposinf(r))):
        _refuse(key, node, note=f"; this one has tau in [{tau.min():g}, {tau.max():g}] and "
                f"r in [{r.min():g}, {r.max():g}]: a leak, or no input gain (BindsNET's IF has "
                "neither)")
    if not np.all(np.isfinite(np.asarray(node.v_leak, np.float64))):
        _refuse(key, node, " with a non-finite v_leak")
    return True


def _as_bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, (bytes, str)):
        return (value.decode() if isinstance(value, bytes) else value).lower() == "true"
    return bool(np.asarray(value))


def _weight_synapse(node: Any, key: str, kind: str) -> WeightSynapse:
    w = torch.from_numpy(_f32(node.weight))
    check_finite(key, node, "weight", w.numpy())
    syn: dict[str, Any] = {"bias": None}
    bias = getattr(node, "bias", None)
    if bias is not None:
        check_finite(key, node, "bias", _f32(bias))
        b = np.broadcast_to(_f32(bias), (w.shape[0],))
        syn["bias"] = None if not b.any() else torch.from_numpy(b.copy())
    mag = w.abs().reshape(w.shape[0], -1)
    alpha = mag[:, 0]
    binary = bool((mag == alpha[:, None]).all() and (alpha > 0).all())
    if binary and _as_bool(node.metadata.get("binary"), True):
        syn.update(sign=torch.where(w >= 0, 1, -1).to(torch.int8), scale=alpha.clone())
    else:
        syn.update(weight=w)
    if kind == "conv":
        if isinstance(node.padding, str):
            if node.padding != "valid":
                _refuse(key, node, f" with padding {node.padding!r}")
            padding = (0, 0)
        else:
            padding = tuple(int(p) for p in _pair(np.asarray(node.padding).tolist()))
        dilation = tuple(int(d) for d in _pair(np.asarray(node.dilation).tolist()))
        if int(node.groups) != 1 or dilation != (1, 1):
            _refuse(key, node, f" with groups={int(node.groups)}, dilation={dilation}")
        syn["stride"] = tuple(int(s) for s in _pair(np.asarray(node.stride).tolist()))
        syn["padding"] = padding
        return ConvSynapse(**syn)
    return LinearSynapse(**syn)


def _pool_args(node: Any) -> dict[str, Any]:
    return {"kernel_size": tuple(int(k) for k in _pair(np.asarray(node.kernel_size).tolist())),
            "stride": tuple(int(s) for s in _pair(np.asarray(node.stride).tolist())),
            "padding": tuple(int(p) for p in _pair(np.asarray(node.padding).tolist())),
            "ceil_mode": False}


def _parse_chain(chain: list[tuple[str, Any]], target: str) -> Synapse:
    """A plan synapse from the NIR nodes between two neuron layers (signal order)."""
    types = [_type(node) for _, node in chain]
    where = f"the synapse into {target!r} ({' -> '.join(types) or 'a direct edge'})"
    if types == ["AvgPool2d"]:
        return AvgPoolSynapse(**_pool_args(chain[0][1]))
    rest = list(chain)
    if rest and _type(rest[0][1]) == "Flatten":
        check_flatten(*rest[0])
        rest = rest[1:]
        if not rest or _type(rest[0][1]) not in ("Linear", "Affine"):
            raise ValueError(f"{where}: a Flatten must be followed by Linear or Affine")
    if not rest or _type(rest[0][1]) not in ("Conv2d", "Linear", "Affine"):
        raise ValueError(f"{where}: expected [Flatten] -> Linear/Affine, or Conv2d -> "
                         "[AvgPool2d], or AvgPool2d alone")
    key, node = rest[0]
    kind = "conv" if _type(node) == "Conv2d" else "linear"
    syn = _weight_synapse(node, key, kind)
    rest = rest[1:]
    if rest and kind == "conv" and _type(rest[0][1]) == "AvgPool2d":
        syn = dataclasses.replace(syn, pool=_pool_args(rest[0][1]))
        rest = rest[1:]
    if rest:
        raise ValueError(f"{where}: unexpected {_type(rest[0][1])} node {rest[0][0]!r} after "
                         f"{key!r}")
    return syn


def _synapse_shape(syn: Synapse, src_shape: Sequence[int], where: str) -> tuple:
    """The shape a parsed plan synapse maps ``src_shape`` to (checked on meta tensors)."""
    try:
        return tuple(int(d) for d in syn.out_shape(tuple(src_shape)))
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"{where}: cannot be applied to its source shape "
                         f"{tuple(src_shape)}: {err}") from None


def _input_shape(nodes: dict[str, Any], key: str, succs: list[str]) -> tuple[int, ...]:
    """The ``Input`` node's shape, without the leading batch dimension of 1 that nirtorch
    records from the sample (as Norse's ``to_nir`` writes) when the nodes it feeds say so."""
    shape = tuple(int(d) for d in np.asarray(nodes[key].input_type["input"]).reshape(-1))
    if len(shape) > 1 and shape[0] == 1:
        fed = [tuple(int(d) for d in np.asarray(
            (getattr(nodes[s], "input_type", None) or {}).get("input", [])).reshape(-1))
            for s in succs]
        if fed and all(f == shape[1:] for f in fed):
            return shape[1:]
    return shape


def from_nir(graph_or_path: Any) -> BSNNPlan:
    """A :class:`~bsnn_bindsnet.conversion.convert.BSNNPlan` from a NIR graph or a ``.nir`` file.

    The graph must be feed-forward: one ``Input``, spiking layers and one readout, each fed by
    one or two synapse chains (``[Flatten] -> Linear|Affine``, ``Conv2d -> [AvgPool2d]``, or
    ``AvgPool2d``) from the input or an earlier layer; a second chain becomes the layer's
    residual synapse. A spiking layer is an ``IF``, or a ``LIF`` without leak (``tau = r =
    inf``: snnTorch writes ``Leaky(beta)`` as ``tau = dt/(1-beta)``, ``r = tau/dt``, so
    ``beta = 1`` integrates ``v <- v + I``). Its shape is what its synapse produces (NIR
    parameters may be scalars, as Norse writes them). The readout (renamed ``readout``) is:

    - the graph's one ``I`` (integrator) node, as :func:`to_nir` writes it; else, with one
      ``Output``:
    - a synapse chain into the ``Output`` (a peer network ending in ``Linear``): a readout that
      integrates that chain's current (its potential after t steps is the sum of the peer's
      outputs over the first t steps);
    - a spiking layer into the ``Output`` (a peer network ending in spiking neurons): that
      layer stays a spiking layer and the readout counts its spikes (identity synapse).

    Reset and :math:`v(0)` come from the graph's ``bsnn_bindsnet`` metadata, else NIR's
    semantics (reset to ``v_reset = 0``, :math:`v(0) = 0`). A leading batch dimension of 1 in
    the ``Input`` shape that the nodes it feeds do not take (nirtorch's sample batch) is
    dropped. Weights are read as float32; two-valued rows become binary synapses. How the
    readout was obtained is in ``plan.info.nir["readout"]``.

    Raises:
        NotImplementedError: a node type outside :data:`SUPPORTED_NODES` (named, with its type),
            a ``LIF`` with a leak, ``r != 1``, a non-zero ``v_reset``, grouped / dilated /
            ``same``-padded convs.
        ValueError: a structure the plan cannot hold (cycles, no readout, three inputs ...).
    """
    _require_nir()
    graph = graph_or_path
    source_file = None
    if isinstance(graph_or_path, (str, os.PathLike)):
        source_file = str(graph_or_path)
        graph = read_nir(graph_or_path)
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"expected a nir.NIRGraph or a path to a .nir file, got "
                        f"{type(graph_or_path).__name__}")
    nodes, edges = dict(graph.nodes), list(graph.edges)
    spiking = set()
    for key, node in nodes.items():
        if _is_if(key, node):
            spiking.add(key)
        elif _type(node) not in SUPPORTED_NODES:
            _refuse(key, node)
    for a, b in edges:
        if a not in nodes or b not in nodes:
            raise ValueError(f"edge ({a!r}, {b!r}) names a node that is not in the graph")
    inputs = [k for k, n in nodes.items() if _type(n) == "Input"]
    if len(inputs) != 1:
        raise ValueError(f"expected exactly one Input node, found {len(inputs)}: {inputs}")
    readouts = [k for k, n in nodes.items() if _type(n) == "I"]
    readout_note, count_spikes_of = "I", None
    if not readouts:  # a peer's graph: its Output says what the readout is
        outs = [k for k, n in nodes.items() if _type(n) == "Output"]
        last = [a for a, b in edges if b in outs]
        if len(outs) != 1 or len(last) != 1:
            raise ValueError(f"expected one I (integrator) node as the non-firing readout, or "
                             f"one Output fed by one node; found no I, Output nodes {outs} "
                             f"fed by {last}")
        last = last[0]
        if last in spiking:
            count_spikes_of, readout_note = last, f"counts the spikes of {last!r}"
        elif _type(nodes[last]) in _SYNAPSE_NODES:
            key = "readout"
            while key in nodes:
                key += "_"
            nodes[key] = nir.I(r=np.ones((), np.float32))
            edges = [(a, b) for a, b in edges if (a, b) != (last, outs[0])]
            edges += [(last, key), (key, outs[0])]
            readouts, readout_note = [key], f"integrates the current of {last!r}"
        else:
            raise ValueError(f"the Output {outs[0]!r} is fed by {_type(nodes[last])} node "
                             f"{last!r}; expected a spiking layer or a synapse")
    elif len(readouts) != 1:
        raise ValueError(f"expected exactly one I (integrator) node as the non-firing readout, "
                         f"found {len(readouts)}: {readouts}")
    preds: dict[str, list[str]] = {k: [] for k in nodes}
    succs: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    readout = readouts[0] if readouts else None
    if readout is not None and any(_type(nodes[s]) != "Output" for s in succs[readout]):
        raise ValueError(f"the readout {readout!r} (I) feeds other nodes; it must be the last "
                         "layer (only Output nodes after it)")
    neurons = [k for k in nodes if k in spiking or k == readout]

    # synapse chains into every neuron, walked back to their source layer
    chains: dict[str, list[tuple[str, list[tuple[str, Any]]]]] = {}
    for target in neurons:
        if not preds[target]:
            raise ValueError(f"layer {target!r} has no input")
        chains[target] = []
        for p in preds[target]:
            chain: list[tuple[str, Any]] = []
            seen = set()
            while _type(nodes[p]) in _SYNAPSE_NODES:
                if p in seen or len(preds[p]) != 1:
                    raise ValueError(f"node {p!r} ({_type(nodes[p])}) has "
                                     f"{len(preds[p])} inputs; synapse nodes take one")
                seen.add(p)
                chain.insert(0, (p, nodes[p]))
                p = preds[p][0]
            if _type(nodes[p]) == "Output":
                raise ValueError(f"Output node {p!r} feeds {target!r}")
            chains[target].append((p, chain))
        if len(chains[target]) > 2:
            raise ValueError(f"layer {target!r} has {len(chains[target])} input synapses; "
                             "expected one, or two (a residual synapse)")

    # topological order of the neuron layers (graph order among ready ones), readout last
    order: list[str] = []
    done = {inputs[0]}
    pending = [k for k in neurons if k != readout] + ([readout] if readout else [])
    while pending:
        ready = next((k for k in pending if all(s in done for s, _ in chains[k])), None)
        if ready is None:
            raise ValueError(f"the layers {pending} form a cycle (recurrent graphs are not "
                             "supported)")
        order.append(ready)
        done.add(ready)
        pending.remove(ready)

    meta = dict(getattr(graph, "metadata", None) or {}).get(METADATA_KEY, {}) or {}
    reset = _meta_str(meta, "reset") or "zero"
    v_init = _meta_str(meta, "v_init") or "zero"
    if reset not in RESETS or v_init not in V_INITS:
        raise ValueError(f"graph metadata {METADATA_KEY}: reset {reset!r} / v_init {v_init!r}; "
                         f"expected one of {tuple(RESETS)} / {tuple(V_INITS)}")
    info_text = _meta_str(meta, "info")
    info = PlanInfo.from_dict(json.loads(info_text) if info_text else {})
    rule = spike_rule_of(meta)  # NIR's v > v_threshold, unless a nir-v1 file of this package
    info.nir = {"source_file": source_file, "format": _meta_str(meta, "format"),
                "readout": readout_note, "spike_condition": rule}

    names = {inputs[0]: INPUT}
    if readout is not None:
        names[readout] = READOUT
    used = {INPUT, READOUT}
    for k in order:
        if k in names:
            continue
        name = _meta_str(nodes[k].metadata, "name") or k
        while name in used:
            name += "_"
        names[k] = name
        used.add(name)
    in_shape = _input_shape(nodes, inputs[0], succs[inputs[0]])
    shapes = {INPUT: in_shape}
    position = {k: i for i, k in enumerate([inputs[0], *order])}
    layers: list[LayerSpec] = []
    for k in order:
        node = nodes[k]
        ins = sorted(chains[k], key=lambda c: (_role(c[1]) == "residual", -position[c[0]]))
        (src, chain), residual = ins[0], None
        synapse = _parse_chain(chain, names[k])
        shape = _synapse_shape(synapse, shapes[names[src]], f"the synapse into {names[k]!r}")
        if len(ins) == 2:
            rsrc, rchain = ins[1]
            residual = Residual(names[rsrc], _parse_chain(rchain, names[k]))
            rshape = _synapse_shape(residual.synapse, shapes[names[rsrc]],
                                    f"the residual synapse into {names[k]!r}")
            if rshape != shape:
                raise ValueError(f"layer {names[k]!r}: its two synapses produce shapes {shape} "
                                 f"and {rshape}")
        try:
            r = np.broadcast_to(np.asarray(node.r), shape)
        except ValueError:
            raise ValueError(f"NIR node {k!r}: r of shape {np.shape(node.r)} does not fit the "
                             f"layer shape {shape} its synapse produces") from None
        if _type(node) != "LIF" and not np.all(r == 1):
            _refuse(k, node, " with r != 1 (BindsNET's IF integrates the current with unit "
                    "resistance)")
        thresh = None
        if k in spiking:
            if node.v_reset is not None and np.any(np.asarray(node.v_reset) != 0):
                _refuse(k, node, " with a non-zero v_reset (BindsNET's IF resets to 0 or by "
                        "subtraction)")
            check_threshold(k, node)
            thr = np.asarray(node.v_threshold, dtype=np.float32)  # v > thr <=> v >= nextafter
            thr = np.broadcast_to(thr if rule == LEGACY_SPIKE_CONDITION else bsnn_threshold(thr),
                                  shape)
            if np.all(thr == thr.flat[0]):
                thresh = float(thr.flat[0])
            elif len(shape) > 1 and np.all(thr == thr[:, :1, :1]):
                thresh = torch.from_numpy(thr[:, 0, 0].copy())
            else:
                thresh = torch.from_numpy(thr.copy())
        shapes[names[k]] = shape
        layers.append(LayerSpec(names[k], "if" if k in spiking else "readout", shape,
                                names[src], synapse, thresh=thresh, residual=residual))
    info.nir["full_precision"] = [  # float weights: imported as full precision
        name for layer in layers for name, syn in [(layer.name, layer.synapse)] + (
            [(f"{layer.name} (residual)", layer.residual.synapse)] if layer.residual else [])
        if isinstance(syn, WeightSynapse) and not syn.binary]
    if count_spikes_of is not None:
        n = int(np.prod(shapes[names[count_spikes_of]]))
        layers.append(LayerSpec(READOUT, "readout", (n,), names[count_spikes_of],
                                LinearSynapse(weight=torch.eye(n))))
    return BSNNPlan(in_shape, layers, reset=reset, v_init=v_init, info=info)


def _role(chain: list[tuple[str, Any]]) -> str | None:
    return _meta_str(chain[0][1].metadata, "role") if chain else None


def nir_to_network(graph_or_path: Any) -> Any:
    """A BindsNET ``Network`` (this project's nodes and connections) from a NIR graph or file."""
    from bsnn_bindsnet.snn.network import build_network  # lazy: imports BindsNET

    return build_network(from_nir(graph_or_path))
