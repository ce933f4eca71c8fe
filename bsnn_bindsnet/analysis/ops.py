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

from bsnn_bindsnet.plan import INPUT, BSNNPlan


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


def layer_ops(plan: BSNNPlan) -> list[LayerOps]:
    """Eq. 3/4 counts of every synapse with MACs (conv, linear; a residual synapse is a second
    MAC with its own weights) of ``plan``, in order (:meth:`~bsnn_bindsnet.plan.Synapse.macs`:
    pooling has none and is left out)."""
    shapes = plan.shapes()
    out = []
    for layer, source, syn in plan.synapses():
        ops = syn.macs(shapes[source])
        if ops:
            out.append(LayerOps(layer.name, source, syn.type, bool(syn.binary), ops))
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


def normalized_events(events: Sequence[tuple[LayerOps, float]]) -> float:
    r""":math:`\sum \text{events} / \sum \#OPS` over :func:`synaptic_events`' synapses: the
    normalized #OPS from counted accumulates instead of IFR times the mean fan-out."""
    total = sum(o.ops for o, _ in events)
    if not total:
        raise ValueError("no synapse to count")
    return sum(e for _, e in events) / total
