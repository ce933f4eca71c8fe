"""A whole training run: preset + overrides, per-epoch metrics, atomic checkpoints, resume.

Files written to ``out_dir`` (each atomically, every epoch):

- ``checkpoint.pt``: model and optimizer state, completed epochs, history, the run config;
  ``--resume`` continues from it.
- ``model.pt``: the latest weights with the model name and kwargs (input of ``bsnn convert``).
- ``metrics.csv`` / ``metrics.json``: one row per epoch, with the accuracy on the held-out
  ``"val"`` split (the one to select an epoch on) beside the test accuracy.
- ``config.json``: the resolved run configuration.

Nothing is written before the first epoch is saved (an interrupted or failed first epoch leaves
``out_dir`` as it was), and one process at a time writes a run (:mod:`bsnn_bindsnet.locking`).

Exact resume: every epoch reseeds torch from ``(seed, epoch)`` and draws its batch order from
``(seed, epoch)``, so an interrupted run that resumes from its last checkpoint repeats the
interrupted epoch bit for bit and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset

from bsnn_bindsnet.ann.models import POOL_POSITIONS, POOLS
from bsnn_bindsnet.checkpoint import (CheckpointError, atomic_save, atomic_write_json,
                                      atomic_write_text, load_state_checked, read_model_file,
                                      save_model)
from bsnn_bindsnet.data.registry import dataset_info, load_dataset, make_loader
from bsnn_bindsnet.simulation.distributed import all_sum, epoch_shard, init
from bsnn_bindsnet.training.loop import evaluate, make_optimizer, train_one_epoch
from bsnn_bindsnet.training.models import get_model
from bsnn_bindsnet.locking import locked
from bsnn_bindsnet.training.recipes import Preset, get_preset, learning_rate, weight_decay
from bsnn_bindsnet.training.resume import (CHECKPOINT_FORMAT, TrainingInterrupted,
                                           check_epochs, load_checkpoint, resumed_fields)

log = logging.getLogger(__name__)

# RunConfig fields whose command-line flag has another name
_FLAGS = {"affine": "bn_affine"}
# Files a run writes into out_dir (``bsnn train`` checks the same list before importing torch).
RUN_FILES = ("checkpoint.pt", "model.pt", "metrics.csv", "metrics.json", "config.json")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a training run (the preset plus explicit overrides).

    ``dataset`` replaces the preset's dataset (a key of :data:`bsnn_bindsnet.data.registry.DATASETS`):
    ``RunConfig("fmnist-fp", out, dataset="mnist")`` trains the Fashion-MNIST recipe on MNIST.
    ``levels`` (QCFS presets) sets :math:`L`; ``snn_timesteps`` (``*-qcfs-snn`` presets) the
    latencies the unrolled B-SNN trains at.
    """

    preset: str
    out_dir: str
    seed: int = 0
    dataset: str | None = None
    quant: str | None = None
    pool: str | None = None
    blocks: tuple[str, ...] | None = None
    coding: str | None = None
    v_init: str | None = None
    reset: str | None = None
    residual_factor: float | None = None
    readout_norm: bool | None = None
    bn_affine: bool | None = None
    levels: int | None = None
    snn_timesteps: tuple[int, ...] | None = None
    init_from: str | None = None
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    betas: tuple[float, float] | None = None
    train_subset: int | None = None
    data_root: str | None = None
    download: bool = False
    device: str = "cpu"
    num_workers: int = 0
    progress: bool = True


