r"""Quantization clip-floor-shift (QCFS) activation: ANNs built to be converted at low latency.

Bu et al. (ICLR 2022) replace each ReLU of the ANN by

.. math::
    h(z) = \frac{\lambda}{L}\,\operatorname{clip}\!\left(\left\lfloor \frac{z L}{\lambda}
           + \varphi \right\rfloor, 0, L\right)

with :math:`L` quantization levels, a trainable threshold :math:`\lambda` per layer and the shift
:math:`\varphi = 1/2`. An integrate-and-fire neuron with threshold :math:`\theta = \lambda`,
reset by subtraction and :math:`v(0) = \varphi\,\theta` that receives a constant current
:math:`z` fires exactly :math:`L\,h(z)/\lambda` times in :math:`T = L` steps ("the expected
conversion error is zero", their Theorem 2), so the converter maps this activation to an IF
layer with :math:`\theta = \lambda` and needs no calibration statistics
(:mod:`bsnn_bindsnet.conversion.convert`).

Gradients (as in the QCFS code): the floor passes the gradient straight through, so inside
:math:`(0, \lambda)` the activation's gradient is 1 and the threshold's is
:math:`h(z)/\lambda - z/\lambda`; above :math:`\lambda` the gradient reaches only
:math:`\lambda` (through the clip), below 0 nothing.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["QCFS", "floor_ste", "qcfs"]


class _FloorSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # noqa: D102
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # noqa: D102
        return grad


@torch.fx.wrap
def floor_ste(x: Tensor) -> Tensor:
    """``floor(x)`` forward, identity backward (straight-through estimator)."""
    return _FloorSTE.apply(x)


def qcfs(z: Tensor, lam: Tensor, levels: int, shift: float = 0.5) -> Tensor:
    r"""The QCFS activation :math:`\frac{\lambda}{L}\operatorname{clip}(\lfloor zL/\lambda +
    \varphi\rfloor, 0, L)` (pure; differentiable in ``z`` and ``lam``)."""
    y = torch.clamp(z / lam, 0.0, 1.0)
    return floor_ste(y * levels + shift) / levels * lam


class QCFS(nn.Module):
    r"""Drop-in replacement for ``nn.ReLU`` with :math:`L` levels and a trainable :math:`\lambda`.

    Args:
        levels: :math:`L \ge 1`: the number of nonzero output levels (and the latency at which
            the converted IF layer reproduces the activation).
        lam: Initial threshold :math:`\lambda > 0` (QCFS initializes it at 8; models fine-tuned
            from a ReLU network start from a percentile of the ReLU's activations, see
            :func:`bsnn_bindsnet.conversion.normalize.activation_scales`).
        shift: :math:`\varphi`, 1/2 in QCFS; the converted layer starts at
            :math:`v(0) = \varphi\,\theta`.
    """

    def __init__(self, levels: int = 4, lam: float = 8.0, shift: float = 0.5) -> None:
        super().__init__()
        if int(levels) != levels or levels < 1:
            raise ValueError(f"levels must be an integer >= 1, got {levels!r}")
        if not lam > 0:
            raise ValueError(f"lam must be > 0, got {lam!r}")
        self.levels, self.shift = int(levels), float(shift)
        self.lam = nn.Parameter(torch.tensor(float(lam)))

    def forward(self, z: Tensor) -> Tensor:  # noqa: D102
        return qcfs(z, self.lam, self.levels, self.shift)

    def extra_repr(self) -> str:  # noqa: D102
        return f"levels={self.levels}, lam={float(self.lam.detach()):.4g}, shift={self.shift}"
