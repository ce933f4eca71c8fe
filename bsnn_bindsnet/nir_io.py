r"""B-SNNs to and from NIR, the Neuromorphic Intermediate Representation (``nir`` 1.0.x).

:func:`to_nir` turns a converted or direct-trained network (a :class:`~bsnn_bindsnet.convert.
BSNNPlan` or a ``Network`` built from one) into a ``nir.NIRGraph``; :func:`from_nir` turns a
graph (or a ``.nir`` file) back into a plan, and :func:`nir_to_network` into a BindsNET
``Network`` of this project's node and connection classes. :func:`write_nir` / :func:`read_nir`
store graphs as NIR's HDF5 files (written atomically). ``nir`` (and ``h5py``) are optional:
``pip install bsnn-bindsnet[nir]``.

Mapping (one spiking layer ``L`` of the plan; node keys are layer names with ``.`` -> ``_``):

==============================  =============================================================
plan                            NIR
==============================  =============================================================
input ``(C, H, W)``             ``Input`` ``input``
conv synapse                    ``Conv2d`` ``L_syn`` (zero bias when the plan has none),
                                weight :math:`\alpha_c \operatorname{sign}(W)` (float32)
conv + folded avg-pool          ``Conv2d`` ``L_syn`` -> ``AvgPool2d`` ``L_syn_pool``
linear synapse                  (``Flatten`` ``L_syn_flat`` if the source is not 1-D) ->
                                ``Linear`` ``L_syn`` (``Affine`` when it has a bias)
avg-pool of spikes              ``AvgPool2d`` ``L_syn``
IF layer (SIF or RIF)           ``IF`` ``L``: ``r = 1``, ``v_threshold`` = :math:`\theta`
                                broadcast to the layer shape, ``v_reset = 0``
non-firing readout              ``I`` ``readout`` (``r = 1``) -> ``Output`` ``output``
residual synapse (from l-2)     a second chain ``L_res`` (same kinds of nodes, its own weight
                                :math:`f \operatorname{sign}(W)`) into the same ``IF`` node
spike max-pool                  refused: NIR 1.0 has no max-pooling node
==============================  =============================================================

Binary weights stay binary: the exported weight is exactly ``scale * sign`` in float32 (the
effective weight of :class:`~bsnn_bindsnet.connections.BinaryConnection`), and
:func:`from_nir` rebuilds a binary synapse (``int8`` sign + per-output scale) for every weight
whose rows each hold one magnitude :math:`\alpha > 0` (``+-alpha``), unless the node's metadata
says ``binary = False`` (a full-precision layer that happens to have such rows).

Reset and initial potential (the decision): NIR's ``IF`` resets to ``v_reset``; the subtractive
reset has no field. Every ``IF`` is exported with ``v_reset = 0``, and the graph says how it
resets and starts in ``graph.metadata["bsnn_bindsnet"]``:

- ``"reset"``: ``"zero"`` (RIF: NIR's own semantics, ``v <- v_reset = 0``) or ``"subtract"``
  (SIF: ``v <- v - v_threshold``; a reader that ignores the key resets to 0 instead);
- ``"v_init"``: ``"zero"`` (NIR's implicit :math:`v(0) = 0`) or ``"half"``
  (:math:`v(0) = v_{threshold}/2`; NIR has no initial-state field);
- ``"spike_condition"``: ``"v >= v_threshold"``: BindsNET fires when the potential *reaches*
  the threshold, NIR's equations (and Norse, snnTorch) when it *exceeds* it; the two differ
  only when :math:`v = \theta` exactly.

Each ``IF`` node repeats ``reset`` and ``v_init`` in its own metadata, with its plan ``name``.
A graph without these keys (from another tool) is read with NIR's semantics: reset to
``v_reset`` (which must be 0), :math:`v(0) = 0`. Time is discrete, one NIR step per BindsNET
step, ``dv = R I`` with ``r = 1`` (other ``r`` are refused).

Graphs written by peers (checked in ``tests/test_nir_io.py``): Norse 1.1.0's ``to_nir`` writes
``IAFCell`` as ``IF`` (``r = 1``, ``v_reset = 0``, scalar parameters: the layer shape is what its
synapse produces) and keeps the sample's batch dimension in ``Input`` (dropped when the nodes it
feeds do not take it); snnTorch 1.0.0's ``export_to_nir`` writes ``Leaky(beta)`` as ``LIF``
with ``tau = dt/(1-beta)``, ``r = tau/dt``, ``v_leak = 0``, ``v_reset = 0``, so ``beta = 1`` is
``tau = r = inf``: no leak and ``v <- v + I``, read as an ``IF`` (any other ``LIF``, and
``CubaLIF``, are refused by name). Neither writes an ``I``: a graph without one gets its readout
from its ``Output``: a synapse into it (a network ending in ``Linear``) becomes a readout that
integrates its current; a spiking layer into it stays a layer and the readout counts its spikes.
"""

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

