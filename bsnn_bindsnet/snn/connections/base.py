"""Shared by the connections: argument checks and the plasticity-free base class."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn

from bsnn_bindsnet.snn.functional import scale_per_channel

with warnings.catch_warnings():  # importing bindsnet sets warnings.filterwarnings("ignore")
    from bindsnet.network.nodes import Nodes
    from bindsnet.network.topology import AbstractConnection

IntPair = int | tuple[int, int]


def _as_weight(weight: Tensor, ndim: int, owner: str) -> Tensor:
    """Detached floating-point copy of ``weight``; checks its rank and that it is finite."""
    w = torch.as_tensor(weight).detach()
    if w.dim() != ndim:
        raise ValueError(f"{owner}: weight must have {ndim} dims, got shape {tuple(w.shape)}")
    if not w.is_floating_point():
        w = w.to(torch.get_default_dtype())
    if not bool(torch.isfinite(w).all()):
        raise ValueError(f"{owner}: weight contains NaN or inf")
    return w.clone()


def _as_bias(bias: Tensor, weight: Tensor, owner: str) -> Tensor:
    """Detached ``[out]`` copy of ``bias`` in the weight's dtype."""
    b = torch.as_tensor(bias, dtype=weight.dtype).detach()
    if tuple(b.shape) != (weight.shape[0],):
        raise ValueError(f"{owner}: bias of shape {tuple(b.shape)}, expected ({weight.shape[0]},)")
    return b.clone()


def _scale_vector(weight: Tensor, scale: Tensor | float | None, per_channel: bool) -> Tensor:
    """:math:`\\alpha` as a ``[out]`` vector: given, or ``mean |W|`` per output row / per layer."""
    n_out = weight.shape[0]
    if scale is None:
        a = scale_per_channel(weight, per_channel)
    else:
        a = torch.as_tensor(scale, dtype=weight.dtype).detach()
    if a.numel() not in (1, n_out):
        raise ValueError(
            f"scale of shape {tuple(a.shape)}: expected a single value or one per output "
            f"channel ({n_out},)"
        )
    if not bool(torch.isfinite(a).all()):
        raise ValueError("scale contains NaN or inf")
    return a.reshape(-1).expand(n_out).clone()


def _check_flat(owner: str, source: Nodes, target: Nodes, weight: Tensor) -> None:
    if tuple(weight.shape) != (target.n, source.n):
        raise ValueError(
            f"{owner}: weight {tuple(weight.shape)} does not map source shape "
            f"{tuple(source.shape)} (n={source.n}) to target shape {tuple(target.shape)} "
            f"(n={target.n}); expected nn.Linear layout ({target.n}, {source.n})"
        )


def _check_map(
    owner: str, source: Nodes, target: Nodes, fn: Callable[[Tensor], Tensor], what: str
) -> None:
    """Run ``fn`` on a meta tensor shaped like ``source`` and compare with ``target.shape``."""
    src, tgt = tuple(source.shape), tuple(target.shape)
    if len(src) != 3 or len(tgt) != 3:
        raise ValueError(
            f"{owner}: source shape {src} and target shape {tgt} must both be (C, H, W)"
        )
    try:
        out = tuple(fn(torch.empty(1, *src, device="meta")).shape[1:])
    except RuntimeError as err:
        msg = f"{owner}: {what} cannot be applied to source shape {src}: {err}"
        raise ValueError(msg) from None
    if out != tgt:
        raise ValueError(
            f"{owner}: {what} maps source shape {src} to {out}, but the target shape is {tgt}"
        )


def _check_pool(owner: str, pool: nn.Module | None) -> nn.AvgPool2d | None:
    if isinstance(pool, nn.MaxPool2d):
        raise ValueError(
            f"{owner}: pool=nn.MaxPool2d is not supported: max-pooling synaptic currents is "
            "not linear, so it does not commute with integrate-and-fire. The converter inserts "
            "an extra IF layer after the convolution and a MaxPool2dConnection on its spikes."
        )
    if pool is not None and not isinstance(pool, nn.AvgPool2d):
        got = type(pool).__name__
        raise ValueError(f"{owner}: pool must be an nn.AvgPool2d or None, got {got}")
    return pool


class ConstantInputCache:
    """The output of a connection for its last analog input, reused while the same, unchanged
    tensor comes back: under constant-current coding the first layer sees the same input every
    step, so its current is computed once per sample instead of T times.

    "The same, unchanged tensor" is the same memory, shape, strides, dtype and version counter
    (every in-place write, such as early exit refilling a row or BindsNET zeroing its ``Input``
    layer, bumps the version). The last input is kept referenced, so its memory cannot be
    reused by another tensor while it is cached. Inputs that track gradients or have no
    version counter (inference-mode tensors) are never cached. The cached tensor is returned
    as is: callers must not modify it (BindsNET's nodes only read their input).
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Drop the cached input and output."""
        self._input: Tensor | None = None
        self._key: tuple | None = None
        self._output: Tensor | None = None

    def __getstate__(self) -> dict:
        """Copies and pickles start empty."""
        return {"_input": None, "_key": None, "_output": None}

    @staticmethod
    def _key_of(s: Tensor) -> tuple | None:
        if s.requires_grad or s.is_inference():
            return None
        return (s.data_ptr(), tuple(s.shape), s.stride(), s.dtype, s.device, s._version)

    def get(self, s: Tensor) -> Tensor | None:
        """The cached output if ``s`` is the cached input, unchanged; else None."""
        key = self._key_of(s)
        return self._output if key is not None and key == self._key else None

    def put(self, s: Tensor, out: Tensor) -> Tensor:
        """Remember ``out`` as the output for ``s`` (if ``s`` can be cached); returns ``out``."""
        key = self._key_of(s)
        self._input, self._key, self._output = (s, key, out) if key is not None else (None,) * 3
        return out


class _StaticConnection(AbstractConnection):
    """A connection without plasticity: ``update``, ``reset_state_variables`` and
    ``normalize`` do nothing. Subclasses call ``super().__init__(source, target)`` only."""

    def update(self, *, mask: Tensor | None = None, **kwargs) -> None:
        """No learning rule: nothing changes. ``Network.run`` passes ``learning``, ``mask`` and
        its own keyword arguments here; a weight mask is rejected instead of ignored.

        Raises:
            NotImplementedError: ``mask`` is not None.
        """
        if mask is not None:
            raise NotImplementedError(f"{type(self).__name__} does not support weight masks")

    def reset_state_variables(self) -> None:
        """Stateless: nothing to reset."""

    def normalize(self) -> None:
        """No weight normalisation (``Network.run`` calls this after every run)."""
