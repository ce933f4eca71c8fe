r"""Early-exit inference that really stops computing for samples that have exited.

Per step, each still-running sample whose readout confidence (max membrane potential) exceeds
the threshold exits with the readout's argmax. Its batch row is then reset and refilled with
the next sample (continuous batching); once no sample is left to refill with, the batch is
*compacted*: every layer's state tensors are sliced to the samples still running, so later
steps cost only what is left.
``Network.run(time=1)`` is called once per step (it never resets state between calls). The
per-sample state is edited only through :func:`bsnn_bindsnet.simulation.simulate.reset_rows` and
:func:`bsnn_bindsnet.simulation.simulate.select_rows` (which also updates the ``batch_size`` that BindsNET
would otherwise reallocate, and so reset, the state for). One-step mode and constant-current
input only. The offline analysis of recorded traces is :mod:`bsnn_bindsnet.analysis.early_exit`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bsnn_bindsnet.snn.plan import INPUT, READOUT
from bsnn_bindsnet.snn.functional import to_conv_layout
from bsnn_bindsnet.data.samples import check_samples, num_samples
from bsnn_bindsnet.simulation.simulate import (labelled_batches, reset_rows, select_rows,
                                               spike_counts)

__all__ = ["ExitRun", "simulate_early_exit"]


@dataclass
class ExitRun:
    """Outcome of :func:`simulate_early_exit`.

    Attributes:
        predictions: ``[N]`` argmax at each sample's exit step.
        labels: ``[N]``.
        exit_steps: ``[N]`` 1-based exit step (``max_timesteps`` if never confident).
        sample_spikes: Layer -> ``[N]`` spikes of each sample up to its exit.
        layer_neurons: Layer -> number of neurons.
        threshold, max_timesteps, seconds: The run's settings and wall-clock time.
    """

    predictions: Tensor
    labels: Tensor
    exit_steps: Tensor
    sample_spikes: dict[str, Tensor]
    layer_neurons: dict[str, int]
    threshold: float
    max_timesteps: int
    seconds: float

    @property
    def accuracy(self) -> float:
        """Accuracy at the exit steps."""
        return float((self.predictions == self.labels).double().mean())

    @property
    def mean_exit(self) -> float:
        """Mean exit step."""
        return float(self.exit_steps.double().mean())

    def firing_rates(self) -> dict[str, float]:
        """Per layer: spikes per neuron up to each sample's exit, averaged over samples."""
        n = self.labels.numel()
        return {name: float(s.sum()) / (n * self.layer_neurons[name])
                for name, s in self.sample_spikes.items()}


class _Stream:
    """Samples of ``data`` in order, pulled ``k`` at a time across batch boundaries."""

    def __init__(self, batches: Any, device: torch.device | str) -> None:
        self.batches, self.device, self.next = iter(batches), device, 0
        self.x: Tensor | None = None
        self.y: Tensor | None = None

    def pull(self, k: int) -> tuple[Tensor, Tensor, Tensor]:
        """Up to ``k`` samples ``(x, y, index in data)``; empty tensors once exhausted."""
        xs, ys = [], []
        while k > 0:
            if self.x is None or self.x.shape[0] == 0:
                try:
                    x, y = next(self.batches)
                except StopIteration:
                    break
                if not torch.isfinite(x).all():
                    raise ValueError("the input holds NaN/inf values; expected finite, "
                                     "normalized data")
                self.x, self.y = x.to(self.device), torch.as_tensor(y).to(self.device)
            xs.append(self.x[:k])
            ys.append(self.y[:k])
            self.x, self.y = self.x[k:], self.y[k:]
            k -= xs[-1].shape[0]
        if not xs:
            return torch.empty(0), torch.empty(0, dtype=torch.int64), torch.empty(0)
        x, y = torch.cat(xs), torch.cat(ys)
        idx = torch.arange(self.next, self.next + x.shape[0], device=self.device)
        self.next += x.shape[0]
        return x, y, idx


