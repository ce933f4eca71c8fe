r"""BindsNET connections for converted binary SNNs: no learning rule, weights in buffers.

Binary layers keep :math:`W_b = \alpha \operatorname{sign}(W)` as an ``int8`` sign and one scale
:math:`\alpha` per output (XNOR-Net / BWN): ``compute`` runs the integer-valued binary MAC first
and applies :math:`\alpha` last. The first and last layers stay full precision
(:class:`FullPrecisionConnection`, :class:`FullPrecisionConv2dConnection`), and pooling between
two spiking layers has its own connections.

Every connection follows the BindsNET contract: ``compute(s)`` receives the raw ``source.s``
(bool from spiking layers, float from an ``Input`` layer), converts it once, and returns the
input current ``[B, *target.shape]``; ``update``, ``reset_state_variables`` and ``normalize`` do
nothing. The geometry is checked at construction: a weight or pooling window that does not map
``source.shape`` to ``target.shape`` raises a ``ValueError`` naming both shapes.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

from bsnn_bindsnet.functional import scale_per_channel, sign_nonzero, to_conv_layout

with warnings.catch_warnings():  # importing bindsnet sets warnings.filterwarnings("ignore")
    from bindsnet.network.nodes import Nodes
    from bindsnet.network.topology import AbstractConnection

__all__ = [
    "AvgPool2dConnection", "BinaryConnection", "BinaryConv2dConnection",
    "FullPrecisionConnection", "FullPrecisionConv2dConnection", "MaxPool2dConnection",
]  # fmt: skip

IntPair = int | tuple[int, int]


def _as_weight(weight: Tensor, ndim: int, owner: str) -> Tensor:
    """Detached floating-point copy of ``weight``; checks its rank and that it is finite."""
    w = torch.as_tensor(weight).detach()
    if w.dim() != ndim:
        raise ValueError(f"{owner}: weight must have {ndim} dims, got shape {tuple(w.shape)}")
    if not w.is_floating_point():
        w = w.to(torch.get_default_dtype())
    if not bool(torch.isfinite(w).all()):
        raise ValueError(f"{owner}: weight contains NaN or inf")
    return w.clone()


def _as_bias(bias: Tensor, weight: Tensor, owner: str) -> Tensor:
    """Detached ``[out]`` copy of ``bias`` in the weight's dtype."""
    b = torch.as_tensor(bias, dtype=weight.dtype).detach()
    if tuple(b.shape) != (weight.shape[0],):
        raise ValueError(f"{owner}: bias of shape {tuple(b.shape)}, expected ({weight.shape[0]},)")
    return b.clone()


def _scale_vector(weight: Tensor, scale: Tensor | float | None, per_channel: bool) -> Tensor:
    """:math:`\\alpha` as a ``[out]`` vector: given, or ``mean |W|`` per output row / per layer."""
    n_out = weight.shape[0]
    if scale is None:
        a = scale_per_channel(weight, per_channel)
    else:
        a = torch.as_tensor(scale, dtype=weight.dtype).detach()
    if a.numel() not in (1, n_out):
        raise ValueError(
            f"scale of shape {tuple(a.shape)}: expected a single value or one per output "
            f"channel ({n_out},)"
        )
    if not bool(torch.isfinite(a).all()):
        raise ValueError("scale contains NaN or inf")
    return a.reshape(-1).expand(n_out).clone()


def _check_flat(owner: str, source: Nodes, target: Nodes, weight: Tensor) -> None:
    if tuple(weight.shape) != (target.n, source.n):
        raise ValueError(
            f"{owner}: weight {tuple(weight.shape)} does not map source shape "
            f"{tuple(source.shape)} (n={source.n}) to target shape {tuple(target.shape)} "
            f"(n={target.n}); expected nn.Linear layout ({target.n}, {source.n})"
        )


def _check_map(
    owner: str, source: Nodes, target: Nodes, fn: Callable[[Tensor], Tensor], what: str
) -> None:
    """Run ``fn`` on a meta tensor shaped like ``source`` and compare with ``target.shape``."""
    src, tgt = tuple(source.shape), tuple(target.shape)
    if len(src) != 3 or len(tgt) != 3:
        raise ValueError(
            f"{owner}: source shape {src} and target shape {tgt} must both be (C, H, W)"
        )
    try:
        out = tuple(fn(torch.empty(1, *src, device="meta")).shape[1:])
    except RuntimeError as err:
        msg = f"{owner}: {what} cannot be applied to source shape {src}: {err}"
        raise ValueError(msg) from None
    if out != tgt:
        raise ValueError(
            f"{owner}: {what} maps source shape {src} to {out}, but the target shape is {tgt}"
        )


def _check_pool(owner: str, pool: nn.Module | None) -> nn.AvgPool2d | None:
    if isinstance(pool, nn.MaxPool2d):
        raise ValueError(
            f"{owner}: pool=nn.MaxPool2d is not supported: max-pooling synaptic currents is "
            "not linear, so it does not commute with integrate-and-fire. The converter inserts "
            "an extra IF layer after the convolution and a MaxPool2dConnection on its spikes."
        )
    if pool is not None and not isinstance(pool, nn.AvgPool2d):
        got = type(pool).__name__
        raise ValueError(f"{owner}: pool must be an nn.AvgPool2d or None, got {got}")
    return pool


class _StaticConnection(AbstractConnection):
    """A connection without plasticity: ``update``, ``reset_state_variables`` and
    ``normalize`` do nothing. Subclasses call ``super().__init__(source, target)`` only."""

    def update(self, *, mask: Tensor | None = None, **kwargs) -> None:
        """No learning rule: nothing changes. ``Network.run`` passes ``learning``, ``mask`` and
        its own keyword arguments here; a weight mask is rejected instead of ignored.

        Raises:
            NotImplementedError: ``mask`` is not None.
        """
        if mask is not None:
            raise NotImplementedError(f"{type(self).__name__} does not support weight masks")

    def reset_state_variables(self) -> None:
        """Stateless: nothing to reset."""

    def normalize(self) -> None:
        """No weight normalisation (``Network.run`` calls this after every run)."""


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
