r"""The one spike function with a surrogate gradient, and the one loop of IF neurons over time,
shared by the direct route (:mod:`bsnn_bindsnet.direct.model`) and the unrolled QCFS network
(:mod:`bsnn_bindsnet.training.unrolled`).

Forward: :math:`o = H(v - \theta)` (a spike when :math:`v \ge \theta`, as the BindsNET nodes).
Backward: a :class:`Surrogate` of :math:`x = v/\theta - 1`:

- :data:`TRIANGLE` (XNOR-BSNN, the direct route):
  :math:`\partial o / \partial v = 0.3 \max(0, 1 - |(v - \theta)/\theta|)`;
- :data:`RECTANGLE` (the unrolled QCFS network, :math:`\theta = \lambda` trainable):
  :math:`\partial o / \partial x = [|x| < 1/2]`, so :math:`\partial o / \partial v =
  [|x| < 1/2] / \theta` and the threshold learns through :math:`x` too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from bsnn_bindsnet.snn.functional import if_step
from bsnn_bindsnet.snn.neurons import NeuronModel, get_neuron

__all__ = ["RECTANGLE", "SURROGATE_SCALE", "TRIANGLE", "Surrogate", "if_sequence", "spike",
           "surrogate_grad"]

SURROGATE_SCALE = 0.3


@dataclass(frozen=True)
class Surrogate:
    r"""The derivative used backward for :math:`H(x)`, :math:`x = v/\theta - 1`.

    Args:
        shape: ``"triangle"`` (:math:`h \max(0, 1 - 2|x|/w)`) or ``"rectangle"``
            (:math:`h [|x| < w/2]`).
        height: :math:`h`.
        width: :math:`w`, the support in units of :math:`\theta`.
        per_v: ``height`` is :math:`\partial o/\partial v` (XNOR-BSNN's convention) rather
            than :math:`\partial o/\partial x`.
    """

    shape: str
    height: float
    width: float
    per_v: bool = False

    def __post_init__(self) -> None:
        if self.shape not in ("triangle", "rectangle") or not self.width > 0:
            raise ValueError(f"a surrogate is a 'triangle' or 'rectangle' of width > 0, got "
                             f"{self.shape!r} of width {self.width}")

    def __call__(self, x: Tensor) -> Tensor:
        """The density at ``x`` (same shape)."""
        if self.shape == "triangle":
            return self.height * (1 - x.abs() * (2 / self.width)).clamp(min=0)
        return self.height * (x.abs() < self.width / 2).to(x.dtype)


TRIANGLE = Surrogate("triangle", SURROGATE_SCALE, 2.0, per_v=True)
RECTANGLE = Surrogate("rectangle", 1.0, 1.0)


def surrogate_grad(u: Tensor, theta: float) -> Tensor:
    r""":math:`0.3 \max(0, 1 - |(u - \theta)/\theta|)`: :data:`TRIANGLE`'s
    :math:`\partial o / \partial u`."""
    return TRIANGLE(u / theta - 1)


class _Spike(torch.autograd.Function):
    """``x >= 0`` forward; ``grad * scale * surrogate(x)`` backward."""

    @staticmethod
    def forward(ctx, x: Tensor, surrogate: Surrogate, scale: Tensor | float) -> Tensor:  # noqa: D102
        ctx.save_for_backward(x)
        ctx.surrogate, ctx.scale = surrogate, scale
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        (x,) = ctx.saved_tensors
        return grad * ctx.scale * ctx.surrogate(x), None, None


def spike(v: Tensor, theta: Tensor | float = 1.0, surrogate: Surrogate = TRIANGLE) -> Tensor:
    """Float spikes ``v >= theta`` with the ``surrogate`` gradient (into ``v``, and into
    ``theta`` when it is a tensor that requires one)."""
    if not isinstance(theta, Tensor) and theta <= 0:
        raise ValueError(f"theta must be > 0, got {theta}")
    scale = (theta.detach() if isinstance(theta, Tensor) else theta) if surrogate.per_v else 1.0
    return _Spike.apply(v / theta - 1.0, surrogate, scale)


def if_sequence(current: Tensor, theta: Tensor | float = 1.0, v0: Tensor | float = 0.0,
                reset: str | NeuronModel = "subtract",
                surrogate: Surrogate = TRIANGLE) -> Tensor:
    r"""IF neurons over ``[T, B, ...]`` input currents, from :math:`u_0 =` ``v0``:
    :func:`bsnn_bindsnet.snn.functional.if_step` (the kernel of the BindsNET nodes) with
    :func:`spike` as the spike function, so :math:`u_t = u_{t-1} + x_t`, :math:`o_t = H(u_t -
    \theta)` and, with the default soft reset, :math:`u_t \mathrel{-}= \theta o_t`; the
    gradient flows through the reset too. ``reset`` is a name of
    :data:`bsnn_bindsnet.snn.neurons.NEURONS` or a model. Returns the ``[T, B, ...]`` spikes."""
    reset_fn = get_neuron(reset)
    u = torch.zeros_like(current[0]) + v0
    out = []
    for x in current:
        o, u = if_step(u, x, theta, reset_fn, lambda v, th: spike(v, th, surrogate))
        out.append(o)
    return torch.stack(out)