from bsnn_bindsnet.convert import INPUT, READOUT, RESETS, V_INITS, BSNNPlan, LayerSpec

try:
    import nir
except ImportError:  # pragma: no cover - exercised when the optional extra is absent
    nir = None

__all__ = ["METADATA_KEY", "NIR_FORMAT", "SUPPORTED_NODES", "from_nir", "nir_to_network",
           "read_nir", "to_nir", "write_nir"]

METADATA_KEY = "bsnn_bindsnet"
NIR_FORMAT = "bsnn-bindsnet/nir-v1"
SPIKE_CONDITION = "v >= v_threshold"
SUPPORTED_NODES = ("Input", "Output", "IF", "I", "Conv2d", "Linear", "Affine", "AvgPool2d",
                   "Flatten")
_SYNAPSE_NODES = ("Conv2d", "Linear", "Affine", "AvgPool2d", "Flatten")


def _require_nir() -> Any:
    if nir is None:
        raise ImportError("NIR support needs the optional packages nir and h5py: pip install "
                          "'bsnn-bindsnet[nir]' (or pip install nir)")
    return nir


def _key(name: str) -> str:
    return name.replace(".", "_")


def _f32(t: Any) -> np.ndarray:
    return torch.as_tensor(t).detach().cpu().to(torch.float32).numpy().copy()


def _binary_weight(syn: dict[str, Any]) -> torch.Tensor:
    """``scale * sign`` in float32, as the binary connections' effective weight ``w``."""
    sign = syn["sign"].to(torch.float32)
    scale = torch.as_tensor(syn["scale"], dtype=torch.float32).reshape(-1)
    scale = scale.expand(sign.shape[0]) if scale.numel() == 1 else scale
    return scale.view(-1, *([1] * (sign.dim() - 1))) * sign


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


