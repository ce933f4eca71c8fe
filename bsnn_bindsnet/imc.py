r"""The XNOR in-memory array model of a B-SNN's binary synapses (XNOR-BSNN, Eq. 8-11).

Weights are stored unipolar (:math:`-1 \to 0`, :math:`+1 \to 1`), one crossbar row per output
channel (conv: over the :math:`C_{in} k_H k_W` patch, in ``torch.nn.functional.unfold``
order). For binary spikes :math:`o \in \{0, 1\}`:

.. math:: \sum_j w_{ij} o_j = \sum_j \mathrm{XNOR}(w^u_{ij}, o_j) - M1_i,

:math:`M1_i` = the number of :math:`-1` weights of row :math:`i` (a spike on a :math:`+1` weight
adds a match, a silent input on a :math:`-1` weight adds one that :math:`M1` takes back).
:func:`xnor_mac` computes it on bit-packed bytes with integer XNOR and popcount only. A residual
input is a second MAC on the same rows (:func:`layer_mac` with ``residual``).

Cost model (:func:`row_activations`): a BNN of the same shape drives two rows per :math:`\pm1`
input and every row is active in its single pass; the B-SNN drives one row per input and only
when that input spikes, summed over the :math:`T` steps.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from bsnn_bindsnet.checkpoint import atomic_write, atomic_write_json

IMC_FORMAT = "bsnn-bindsnet/imc-v1"
_POPCOUNT = torch.tensor([bin(i).count("1") for i in range(256)], dtype=torch.int32)


def to_unipolar(sign: Tensor) -> Tensor:
    """``±1`` weights -> ``uint8`` bits (``-1 -> 0``, ``+1 -> 1``); anything else is an error."""
    if not torch.isin(sign, torch.tensor([-1, 1], dtype=sign.dtype)).all():
        raise ValueError("binary weights must be exactly -1 or +1")
    return (sign > 0).to(torch.uint8)


def pack_bits(bits: Tensor) -> Tensor:
    """``[..., n]`` of 0/1 -> ``[..., ceil(n/8)]`` ``uint8``, first bit in the high bit of the
    first byte (``numpy.packbits`` order), zero-padded."""
    n = bits.shape[-1]
    pad = (-n) % 8
    b = F.pad(bits.to(torch.uint8), (0, pad)).reshape(*bits.shape[:-1], -1, 8)
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)
    return (b * weights).sum(-1, dtype=torch.int32).to(torch.uint8)


def xnor_mac(w_packed: Tensor, m1: Tensor, o_packed: Tensor, n: int, *,
             chunk: int = 4096) -> Tensor:
    r""":math:`\mathrm{popcount}(\mathrm{XNOR}(w, o)) - M1` for every input row and weight row.

    Args:
        w_packed: ``[R, nbytes]`` packed unipolar weights.
        m1: ``[R]`` number of ``-1`` weights per row.
        o_packed: ``[M, nbytes]`` packed binary inputs.
        n: Bits per row (the padding bits of the last byte are not counted).

    Returns:
        ``[M, R]`` ``int32``: :math:`\sum_j w_{ij} o_j` exactly.
    """
    pad = w_packed.shape[1] * 8 - n
    out = []
    for o in o_packed.split(chunk):
        same = torch.bitwise_not(torch.bitwise_xor(o[:, None, :], w_packed[None, :, :]))
        out.append(_POPCOUNT[same.long()].sum(-1, dtype=torch.int32) - pad - m1.int())
    return torch.cat(out) if out else torch.zeros(0, w_packed.shape[0], dtype=torch.int32)


def _rows(syn: dict[str, Any]) -> Tensor:
    return syn["sign"].reshape(syn["sign"].shape[0], -1)


def _patches(syn: dict[str, Any], spikes: Tensor) -> tuple[Tensor, Any]:
    """``[M, n]`` input rows the crossbar sees, and how to fold ``[M, R]`` back."""
    b = spikes.shape[0]
    if syn["type"] == "linear":
        return spikes.reshape(b, -1), lambda y: y
    k = syn["sign"].shape[2:]
    cols = F.unfold(spikes.float(), k, padding=syn["padding"], stride=syn["stride"])
    h = (spikes.shape[2] + 2 * syn["padding"][0] - k[0]) // syn["stride"][0] + 1
    w = (spikes.shape[3] + 2 * syn["padding"][1] - k[1]) // syn["stride"][1] + 1
    rows = cols.transpose(1, 2).reshape(-1, cols.shape[1])
    return rows, lambda y: y.reshape(b, h, w, -1).permute(0, 3, 1, 2)


def layer_mac(syn: dict[str, Any], spikes: Tensor, *, residual: Tensor | None = None,
              factor: float = 1.0) -> Tensor:
    r"""The binary synapse's integer MAC on binary ``spikes`` (``[B, *source_shape]``) by
    XNOR-popcount, before scale, bias and pooling: ``[B, C_out, oH, oW]`` or ``[B, out]``.
    With ``residual`` (the spikes of layer l-2): the MAC of ``spikes + factor * residual``
    as two XNOR MACs on the same rows."""
    if not syn.get("binary"):
        raise ValueError("layer_mac needs a binary synapse (the first and last layers are "
                         "full precision and stay digital)")
    rows = _rows(syn)
    w_packed, m1, n = pack_bits(to_unipolar(rows)), (rows < 0).sum(1), rows.shape[1]

    def mac(s: Tensor) -> Tensor:
        if not ((s == 0) | (s == 1)).all():
            raise ValueError("the XNOR array takes binary spikes (0/1)")
        x, fold = _patches(syn, s)
        return fold(xnor_mac(w_packed, m1, pack_bits(x.to(torch.uint8)), n))

    out = mac(spikes)
    return out if residual is None else out + factor * mac(residual)


def _plan(network_or_plan: Any) -> Any:
    return getattr(network_or_plan, "bsnn_plan", network_or_plan)


def export_imc(network_or_plan: Any, path: str | os.PathLike) -> tuple[Path, Path]:
    """Write the crossbar contents of every layer to ``PATH.npz`` + ``PATH.json`` (atomic).

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


