"""Checkpoints that are never half-written and that say what model they hold.

Every file is written to a temporary file in the destination folder, flushed to disk and then
renamed over the destination (``os.replace`` is atomic on POSIX), so an interrupted write leaves
the previous file intact.

A *model file* (``model.pt``) holds ``{"format", "model", "model_kwargs", "state_dict", "meta"}``:
enough to rebuild the network with :func:`bsnn_bindsnet.training.models.get_model` and load it
(:func:`bsnn_bindsnet.training.models.load_model`, above the model registry: this module is the
ground floor and imports nothing of the package).

Integrity: :func:`atomic_save` adds to a saved dict the SHA-256 of each tensor (dtype, shape
and bytes) and of the rest of each top-level entry (:data:`INTEGRITY_KEY`);
:func:`safe_torch_load` recomputes them and refuses a file whose content changed since it was
written, naming the entry, and any file holding NaN/inf in a floating-point tensor.
Integrity is decided by format version: only the formats of files that may have been written
before hashes were recorded (:data:`UNHASHED_FORMATS`) load without one, with a logged note; a
file of a newer format (``ann-model-v2``, ``train-checkpoint-v2``) whose record was removed is
refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

log = logging.getLogger(__name__)

MODEL_FORMAT = "bsnn-bindsnet/ann-model-v2"  # v2: always written with content hashes
MODEL_FORMATS = ("bsnn-bindsnet/ann-model-v1", MODEL_FORMAT)
MODEL_KEYS = {"model": str, "model_kwargs": dict, "state_dict": dict, "meta": dict}
# Formats whose files may predate content hashes (issue 12): the only ones that load without
# an integrity record. Every later version of a bsnn-bindsnet format is always hashed.
UNHASHED_FORMATS = frozenset({"bsnn-bindsnet/ann-model-v1", "bsnn-bindsnet/train-checkpoint-v1",
                              "bsnn-bindsnet/bsnn-plan-v1"})
INTEGRITY_KEY = "_integrity"
INTEGRITY_ALGORITHM = "sha256-v1"
_UNCHECKED_NOTED: set[str] = set()


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
    """``torch.save`` that never leaves ``path`` half-written; a dict gets its content hashes
    under :data:`INTEGRITY_KEY` (checked by :func:`safe_torch_load`)."""
    if isinstance(obj, Mapping):
        obj = {**obj, INTEGRITY_KEY: {"algorithm": INTEGRITY_ALGORITHM,
                                      "entries": content_digests(obj)}}
    return atomic_write(path, lambda f: torch.save(obj, f))


def _tensor_digest(t: torch.Tensor) -> str:
    t = t.detach().cpu().contiguous().reshape(-1)
    h = hashlib.sha256(f"{t.dtype};{t.numel()};".encode())
    h.update(t.view(torch.uint8).numpy())
    return h.hexdigest()


def _walk(value: Any, path: str, skeleton: Any, tensors: dict[str, torch.Tensor]) -> None:
    """Feed ``value``'s structure and plain values to ``skeleton``; collect its tensors."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value
        skeleton.update(f"T{list(value.shape)};".encode())
    elif isinstance(value, Mapping):
        skeleton.update(f"D{len(value)};".encode())
        for k, v in value.items():
            skeleton.update(f"K{type(k).__name__}:{k!r};".encode())
            _walk(v, f"{path}.{k}", skeleton, tensors)
    elif isinstance(value, (list, tuple)):
        skeleton.update(f"{type(value).__name__}{len(value)};".encode())
        for i, v in enumerate(value):
            _walk(v, f"{path}.{i}", skeleton, tensors)
    else:
        skeleton.update(f"V{type(value).__name__}:{value!r};".encode())


def _entries(obj: Mapping[str, Any]) -> Iterator[tuple[str, Any, dict[str, torch.Tensor]]]:
    for key, value in obj.items():
        if key == INTEGRITY_KEY:
            continue
        skeleton, tensors = hashlib.sha256(), {}
        _walk(value, str(key), skeleton, tensors)
        yield str(key), skeleton, tensors


def content_digests(obj: Mapping[str, Any]) -> dict[str, str]:
    """SHA-256 of every tensor (by dotted path, e.g. ``state_dict.fc.weight``) and of the
    non-tensor rest of every top-level entry (by its key)."""
    digests = {}
    for key, skeleton, tensors in _entries(obj):
        if not (len(tensors) == 1 and key in tensors):  # not a bare tensor
            digests[key] = skeleton.hexdigest()
        digests.update({p: _tensor_digest(t) for p, t in tensors.items()})
    return digests


