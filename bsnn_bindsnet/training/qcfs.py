"""Training support for QCFS networks (issue 14): thresholds of a network fine-tuned from a
ReLU run, and the unrolled B-SNN that ``*-qcfs-snn`` presets train through.

A QCFS model initialized from a ReLU checkpoint (``bsnn train --preset fmnist-qcfs-bwn
--init-from zoo:fmnist-bwn``) has no trained :math:`\\lambda`: each starts, as in the issue's
first measurement and in QCFS's own fine-tuning, at the 99.9th percentile of the activation
the ReLU produced there on the calibration split (:func:`init_thresholds`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from bsnn_bindsnet.ann.qcfs import QCFS

__all__ = ["INIT_PERCENTILE", "init_thresholds", "percentile_table", "qcfs_modules", "qcfs_twin",
           "relu_points", "select_percentiles", "step_accuracy", "step_predictions",
           "untrained_thresholds"]

INIT_PERCENTILE = 99.9


def qcfs_modules(model: nn.Module) -> dict[str, QCFS]:
    """Name -> every :class:`QCFS` of ``model``."""
    return {name: m for name, m in model.named_modules() if isinstance(m, QCFS)}


def untrained_thresholds(model: nn.Module, state_dict: Any) -> list[str]:
    """The QCFS modules of ``model`` whose :math:`\\lambda` is not in ``state_dict`` (a
    checkpoint of a ReLU network of the same architecture)."""
    return [name for name in qcfs_modules(model) if f"{name}.lam" not in state_dict]


def init_thresholds(model: nn.Module, names: Sequence[str], calibration: Any, *,
                    percentile: float = INIT_PERCENTILE, batch_size: int = 256,
                    device: Any = "cpu") -> dict[str, float]:
    """Set the :math:`\\lambda` of the QCFS modules ``names`` to the ``percentile`` of the
    ReLU activation at their place (the model with those QCFS read as ReLUs) on
    ``calibration``; returns the values.
    """
    from bsnn_bindsnet.conversion.normalize import activation_scales

    if not names:
        return {}
    relu_view = copy.deepcopy(model)
    for name in names:
        parent, _, leaf = name.rpartition(".")
        setattr(relu_view.get_submodule(parent) if parent else relu_view, leaf, nn.ReLU())
    points = {name: relu_view.get_submodule(name) for name in names}
    lambdas = activation_scales(relu_view.to(device), points, calibration,
                                percentile=percentile, batch_size=batch_size, device=device)
    modules = qcfs_modules(model)
    for name, lam in lambdas.items():
        modules[name].lam.data.fill_(float(lam))
    return lambdas


def relu_points(model: nn.Module) -> list[str]:
    """Names of the ``nn.ReLU`` modules of ``model`` (in order): the points a QCFS twin
    replaces and the standard conversion balances."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.ReLU)]


def qcfs_twin(model: nn.Module, lambdas: Mapping[str, float], *, levels: int = 2) -> nn.Module:
    r"""A copy of the ReLU network ``model`` with each ReLU replaced by a :class:`QCFS` of
    ``levels`` levels and :math:`\lambda` = ``lambdas[name]``.

    Its B-SNN (``ann_to_bsnn(twin)``, :math:`\theta = \lambda`, or
    :func:`~bsnn_bindsnet.training.unrolled.unroll`) is the standard conversion of ``model``
    with those :math:`\lambda` (e.g. percentiles chosen per layer): the starting point of
    training through the B-SNN. The state-dict keys are those of the registry model built
    with ``activation="qcfs"`` (a QCFS keeps the ReLU's name).

    Raises:
        ValueError: ``lambdas`` does not name exactly the ReLUs of ``model``, or a value is
            not positive.
    """
    points = relu_points(model)
    if sorted(points) != sorted(lambdas):
        raise ValueError(f"lambdas name {sorted(lambdas)}; expected exactly the ReLUs of the "
                         f"model: {points}")
    bad = {k: v for k, v in lambdas.items() if not float(v) > 0}
    if bad:
        raise ValueError(f"lambdas must be > 0, got {bad}")
    twin = copy.deepcopy(model)
    for name in points:
        parent, _, leaf = name.rpartition(".")
        setattr(twin.get_submodule(parent) if parent else twin, leaf,
                QCFS(levels, float(lambdas[name])))
    return twin


