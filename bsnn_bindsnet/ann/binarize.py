r"""Binary weights (XNOR-Net / BWN) and binary activations with straight-through estimators.

Forward: :math:`W_b = \alpha \cdot \operatorname{sign}(W)` with a sign that is never 0 and
:math:`\alpha = \operatorname{mean}|W|` per output channel (default) or per layer. Backward: the
straight-through estimator passes the gradient to the real-valued proxy ``W`` where
:math:`|W| \le 1` and blocks it elsewhere; the gradient through :math:`\alpha` is kept (autograd
differentiates the mean), which gives XNOR-Net's full weight gradient.

The proxies live in ``.weight`` exactly as in ``nn.Conv2d`` / ``nn.Linear``, so a full-precision
state dict loads into a binary model unchanged: that is the "hybrid" start of the paper.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from bsnn_bindsnet.snn.functional import scale_per_channel, sign_nonzero


class SignSTE(torch.autograd.Function):
    """``sign_nonzero`` forward, gradient gated on ``|x| <= clip`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, clip: float) -> Tensor:  # noqa: D102
        ctx.save_for_backward(x)
        ctx.clip = clip
        return sign_nonzero(x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= ctx.clip).to(grad.dtype), None


def sign_ste(x: Tensor, clip: float = 1.0) -> Tensor:
    """Two-valued sign with a straight-through gradient gated on ``|x| <= clip``."""
    return SignSTE.apply(x, clip)


def binarize_weight(w: Tensor, *, per_channel: bool = True, clip: float = 1.0) -> Tensor:
    r""":math:`\alpha \cdot \operatorname{sign}(W)`, differentiable through the STE and :math:`\alpha`."""
    return scale_per_channel(w, per_channel) * sign_ste(w, clip)


# torch.fx records binarize_weight as one call (its shape arithmetic cannot run on a Proxy),
# so the binary models trace (nirtorch, SpikingJelly's converter, torch.ao's FX mode)
torch.fx.wrap("binarize_weight")


class _BinaryWeightMixin:
    """Shared by :class:`BinaryConv2d` and :class:`BinaryLinear`."""

    precision = 1  # weight bits, read by the analyses (larq pattern)
    weight: Tensor
    per_channel: bool
    clip: float

    def binary_weight(self) -> Tensor:
        """The weight used in the forward pass (``alpha * sign(W)``), with gradient."""
        return binarize_weight(self.weight, per_channel=self.per_channel, clip=self.clip)

    def export_weight(self) -> tuple[Tensor, Tensor]:
        """Detached ``(sign, alpha)``: sign is ±1 with the weight's shape, alpha ``[out]`` (or 0-d)."""
        w = self.weight.detach()
        alpha = scale_per_channel(w, self.per_channel)
        return sign_nonzero(w), alpha.reshape(-1) if self.per_channel else alpha

    def extra_repr(self) -> str:  # noqa: D102
        return f"{super().extra_repr()}, per_channel={self.per_channel}"


class BinaryConv2d(_BinaryWeightMixin, nn.Conv2d):
    """``nn.Conv2d`` whose forward uses ``alpha * sign(W)``; ``.weight`` holds the real proxies.

    Args:
        *args: As ``nn.Conv2d`` (``bias`` defaults to False here: the constrained ANN has none).
        per_channel: One alpha per output channel (over ``C_in * kh * kw``) or one per layer.
        clip: STE gate: gradients pass where ``|W| <= clip``.
    """

    def __init__(self, *args, bias: bool = False, per_channel: bool = True, clip: float = 1.0,
                 **conv_kwargs) -> None:
        super().__init__(*args, bias=bias, **conv_kwargs)
        self.per_channel = per_channel
        self.clip = clip

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return self._conv_forward(x, self.binary_weight(), self.bias)


class BinaryLinear(_BinaryWeightMixin, nn.Linear):
    """``nn.Linear`` whose forward uses ``alpha * sign(W)``; see :class:`BinaryConv2d`."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = False,
                 per_channel: bool = True, clip: float = 1.0) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.per_channel = per_channel
        self.clip = clip

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return nn.functional.linear(x, self.binary_weight(), self.bias)


class SignActivation(nn.Module):
    """Binary activation ``sign(x)`` in {-1, +1} with the hard-tanh STE (XNOR-Net baseline)."""

    def __init__(self, clip: float = 1.0) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return sign_ste(x, self.clip)


def binary_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Named modules of ``model`` that carry binary weights, in definition order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _BinaryWeightMixin)]