def _check_content(blob: dict[str, Any], path: str | os.PathLike) -> None:
    """Refuse a file whose recorded hashes do not match, or that holds non-finite floats."""
    record = blob.pop(INTEGRITY_KEY, None)
    if record is None:
        fmt = str(blob.get("format", ""))
        if fmt.startswith("bsnn-bindsnet/") and fmt not in UNHASHED_FORMATS:
            raise CheckpointError(f"{path} is damaged: its integrity record was removed (format "
                                  f"{fmt!r} is always written with one); restore the file or "
                                  "write it again")
        if fmt in UNHASHED_FORMATS and str(path) not in _UNCHECKED_NOTED:
            _UNCHECKED_NOTED.add(str(path))
            log.warning("%s records no content hash (format %s, which may predate integrity "
                        "checks); loaded unchecked", path, fmt)
    else:
        expected = record.get("entries") if isinstance(record, Mapping) else None
        if not isinstance(expected, Mapping) or record.get("algorithm") != INTEGRITY_ALGORITHM:
            raise CheckpointError(f"{path} is damaged: its integrity record is unreadable "
                                  f"(expected {INTEGRITY_ALGORITHM!r} digests)")
        actual = content_digests(blob)
        damaged = [k for k in dict.fromkeys([*expected, *actual])
                   if expected.get(k) != actual.get(k)]
        if damaged:
            more = f" and {len(damaged) - 3} more" if len(damaged) > 3 else ""
            verb = "matches" if len(damaged) == 1 else "match"
            raise CheckpointError(f"{path} is damaged: {', '.join(damaged[:3])}{more} no "
                                  f"longer {verb} the SHA-256 recorded when the file was "
                                  "written; restore the file or write it again")
    for _, _, tensors in _entries(blob):
        for name, t in tensors.items():
            if t.is_floating_point() and not torch.isfinite(t).all():
                bad = int((~torch.isfinite(t)).sum())
                raise CheckpointError(f"{path}: {name} holds {bad} NaN/inf values; expected "
                                      "finite weights")


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


def _unreadable_reason(path: str | os.PathLike, err: Exception) -> str:
    """Why ``torch.load`` failed, in one short clause (torch's own text spans many lines and
    advises ``weights_only=False``, which is no help for a file that is not a checkpoint)."""
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        return "the file is empty"
    # torch.save writes a zip archive (PK..); files of torch < 1.6 begin with a pickle (0x80)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        return f"not a file written by torch.save (it begins {head!r})"
    names = None
    if head.startswith(b"PK"):  # torch.save's zip holds <name>/data.pkl
        with contextlib.suppress(zipfile.BadZipFile, OSError):  # damaged: torch says why
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        if names is not None and not any(n.endswith("data.pkl") for n in names):
            shown = ", ".join(repr(n) for n in names[:3]) + (" ..." if len(names) > 3 else "")
            return (f"a zip archive, but not one written by torch.save (no data.pkl; it holds "
                    f"{shown or 'nothing'})")
    text = str(err)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation")[0]
    text = re.sub(r"^\s*\[enforce fail at [^\]]*\]\s*\.?\s*", "", text)  # C++ location only
    first = " ".join(text.split()).split(". ")[0][:200] or "no details"  # its first sentence
    return f"{type(err).__name__}: {first}"


def safe_torch_load(path: str | os.PathLike, *, what: str) -> Any:
    """``torch.load`` (weights only, to the CPU) that reports an unreadable file as a
    :class:`CheckpointError` naming the file and what was expected, in one line.

    A dict is checked against the hashes :func:`atomic_save` recorded (which are removed from
    it) and for NaN/inf in its floating-point tensors; see the module docstring."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors all mean "not such a file"
        raise CheckpointError(f"{path} cannot be read as {what}: "
                              f"{_unreadable_reason(path, err)}") from err
    if isinstance(blob, dict):
        _check_content(blob, path)
    return blob


def read_model_file(path: str | os.PathLike) -> dict[str, Any]:
    """Load a model file and check its format; a missing or foreign file raises clearly."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path} (expected a model.pt written by "
                                "`bsnn train`)")
    blob = safe_torch_load(path, what="a bsnn-bindsnet model file")
    if not isinstance(blob, dict) or blob.get("format") not in MODEL_FORMATS:
        raise CheckpointError(f"{path} is not a bsnn-bindsnet model file (expected format "
                              f"{MODEL_FORMAT!r}; training checkpoints are in checkpoint.pt, "
                              "the model file beside it is model.pt)")
    require_keys(blob, MODEL_KEYS, path, "a model file written by `bsnn train`")
    return blob


def require_keys(blob: Mapping[str, Any], keys: Mapping[str, type], path: str | os.PathLike,
                 expected: str) -> None:
    """Every key of ``keys`` is in ``blob`` with a value of its type; else one
    :class:`CheckpointError` naming the file, the missing or wrong entries and ``expected``."""
    missing = [k for k in keys if k not in blob]
    wrong = [f"{k} is a {type(blob[k]).__name__}, expected a {t.__name__}"
             for k, t in keys.items() if k in blob and not isinstance(blob[k], t)]
    if missing or wrong:
        what = (["no " + ", ".join(missing)] if missing else []) + wrong
        raise CheckpointError(f"{path} is incomplete: {'; '.join(what)} (expected {expected})")
