"""Input encoders: ``[B, *shape]`` analog input -> ``[T, B, *shape]`` network input."""

from __future__ import annotations

import torch
from torch import Tensor

from bsnn_bindsnet.snn.functional import to_conv_layout

ENCODINGS = ("current", "poisson", "poisson-intensity")


def _over_time(x: Tensor, timesteps: int) -> Tensor:
    """A fresh ``[T, *x.shape]`` tensor whose ``[t]`` slices are in ``x``'s conv layout."""
    if x.dim() != 4:
        return torch.empty((timesteps, *x.shape), dtype=x.dtype, device=x.device)
    b, c, h, w = x.shape  # [T, B, H, W, C] storage viewed as [T, B, C, H, W]
    return torch.empty((timesteps, b, h, w, c), dtype=x.dtype,
                       device=x.device).permute(0, 1, 4, 2, 3)


def constant_current(x: Tensor, timesteps: int) -> Tensor:
    """The analog input as a constant current every step (the conversion route's coding).

    Returns ``[T, B, *shape]``: a time-expanded view (stride 0 over T) of a private copy of
    ``x`` in the conv layout, so memory does not grow with T. The copy matters: BindsNET's
    ``Input`` layer keeps the tensor it is given and zeroes it on reset, which must never
    reach the caller's data.
    """
    private = to_conv_layout(x).clone(memory_format=torch.preserve_format)
    return private.unsqueeze(0).expand(timesteps, *x.shape)


def poisson_signed(x: Tensor, timesteps: int, *,
                   generator: torch.Generator | None = None) -> Tensor:
    r"""Rate coding of a normalized (signed) input, unbiased in expectation.

    Each sample is scaled by :math:`c = \max|x|`; every step a pixel emits
    :math:`c\,\operatorname{sign}(x)` with probability :math:`|x|/c`, else 0, so the mean
    input current equals :math:`x`.
    """
    c = x.abs().flatten(1).amax(1).clamp(min=1e-12).view(-1, *([1] * (x.dim() - 1)))
    rates = (x.abs() / c).unsqueeze(0).expand(timesteps, *x.shape)
    out = _over_time(x, timesteps)
    out.copy_(rates)
    torch.bernoulli(out, generator=generator, out=out)
    return out.mul_((torch.sign(x) * c).unsqueeze(0))


def poisson_intensity(x: Tensor, timesteps: int, *,
                      generator: torch.Generator | None = None) -> Tensor:
    r"""Classic rate coding of intensities: binary spikes, no negative ones.

    Each sample is rescaled to :math:`[0, 1]` by its own minimum and maximum,
    :math:`r = (x - \min x) / (\max x - \min x)` (a constant sample gives 0), and every step
    a pixel spikes (1) with probability :math:`r`. For images normalized by a dataset mean
    and std this recovers the raw intensity up to contrast (the background stays silent,
    where :func:`poisson_signed` makes it emit negative spikes).
    """
    flat = x.flatten(1)
    view = (-1, *([1] * (x.dim() - 1)))
    lo = flat.amin(1).view(view)
    span = (flat.amax(1).view(view) - lo).clamp(min=1e-12)
    out = _over_time(x, timesteps)
    out.copy_(((x - lo) / span).unsqueeze(0).expand(timesteps, *x.shape))
    return torch.bernoulli(out, generator=generator, out=out)


def encode(x: Tensor, timesteps: int, *, encoding: str = "current",
           generator: torch.Generator | None = None) -> Tensor:
    """Dispatch on ``encoding``, one of :data:`ENCODINGS`: :func:`constant_current`,
    :func:`poisson_signed` (``"poisson"``) or :func:`poisson_intensity`."""
    if encoding == "current":
        return constant_current(x, timesteps)
    if encoding == "poisson":
        return poisson_signed(x, timesteps, generator=generator)
    if encoding == "poisson-intensity":
        return poisson_intensity(x, timesteps, generator=generator)
    raise ValueError(f"unknown encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}")
