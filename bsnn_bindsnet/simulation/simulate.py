"""Run a converted network over a data set with BindsNET's minibatch ``Network.run``.

Two duck-typed monitors (anything with ``record()`` and ``reset_state_variables()`` is a BindsNET
monitor) collect what the analyses need without recording full spike trains:

- :class:`SpikeCounter`: per layer, spikes per sample per step (``[T, B]``) and, if asked, the
  per-neuron total (``[*shape]``): memory is O(T x B + neurons), never O(T x neurons).
- :class:`ReadoutTracker`: the readout's argmax and max membrane potential after every step
  (the accuracy-vs-timesteps curve and the early-exit confidence).

Early exit (:mod:`bsnn_bindsnet.simulation.early_exit`) steps the same network and edits its
per-sample state through :func:`reset_rows` and :func:`select_rows`.

Timing: ``one_step=True`` (default) propagates the input through all layers within a timestep;
``one_step=False`` is BindsNET's default delayed mode (one step of delay per connection).
Every result records which mode produced it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from bsnn_bindsnet.snn.connections.integer import (arithmetic_used, check_arithmetic,
                                                   restore_arithmetic, set_arithmetic)
from bsnn_bindsnet.snn.fused_if import check_kernel, kernels_used, restore_kernel, set_kernel
from bsnn_bindsnet.snn.plan import INPUT, READOUT
from bsnn_bindsnet.snn.encoding import ENCODINGS, encode
from bsnn_bindsnet.snn.functional import to_conv_layout
from bsnn_bindsnet.data.samples import batches, check_samples, num_samples

__all__ = ["ROW_STATE", "ReadoutTracker", "SimResult", "SpikeCounter", "labelled_batches",
           "reset_rows", "select_rows", "simulate", "spike_counts"]


def spike_counts(s: Tensor) -> Tensor:
    """Spikes per sample, ``[B, *shape]`` -> ``int32 [B]``.

    Summing a bool tensor first copies it to ``int64``. Instead, when each sample's spikes
    are one dense block of whole 8-byte words (channels-last or contiguous, ``n % 8 == 0``),
    the words are added as ``int64`` in groups of at most 255: each of a word's 8 bytes is a
    0 / 1 spike, so every byte lane of the group sum stays below 256 and never carries into
    the next; the lanes are then added up. Otherwise the bytes are summed as ``uint8`` into
    ``int32``. Both are exact; a sum over the non-batch dims, never ``flatten(1)``, which
    would copy a channels-last tensor.
    """
    dims = tuple(range(1, s.dim()))
    if s.dtype != torch.bool:
        return s.sum(dim=dims).to(torch.int32)
    u8 = s.view(torch.uint8)
    b, n = s.shape[0], s[0].numel()
    words = _sample_words(u8, b, n)
    if words is None:
        return u8.sum(dim=dims, dtype=torch.int32)
    full = words.shape[1] // 255 * 255
    lanes = words[:, :full].reshape(b, -1, 255).sum(2)  # [B, groups] int64, lanes < 256
    rest = words[:, full:].sum(1, keepdim=True)
    lanes = torch.cat([lanes, rest], 1).contiguous().view(torch.uint8)
    return lanes.sum(1, dtype=torch.int32)


def _sample_words(u8: Tensor, b: int, n: int) -> Tensor | None:
    """The ``uint8`` spikes as ``int64 [B, n / 8]`` words without a copy, or None."""
    if n % 8 or b == 0 or u8.storage_offset() % 8 or u8.data_ptr() % 8:
        return None
    if u8.is_contiguous():
        flat = u8.view(b, n)
    elif u8.dim() == 4 and u8.is_contiguous(memory_format=torch.channels_last):
        flat = u8.permute(0, 2, 3, 1).reshape(b, n)  # a view: [B, H, W, C] is contiguous
    else:
        return None
    return flat.view(torch.int64)


class SpikeCounter:
    """Counts spikes of the named layers at every step of a ``Network.run``.

    Attributes:
        per_step: Layer -> ``int32 [T, B]``: spikes of each sample at each step.
        per_neuron: Layer -> ``float64 [*shape]``: spikes summed over steps and samples
            (only with ``per_neuron=True``; accumulates across batches until :meth:`clear`).
    """

    def __init__(self, network: Any, layers: Sequence[str], timesteps: int, *,
                 per_neuron: bool = False) -> None:
        self.network, self.layers, self.timesteps = network, list(layers), timesteps
        self.keep_per_neuron = per_neuron
        self.per_neuron: dict[str, Tensor] = {}
        self.per_step: dict[str, Tensor] = {}
        self.t = 0
        self.clear()

    def clear(self) -> None:
        """Zero the per-neuron totals."""
        self.per_neuron = ({name: torch.zeros(tuple(self.network.layers[name].shape),
                                              dtype=torch.float64) for name in self.layers}
                           if self.keep_per_neuron else {})

    def reset_state_variables(self) -> None:
        """Start a new batch (BindsNET calls this when the batch size changes)."""
        self.t = 0
        self.per_step = {}

    def record(self) -> None:
        """Called by ``Network.run`` after every step."""
        if self.t >= self.timesteps:
            raise RuntimeError(f"SpikeCounter sized for {self.timesteps} steps recorded more; "
                               "call reset_state_variables() between runs")
        for name in self.layers:
            s = self.network.layers[name].s
            if name not in self.per_step:
                self.per_step[name] = torch.zeros(self.timesteps, s.shape[0], dtype=torch.int32,
                                                  device=s.device)
            self.per_step[name][self.t] = spike_counts(s)
            if self.keep_per_neuron:
                total = (s.view(torch.uint8).sum(0, dtype=torch.int32)
                         if s.dtype == torch.bool else s.sum(0))
                self.per_neuron[name] += total.to(device="cpu", dtype=torch.float64)
        self.t += 1


class ReadoutTracker:
    """Records the readout's prediction and confidence (max potential) after every step."""

    def __init__(self, network: Any, timesteps: int, *, layer: str = READOUT) -> None:
        self.readout, self.timesteps = network.layers[layer], timesteps
        self.pred: Tensor = torch.empty(0)
        self.conf: Tensor = torch.empty(0)
        self.t = 0

    def reset_state_variables(self) -> None:
        """Start a new batch."""
        self.t = 0
        self.pred, self.conf = torch.empty(0), torch.empty(0)

    def record(self) -> None:
        """Called by ``Network.run`` after every step."""
        v = self.readout.v.flatten(1)
        if self.t == 0:
            self.pred = torch.empty(self.timesteps, v.shape[0], dtype=torch.int64,
                                    device=v.device)
            self.conf = torch.empty(self.timesteps, v.shape[0], device=v.device)
        self.conf[self.t], self.pred[self.t] = v.max(1)
        self.t += 1


