"""One IF step in one pass over memory: a small C kernel, compiled once on the user's machine.

The eager step (:func:`~bsnn_bindsnet.snn.functional.if_step_`) makes four passes over the
membrane: ``v += x``, ``s = v >= θ``, a bool-to-float copy of ``s`` and ``v -= θ s``. On a CPU
those passes are bound by memory bandwidth and cost more than the integer convolutions
between the layers (issue 21). The kernel below reads ``v`` and ``x`` once and writes ``v``
and ``s`` once::

    u = v[i] + x[i];  k = u >= th;  s[i] = k;  v[i] = k ? reset(u) : u

with ``reset(u) = u - th`` (subtractive) or ``u * 0`` (reset to zero). Every operation is
the same IEEE float32 operation the eager step performs, in the same order, so potentials
and spikes are identical bit for bit (``tests/test_fused_if.py``): ``v + x`` is one rounded
add in both; the eager ``v + (-1)·(1·θ)`` of a spiking neuron is exactly ``u - θ`` and
``v + (-1)·(0·θ) = v + (-0.0)`` of a silent one is exactly ``u``; the eager zero reset
multiplies by the bool ``~s``, i.e. by 1.0 or 0.0, as the kernel does.

The kernel is plain C99 (no PyTorch headers), compiled with the system's C compiler the first
time it is needed (about a second) into ``$XDG_CACHE_HOME/bsnn_bindsnet`` (or
``BSNN_KERNEL_DIR``), written atomically, and called through :mod:`ctypes`, which releases the
GIL, so a large layer is split over ``torch.get_num_threads()`` Python threads. Where there is
no compiler, the cache cannot be written, the tensors are not plain dense float32 tensors in
one memory order, or ``BSNN_FUSED_IF=0``, :func:`if_step_fused` returns ``None`` and the caller
runs the eager step; :func:`status` says which and why.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["KERNELS", "RESETS", "check_kernel", "fused_reset", "if_step_fused", "kernels_used", "restore_kernel",
           "set_kernel", "status"]

SOURCE = r"""
#include <stdint.h>
/* th[i % p] is the threshold of element i; n is a multiple of p. */
static void subtract(float *restrict v, const float *restrict x, const float *restrict th,
                     int64_t n, uint8_t *restrict s) {
    for (int64_t i = 0; i < n; ++i) {
        const float u = v[i] + x[i];
        const int k = u >= th[i];
        s[i] = (uint8_t)k; v[i] = u - (k ? th[i] : 0.0f);
    }
}
static void to_zero(float *restrict v, const float *restrict x, const float *restrict th,
                    int64_t n, uint8_t *restrict s) {
    for (int64_t i = 0; i < n; ++i) {
        const float u = v[i] + x[i];
        const int k = u >= th[i];
        s[i] = (uint8_t)k; v[i] = u * (k ? 0.0f : 1.0f);
    }
}
static void subtract1(float *restrict v, const float *restrict x, const float t, int64_t n,
                      uint8_t *restrict s) {
    for (int64_t i = 0; i < n; ++i) {
        const float u = v[i] + x[i];
        const int k = u >= t;
        s[i] = (uint8_t)k; v[i] = u - (k ? t : 0.0f);
    }
}
static void to_zero1(float *restrict v, const float *restrict x, const float t, int64_t n,
                     uint8_t *restrict s) {
    for (int64_t i = 0; i < n; ++i) {
        const float u = v[i] + x[i];
        const int k = u >= t;
        s[i] = (uint8_t)k; v[i] = u * (k ? 0.0f : 1.0f);
    }
}
/* reset 0: subtract, 1: to zero; p == 1: one threshold for all. */
void bsnn_if_step(float *v, const float *x, const float *th, int64_t n, int64_t p,
                  uint8_t *s, int reset) {
    if (p == 1) {
        if (reset == 0) subtract1(v, x, th[0], n, s); else to_zero1(v, x, th[0], n, s);
        return;
    }
    for (int64_t b = 0; b < n; b += p) {
        if (reset == 0) subtract(v + b, x + b, th, p, s + b);
        else to_zero(v + b, x + b, th, p, s + b);
    }
}
"""
#: The resets the kernel implements: a neuron model class opts in with a ``fused`` class
#: attribute naming one (:class:`~bsnn_bindsnet.snn.neurons.MembraneSubtract`: ``"subtract"``,
#: :class:`~bsnn_bindsnet.snn.neurons.MembraneReset`: ``"zero"``). It is read from the class
#: itself, not inherited, so a subclass that changes the reset never runs the parent's kernel.
RESETS = {"subtract": 0, "zero": 1}
#: ``kernel`` settings of an IF layer: ``"auto"`` (fused where it runs) or ``"eager"``.
KERNELS = ("auto", "eager")
# -fno-trapping-math lets the compiler vectorize the compare-and-select (it changes no
# result, only which floating-point exception flags may be raised); no -ffast-math and no
# FMA contraction, so every operation rounds as PyTorch's eager kernels do.
_FLAGS = ("-O3", "-fPIC", "-shared", "-std=c99", "-fno-fast-math", "-fno-trapping-math",
          "-ffp-contract=off")
_MIN_SPLIT = 1 << 20  # elements per thread below which one call is cheaper than a split
_state: dict = {"lib": None, "why": None}
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0


def _cache_dir() -> Path:
    if os.environ.get("BSNN_KERNEL_DIR"):
        return Path(os.environ["BSNN_KERNEL_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bsnn_bindsnet"


def _compile() -> ctypes.CDLL:
    cc = shlex.split(os.environ.get("CC", "")) or [c for c in (shutil.which("cc") or
                                                           shutil.which("gcc"),) if c]
    if not cc:
        raise OSError("no C compiler (cc or gcc) on PATH")
    # the library is built for this compiler, platform and architecture (a home folder may
    # be shared by machines of different kinds)
    key = hashlib.sha256((SOURCE + " ".join((*_FLAGS, *cc)) + sys.platform
                          + platform.machine()).encode()).hexdigest()
    lib = _cache_dir() / f"fused_if-{key[:16]}.so"
    if not lib.exists():
        lib.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
            src, out = Path(tmp) / "fused_if.c", Path(tmp) / "fused_if.so"
            src.write_text(SOURCE)
            done = subprocess.run([*cc, *_FLAGS, str(src), "-o", str(out)],
                                  capture_output=True, text=True, errors="replace", timeout=120)
            if done.returncode != 0:
                raise OSError(f"{' '.join(cc)} failed: {done.stderr.strip()[:300]}")
            os.replace(out, lib)  # atomic: a reader never sees half a library
    dll = ctypes.CDLL(str(lib))
    f = dll.bsnn_if_step
    f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                  ctypes.c_int64, ctypes.c_void_p, ctypes.c_int]
    f.restype = None
    return dll


def _lib() -> ctypes.CDLL | None:
    if _state["lib"] is None and _state["why"] is None:
        if os.environ.get("BSNN_FUSED_IF", "1") == "0":
            _state["why"] = "disabled by BSNN_FUSED_IF=0"
        else:
            try:
                _state["lib"] = _compile()
            except Exception as err:  # noqa: BLE001 - any failure: the eager step runs
                _state["why"] = f"kernel unavailable: {type(err).__name__}: {err}"
    return _state["lib"]


def status() -> str:
    """``"fused"`` when the kernel is loaded, else the reason the eager step runs."""
    return "fused" if _lib() is not None else str(_state["why"])


def _dense_same_order(v: Tensor, x: Tensor) -> bool:
    if v.dtype != torch.float32 or x.dtype != torch.float32 or v.device.type != "cpu":
        return False
    if x.device.type != "cpu" or x.shape != v.shape or x.stride() != v.stride():
        return False
    if v.dim() == 4:
        return v.is_contiguous(memory_format=torch.channels_last) or v.is_contiguous()
    return v.is_contiguous()


def _thresholds(thresh: Tensor, v: Tensor) -> Tensor | None:
    """θ as one value, or one per element of a sample in ``v``'s memory order."""
    if thresh.dtype != torch.float32 or thresh.device.type != "cpu":
        return None
    if thresh.numel() == 1:
        return thresh.reshape(1).contiguous()
    one = torch.empty_like(v[:1])  # keeps v's memory format
    try:
        one.copy_(thresh.broadcast_to(one.shape))
    except RuntimeError:  # not one threshold per element of a sample: not ours to run
        return None
    return one


