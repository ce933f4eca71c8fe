r"""Typed synapses of a plan: what feeds each spiking layer, and a registry of their types.

Each synapse knows how to build its BindsNET connection (:meth:`Synapse.connection`, importing
the connections lazily), which shape it produces, how many MACs an ANN spends on it (Eq. 3/4 of
Lu & Sengupta 2020) and how many accumulates a spike train costs, and how to write itself to a
file (:meth:`Synapse.to_dict`: a dict with a ``"type"`` key, the layout of the v1 plan files).

A new synapse type plugs in without editing the package: subclass :class:`Synapse` (a frozen
dataclass with a ``type`` name) and register it with :func:`register_synapse`;
:func:`synapse_from_dict` dispatches on ``"type"``. Bottom floor: imports only torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SYNAPSES", "AvgPoolSynapse", "ConvSynapse", "LinearSynapse", "MaxPoolSynapse",
           "Synapse", "WeightSynapse", "register_synapse", "synapse_from_dict"]

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

    def to_dict(self) -> dict[str, Any]:
        """Plain data for a file: ``{"type": ..., <fields>}``."""
        return {"type": self.type, **{f.name: getattr(self, f.name)
                                      for f in dataclasses.fields(self)}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Synapse:
        """Inverse of :meth:`to_dict` (keys that are not fields are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    # read-only dict view, as plans were dicts before
    def __getitem__(self, key: str) -> Any:
        d = self.to_dict()
        if key not in d:
            raise KeyError(key)
        return d[key]

    def get(self, key: str, default: Any = None) -> Any:
        """``syn[key]``, or ``default`` for a key the synapse does not have."""
        return self.to_dict().get(key, default)

    def keys(self) -> Any:
        """The keys of :meth:`to_dict`."""
        return self.to_dict().keys()

    def __contains__(self, key: str) -> bool:
        return key in self.to_dict()


@dataclass(frozen=True, eq=False)
class WeightSynapse(Synapse):
    r"""A synapse with weights: binary (:math:`\alpha \operatorname{sign}(W)`: ``sign`` int8
    and ``scale`` ``[out]``) or full precision (``weight``), and an optional ``bias``
    ``[out]`` (a constant current every step)."""

    weight: Tensor | None = None
    sign: Tensor | None = None
    scale: Tensor | None = None
    bias: Tensor | None = None

    @property
    def binary(self) -> bool:  # type: ignore[override]
        return self.sign is not None

    @property
    def matrix(self) -> Tensor:
        """The stored weight (``sign`` of a binary synapse), nn layout ``[out, in, ...]``."""
        return self.sign if self.binary else self.weight

    @property
    def n_out(self) -> int:
        """Output channels (conv) or neurons (linear)."""
        return int(self.matrix.shape[0])

    def rows(self) -> Tensor:
        """The weight as crossbar rows ``[out, fan-in]`` (the IMC layout of a binary one)."""
        return self.matrix.reshape(self.n_out, -1)

    def effective_weight(self) -> Tensor:
        r""":math:`\alpha \operatorname{sign}(W)` in float32, or the full-precision weight."""
        if not self.binary:
            return torch.as_tensor(self.weight)
        sign = self.sign.to(torch.float32)
        scale = torch.as_tensor(self.scale, dtype=torch.float32).reshape(-1)
        scale = scale.expand(sign.shape[0]) if scale.numel() == 1 else scale
        return scale.view(-1, *([1] * (sign.dim() - 1))) * sign

    def with_bias(self, bias: Tensor | None) -> WeightSynapse:
        return dataclasses.replace(self, bias=bias)

    def _weights(self) -> dict[str, Any]:
        if self.binary:
            return {"weight": self.sign.float(), "scale": self.scale}
        return {"weight": self.weight}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "binary": self.binary, "pool": None}
        d.update({"sign": self.sign, "scale": self.scale} if self.binary
                 else {"weight": self.weight})
        d["bias"] = self.bias
        return d


@register_synapse
@dataclass(frozen=True, eq=False)
class LinearSynapse(WeightSynapse):
    """Fully connected synapse (the source is flattened); weight ``[out, in]``."""

    type: ClassVar[str] = "linear"

    def connection(self, source: Any, target: Any) -> Any:
        from bsnn_bindsnet.connections import BinaryConnection, FullPrecisionConnection

        cls = BinaryConnection if self.binary else FullPrecisionConnection
        return cls(source, target, bias=self.bias, **self._weights())

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        n_in = int(torch.Size(in_shape).numel())
        if self.matrix.dim() != 2 or self.matrix.shape[1] != n_in:
            raise ValueError(f"weight {tuple(self.matrix.shape)} for {n_in} inputs")
        return (self.n_out,)

    def macs(self, in_shape: tuple[int, ...]) -> int:
        o_s, i_s = self.matrix.shape
        return int(i_s * o_s)

    def events(self, counts: Tensor) -> float:
        return float(counts.double().sum()) * self.n_out


