r"""The compact tensor format of the model zoo (:mod:`bsnn_bindsnet.zoo.registry`): binary weights as
packed sign bits plus :math:`\alpha`, other floating-point tensors in float16, the rest as
they are; and the ``.npz`` bytes that hold them (no pickle).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bsnn_bindsnet.ann.binarize import binary_layers
from bsnn_bindsnet.snn.functional import scale_per_channel
from bsnn_bindsnet.zoo.entries import ZooError

log = logging.getLogger(__name__)

__all__ = ["ZooError", "npz_bytes", "pack_state", "read_npz", "unpack_state"]

_ATTEMPTS = 9       # proxy searches of _proxy_weight (see there)


def _binary_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {f"{name}.weight": m for name, m in binary_layers(model)}


def pack_state(model: nn.Module) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
    """The compact form of ``model.state_dict()``: arrays to save and their layout.

    Returns:
        ``(arrays, layout)``: ``layout[key]`` is ``{"kind": "binary" | "float16" | "raw",
        "shape": [...]}`` (binary: ``per_channel`` too) for every state-dict key; ``arrays``
        holds ``key + ".bits"`` and ``key + ".alpha"`` for binary weights, else ``key``.
    """
    binary = _binary_modules(model)
    arrays: dict[str, np.ndarray] = {}
    layout: dict[str, dict[str, Any]] = {}
    for key, t in model.state_dict().items():
        t = t.detach().cpu()
        if key in binary:
            sign, alpha = binary[key].export_weight()
            arrays[f"{key}.bits"] = np.packbits((sign > 0).reshape(-1).numpy())
            arrays[f"{key}.alpha"] = alpha.to(torch.float32).numpy()
            layout[key] = {"kind": "binary", "shape": list(t.shape),
                           "per_channel": bool(binary[key].per_channel)}
        elif t.is_floating_point():
            half = t.to(torch.float16)
            if not torch.isfinite(half).all():
                raise ValueError(f"{key}: values beyond the float16 range (|x| > 65504) or "
                                 "NaN/inf; the zoo stores such tensors in float16")
            arrays[key] = half.numpy()
            layout[key] = {"kind": "float16", "shape": list(t.shape)}
        else:
            arrays[key] = t.numpy()
            layout[key] = {"kind": "raw", "shape": list(t.shape)}
    return arrays, layout


def _proxy_weight(sign: Tensor, alpha: Tensor, per_channel: bool) -> Tensor:
    r"""Proxies ``W`` with ``sign(W) == sign`` whose float32 ``mean|W|`` (per channel) is
    ``alpha`` exactly, so that the loaded layer computes the trained :math:`\alpha \cdot
    \operatorname{sign}` bit for bit.

    Every entry is :math:`\pm\alpha` except the first of each channel, whose magnitude is
    found by bisection: the float32 mean of n equal values can miss ``alpha`` by an ulp, and
    the mean is monotone in any one entry. Where no such magnitude exists, the other entries
    are moved 1, 2, ... ulps off ``alpha`` and the bisection is repeated.
    """
    want = alpha.reshape(-1).to(torch.float32)
    rows = sign.reshape(len(want), -1)  # one row per alpha (a single row for per-layer alpha)
    first = rows[:, 0].clone()
    w = (rows * want[:, None]).contiguous()

    def mean_abs(v: Tensor) -> Tensor:  # alpha of each row of v, as the layer computes it
        return scale_per_channel(v.reshape(-1, *sign.shape[1:]) if per_channel
                                 else v.reshape(sign.shape), per_channel).reshape(-1)

    missed = mean_abs(w) != want
    for attempt in range(_ATTEMPTS):
        if not missed.any():
            break
        idx = missed.nonzero().reshape(-1)
        target, bits = want[idx], want[idx].view(torch.int32)
        k = (attempt + 1) // 2  # the other entries 0, 1, -1, 2, ... ulps off alpha
        sub = rows[idx] * (bits + (k if attempt % 2 else -k)).view(torch.float32)[:, None]
        lo, hi = (bits - 2 ** 20).clamp(min=0), bits + 2 ** 20  # floats >= 0 sort as bits
        while bool((hi - lo > 1).any()):
            mid = (lo + hi) // 2
            sub[:, 0] = first[idx] * mid.view(torch.float32)
            above = mean_abs(sub) >= target
            hi, lo = torch.where(above, mid, hi), torch.where(above, lo, mid)
        sub[:, 0] = first[idx] * hi.view(torch.float32)
        w[idx] = sub
        missed = mean_abs(w) != want  # checked on the whole layer, as it will run
    if missed.any():
        w[missed] = rows[missed] * want[missed, None]
        log.warning("%d channel(s): no float32 proxy gives alpha exactly; off by an ulp",
                    int(missed.sum()))
    return w.reshape(sign.shape)


def unpack_state(arrays: Mapping[str, np.ndarray],
                 layout: Mapping[str, Mapping[str, Any]]) -> dict[str, Tensor]:
    """Inverse of :func:`pack_state`: a float32 state dict (binary weights as
    :math:`\\alpha \\cdot \\operatorname{sign}`, float16 tensors widened to float32)."""
    state = {}
    for key, spec in layout.items():
        shape = tuple(spec["shape"])
        if spec["kind"] == "binary":
            n = int(np.prod(shape))
            bits = np.unpackbits(arrays[f"{key}.bits"], count=n)
            sign = torch.from_numpy(bits.astype(np.float32) * 2 - 1).reshape(shape)
            alpha = torch.from_numpy(np.array(arrays[f"{key}.alpha"], dtype=np.float32))
            state[key] = _proxy_weight(sign, alpha, spec["per_channel"])
        elif spec["kind"] == "float16":
            state[key] = torch.from_numpy(np.array(arrays[key])).to(torch.float32).reshape(shape)
        elif spec["kind"] == "raw":
            state[key] = torch.from_numpy(np.array(arrays[key])).reshape(shape)
        else:
            raise ZooError(f"{key}: unknown tensor kind {spec['kind']!r} in the zoo layout")
    return state


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def read_npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


