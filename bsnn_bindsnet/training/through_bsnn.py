r"""Train a binary-weight network through its B-SNN at a small latency (issue 20).

Starting point: the standard conversion of a ReLU BWN with its thresholds :math:`\lambda_l`
(percentiles of the ReLU activations on the calibration split, one percentile per layer,
chosen on the validation split), expressed as the network's QCFS twin
(:func:`~bsnn_bindsnet.training.qcfs.qcfs_twin`), or a QCFS BWN as it is. The twin is
unrolled over ``T`` steps (:func:`~bsnn_bindsnet.training.unrolled.unroll`: integrate-and-fire
neurons with :math:`\theta = \lambda`, reset by subtraction, :math:`v(0) = \theta/2`,
constant-current input, a non-firing readout) and trained end to end with surrogate
gradients, as in the hybrid conversion + spike-based training of Rathi et al. (ICLR 2020).
What is new here:

- **every step's readout is scored**: the loss averages, over the steps ``loss_steps``
  (default 1..T), the loss of the readout's mean current after that step, i.e. of the
  prediction the B-SNN would give if stopped there (one unrolled pass gives them all), so
  one network is trained for T = 1 and T = 2 at once (and for early exit);
- **distillation** (Hinton et al. 2015) from a full-precision ANN: each of those losses is
  ``(1 - w) CE + w tau^2 KL(teacher || student)`` at temperature ``tau``;
- **every choice on validation**: the accuracy of the B-SNN after each step 1..``eval_steps``
  is measured on the "val" split (held out from training) before training and after every
  epoch; each epoch's weights are kept and ``model.pt`` is the epoch (0 = the starting
  conversion) with the best validation accuracy at ``select_step``.

The trained network is still the same ``vgg_small`` with binary weights (the STE's proxies
and :math:`\alpha` per output channel) and QCFS :math:`\lambda`; ``bsnn convert`` maps it
to its B-SNN with no calibration. Files in ``out_dir`` (atomic): ``config.json``,
``metrics.json`` (one row per epoch), ``epoch-K/model.pt`` and ``model.pt``.

The command line is ``python -m experiments.low_latency_t2 train`` (it also accepts
``zoo:NAME``, which this floor may not resolve).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

__all__ = ["TuneConfig", "parse_percentiles", "start_model", "step_loss", "tune"]


@dataclass(frozen=True)
class TuneConfig:
    r"""One run of :func:`tune`.

    Attributes:
        init_from: A ``model.pt``: a ReLU BWN (converted with ``percentiles``) or a QCFS BWN
            (its own :math:`\lambda`).
        out_dir: Run folder.
        percentiles: ReLU name -> percentile of its :math:`\lambda` (a ReLU start only).
        dataset: Registered dataset.
        levels: QCFS levels :math:`L` of the twin (its ANN only; the B-SNN ignores it).
        timesteps: :math:`T` of the unrolled training pass.
        loss_steps: Steps whose readout enters the loss (each in 1..T; default all).
        teacher: ``model.pt`` of the distillation teacher (``None``: none).
        kd_weight: Weight ``w`` of the distillation term.
        kd_temperature: Its temperature ``tau``.
        epochs, lr, batch_size: Adam, ``lr`` halved after every epoch (``halve``) or
            cosine-annealed per batch to 0 at the end of training (``cosine``).
        max_batches: Stop after this many batches in all (``None``: ``epochs`` full epochs);
            the cosine schedule spans the batches actually trained.
        eval_every: Also measure (and keep) the network every this many batches.
        eval_start: Measure the starting network (row 0) too.
        schedule: ``"halve"`` or ``"cosine"``.
        eval_steps: Validation accuracy is measured after steps 1..``eval_steps``.
        select_step: The step whose validation accuracy picks the epoch (default ``T``).
        val_limit: Use the first N validation images (``None``: all).
        train_subset: Train on the first N training images (``None``: all; tests).
        calib_size: Calibration images for the percentiles.
        seed: Seed of the batch order and dropout.
    """

    init_from: str
    out_dir: str
    percentiles: dict[str, float] = field(default_factory=dict)
    dataset: str = "fashion-mnist"
    levels: int = 2
    timesteps: int = 2
    loss_steps: tuple[int, ...] = ()
    teacher: str | None = None
    kd_weight: float = 0.5
    kd_temperature: float = 4.0
    epochs: int = 3
    max_batches: int | None = None
    eval_every: int | None = None
    eval_start: bool = True
    lr: float = 5e-4
    batch_size: int = 128
    schedule: str = "halve"
    eval_steps: int = 4
    select_step: int | None = None
    val_limit: int | None = None
    train_subset: int | None = None
    calib_size: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        steps = self.loss_steps or tuple(range(1, self.timesteps + 1))
        if self.timesteps < 1 or any(not 1 <= t <= self.timesteps for t in steps):
            raise ValueError(f"loss_steps {self.loss_steps} must lie in 1..timesteps "
                             f"({self.timesteps})")
        if self.schedule not in ("halve", "cosine"):
            raise ValueError(f"unknown schedule {self.schedule!r}; expected 'halve' or 'cosine'")
        if not 0 <= self.kd_weight <= 1 or self.kd_temperature <= 0:
            raise ValueError(f"kd_weight must lie in [0, 1] and kd_temperature be > 0, got "
                             f"{self.kd_weight}, {self.kd_temperature}")
        if self.epochs < 1 or self.lr <= 0 or self.batch_size < 1:
            raise ValueError(f"need epochs >= 1, lr > 0, batch_size >= 1; got {self.epochs}, "
                             f"{self.lr}, {self.batch_size}")
        if not 1 <= (self.select_step or self.timesteps) <= self.eval_steps:
            raise ValueError(f"select_step must lie in 1..eval_steps ({self.eval_steps})")


def parse_percentiles(spec: str) -> dict[str, float]:
    """``"relu1=98,relu2=99.5"`` -> ``{"relu1": 98.0, "relu2": 99.5}``."""
    out = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, eq, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            eq = ""
        if not eq or not name.strip():
            raise ValueError(f"--percentiles: bad item {item!r}; expected NAME=PERCENTILE, "
                             "e.g. relu1=98,relu2=99.5")
    return out


def step_loss(out: Tensor, y: Tensor, steps: Sequence[int], teacher: Tensor | None = None,
              *, kd_weight: float = 0.5, kd_temperature: float = 4.0) -> Tensor:
    r"""Mean over ``steps`` of the loss of the readout's mean current after that step.

    Args:
        out: Readout currents per step ``[T, B, classes]``.
        y: Labels ``[B]``.
        steps: 1-based steps.
        teacher: Teacher logits ``[B, classes]`` (``None``: cross-entropy only).
    """
    t_max = out.shape[0]
    mean = out.cumsum(0) / torch.arange(1, t_max + 1, dtype=out.dtype,
                                        device=out.device).view(-1, 1, 1)
    total = out.new_zeros(())
    for t in steps:
        logits = mean[t - 1]
        loss = nn.functional.cross_entropy(logits, y)
        if teacher is not None and kd_weight > 0:
            tau = kd_temperature
            kd = nn.functional.kl_div(nn.functional.log_softmax(logits / tau, 1),
                                      nn.functional.log_softmax(teacher / tau, 1),
                                      reduction="batchmean", log_target=True) * tau ** 2
            loss = (1 - kd_weight) * loss + kd_weight * kd
        total = total + loss
    return total / len(steps)


def _load(path: str) -> nn.Module:
    from bsnn_bindsnet.training.models import load_model

    return load_model(path).eval()


def _model_meta(path: str) -> tuple[str, dict[str, Any]]:
    """Registry name and kwargs of the model file at ``path``."""
    from bsnn_bindsnet.checkpoint import read_model_file

    blob = read_model_file(path)
    return blob["model"], dict(blob["model_kwargs"])


def start_model(cfg: TuneConfig) -> tuple[nn.Module, str, dict[str, Any], dict[str, float]]:
    r"""The QCFS network training starts from, its registry name and kwargs, and the
    :math:`\lambda` per layer."""
    from bsnn_bindsnet.data.registry import load_dataset
    from bsnn_bindsnet.training.qcfs import percentile_table, qcfs_modules, qcfs_twin, relu_points

    model = _load(cfg.init_from)
    name, kwargs = _model_meta(cfg.init_from)
    if relu_points(model):
        if sorted(cfg.percentiles) != sorted(relu_points(model)):
            raise ValueError(f"{cfg.init_from} is a ReLU network: --percentiles must name each "
                             f"of {relu_points(model)}, got {sorted(cfg.percentiles)}")
        calib = load_dataset(cfg.dataset, "calib", calib_size=cfg.calib_size)
        table = percentile_table(model, calib, sorted(set(cfg.percentiles.values())))
        lambdas = {n: table[float(p)][n] for n, p in cfg.percentiles.items()}
        model = qcfs_twin(model, lambdas, levels=cfg.levels)
        kwargs = {**kwargs, "activation": "qcfs", "levels": cfg.levels}
    elif cfg.percentiles:
        raise ValueError(f"{cfg.init_from} is a QCFS network (its lambda is trained); "
                         "--percentiles applies to a ReLU start only")
    lambdas = {n: m.lam.item() for n, m in qcfs_modules(model).items()}
    return model, name, kwargs, lambdas


def _write_json(obj: Any, path: Path) -> None:
    from bsnn_bindsnet.checkpoint import atomic_write_json

    atomic_write_json(obj, path)


def tune(cfg: TuneConfig, *, progress: bool = False) -> list[dict[str, Any]]:
    """Train as ``cfg`` says (module docstring); returns one row per epoch (epoch 0: the
    start; then one per epoch, per ``eval_every`` batches and at the end), each with the
    validation accuracy after steps 1..``eval_steps``; ``epoch`` counts epochs done (1.5: half
    way through the second), ``batches`` the batches."""
    from torch.utils.data import Subset

    from bsnn_bindsnet.checkpoint import save_model
    from bsnn_bindsnet.data.registry import load_dataset, make_loader
    from bsnn_bindsnet.training.qcfs import step_accuracy
    from bsnn_bindsnet.training.unrolled import unroll

    out = Path(cfg.out_dir)
    held = [n for n in ("config.json", "metrics.json", "model.pt", "epoch-0") if (out / n).exists()]
    if held:  # never replace a user's run (the overwrite rule of `bsnn train`)
        raise FileExistsError(f"{out} already holds a run ({', '.join(held)}); choose another "
                              "--out")
    torch.manual_seed(cfg.seed)
    model, name, kwargs, lambdas = start_model(cfg)
    teacher = _load(cfg.teacher).eval() if cfg.teacher else None
    train = load_dataset(cfg.dataset, "train")
    if cfg.train_subset:
        train = Subset(train, range(min(cfg.train_subset, len(train))))
    val = load_dataset(cfg.dataset, "val")
    if cfg.val_limit:
        val = Subset(val, range(min(cfg.val_limit, len(val))))
    steps = cfg.loss_steps or tuple(range(1, cfg.timesteps + 1))
    select = cfg.select_step or cfg.timesteps
    out.mkdir(parents=True, exist_ok=True)
    _write_json({**asdict(cfg), "start_lambdas": lambdas, "model": name,
                 "model_kwargs": kwargs}, out / "config.json")
    snn = unroll(model, cfg.timesteps)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    n_batches = math.ceil(len(train) / cfg.batch_size)
    history: list[dict[str, Any]] = []

    def finish_epoch(epoch: float, row: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        acc = step_accuracy(model.eval(), val, cfg.eval_steps)
        row.update({"epoch": epoch, "val_acc": acc, "val_n": len(val),
                    "lambdas": {n: m.lam.item() for n, m in _qcfs(model).items()},
                    "eval_seconds": round(time.perf_counter() - t0, 1)})
        path = save_model(model, out / f"epoch-{epoch:g}" / "model.pt", name=name,
                          model_kwargs=kwargs, meta={"dataset": cfg.dataset, "epoch": epoch,
                                                     "val_acc": acc, "tuned": "through_bsnn"})
        history.append(row)
        _write_json(history, out / "metrics.json")
        log.info("epoch %g: val acc after steps 1..%d: %s", epoch, cfg.eval_steps,
                 " ".join(f"{100 * a:.2f}" for a in acc))
        best = max(history, key=lambda r: (r["val_acc"][select - 1], -r["batches"]))
        if best is row:
            save_model(model, out / "model.pt", name=name, model_kwargs=kwargs,
                       meta={"dataset": cfg.dataset, "epoch": epoch, "val_acc": acc,
                             "selected_on": f"val accuracy at T = {select}",
                             "tuned": "through_bsnn", "from": str(path)})

    total = n_batches * cfg.epochs
    if cfg.max_batches:
        total = min(total, cfg.max_batches)
    if cfg.eval_start:
        finish_epoch(0, {"batches": 0, "lr": 0.0, "train_loss": None, "train_acc": None,
                         "train_seconds": 0.0})
    done, t0, loss_sum, correct, n = 0, time.perf_counter(), 0.0, 0, 0
    for epoch in range(cfg.epochs):
        torch.manual_seed(cfg.seed * 1_000_003 + epoch + 1)
        loader = make_loader(train, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed,
                             epoch=epoch)
        snn.train()
        for i, (x, y) in enumerate(loader):
            if done >= total:
                break
            lr = (cfg.lr * 0.5 ** epoch if cfg.schedule == "halve" else
                  0.5 * cfg.lr * (1 + math.cos(math.pi * done / total)))
            for g in opt.param_groups:
                g["lr"] = lr
            body = snn.body(x.unsqueeze(0).expand(cfg.timesteps, *x.shape).flatten(0, 1))
            per_step = body.unflatten(0, (cfg.timesteps, -1))
            with torch.no_grad():
                soft = teacher(x) if teacher is not None else None
            loss = step_loss(per_step, y, steps, soft, kd_weight=cfg.kd_weight,
                             kd_temperature=cfg.kd_temperature)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(f"epoch {epoch + 1}, batch {i}: the loss is "
                                         f"{loss.item()}; lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            loss_sum += loss.item() * len(y)
            correct += int((per_step.mean(0).argmax(1) == y).sum())
            n += len(y)
            if progress and i % 50 == 0:
                log.info("epoch %d batch %d/%d loss %.4f lr %.3g (%.0f s)", epoch + 1, i,
                         n_batches, loss.item(), lr, time.perf_counter() - t0)
            if done == total or i + 1 == n_batches or (cfg.eval_every
                                                       and done % cfg.eval_every == 0):
                finish_epoch(round(done / n_batches, 3),
                             {"batches": done, "lr": lr, "train_loss": loss_sum / n,
                              "train_acc": correct / n,
                              "train_seconds": round(time.perf_counter() - t0, 1)})
                snn.train()
                t0, loss_sum, correct, n = time.perf_counter(), 0.0, 0, 0
    return history


def _qcfs(model: nn.Module) -> dict[str, Any]:
    from bsnn_bindsnet.training.qcfs import qcfs_modules

    return qcfs_modules(model)
