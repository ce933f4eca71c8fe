r"""XNOR-BSNN's array (Eq. 8-11): unipolar weights, bit packing, the XNOR-popcount MAC of a
binary synapse, and the plan walking shared by :mod:`bsnn_bindsnet.imc`'s cost and export."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from bsnn_bindsnet.snn.plan import INPUT, Synapse, WeightSynapse, synapse_from_dict


def as_synapse(syn: Synapse | Mapping[str, Any]) -> Synapse:
    """A typed synapse (a v1 dict with ``"type"`` is converted)."""
    return synapse_from_dict(syn) if isinstance(syn, Mapping) else syn


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


def _patches(syn: WeightSynapse, spikes: Tensor) -> tuple[Tensor, Any]:
    """``[M, n]`` input rows the crossbar sees, and how to fold ``[M, R]`` back."""
    b = spikes.shape[0]
    if syn.patch_geometry() is None:
        return spikes.reshape(b, -1), lambda y: y
    (kh, kw), (sh, sw), (ph, pw) = syn.patch_geometry()
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


def _packed_patches(syn: WeightSynapse, spikes: Tensor) -> tuple[Tensor, Any]:
    """:func:`_patches` on packed bits, in (kh, kw, c) order to match
    :func:`_pack_channels_last`: the channels of each pixel are packed once, then the
    patches gather bytes (8x less to copy than gathering bits). Zero padding is all-zero
    bytes, i.e. silent inputs; the padding bits of a byte are 0 on both sides."""
    (kh, kw), (sh, sw), (ph, pw) = syn.patch_geometry()
    b = spikes.shape[0]
    x = pack_bits(spikes.to(torch.uint8).permute(0, 2, 3, 1))  # [B, H, W, ceil(C/8)]
    x = F.pad(x, (0, 0, pw, pw, ph, ph))
    win = x.unfold(1, kh, sh).unfold(2, kw, sw)  # view [B, oH, oW, Cb, kh, kw]
    h, w = win.shape[1], win.shape[2]
    rows = win.permute(0, 1, 2, 4, 5, 3).reshape(b * h * w, -1)
    return rows, lambda y: y.reshape(b, h, w, -1).permute(0, 3, 1, 2)


def layer_mac(syn: WeightSynapse, spikes: Tensor, *, residual: Tensor | None = None,
              factor: float = 1.0) -> Tensor:
    r"""The binary synapse's integer MAC on binary ``spikes`` (``[B, *source_shape]``) by
    XNOR-popcount on XNOR-BSNN's array (Eq. 8-11), before scale, bias and pooling:
    ``[B, C_out, oH, oW]`` or ``[B, out]``.
    With ``residual`` (the spikes of layer l-2): the MAC of ``spikes + factor * residual``
    as two XNOR MACs on the same rows."""
    syn = as_synapse(syn)
    if not syn.binary:
        raise ValueError("layer_mac needs a binary synapse (the first and last layers are "
                         "full precision and stay digital)")
    rows = syn.rows()
    m1, n = (rows < 0).sum(1), rows.shape[1]
    conv = syn.patch_geometry() is not None
    w_packed = _pack_channels_last(to_unipolar(syn.sign)) if conv else (
        pack_bits(to_unipolar(rows)))

    def mac(s: Tensor) -> Tensor:
        if not ((s == 0) | (s == 1)).all():
            raise ValueError("the XNOR array takes binary spikes (0/1)")
        if not conv:
            return xnor_mac(w_packed, m1, pack_bits(s.reshape(s.shape[0], -1)), n)
        x, fold = _packed_patches(syn, s)
        return fold(xnor_mac(w_packed, m1, x, n))

    out = mac(spikes)
    return out if residual is None else out + factor * mac(residual)


def _plan(network_or_plan: Any) -> Any:
    return getattr(network_or_plan, "bsnn_plan", network_or_plan)


def _source_shape(plan: Any, source: str) -> tuple[int, ...]:
    if source == INPUT:
        return tuple(plan.input_shape)
    for layer in plan.layers:
        if layer.name == source:
            return tuple(layer.shape)
    raise ValueError(f"no layer named {source!r} in the plan")


def _binary_synapses(plan: Any) -> list[tuple[str, Any, str, WeightSynapse]]:
    """``(key, layer, source, synapse)`` of every binary synapse in order; a residual synapse
    is keyed ``"layer<-source"``."""
    out = []
    for layer, source, syn in plan.synapses():
        if syn.binary:
            key = layer.name if syn is layer.synapse else f"{layer.name}<-{source}"
            out.append((key, layer, source, syn))
    return out
