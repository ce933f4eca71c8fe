"""Shared by :mod:`bsnn_bindsnet.nir_export` and :mod:`bsnn_bindsnet.nir_import`: the optional
``nir`` import, the metadata names, small conversions, and :func:`read_nir`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:
    import nir
except ImportError:  # pragma: no cover - exercised when the optional extra is absent
    nir = None

METADATA_KEY = "bsnn_bindsnet"
NIR_FORMAT = "bsnn-bindsnet/nir-v1"
SPIKE_CONDITION = "v >= v_threshold"
SUPPORTED_NODES = ("Input", "Output", "IF", "I", "Conv2d", "Linear", "Affine", "AvgPool2d",
                   "Flatten")
_SYNAPSE_NODES = ("Conv2d", "Linear", "Affine", "AvgPool2d", "Flatten")


def _require_nir() -> Any:
    if nir is None:
        raise ImportError("NIR support needs the optional packages nir and h5py: pip install "
                          "'bsnn-bindsnet[nir]' (or pip install nir)")
    return nir


def _key(name: str) -> str:
    return name.replace(".", "_")


def _f32(t: Any) -> np.ndarray:
    return torch.as_tensor(t).detach().cpu().to(torch.float32).numpy().copy()


def _type(node: Any) -> str:
    return type(node).__name__


def _meta_str(meta: dict[str, Any], name: str) -> str | None:
    value = meta.get(name)
    if isinstance(value, bytes):
        value = value.decode("utf8")
    if isinstance(value, np.ndarray):
        value = value.item()
        value = value.decode("utf8") if isinstance(value, bytes) else value
    return None if value is None else str(value)


def read_nir(path: str | os.PathLike) -> Any:
    """Read a ``nir.NIRGraph`` from a ``.nir`` (HDF5) file."""
    _require_nir()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no NIR file at {path}")
    try:
        return nir.read(path)
    except (OSError, KeyError) as err:
        raise ValueError(f"{path} is not a readable NIR file: {err}") from None
