r"""BindsNET node layers for converted binary SNNs.

Integrate-and-fire neurons without leak, decay or refractory period, one per ReLU of the ANN:
:class:`SubtractiveIFNodes` (reset by subtraction, SIF) and :class:`ResetIFNodes` (reset to
zero, RIF); and :class:`ReadoutNodes`, the non-firing output layer whose membrane potential
accumulates the class scores.

Every layer follows the BindsNET ``Nodes`` contract: state lives in buffers, ``set_batch_size``
(re)allocates it as ``[B, *shape]`` on the device of the existing buffers, ``forward(x)`` sets the
bool spikes ``self.s`` and calls ``Nodes.forward`` last (spike traces, ``sum_input``), and
``reset_state_variables`` restores the initial potential.

Per step, ``v`` is updated in place (clone it to keep a snapshot); ``s`` is a new tensor every
step, so a reference kept by a caller never changes afterwards.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

from bsnn_bindsnet.functional import to_conv_layout

with warnings.catch_warnings():  # importing bindsnet sets warnings.filterwarnings("ignore")
    from bindsnet.network.nodes import Nodes

__all__ = ["ReadoutNodes", "ResetIFNodes", "SubtractiveIFNodes"]

V_INIT = ("zero", "half")


def _threshold_buffer(thresh: float | Tensor, shape: Sequence[int]) -> Tensor:
    """Validate ``thresh`` against a layer ``shape`` and return it broadcastable to ``[B, *shape]``.

    A single value becomes a 0-d tensor; a 1-D tensor with one value per channel of a
    multi-dimensional layer (``[C]`` for ``(C, H, W)``) becomes ``[C, 1, 1]``; any other tensor
    must broadcast to ``shape`` without enlarging it.
    """
    shape = tuple(int(d) for d in shape)
    t = torch.as_tensor(thresh, dtype=torch.float32).detach().clone()
    if t.numel() == 1:
        t = t.reshape(())
    elif t.dim() == 1 and len(shape) > 1:
        if t.shape[0] != shape[0]:
            raise ValueError(
                f"thresh of shape {tuple(t.shape)} for a layer of shape {shape}: a 1-D thresh "
                f"must hold one value per channel, i.e. have shape ({shape[0]},)"
            )
        t = t.reshape(-1, *([1] * (len(shape) - 1)))
    else:
        try:
            fits = t.dim() <= len(shape) and torch.broadcast_shapes(t.shape, shape) == shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"thresh of shape {tuple(t.shape)} does not broadcast against the layer shape "
                f"{shape}: expected a scalar, one value per channel ({shape[0]},), or a shape "
                f"broadcastable to {shape}"
            )
    if not bool(torch.isfinite(t).all()) or bool((t <= 0).any()):
        raise ValueError(
            f"thresh must be finite and > 0 everywhere, got min {t.min().item()} and "
            f"max {t.max().item()}"
        )
    return t


class _IFNodes(Nodes):
    """Shared state handling of the IF layers; subclasses implement ``forward``."""

    def __init__(
        self,
        n: int | None = None,
        shape: Sequence[int] | None = None,
        *,
        thresh: float | Tensor = 1.0,
        v_init: str = "zero",
        traces: bool = False,
        sum_input: bool = False,
    ) -> None:
        super().__init__(n=n, shape=shape, traces=traces, sum_input=sum_input)
        if v_init not in V_INIT:
            raise ValueError(f"v_init must be one of {V_INIT}, got {v_init!r}")
        self.v_init = v_init
        self.register_buffer("thresh", _threshold_buffer(thresh, self.shape))
        self.register_buffer("v", torch.FloatTensor())

    def _v0(self) -> Tensor:
        """v(0) in the shape of ``thresh`` (``[C, 1, 1]``, ``[*shape]`` or ``[]``)."""
        return 0.5 * self.thresh if self.v_init == "half" else torch.zeros_like(self.thresh)

    def _init_v(self) -> None:
        self.v.copy_(self._v0())  # broadcasts to [B, *shape]

    def set_batch_size(self, batch_size: int) -> None:
        """Allocate ``s`` (in ``Nodes``) and ``v`` as ``[batch_size, *shape]``; initialise ``v``."""
        super().set_batch_size(batch_size)
        v = self.v
        self.v = to_conv_layout(torch.empty(batch_size, *self.shape, device=v.device,
                                            dtype=v.dtype))
        self._init_v()

    def reset_state_variables(self) -> None:
        """Zero spikes (and traces / sums) and set ``v`` back to its initial value."""
        super().reset_state_variables()
        self._init_v()

    def reset_rows(self, rows: Tensor) -> None:
        """Start the samples ``rows`` (bool ``[B]``) afresh: no spike, ``v = v(0)``; the other
        samples keep their state (early exit refills finished rows with new samples)."""
        self.s[rows] = False
        k = int(rows.sum())
        self.v[rows] = torch.broadcast_to(self._v0(), (k, *self.shape)).to(self.v.dtype)

    def extra_repr(self) -> str:
        th = tuple(self.thresh.shape)
        return f"shape={tuple(self.shape)}, thresh shape={th}, v_init={self.v_init!r}"


class SubtractiveIFNodes(_IFNodes):
    r"""Integrate-and-fire nodes with reset by subtraction (SIF), the conversion default.

    .. math::
        v_t = v_{t-1} + x_t,\quad s_t = [v_t \ge \theta],\quad v_t \leftarrow v_t - \theta s_t

    With a constant input :math:`0 \le x \le \theta` the layer fires
    :math:`\lfloor (v_0 + N x)/\theta \rfloor` spikes in :math:`N` steps, so its rate approximates
    :math:`\operatorname{clip}(x/\theta, 0, 1)`, the ReLU of the ANN scaled by :math:`1/\theta`.
    The step is the in-place form of :func:`bsnn_bindsnet.functional.if_step_subtract`.

    Args:
        n: Number of neurons (or pass ``shape``).
        shape: Layer shape, e.g. ``(C, H, W)`` for a convolutional layer.
        thresh: Firing threshold :math:`\theta > 0`, in units of the ANN pre-activation: a
            scalar, one value per channel (``[C]``, stored as ``[C, 1, 1]``; ``[n]`` for a 1-D
            layer), or a tensor broadcastable to ``shape``.
        v_init: Initial potential :math:`v_0`: ``"zero"`` or ``"half"`` (:math:`\theta/2`, which
            rounds the rate to the nearest instead of down); applied by ``set_batch_size`` and
            every ``reset_state_variables``.
        traces: Keep BindsNET spike traces ``x``.
        sum_input: Keep the running input sum ``summed``.

    Raises:
        ValueError: ``thresh`` not finite and positive or not broadcastable to ``shape``, or an
            unknown ``v_init``.

    Shape:
        ``forward(x)``: ``x`` is ``[B, *shape]``; spikes ``self.s`` are bool ``[B, *shape]``.
    """

    def forward(self, x: Tensor) -> None:
        v = self.v
        v.add_(x)
        s = v >= self.thresh
        v.addcmul_(s, self.thresh, value=-1.0)  # v - theta * s, fused
        self.s = s
        super().forward(x)


class ResetIFNodes(_IFNodes):
    r"""Integrate-and-fire nodes with reset to zero (RIF).

    .. math::
        v_t = v_{t-1} + x_t,\quad s_t = [v_t \ge \theta],\quad v_t \leftarrow (1 - s_t)\, v_t

    The charge above :math:`\theta` is discarded at every spike, so the rate undershoots
    :math:`x/\theta`; kept for the SIF-vs-RIF comparison. The step is the in-place form of
    :func:`bsnn_bindsnet.functional.if_step_zero`. Arguments, errors and shapes as in
    :class:`SubtractiveIFNodes`.
    """

    def forward(self, x: Tensor) -> None:
        v = self.v
        v.add_(x)
        s = v >= self.thresh
        v.mul_(~s)
        self.s = s
        super().forward(x)


class ReadoutNodes(Nodes):
    r"""Non-firing readout: the membrane potential integrates the input current.

    .. math:: v_t = v_{t-1} + x_t,\quad s_t = 0

    After :math:`T` steps, ``v`` is the accumulated class score: callers take the prediction
    as ``v.argmax(1)`` and the early-exit confidence as ``v.max(1).values``.

    Args:
        n: Number of neurons (or pass ``shape``).
        shape: Layer shape.
        traces: Keep BindsNET spike traces (always zero here).
        sum_input: Keep the running input sum ``summed`` (equal to ``v``).

    Raises:
        ValueError: in ``forward``, if ``Network.run`` asked to clamp (force) spikes here.

    Shape:
        ``forward(x)``: ``x`` is ``[B, *shape]``; ``self.v`` is ``[B, *shape]``; ``self.s`` is an
        all-False bool ``[B, *shape]``.
    """

    def __init__(
        self,
        n: int | None = None,
        shape: Sequence[int] | None = None,
        *,
        traces: bool = False,
        sum_input: bool = False,
    ) -> None:
        super().__init__(n=n, shape=shape, traces=traces, sum_input=sum_input)
        self.register_buffer("v", torch.FloatTensor())

    def forward(self, x: Tensor) -> None:
        if self._clamp is not None:
            raise ValueError("ReadoutNodes never fire: clamping them to spike is not supported")
        self.v.add_(x)
        super().forward(x)

    def set_batch_size(self, batch_size: int) -> None:
        """Allocate ``s`` (all False) and ``v`` (zeros) as ``[batch_size, *shape]``."""
        super().set_batch_size(batch_size)
        v = self.v
        self.v = torch.zeros(batch_size, *self.shape, device=v.device, dtype=v.dtype)

    def reset_state_variables(self) -> None:
        """Zero ``s`` (and traces / sums) and ``v``."""
        super().reset_state_variables()
        self.v.zero_()

    def reset_rows(self, rows: Tensor) -> None:
        """Zero ``v`` of the samples ``rows`` (bool ``[B]``) only."""
        self.s[rows] = False
        self.v[rows] = 0.0