def simulate_early_exit(network: Any, data: Any, max_timesteps: int, threshold: float, *,
                        batch_size: int = 64, device: torch.device | str = "cpu",
                        refill: bool = True, compact_fraction: float = 0.125) -> ExitRun:
    """Run ``network`` with early exit on every sample of ``data``.

    The batch is a set of ``batch_size`` rows. With ``refill`` (default) a row whose sample
    has exited is reset and takes the next sample of ``data`` (continuous batching), so the
    batch stays full while data remains; once the data runs out, finished rows are sliced out
    of every layer's state (compaction) so the stragglers run on a smaller batch. Each
    sample's trajectory is independent of its row-mates, so the outcome equals the offline
    analysis of a full run.

    Args:
        network: A converted network (layers ``input`` ... ``readout``).
        data: A dataset of ``(x, y)``, a ``DataLoader`` of ``(x, y)`` batches or a pair of
            tensors ``(X, Y)`` (:mod:`bsnn_bindsnet.data.samples`); samples are pulled across
            the loader's batches, ``batch_size`` rows at a time.
        max_timesteps: ``T_max``: samples that never reach the threshold stop here.
        threshold: Confidence threshold on the readout's max membrane potential.
        refill: Refill finished rows with new samples (else: one batch after another).
        compact_fraction: Compact the batch once at least this fraction of its rows is
            finished and cannot be refilled (finished rows still in the batch are computed
            but no longer counted): slicing every layer's state costs time, so waiting for a
            few to pile up is faster than compacting at every exit. 0 compacts at every exit.
    """
    check_samples(data)
    if max_timesteps < 1:
        raise ValueError(f"max_timesteps must be >= 1, got {max_timesteps}")
    if num_samples(data) == 0:
        raise ValueError("the data set is empty; expected at least one sample")
    layers = [name for name in network.layers if name not in (INPUT, READOUT)]
    readout = network.layers[READOUT]
    network.to(device)
    network.train(False)
    # what each sample leaves when it exits, in chunks: its index in data, prediction, label,
    # exit step and spikes per layer; sorted back into data order at the end
    out: dict[str, list[Tensor]] = {key: [] for key in ("idx", "pred", "label", "step", *layers)}
    t0 = time.perf_counter()
    shape = tuple(network.layers[INPUT].shape)
    stream = _Stream(labelled_batches(data, batch_size), device)
    # no_grad, not inference_mode: state tensors created under inference_mode could not be
    # updated in place by a later simulate() of the same network
    with torch.no_grad():
        while True:
            x, y, idx = stream.pull(batch_size)
            if x.numel() == 0:
                break
            if tuple(x.shape[1:]) != shape:
                raise ValueError(f"wrong input shape: the network expects "
                                 f"[B, {', '.join(map(str, shape))}], got {list(x.shape)}")
            _run_rows(network, layers, readout, stream, to_conv_layout(x).clone(), y, idx,
                      max_timesteps, threshold, refill, compact_fraction, out, device)
    if not out["idx"]:
        raise ValueError("the data set is empty; expected at least one sample")
    order = torch.cat(out["idx"]).argsort()
    cat = lambda key: torch.cat(out[key])[order]  # noqa: E731
    return ExitRun(cat("pred"), cat("label"), cat("step"), {name: cat(name) for name in layers},
                   {name: network.layers[name].n for name in layers}, float(threshold),
                   max_timesteps, time.perf_counter() - t0)


def _run_rows(network, layers, readout, stream, x, y, idx, max_timesteps, threshold, refill,
              compact_fraction, out, device) -> None:
    """Run one batch of rows until every row (and every refill) has exited; append what the
    exited samples leave to the lists in ``out``."""
    b = x.shape[0]
    network.reset_state_variables()
    alive = torch.ones(b, dtype=torch.bool, device=device)
    t_row = torch.zeros(b, dtype=torch.int64, device=device)
    counts = {name: torch.zeros(b, device=device) for name in layers}
    while alive.any():
        # the [1, b, ...] view is of our own copy: BindsNET may zero it on reset
        network.run(inputs={INPUT: x.unsqueeze(0)}, time=1, one_step=True)
        t_row += 1
        for name in layers:
            s = network.layers[name].s
            counts[name] += spike_counts(s).mul_(alive)
        conf, arg = readout.v.flatten(1).max(1)
        done = alive & ((conf > threshold) | (t_row >= max_timesteps))
        if not done.any():
            continue
        rows = done.nonzero().flatten()
        for key, value in (("idx", idx), ("pred", arg), ("label", y), ("step", t_row),
                           *counts.items()):
            out[key].append(value[rows].cpu())  # indexing copies: later refills cannot alter it
        alive &= ~done
        new_x, new_y, new_idx = stream.pull(len(rows)) if refill else (torch.empty(0),) * 3
        k = new_x.shape[0]
        if k:
            fill = torch.zeros_like(alive)
            fill[rows[:k]] = True
            # reset first: BindsNET's Input layer holds `x` itself as its spikes `s`
            reset_rows(network, fill)
            x[rows[:k]] = to_conv_layout(new_x)
            y[rows[:k]], idx[rows[:k]], t_row[rows[:k]] = new_y, new_idx, 0
            for name in layers:
                counts[name][rows[:k]] = 0
            alive |= fill
        if alive.any() and int((~alive).sum()) >= max(1.0, compact_fraction * alive.numel()):
            select_rows(network, alive)
            x, y, idx, t_row = to_conv_layout(x[alive]), y[alive], idx[alive], t_row[alive]
            counts = {name: c[alive] for name, c in counts.items()}
            alive = torch.ones(x.shape[0], dtype=torch.bool, device=device)
