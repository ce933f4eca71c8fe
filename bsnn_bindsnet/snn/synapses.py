r"""Typed synapses of a plan: what feeds each spiking layer, and a registry of their types.

Each synapse answers for itself: how to build its BindsNET connection (:meth:`Synapse.connection`,
importing the connections lazily), which shape it produces, how many MACs an ANN spends on it
(Eq. 3/4 of Lu & Sengupta 2020) and how many accumulates a spike train costs, its NIR nodes
(:meth:`Synapse.to_nir`, importing the optional ``nir`` lazily), its entry in an IMC export
(:meth:`Synapse.imc_entry`), and how to write itself to a file (:meth:`Synapse.to_dict`: a
dict with a ``"type"`` key, the layout of the v1 plan files). An edge that a synapse type
cannot cross refuses it by its type name.

A new synapse type plugs in without editing the package: subclass :class:`Synapse` (a frozen
dataclass with a ``type`` name) and register it with :func:`register_synapse`;
:func:`synapse_from_dict` dispatches on ``"type"``. Bottom floor: imports only torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.utils import _pair

from bsnn_bindsnet.snn.synapse_base import (SYNAPSES, Synapse, _f32, _nir, nir_avg_pool,
                                            register_synapse, synapse_from_dict)

__all__ = ["SYNAPSES", "AvgPoolSynapse", "ConvSynapse", "LinearSynapse", "MaxPoolSynapse",
           "Synapse", "WeightSynapse", "register_synapse", "synapse_from_dict"]


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

    def current(self, x: Tensor, weight: Tensor) -> Tensor:
        """``weight`` applied to ``x`` ``[B, *in_shape]`` as this synapse applies its own (no
        bias, no pool): the float reference of the IMC array's MAC."""
        raise NotImplementedError(f"{type(self).__name__}.current")

    def patch_geometry(self) -> tuple[tuple[int, int], ...] | None:
        """``(kernel, stride, padding)`` pairs of a convolution's input patches, or ``None``
        when every output sees the whole (flattened) input."""
        return None

    def imc_entry(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """Binary: packed unipolar rows (``bits``), ``m1`` (the -1s per row) and ``bias``;
        full precision: ``weight`` (and ``bias``); see :func:`~bsnn_bindsnet.imc.export_imc`."""
        import numpy as np

        entry: dict[str, Any] = {"kind": self.type, "binary": bool(self.binary)}
        if not self.binary:
            arrays = {"weight": self.weight.float()}
            return entry, arrays if self.bias is None else {**arrays, "bias": self.bias.float()}
        rows = self.rows()
        entry.update(rows=rows.shape[0], cols=rows.shape[1], weight_shape=list(self.sign.shape),
                     scale=self.scale.reshape(-1).tolist())
        bias = self.bias if self.bias is not None else torch.zeros(rows.shape[0])
        if not ((rows == 1) | (rows == -1)).all():
            raise ValueError("binary weights must be exactly -1 or +1")
        bits = np.packbits((rows > 0).to(torch.uint8).cpu().numpy(), axis=-1)  # -1 -> 0, +1 -> 1
        return entry, {"bits": torch.from_numpy(bits), "m1": (rows < 0).sum(1).int(),
                       "bias": bias.float()}

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
        from bsnn_bindsnet.snn.connections import BinaryConnection, FullPrecisionConnection

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

    def current(self, x: Tensor, weight: Tensor) -> Tensor:
        return x.flatten(1) @ weight.T

    def to_nir(self, src_shape: tuple[int, ...], key: str) -> list[tuple[str, Any]]:
        r"""(``Flatten`` ``KEY_flat`` if the source is not 1-D ->) ``Linear`` (``Affine`` with
        a bias), weight :math:`\alpha \operatorname{sign}(W)` in float32."""
        import numpy as np

        nir, w = _nir(), _f32(self.effective_weight())
        meta = {"binary": bool(self.binary)}
        chain = []
        if len(src_shape) > 1:
            chain.append((f"{key}_flat", nir.Flatten(input_type={"input": np.array(src_shape)},
                                                     start_dim=0, end_dim=-1)))
        node = (nir.Linear(weight=w, metadata=meta) if self.bias is None
                else nir.Affine(weight=w, bias=_f32(self.bias), metadata=meta))
        return chain + [(key, node)]


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
        from bsnn_bindsnet.snn.connections import (BinaryConv2dConnection,
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

    def current(self, x: Tensor, weight: Tensor) -> Tensor:
        return self._conv(x, weight)

    def patch_geometry(self) -> tuple[tuple[int, int], ...] | None:
        return _pair(tuple(self.matrix.shape[2:])), _pair(self.stride), _pair(self.padding)

    def imc_entry(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        entry, arrays = super().imc_entry()
        entry.update(stride=list(_pair(self.stride)), padding=list(_pair(self.padding)))
        return entry, arrays

    def to_nir(self, src_shape: tuple[int, ...], key: str) -> list[tuple[str, Any]]:
        """``Conv2d`` (zero bias when it has none), then ``AvgPool2d`` ``KEY_pool`` for a
        folded pool."""
        import numpy as np

        nir, w = _nir(), _f32(self.effective_weight())
        b = np.zeros(w.shape[0], np.float32) if self.bias is None else _f32(self.bias)
        conv = nir.Conv2d(input_shape=tuple(int(d) for d in src_shape[1:]), weight=w,
                          stride=_pair(self.stride), padding=_pair(self.padding),
                          dilation=(1, 1), groups=1, bias=b,
                          metadata={"binary": bool(self.binary)})
        chain = [(key, conv)]
        if self.pool is not None:
            chain.append((f"{key}_pool", nir_avg_pool(self.pool,
                                                      self.conv_shape(tuple(src_shape)))))
        return chain

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

    def imc_entry(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """No weights: digital pooling between arrays (its geometry only)."""
        return {"kind": self.type, "kernel_size": self.kernel_size, "stride": self.stride,
                "padding": self.padding}, {}


@register_synapse
@dataclass(frozen=True, eq=False)
class AvgPoolSynapse(_PoolSynapse):
    """Average pooling of spikes (the fraction of the window that fired); no MACs."""

    type: ClassVar[str] = "avgpool"

    def connection(self, source: Any, target: Any) -> Any:
        from bsnn_bindsnet.snn.connections import AvgPool2dConnection

        return self._connection(AvgPool2dConnection, source, target)

    def to_nir(self, src_shape: tuple[int, ...], key: str) -> list[tuple[str, Any]]:
        """One ``AvgPool2d``."""
        return [(key, nir_avg_pool(dataclasses.asdict(self), tuple(src_shape)))]


@register_synapse
@dataclass(frozen=True, eq=False)
class MaxPoolSynapse(_PoolSynapse):
    """Max pooling of spikes, a spike OR over each window; no MACs."""

    type: ClassVar[str] = "maxpool"

    def connection(self, source: Any, target: Any) -> Any:
        from bsnn_bindsnet.snn.connections import MaxPool2dConnection

        return self._connection(MaxPool2dConnection, source, target)

    def to_nir(self, src_shape: tuple[int, ...], key: str) -> list[tuple[str, Any]]:
        raise NotImplementedError(
            f"spike max-pooling cannot be exported: NIR {_nir().version} has no max-pooling "
            "node (supported synapses: conv, linear, avgpool). Convert with average pooling "
            "(--pool avg-before/avg-after) to move the network through NIR")