def fused_reset(reset: object) -> str | None:
    """The kernel's name for the reset strategy ``reset`` (its class's own ``fused``), or None."""
    name = type(reset).__dict__.get("fused")
    return name if name in RESETS else None


def if_step_fused(v: Tensor, x: Tensor, thresh: Tensor, reset: object) -> Tensor | None:
    """One IF step in place on ``v``, the eager
    :func:`~bsnn_bindsnet.snn.functional.if_step_` of the reset strategy ``reset``, returning
    the bool spikes; None where the kernel cannot run (then nothing was changed)."""
    label = fused_reset(reset)
    if label is None or not isinstance(thresh, Tensor) or v.requires_grad or x.requires_grad:
        return None
    if v.dim() < 2 or not _dense_same_order(v, x) or v.shape[0] == 0:
        return None
    if v.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
        return None  # x aliases v: the eager step decides what that means
    lib = _lib()
    th = _thresholds(thresh, v) if lib is not None else None
    if th is None:
        return None
    s = torch.empty_like(v, dtype=torch.bool)
    if s.stride() != v.stride():
        return None
    n, batch = v.numel(), v.shape[0]
    period = 1 if th.numel() == 1 else n // batch
    args = (v.data_ptr(), x.data_ptr(), th.data_ptr(), s.data_ptr(), RESETS[label])
    threads = min(torch.get_num_threads(), batch, max(1, n // _MIN_SPLIT))
    torch.autograd.graph.increment_version(v)  # v is written in place, as by an in-place op
    if threads <= 1:
        _call(lib, args, 0, n, period)
        return s
    global _pool, _pool_pid
    if _pool is None or _pool._max_workers < threads or _pool_pid != os.getpid():
        # a forked child (a DataLoader worker) inherits the pool object but not its threads
        if _pool is not None and _pool_pid == os.getpid():
            _pool.shutdown(wait=False)
        _pool, _pool_pid = ThreadPoolExecutor(threads, thread_name_prefix="bsnn-if"), os.getpid()
    rows = [batch * k // threads for k in range(threads + 1)]
    per = n // batch
    jobs = [_pool.submit(_call, lib, args, rows[k] * per, rows[k + 1] * per, period)
            for k in range(threads)]
    for job in jobs:
        job.result()
    return s


def _call(lib: ctypes.CDLL, args: tuple, start: int, stop: int, period: int) -> None:
    v, x, th, s, reset = args
    lib.bsnn_if_step(v + 4 * start, x + 4 * start, th, stop - start, period, s + start, reset)


def check_kernel(kernel: str) -> str:
    """``kernel`` if it names one of :data:`KERNELS`, else a ``ValueError``."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown neuron kernel {kernel!r}; expected one of {KERNELS}")
    return kernel


def set_kernel(network, kernel: str | None) -> dict[str, str]:
    """Set ``kernel`` (:data:`KERNELS`; None keeps each layer's own) on every IF layer of
    ``network`` (those with a ``kernel`` attribute) and forget what ran before (for
    :func:`kernels_used`); returns their previous settings for :func:`restore_kernel`."""
    if kernel is not None:
        check_kernel(kernel)
    before = {}
    for name, layer in network.layers.items():
        if hasattr(layer, "kernel"):
            before[name], layer.last_kernel = layer.kernel, None
            layer.kernel = layer.kernel if kernel is None else kernel
    return before


def restore_kernel(network, before: dict[str, str]) -> None:
    """Undo :func:`set_kernel`."""
    for name, kernel in before.items():
        network.layers[name].kernel = kernel


def kernels_used(network) -> dict[str, str]:
    """Layer -> how its IF steps ran since :func:`set_kernel` (``"fused"``, ``"eager"``, or
    ``"mixed"`` when some steps could not take the kernel)."""
    return {name: layer.last_kernel for name, layer in network.layers.items()
            if getattr(layer, "last_kernel", None) is not None}
