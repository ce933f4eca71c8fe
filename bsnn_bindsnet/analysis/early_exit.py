r"""Early exit on the readout's confidence (Lu & Sengupta 2020, Sec. 5.4).

Each sample stops at the first step whose confidence (the readout's maximum membrane
potential) exceeds a threshold, and at the cap ``T_cap`` (default: the traces' ``T``) if it
does not by then; its prediction is the readout's argmax at that step. These functions
evaluate any threshold offline from the per-sample traces of
``simulate(..., per_sample=True)`` (``[T, N]`` tensors, time first).

With the cap at the fixed latency ``T_ref`` it is compared with, an early-exit policy can
never run longer than that fixed latency, and the threshold ``+inf`` *is* the fixed-latency
run (every sample stops at ``T_ref`` with its prediction there): :func:`choose_exit` always
has that feasible candidate, and reports it when no finite threshold saves anything.
"""

from __future__ import annotations

import math
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
        exit_steps: ``[N]`` exit timestep per sample (``T_cap`` where not confident by then).
        predictions: ``[N]`` prediction at the exit step.
    """

    threshold: float
    accuracy: float
    mean_exit: float
    exit_steps: Tensor
    predictions: Tensor


def _cap(confidence: Tensor, t_cap: int | None) -> int:
    steps = confidence.shape[0]
    if t_cap is None:
        return steps
    if not 1 <= t_cap <= steps:
        raise ValueError(f"t_cap must lie in [1, {steps}], got {t_cap}")
    return int(t_cap)


def exit_steps(confidence: Tensor, threshold: float, t_cap: int | None = None) -> Tensor:
    """First 1-based step with ``confidence > threshold``, or ``t_cap`` if none comes before
    it (default: ``T``): ``[T, N] -> [N]``."""
    cap = _cap(confidence, t_cap)
    crossed = confidence[:cap] > threshold
    first = crossed.to(torch.uint8).argmax(0) + 1  # argmax returns the first maximum
    return torch.where(crossed.any(0), first, torch.full_like(first, cap))


def early_exit(step_predictions: Tensor, step_confidence: Tensor, labels: Tensor,
               threshold: float, t_cap: int | None = None) -> EarlyExit:
    """Evaluate one threshold on per-sample traces (``[T, N]``, ``[T, N]``, ``[N]``), every
    sample stopping by ``t_cap`` (default: ``T``)."""
    steps = exit_steps(step_confidence, threshold, t_cap)
    preds = step_predictions.gather(0, (steps - 1).unsqueeze(0)).squeeze(0)
    return EarlyExit(float(threshold), float((preds == labels).double().mean()),
                     float(steps.double().mean()), steps, preds)


def sweep(step_predictions: Tensor, step_confidence: Tensor, labels: Tensor,
          thresholds: Sequence[float], t_cap: int | None = None) -> list[EarlyExit]:
    """:func:`early_exit` for every threshold, all with the same cap."""
    return [early_exit(step_predictions, step_confidence, labels, t, t_cap) for t in thresholds]


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


def timestep_saving(mean_exit: float, t_ref: int) -> float:
    """Fraction of the fixed latency ``t_ref`` saved by a mean exit step: ``1 - mean/t_ref``,
    floored at 0 (a policy no faster than ``t_ref`` saves nothing; it never "saves" less)."""
    return max(0.0, 1.0 - mean_exit / t_ref)


def choose_exit(step_predictions: Tensor, step_confidence: Tensor, labels: Tensor, t_ref: int,
                thresholds: Sequence[float], tolerance: float) -> tuple[EarlyExit, list[EarlyExit]]:
    """Choose the early-exit threshold against the fixed latency ``t_ref``.

    Every threshold of ``thresholds`` plus ``+inf`` is evaluated with the cap at ``t_ref``
    (``+inf`` reproduces the fixed-latency run exactly); the chosen one has the lowest mean
    exit step among those whose accuracy is at least the fixed-latency accuracy minus
    ``tolerance`` (ties: the lower threshold). When that mean exit is not below ``t_ref``,
    the choice is ``+inf``: no saving, the fixed latency itself.

    Returns:
        ``(chosen, runs)``: ``runs`` holds every evaluated threshold, ``+inf`` last.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    grid = sorted({float(t) for t in thresholds if t != math.inf})
    runs = sweep(step_predictions, step_confidence, labels, [*grid, math.inf], t_cap=t_ref)
    fixed = runs[-1]
    chosen = select_threshold(runs, fixed.accuracy - tolerance)
    assert chosen is not None  # the fixed latency itself always qualifies
    return (chosen if chosen.mean_exit < t_ref else fixed), runs
