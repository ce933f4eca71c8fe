r"""A QCFS network run as the B-SNN it converts to, in PyTorch, with surrogate gradients.

:func:`unroll` copies a constrained ANN whose activations are
:class:`~bsnn_bindsnet.ann.qcfs.QCFS` and replaces each by :class:`SpikingQCFS`: integrate-and-fire
neurons with :math:`\theta = \lambda` (the same trainable parameter), reset by subtraction and
:math:`v(0) = \varphi\theta`, that emit spikes of size :math:`\lambda`. The input is the analog
image at every step (constant-current coding) and the readout integrates its current, so the
forward pass computes exactly what the converted BindsNET network computes in one-step mode
(:func:`bsnn_bindsnet.conversion.convert.ann_to_bsnn` gives layer ``l`` the threshold
:math:`\lambda_l / \lambda_{l-1}` on unit spikes: the same comparisons up to float rounding).

The unrolled network shares the ANN's parameters. Fine-tuning it for a few epochs at the
target latency :math:`T` trains :math:`\lambda` and the weights against the error that is left
at small :math:`T` (the uneven arrival of spikes, which QCFS bounds only in expectation), in
the spirit of the hybrid conversion + spike-based training of Rathi et al. (ICLR 2020). The
binary layers keep their STE and :math:`\alpha`; only the activations change. The trained ANN
then converts with no calibration.

Time is folded into the batch (``[T * B, ...]``) for the synaptic layers, so a step costs one
batched ANN layer; only the neurons loop over :math:`T`, in the loop and with the surrogate
gradient of the direct route (:func:`bsnn_bindsnet.direct.surrogate.if_sequence`,
:data:`~bsnn_bindsnet.direct.surrogate.RECTANGLE`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from bsnn_bindsnet.ann.qcfs import QCFS
from bsnn_bindsnet.direct.surrogate import RECTANGLE, if_sequence

__all__ = ["SpikingQCFS", "UnrolledSNN", "unroll"]

class SpikingQCFS(nn.Module):
    r"""The IF layer a :class:`QCFS` converts to, over ``T`` steps folded into the batch.

    Input ``[T * B, ...]`` currents, output ``[T * B, ...]`` spikes times :math:`\lambda`. The
    neuron: :math:`v_t = v_{t-1} + x_t`, :math:`s_t = [v_t \ge \lambda]`,
    :math:`v_t \mathrel{-}= \lambda s_t`, :math:`v_0 = \varphi\lambda`.

    Args:
        qcfs: The activation it replaces; its ``lam`` parameter is shared, not copied.
        timesteps: :math:`T`.
    """

    def __init__(self, qcfs: QCFS, timesteps: int) -> None:
        super().__init__()
        self.lam, self.shift = qcfs.lam, qcfs.shift
        self.timesteps = int(timesteps)

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        lam = self.lam
        steps = x.unflatten(0, (self.timesteps, -1))
        # the package's one loop over T and IF kernel; reset by subtraction, rectangular
        # surrogate in v / lambda - 1 (lambda learns through it too)
        spikes = if_sequence(steps, lam, self.shift * lam, "subtract", RECTANGLE)
        return (spikes * lam).flatten(0, 1)


class UnrolledSNN(nn.Module):
    """``model`` with its QCFS activations spiking, over ``T`` steps.

    ``forward(x [B, ...])`` returns the readout's mean current per step ``[B, classes]``: the
    BindsNET readout's membrane potential after ``T`` steps divided by ``T`` (same argmax).

    Args:
        body: The model with :class:`SpikingQCFS` activations (see :func:`unroll`).
        timesteps: One ``T``, or several: in training mode each forward pass draws one of
            them (torch's global RNG), so one set of weights learns all of them; in eval mode
            the first is used.
    """

    def __init__(self, body: nn.Module, timesteps: int | Sequence[int]) -> None:
        super().__init__()
        choices = (timesteps,) if isinstance(timesteps, int) else tuple(timesteps)
        if not choices or any(int(t) != t or t < 1 for t in choices):
            raise ValueError(f"timesteps must be integers >= 1, got {timesteps!r}")
        self.choices = tuple(int(t) for t in choices)
        self.body = body

    @property
    def timesteps(self) -> int:
        """The ``T`` of evaluation (the first choice)."""
        return self.choices[0]

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        t = self.choices[0]
        if self.training and len(self.choices) > 1:
            t = self.choices[int(torch.randint(len(self.choices), ()))]
        for m in self.body.modules():
            if isinstance(m, SpikingQCFS):
                m.timesteps = t
        out = self.body(x.unsqueeze(0).expand(t, *x.shape).flatten(0, 1))
        return out.unflatten(0, (t, -1)).mean(0)


def _spiking_copy(module: nn.Module, timesteps: int) -> nn.Module:
    """A new container tree over the same leaf modules, QCFS swapped for SpikingQCFS."""
    if isinstance(module, QCFS):
        return SpikingQCFS(module, timesteps)
    if isinstance(module, nn.Sequential):
        return nn.Sequential(OrderedDict((name, _spiking_copy(child, timesteps))
                                         for name, child in module.named_children()))
    return module


def unroll(model: nn.Module, timesteps: int | Sequence[int]) -> UnrolledSNN:
    r"""``model`` (an ``nn.Sequential``) as the B-SNN it converts to, sharing its parameters:
    training the result trains ``model`` (weights, :math:`\alpha`'s proxies and every
    :math:`\lambda`), so the trained ANN converts directly.

    Raises:
        ValueError: the model has no QCFS activation, or keeps a ReLU (which would pass
            analog values between layers and make the copy differ from its B-SNN), or pools
            where the converter inserts an extra IF layer (average after the activation, max
            before it): supported are avg-before (the default) and max-after.
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"expected an nn.Sequential, got {type(model).__name__}")
    modules = [(n, m) for n, m in model.named_modules() if not isinstance(m, nn.Sequential)]
    for i, (name, module) in enumerate(modules):
        if isinstance(module, nn.ReLU):
            raise ValueError(f"{name}: a ReLU in a network to unroll; expected every activation "
                             "to be QCFS (train with --activation qcfs)")
        after_act = i > 0 and isinstance(modules[i - 1][1], QCFS)
        if ((isinstance(module, nn.AvgPool2d) and after_act)
                or (isinstance(module, nn.MaxPool2d) and not after_act)):
            where = "after" if after_act else "before"
            raise ValueError(f"{name}: {type(module).__name__} {where} the activation makes the "
                             "converter insert an extra IF layer, which the unrolled SNN does "
                             "not model; expected avg-before or max-after pooling")
    if not any(isinstance(m, QCFS) for _, m in modules):
        raise ValueError("the model has no QCFS activation to unroll")
    first = timesteps if isinstance(timesteps, int) else tuple(timesteps)[0]
    return UnrolledSNN(_spiking_copy(model, first), timesteps)
