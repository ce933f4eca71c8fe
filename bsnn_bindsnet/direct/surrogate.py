r"""Spike function with the XNOR-BSNN surrogate gradient, and IF neurons unrolled over time.

Forward: :math:`o = H(u - \theta)` (a spike when :math:`u \ge \theta`, as the BindsNET nodes).
Backward: :math:`\partial o / \partial u = 0.3 \max(0, 1 - |(u - \theta)/\theta|)`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bsnn_bindsnet.functional import if_step
from bsnn_bindsnet.neurons import ResetStrategy, get_reset

SURROGATE_SCALE = 0.3


def surrogate_grad(u: Tensor, theta: float) -> Tensor:
    r""":math:`0.3 \max(0, 1 - |(u - \theta)/\theta|)`."""
    return SURROGATE_SCALE * (1 - ((u - theta) / theta).abs()).clamp(min=0)


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: Tensor, theta: float) -> Tensor:
        ctx.save_for_backward(u)
        ctx.theta = theta
        return (u >= theta).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (u,) = ctx.saved_tensors
        return grad * surrogate_grad(u, ctx.theta), None


def spike(u: Tensor, theta: float = 1.0) -> Tensor:
    """Binary spikes ``u >= theta`` with the surrogate gradient."""
    if theta <= 0:
        raise ValueError(f"theta must be > 0, got {theta}")
    return _Spike.apply(u, theta)


def if_sequence(current: Tensor, theta: float = 1.0, v0: float = 0.0,
                reset: str | ResetStrategy = "subtract") -> Tensor:
    r"""IF neurons over ``[T, B, ...]`` input currents, from :math:`u_0 =` ``v0``:
    :func:`bsnn_bindsnet.functional.if_step` (the kernel of the BindsNET nodes) with
    :func:`spike` as the spike function, so :math:`u_t = u_{t-1} + x_t`, :math:`o_t = H(u_t -
    \theta)` and, with the default soft reset, :math:`u_t \mathrel{-}= \theta o_t`; the
    gradient flows through the reset too. ``reset`` is a name of
    :data:`bsnn_bindsnet.neurons.RESETS` or a strategy. Returns the ``[T, B, ...]`` spikes."""
    reset_fn = get_reset(reset)
    u = torch.full_like(current[0], v0)
    out = []
    for x in current:
        o, u = if_step(u, x, theta, reset_fn, spike)
        out.append(o)
    return torch.stack(out)
