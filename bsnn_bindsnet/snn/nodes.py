r"""BindsNET node layers for converted binary SNNs.

Integrate-and-fire neurons without leak, decay or refractory period, one per ReLU of the ANN:
:class:`BinaryIFNodes`, parameterised by a reset and a v(0) strategy
(:mod:`bsnn_bindsnet.snn.neurons`), with its named forms :class:`SubtractiveIFNodes` (reset by
subtraction, SIF) and :class:`ResetIFNodes` (reset to zero, RIF); and :class:`ReadoutNodes`,
the non-firing output layer whose membrane potential accumulates the class scores.

Every layer follows the BindsNET ``Nodes`` contract: state lives in buffers, ``set_batch_size``
(re)allocates it as ``[B, *shape]`` on the device of the existing buffers, ``forward(x)`` sets the
bool spikes ``self.s`` and calls ``Nodes.forward`` last (spike traces, ``sum_input``), and
``reset_state_variables`` restores the initial potential.

Per step, ``v`` is updated in place (clone it to keep a snapshot); ``s`` is a new tensor every
step, so a reference kept by a caller never changes afterwards. Early exit edits single batch
rows through ``reset_rows(rows)`` and the tensors named in ``state_names``
(:func:`bsnn_bindsnet.simulation.simulate.reset_rows`, :func:`bsnn_bindsnet.simulation.simulate.select_rows`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from bsnn_bindsnet.snn.functional import if_step_, to_conv_layout
from bsnn_bindsnet.snn.fused_if import if_step_fused
from bsnn_bindsnet.snn.neurons import (RESETS, V_INITS, ResetStrategy, VInitStrategy,
                                   check_neuron_options, get_reset, get_v_init)

with warnings.catch_warnings():  # importing bindsnet sets warnings.filterwarnings("ignore")
    from bindsnet.network.nodes import Nodes

__all__ = ["BinaryIFNodes", "ReadoutNodes", "ResetIFNodes", "SubtractiveIFNodes", "if_nodes"]


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


class BinaryIFNodes(Nodes):
    r"""Integrate-and-fire nodes for converted binary networks, with a pluggable reset.

    .. math::
        v_t = v_{t-1} + x_t,\quad s_t = [v_t \ge \theta],\quad v_t \leftarrow
        \operatorname{reset}(v_t, s_t, \theta)

    No leak, decay or refractory period. The step is
    :func:`bsnn_bindsnet.snn.functional.if_step_`, the in-place form of the one IF kernel
    :func:`~bsnn_bindsnet.snn.functional.if_step`. With reset by subtraction and a constant input
    :math:`0 \le x \le \theta` the layer fires :math:`\lfloor (v_0 + N x)/\theta \rfloor` spikes
    in :math:`N` steps, so its rate approximates :math:`\operatorname{clip}(x/\theta, 0, 1)`,
    the ReLU of the ANN scaled by :math:`1/\theta`.

    Args:
        n: Number of neurons (or pass ``shape``).
        shape: Layer shape, e.g. ``(C, H, W)`` for a convolutional layer.
        thresh: Firing threshold :math:`\theta > 0`, in units of the ANN pre-activation: a
            scalar, one value per channel (``[C]``, stored as ``[C, 1, 1]``; ``[n]`` for a 1-D
            layer), or a tensor broadcastable to ``shape``.
        reset: A name registered in :data:`bsnn_bindsnet.snn.neurons.RESETS` (``"subtract"``,
            ``"zero"``, ...) or a reset strategy object.
        v_init: Initial potential :math:`v_0`: a name registered in
            :data:`bsnn_bindsnet.snn.neurons.V_INITS` (``"zero"``, or ``"half"`` for
            :math:`\theta/2`, which rounds the rate to the nearest instead of down) or a v-init
            strategy; applied by ``set_batch_size``, every ``reset_state_variables`` and
            ``reset_rows``.
        traces: Keep BindsNET spike traces ``x``.
        sum_input: Keep the running input sum ``summed``.

    Raises:
        ValueError: ``thresh`` not finite and positive or not broadcastable to ``shape``, or an
            unknown ``reset`` / ``v_init`` name.

    Shape:
        ``forward(x)``: ``x`` is ``[B, *shape]``; spikes ``self.s`` are bool ``[B, *shape]``.
    """

    #: The per-sample, batch-first state (``[B, *shape]``) that
    #: :func:`bsnn_bindsnet.simulation.simulate.select_rows` slices when early exit compacts the batch;
    #: a subclass with more state (an adaptive threshold, a synaptic current) extends it.
    state_names: tuple[str, ...] = ("s", "v", "x", "summed")

    def __init__(
        self,
        n: int | None = None,
        shape: Sequence[int] | None = None,
        *,
        thresh: float | Tensor = 1.0,
        reset: str | ResetStrategy = "subtract",
        v_init: str | VInitStrategy = "zero",
        traces: bool = False,
        sum_input: bool = False,
    ) -> None:
        super().__init__(n=n, shape=shape, traces=traces, sum_input=sum_input)
        if isinstance(v_init, str) and v_init not in V_INITS:
            raise ValueError(f"v_init must be one of {tuple(V_INITS)}, got {v_init!r}")
        if isinstance(reset, str) and reset not in RESETS:
            raise ValueError(f"reset must be one of {tuple(RESETS)}, got {reset!r}")
        self.reset, self.v_init = reset, v_init  # names (or strategies), as given
        self.reset_fn, self.v_init_fn = get_reset(reset), get_v_init(v_init)
        self.register_buffer("thresh", _threshold_buffer(thresh, self.shape))
        self.register_buffer("v", torch.FloatTensor())

    #: ``"auto"``: the one-pass C kernel where it runs (:mod:`bsnn_bindsnet.snn.fused_if`; the
    #: same floats), ``"eager"``: PyTorch's element-wise ops. ``last_kernel`` says which ran.
    kernel: str = "auto"
    last_kernel: str | None = None

    def forward(self, x: Tensor) -> None:
        s = if_step_fused(self.v, x, self.thresh, self.reset_fn) if self.kernel == "auto" else None
        ran = "eager" if s is None else "fused"
        self.last_kernel = ran if self.last_kernel in (None, ran) else "mixed"
        self.s = if_step_(self.v, x, self.thresh, self.reset_fn) if s is None else s
        super().forward(x)

    def v0(self) -> Tensor:
        """v(0) in the shape of ``thresh`` (``[C, 1, 1]``, ``[*shape]`` or ``[]``)."""
        return self.v_init_fn(self.thresh)

    def _init_v(self) -> None:
        self.v.copy_(self.v0())  # broadcasts to [B, *shape]

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
        idx = rows.nonzero().flatten()  # integer rows: ~7x faster than a bool mask here
        self.s[idx] = False
        self.v[idx] = torch.broadcast_to(self.v0(), (len(idx), *self.shape)).to(self.v.dtype)

    def extra_repr(self) -> str:
        th = tuple(self.thresh.shape)
        return (f"shape={tuple(self.shape)}, thresh shape={th}, reset={self.reset!r}, "
                f"v_init={self.v_init!r}")


class SubtractiveIFNodes(BinaryIFNodes):
    r"""Integrate-and-fire nodes with reset by subtraction (SIF), the conversion default:
    :class:`BinaryIFNodes` with ``reset="subtract"``
    (:class:`~bsnn_bindsnet.snn.neurons.MembraneSubtract`).

    .. math::
        v_t = v_{t-1} + x_t,\quad s_t = [v_t \ge \theta],\quad v_t \leftarrow v_t - \theta s_t
    """

    reset_strategy = RESETS["subtract"]

    def __init__(self, n: int | None = None, shape: Sequence[int] | None = None, *,
                 thresh: float | Tensor = 1.0, v_init: str | VInitStrategy = "zero",
                 traces: bool = False, sum_input: bool = False) -> None:
        super().__init__(n=n, shape=shape, thresh=thresh, reset=self.reset_strategy,
                         v_init=v_init, traces=traces, sum_input=sum_input)
        self.reset = "subtract"


class ResetIFNodes(BinaryIFNodes):
    r"""Integrate-and-fire nodes with reset to zero (RIF): :class:`BinaryIFNodes` with
    ``reset="zero"`` (:class:`~bsnn_bindsnet.snn.neurons.MembraneReset`).

    .. math::
        v_t = v_{t-1} + x_t,\quad s_t = [v_t \ge \theta],\quad v_t \leftarrow (1 - s_t)\, v_t

    The charge above :math:`\theta` is discarded at every spike, so the rate undershoots
    :math:`x/\theta`; kept for the SIF-vs-RIF comparison.
    """

    reset_strategy = RESETS["zero"]

    def __init__(self, n: int | None = None, shape: Sequence[int] | None = None, *,
                 thresh: float | Tensor = 1.0, v_init: str | VInitStrategy = "zero",
                 traces: bool = False, sum_input: bool = False) -> None:
        super().__init__(n=n, shape=shape, thresh=thresh, reset=self.reset_strategy,
                         v_init=v_init, traces=traces, sum_input=sum_input)
        self.reset = "zero"


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

    state_names: tuple[str, ...] = ("s", "v", "x", "summed")  # as BinaryIFNodes.state_names

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


def if_nodes(shape: Sequence[int], thresh: float | Tensor, reset: str = "subtract",
             v_init: str = "zero", **kwargs: Any):
    """The BindsNET node layer of one IF layer of a plan.

    The neuron model's own factory first (:meth:`~bsnn_bindsnet.snn.neurons.NeuronModel.make_nodes`);
    else ``"subtract"`` and ``"zero"`` give :class:`~bsnn_bindsnet.snn.nodes.SubtractiveIFNodes` and
    :class:`~bsnn_bindsnet.snn.nodes.ResetIFNodes` (their names are kept for saved code); any other
    registered reset gives :class:`~bsnn_bindsnet.snn.nodes.BinaryIFNodes` with that strategy.

    Args:
        shape: Layer shape, ``(n,)`` or ``(C, H, W)``.
        thresh: Threshold, as in :class:`~bsnn_bindsnet.snn.nodes.BinaryIFNodes`.
        reset: A key of :data:`~bsnn_bindsnet.snn.neurons.RESETS`.
        v_init: A key of :data:`~bsnn_bindsnet.snn.neurons.V_INITS`.
        **kwargs: ``traces`` / ``sum_input``, passed to the nodes.

    Raises:
        ValueError: ``reset`` or ``v_init`` not registered.
    """
    check_neuron_options(reset, v_init)
    own = RESETS[reset].make_nodes(shape, thresh, reset, v_init, **kwargs)
    if own is not None:  # a model with more state than v builds its own layer
        return own
    named = {"subtract": SubtractiveIFNodes, "zero": ResetIFNodes}
    if reset in named and RESETS[reset] is named[reset].reset_strategy:
        return named[reset](shape=shape, thresh=thresh, v_init=v_init, **kwargs)
    return BinaryIFNodes(shape=shape, thresh=thresh, reset=reset, v_init=v_init, **kwargs)
