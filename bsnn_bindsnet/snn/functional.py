"""Pure, stateless math shared by the ANN, the spiking simulation and the in-memory model.

No ``nn.Module`` and no state lives here: every function maps tensors to tensors, except
:func:`if_step_`, the in-place form of the IF kernel that the BindsNET nodes run on their buffers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from bsnn_bindsnet.snn.neurons import MembraneReset, MembraneSubtract

ResetFn = Callable[[Tensor, Tensor, Tensor], Tensor]
SpikeFn = Callable[[Tensor, Tensor], Tensor]
_SUBTRACT, _ZERO = MembraneSubtract(), MembraneReset()


def sign_nonzero(x: Tensor) -> Tensor:
    """Two-valued sign: ``+1`` where ``x >= 0``, ``-1`` elsewhere (``torch.sign(0)`` is 0)."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def scale_per_channel(w: Tensor, per_channel: bool = True) -> Tensor:
    r"""XNOR-Net scaling factor :math:`\alpha = \operatorname{mean}|W|`.

    Args:
        w: Weight ``[out, in]`` or ``[out, in, kh, kw]``.
        per_channel: One :math:`\alpha` per output channel (mean over ``in * kh * kw``) when
            true, else one for the whole layer.

    Returns:
        ``[out, 1, ...]`` (broadcastable against ``w``) or a 0-d tensor.
    """
    if per_channel:
        return w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)
    return w.abs().mean()


def heaviside(v: Tensor, thresh: Tensor | float) -> Tensor:
    r"""Bool spikes :math:`s = [v \ge \theta]`, the spike function of the converted network."""
    return v >= thresh


def if_step(v: Tensor, x: Tensor, thresh: Tensor | float, reset: ResetFn = _SUBTRACT,
            spike: SpikeFn = heaviside) -> tuple[Tensor, Tensor]:
    r"""One integrate-and-fire step: the one IF kernel of the package.

    .. math::
        v_t = v_{t-1} + x_t,\quad s_t = [v_t \ge \theta],\quad v_t \leftarrow
        \operatorname{reset}(v_t, s_t, \theta)

    The BindsNET nodes run it in place (:func:`if_step_`); the surrogate-gradient route runs it
    with a ``spike`` function whose backward is the surrogate
    (:func:`bsnn_bindsnet.direct.surrogate.if_sequence`).

    Args:
        v: Membrane potential before the step (not modified).
        x: Input current of this step.
        thresh: Threshold :math:`\theta`: a number, a scalar tensor or one broadcastable to
            ``v`` (``[C, 1, 1]`` against ``[B, C, H, W]``; ``[n]`` against ``[B, n]``).
        reset: A reset strategy ``(v, s, thresh) -> v``
            (:data:`bsnn_bindsnet.snn.neurons.RESETS`); reset by subtraction by default.
        spike: ``(v, thresh) -> s``; :func:`heaviside` (bool spikes) by default.

    Returns:
        ``(s, v)``: spikes and the membrane potential after the reset, both shaped as ``v + x``.
    """
    v = v + x
    s = spike(v, thresh)
    return s, reset(v, s, thresh)


def if_step_(v: Tensor, x: Tensor, thresh: Tensor, reset: ResetFn = _SUBTRACT) -> Tensor:
    """In-place form of :func:`if_step` with bool spikes, for a state buffer: ``v`` is updated
    in place and the new spikes are returned. Uses ``reset.reset_`` when the strategy has one
    (:class:`~bsnn_bindsnet.snn.neurons.ResetStrategy`), else copies ``reset(v, s, thresh)``."""
    v.add_(x)
    s = v >= thresh
    reset_ = getattr(reset, "reset_", None)
    if reset_ is not None:
        reset_(v, s, thresh)
    else:
        v.copy_(reset(v, s, thresh))
    return s


def if_step_subtract(v: Tensor, x: Tensor, thresh: Tensor) -> tuple[Tensor, Tensor]:
    r"""One integrate-and-fire step with reset by subtraction (SIF).

    .. math::
        v_t = v_{t-1} + x_t,\quad s_t = [v_t \ge \theta],\quad v_t \leftarrow v_t - \theta s_t

    The residue above :math:`\theta` is kept, so over :math:`N` steps of a constant input
    :math:`0 \le x \le \theta` the neuron fires exactly :math:`\lfloor (v_0 + N x)/\theta \rfloor`
    times. It fires at most once per step: for :math:`x > \theta` the residue keeps growing.
    :func:`if_step` with :class:`~bsnn_bindsnet.snn.neurons.MembraneSubtract`.
    """
    return if_step(v, x, thresh, _SUBTRACT)


def if_step_zero(v: Tensor, x: Tensor, thresh: Tensor) -> tuple[Tensor, Tensor]:
    r"""One integrate-and-fire step with reset to zero (RIF).

    .. math::
        v_t = v_{t-1} + x_t,\quad s_t = [v_t \ge \theta],\quad v_t \leftarrow (1 - s_t)\, v_t

    The residue above :math:`\theta` is lost at every spike, so the rate undershoots
    :math:`x/\theta` (constant :math:`x`: one spike every :math:`\lceil \theta / x \rceil` steps).
    :func:`if_step` with :class:`~bsnn_bindsnet.snn.neurons.MembraneReset`.
    """
    return if_step(v, x, thresh, _ZERO)


def to_conv_layout(t: Tensor) -> Tensor:
    """A 4-D tensor in channels-last memory order (other tensors unchanged).

    Convolutions on small images run about twice as fast on the CPU with channels-last inputs
    and weights (oneDNN), and element-wise ops keep the layout, so the simulator keeps membrane
    potentials, spikes, conv weights and input currents in it. Values and shapes are unchanged.
    """
    if t.dim() != 4:
        return t
    t = t.contiguous(memory_format=torch.channels_last)
    _, c, h, w = t.shape
    # With one channel (or a 1x1 image) NCHW and NHWC strides are both "contiguous" and
    # PyTorch takes the tensor as NCHW: oneDNN then runs a first-layer convolution 5-10x
    # slower and returns NCHW. The same memory with the canonical NHWC strides is unambiguous.
    want = (c * h * w, 1, w * c, c)
    return t if t.stride() == want else t.as_strided(t.shape, want)