def _synapse_chain(syn: dict[str, Any], src_shape: Sequence[int], prefix: str,
                   where: str) -> list[tuple[str, Any]]:
    """NIR nodes (key, node), in signal order, for one plan synapse."""
    kind = syn["type"]
    if kind == "maxpool":
        raise NotImplementedError(
            f"{where}: spike max-pooling cannot be exported: NIR {nir.version} has no "
            "max-pooling node (supported synapses: conv, linear, avgpool). Convert with "
            "average pooling (--pool avg-before/avg-after) to move the network through NIR")
    if kind == "avgpool":
        return [(prefix, _pool_node(syn, src_shape, where))]
    binary = bool(syn["binary"])
    weight = _binary_weight(syn) if binary else torch.as_tensor(syn["weight"])
    w = _f32(weight)
    meta = {"binary": binary}
    bias = syn.get("bias")
    if kind == "conv":
        b = np.zeros(w.shape[0], np.float32) if bias is None else _f32(bias)
        conv = nir.Conv2d(input_shape=tuple(int(d) for d in src_shape[1:]), weight=w,
                          stride=_pair(syn["stride"]), padding=_pair(syn["padding"]),
                          dilation=(1, 1), groups=1, bias=b, metadata=meta)
        chain = [(prefix, conv)]
        if syn.get("pool") is not None:
            x = torch.nn.functional.conv2d(torch.empty(1, *src_shape, device="meta"),
                                           torch.empty(w.shape, device="meta"),
                                           stride=_pair(syn["stride"]),
                                           padding=_pair(syn["padding"]))
            chain.append((f"{prefix}_pool", _pool_node(syn["pool"], x.shape[1:], where)))
        return chain
    if kind == "linear":
        chain = []
        if len(src_shape) > 1:
            chain.append((f"{prefix}_flat", nir.Flatten(
                input_type={"input": np.array(src_shape)}, start_dim=0, end_dim=-1)))
        node = (nir.Linear(weight=w, metadata=meta) if bias is None
                else nir.Affine(weight=w, bias=_f32(bias), metadata=meta))
        return chain + [(prefix, node)]
    raise ValueError(f"{where}: unknown synapse type {kind!r}")


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
            inputs.append((layer.residual["source"], layer.residual["synapse"], f"{key}_res",
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


# ------------------------------------------------------------------------------ import


def _type(node: Any) -> str:
    return type(node).__name__


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


def _meta_str(meta: dict[str, Any], name: str) -> str | None:
    value = meta.get(name)
    if isinstance(value, bytes):
        value = value.decode("utf8")
    if isinstance(value, np.ndarray):
        value = value.item()
        value = value.decode("utf8") if isinstance(value, bytes) else value
    return None if value is None else str(value)


def _weight_synapse(node: Any, key: str, kind: str) -> dict[str, Any]:
    w = torch.from_numpy(_f32(node.weight))
    syn: dict[str, Any] = {"type": kind, "pool": None}
    bias = getattr(node, "bias", None)
    if bias is not None:
        b = np.broadcast_to(_f32(bias), (w.shape[0],))
        syn["bias"] = None if not b.any() else torch.from_numpy(b.copy())
    else:
        syn["bias"] = None
    mag = w.abs().reshape(w.shape[0], -1)
    alpha = mag[:, 0]
    binary = bool((mag == alpha[:, None]).all() and (alpha > 0).all())
    if binary and _as_bool(node.metadata.get("binary"), True):
        syn.update(binary=True, sign=torch.where(w >= 0, 1, -1).to(torch.int8),
                   scale=alpha.clone())
    else:
        syn.update(binary=False, weight=w)
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
    return syn


def _pool_args(node: Any) -> dict[str, Any]:
    return {"kernel_size": tuple(int(k) for k in _pair(np.asarray(node.kernel_size).tolist())),
            "stride": tuple(int(s) for s in _pair(np.asarray(node.stride).tolist())),
            "padding": tuple(int(p) for p in _pair(np.asarray(node.padding).tolist())),
            "ceil_mode": False}


def _parse_chain(chain: list[tuple[str, Any]], target: str) -> dict[str, Any]:
    """A plan synapse from the NIR nodes between two neuron layers (signal order)."""
    types = [_type(node) for _, node in chain]
    where = f"the synapse into {target!r} ({' -> '.join(types) or 'a direct edge'})"
    if types == ["AvgPool2d"]:
        return {"type": "avgpool", **_pool_args(chain[0][1])}
    rest = list(chain)
    if rest and _type(rest[0][1]) == "Flatten":
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
        syn["pool"] = _pool_args(rest[0][1])
        rest = rest[1:]
    if rest:
        raise ValueError(f"{where}: unexpected {_type(rest[0][1])} node {rest[0][0]!r} after "
                         f"{key!r}")
    return syn


def _synapse_shape(syn: dict[str, Any], src_shape: Sequence[int], where: str) -> tuple:
    """The shape a parsed plan synapse maps ``src_shape`` to (checked on meta tensors)."""
    x = torch.empty(1, *src_shape, device="meta")
    fn = torch.nn.functional
    try:
        if syn["type"] == "avgpool":
            x = fn.avg_pool2d(x, syn["kernel_size"], syn["stride"], syn["padding"])
        elif syn["type"] == "linear":
            w = syn["sign"] if syn["binary"] else syn["weight"]
            if w.dim() != 2 or w.shape[1] != x[0].numel():
                raise RuntimeError(f"weight {tuple(w.shape)} for {x[0].numel()} inputs")
            x = torch.empty(1, w.shape[0], device="meta")
        else:
            w = syn["sign"] if syn["binary"] else syn["weight"]
            x = fn.conv2d(x, torch.empty(w.shape, device="meta"), stride=syn["stride"],
                          padding=syn["padding"])
            if syn.get("pool") is not None:
                pool = syn["pool"]
                x = fn.avg_pool2d(x, pool["kernel_size"], pool["stride"], pool["padding"])
    except RuntimeError as err:
        raise ValueError(f"{where}: cannot be applied to its source shape "
                         f"{tuple(src_shape)}: {err}") from None
    return tuple(int(d) for d in x.shape[1:])


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
    """A :class:`~bsnn_bindsnet.convert.BSNNPlan` from a NIR graph or a ``.nir`` file.

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
    readout was obtained is in ``plan.info["nir"]["readout"]``.

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
                         f"expected one of {RESETS} / {V_INITS}")
    info_text = _meta_str(meta, "info")
    info = json.loads(info_text) if info_text else {}
    info["nir"] = {"source_file": source_file, "format": _meta_str(meta, "format"),
                   "readout": readout_note}

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
            residual = {"source": names[rsrc], "synapse": _parse_chain(rchain, names[k])}
            rshape = _synapse_shape(residual["synapse"], shapes[names[rsrc]],
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
            thr = np.broadcast_to(np.asarray(node.v_threshold, dtype=np.float32), shape)
            if np.all(thr == thr.flat[0]):
                thresh = float(thr.flat[0])
            elif len(shape) > 1 and np.all(thr == thr[:, :1, :1]):
                thresh = torch.from_numpy(thr[:, 0, 0].copy())
            else:
                thresh = torch.from_numpy(thr.copy())
        shapes[names[k]] = shape
        layers.append(LayerSpec(names[k], "if" if k in spiking else "readout", shape,
                                names[src], synapse, thresh=thresh, residual=residual))
    if count_spikes_of is not None:
        n = int(np.prod(shapes[names[count_spikes_of]]))
        layers.append(LayerSpec(READOUT, "readout", (n,), names[count_spikes_of],
                                {"type": "linear", "pool": None, "bias": None, "binary": False,
                                 "weight": torch.eye(n)}))
    return BSNNPlan(in_shape, layers, reset=reset, v_init=v_init, info=info)


def _role(chain: list[tuple[str, Any]]) -> str | None:
    return _meta_str(chain[0][1].metadata, "role") if chain else None


def nir_to_network(graph_or_path: Any) -> Any:
    """A BindsNET ``Network`` (this project's nodes and connections) from a NIR graph or file."""
    from bsnn_bindsnet.network import build_network

    return build_network(from_nir(graph_or_path))


def write_nir(graph_or_network: Any, path: str | os.PathLike) -> Path:
    """Write a NIR graph (or a plan / network, exported with :func:`to_nir`) to ``path``
    atomically: the HDF5 file is built in memory and renamed into place."""
    _require_nir()
    from bsnn_bindsnet.checkpoint import atomic_write

    graph = graph_or_network if isinstance(graph_or_network, nir.NIRGraph) else \
        to_nir(graph_or_network)
    buf = io.BytesIO()
    nir.write(buf, graph)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def read_nir(path: str | os.PathLike) -> Any:
    """Read a ``nir.NIRGraph`` from a ``.nir`` (HDF5) file."""
    _require_nir()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no NIR file at {path}")
    try:
        return nir.read(path)
    except (OSError, KeyError) as err:
        raise ValueError(f"{path} is not a readable NIR file: {err}") from None
