r"""Weighted connections: binary (:math:`\alpha \operatorname{sign}(W)`) and full-precision,
fully connected and convolutional (see :mod:`bsnn_bindsnet.connections`)."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from bsnn_bindsnet.connections.base import (IntPair, _as_bias, _as_weight, _check_flat,
                                            _check_map, _check_pool, _scale_vector,
                                            _StaticConnection)
from bsnn_bindsnet.functional import sign_nonzero, to_conv_layout

with warnings.catch_warnings():  # importing bindsnet sets warnings.filterwarnings("ignore")
    from bindsnet.network.nodes import Nodes


class _BinaryWeights(_StaticConnection):
    """Holds ``sign`` (int8), ``scale`` ``[out]`` and a float copy of the sign for compute."""

    def _register_binary(
        self, weight: Tensor, scale: Tensor | float | None, per_channel: bool,
        bias: Tensor | None,
    ) -> None:
        owner = type(self).__name__
        self.register_buffer("bias", None if bias is None else _as_bias(bias, weight, owner))
        sign = sign_nonzero(weight)
        self.register_buffer("sign", sign.to(torch.int8))
        self.register_buffer("scale", _scale_vector(weight, scale, per_channel))
        self.register_buffer("_sign_float", to_conv_layout(sign), persistent=False)
        self.register_load_state_dict_post_hook(_resync_sign_float)


def _resync_sign_float(module: _BinaryWeights, incompatible_keys) -> None:
    """After ``load_state_dict``, rebuild the non-persistent float sign from ``sign``."""
    module._sign_float.copy_(module.sign)


class BinaryConnection(_BinaryWeights):
    r"""Binary fully connected synapses, flattening the source.

    .. math:: I_t = \alpha \odot \big(\operatorname{sign}(W)\, s_t\big) + b

    :math:`\operatorname{sign}(W) s_t` is integer-valued (accumulates of :math:`\pm 1`);
    :math:`\alpha` is applied once per output afterwards.

    Args:
        source: Presynaptic layer, any shape (flattened to ``source.n``).
        target: Postsynaptic layer with ``target.n == weight.shape[0]``.
        weight: Real-valued weight in ``nn.Linear`` layout ``[out, in]``; only its sign
            (:func:`~bsnn_bindsnet.functional.sign_nonzero`, never 0) and scale are kept.
        scale: :math:`\alpha`: a single value or ``[out]``; ``None`` for ``mean |W|``.
        bias: Optional ``[out]`` constant current added after the scale (batch-norm folding).
        per_channel: With ``scale=None``, one :math:`\alpha` per output row (true) or one for
            the layer.

    Raises:
        ValueError: ``weight`` does not map ``source.shape`` to ``target.shape``, is not finite,
            or ``scale`` has the wrong size.

    Shape:
        ``compute(s)``: ``s`` is ``[B, *source.shape]`` (bool or float); returns
        ``[B, *target.shape]``. Buffers: ``sign`` int8 ``[out, in]``, ``scale`` ``[out]``.
    """

    def __init__(
        self,
        source: Nodes,
        target: Nodes,
        *,
        weight: Tensor,
        scale: Tensor | float | None = None,
        per_channel: bool = True,
        bias: Tensor | None = None,
    ) -> None:
        super().__init__(source, target)
        weight = _as_weight(weight, 2, type(self).__name__)
        _check_flat(type(self).__name__, source, target, weight)
        self._register_binary(weight, scale, per_channel, bias)

    @property
    def w(self) -> Tensor:
        """Effective float weight :math:`\\alpha \\operatorname{sign}(W)` in BindsNET's
        ``[source.n, target.n]`` layout (a new tensor; editing it changes nothing)."""
        return (self.scale[:, None] * self._sign_float).t()

    def compute(self, s: Tensor) -> Tensor:
        b = s.shape[0]
        out = F.linear(s.reshape(b, -1).to(self._sign_float.dtype), self._sign_float)
        out.mul_(self.scale)
        if self.bias is not None:
            out.add_(self.bias)
        return out.view(b, *self.target.shape)


class FullPrecisionConnection(_StaticConnection):
    r"""Full-precision fully connected synapses (first / last layer), flattening the source.

    .. math:: I_t = W s_t + b

    The bias is a constant current injected every step.

    Arguments, errors and shapes as in :class:`BinaryConnection`, with the real ``weight``
    ``[out, in]`` kept (copied) and an optional ``bias`` ``[out]`` instead of the scale.
    """

    def __init__(
        self, source: Nodes, target: Nodes, *, weight: Tensor, bias: Tensor | None = None
    ) -> None:
        super().__init__(source, target)
        owner = type(self).__name__
        weight = _as_weight(weight, 2, owner)
        _check_flat(owner, source, target, weight)
        self.register_buffer("weight", weight)
        self.register_buffer("bias", None if bias is None else _as_bias(bias, weight, owner))

    @property
    def w(self) -> Tensor:
        """The weight in BindsNET's ``[source.n, target.n]`` layout (a transposed view)."""
        return self.weight.t()

    def compute(self, s: Tensor) -> Tensor:
        b = s.shape[0]
        out = F.linear(s.reshape(b, -1).to(self.weight.dtype), self.weight, self.bias)
        return out.view(b, *self.target.shape)