@dataclass
class SimResult:
    """Outcome of :func:`simulate` over ``n`` samples and ``timesteps`` steps.

    Memory is O(T + N) per layer by default; the per-sample, per-step traces (``[T, N]``) that
    the early-exit analysis needs are kept only with ``simulate(..., per_sample=True)``.

    Attributes:
        correct: ``[T]`` correctly classified samples after each step.
        predictions: ``[N]`` readout argmax after the last step.
        confidence: ``[N]`` readout max membrane potential after the last step.
        labels: ``[N]``.
        layer_spikes: Layer -> ``[T]`` spikes of all samples per step.
        layer_neurons: Layer -> number of neurons.
        step_predictions: ``[T, N]`` argmax after each step (``per_sample`` only).
        step_confidence: ``[T, N]`` max potential after each step (``per_sample`` only).
        sample_spikes: Layer -> ``[T, N]`` spikes per sample per step (``per_sample`` only).
        neuron_spikes: Layer -> ``[*shape]`` per-neuron totals (``per_neuron`` only).
        arithmetic: ``"source->target"`` -> the arithmetic each binary connection ran
            (``"float"``, ``"onednn"`` or ``"int_mm"``;
            :mod:`bsnn_bindsnet.snn.connections.integer`).
        neuron_kernel: IF layer -> how its steps ran (``"fused"``, the one-pass kernel of
            :mod:`bsnn_bindsnet.snn.fused_if`, ``"eager"``, or ``"mixed"``).
    """

    timesteps: int
    one_step: bool
    encoding: str
    correct: Tensor
    predictions: Tensor
    confidence: Tensor
    labels: Tensor
    layer_spikes: dict[str, Tensor]
    layer_neurons: dict[str, int]
    step_predictions: Tensor | None = None
    step_confidence: Tensor | None = None
    sample_spikes: dict[str, Tensor] = field(default_factory=dict)
    neuron_spikes: dict[str, Tensor] = field(default_factory=dict)
    seconds: float = 0.0
    arithmetic: dict[str, str] = field(default_factory=dict)
    neuron_kernel: dict[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.labels.numel())

    @property
    def accuracy(self) -> list[float]:
        """Accuracy after each timestep ``1..T``."""
        return (self.correct.double() / max(self.n, 1)).tolist()

    def firing_rates(self, upto: int | None = None) -> dict[str, float]:
        """Per layer: spikes per neuron over steps ``1..upto`` (default: the whole window),
        averaged over samples: the paper's IFR."""
        return {name: float(spikes[:upto].sum()) / (self.n * self.layer_neurons[name])
                for name, spikes in self.layer_spikes.items()}

    def rates_per_step(self) -> dict[str, list[float]]:
        """Per layer: spikes per neuron at each step ``1..T`` (averaged over samples); they
        sum to :meth:`firing_rates`."""
        return {name: (spikes.double() / (self.n * self.layer_neurons[name])).tolist()
                for name, spikes in self.layer_spikes.items()}

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: mode, accuracy curve, final accuracy, IFR per layer."""
        return {"timesteps": self.timesteps, "one_step": self.one_step,
                "mode": "one-step" if self.one_step else "delayed",
                "encoding": self.encoding, "n": self.n, "accuracy": self.accuracy,
                "final_accuracy": self.accuracy[-1] if self.timesteps else None,
                "ifr": self.firing_rates(), "seconds": round(self.seconds, 3),
                "arithmetic": dict(self.arithmetic), "neuron_kernel": dict(self.neuron_kernel)}


ROW_STATE = ("s", "v", "x", "summed")  # per-sample state a stock BindsNET layer may hold


def reset_rows(network: Any, rows: Tensor) -> None:
    """Start the batch rows ``rows`` (bool ``[B]``) afresh in every layer; the other rows keep
    their state.

    A layer with a ``reset_rows(rows)`` method (the package's nodes) does it itself; for any
    other layer the spikes ``s`` of those rows are zeroed.
    """
    for layer in network.layers.values():
        if hasattr(layer, "reset_rows"):
            layer.reset_rows(rows)
        elif isinstance(getattr(layer, "s", None), Tensor) and layer.s.dim() > 0:
            layer.s[rows] = 0


def select_rows(network: Any, keep: Tensor) -> None:
    """Keep only the batch rows ``keep`` (bool ``[B]``) in every layer's state, and set the
    layers' and the network's ``batch_size`` to what is left, so that BindsNET does not
    reallocate (and reset) the state at the next ``Network.run``.

    The per-sample state of a layer is the batch-first tensors named in its ``state_names``
    (:class:`~bsnn_bindsnet.snn.nodes.BinaryIFNodes` lists ``s, v, x, summed``; a neuron model
    with more state extends the tuple), or :data:`ROW_STATE` for a layer without one.
    """
    b, k = keep.numel(), int(keep.sum())
    for layer in network.layers.values():
        for name in getattr(layer, "state_names", ROW_STATE):
            value = getattr(layer, name, None)
            if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == b:
                setattr(layer, name, to_conv_layout(value[keep]))
        layer.batch_size = k
    network.batch_size = k


def labelled_batches(data: Any, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    """:func:`bsnn_bindsnet.data.samples.batches` for a routine that scores predictions: ``(x, y)``
    pairs, and a ``ValueError`` for data without labels."""
    for x, y in batches(data, batch_size):
        if y is None:
            raise ValueError("data holds inputs without labels; expected (x, y) samples, a "
                             "DataLoader of (x, y) batches or a pair of tensors (X, Y)")
        yield x, y


def _num_batches(data: Any, batch_size: int) -> int | None:
    if isinstance(data, DataLoader):
        try:
            return len(data)
        except TypeError:
            return None
    n = num_samples(data)
    return None if n is None else -(-n // batch_size)


def simulate(network: Any, data: Any, timesteps: int, *, one_step: bool = True,
             encoding: str = "current", batch_size: int = 64, device: torch.device | str = "cpu",
             generator: torch.Generator | None = None, per_neuron: bool = False,
             per_sample: bool = False, progress: bool = False,
             arithmetic: str | None = None, neuron_kernel: str | None = None) -> SimResult:
    """Simulate ``network`` on every sample of ``data`` for ``timesteps`` steps.

    Args:
        network: A network built by :func:`~bsnn_bindsnet.snn.network.build_network` (layers
            ``input`` ... ``readout``).
        data: A dataset of ``(x, y)``, a ``DataLoader`` of ``(x, y)`` batches (used as they
            come: its batch size, its order; ``batch_size`` is then ignored) or a pair of
            tensors ``(X [N, *shape], Y [N])`` (:mod:`bsnn_bindsnet.data.samples`).
        timesteps: Steps per sample.
        one_step: Propagate through all layers within a step (default) or BindsNET's
            delayed mode.
        encoding: ``"current"`` (the analog input every step), ``"poisson"`` (signed) or
            ``"poisson-intensity"`` (see :func:`~bsnn_bindsnet.snn.encoding.encode`).
        generator: RNG for Poisson coding.
        per_neuron: Also keep per-neuron spike totals (for IFR maps).
        per_sample: Also keep ``[T, N]`` per-sample traces (predictions, confidence, spikes).
        arithmetic: For this run, the arithmetic of every binary connection: ``"auto"``
            (integer where it runs and is faster), ``"float"`` (force the float path),
            ``"onednn"`` or ``"int_mm"``; None keeps the connections' own (``"auto"`` unless
            changed). All give the same spikes and potentials; the result records which ran.
        neuron_kernel: For this run, every IF layer's step: ``"auto"`` (one fused pass where
            it runs) or ``"eager"`` (PyTorch's element-wise ops); None keeps the layers' own.
            Both give the same spikes and potentials; the result records which ran.

    Returns:
        A :class:`SimResult`.

    Raises:
        TypeError: ``data`` in none of the accepted forms.
        ValueError: empty data, data without labels, a wrong input shape, non-finite inputs,
            labels outside the readout's classes, an unknown ``arithmetic`` or kernel.
    """
    check_samples(data)
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; expected one of {ENCODINGS}")
    if num_samples(data) == 0:
        raise ValueError("the data set is empty; expected at least one sample")
    shape = tuple(network.layers[INPUT].shape)
    n_classes = network.layers[READOUT].n
    layers = [name for name in network.layers if name not in (INPUT, READOUT)]
    for check, value in ((check_arithmetic, arithmetic), (check_kernel, neuron_kernel)):
        if value is not None:
            check(value)
    counter = SpikeCounter(network, layers, timesteps, per_neuron=per_neuron)
    tracker = ReadoutTracker(network, timesteps)
    network.add_monitor(counter, "_bsnn_counter")
    network.add_monitor(tracker, "_bsnn_readout")
    network.to(device)
    network.train(False)
    correct = torch.zeros(timesteps, dtype=torch.int64)
    spikes = {name: torch.zeros(timesteps, dtype=torch.float64) for name in layers}
    preds, confs, labels = [], [], []  # [T, B] per batch with per_sample, else [B]
    per_step: dict[str, list[Tensor]] = {name: [] for name in layers}
    todo = labelled_batches(data, batch_size)
    if progress:
        from tqdm.auto import tqdm

        todo = tqdm(todo, total=_num_batches(data, batch_size), desc=f"simulate T={timesteps}",
                    leave=False, dynamic_ncols=True)
    before = {} if arithmetic is None else set_arithmetic(network, arithmetic)
    kernels = set_kernel(network, neuron_kernel)  # also forgets what ran before
    t0 = time.perf_counter()
    try:
        with torch.no_grad():
            for x, y in todo:
                if tuple(x.shape[1:]) != shape:
                    raise ValueError(f"wrong input shape: the network expects "
                                     f"[B, {', '.join(map(str, shape))}], got {list(x.shape)}")
                if not torch.isfinite(x).all():
                    raise ValueError("the input holds NaN/inf values; expected finite, "
                                     "normalized data")
                y = torch.as_tensor(y)
                bad = y[(y < 0) | (y >= n_classes)]
                if bad.numel():
                    raise ValueError(f"label {int(bad[0])} is outside [0, {n_classes}) (the "
                                     f"readout has {n_classes} neurons); expected class "
                                     "indices")
                x, y = x.to(device), y.to(device)
                network.reset_state_variables()  # also resets the two monitors
                inputs = {INPUT: encode(x, timesteps, encoding=encoding, generator=generator)}
                network.run(inputs=inputs, time=timesteps, one_step=one_step)
                correct += (tracker.pred == y.unsqueeze(0)).sum(1).cpu()
                keep = slice(None) if per_sample else -1
                preds.append(tracker.pred[keep].cpu())
                confs.append(tracker.conf[keep].cpu())
                labels.append(y.cpu())
                for name in layers:
                    spikes[name] += counter.per_step[name].sum(1).cpu()
                    if per_sample:
                        per_step[name].append(counter.per_step[name].cpu())
    finally:
        del network.monitors["_bsnn_counter"], network.monitors["_bsnn_readout"]
        used = arithmetic_used(network)
        restore_arithmetic(network, before)
        ran, _ = kernels_used(network), restore_kernel(network, kernels)
    seconds = time.perf_counter() - t0
    if not labels:
        raise ValueError("the data set is empty; expected at least one sample")
    traces = {}
    if per_sample:  # [T, N] traces; the final predictions are their last row
        traces = {"step_predictions": torch.cat(preds, 1), "step_confidence": torch.cat(confs, 1),
                  "sample_spikes": {name: torch.cat(v, 1) for name, v in per_step.items()}}
    result = SimResult(
        timesteps=timesteps, one_step=one_step, encoding=encoding, correct=correct,
        predictions=traces["step_predictions"][-1] if per_sample else torch.cat(preds),
        confidence=traces["step_confidence"][-1] if per_sample else torch.cat(confs),
        labels=torch.cat(labels), layer_spikes=spikes,
        layer_neurons={name: network.layers[name].n for name in layers},
        neuron_spikes=counter.per_neuron, seconds=seconds, arithmetic=used,
        neuron_kernel=ran, **traces)
    return result
