"""Checkpoints that are never half-written and that say what model they hold.

Every file is written to a temporary file in the destination folder, flushed to disk and then
renamed over the destination (``os.replace`` is atomic on POSIX), so an interrupted write leaves
the previous file intact.

A *model file* (``model.pt``) holds ``{"format", "model", "model_kwargs", "state_dict", "meta"}``:
enough to rebuild the network with :func:`bsnn_bindsnet.ann.models.get_model` and load it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

MODEL_FORMAT = "bsnn-bindsnet/ann-model-v1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used with the requested model."""


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    # os.open honours the umask (mkstemp would make the file private to the user).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` that never leaves ``path`` half-written."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    """Write UTF-8 text atomically."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write JSON (indented, keys in insertion order) atomically."""
    return atomic_write_text(json.dumps(obj, indent=2) + "\n", path)


def load_state_checked(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *,
                       source: str, strict: bool = True) -> None:
    """``model.load_state_dict`` with an error that lists what does not match.

    Raises:
        CheckpointError: missing or unexpected keys (when ``strict``) or shape mismatches.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k}: checkpoint {list(state_dict[k].shape)} vs model {list(v.shape)}"
              for k, v in own.items() if k in state_dict and state_dict[k].shape != v.shape]
    problems = []
    if strict and missing:
        problems.append(f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if strict and unexpected:
        problems.append(f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
    if shapes:
        problems.append("shape mismatches " + "; ".join(shapes[:8]))
    if problems:
        raise CheckpointError(f"{source} does not match the model "
                              f"{type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=strict)


def save_model(model: nn.Module, path: str | os.PathLike, *, name: str,
               model_kwargs: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> Path:
    """Save weights plus the registry name and kwargs needed to rebuild ``model``."""
    return atomic_save({"format": MODEL_FORMAT, "model": name, "model_kwargs": dict(model_kwargs),
                        "state_dict": model.state_dict(), "meta": dict(meta or {})}, path)


def safe_torch_load(path: str | os.PathLike, *, what: str) -> Any:
    """``torch.load`` (weights only, to the CPU) that reports an unreadable file as a
    :class:`CheckpointError` naming the file and what was expected."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors all mean "not such a file"
        raise CheckpointError(f"{path} cannot be read as {what} ({type(err).__name__}: "
                              f"{err})") from err


def read_model_file(path: str | os.PathLike) -> dict[str, Any]:
    """Load a model file and check its format; a missing or foreign file raises clearly."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path} (expected a model.pt written by "
                                "`bsnn train`)")
    blob = safe_torch_load(path, what="a bsnn-bindsnet model file")
    if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{path} is not a bsnn-bindsnet model file (expected format "
                              f"{MODEL_FORMAT!r}; training checkpoints are in checkpoint.pt, "
                              "the model file beside it is model.pt)")
    return blob


def _legacy_kwargs(blob: Mapping[str, Any]) -> dict[str, Any]:
    """The saved kwargs, completed with the values that older files relied on as defaults.

    Direct-route models saved before ``residual_factor`` was recorded were built with the
    then-default ``f = 0.5``; the default is now the paper's ``f = 1``, so such a file states
    its ``f`` here instead of silently changing meaning.
    """
    kwargs = dict(blob["model_kwargs"])
    if blob["model"] == "direct_bsnn" and "residual_factor" not in kwargs:
        from bsnn_bindsnet.direct.model import LEGACY_RESIDUAL_FACTOR

        kwargs["residual_factor"] = LEGACY_RESIDUAL_FACTOR
    return kwargs


def load_model(path: str | os.PathLike, **overrides: Any) -> nn.Module:
    """Rebuild and load the model saved at ``path``; ``overrides`` replace saved kwargs."""
    from bsnn_bindsnet.ann.models import get_model

    blob = read_model_file(path)
    model = get_model(blob["model"], **{**_legacy_kwargs(blob), **overrides})
    load_state_checked(model, blob["state_dict"], source=str(path))
    return model