@register_synapse
@dataclass(frozen=True, eq=False)
class ConvSynapse(WeightSynapse):
    """2-D convolution (weight ``[C_out, C_in, kh, kw]``, zero padding), optionally followed by
    an average pool of the current (``pool``: ``kernel_size``, ``stride``, ``padding``,
    ``ceil_mode``), which is linear and so exact before the neurons."""

    stride: Any = 1
    padding: Any = 0
    pool: dict[str, Any] | None = None

    type: ClassVar[str] = "conv"

    def _conv(self, x: Tensor, weight: Tensor) -> Tensor:
        return F.conv2d(x, weight, stride=self.stride, padding=self.padding)

    def connection(self, source: Any, target: Any) -> Any:
        from bsnn_bindsnet.connections import (BinaryConv2dConnection,
                                               FullPrecisionConv2dConnection)

        cls = BinaryConv2dConnection if self.binary else FullPrecisionConv2dConnection
        pool = None if self.pool is None else torch.nn.AvgPool2d(**self.pool)
        return cls(source, target, bias=self.bias, stride=self.stride, padding=self.padding,
                   pool=pool, **self._weights())

    def conv_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape after the convolution, before the folded pool."""
        x = torch.empty(1, *in_shape, device="meta")
        return tuple(self._conv(x, torch.empty(self.matrix.shape, device="meta")).shape[1:])

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = self.conv_shape(in_shape)
        if self.pool is None:
            return shape
        p = self.pool
        x = F.avg_pool2d(torch.empty(1, *shape, device="meta"), p["kernel_size"],
                         p["stride"], p["padding"], p.get("ceil_mode", False))
        return tuple(x.shape[1:])

    def macs(self, in_shape: tuple[int, ...]) -> int:
        """Eq. 3, :math:`n_{IP} k_H k_W n_{OP} o_H o_W`, over the conv output (before pooling)."""
        _, oh, ow = self.conv_shape(in_shape)
        return int(self.matrix[0].numel() * self.n_out * oh * ow)

    def events(self, counts: Tensor) -> float:
        # output neuron (o, y, x) receives every spike of its patch once: summing the all-ones
        # convolution over the outputs counts each (spike, target) pair exactly once
        ones = torch.ones(self.matrix.shape, dtype=torch.float64)
        return float(self._conv(counts.double().unsqueeze(0), ones).sum())

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "pool": self.pool, "stride": self.stride,
                "padding": self.padding}


@dataclass(frozen=True, eq=False)
class _PoolSynapse(Synapse):
    kernel_size: Any = 2
    stride: Any = None
    padding: Any = 0
    ceil_mode: bool = False

    def _connection(self, cls: type, source: Any, target: Any) -> Any:
        return cls(source, target, kernel_size=self.kernel_size, stride=self.stride,
                   padding=self.padding, ceil_mode=self.ceil_mode)

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        stride = self.kernel_size if self.stride is None else self.stride
        x = F.avg_pool2d(torch.empty(1, *in_shape, device="meta"), self.kernel_size, stride,
                         self.padding, self.ceil_mode)
        return tuple(x.shape[1:])


@register_synapse
@dataclass(frozen=True, eq=False)
class AvgPoolSynapse(_PoolSynapse):
    """Average pooling of spikes (the fraction of the window that fired); no MACs."""

    type: ClassVar[str] = "avgpool"

    def connection(self, source: Any, target: Any) -> Any:
        from bsnn_bindsnet.connections import AvgPool2dConnection

        return self._connection(AvgPool2dConnection, source, target)


@register_synapse
@dataclass(frozen=True, eq=False)
class MaxPoolSynapse(_PoolSynapse):
    """Max pooling of spikes, a spike OR over each window; no MACs."""

    type: ClassVar[str] = "maxpool"

    def connection(self, source: Any, target: Any) -> Any:
        from bsnn_bindsnet.connections import MaxPool2dConnection

        return self._connection(MaxPool2dConnection, source, target)