def resolve(cfg: RunConfig) -> Preset:
    """The preset with the config's overrides applied."""
    preset = get_preset(cfg.preset)
    if cfg.dataset is not None:
        preset = replace(preset, dataset=dataset_info(cfg.dataset).name)
    recipe = preset.recipe
    overrides = {k: v for k, v in (("epochs", cfg.epochs), ("lr", cfg.lr),
                                   ("batch_size", cfg.batch_size), ("betas", cfg.betas))
                 if v is not None}
    recipe = replace(recipe, **overrides)
    if not (math.isfinite(recipe.lr) and recipe.lr > 0):  # a NaN step would train 1 batch
        raise ValueError(f"lr must be a finite number > 0, got {recipe.lr}")
    quant = cfg.quant or preset.quant
    hybrid = preset.hybrid and quant != "fp"
    model_kwargs = dict(preset.model_kwargs)
    if cfg.pool:
        if preset.model not in POOLED_MODELS:
            raise ValueError(f"--pool: model {preset.model!r} has no pooling layers; expected "
                             f"one of {', '.join(POOLED_MODELS)}")
        model_kwargs.update(parse_pool(cfg.pool))
    direct = {k: v for k, v in (("blocks", cfg.blocks), ("coding", cfg.coding),
                                ("v_init", cfg.v_init), ("reset", cfg.reset),
                                ("residual_factor", cfg.residual_factor),
                                ("readout_norm", cfg.readout_norm),
                                ("affine", cfg.bn_affine)) if v is not None}
    if direct and preset.route != "direct":
        flags = ", ".join(f"--{_FLAGS.get(k, k).replace('_', '-')}" for k in direct)
        raise ValueError(f"{flags}: options of a direct-route preset (*-direct); preset "
                         f"{cfg.preset!r} trains an ANN")
    model_kwargs.update({k: tuple(v) if k == "blocks" else v for k, v in direct.items()})
    snn_timesteps = preset.snn_timesteps
    if cfg.levels is not None:
        if model_kwargs.get("activation") != "qcfs":
            raise ValueError(f"--levels: preset {cfg.preset!r} has no QCFS activation; "
                             "expected a *-qcfs-* preset")
        model_kwargs["levels"] = int(cfg.levels)
    if cfg.snn_timesteps is not None:
        if not preset.snn_timesteps:
            raise ValueError(f"--snn-timesteps: preset {cfg.preset!r} does not train through "
                             "the B-SNN; expected a *-qcfs-snn preset")
        snn_timesteps = tuple(int(t) for t in cfg.snn_timesteps)
    return replace(preset, recipe=recipe, quant=quant, hybrid=hybrid, model_kwargs=model_kwargs,
                   snn_timesteps=snn_timesteps)


POOLED_MODELS = ("vgg15", "vgg15_imagenet", "vgg_small", "vgg_tiny")


def parse_pool(spec: str) -> dict[str, str]:
    """``"avg-before"`` -> ``{"pool": "avg", "pool_position": "before"}`` (Fig. 4's options)."""
    pool, _, position = spec.partition("-")
    if pool not in POOLS or position not in POOL_POSITIONS:
        choices = ", ".join(f"{a}-{b}" for a in POOLS for b in POOL_POSITIONS)
        raise ValueError(f"unknown pooling placement {spec!r}; expected one of {choices}")
    return {"pool": pool, "pool_position": position}


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return torch.device(name)


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch + 1


def _init_from(model: torch.nn.Module, path: str, *, name: str, quant: str,
               model_kwargs: dict[str, Any]) -> list[str]:
    """Load ``path`` into ``model``; returns the QCFS modules whose threshold the file lacks
    (a ReLU run fine-tuned into QCFS), which start from calibration statistics."""
    from bsnn_bindsnet.training.qcfs import untrained_thresholds

    blob = read_model_file(path)
    if blob["model"] != name:
        raise CheckpointError(f"--init-from {path} holds a {blob['model']!r} model; this run "
                              f"trains {name!r}")
    for key in ("pool", "pool_position"):
        saved = blob["model_kwargs"].get(key, "avg" if key == "pool" else "before")
        if key in model_kwargs and saved != model_kwargs[key]:
            raise CheckpointError(f"--init-from {path} was trained with {key}={saved!r}; this "
                                  f"run uses {key}={model_kwargs[key]!r} (pass the same --pool)")
    # FP -> BWN: identical keys (binary layers keep real proxies in .weight). FP -> XNOR adds
    # batch-norm layers, which start fresh. ReLU -> QCFS adds the thresholds lambda.
    fresh = untrained_thresholds(model, blob["state_dict"])
    state = {**{f"{n}.lam": model.get_submodule(n).lam.detach() for n in fresh},
             **blob["state_dict"]}
    load_state_checked(model, state, source=path, strict=quant != "xnor")
    return fresh


def _write_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    atomic_write_json(history, out / "metrics.json")
    buf = io.StringIO()
    # union of the rows' keys: a run resumed from a checkpoint written before val was recorded
    fieldnames = list(dict.fromkeys(key for row in history for key in row))
    writer = csv.DictWriter(buf, fieldnames=fieldnames)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(buf.getvalue(), out / "metrics.csv")


