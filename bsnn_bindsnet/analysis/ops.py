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
:func:`normalized_events` is the same normalization over those counts. Eq. 3 also counts the
products of a conv with its zero padding, which no spike ever drives; dividing counted events
by it mixes two conventions and lands below Eq. 5 by the padded share of each conv.
So :func:`normalized_events` divides by the ANN's *unpadded* MACs (``LayerOps.unpadded``: the
products with real inputs, what an ANN pass on a map of non-zero inputs performs), the same
convention as the events: then the two agree exactly for uniform firing and for linear layers,
and their gap on a real network measures only how firing correlates with fan-out (border
neurons firing more or less than the mean). ``denominator="eq3"`` gives the mixed ratio.

**Which count is the headline.** :func:`normalized_ops` with ``layers="hidden"`` is the
paper's Eq. 5 and what it compares; it leaves out the full-precision first layer, which in a
converted network receives the analog input at *every* step (:math:`T` full MAC passes), and
the readout. ``layers="all"`` counts them, mixing that layer's multiply-accumulates with the
hidden layers' accumulates. :func:`ops_report` gives both; the package reports the hidden
count as the paper's measure and the all-layers count as the network's cost, and a claim of
"fewer operations than the ANN" must hold for the all-layers count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from bsnn_bindsnet.snn.plan import INPUT, BSNNPlan


@dataclass(frozen=True)
class LayerOps:
    """Eq. 3/4 count of one synaptic layer.

    Attributes:
        name: The layer it drives (its name in the network).
        source: The presynaptic layer.
        kind: ``"conv"`` or ``"linear"``.
        binary: Binary weights (the layers counted by default).
        ops: MACs of one ANN forward pass (Eq. 3 or 4).
        unpadded: The same without the products with a conv's zero padding (equal to ``ops``
            for a linear layer; ``None`` when not computed: then ``ops`` is used).
    """

    name: str
    source: str
    kind: str
    binary: bool
    ops: int
    unpadded: int | None = None


def layer_ops(plan: BSNNPlan) -> list[LayerOps]:
    """Eq. 3/4 counts of every synapse with MACs (conv, linear; a residual synapse is a second
    MAC with its own weights) of ``plan``, in order (:meth:`~bsnn_bindsnet.snn.plan.Synapse.macs`:
    pooling has none and is left out), with their unpadded counts (one synaptic event per
    input and target it reaches when every input is active once)."""
    shapes = plan.shapes()
    out = []
    for layer, source, syn in plan.synapses():
        ops = syn.macs(shapes[source])
        if ops:
            unpadded = round(syn.events(torch.ones(tuple(shapes[source]), dtype=torch.float64)))
            out.append(LayerOps(layer.name, source, syn.type, bool(syn.binary), ops, unpadded))
    return out


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


def ops_report(ops: Sequence[LayerOps], ifr: Mapping[str, float], *,
               timesteps: int) -> dict[str, Any]:
    """Both normalized counts of :func:`normalized_ops` (see "Which count is the headline" in
    the module docstring): ``{"hidden": ..., "all": ..., "first_layer_share": ...}``, the last
    the share of the all-layers count spent in synapses driven by the analog input."""
    every = list(ops)
    total = sum(o.ops for o in every)
    first = sum(timesteps * o.ops for o in every if o.source == INPUT)
    all_layers = normalized_ops(every, ifr, timesteps=timesteps, layers="all")
    return {"hidden": normalized_ops(every, ifr, timesteps=timesteps, layers="hidden"),
            "all": all_layers,
            "first_layer_share": first / (all_layers * total) if all_layers else 0.0}


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
    synapses = {(layer.name, source): syn for layer, source, syn in plan.synapses()}
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
        events = synapses[(o.name, o.source)].events(neuron_spikes[o.source].cpu())
        out.append((o, events / n_samples))
    return out


def normalized_events(events: Sequence[tuple[LayerOps, float]], *,
                      denominator: str = "unpadded") -> float:
    r""":math:`\sum \text{events} / \sum \#OPS` over :func:`synaptic_events`' synapses: the
    normalized #OPS from counted accumulates instead of IFR times the mean fan-out.

    Args:
        events: From :func:`synaptic_events`.
        denominator: ``"unpadded"`` (default: the ANN's MACs without the products with zero
            padding, the convention of the events themselves, so uniform firing of
            :math:`r` spikes per neuron gives exactly :math:`r`) or ``"eq3"`` (Eq. 3 counts,
            padding included: lower by the padded share of each conv).
    """
    if denominator not in ("unpadded", "eq3"):
        raise ValueError(f"denominator must be 'unpadded' or 'eq3', got {denominator!r}")
    total = sum(o.ops if denominator == "eq3" or o.unpadded is None else o.unpadded
                for o, _ in events)
    if not total:
        raise ValueError("no synapse to count")
    return sum(e for _, e in events) / total
