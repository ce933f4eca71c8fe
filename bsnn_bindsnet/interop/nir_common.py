"""Shared by :mod:`bsnn_bindsnet.interop.nir_export` and :mod:`bsnn_bindsnet.interop.nir_import`: the optional
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
NIR_FORMAT = "bsnn-bindsnet/nir-v2"
# NIR's firing rule, which the thresholds of every file written since nir-v2 follow: an IF node
# stores v_threshold = nextafter(theta, -inf) in float32, so that a reader firing at v > v_threshold
# fires exactly when this package does (v >= theta). nir-v1 files stored theta itself and said so
# with LEGACY_SPIKE_CONDITION; their thresholds are read unchanged.
SPIKE_CONDITION = "v > v_threshold"
LEGACY_SPIKE_CONDITION = "v >= v_threshold"
THRESHOLD_RULE = "v_threshold = nextafter(theta, -inf) in float32: v > v_threshold iff v >= theta"
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
    try:  # nir's own type inference refuses graphs that peers write (Norse: a batch dimension
        # in Input; snnTorch: scalar parameters); from_nir checks every shape itself
        return nir.read(path, type_check=False)
    except (OSError, KeyError, ValueError, TypeError, AssertionError) as err:
        raise ValueError(f"{path} is not a readable NIR file: {err}") from None


def nir_threshold(theta: Any) -> np.ndarray:
    """The NIR ``v_threshold`` of a threshold ``theta`` of this package: the largest float32 below
    it, so that NIR's rule ``v > v_threshold`` fires exactly when ``v >= theta`` (float32 ``v``)."""
    return np.nextafter(_f32(theta), np.float32(-np.inf))


def bsnn_threshold(v_threshold: Any) -> np.ndarray:
    """The threshold of this package (``v >= theta``) for a NIR ``v_threshold`` (``v >
    v_threshold``): the smallest float32 above it (the inverse of :func:`nir_threshold`)."""
    return np.nextafter(np.asarray(v_threshold, np.float32), np.float32(np.inf))


def check_finite(key: str, node: Any, field: str, values: Any) -> None:
    """Refuse NaN/inf in a node's ``field``, naming the node."""
    a = np.asarray(values, np.float64)
    if not np.all(np.isfinite(a)):
        bad = int((~np.isfinite(a)).sum())
        raise ValueError(f"NIR node {key!r} ({_type(node)}): its {field} holds {bad} NaN/inf "
                         f"value{'s' if bad > 1 else ''}; expected finite numbers")


def check_threshold(key: str, node: Any) -> None:
    """Refuse a ``v_threshold`` that is NaN, infinite or not positive, naming the node."""
    a = np.asarray(node.v_threshold, np.float64)
    bad = ~np.isfinite(a) | ~(a > 0)
    if np.any(bad):
        worst = a[bad].flat[0]
        raise ValueError(f"NIR node {key!r} ({_type(node)}): {int(bad.sum())} v_threshold "
                         f"value{'s are' if bad.sum() > 1 else ' is'} not a finite positive "
                         f"number (e.g. {worst:g}); expected v_threshold > 0")


def check_flatten(key: str, node: Any) -> None:
    """Refuse a ``Flatten`` that leaves more than one dimension of the sample (a synapse after it
    takes a vector). Dimensions count from the sample's first (NIR shapes exclude the batch)."""
    shape = (getattr(node, "input_type", None) or {}).get("input")
    if shape is None:
        return
    shape = tuple(int(d) for d in np.asarray(shape).reshape(-1))
    n = len(shape)
    start, end = int(node.start_dim), int(node.end_dim)
    start, end = start + n if start < 0 else start, end + n if end < 0 else end
    if not 0 <= start <= end < n or int(np.prod(shape[:start] + shape[end + 1:])) != 1:
        raise ValueError(f"NIR node {key!r} (Flatten): start_dim {node.start_dim}, end_dim "
                         f"{node.end_dim} of a {shape} input leave more than one dimension; "
                         "expected it to flatten the whole sample into a vector")


def spike_rule_of(meta: dict[str, Any]) -> str:
    """The firing rule the thresholds of a graph follow: :data:`LEGACY_SPIKE_CONDITION` for a
    nir-v1 file of this package, else NIR's :data:`SPIKE_CONDITION` (every other graph)."""
    return LEGACY_SPIKE_CONDITION if _meta_str(meta, "spike_condition") == \
        LEGACY_SPIKE_CONDITION else SPIKE_CONDITION


def peer_gaps(reset: str, v_init: str) -> list[str]:
    """Why a NIR reader that ignores this package's metadata (every peer) would run another
    network than ``reset`` / ``v_init``: an empty list when it runs this one."""
    gaps = []
    if reset != "zero":
        gaps.append(f"reset {reset!r}: NIR's IF resets to v_reset = 0 and has no field for "
                    "another reset (a peer runs reset to zero)")
    if v_init != "zero":
        gaps.append(f"v_init {v_init!r}: NIR has no initial potential (a peer starts at v = 0)")
    return gaps
