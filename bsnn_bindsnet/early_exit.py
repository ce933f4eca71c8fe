r"""Early-exit inference that really stops computing for samples that have exited.

Per step, each still-running sample whose readout confidence (max membrane potential) exceeds
the threshold exits with the readout's argmax; the batch is then *compacted*: every layer's
state tensors are sliced to the samples still running, so later steps cost only what is left.
``Network.run(time=1)`` is called once per step (it never resets state between calls); the
network's ``batch_size`` is updated together with the layers' state so that BindsNET does not
reallocate (and so reset) it. One-step mode and constant-current input only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from bsnn_bindsnet.convert import INPUT, READOUT
from bsnn_bindsnet.functional import to_conv_layout

_STATE = ("s", "v", "x", "summed")  # per-sample state a BindsNET layer may hold


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


def compact(network: Any, keep: Tensor) -> None:
    """Keep only the samples ``keep`` (bool ``[B]``) in every layer's state."""
    for layer in network.layers.values():
        for name in _STATE:
            value = getattr(layer, name, None)
            if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == keep.numel():
                setattr(layer, name, to_conv_layout(value[keep]))
        layer.batch_size = int(keep.sum())
    network.batch_size = int(keep.sum())


def simulate_early_exit(network: Any, data: Any, max_timesteps: int, threshold: float, *,
                        batch_size: int = 64, device: torch.device | str = "cpu",
                        compact_fraction: float = 0.125) -> ExitRun:
    """Run ``network`` with early exit on every sample of ``data``.

    Args:
        network: A converted network (layers ``input`` ... ``readout``).
        data: A dataset of ``(x, y)`` or a pair of tensors ``(X, Y)``.
        max_timesteps: ``T_max``: samples that never reach the threshold stop here.
        threshold: Confidence threshold on the readout's max membrane potential.
        compact_fraction: Compact the batch once at least this fraction of its rows has
            exited (exited rows still in the batch are computed but no longer counted):
            slicing every layer's state costs time, so waiting for a few exits to pile up
            is faster than compacting at every single exit. 0 compacts at every exit.
    """
    from bsnn_bindsnet.simulate import _batches, _length

    if max_timesteps < 1:
        raise ValueError(f"max_timesteps must be >= 1, got {max_timesteps}")
    if _length(data) == 0:
        raise ValueError("the data set is empty; expected at least one sample")
    layers = [name for name in network.layers if name not in (INPUT, READOUT)]
    readout = network.layers[READOUT]
    network.to(device)
    network.train(False)
    preds, labels, steps = [], [], []
    spikes: dict[str, list[Tensor]] = {name: [] for name in layers}
    t0 = time.perf_counter()
    # no_grad, not inference_mode: state tensors created under inference_mode could not be
    # updated in place by a later simulate() of the same network
    with torch.no_grad():
        for x, y in _batches(data, batch_size):
            x, y = to_conv_layout(x.to(device)).clone(), torch.as_tensor(y).to(device)
            b = x.shape[0]
            network.reset_state_variables()
            active = torch.arange(b, device=device)  # sample index of every batch row
            alive = torch.ones(b, dtype=torch.bool, device=device)  # rows still running
            pred = torch.empty(b, dtype=torch.int64, device=device)
            step = torch.full((b,), max_timesteps, dtype=torch.int64, device=device)
            counts = {name: torch.zeros(b, device=device) for name in layers}
            for t in range(1, max_timesteps + 1):
                # the [1, b, ...] view is of our own copy: BindsNET may zero it on reset
                network.run(inputs={INPUT: x.unsqueeze(0)}, time=1, one_step=True)
                for name in layers:
                    s = network.layers[name].s
                    fired = s.sum(dim=tuple(range(1, s.dim()))).mul_(alive)
                    counts[name].index_add_(0, active, fired.to(counts[name].dtype))
                conf, arg = readout.v.flatten(1).max(1)
                last = t == max_timesteps
                done = alive & (conf > threshold) if not last else alive
                if done.any():
                    pred[active[done]] = arg[done]
                    step[active[done]] = t
                    alive &= ~done
                    if last or not alive.any():
                        break
                    if (~alive).sum() >= max(1.0, compact_fraction * alive.numel()):
                        compact(network, alive)
                        active, x = active[alive], to_conv_layout(x[alive])
                        alive = torch.ones(active.numel(), dtype=torch.bool, device=device)
            preds.append(pred.cpu())
            labels.append(y.cpu())
            steps.append(step.cpu())
            for name in layers:
                spikes[name].append(counts[name].cpu())
    return ExitRun(torch.cat(preds), torch.cat(labels), torch.cat(steps),
                   {name: torch.cat(v) for name, v in spikes.items()},
                   {name: network.layers[name].n for name in layers}, float(threshold),
                   max_timesteps, time.perf_counter() - t0)