def fit(cfg: RunConfig, *, resume: bool = False, overwrite: bool = False,
        on_batch: Callable[[int, int, float], None] | None = None,
        on_epoch: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Train as ``cfg`` says and return the per-epoch history.

    Args:
        cfg: The run.
        resume: Continue from ``out_dir/checkpoint.pt`` (an error if there is none).
        overwrite: Start afresh even though ``out_dir`` holds a checkpoint. Without it (and
            without ``resume``) an existing run is never overwritten.
        on_batch: ``(epoch, batch_index, loss)`` after every training step.
        on_epoch: Called with each epoch's metrics row once it is saved.

    Returns:
        One dict per completed epoch: epoch, lr, weight_decay, train/val/test loss and
        accuracy, seconds. ``model.pt`` holds the last epoch; ``val_acc`` is the column to
        choose an epoch on (never ``test_acc``).

    Under ``torchrun`` the model is wrapped in ``DistributedDataParallel``; each rank trains
    on an equal share of the epoch's seeded permutation with ``batch_size // world_size``
    samples per step (the global batch stays the recipe's), the training loss and accuracy
    are summed over ranks, and only rank 0 writes files.

    Raises:
        TrainingInterrupted: on Ctrl-C, saying which epoch (if any) the checkpoint holds.
    """
    saved = [0]  # the epoch out_dir/checkpoint.pt holds for this run
    try:
        with locked(cfg.out_dir, command=f"training {cfg.preset}"):  # one writer per run
            return _fit(cfg, resume=resume, overwrite=overwrite, on_batch=on_batch,
                        on_epoch=on_epoch, saved=saved)
    except KeyboardInterrupt:
        raise TrainingInterrupted(Path(cfg.out_dir), saved[0]) from None


def _fit(cfg: RunConfig, *, resume: bool, overwrite: bool,
         on_batch: Callable[[int, int, float], None] | None,
         on_epoch: Callable[[dict[str, Any]], None] | None,
         saved: list[int]) -> list[dict[str, Any]]:
    rank, size = init(cfg.device)  # (0, 1) unless launched by torchrun
    out = Path(cfg.out_dir)
    ckpt_path = out / "checkpoint.pt"
    state = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
    if state is not None:  # the run as recorded (epochs, init_from) unless overridden
        cfg = replace(cfg, **resumed_fields(state["config"], asdict(cfg), ckpt_path))
        if ("readout_norm" not in state["config"] and cfg.readout_norm is None
                and get_preset(cfg.preset).route == "direct"):
            # saved before the option existed, when the direct presets had no readout norm
            cfg = replace(cfg, readout_norm=False)
    spec = resolve(cfg)
    recipe = spec.recipe
    if state is not None:
        check_epochs(recipe.epochs, int(state["epoch"]), ckpt_path)
    if ckpt_path.exists() and not (resume or overwrite):
        raise FileExistsError(f"{out} already holds a training run; pass --resume to continue "
                              "it or --overwrite to start again (or choose another --out)")
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found and not (resume or overwrite):
        raise FileExistsError(f"{out} already holds {', '.join(found)} (no checkpoint.pt to "
                              "resume); pass --overwrite to replace them or choose another "
                              "--out")
    if resume and not ckpt_path.exists():
        raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
    if spec.hybrid and not cfg.init_from and not resume:
        raise ValueError(f"preset {cfg.preset!r} binarizes a full-precision model: pass "
                         f"--init-from RUN/model.pt (or use {cfg.preset}-scratch if it exists)")
    device = _device(cfg.device)
    if size > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    info = dataset_info(spec.dataset)
    model_kwargs = {"quant": spec.quant, "input_shape": info.input_shape,
                    "num_classes": info.n_classes, **spec.model_kwargs}
    torch.manual_seed(cfg.seed)
    model = get_model(spec.model, **model_kwargs).to(device)
    optimizer = make_optimizer(model.parameters(), optimizer=recipe.optimizer, lr=recipe.lr,
                               momentum=recipe.momentum, betas=recipe.betas,
                               weight_decay=recipe.weight_decay)
    history: list[dict[str, Any]] = []
    start = 0
    if state is not None:
        load_state_checked(model, state["model"], source=str(ckpt_path))
        optimizer.load_state_dict(state["optimizer"])
        history, start = list(state["history"]), int(state["epoch"])
        saved[0] = start
        log.info("resuming %s after epoch %d", out, start)
    fresh_thresholds: list[str] = []
    if not resume and cfg.init_from:
        fresh_thresholds = _init_from(model, cfg.init_from, name=spec.model, quant=spec.quant,
                                      model_kwargs=model_kwargs)
    if fresh_thresholds:
        from bsnn_bindsnet.training.qcfs import INIT_PERCENTILE, init_thresholds

        calib = load_dataset(spec.dataset, "calib", data_root=cfg.data_root,
                             download=cfg.download)
        lams = init_thresholds(model, fresh_thresholds, calib, device=device)
        log.info("QCFS thresholds from the %g-th percentile of the ReLU activations: %s",
                 INIT_PERCENTILE, lams)
    trained = model  # what the optimizer steps: the ANN, or its unrolled B-SNN (same weights)
    if spec.snn_timesteps:
        from bsnn_bindsnet.training.unrolled import unroll

        trained = unroll(model, spec.snn_timesteps)
    net = trained
    if size > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(trained,
                                      device_ids=[device] if device.type == "cuda" else None)

    train_set = load_dataset(spec.dataset, "train", data_root=cfg.data_root,
                             download=cfg.download)
    if cfg.train_subset:
        train_set = Subset(train_set, range(min(cfg.train_subset, len(train_set))))
    test_set = load_dataset(spec.dataset, "test", data_root=cfg.data_root, download=cfg.download)
    test_loader = make_loader(test_set, batch_size=max(recipe.batch_size, 256), shuffle=False,
                              num_workers=cfg.num_workers)
    val_set = load_dataset(spec.dataset, "val", data_root=cfg.data_root, download=cfg.download)
    val_loader = make_loader(val_set, batch_size=max(recipe.batch_size, 256), shuffle=False,
                             num_workers=cfg.num_workers)
    for epoch in range(start, recipe.epochs):
        lr, wd = learning_rate(recipe, epoch), weight_decay(recipe, epoch)
        for group in optimizer.param_groups:
            group["lr"], group["weight_decay"] = lr, wd
        torch.manual_seed(_epoch_seed(cfg.seed, epoch) + rank)
        if size == 1:
            loader = make_loader(train_set, batch_size=recipe.batch_size, shuffle=True,
                                 seed=cfg.seed, epoch=epoch, num_workers=cfg.num_workers)
        else:  # equal shares of the epoch's permutation; the global batch stays the recipe's
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            part = Subset(train_set, epoch_shard(len(train_set), rank, size, gen))
            loader = make_loader(part, batch_size=max(1, recipe.batch_size // size),
                                 shuffle=False, num_workers=cfg.num_workers)
        batches = _progress(loader, f"epoch {epoch + 1}/{recipe.epochs}", cfg.progress)
        callback = None if on_batch is None else (lambda i, loss, e=epoch: on_batch(e, i, loss))
        t0 = time.perf_counter()
        tr = train_one_epoch(net, batches, optimizer, device=device, on_batch=callback)
        t1 = time.perf_counter()
        va = evaluate(trained, val_loader, device=device)  # the B-SNN at T[0] if unrolled
        te = evaluate(trained, test_loader, device=device)
        loss_sum, correct, n = all_sum([tr.loss * tr.n, tr.acc * tr.n, tr.n])
        row = {"epoch": epoch + 1, "lr": lr, "weight_decay": wd, "train_loss": loss_sum / n,
               "train_acc": correct / n, "val_loss": va.loss, "val_acc": va.acc,
               "test_loss": te.loss, "test_acc": te.acc,
               "train_seconds": round(t1 - t0, 3),
               "eval_seconds": round(time.perf_counter() - t1, 3)}
        history.append(row)
        log.info("epoch %d: train acc %.4f, val acc %.4f, test acc %.4f", epoch + 1,
                 row["train_acc"], va.acc, te.acc)
        if rank != 0:  # only rank 0 writes; DDP keeps the replicas identical
            continue
        # nothing is written before the first epoch is saved: an interrupted or failed first
        # epoch leaves out_dir as it was; checkpoint.pt first, so a partial write resumes
        atomic_save({"format": CHECKPOINT_FORMAT, "epoch": epoch + 1, "config": asdict(cfg),
                     "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "history": history}, ckpt_path)
        save_model(model, out / "model.pt", name=spec.model, model_kwargs=model_kwargs,
                   meta={"dataset": spec.dataset, "preset": cfg.preset, "epoch": epoch + 1,
                         "val_acc": va.acc, "test_acc": te.acc,
                         # T of the B-SNN it trained through, if any (`bsnn simulate`'s T)
                         **({"timesteps": spec.snn_timesteps[0]} if spec.snn_timesteps
                            else {})})
        saved[0] = epoch + 1
        _write_metrics(out, history)
        atomic_write_json({**asdict(cfg), "resolved": asdict(spec), "processes": size},
                          out / "config.json")
        if on_epoch is not None:
            on_epoch(row)
    return history


def format_epoch(row: dict[str, Any]) -> str:
    """One line per finished epoch (``bsnn train`` and the experiments print it)."""
    val = f"val acc {row['val_acc']:.4f} " if "val_acc" in row else ""
    return (f"epoch {row['epoch']}: lr {row['lr']:.3g} train loss {row['train_loss']:.4f} "
            f"train acc {row['train_acc']:.4f} {val}test acc {row['test_acc']:.4f} "
            f"({row['train_seconds']:.1f} s)")


def _progress(loader, desc: str, enabled: bool):
    if not enabled:
        return loader
    from tqdm.auto import tqdm

    return tqdm(loader, desc=desc, leave=False, dynamic_ncols=True)
