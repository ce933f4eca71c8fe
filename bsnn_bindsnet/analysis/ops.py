r"""Operation counts of a converted network, the paper's energy proxy.

Eq. 3 (conv): :math:`\#OPS = n_{IP} k_H k_W n_{OP} o_H o_W`; Eq. 4 (linear):
:math:`\#OPS = i_S o_S`: the MACs of one ANN forward pass. A spiking layer performs one
accumulate per synapse per presynaptic spike, so over an inference window it costs
:math:`IFR_{l-1} \cdot \#OPS_l`, where :math:`IFR` is the number of spikes per neuron of the
layer that drives it. The normalized count is

.. math:: \frac{\sum_l IFR_{src(l)}\,\#OPS_l}{\sum_l \#OPS_l}

over the hidden synaptic layers: 1.0 is the ANN's cost.

**This formula is a reconstruction.** Lu & Sengupta (2020) give Eq. 5 only as an image; the
text around it says "IFR stands for IF Spiking Rate (total number of spikes over the inference
time window averaged over number of neurons), and Layer #OPS include the operation counts in
convolution and linear layers" and "Note that we do not consider the operation count for the
first and last layers since they are not binarized." Hence IFR times #OPS per layer, summed
over the layers other than the first and last (by default; ``layers="all"`` counts them too),
over the same sum for the ANN. In a BWN the counted layers are exactly the binarized ones, and
a full-precision SNN is counted at the same positions. An analog (constant-current) source
counts as one full MAC pass per timestep. Pooling connections have no MACs and are not
counted; a conv whose average pooling is folded into the connection counts its conv output
size (``o_H o_W`` before pooling).

:math:`IFR \cdot \#OPS` assumes that every neuron of the source reaches the mean fan-out
:math:`\#OPS / n_{neurons}`; a conv input at the border of a padded map reaches fewer
targets. :func:`synaptic_events` counts the accumulates a simulation actually performed
(each spike times its own fan-out) from per-neuron spike totals, and
:func:`normalized_events` is the same normalization over those counts: the two agree exactly
for linear layers and for uniform firing, and their gap on a real network measures the border
effect (a test ties both to the simulator).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bsnn_bindsnet.convert import INPUT, BSNNPlan


@dataclass(frozen=True)
class LayerOps:
    """Eq. 3/4 count of one synaptic layer.

    Attributes:
        name: The layer it drives (its name in the network).
        source: The presynaptic layer.
        kind: ``"conv"`` or ``"linear"``.
        binary: Binary weights (the layers counted by default).
        ops: MACs of one ANN forward pass (Eq. 3 or 4).
    """

    name: str
    source: str
    kind: str
    binary: bool
    ops: int


def _conv_out(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


def layer_ops(plan: BSNNPlan) -> list[LayerOps]:
    """Eq. 3/4 counts of every conv and linear synapse of ``plan``, in order."""
    shapes = {INPUT: tuple(plan.input_shape)}
    out = []
    for layer in plan.layers:
        shapes[layer.name] = tuple(layer.shape)
        out += _synapse_ops(layer.name, layer.source, layer.synapse, shapes)
        if layer.residual is not None:  # a second MAC with the same weights (direct route)
            out += _synapse_ops(layer.name, layer.residual["source"],
                                layer.residual["synapse"], shapes)
    return out


def _synapse_ops(name: str, source: str, syn: dict, shapes: dict) -> list[LayerOps]:
    """Eq. 3/4 count of one synapse (``[]`` for pooling, which has no MACs)."""
    if syn["type"] == "conv":
        n_op, n_ip, kh, kw = (syn["sign"] if syn["binary"] else syn["weight"]).shape
        _, h, w = shapes[source]
        oh = _conv_out(h, kh, syn["stride"][0], syn["padding"][0])
        ow = _conv_out(w, kw, syn["stride"][1], syn["padding"][1])
        ops = n_ip * kh * kw * n_op * oh * ow
    elif syn["type"] == "linear":
        o_s, i_s = (syn["sign"] if syn["binary"] else syn["weight"]).shape
        ops = i_s * o_s
    else:
        return []
    return [LayerOps(name, source, syn["type"], bool(syn["binary"]), ops)]


def normalized_ops(ops: Sequence[LayerOps], ifr: Mapping[str, float], *, timesteps: int,
                   layers: str = "hidden") -> float:
    """:math:`\\sum IFR_{src} \\#OPS / \\sum \\#OPS` (see the module docstring).

    Args:
        ops: From :func:`layer_ops`.
        ifr: Spikes per neuron over the window, per spiking layer (``SimResult.firing_rates``).
        timesteps: Window length (an analog source costs one MAC pass per step).
        layers: ``"hidden"`` (default: first and last synaptic layers excluded, as in the
            paper) or ``"all"``.
    """
    if layers not in ("hidden", "all"):
        raise ValueError(f"layers must be 'hidden' or 'all', got {layers!r}")
    chosen = list(ops) if layers == "all" else list(ops)[1:-1]
    if not chosen:
        raise ValueError("no layer to count: the network has no hidden synaptic layer")
    total = sum(o.ops for o in chosen)
    spent = sum((timesteps if o.source == INPUT else ifr[o.source]) * o.ops for o in chosen)
    return spent / total


def _events(syn: dict, counts: Any) -> float:
    """Accumulates of one synapse driven by per-neuron spike totals ``counts`` ``[*shape]``:
    every spike reaches each of its targets once (conv: the output neurons whose receptive
    field holds it, so fewer at a padded border)."""
    import torch
    import torch.nn.functional as F

    counts = counts.double()
    if syn["type"] == "linear":
        return float(counts.sum()) * (syn["sign"] if syn["binary"] else syn["weight"]).shape[0]
    w = syn["sign"] if syn["binary"] else syn["weight"]
    ones = torch.ones(w.shape, dtype=torch.float64)
    # output neuron (o, y, x) receives every spike of its patch once: summing the all-ones
    # convolution over the outputs counts each (spike, target) pair exactly once
    return float(F.conv2d(counts.unsqueeze(0), ones, stride=syn["stride"],
                          padding=syn["padding"]).sum())


def synaptic_events(plan: BSNNPlan, neuron_spikes: Mapping[str, Any], n_samples: int,
                    *, layers: str = "hidden") -> list[tuple[LayerOps, float]]:
    """The accumulates a simulation performed per inference, synapse by synapse.

    Args:
        plan: The simulated network's plan.
        neuron_spikes: Layer -> per-neuron spike totals over all samples and steps
            (``simulate(..., per_neuron=True).neuron_spikes``).
        n_samples: The number of samples those totals are over.
        layers: ``"hidden"`` (default, as :func:`normalized_ops`) or ``"all"`` (an analog input
            source is not a spike train and is refused here).

    Returns:
        ``[(LayerOps, events per inference)]`` for the counted synapses, in order.
    """
    if layers not in ("hidden", "all"):
        raise ValueError(f"layers must be 'hidden' or 'all', got {layers!r}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    synapses = {}
    for layer in plan.layers:
        synapses[(layer.name, layer.source)] = layer.synapse
        if layer.residual is not None:
            synapses[(layer.name, layer.residual["source"])] = layer.residual["synapse"]
    ops = layer_ops(plan)
    chosen = ops if layers == "all" else ops[1:-1]
    out = []
    for o in chosen:
        if o.source == INPUT:
            raise ValueError(f"{o.name}: driven by the analog input, which has no spikes to "
                             "count; use layers='hidden'")
        if o.source not in neuron_spikes:
            raise KeyError(f"no spike totals for layer {o.source!r} (simulate with "
                           "per_neuron=True)")
        events = _events(synapses[(o.name, o.source)], neuron_spikes[o.source].cpu())
        out.append((o, events / n_samples))
    return out


def normalized_events(events: Sequence[tuple[LayerOps, float]]) -> float:
    r""":math:`\sum \text{events} / \sum \#OPS` over :func:`synaptic_events`' synapses: the
    normalized #OPS from counted accumulates instead of IFR times the mean fan-out."""
    total = sum(o.ops for o, _ in events)
    if not total:
        raise ValueError("no synapse to count")
    return sum(e for _, e in events) / total