def row_activations(network_or_plan: Any, neuron_spikes: dict[str, Tensor],
                    n_samples: int) -> dict[str, dict[str, float]]:
    """Crossbar row activations per inference of every binary synapse, B-SNN vs a BNN.

    Args:
        neuron_spikes: Layer -> per-neuron spike totals over all samples and steps
            (``simulate(..., per_neuron=True).neuron_spikes``).
        n_samples: Samples those totals are over.

    Returns:
        Layer (``name`` or ``name<-source`` for a residual synapse) -> ``{"bnn", "bsnn",
        "ratio"}``, plus ``"total"``. BNN: 2 rows per input, all active, once per output
        position; B-SNN: one row per input spike per output position it feeds.
    """
    plan = _plan(network_or_plan)
    out: dict[str, dict[str, float]] = {}
    for layer in plan.layers:
        synapses = [(layer.name, layer.source, layer.synapse)]
        if layer.residual is not None:
            synapses.append((f"{layer.name}<-{layer.residual['source']}",
                             layer.residual["source"], layer.residual["synapse"]))
        for key, source, syn in synapses:
            if not syn.get("binary"):
                continue
            counts = neuron_spikes[source].float().unsqueeze(0)
            rows, _ = _patches(syn, counts)  # [positions, n] spike totals per patch entry
            bnn = 2.0 * rows.numel()
            bsnn = float(rows.sum()) / n_samples
            out[key] = {"bnn": bnn, "bsnn": bsnn, "ratio": bsnn / bnn}
    bnn = sum(v["bnn"] for v in out.values())
    bsnn = sum(v["bsnn"] for v in out.values())
    out["total"] = {"bnn": bnn, "bsnn": bsnn, "ratio": bsnn / bnn if bnn else float("nan")}
    return out


def verify_network(network_or_plan: Any, layer_spikes: dict[str, Tensor]) -> dict[str, float]:
    """Run every binary synapse of a network on the XNOR array model and on float arithmetic.

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
