r"""Exact integer arithmetic for binary connections fed by spikes.

A binary connection computes :math:`I = \alpha \odot (\operatorname{sign}(W) \ast s) + b`
with spikes :math:`s \in \{0, 1\}` and signs :math:`\pm 1`. The product
:math:`\operatorname{sign}(W) \ast s` is a sum of :math:`\pm 1` terms, an integer of magnitude at
most the fan-in :math:`K`. Three arithmetics compute it:

- ``"float"``: ``F.conv2d`` / ``F.linear`` in float32 on the spikes cast to float. Every
  partial sum is an integer below :math:`2^{24}` in magnitude, so float32 holds it exactly, in
  any summation order.
- ``"onednn"`` (CPU): oneDNN's int8 convolution / matrix product, ``uint8`` spikes (the bool
  spikes' own bytes, no copy) times ``int8`` signs, exact ``int32`` accumulation, float32
  output with :math:`\alpha` applied by the kernel as its per-channel weight scale
  (source and output scales 1).
- ``"int_mm"``: ``torch._int_mm`` (``int8`` x ``int8`` -> ``int32``), on a channels-last im2col
  for convolutions; cuBLASLt on CUDA, where it needs sizes that are multiples of 8 (the
  weights are padded with zero rows / columns, and batches of at most 16 rows with zero rows).

**Why the results are bitwise identical.** The three compute the same integer :math:`z`
exactly (float32 represents every integer up to :math:`2^{24}`, and :math:`|z| \le K`). Each
then forms the float32 product :math:`z \cdot \alpha_c` once: the same two operands, one IEEE
rounding, so the same float. The bias (if any) is then added by the same float operation in
every arithmetic. So currents, potentials and spikes match bit for bit
(``tests/test_connections_integer.py``). This needs the float path to scale the sum,
:math:`(\operatorname{sign}(W) \ast s)\,\alpha`, rather than convolve with
:math:`\alpha \operatorname{sign}(W)`; :class:`~bsnn_bindsnet.snn.connections.BinaryConv2dConnection`
and :class:`~bsnn_bindsnet.snn.connections.BinaryConnection` do.

**Average pooling** of a binary convolution's current is applied to the integer sums before
:math:`\alpha` (:math:`\alpha\,\operatorname{pool}(z)`, the order of the paper's binary
accumulate). Where the average of integers is exact (window area a power of two, whole
windows: :func:`pool_fold`), the integer path folds the pool into the convolution
(:func:`pooled_kernel`: one convolution with stride :math:`s_c s_p`; for a 3x3 kernel and a
2x2 pool, 16 accumulates per input channel and pooled output instead of 4 x 9) and applies :math:`\alpha / A` once: :math:`z_p (\alpha / A)` and
:math:`(z_p / A)\,\alpha` are the same real number (division by a power of two is exact), so
one rounding gives the same float. Other pools run on the exact float sums, as the float path.

``"auto"`` picks ``"onednn"`` on a CPU whose PyTorch build has oneDNN's int8 kernels,
``"int_mm"`` on CUDA where the sizes are multiples of 8 without padding, and ``"float"``
otherwise (on this project's AVX2 CPU ``torch._int_mm`` falls back to a slow reference loop,
and oneDNN's int8 convolution is 2-3x faster than its float32 one:
``benchmarks/binary_arithmetic.py``). Inputs that are not bool spikes (an analog input
layer) always take the float path.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ARITHMETICS", "IntegerKernel", "arithmetic_used", "check_arithmetic",
           "im2col_nhwc", "onednn_int8_available", "pool_fold", "pooled_kernel",
           "resolve_arithmetic", "restore_arithmetic", "set_arithmetic"]

ARITHMETICS = ("auto", "float", "onednn", "int_mm")
"""The arithmetics a binary connection can use (see the module docstring)."""

Pair = tuple[int, int]


def check_arithmetic(arithmetic: str) -> str:
    """``arithmetic`` if it names one of :data:`ARITHMETICS`, else a ``ValueError``."""
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"unknown arithmetic {arithmetic!r}; expected one of {ARITHMETICS}")
    return arithmetic


@functools.cache
def onednn_int8_available() -> bool:
    """Whether this PyTorch build runs oneDNN's int8 convolution and matrix product on the CPU
    (checked once, on a 1x1x3x3 example, against the exact answer)."""
    ops = getattr(torch.ops, "onednn", None)
    if not torch.backends.mkldnn.is_available() or ops is None:
        return False
    try:
        s = torch.tensor([[[[1, 0, 1], [0, 1, 0], [1, 1, 0]]]], dtype=torch.uint8)
        w = torch.ones(8, 1, 3, 3, dtype=torch.int8)
        one = torch.ones(8)
        packed = ops.qconv_prepack(w, one, 1.0, 0, [1, 1], [0, 0], [1, 1], 1, None)
        out = ops.qconv2d_pointwise(s, 1.0, 0, packed, one, torch.zeros(8, dtype=torch.int64),
                                    None, [1, 1], [0, 0], [1, 1], 1, 1.0, 0, torch.float32,
                                    "none", [], "")
        lin = ops.qlinear_pointwise(s.view(1, 9), 1.0, 0, ops.qlinear_prepack(w.view(8, 9), None),
                                    one, torch.zeros(8, dtype=torch.int64), None, 1.0, 0,
                                    torch.float32, "none", [], "")
    except (RuntimeError, AttributeError, NotImplementedError):
        return False
    return bool((out == 5).all()) and bool((lin == 5).all())


def resolve_arithmetic(arithmetic: str, device: torch.device, fan_in: int, n_out: int) -> str:
    """The arithmetic a connection runs for ``arithmetic`` on ``device``.

    ``"auto"`` becomes ``"onednn"`` on a CPU with oneDNN's int8 kernels, ``"int_mm"`` on CUDA
    when ``fan_in`` and ``n_out`` are multiples of 8, else ``"float"``.

    Raises:
        ValueError: an unknown name, or ``"onednn"`` asked for where it cannot run.
    """
    check_arithmetic(arithmetic)
    if arithmetic == "auto":
        if device.type == "cpu" and onednn_int8_available():
            return "onednn"
        if device.type == "cuda" and fan_in % 8 == 0 and n_out % 8 == 0:
            return "int_mm"
        return "float"
    if arithmetic == "onednn" and not (device.type == "cpu" and onednn_int8_available()):
        raise ValueError(f"arithmetic='onednn' needs a CPU tensor and a PyTorch build with "
                         f"oneDNN's int8 kernels; got device {device}"
                         + ("" if device.type != "cpu" else " without them")
                         + "; use 'auto', 'float' or 'int_mm'")
    return arithmetic


def im2col_nhwc(x: Tensor, kernel: Pair, stride: Pair, padding: Pair) -> Tensor:
    """Patches of ``x`` ``[B, C, H, W]`` as rows ``[B * H' * W', kh * kw * C]`` (columns ordered
    kh, kw, C), for any dtype; one copy when ``x`` is channels-last."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    hwc = x.permute(0, 2, 3, 1)
    if ph or pw:
        hwc = F.pad(hwc, (0, 0, pw, pw, ph, ph))
    patches = hwc.unfold(1, kh, sh).unfold(2, kw, sw)  # [B, H', W', C, kh, kw]
    b, oh, ow = patches.shape[:3]
    return patches.permute(0, 1, 2, 4, 5, 3).reshape(b * oh * ow, -1)


