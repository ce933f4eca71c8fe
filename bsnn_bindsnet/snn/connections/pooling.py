r"""Weightless pooling of spikes between two spiking layers (see
:mod:`bsnn_bindsnet.snn.connections`)."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.modules.utils import _pair

from bsnn_bindsnet.snn.connections.base import IntPair, _check_map, _StaticConnection

with warnings.catch_warnings():  # importing bindsnet sets warnings.filterwarnings("ignore")
    from bindsnet.network.nodes import Nodes


class _Pool2dConnection(_StaticConnection):
    """Weightless pooling between two ``(C, H, W)`` spiking layers."""

    def __init__(
        self,
        source: Nodes,
        target: Nodes,
        *,
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: IntPair = 0,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(source, target)
        self.kernel_size = _pair(kernel_size)
        self.stride = self.kernel_size if stride is None else _pair(stride)
        self.padding = _pair(padding)
        self.ceil_mode = ceil_mode
        what = f"pooling (kernel {self.kernel_size}, stride {self.stride}, padding {self.padding}"
        _check_map(type(self).__name__, source, target, self._pool, f"{what}, {ceil_mode=})")

    def _pool(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def compute(self, s: Tensor) -> Tensor:
        return self._pool(s if s.is_floating_point() else s.to(torch.get_default_dtype()))


class AvgPool2dConnection(_Pool2dConnection):
    r"""Average pooling of spikes: the fraction of the window that fired.

    .. math:: I_t = \operatorname{avgpool}(s_t)

    Args:
        source: Presynaptic ``(C, H, W)`` layer.
        target: Postsynaptic ``(C, H', W')`` layer.
        kernel_size: Pooling window.
        stride: Defaults to ``kernel_size``.
        padding: Zero padding (counted in the average, as ``nn.AvgPool2d`` does by default).
        ceil_mode: Round the output size up.

    Raises:
        ValueError: the pooling does not map ``source.shape`` to ``target.shape``.

    Shape:
        ``compute(s)``: ``[B, C, H, W]`` -> ``[B, C, H', W']`` float.
    """

    def _pool(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)


class MaxPool2dConnection(_Pool2dConnection):
    r"""Max pooling of spikes, i.e. a spike OR over each window (no running rate estimate,
    unlike BindsNET's ``MaxPool2dConnection``).

    .. math:: I_t = \max_{\text{window}} s_t = \bigvee_{\text{window}} s_t

    Arguments, errors and shapes as in :class:`AvgPool2dConnection` (padding never wins the
    max).
    """

    def _pool(self, x: Tensor) -> Tensor:
        return F.max_pool2d(
            x, self.kernel_size, self.stride, self.padding, ceil_mode=self.ceil_mode
        )