def percentile_table(model: nn.Module, calibration: Any, percentiles: Sequence[float], *,
                     batch_size: int = 256) -> dict[float, dict[str, float]]:
    r"""Percentile -> (ReLU name -> :math:`\lambda`): the standard conversion's thresholds of
    the ReLU network ``model`` for each percentile, on ``calibration`` (training images), as
    :func:`~bsnn_bindsnet.conversion.normalize.activation_scales` computes them (exact, with
    interpolation), from one pass over the data."""
    from bsnn_bindsnet.conversion.normalize import StreamingPercentile
    from bsnn_bindsnet.data.samples import batches, num_samples

    points = relu_points(model)
    if not points:
        raise ValueError("the model has no ReLU; expected a ReLU network (a QCFS network "
                         "fixes its own thresholds)")
    grid = sorted(float(p) for p in percentiles)
    if not grid or not 0 < grid[0] <= 100:
        raise ValueError(f"percentiles must lie in (0, 100], got {list(percentiles)}")
    n = num_samples(calibration)
    trackers: dict[str, StreamingPercentile] = {}

    def hook(name: str):
        def record(module: nn.Module, inputs: Any, output: Tensor) -> None:
            act = output.detach().flatten(1)
            if name not in trackers:
                trackers[name] = StreamingPercentile(grid[0], n * act.shape[1])
            trackers[name].update(act)
        return record

    was_training = model.training
    handles = [model.get_submodule(name).register_forward_hook(hook(name)) for name in points]
    model.eval()
    try:
        with torch.no_grad():
            for x, _ in batches(calibration, batch_size, "calibration"):
                model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    table: dict[float, dict[str, float]] = {}
    for p in grid:
        row = {}
        for name, tr in trackers.items():
            pos = p / 100.0 * (tr.total - 1)
            lo, hi = int(pos), min(int(pos) + 1, tr.total - 1)
            v_lo, v_hi = tr.top[tr.total - 1 - lo].item(), tr.top[tr.total - 1 - hi].item()
            lam = v_lo + (v_hi - v_lo) * (pos - lo)
            if not lam > 0:
                raise ValueError(f"{name}: the {p}th percentile of its activations is {lam}; "
                                 "expected a higher percentile")
            row[name] = lam
        table[p] = row
    return table


@torch.no_grad()
def step_predictions(model: nn.Module, data: Any, timesteps: int, *,
                     batch_size: int = 500) -> tuple[Tensor, Tensor, Tensor]:
    """The B-SNN of the QCFS network ``model`` (its unrolled twin, which predicts what the
    BindsNET simulation predicts: README, issue 14) on ``data`` after each step 1..T.

    Returns:
        ``(predictions [T, N], confidence [T, N], labels [N])``: the readout's argmax and its
        maximum mean current after ``t`` steps (the potential divided by ``t``).
    """
    from bsnn_bindsnet.data.samples import batches
    from bsnn_bindsnet.training.unrolled import unroll

    snn = unroll(model, timesteps).eval()
    steps = torch.arange(1, timesteps + 1, dtype=torch.float32).view(-1, 1, 1)
    preds, conf, labels = [], [], []
    for x, y in batches(data, batch_size, "data"):
        out = snn.body(x.unsqueeze(0).expand(timesteps, *x.shape).flatten(0, 1))
        mean = out.unflatten(0, (timesteps, -1)).cumsum(0) / steps
        top = mean.max(2)
        preds.append(top.indices)
        conf.append(top.values)
        labels.append(torch.as_tensor(y))
    return torch.cat(preds, 1), torch.cat(conf, 1), torch.cat(labels)


def step_accuracy(model: nn.Module, data: Any, timesteps: int, *,
                  batch_size: int = 500) -> list[float]:
    """Accuracy of the QCFS network's B-SNN after each step 1..T (:func:`step_predictions`)."""
    preds, _, labels = step_predictions(model, data, timesteps, batch_size=batch_size)
    return (preds == labels).double().mean(1).tolist()


def select_percentiles(model: nn.Module, table: Mapping[float, Mapping[str, float]],
                       val: Any, timesteps: int, *, rounds: int = 1, levels: int = 2,
                       log_fn: Any = None) -> tuple[dict[str, float], float, list[dict]]:
    r"""Percentiles for the standard conversion of ``model`` at latency ``timesteps``, chosen
    on ``val``: first one percentile for all layers (the best of ``table``), then per layer,
    ``rounds`` passes of coordinate ascent (each layer in turn takes the percentile of
    ``table`` that maximizes the validation accuracy at ``T``, the others fixed; ties keep
    the current one).

    Returns:
        ``(percentile per ReLU, its validation accuracy at T, the trace of every evaluation)``.
    """
    points = relu_points(model)
    grid = sorted(table)
    trace: list[dict] = []

    def score(choice: Mapping[str, float]) -> float:
        twin = qcfs_twin(model, {n: table[choice[n]][n] for n in points}, levels=levels)
        acc = step_accuracy(twin, val, timesteps)[-1]
        trace.append({"percentiles": dict(choice), "val_accuracy": acc})
        if log_fn is not None:
            log_fn(f"T={timesteps} {dict(choice)}: val {100 * acc:.2f} %")
        return acc

    scores = {p: score({n: p for n in points}) for p in grid}
    best_p = max(grid, key=lambda p: (scores[p], p))
    choice, best = {n: best_p for n in points}, scores[best_p]
    for _ in range(rounds):
        for name in points:
            for p in grid:
                if p == choice[name]:
                    continue
                acc = score({**choice, name: p})
                if acc > best:
                    choice, best = {**choice, name: p}, acc
    return choice, best, trace
