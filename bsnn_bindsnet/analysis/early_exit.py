r"""Early exit on the readout's confidence (Lu & Sengupta 2020, Sec. 5.4).

Each sample stops at the first step whose confidence (the readout's maximum membrane
potential) exceeds a threshold, and at ``T_max`` if it never does; its prediction is the
readout's argmax at that step. These functions evaluate any threshold offline from the
per-sample traces of ``simulate(..., per_sample=True)`` (``[T, N]`` tensors, time first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class EarlyExit:
    """Outcome of one confidence threshold.

    Attributes:
        threshold: Confidence threshold.
        accuracy: Accuracy of the predictions at each sample's exit step.
        mean_exit: Mean exit timestep (1-based).
        exit_steps: ``[N]`` exit timestep per sample (``T`` where never confident).
        predictions: ``[N]`` prediction at the exit step.
    """

    threshold: float
    accuracy: float
    mean_exit: float
    exit_steps: Tensor
    predictions: Tensor


def exit_steps(confidence: Tensor, threshold: float) -> Tensor:
    """First 1-based step with ``confidence > threshold``, or ``T``: ``[T, N] -> [N]``."""
    crossed = confidence > threshold
    first = crossed.to(torch.uint8).argmax(0) + 1  # argmax returns the first maximum
    return torch.where(crossed.any(0), first, torch.full_like(first, confidence.shape[0]))


def early_exit(step_predictions: Tensor, step_confidence: Tensor, labels: Tensor,
               threshold: float) -> EarlyExit:
    """Evaluate one threshold on per-sample traces (``[T, N]``, ``[T, N]``, ``[N]``)."""
    steps = exit_steps(step_confidence, threshold)
    preds = step_predictions.gather(0, (steps - 1).unsqueeze(0)).squeeze(0)
    return EarlyExit(float(threshold), float((preds == labels).double().mean()),
                     float(steps.double().mean()), steps, preds)


def sweep(step_predictions: Tensor, step_confidence: Tensor, labels: Tensor,
          thresholds: Sequence[float]) -> list[EarlyExit]:
    """:func:`early_exit` for every threshold."""
    return [early_exit(step_predictions, step_confidence, labels, t) for t in thresholds]


def exit_histogram(steps: Tensor, timesteps: int) -> Tensor:
    """Number of samples exiting at each step ``1..T``: ``[N] -> [T]``."""
    return torch.bincount(steps - 1, minlength=timesteps)[:timesteps]


def rates_until_exit(sample_spikes: Mapping[str, Tensor], neurons: Mapping[str, int],
                     steps: Tensor) -> dict[str, float]:
    """Per layer: spikes per neuron counted up to each sample's exit step, averaged over
    samples (the IFR that :func:`~bsnn_bindsnet.analysis.ops.normalized_ops` takes).

    Args:
        sample_spikes: Layer -> ``[T, N]`` spikes per sample per step.
        neurons: Layer -> number of neurons.
        steps: ``[N]`` exit steps (1-based).
    """
    out = {}
    for name, spikes in sample_spikes.items():
        t = torch.arange(1, spikes.shape[0] + 1).unsqueeze(1)
        kept = spikes.double() * (t <= steps.unsqueeze(0))
        out[name] = float(kept.sum()) / (spikes.shape[1] * neurons[name])
    return out


def threshold_grid(confidence: Tensor, n: int = 64) -> list[float]:
    """``n`` candidate thresholds at evenly spaced quantiles of the per-step confidences
    (``[T, N]``), deduplicated and sorted; the first lies below every confidence (nobody waits)
    and the last at the maximum (only samples that never cross it run to ``T``)."""
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    values = confidence.flatten().double()
    if values.numel() > 1_000_000:  # torch.quantile's input limit; a strided subsample suffices
        values = values[:: values.numel() // 1_000_000 + 1]
    grid = torch.quantile(values, torch.linspace(0, 1, n, dtype=torch.float64))
    grid[0] = grid[0] - 1.0
    return sorted(set(grid.tolist()))


def select_threshold(results: Sequence[EarlyExit], min_accuracy: float) -> EarlyExit | None:
    """The threshold with the lowest mean exit step among those reaching ``min_accuracy``
    (ties: the lower threshold), or None when none does."""
    ok = [r for r in results if r.accuracy >= min_accuracy]
    if not ok:
        return None
    return min(ok, key=lambda r: (r.mean_exit, r.threshold))


def first_step_reaching(accuracy: Sequence[float], target: float) -> int | None:
    """First 1-based step whose accuracy is at least ``target``, or None."""
    return next((t for t, acc in enumerate(accuracy, start=1) if acc >= target), None)
