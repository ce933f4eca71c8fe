"""Samples in, batches out: the one place that knows the accepted forms of data.

Calibration data (the converter, the threshold statistics) and test data (the simulator, early
exit) are accepted in three forms:

- a ``Dataset`` (anything with ``__len__`` and ``__getitem__``) of ``(x, y)`` pairs or of bare
  inputs ``x``;
- a ``DataLoader`` (its batches are used as they come: its ``batch_size``, its order);
- a tensor ``X [N, ...]`` (inputs only) or a pair of tensors ``(X [N, ...], Y [N])``.

Anything else gets one ``TypeError`` naming what was given and what is expected. Labels must be
class indices: integers, or floats with whole values; ``Y + 0.5`` is refused (it would score
0 % without a word). Bottom floor: imports only torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

__all__ = ["batches", "check_labels", "check_samples", "num_samples"]

ACCEPTED = ("a Dataset of (x, y) or x, a DataLoader, a tensor X [N, ...] or a pair of tensors "
            "(X [N, ...], Y [N])")


def _is_pair(data: Any) -> bool:
    return (isinstance(data, (tuple, list)) and len(data) == 2
            and all(isinstance(t, Tensor) for t in data))


def check_samples(data: Any, what: str = "data") -> None:
    """Raise a ``TypeError`` unless ``data`` is one of the accepted forms."""
    if isinstance(data, (Tensor, DataLoader)):
        return
    if _is_pair(data):
        if len(data[0]) != len(data[1]):
            raise ValueError(f"{what}: X holds {len(data[0])} samples but Y {len(data[1])}; "
                             "expected one label per sample")
        check_labels(data[1], what)
        return
    if hasattr(data, "__len__") and hasattr(data, "__getitem__") and not isinstance(
            data, (str, bytes, dict)):
        return
    raise TypeError(f"{what} is a {type(data).__name__}; expected {ACCEPTED}")


def check_labels(y: Tensor, what: str = "data") -> None:
    """Raise a ``ValueError`` unless ``y`` holds class indices: an integer dtype, or a
    floating-point one whose values are all whole numbers."""
    if y.dtype == torch.bool or y.is_complex():
        raise ValueError(f"{what}: labels are {y.dtype}; expected integer class indices")
    if y.is_floating_point():
        bad = y[~(torch.isfinite(y) & (y == y.round()))]
        if bad.numel():
            raise ValueError(f"{what}: labels must be integer class indices; got {y.dtype} "
                             f"labels such as {bad[0].item():g} ({bad.numel()} not whole "
                             "numbers)")


def num_samples(data: Any) -> int | None:
    """Number of samples (``None`` for a loader over an iterable dataset without a length)."""
    check_samples(data)
    if _is_pair(data):
        return len(data[0])
    if isinstance(data, DataLoader):
        try:
            return len(data.dataset)  # type: ignore[arg-type]
        except TypeError:
            return None
    return len(data)


def _split(batch: Any) -> tuple[Tensor, Tensor | None]:
    if isinstance(batch, (tuple, list)):
        x = batch[0]
        y = batch[1] if len(batch) > 1 else None
    else:
        x, y = batch, None
    x = torch.as_tensor(x)
    return x, (None if y is None else torch.as_tensor(y))


def batches(data: Any, batch_size: int, what: str = "data") -> Iterator[tuple[Tensor,
                                                                              Tensor | None]]:
    """Yield ``(x [B, ...], y [B] or None)`` in the data's order.

    A ``DataLoader`` keeps its own batch size; the other forms are cut into ``batch_size``.
    """
    check_samples(data, what)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(data, Tensor):
        for x in data.split(batch_size):
            yield x, None
    elif _is_pair(data):
        yield from zip(data[0].split(batch_size), data[1].split(batch_size))
    else:
        loader = data if isinstance(data, DataLoader) else DataLoader(
            data, batch_size=batch_size, shuffle=False)
        for batch in loader:
            x, y = _split(batch)
            if y is not None:
                check_labels(y, what)
            yield x, y
