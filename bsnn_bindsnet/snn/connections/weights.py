r"""Weighted connections: binary (:math:`\alpha \operatorname{sign}(W)`) and full-precision,
fully connected and convolutional (see :mod:`bsnn_bindsnet.snn.connections`)."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from bsnn_bindsnet.snn.connections.base import (ConstantInputCache, IntPair, _as_bias,
                                                _as_weight, _check_flat, _check_map,
                                                _check_pool, _scale_vector, _StaticConnection)
from bsnn_bindsnet.snn.connections.integer import (IntegerKernel, check_arithmetic, pool_fold,
                                                   pooled_kernel, resolve_arithmetic)
from bsnn_bindsnet.snn.functional import sign_nonzero, to_conv_layout

with warnings.catch_warnings():  # importing bindsnet sets warnings.filterwarnings("ignore")
    from bindsnet.network.nodes import Nodes


class _BinaryWeights(_StaticConnection):
    """Holds ``sign`` (int8), ``scale`` ``[out]`` and a float copy of the sign for the float
    path; runs the binary product in the arithmetic of :attr:`arithmetic`
    (:mod:`bsnn_bindsnet.snn.connections.integer`) and records the one that ran in
    :attr:`last_arithmetic`."""

    def _register_binary(
        self, weight: Tensor, scale: Tensor | float | None, per_channel: bool,
        bias: Tensor | None, arithmetic: str,
    ) -> None:
        owner = type(self).__name__
        self.arithmetic = check_arithmetic(arithmetic)
        self.last_arithmetic: str | None = None
        self.register_buffer("bias", None if bias is None else _as_bias(bias, weight, owner))
        sign = sign_nonzero(weight)
        self.register_buffer("sign", sign.to(torch.int8))
        self.register_buffer("scale", _scale_vector(weight, scale, per_channel))
        self.register_buffer("_sign_float", to_conv_layout(sign), persistent=False)
        self.register_load_state_dict_post_hook(_resync_sign_float)
        self._kernel = IntegerKernel(sign.dim() == 4, getattr(self, "stride", (1, 1)),
                                     getattr(self, "padding", (0, 0)))

    def _float_product(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _product(self, s: Tensor) -> Tensor:
        r""":math:`\alpha \odot (\operatorname{sign}(W) \ast s)`: integer arithmetic for bool
        spikes in float32 where :attr:`arithmetic` resolves to it, else the float path (which
        also scales the exact integer sum, so both give the same floats)."""
        arithmetic = "float"
        if s.dtype == torch.bool and self.scale.dtype == torch.float32:
            arithmetic = resolve_arithmetic(self.arithmetic, s.device, self.sign[0].numel(),
                                            self.sign.shape[0])
        self.last_arithmetic = arithmetic
        if arithmetic != "float":
            return self._integer_product(s, arithmetic)
        return self._float_product(s.to(self._sign_float.dtype))

    def _integer_product(self, s: Tensor, arithmetic: str) -> Tensor:
        return self._kernel(s, self.sign, self.scale, arithmetic)


def _resync_sign_float(module: _BinaryWeights, incompatible_keys) -> None:
    """After ``load_state_dict``, rebuild the non-persistent float sign from ``sign`` and drop
    the packed integer weights."""
    module._sign_float.copy_(module.sign)
    module._kernel.clear()
    if getattr(module, "_pooled", None) is not None:
        module._pooled.copy_(pooled_kernel(module.sign, module.stride, module._fold[0]))


class BinaryConnection(_BinaryWeights):
    r"""Binary fully connected synapses, flattening the source.

    .. math:: I_t = \alpha \odot \big(\operatorname{sign}(W)\, s_t\big) + b

    :math:`\operatorname{sign}(W) s_t` is integer-valued (accumulates of :math:`\pm 1`);
    :math:`\alpha` is applied once per output afterwards.

    Args:
        source: Presynaptic layer, any shape (flattened to ``source.n``).
        target: Postsynaptic layer with ``target.n == weight.shape[0]``.
        weight: Real-valued weight in ``nn.Linear`` layout ``[out, in]``; only its sign
            (:func:`~bsnn_bindsnet.snn.functional.sign_nonzero`, never 0) and scale are kept.
        scale: :math:`\alpha`: a single value or ``[out]``; ``None`` for ``mean |W|``.
        bias: Optional ``[out]`` constant current added after the scale (batch-norm folding).
        per_channel: With ``scale=None``, one :math:`\alpha` per output row (true) or one for
            the layer.
        arithmetic: ``"auto"`` (integer where it runs, default), ``"float"``, ``"onednn"`` or
            ``"int_mm"``: see :mod:`bsnn_bindsnet.snn.connections.integer`; every choice gives
            bitwise the same currents.

    Raises:
        ValueError: ``weight`` does not map ``source.shape`` to ``target.shape``, is not finite,
            ``scale`` has the wrong size, or ``arithmetic`` is unknown.

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
        arithmetic: str = "auto",
    ) -> None:
        super().__init__(source, target)
        weight = _as_weight(weight, 2, type(self).__name__)
        _check_flat(type(self).__name__, source, target, weight)
        self._register_binary(weight, scale, per_channel, bias, arithmetic)

    @property
    def w(self) -> Tensor:
        """Effective float weight :math:`\\alpha \\operatorname{sign}(W)` in BindsNET's
        ``[source.n, target.n]`` layout (a new tensor; editing it changes nothing)."""
        return (self.scale[:, None] * self._sign_float).t()

    def _float_product(self, x: Tensor) -> Tensor:
        return F.linear(x, self._sign_float).mul_(self.scale)

    def compute(self, s: Tensor) -> Tensor:
        b = s.shape[0]
        out = self._product(s.reshape(b, -1))
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
        self._constant = ConstantInputCache()

    @property
    def w(self) -> Tensor:
        """The weight in BindsNET's ``[source.n, target.n]`` layout (a transposed view)."""
        return self.weight.t()

    def compute(self, s: Tensor) -> Tensor:
        """The current for ``s``; an analog input that comes back unchanged (constant-current
        coding) is computed once (:class:`~bsnn_bindsnet.snn.connections.base.ConstantInputCache`)."""
        cached = self._constant.get(s)
        if cached is not None:
            return cached
        b = s.shape[0]
        out = F.linear(s.reshape(b, -1).to(self.weight.dtype), self.weight, self.bias)
        out = out.view(b, *self.target.shape)
        return self._constant.put(s, out) if s.is_floating_point() else out

    def reset_state_variables(self) -> None:
        """Forget the cached current of the last analog input."""
        self._constant.clear()


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

    .. math:: I_t = \alpha_c\, \operatorname{pool}\big(\operatorname{sign}(W) * s_t\big)
        + \operatorname{pool}(b_c)

    Average pooling is linear, so the current reaching the neuron is the ANN's pooled
    pre-activation (conv :math:`\to` avg-pool :math:`\to` ReLU becomes conv :math:`\to`
    avg-pool :math:`\to` IF). :math:`\alpha_c` (one per output channel) scales the pooled
    integer MAC, as the paper's binary accumulate applies it last;
    :math:`\operatorname{pool}(b_c) = b_c` unless the pool pads. With the integer arithmetic a
    pool whose average is exact is folded into the convolution
    (:func:`~bsnn_bindsnet.snn.connections.integer.pool_fold`), with the same result.

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
        arithmetic: As in :class:`BinaryConnection`.

    Raises:
        ValueError: the geometry does not map ``source.shape`` to ``target.shape``; ``pool`` is
            an ``nn.MaxPool2d`` (max-pooling currents is not linear: the converter inserts an
            extra IF layer and a :class:`MaxPool2dConnection` instead) or another module; an
            unknown ``arithmetic``.

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
        arithmetic: str = "auto",
    ) -> None:
        super().__init__(source, target)
        weight = self._setup_conv(weight, stride, padding, pool)
        self._register_binary(weight, scale, per_channel, bias, arithmetic)
        self._fold = None if pool is None else pool_fold(pool, self.stride)
        pooled = None
        if self._fold is not None:
            pooled = pooled_kernel(self.sign, self.stride, self._fold[0])
            self._pooled_conv = IntegerKernel(True, self._fold[1], self.padding)
        self.register_buffer("_pooled", pooled, persistent=False)

    @property
    def w(self) -> Tensor:
        """Effective float weight :math:`\\alpha \\operatorname{sign}(W)`, ``[C_out, C_in, kh, kw]``
        as in BindsNET's ``Conv2dConnection`` (a new tensor)."""
        return self.scale.view(-1, 1, 1, 1) * self._sign_float

    def _float_product(self, x: Tensor) -> Tensor:
        z = F.conv2d(x, self._sign_float, stride=self.stride, padding=self.padding)
        return (z if self.pool is None else self.pool(z)).mul_(self.scale.view(-1, 1, 1))

    def _integer_product(self, s: Tensor, arithmetic: str) -> Tensor:
        alpha = self.scale
        if self.pool is None:
            return self._kernel(s, self.sign, alpha, arithmetic)
        if self._pooled is None:  # pool the exact sums as the float path does
            z = self._kernel(s, self.sign, torch.ones_like(alpha), arithmetic)
            return self.pool(z).mul_(alpha.view(-1, 1, 1))
        area = self._fold[2]
        # (W_p * s) (alpha / A): the exact pooled sum times alpha, rounded once, as
        # pool(sum) * alpha on the float path, as long as alpha / A is exact (no underflow)
        per_area = alpha / area
        if torch.equal(per_area * area, alpha):
            return self._pooled_conv(s, self._pooled, per_area, arithmetic)
        z = self._pooled_conv(s, self._pooled, torch.full_like(alpha, 1.0 / area), arithmetic)
        return z.mul_(alpha.view(-1, 1, 1))

    def compute(self, s: Tensor) -> Tensor:
        out = self._product(s)
        if self.bias is None:
            return out
        bias = self.bias.view(-1, 1, 1)
        if self.pool is not None and _pair(self.pool.padding) != (0, 0):
            conv_hw = self.pool_input_shape()[1:]
            bias = self.pool(bias.expand(1, -1, *conv_hw).contiguous())[0]
        return out.add_(bias)

    def pool_input_shape(self) -> tuple[int, ...]:
        """``(C_out, H, W)`` of the convolution's output, before the pool."""
        x = torch.empty(1, *self.source.shape, device="meta")
        w = torch.empty(self.sign.shape, device="meta")
        return tuple(F.conv2d(x, w, stride=self.stride, padding=self.padding).shape[1:])


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
        # without a bias the one-channel case runs in NHWC (see compute); with one, PyTorch's
        # default reading of ambiguous strides (NCHW) keeps the ANN's rounding of the bias
        self.register_buffer("weight", to_conv_layout(weight) if bias is None
                             else weight.contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", None if bias is None else _as_bias(bias, weight, owner))
        self._constant = ConstantInputCache()

    @property
    def w(self) -> Tensor:
        """The weight ``[C_out, C_in, kh, kw]``, as in BindsNET's ``Conv2dConnection``."""
        return self.weight

    def compute(self, s: Tensor) -> Tensor:
        """The current for ``s``, computed once for an analog input that comes back unchanged
        (as :meth:`FullPrecisionConnection.compute`)."""
        cached = self._constant.get(s)
        if cached is not None:
            return cached
        x = s.to(self.weight.dtype)
        if self.bias is None:  # NHWC strides for a one-channel input: 5-10x faster, same sums
            x = to_conv_layout(x)  # (with a bias oneDNN's NHWC kernel rounds it differently)
        out = F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)
        out = to_conv_layout(out if self.pool is None else self.pool(out))  # as the layer's v
        return self._constant.put(s, out) if s.is_floating_point() else out

    def reset_state_variables(self) -> None:
        """Forget the cached current of the last analog input."""
        self._constant.clear()
