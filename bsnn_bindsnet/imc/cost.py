r"""Lu & Sengupta's RRAM rows (2020, Fig. 2): array energy and area of a B-SNN vs a BNN, and
the XNOR work per frame (see :mod:`bsnn_bindsnet.imc`)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bsnn_bindsnet.imc.array import _binary_synapses, _patches, _plan, _source_shape

BREAK_EVEN_SPIKES = 1.0
"""Fan-out-weighted spikes per input per inference at which B-SNN and BNN array energies are
equal under :func:`row_energy`'s model (one BNN row per input and output position vs one
B-SNN row per spike and output position)."""


def row_energy(network_or_plan: Any, neuron_spikes: dict[str, Tensor],
               n_samples: int) -> dict[str, dict[str, float]]:
    r"""Active crossbar rows per inference of every binary synapse, B-SNN vs a BNN of the
    same shape (Lu & Sengupta 2020, Fig. 2: "irrespective of the value of the input, one of
    the rows of the array will be active"; a B-SNN row draws power only on a spike).

    With :math:`f_j` the fan-out of input neuron :math:`j` of the synapse's source (the
    output positions whose patch holds it: 1 for a linear layer, up to
    :math:`k_H k_W` for a conv, fewer at the borders; zero padding drives no row) and
    :math:`s_j` its spikes per inference (summed over the :math:`T` steps, averaged over
    the samples):

    * ``bnn`` :math:`= \sum_j f_j` (one of the two rows of every input, at every output
      position, in one pass);
    * ``bsnn`` :math:`= \sum_j f_j s_j` (one row per spike per output position);
    * ``ratio`` = ``bsnn / bnn``;
    * ``spikes_per_input`` :math:`= \sum_j f_j s_j / \sum_j f_j`, the fan-out-weighted mean
      spikes per input per inference (equal to ``ratio`` under this model);
    * ``mean_spikes`` :math:`= \frac{1}{N} \sum_j s_j`, the same mean unweighted (the source's
      spikes per neuron per inference);
    * ``break_even`` = :data:`BREAK_EVEN_SPIKES` (1.0): the value of ``spikes_per_input`` at
      which both draw the same array energy; below it the B-SNN draws less.

    A residual synapse (``"layer<-source"``) is a second MAC on the same rows and is charged
    the same way for both. ``"total"`` sums ``bnn`` and ``bsnn`` over all synapses, so its
    ``spikes_per_input`` weights every (synapse, input) pair by its fan-out, and its
    ``mean_spikes`` averages over all (synapse, input) pairs.

    Args:
        network_or_plan: A converted ``Network`` (its ``bsnn_plan``) or a ``BSNNPlan``.
        neuron_spikes: Layer -> per-neuron spike totals over all samples and steps, shaped
            like the layer (``simulate(..., per_neuron=True).neuron_spikes``).
        n_samples: Samples those totals are over.
    """
    if n_samples <= 0:
        raise ValueError(f"n_samples must be positive, got {n_samples}")
    plan = _plan(network_or_plan)
    out: dict[str, dict[str, float]] = {}
    n_inputs = 0
    spike_sum = 0.0
    for key, _, source, syn in _binary_synapses(plan):
        shape = _source_shape(plan, source)
        if source not in neuron_spikes:
            raise KeyError(f"no spike counts for {source!r}, the source of binary synapse "
                           f"{key!r}; neuron_spikes has {sorted(neuron_spikes)}")
        counts = neuron_spikes[source].detach().float().cpu()
        if counts.numel() != int(np.prod(shape)):
            raise ValueError(f"spike counts of {source!r} have {counts.numel()} entries; the "
                             f"layer has shape {shape}")
        s = counts.reshape(1, *shape) / n_samples
        bnn = float(_patches(syn, torch.ones_like(s))[0].sum())
        bsnn = float(_patches(syn, s)[0].sum())
        out[key] = {"bnn": bnn, "bsnn": bsnn, "ratio": bsnn / bnn,
                    "spikes_per_input": bsnn / bnn, "mean_spikes": float(s.mean()),
                    "break_even": BREAK_EVEN_SPIKES}
        n_inputs += s.numel()
        spike_sum += float(s.sum())
    bnn = sum(v["bnn"] for v in out.values())
    bsnn = sum(v["bsnn"] for v in out.values())
    ratio = bsnn / bnn if bnn else float("nan")
    out["total"] = {"bnn": bnn, "bsnn": bsnn, "ratio": ratio, "spikes_per_input": ratio,
                    "mean_spikes": spike_sum / n_inputs if n_inputs else float("nan"),
                    "break_even": BREAK_EVEN_SPIKES}
    return out


def array_area(network_or_plan: Any) -> dict[str, dict[str, float]]:
    r"""Crossbar size of every binary layer, BNN vs B-SNN (Lu & Sengupta 2020, Fig. 2: two
    rows per :math:`\pm1` input vs "just one row per bit-cell", plus "a dummy column ...
    for referencing purposes of sense amplifiers").

    With :math:`n` inputs per output position (:math:`C_{in} k_H k_W` for a conv, whose
    array is reused at every output position; ``in_features`` for a linear layer) and
    :math:`R` output channels or neurons: ``bnn_rows`` :math:`= 2n`, ``bnn_cols`` :math:`= R`,
    ``bsnn_rows`` :math:`= n`, ``bsnn_cols`` :math:`= R + 1`, ``*_cells`` = rows x cols and
    ``ratio`` = ``bsnn_cells / bnn_cells`` :math:`= (R + 1) / (2R)`. A binary residual
    synapse with the same signs (``shares_rows`` in :func:`export_imc`) is a second read of
    the same rows and adds no area; one with other signs adds its own :math:`n` (B-SNN) or
    :math:`2n` (BNN) rows on the same columns. ``"total"`` sums the cells (rows and columns
    of different arrays do not add).
    """
    plan = _plan(network_or_plan)
    out: dict[str, dict[str, float]] = {}
    for layer in plan.layers:
        syn = layer.synapse
        if not syn.binary:
            continue
        w = syn.rows()
        n, r = w.shape[1], w.shape[0]
        res = layer.residual.synapse if layer.residual is not None else None
        if res is not None and res.binary and not torch.equal(res.sign, syn.sign):
            n += res.rows().shape[1]
        bnn_cells, bsnn_cells = 2 * n * r, n * (r + 1)
        out[layer.name] = {"bnn_rows": 2 * n, "bnn_cols": r, "bnn_cells": bnn_cells,
                           "bsnn_rows": n, "bsnn_cols": r + 1, "bsnn_cells": bsnn_cells,
                           "ratio": bsnn_cells / bnn_cells}
    bnn = sum(v["bnn_cells"] for v in out.values())
    bsnn = sum(v["bsnn_cells"] for v in out.values())
    out["total"] = {"bnn_cells": bnn, "bsnn_cells": bsnn,
                    "ratio": bsnn / bnn if bnn else float("nan")}
    return out


def row_activations(network_or_plan: Any, neuron_spikes: dict[str, Tensor],
                    n_samples: int) -> dict[str, dict[str, float]]:
    """Deprecated alias of :func:`row_energy` (same corrected numbers: a BNN has ONE active row
    per input and output position, not two; the second row of each input costs area, see
    :func:`array_area`)."""
    warnings.warn("row_activations is deprecated and now returns row_energy's numbers (one "
                  "active BNN row per input, not two); call row_energy, and array_area for "
                  "the crossbar size", DeprecationWarning, stacklevel=2)
    return row_energy(network_or_plan, neuron_spikes, n_samples)


def xnor_macs_per_frame(network_or_plan: Any) -> dict[str, dict[str, int]]:
    """What :func:`verify_network` checks per frame (one sample at one step), per binary
    synapse (residual: ``"layer<-source"``) and in ``"total"``: ``dot_products`` (XNOR-popcount
    results, output positions x output channels) and ``bit_macs`` (dot products x bits per
    row)."""
    plan = _plan(network_or_plan)
    out: dict[str, dict[str, int]] = {}
    for key, _, source, syn in _binary_synapses(plan):
        positions = _patches(syn, torch.zeros(1, *_source_shape(plan, source)))[0].shape[0]
        r, n = syn.rows().shape
        out[key] = {"dot_products": positions * r, "bit_macs": positions * r * n}
    out["total"] = {k: sum(v[k] for v in out.values()) for k in ("dot_products", "bit_macs")}
    return out


