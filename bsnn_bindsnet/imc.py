r"""Binary synapses of a B-SNN on in-memory crossbars: two hardware pictures, kept apart.

**Compute: XNOR-BSNN's array** (Eq. 8-11; :func:`xnor_mac`, :func:`layer_mac`,
:func:`verify_network`, :func:`export_imc`). Weights are stored unipolar
(:math:`-1 \to 0`, :math:`+1 \to 1`), one weight row per output channel (conv: over the
:math:`C_{in} k_H k_W` patch, in ``torch.nn.functional.unfold`` order). For binary spikes
:math:`o \in \{0, 1\}`:

.. math:: \sum_j w_{ij} o_j = \sum_j \mathrm{XNOR}(w^u_{ij}, o_j) - M1_i,

:math:`M1_i` = the number of :math:`-1` weights of row :math:`i` (a spike on a :math:`+1` weight
adds a match, a silent input on a :math:`-1` weight adds one that :math:`M1` takes back). Every
input bit, spiking or silent, takes part in the XNOR at every step. :func:`xnor_mac` computes it
on bit-packed words with integer XNOR and popcount only. A residual input is a second MAC on
the same rows (:func:`layer_mac` with ``residual``).

**Cost: Lu & Sengupta's RRAM rows** (2020, Fig. 2; :func:`row_energy`, :func:`array_area`).
Here an input drives a word line (a *row*) and an output neuron reads a bit line (a
*column*), so the crossbar is the transpose of the weight rows above. The energy model rests
on: "Note that two rows per input are used due to the differential nature +1, −1 of the neuron
inputs. Hence, irrespective of the value of the input, one of the rows of the array will be
active resulting in power consumption." and "the power-consumption involved in accessing the
rows of the array occurs only on a spike event". The area model on: "Since, in a B-SNN, the
neuron outputs are 0 and 1, we can use just one row per bit-cell, thereby reducing the array
area by 50%. Note that a dummy column will be required for referencing purposes of sense
amplifiers".

* Energy = active rows per inference. BNN: one of an input's two rows per input per output
  position it feeds, one pass. B-SNN: one row per input *spike* per output position it feeds,
  summed over the :math:`T` steps. With :math:`f_j` the fan-out of input :math:`j` (output
  positions whose patch holds it; zero padding drives no row) and :math:`s_j` its spikes per
  inference: :math:`E_{BNN} = \sum_j f_j`, :math:`E_{B-SNN} = \sum_j f_j s_j`, so
  :math:`E_{B-SNN} / E_{BNN} = \bar s_f`, the fan-out-weighted mean spikes per input per
  inference, and the B-SNN draws less array energy exactly when :math:`\bar s_f < 1`
  (:data:`BREAK_EVEN_SPIKES`).
* Area = crossbar cells. With :math:`n` inputs per output position (:math:`C_{in} k_H k_W` or
  ``in_features``) and :math:`R` outputs: BNN :math:`2n \times R`, B-SNN
  :math:`n \times (R + 1)`; a conv's array is reused at every output position.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from bsnn_bindsnet.checkpoint import atomic_write, atomic_write_json

IMC_FORMAT = "bsnn-bindsnet/imc-v1"
BREAK_EVEN_SPIKES = 1.0
"""Fan-out-weighted spikes per input per inference at which B-SNN and BNN array energies are
equal under :func:`row_energy`'s model (one BNN row per input and output position vs one
B-SNN row per spike and output position)."""


def to_unipolar(sign: Tensor) -> Tensor:
    """``±1`` weights -> ``uint8`` bits (``-1 -> 0``, ``+1 -> 1``); anything else is an error."""
    if not torch.isin(sign, torch.tensor([-1, 1], dtype=sign.dtype)).all():
        raise ValueError("binary weights must be exactly -1 or +1")
    return (sign > 0).to(torch.uint8)


def pack_bits(bits: Tensor) -> Tensor:
    """``[..., n]`` of 0/1 -> ``[..., ceil(n/8)]`` ``uint8``, first bit in the high bit of the
    first byte (``numpy.packbits`` order), zero-padded."""
    return torch.from_numpy(np.packbits(bits.detach().to(torch.uint8).cpu().numpy(), axis=-1))


def _words(packed: Tensor) -> np.ndarray:
    """``[M, nbytes]`` packed bytes -> ``[M, ceil(nbytes/8)]`` ``uint64`` words (zero bytes
    appended; the byte order inside a word does not matter to XNOR + popcount)."""
    a = packed.detach().to(torch.uint8).cpu().numpy()
    a = np.pad(a, ((0, 0), (0, (-a.shape[1]) % 8)))
    return np.ascontiguousarray(a).view(np.uint64)


def xnor_mac(w_packed: Tensor, m1: Tensor, o_packed: Tensor, n: int, *,
             chunk: int = 1 << 20) -> Tensor:
    r""":math:`\mathrm{popcount}(\mathrm{XNOR}(w, o)) - M1` for every input row and weight row
    (XNOR-BSNN's array, Eq. 8-11: every input bit, spiking or silent, is XNORed).

    Integer ops only: bytes grouped into 64-bit words, one vectorized XNOR and hardware
    popcount (``numpy.bitwise_count``) per word position, accumulated.

    Args:
        w_packed: ``[R, nbytes]`` packed unipolar weights.
        m1: ``[R]`` number of ``-1`` weights per row.
        o_packed: ``[M, nbytes]`` packed binary inputs.
        n: Bits per row (the padding bits are not counted).
        chunk: About how many ``[M, R]`` results to compute at once (memory bound).

    Returns:
        ``[M, R]`` ``int32``: :math:`\sum_j w_{ij} o_j` exactly.
    """
    if w_packed.shape[1] != o_packed.shape[1]:
        raise ValueError(f"weights and inputs packed to different widths: "
                         f"{w_packed.shape[1]} vs {o_packed.shape[1]} bytes")
    w, o = _words(w_packed), _words(o_packed)
    r, k = w.shape
    pad = k * 64 - n  # zero padding bits XNOR to 1 on both sides
    wt = np.ascontiguousarray(w.T)  # [K, R]
    out = np.empty((o.shape[0], r), dtype=np.int32)
    step = max(1, chunk // max(r, 1))
    for s in range(0, o.shape[0], step):
        oc = o[s:s + step]
        acc = np.zeros((oc.shape[0], r), dtype=np.int32)
        buf = np.empty((oc.shape[0], r), dtype=np.uint64)
        for j in range(k):
            np.bitwise_xor(oc[:, j, None], wt[j][None, :], out=buf)
            np.invert(buf, out=buf)  # XNOR
            acc += np.bitwise_count(buf)
        out[s:s + step] = acc
    return torch.from_numpy(out - pad - m1.detach().cpu().numpy().astype(np.int32)[None, :])


def _rows(syn: dict[str, Any]) -> Tensor:
    return syn["sign"].reshape(syn["sign"].shape[0], -1)


def _patches(syn: dict[str, Any], spikes: Tensor) -> tuple[Tensor, Any]:
    """``[M, n]`` input rows the crossbar sees, and how to fold ``[M, R]`` back."""
    b = spikes.shape[0]
    if syn["type"] == "linear":
        return spikes.reshape(b, -1), lambda y: y
    (kh, kw), (sh, sw), (ph, pw) = syn["sign"].shape[2:], syn["stride"], syn["padding"]
    x = F.pad(spikes, (pw, pw, ph, ph))  # zero padding, any dtype
    win = x.unfold(2, kh, sh).unfold(3, kw, sw)  # view [B, C, oH, oW, kh, kw]
    h, w = win.shape[2], win.shape[3]
    # the rows of F.unfold (c, kh, kw order) without its slow im2col: one strided copy
    rows = win.permute(0, 2, 3, 1, 4, 5).reshape(b * h * w, -1)
    return rows, lambda y: y.reshape(b, h, w, -1).permute(0, 3, 1, 2)


def _pack_channels_last(bits: Tensor) -> Tensor:
    """``[N, C, kh, kw]`` 0/1 -> ``[N, kh * kw * ceil(C/8)]`` bytes: channels packed per
    pixel, the channel bits zero-padded to whole bytes."""
    x = bits.to(torch.uint8).permute(0, 2, 3, 1)
    return pack_bits(x).reshape(bits.shape[0], -1)


def _packed_patches(syn: dict[str, Any], spikes: Tensor) -> tuple[Tensor, Any]:
    """:func:`_patches` on packed bits, in (kh, kw, c) order to match
    :func:`_pack_channels_last`: the channels of each pixel are packed once, then the
    patches gather bytes (8x less to copy than gathering bits). Zero padding is all-zero
    bytes, i.e. silent inputs; the padding bits of a byte are 0 on both sides."""
    (kh, kw), (sh, sw), (ph, pw) = syn["sign"].shape[2:], syn["stride"], syn["padding"]
    b = spikes.shape[0]
    x = pack_bits(spikes.to(torch.uint8).permute(0, 2, 3, 1))  # [B, H, W, ceil(C/8)]
    x = F.pad(x, (0, 0, pw, pw, ph, ph))
    win = x.unfold(1, kh, sh).unfold(2, kw, sw)  # view [B, oH, oW, Cb, kh, kw]
    h, w = win.shape[1], win.shape[2]
    rows = win.permute(0, 1, 2, 4, 5, 3).reshape(b * h * w, -1)
    return rows, lambda y: y.reshape(b, h, w, -1).permute(0, 3, 1, 2)


def layer_mac(syn: dict[str, Any], spikes: Tensor, *, residual: Tensor | None = None,
              factor: float = 1.0) -> Tensor:
    r"""The binary synapse's integer MAC on binary ``spikes`` (``[B, *source_shape]``) by
    XNOR-popcount on XNOR-BSNN's array (Eq. 8-11), before scale, bias and pooling:
    ``[B, C_out, oH, oW]`` or ``[B, out]``.
    With ``residual`` (the spikes of layer l-2): the MAC of ``spikes + factor * residual``
    as two XNOR MACs on the same rows."""
    if not syn.get("binary"):
        raise ValueError("layer_mac needs a binary synapse (the first and last layers are "
                         "full precision and stay digital)")
    rows = _rows(syn)
    m1, n = (rows < 0).sum(1), rows.shape[1]
    w_packed = _pack_channels_last(to_unipolar(syn["sign"])) if syn["type"] == "conv" else (
        pack_bits(to_unipolar(rows)))

    def mac(s: Tensor) -> Tensor:
        if not ((s == 0) | (s == 1)).all():
            raise ValueError("the XNOR array takes binary spikes (0/1)")
        if syn["type"] == "linear":
            return xnor_mac(w_packed, m1, pack_bits(s.reshape(s.shape[0], -1)), n)
        x, fold = _packed_patches(syn, s)
        return fold(xnor_mac(w_packed, m1, x, n))

    out = mac(spikes)
    return out if residual is None else out + factor * mac(residual)


def _plan(network_or_plan: Any) -> Any:
    return getattr(network_or_plan, "bsnn_plan", network_or_plan)


def export_imc(network_or_plan: Any, path: str | os.PathLike) -> tuple[Path, Path]:
    """Write the crossbar contents of every layer to ``PATH.npz`` + ``PATH.json`` (atomic),
    laid out for XNOR-BSNN's array (Eq. 8-11): ``rows`` / ``cols`` below are the weight
    matrix's (one row per output channel, one column per patch input), the transpose of
    Lu & Sengupta's word lines (:func:`array_area`).

    The npz holds, per binary layer ``L``: ``L/bits`` (``uint8`` ``[R, ceil(n/8)]``, packed as
    ``numpy.packbits`` along rows: unpack with ``np.unpackbits(a, axis=1)[:, :n]``; 1 = +1),
    ``L/m1`` (``int32`` ``[R]``), ``L/bias`` (``float32`` ``[R]``, zeros if none) and
    ``L/thresh`` (``float32``, per channel or one value); full-precision layers (first, last)
    store ``L/weight``. The JSON lists the layers in order with their geometry, source,
    residual source and factor, and the rule. Loading needs only numpy and json.
    """
    plan = _plan(network_or_plan)
    base = Path(path)
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for layer in plan.layers:
        syn = layer.synapse
        if syn["type"] not in ("conv", "linear"):
            layers.append({"name": layer.name, "kind": syn["type"], "source": layer.source,
                           **{k: syn[k] for k in ("kernel_size", "stride", "padding")}})
            continue
        entry: dict[str, Any] = {"name": layer.name, "kind": syn["type"],
                                 "source": layer.source, "binary": bool(syn["binary"]),
                                 "neuron": layer.kind, "output_shape": list(layer.shape),
                                 "pool_after_mac": syn.get("pool")}
        if syn["type"] == "conv":
            entry.update(stride=list(syn["stride"]), padding=list(syn["padding"]))
        if syn["binary"]:
            rows = _rows(syn)
            entry.update(rows=rows.shape[0], cols=rows.shape[1],
                         weight_shape=list(syn["sign"].shape),
                         scale=syn["scale"].reshape(-1).tolist())
            arrays[f"{layer.name}/bits"] = pack_bits(to_unipolar(rows)).numpy()
            arrays[f"{layer.name}/m1"] = (rows < 0).sum(1).int().numpy()
            bias = syn["bias"] if syn["bias"] is not None else torch.zeros(rows.shape[0])
            arrays[f"{layer.name}/bias"] = bias.float().numpy()
        else:
            arrays[f"{layer.name}/weight"] = syn["weight"].float().numpy()
            if syn["bias"] is not None:
                arrays[f"{layer.name}/bias"] = syn["bias"].float().numpy()
        if layer.thresh is not None:
            arrays[f"{layer.name}/thresh"] = torch.as_tensor(layer.thresh).float().numpy()
        if layer.residual is not None:
            res = layer.residual["synapse"]
            entry["residual"] = {"source": layer.residual["source"],
                                 "factor": float(res["scale"].reshape(-1)[0])
                                 if res["binary"] else None,
                                 "shares_rows": bool(res["binary"] and torch.equal(
                                     res["sign"], syn["sign"]))}
        layers.append(entry)
    npz = atomic_write(base.with_suffix(".npz"), lambda f: np.savez(f, **arrays))
    manifest = {"format": IMC_FORMAT, "input_shape": list(plan.input_shape),
                "reset": plan.reset, "v_init": plan.v_init,
                "rule": "dot = popcount(XNOR(bits, spikes)) - m1; current = scale * dot + bias "
                        "(+ factor * dot of the residual source on the same rows), then the "
                        "optional average pool; spike when the integrated current >= thresh, "
                        "then subtract thresh (reset 'subtract') or set 0 ('zero')",
                "row_order": "output channel; columns in torch.nn.functional.unfold order "
                             "(c_in, kh, kw), conv inputs zero-padded",
                "layers": layers, "info": {k: v for k, v in plan.info.items()
                                           if isinstance(v, (str, int, float, list))}}
    return npz, atomic_write_json(manifest, base.with_suffix(".json"))


def _source_shape(plan: Any, source: str) -> tuple[int, ...]:
    if source == "input":
        return tuple(plan.input_shape)
    for layer in plan.layers:
        if layer.name == source:
            return tuple(layer.shape)
    raise ValueError(f"no layer named {source!r} in the plan")


def _binary_synapses(plan: Any) -> list[tuple[str, Any, str, dict[str, Any]]]:
    """``(key, layer, source, synapse)`` of every binary synapse in order; a residual synapse
    is keyed ``"layer<-source"``."""
    out = []
    for layer in plan.layers:
        if layer.synapse.get("binary"):
            out.append((layer.name, layer, layer.source, layer.synapse))
        if layer.residual is not None and layer.residual["synapse"].get("binary"):
            src = layer.residual["source"]
            out.append((f"{layer.name}<-{src}", layer, src, layer.residual["synapse"]))
    return out


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
        if not syn.get("binary"):
            continue
        w = _rows(syn)
        n, r = w.shape[1], w.shape[0]
        res = layer.residual["synapse"] if layer.residual is not None else None
        if res is not None and res.get("binary") and not torch.equal(res["sign"], syn["sign"]):
            n += _rows(res).shape[1]
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
        r, n = _rows(syn).shape
        out[key] = {"dot_products": positions * r, "bit_macs": positions * r * n}
    out["total"] = {k: sum(v[k] for v in out.values()) for k in ("dot_products", "bit_macs")}
    return out


def verify_network(network_or_plan: Any, layer_spikes: dict[str, Tensor]) -> dict[str, float]:
    """Run every binary synapse of a network on XNOR-BSNN's array model (:func:`layer_mac`,
    Eq. 8-11: every input bit, spiking or silent, is XNORed) and on float arithmetic.

    Args:
        layer_spikes: Layer -> recorded binary spikes ``[N, *shape]`` (e.g. all steps of a
            batch flattened into ``N``).

    Returns:
        Layer -> max ``|XNOR MAC - float MAC|`` (0.0 when the array computes it exactly).
    """
    plan = _plan(network_or_plan)
    errors = {}
    for layer in plan.layers:
        syn = layer.synapse
        if not syn.get("binary"):
            continue
        src = layer_spikes[layer.source].float()
        res = factor = None
        x = src
        if layer.residual is not None:
            res = layer_spikes[layer.residual["source"]].float()
            factor = float(layer.residual["synapse"]["scale"].reshape(-1)[0])
            x = src + factor * res
        w = syn["sign"].float()
        ref = (F.conv2d(x, w, stride=syn["stride"], padding=syn["padding"])
               if syn["type"] == "conv" else x.flatten(1) @ w.T)
        got = layer_mac(syn, src, residual=res, factor=factor or 1.0)
        errors[layer.name] = float((got.float() - ref).abs().max())
    return errors
