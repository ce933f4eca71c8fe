r"""Crossbar contents to files (:func:`export_imc`) and the bit-exact check of a simulation
on XNOR-BSNN's array (:func:`verify_network`); see :mod:`bsnn_bindsnet.imc`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bsnn_bindsnet.checkpoint import atomic_write, atomic_write_json
from bsnn_bindsnet.imc.array import _plan, layer_mac
from bsnn_bindsnet.snn.neurons import get_neuron, unsupported

IMC_FORMAT = "bsnn-bindsnet/imc-v1"


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
    rule = get_neuron(plan.reset).imc_rule
    if rule is None:
        raise NotImplementedError(unsupported(
            plan.reset, "IMC export", "it states no imc_rule (how the array's periphery "
            "resets the potential)"))
    base = Path(path)
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for layer in plan.layers:
        entry, own = _imc_entry(layer.synapse, f"layer {layer.name!r}")
        entry = {"name": layer.name, **entry, "source": layer.source}
        arrays.update({f"{layer.name}/{k}": v.numpy() for k, v in own.items()})
        if own:  # a synapse with weights feeds neurons
            entry.update(neuron=layer.kind, output_shape=list(layer.shape),
                         pool_after_mac=getattr(layer.synapse, "pool", None))
        if layer.thresh is not None:
            arrays[f"{layer.name}/thresh"] = torch.as_tensor(layer.thresh).float().numpy()
        if layer.residual is not None:
            res, syn = layer.residual.synapse, layer.synapse
            _imc_entry(res, f"layer {layer.name!r} (residual)")
            entry["residual"] = {"source": layer.residual.source,
                                 "factor": float(res.scale.reshape(-1)[0])
                                 if res.binary else None,
                                 "shares_rows": bool(res.binary and torch.equal(
                                     res.sign, syn.sign))}
        layers.append(entry)
    npz = atomic_write(base.with_suffix(".npz"), lambda f: np.savez(f, **arrays))
    manifest = {"format": IMC_FORMAT, "input_shape": list(plan.input_shape),
                "reset": plan.reset, "v_init": plan.v_init,
                "rule": "dot = popcount(XNOR(bits, spikes)) - m1; current = scale * dot + bias "
                        "(+ factor * dot of the residual source on the same rows), then the "
                        "optional average pool; spike when the integrated current >= thresh, "
                        f"then {rule} (reset {plan.reset!r})",
                "row_order": "output channel; columns in torch.nn.functional.unfold order "
                             "(c_in, kh, kw), conv inputs zero-padded",
                "layers": layers, "info": {k: v for k, v in plan.info.to_dict().items()
                                           if isinstance(v, (str, int, float, list))}}
    return npz, atomic_write_json(manifest, base.with_suffix(".json"))


def _imc_entry(syn: Any, where: str) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The synapse's own :meth:`~bsnn_bindsnet.snn.synapses.Synapse.imc_entry`, or a refusal
    naming the layer and the synapse type."""
    try:
        return syn.imc_entry()
    except NotImplementedError as err:
        raise NotImplementedError(f"{where}: {err}") from None


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
        if not syn.binary:
            continue
        src = layer_spikes[layer.source].float()
        res = factor = None
        x = src
        if layer.residual is not None:
            res = layer_spikes[layer.residual.source].float()
            factor = float(layer.residual.synapse.scale.reshape(-1)[0])
            x = src + factor * res
        ref = syn.current(x, syn.sign.float())
        got = layer_mac(syn, src, residual=res, factor=factor or 1.0)
        errors[layer.name] = float((got.float() - ref).abs().max())
    return errors