class _Conv2dBase(_StaticConnection):
    """Validates a convolution (+ optional average pooling) between two ``(C, H, W)`` layers."""

    def _setup_conv(
        self, weight: Tensor, stride: IntPair, padding: IntPair, pool: nn.Module | None
    ) -> Tensor:
        owner = type(self).__name__
        weight = _as_weight(weight, 4, owner)
        self.stride, self.padding = _pair(stride), _pair(padding)
        self.pool = _check_pool(owner, pool)
        meta_w = torch.empty(weight.shape, device="meta")

        def conv_pool(x: Tensor) -> Tensor:
            x = F.conv2d(x, meta_w, stride=self.stride, padding=self.padding)
            return x if self.pool is None else self.pool(x)

        what = f"weight {tuple(weight.shape)} (stride {self.stride}, padding {self.padding}"
        what += ")" if pool is None else f", then {pool})"
        _check_map(owner, self.source, self.target, conv_pool, what)
        return weight


class BinaryConv2dConnection(_BinaryWeights, _Conv2dBase):
    r"""Binary convolutional synapses, optionally followed by average pooling of the current.

    .. math:: I_t = \operatorname{pool}\big(\alpha_c (\operatorname{sign}(W) * s_t) + b_c\big)

    Average pooling is linear, so the current reaching the neuron is exactly the ANN's pooled
    pre-activation (conv :math:`\to` avg-pool :math:`\to` ReLU becomes conv :math:`\to`
    avg-pool :math:`\to` IF). :math:`\alpha_c` (one per output channel) scales the integer MAC.

    Args:
        source: Presynaptic ``(C_in, H, W)`` layer.
        target: Postsynaptic ``(C_out, H', W')`` layer.
        weight: ``[C_out, C_in, kh, kw]``; only its sign (never 0) and scale are kept.
        scale: :math:`\alpha`: a single value or ``[C_out]``; ``None`` for ``mean |W|``.
        bias: Optional ``[C_out]`` constant current added after the scale, before pooling.
        per_channel: With ``scale=None``, one :math:`\alpha` per output channel (mean over
            ``C_in * kh * kw``) or one for the layer.
        stride: Convolution stride.
        padding: Convolution zero padding.
        pool: An ``nn.AvgPool2d`` applied to the current, or ``None``.

    Raises:
        ValueError: the geometry does not map ``source.shape`` to ``target.shape``; ``pool`` is
            an ``nn.MaxPool2d`` (max-pooling currents is not linear: the converter inserts an
            extra IF layer and a :class:`MaxPool2dConnection` instead) or another module.

    Shape:
        ``compute(s)``: ``[B, C_in, H, W]`` -> ``[B, C_out, H', W']``. Buffers: ``sign`` int8
        ``[C_out, C_in, kh, kw]``, ``scale`` ``[C_out]``.
    """

    def __init__(
        self,
        source: Nodes,
        target: Nodes,
        *,
        weight: Tensor,
        scale: Tensor | float | None = None,
        per_channel: bool = True,
        bias: Tensor | None = None,
        stride: IntPair = 1,
        padding: IntPair = 0,
        pool: nn.AvgPool2d | None = None,
    ) -> None:
        super().__init__(source, target)
        weight = self._setup_conv(weight, stride, padding, pool)
        self._register_binary(weight, scale, per_channel, bias)

    @property
    def w(self) -> Tensor:
        """Effective float weight :math:`\\alpha \\operatorname{sign}(W)`, ``[C_out, C_in, kh, kw]``
        as in BindsNET's ``Conv2dConnection`` (a new tensor)."""
        return self.scale.view(-1, 1, 1, 1) * self._sign_float

    def compute(self, s: Tensor) -> Tensor:
        x = s.to(self._sign_float.dtype)
        out = F.conv2d(x, self._sign_float, stride=self.stride, padding=self.padding)
        out.mul_(self.scale.view(-1, 1, 1))
        if self.bias is not None:
            out.add_(self.bias.view(-1, 1, 1))
        return out if self.pool is None else self.pool(out)


class FullPrecisionConv2dConnection(_Conv2dBase):
    r"""Full-precision convolutional synapses (first layer), optionally average-pooled.

    .. math:: I_t = \operatorname{pool}(W * s_t + b)

    The order matches the ANN (conv with bias, then pool). Arguments as in
    :class:`BinaryConv2dConnection`, with the real ``weight`` kept (copied) and an optional
    ``bias`` ``[C_out]``.

    Shape:
        ``compute(s)``: ``[B, C_in, H, W]`` -> ``[B, C_out, H', W']``.
    """

    def __init__(
        self,
        source: Nodes,
        target: Nodes,
        *,
        weight: Tensor,
        bias: Tensor | None = None,
        stride: IntPair = 1,
        padding: IntPair = 0,
        pool: nn.AvgPool2d | None = None,
    ) -> None:
        super().__init__(source, target)
        owner = type(self).__name__
        weight = self._setup_conv(weight, stride, padding, pool)
        self.register_buffer("weight", to_conv_layout(weight))
        self.register_buffer("bias", None if bias is None else _as_bias(bias, weight, owner))

    @property
    def w(self) -> Tensor:
        """The weight ``[C_out, C_in, kh, kw]``, as in BindsNET's ``Conv2dConnection``."""
        return self.weight

    def compute(self, s: Tensor) -> Tensor:
        x = s.to(self.weight.dtype)
        out = F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)
        return out if self.pool is None else self.pool(out)
