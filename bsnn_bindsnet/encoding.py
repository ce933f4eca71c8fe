"""Input encoders: ``[B, *shape]`` analog input -> ``[T, B, *shape]`` network input."""

from __future__ import annotations

import torch
from torch import Tensor


def constant_current(x: Tensor, timesteps: int) -> Tensor:
    """The analog input as a constant current every step (the conversion route's coding).

    Returns a fresh ``[T, B, *shape]`` tensor: BindsNET's ``Input`` layer keeps a reference to
    the tensor it is given and zeroes it on reset, so it must never be the caller's data.
    """
    return x.unsqueeze(0).expand(timesteps, *x.shape).clone()


def poisson_signed(x: Tensor, timesteps: int, *,
                   generator: torch.Generator | None = None) -> Tensor:
    r"""Rate coding of a normalized (signed) input, unbiased in expectation.

    Each sample is scaled by :math:`c = \max|x|`; every step a pixel emits
    :math:`c\,\operatorname{sign}(x)` with probability :math:`|x|/c`, else 0, so the mean
    input current equals :math:`x`.
    """
    c = x.abs().flatten(1).amax(1).clamp(min=1e-12).view(-1, *([1] * (x.dim() - 1)))
    rates = (x.abs() / c).unsqueeze(0).expand(timesteps, *x.shape)
    spikes = torch.bernoulli(rates, generator=generator)
    return spikes * (torch.sign(x) * c).unsqueeze(0)


def encode(x: Tensor, timesteps: int, *, encoding: str = "current",
           generator: torch.Generator | None = None) -> Tensor:
    """Dispatch to :func:`constant_current` or :func:`poisson_signed`."""
    if encoding == "current":
        return constant_current(x, timesteps)
    if encoding == "poisson":
        return poisson_signed(x, timesteps, generator=generator)
    raise ValueError(f"unknown encoding {encoding!r}; expected 'current' or 'poisson'")
