r"""The base of the typed synapses (:mod:`bsnn_bindsnet.snn.synapses`): the :class:`Synapse`
interface every type answers, the type registry, and the NIR helpers the types share.
Bottom floor: imports only torch (``nir`` lazily, where a synapse exports itself).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.utils import _pair

__all__ = ["SYNAPSES", "Synapse", "nir_avg_pool", "register_synapse", "synapse_from_dict"]

SYNAPSES: dict[str, type[Synapse]] = {}
"""Synapse ``type`` name -> class; :func:`synapse_from_dict` looks types up here."""


def register_synapse(cls: type[Synapse]) -> type[Synapse]:
    """Class decorator: make ``cls`` loadable from its ``to_dict()`` (keyed by ``cls.type``)."""
    if not getattr(cls, "type", None):
        raise ValueError(f"{cls.__name__} needs a class attribute `type` (its name in files)")
    if cls.type in SYNAPSES and SYNAPSES[cls.type] is not cls:
        raise ValueError(f"synapse type {cls.type!r} is already registered by "
                         f"{SYNAPSES[cls.type].__name__}")
    SYNAPSES[cls.type] = cls
    return cls


def synapse_from_dict(d: Mapping[str, Any]) -> Synapse:
    """The synapse saved as ``d`` (its ``"type"`` picks the class in :data:`SYNAPSES`)."""
    kind = d.get("type")
    if kind not in SYNAPSES:
        raise ValueError(f"unknown synapse type {kind!r}; expected one of {sorted(SYNAPSES)}")
    return SYNAPSES[kind].from_dict(d)


class Synapse:
    """Base of the synapse dataclasses. Subclasses set ``type`` and implement
    :meth:`connection` and :meth:`out_shape`; weightless synapses keep the zero MAC count."""

    type: ClassVar[str] = ""
    binary: ClassVar[bool] = False

    def connection(self, source: Any, target: Any) -> Any:
        """The BindsNET connection from ``source`` to ``target`` nodes."""
        raise NotImplementedError(f"{type(self).__name__}.connection")

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The neuron shape this synapse maps ``in_shape`` to (computed on meta tensors)."""
        raise NotImplementedError(f"{type(self).__name__}.out_shape")

    def macs(self, in_shape: tuple[int, ...]) -> int:
        """MACs of one ANN forward pass through this synapse (0: not counted, e.g. pooling)."""
        return 0

    def events(self, counts: Tensor) -> float:
        """Accumulates when the source neurons fire ``counts`` ``[*in_shape]`` spikes."""
        return 0.0

    def with_bias(self, bias: Tensor | None) -> Synapse:
        """A copy with another bias (synapses without one are returned unchanged)."""
        return self

    def to_nir(self, src_shape: tuple[int, ...], key: str) -> list[tuple[str, Any]]:
        """Its NIR nodes ``(key, node)`` in signal order, from a source of ``src_shape``;
        ``key`` names the main node (others add a suffix).

        Raises:
            NotImplementedError: the type has no NIR form (the message names it).
        """
        raise NotImplementedError(f"synapse type {self.type!r} has no NIR form (override "
                                  "Synapse.to_nir)")

    def imc_entry(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """Its entry in :func:`~bsnn_bindsnet.imc.export_imc`'s manifest (geometry, JSON-able)
        and its arrays (name suffix -> tensor, e.g. ``"bits"``).

        Raises:
            NotImplementedError: the type has no IMC form (the message names it).
        """
        raise NotImplementedError(f"synapse type {self.type!r} has no IMC form (override "
                                  "Synapse.imc_entry)")

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a file: ``{"type": ..., <fields>}``."""
        return {"type": self.type, **{f.name: getattr(self, f.name)
                                      for f in dataclasses.fields(self)}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Synapse:
        """Inverse of :meth:`to_dict` (keys that are not fields are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _nir() -> Any:
    try:
        import nir  # optional: pip install 'bsnn-bindsnet[nir]'
    except ImportError:
        raise ImportError("NIR support needs the optional packages nir and h5py: pip install "
                          "'bsnn-bindsnet[nir]' (or pip install nir)") from None
    return nir


def _f32(t: Any) -> Any:
    return torch.as_tensor(t).detach().cpu().to(torch.float32).numpy().copy()


def nir_avg_pool(args: Mapping[str, Any], shape: tuple[int, ...]) -> Any:
    """A NIR ``AvgPool2d`` for torch pooling ``args`` applied to ``shape`` ``(C, H, W)``."""
    import numpy as np

    nir = _nir()
    k = _pair(args["kernel_size"])
    s = _pair(args["stride"] if args.get("stride") is not None else args["kernel_size"])
    p = _pair(args.get("padding", 0))
    if args.get("ceil_mode"):
        x = torch.empty(1, *shape, device="meta")
        sizes = {tuple(F.avg_pool2d(x, k, s, p, ceil_mode=c).shape) for c in (False, True)}
        if len(sizes) > 1:
            raise NotImplementedError("average pooling with ceil_mode=True changes the output "
                                      "size here, and NIR's AvgPool2d has no ceil_mode")
    return nir.AvgPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p))
