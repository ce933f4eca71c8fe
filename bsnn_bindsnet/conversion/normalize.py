r"""Data-based threshold balancing: activation statistics of the ANN on calibration data.

For every ANN point that becomes a spiking layer, :math:`\lambda_l` is a percentile of the
layer's (non-negative) activations over a calibration set, computed exactly with a streaming
top-k. Two readings of "percentile of the activations" are supported (``statistic``):

- ``"all"`` (default, the authors' code): the percentile over every activation value of the
  layer, zeros included, over all calibration samples.
- ``"sample-max"`` (the paper's Fig. 7 wording): the percentile of the per-sample maximum
  activation.

``percentile=100`` is the max-normalization of Rueckauer et al. 2017. The model runs in
``eval()`` mode, so dropout does not inflate the statistics (the authors' code forgot this).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from bsnn_bindsnet.data.samples import batches, check_samples, num_samples

STATISTICS = ("all", "sample-max")


class StreamingPercentile:
    """Exact ``q``-th percentile (linear interpolation, as ``torch.quantile``) of ``total``
    values seen in chunks, keeping only the values that can still matter.

    Args:
        q: Percentile in ``[0, 100]``.
        total: How many values will be fed in all.
    """

    def __init__(self, q: float, total: int) -> None:
        if not 0.0 <= q <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {q}")
        if total < 1:
            raise ValueError(f"need at least one value, got total={total}")
        self.q, self.total, self.seen = q, total, 0
        self.pos = q / 100.0 * (total - 1)
        self.k = total - math.floor(self.pos)  # the ascending index floor(pos) is kept
        self.top = torch.empty(0)

    def update(self, values: Tensor) -> None:
        """Feed a chunk of values (any shape)."""
        values = values.detach().reshape(-1).float().cpu()
        if self.seen + values.numel() > self.total:
            raise ValueError(f"got {self.seen + values.numel()} values, more than the announced "
                             f"{self.total}")
        self.seen += values.numel()
        merged = torch.cat([self.top, values])
        self.top = merged.topk(min(self.k, merged.numel())).values

    def result(self) -> float:
        """The percentile; all ``total`` values must have been fed."""
        if self.seen != self.total:
            raise ValueError(f"got {self.seen} of the announced {self.total} values")
        lo, hi = math.floor(self.pos), math.ceil(self.pos)
        v_lo = self.top[self.total - 1 - lo].item()
        v_hi = self.top[self.total - 1 - hi].item()
        return v_lo + (v_hi - v_lo) * (self.pos - lo)


def activation_scales(model: nn.Module, points: Mapping[str, nn.Module],
                      calibration: Any, *, percentile: float = 99.7,
                      statistic: str = "all", batch_size: int = 256,
                      device: torch.device | str = "cpu") -> dict[str, float]:
    r""":math:`\lambda` of every named point: a percentile of ``relu(output)`` of that module.

    Args:
        model: The ANN (run in ``eval()`` mode; its training mode is restored afterwards).
        points: Name -> module whose output a spiking layer approximates.
        calibration: A ``Dataset`` of ``(x, y)`` or ``x``, a ``DataLoader``, a tensor
            ``[N, *input_shape]`` or a pair ``(X, Y)`` (:mod:`bsnn_bindsnet.data.samples`), used in
            order.
        percentile: ``100`` for the max.
        statistic: ``"all"`` or ``"sample-max"`` (see the module docstring).

    Returns:
        Name -> :math:`\lambda`, a positive float. A layer that never activates on the
        calibration data gets 1.0 (its neurons cannot fire in the ANN either) and a
        ``UserWarning`` naming it.

    Raises:
        ValueError: no point active on any calibration sample (all-zero or wrongly
            normalized data: every threshold would be a guess); a percentile of 0 on a layer
            that does activate (too low a percentile for sparse activations: the threshold
            would be 0).
        TypeError: ``calibration`` is none of the accepted forms.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; expected one of {STATISTICS}")
    check_samples(calibration, "calibration")
    n = num_samples(calibration)
    if n is None:
        raise ValueError("calibration: a DataLoader over a dataset without a length; expected "
                         "a sized data set (the percentile needs the number of values)")
    if n == 0:
        raise ValueError("the calibration set is empty; expected at least one sample")
    trackers: dict[str, StreamingPercentile] = {}
    handles = []

    def hook(name: str):
        def record(module: nn.Module, inputs, output: Tensor) -> None:
            act = output.detach().clamp(min=0).flatten(1)
            if not torch.isfinite(act).all():
                raise ValueError(f"non-finite activation at {name!r} during calibration; "
                                 "expected finite calibration data")
            if name not in trackers:
                per_sample = 1 if statistic == "sample-max" else act.shape[1]
                trackers[name] = StreamingPercentile(percentile, n * per_sample)
            trackers[name].update(act.amax(1) if statistic == "sample-max" else act)
        return record

    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        for name, module in points.items():
            handles.append(module.register_forward_hook(hook(name)))
        with torch.no_grad():
            for x, _ in batches(calibration, batch_size, "calibration"):
                if not torch.isfinite(x).all():
                    raise ValueError("the calibration data holds NaN/inf values; expected "
                                     "finite, normalized inputs")
                model(x.to(device))
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    unused = [name for name in points if name not in trackers]
    if unused:
        raise ValueError(f"{unused} never ran in the model's forward pass; expected every "
                         "point to be a module the model calls")
    dead = [name for name in points if float(trackers[name].top.max()) <= 0]
    if len(dead) == len(points):
        raise ValueError(f"no layer is active on the calibration data ({n} samples; every "
                         f"activation of {dead} is 0); expected training samples normalized "
                         "as for training")
    for name in dead:
        warnings.warn(f"{name} never activates on the calibration data ({n} samples); its "
                      "lambda falls back to 1.0", UserWarning, stacklevel=2)
    lambdas = {}
    for name, tracker in trackers.items():
        lam = tracker.result()
        if lam <= 0 and float(tracker.top.max()) > 0:
            raise ValueError(f"{name}: the {percentile}th percentile of its activations is 0 "
                             "(most values are zero); expected a higher percentile")
        lambdas[name] = lam if lam > 0 else 1.0
    return {name: lambdas[name] for name in points}
