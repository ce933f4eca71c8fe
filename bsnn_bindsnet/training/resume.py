"""What :func:`bsnn_bindsnet.training.fit.fit` needs to continue a run, and what it says when
interrupted: the training checkpoint's format, the fields a resumption may change, and
:class:`TrainingInterrupted`.

A run is identified by its configuration, not by where its folder is: ``r``, ``./r``, ``r/``,
an absolute path, or the folder moved or copied elsewhere all resume it. ``--epochs`` may
extend a run or stop it earlier, but never below the epochs it has already completed (the
record would then claim fewer epochs than the weights have had); left out, it is the run's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bsnn_bindsnet.checkpoint import CheckpointError, safe_torch_load

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_FORMATS", "TrainingInterrupted", "check_epochs",
           "load_checkpoint", "resumed_fields"]

# v2 is always written with content hashes (bsnn_bindsnet.checkpoint: integrity by version)
CHECKPOINT_FORMAT = "bsnn-bindsnet/train-checkpoint-v2"
CHECKPOINT_FORMATS = ("bsnn-bindsnet/train-checkpoint-v1", CHECKPOINT_FORMAT)
# Fields that may differ between an interrupted run and its resumption. init_from is only read
# when a run starts (the checkpoint holds the weights), so the record keeps the original.
RESUME_FREE = ("out_dir", "init_from", "epochs", "device", "num_workers", "progress",
               "data_root", "download")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The training checkpoint at ``path``, checked (hashes, finite weights, format)."""
    state = safe_torch_load(path, what="a training checkpoint")
    if not isinstance(state, dict) or state.get("format") not in CHECKPOINT_FORMATS:
        raise CheckpointError(f"{path} is not a bsnn-bindsnet training checkpoint (expected "
                              f"format {CHECKPOINT_FORMAT!r})")
    missing = [k for k in ("epoch", "config", "model", "optimizer", "history") if k not in state]
    if missing:
        raise CheckpointError(f"{path} is incomplete: no {', '.join(missing)}; expected a "
                              "checkpoint.pt written by `bsnn train`")
    return state


def resumed_fields(saved: dict[str, Any], now: dict[str, Any], path: Path) -> dict[str, Any]:
    """Check that the run configuration ``now`` continues ``saved`` (both as dicts); returns
    the fields to set in ``now``: ``init_from`` as recorded, and ``epochs`` as recorded when
    ``now`` does not give it.

    Raises:
        CheckpointError: a field outside :data:`RESUME_FREE` differs.
    """
    diff = [f"{k}: checkpoint {saved.get(k)!r} vs now {now[k]!r}" for k in now
            if k not in RESUME_FREE and saved.get(k) != now[k]
            and not (k == "betas" and saved.get(k) is not None and now[k] is not None
                     and tuple(saved[k]) == tuple(now[k]))]
    if diff:
        raise CheckpointError(f"cannot resume {path}: the run configuration changed ("
                              + "; ".join(diff) + ")")
    epochs = now["epochs"] if now["epochs"] is not None else saved.get("epochs")
    return {"init_from": saved.get("init_from"), "epochs": epochs}


def check_epochs(epochs: int, done: int, path: Path) -> None:
    """A resumed run of ``epochs`` epochs has not already completed more (``done``)."""
    if epochs < done:
        raise ValueError(f"--epochs {epochs}: {path} has already completed {done} epochs; "
                         f"pass --epochs {done} or more to continue it (or leave --epochs out)")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`~bsnn_bindsnet.training.fit.fit`; :attr:`hint` says what is saved
    (``bsnn train`` prints it).

    Attributes:
        out: The run folder.
        saved_epoch: The epoch ``out/checkpoint.pt`` holds for this run, 0 if none.
    """

    def __init__(self, out: Path, saved_epoch: int) -> None:
        super().__init__(str(out))
        self.out, self.saved_epoch = out, saved_epoch

    @property
    def hint(self) -> str:
        if self.saved_epoch == 0:
            return (f"; no epoch had finished, nothing was written ({self.out} is as it was; "
                    "the same command starts again)")
        return (f"; epoch {self.saved_epoch} is saved in {self.out} (--resume continues "
                "from it)")