def _pad_to(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class IntegerKernel:
    r"""The integer product :math:`\alpha \odot (\operatorname{sign}(W) \ast s)` of one binary
    connection, in float32, for bool spikes ``s``.

    Holds only the geometry and a cache of packed weights, prepared on first use for each
    device and input shape and keyed by the identity and version of ``sign``, so that packs
    of replaced or edited signs are never reused.

    Args:
        conv: A convolution (``sign`` ``[out, in, kh, kw]``) or a linear map (``[out, in]``).
        stride, padding: Of the convolution.
    """

    def __init__(self, conv: bool, stride: Pair = (1, 1), padding: Pair = (0, 0)) -> None:
        self.conv, self.stride, self.padding = conv, tuple(stride), tuple(padding)
        self._packed: dict[tuple, Tensor] = {}

    def clear(self) -> None:
        """Forget the packed weights."""
        self._packed.clear()

    def __getstate__(self) -> dict:
        """Copies and pickles leave the packed weights (opaque oneDNN tensors) behind."""
        return {**self.__dict__, "_packed": {}}

    def __call__(self, s: Tensor, sign: Tensor, scale: Tensor, arithmetic: str) -> Tensor:
        """``s``: bool ``[B, C, H, W]`` or ``[B, in]``; ``sign``: ``int8``; ``scale``: float32
        ``[out]``; ``arithmetic``: ``"onednn"`` or ``"int_mm"``. Returns float32
        ``[B, out, H', W']`` (channels-last) or ``[B, out]``."""
        if arithmetic == "onednn":
            return self._onednn(s, sign, scale)
        if arithmetic == "int_mm":
            return self._int_mm(s, sign, scale)
        raise ValueError(f"IntegerKernel runs 'onednn' or 'int_mm', not {arithmetic!r}")

    def _pack(self, sign: Tensor, key: tuple, make) -> Tensor:
        key = (sign.data_ptr(), sign._version, *key)
        packed = self._packed.get(key)
        if packed is None:
            if len(self._packed) >= 8:  # early exit shrinks the batch step by step
                self._packed.clear()
            packed = self._packed[key] = make()
        return packed

    def _onednn(self, s: Tensor, sign: Tensor, scale: Tensor) -> Tensor:
        ops = torch.ops.onednn
        u8 = s.view(torch.uint8)  # bool holds 0 / 1 bytes: no copy
        zero = torch.zeros(scale.numel(), dtype=torch.int64)
        if not self.conv:
            u8 = u8.contiguous()
            packed = self._pack(sign, ("linear", tuple(u8.shape)),
                                lambda: ops.qlinear_prepack(sign, list(u8.shape)))
            return ops.qlinear_pointwise(u8, 1.0, 0, packed, scale, zero, None, 1.0, 0,
                                         torch.float32, "none", [], "")
        stride, padding = list(self.stride), list(self.padding)
        packed = self._pack(sign, ("conv", tuple(u8.shape)), lambda: ops.qconv_prepack(
            sign, scale, 1.0, 0, stride, padding, [1, 1], 1, list(u8.shape)))
        return ops.qconv2d_pointwise(u8, 1.0, 0, packed, scale, zero, None, stride, padding,
                                     [1, 1], 1, 1.0, 0, torch.float32, "none", [], "")

    def _int_mm(self, s: Tensor, sign: Tensor, scale: Tensor) -> Tensor:
        i8 = s.view(torch.int8)
        n_out = sign.shape[0]
        if self.conv:
            kh, kw = sign.shape[2:]
            rows = im2col_nhwc(i8, (kh, kw), self.stride, self.padding)
            b, (oh, ow) = s.shape[0], self._out_hw(s.shape[2:], (kh, kw))
        else:
            rows = i8.reshape(s.shape[0], -1)
        cuda = rows.device.type == "cuda"
        k = rows.shape[1]
        k_pad, n_pad = (_pad_to(k, 8), _pad_to(n_out, 8)) if cuda else (k, n_out)

        def weight_rows() -> Tensor:  # [N, K] in the im2col column order, zero-padded
            w = sign.permute(0, 2, 3, 1) if self.conv else sign
            w = w.reshape(n_out, -1).to(rows.device)
            return F.pad(w, (0, k_pad - k, 0, n_pad - n_out)).contiguous()

        wmat = self._pack(sign, ("int_mm", rows.device, k_pad, n_pad), weight_rows)
        m = rows.shape[0]
        if k_pad != k or (cuda and m <= 16):
            rows = F.pad(rows, (0, k_pad - k, 0, max(0, 17 - m) if cuda else 0))
        acc = torch._int_mm(rows.contiguous(), wmat.t())[:m, :n_out]
        out = acc.to(torch.float32).mul_(scale)
        if not self.conv:
            return out
        return out.reshape(b, oh, ow, n_out).permute(0, 3, 1, 2)

    def _out_hw(self, hw, kernel: Pair) -> Pair:
        return tuple((size + 2 * p - k) // st + 1  # type: ignore[return-value]
                     for size, k, st, p in zip(hw, kernel, self.stride, self.padding))


def set_arithmetic(network, arithmetic: str) -> dict[tuple[str, str], str]:
    """Set ``arithmetic`` on every binary connection of ``network`` (those with an
    ``arithmetic`` attribute); returns their previous settings, keyed as
    ``network.connections``, for :func:`restore_arithmetic`.

    Raises:
        ValueError: an unknown ``arithmetic``.
    """
    check_arithmetic(arithmetic)
    before = {}
    for key, conn in network.connections.items():
        if hasattr(conn, "arithmetic"):
            before[key], conn.arithmetic = conn.arithmetic, arithmetic
    return before


def restore_arithmetic(network, before: dict[tuple[str, str], str]) -> None:
    """Undo :func:`set_arithmetic`."""
    for key, arithmetic in before.items():
        network.connections[key].arithmetic = arithmetic


def arithmetic_used(network) -> dict[str, str]:
    """``"source->target"`` -> the arithmetic the binary connection ran at its last
    ``compute`` (``"float"``, ``"onednn"`` or ``"int_mm"``), for those that have run."""
    return {f"{src}->{tgt}": conn.last_arithmetic
            for (src, tgt), conn in network.connections.items()
            if getattr(conn, "last_arithmetic", None) is not None}


def pool_fold(pool, conv_stride: Pair) -> tuple[Pair, Pair, int] | None:
    r"""How an average pool after a convolution folds into the convolution, on integer sums.

    :math:`\operatorname{avgpool}(\operatorname{sign}(W) \ast s)` equals
    :math:`(W_p \ast s) / A` with stride :math:`s_c s_p`, where :math:`A` is the window area
    and :math:`W_p` sums the :math:`A` copies of the signs shifted by the conv stride
    (:func:`pooled_kernel`): one convolution instead of a convolution and a pool (for a 3x3
    kernel and a 2x2 pool, 16 accumulates per pooled output and input channel instead of
    36). It is exact, and gives the same float as pooling the float
    sums, when the division by :math:`A` is (a power of two) and every window is whole
    (no padding, no ``ceil_mode``, no ``divisor_override``).

    Returns:
        ``(window, stride, area)`` of the folded pool, or None if it cannot be folded exactly.
    """
    kernel, stride = _as_pair(pool.kernel_size), _as_pair(pool.stride or pool.kernel_size)
    area = kernel[0] * kernel[1]
    if (_as_pair(pool.padding) != (0, 0) or pool.ceil_mode or pool.divisor_override
            or area & (area - 1) or area > 64):
        return None
    return kernel, (conv_stride[0] * stride[0], conv_stride[1] * stride[1]), area


def pooled_kernel(sign: Tensor, conv_stride: Pair, window: Pair) -> Tensor:
    """The signs ``[O, I, kh, kw]`` summed over the pool ``window``, each copy shifted by the
    conv stride: ``int8 [O, I, kh + (ph - 1) sh, kw + (pw - 1) sw]`` (entries at most the
    window area in magnitude)."""
    (sh, sw), (ph, pw) = conv_stride, window
    o, i, kh, kw = sign.shape
    out = torch.zeros(o, i, kh + (ph - 1) * sh, kw + (pw - 1) * sw, dtype=torch.int16,
                      device=sign.device)
    for dy in range(ph):
        for dx in range(pw):
            out[:, :, dy * sh:dy * sh + kh, dx * sw:dx * sw + kw] += sign
    return out.to(torch.int8)


def _as_pair(v) -> Pair:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))
