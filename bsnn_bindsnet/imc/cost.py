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
    ``mean_spikes`` averages over all (synapse, input) pairs. Rows of arrays of different
    widths (32 ... 256 columns) add as equals here; :func:`crossbar_energy` weights them by
    their width on request, adds the per-step column sensing, and gives XNOR-BSNN's own
    (not event-driven) picture beside this one.

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




WEIGHTINGS = ("rows", "cells")


def fan_out_maps(network_or_plan: Any) -> dict[str, tuple[str, Tensor]]:
    """``key -> (source, f)`` for every binary synapse (residual: ``"layer<-source"``): ``f``
    is shaped like the source layer and holds each input neuron's fan-out :math:`f_j`, the
    output positions whose patch holds it (zero padding excluded). ``(f * s).sum()`` of a
    spike map ``s`` is that map's active B-SNN rows (:func:`row_energy`); ``f.sum()`` the
    BNN's."""
    plan = _plan(network_or_plan)
    out: dict[str, tuple[str, Tensor]] = {}
    for key, _, source, syn in _binary_synapses(plan):
        x = torch.ones(1, *_source_shape(plan, source), dtype=torch.float64, requires_grad=True)
        _patches(syn, x)[0].sum().backward()
        out[key] = (source, x.grad[0].detach())
    return out


def crossbar_energy(network_or_plan: Any, active_rows: dict[str, float], *, timesteps: int,
                    sense_weight: float = 0.0,
                    weighting: str = "rows") -> dict[str, dict[str, float]]:
    r"""Array energy per inference of every binary synapse in three pictures, with a per-step
    read/sense term and arrays of different widths weighted or counted as rows.

    With :math:`P` the synapse's output positions (1 for a linear layer), :math:`R` its output
    channels, :math:`F = \sum_j f_j` the BNN's active rows per pass (:func:`fan_out_maps`),
    :math:`A` the B-SNN's active rows per inference (``active_rows[key]``,
    :math:`\sum_j f_j s_j`, :func:`row_energy`'s ``bsnn``), :math:`\kappa` = ``sense_weight``
    and :math:`w` the cost of one row activation (1 with ``weighting="rows"``; the cells on
    the row with ``"cells"``: :math:`R` for a BNN or XNOR array, :math:`R + 1` for Lu &
    Sengupta's B-SNN array with its dummy column):

    * ``bnn`` :math:`= w F + \kappa P R`: one active row per input and position, and the
      :math:`R` columns sensed once per position, in one pass;
    * ``bsnn`` (event-driven, Lu & Sengupta 2020, Fig. 2) :math:`= w A + \kappa T P (R + 1)`:
      rows are driven "only on a spike event", but the array is evaluated at every step
      ("the neuron circuits interfaced with the array need to accumulate the dot-product
      evaluation over time"), so its columns, the dummy reference column included ("a dummy
      column will be required for referencing purposes of sense amplifiers"), are sensed
      :math:`T` times;
    * ``xnor_bsnn`` (XNOR-BSNN's array, Eq. 10) :math:`= T (w F + \kappa P R)`: every input,
      0 or 1, takes part in the XNOR at every step (:math:`\sum_j \overline{w_{ij} \oplus
      o_j}`), so the array does the BNN's work :math:`T` times, whatever the spike rate;
    * ``ratio`` = ``bsnn / bnn`` and ``xnor_ratio`` = ``xnor_bsnn / bnn`` (:math:`= T`).

    ``sense_weight = 0`` with ``weighting="rows"`` is :func:`row_energy`'s model (the 1.80-2.00x
    of the README). A residual synapse is a second evaluation on the same columns and is
    charged its own rows and sensing. ``"total"`` sums the synapses; with ``"rows"`` it adds
    row activations of arrays of different widths (32 ... 256 columns) as equals, with
    ``"cells"`` it weights each by its width.

    Args:
        network_or_plan: A converted ``Network`` or a ``BSNNPlan``.
        active_rows: Binary synapse key -> B-SNN active rows per inference (every key of
            :func:`fan_out_maps` is needed).
        timesteps: :math:`T`, the steps each inference runs.
        sense_weight: :math:`\kappa`, the energy of sensing one column once, in units of one
            row activation (``"rows"``) or of one cell on an active row (``"cells"``).
        weighting: ``"rows"`` or ``"cells"``.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be 'rows' or 'cells', got {weighting!r}")
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    if not sense_weight >= 0:
        raise ValueError(f"sense_weight must be >= 0, got {sense_weight}")
    plan = _plan(network_or_plan)
    out: dict[str, dict[str, float]] = {}
    for key, _, source, syn in _binary_synapses(plan):
        if key not in active_rows:
            raise KeyError(f"no active-row count for binary synapse {key!r}; active_rows has "
                           f"{sorted(active_rows)}")
        shape = _source_shape(plan, source)
        rows_f = float(_patches(syn, torch.ones(1, *shape))[0].sum())
        positions = _patches(syn, torch.zeros(1, *shape))[0].shape[0]
        r = syn.rows().shape[0]
        w_bnn, w_bsnn = (r, r + 1) if weighting == "cells" else (1, 1)
        bnn = w_bnn * rows_f + sense_weight * positions * r
        bsnn = (w_bsnn * float(active_rows[key])
                + sense_weight * timesteps * positions * (r + 1))
        out[key] = {"bnn": bnn, "bsnn": bsnn, "xnor_bsnn": timesteps * bnn,
                    "ratio": bsnn / bnn, "xnor_ratio": float(timesteps)}
    totals = {k: sum(v[k] for v in out.values()) for k in ("bnn", "bsnn", "xnor_bsnn")}
    bnn = totals["bnn"]
    out["total"] = {**totals, "ratio": totals["bsnn"] / bnn if bnn else float("nan"),
                    "xnor_ratio": totals["xnor_bsnn"] / bnn if bnn else float("nan")}
    return out
