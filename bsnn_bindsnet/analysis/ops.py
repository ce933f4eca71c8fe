r"""Operation counts of a converted network, the paper's energy proxy.

Eq. 3 (conv): :math:`\#OPS = n_{IP} k_H k_W n_{OP} o_H o_W`; Eq. 4 (linear):
:math:`\#OPS = i_S o_S`: the MACs of one ANN forward pass. A spiking layer performs one
accumulate per synapse per presynaptic spike, so over an inference window it costs
:math:`IFR_{l-1} \cdot \#OPS_l`, where :math:`IFR` is the number of spikes per neuron of the
layer that drives it. The normalized count (reconstructed from the paper, whose formula is an
image) is

.. math:: \frac{\sum_l IFR_{src(l)}\,\#OPS_l}{\sum_l \#OPS_l}

over the hidden synaptic layers (first and last excluded by default: in a BWN these are
exactly the binarized layers, and a full-precision SNN is counted at the same positions): 1.0
is the ANN's cost. An
analog (constant-current) source counts as one full MAC pass per timestep. Pooling
connections have no MACs and are not counted; a conv whose average pooling is folded into the
connection counts its conv output size (``o_H o_W`` before pooling).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
