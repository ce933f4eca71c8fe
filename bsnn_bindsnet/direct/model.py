r"""The directly trained B-SNN (XNOR-BSNN): binary-weight conv/linear blocks with batch-norm
and IF neurons, residual inputs from layer :math:`l-2`, Poisson-coded input, and a readout
that integrates over :math:`T`.

Block :math:`l` (1-based) computes, at every step :math:`t`,

.. math:: x^{t,l} = \mathrm{BN}\big(\mathrm{pool}(\alpha W_b (o^{t,l-1} + f\,o^{t,l-2}))\big),

the second term only for blocks in the residual schedule; IF neurons (soft reset by default,
or any registered neuron model the direct route supports) turn it into spikes :math:`o^{t,l}` (:func:`~bsnn_bindsnet.direct.surrogate.if_sequence`). Block 1
sees the coded input (Poisson spikes, or the analog input as a constant current) and keeps
full-precision weights, as does the readout :math:`u^{T,L} = \sum_t W_L o^{t,L-1}` whose
cross-entropy is the loss.

The network is evaluated layer by layer over all steps at once: a block's synapse runs as one
batched call on ``[T*B, ...]`` (block :math:`l` at step :math:`t` needs only block
:math:`l-1` at step :math:`t`), so the result equals the step-by-step order BindsNET uses.
Batch-norm sees the ``T*B`` currents of a batch (one set of statistics over all steps).

Architectures are lists of block codes: ``c<out>`` a 3x3 conv (padding 1), ``f<out>`` a
linear layer; suffix ``p``: 2x2 average pooling of the current (before BN); suffix ``r``:
residual input from block :math:`l-2` (its spikes must have the shape of block
:math:`l-1`'s).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bsnn_bindsnet.ann.binarize import BinaryConv2d, BinaryLinear
from bsnn_bindsnet.direct.architectures import FMNIST_RESIDUAL
from bsnn_bindsnet.direct.surrogate import if_sequence
from bsnn_bindsnet.snn.encoding import ENCODINGS, encode
from bsnn_bindsnet.snn.neurons import NEURONS, V_INITS, unsupported

_CODE = re.compile(r"^([cf])(\d+)(p?)(r?)$")
CODINGS = ENCODINGS
# model.pt files written before residual_factor was recorded were trained with this f
LEGACY_RESIDUAL_FACTOR = 0.5


@dataclass(frozen=True)
class Block:
    """One hidden block: ``kind`` ``"conv"``/``"linear"``, ``out`` channels or features,
    2x2 average ``pool``, ``residual`` input from block l-2."""

    kind: str
    out: int
    pool: bool = False
    residual: bool = False


def parse_blocks(codes: Sequence[str]) -> tuple[Block, ...]:
    """``["c32p", "c32r", "f256"]`` -> blocks; unknown codes raise a ValueError."""
    blocks = []
    for i, code in enumerate(codes, start=1):
        m = _CODE.match(code)
        if not m:
            raise ValueError(f"block {i}: {code!r} is not a block code; expected c<out> or "
                             "f<out> with optional suffixes p (pool) and r (residual), e.g. "
                             "'c64pr'")
        kind, out, pool, res = m.groups()
        if kind == "f" and pool:
            raise ValueError(f"block {i}: {code!r}: linear blocks cannot pool")
        blocks.append(Block("conv" if kind == "c" else "linear", int(out), bool(pool), bool(res)))
    return tuple(blocks)


class DirectBSNN(nn.Module):
    """Directly trained binary-weight SNN (see the module docstring).

    Args:
        blocks: Block codes (:mod:`~bsnn_bindsnet.direct.architectures` or your own).
        input_shape: ``(C, H, W)``.
        num_classes: Readout size.
        timesteps: ``T``.
        residual_factor: ``f``, the weight of the residual input from block l-2. The
            paper's ``f`` is an indicator ("f = 1 implies the presence of the residual
            connection, otherwise f = 0"), so 1.0 is the paper's setting and the default;
            files saved before this option was recorded were trained with 0.5 and load as
            such (:data:`LEGACY_RESIDUAL_FACTOR`).
        theta: IF threshold of every hidden neuron (before BN folding).
        affine: Batch-norm with a learned scale and shift (the paper's has none).
        quant: ``"bwn"`` (binary hidden weights, the XNOR-BSNN) or ``"fp"`` (an ablation).
        coding: Input coding: ``"poisson"`` (signed spikes of the normalized input,
            :func:`~bsnn_bindsnet.snn.encoding.poisson_signed`, the paper's),
            ``"poisson-intensity"`` (0/1 spikes of the min-max scaled intensity,
            :func:`~bsnn_bindsnet.snn.encoding.poisson_intensity`) or ``"current"`` (the analog
            input every step, :func:`~bsnn_bindsnet.snn.encoding.constant_current`: the
            full-precision block 1 is the encoder, and every layer after it still
            exchanges binary spikes).
        v_init: Initial membrane potential of the hidden neurons, ``"zero"`` (the paper's)
            or ``"half"`` (:math:`\theta/2`: a neuron needs half the input to fire first, so
            spikes cross the layers in fewer steps), or any name registered in
            :data:`bsnn_bindsnet.snn.neurons.V_INITS`. Kept by the export.
        reset: The hidden neurons' model, a name in :data:`bsnn_bindsnet.snn.neurons.NEURONS`
            whose ``direct`` is true (``"subtract"``, the paper's soft reset, by default). Kept
            by the export.
        readout_norm: Batch-norm on the readout current at every step before it is integrated,
            Algorithm 1, step 19 (y = (x - mu) / sigma per class and step, with a learned
            scale and shift when ``affine``); the export folds it into the readout's weights
            and a per-step bias. Off by default so that files saved before the option load
            unchanged (``affine=False`` gives the paper's BN without scale and shift).
    """

    def __init__(self, blocks: Sequence[str] = FMNIST_RESIDUAL, *,
                 input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10,
                 timesteps: int = 8, residual_factor: float = 1.0, theta: float = 1.0,
                 affine: bool = True, quant: str = "bwn", coding: str = "poisson",
                 v_init: str = "zero", reset: str = "subtract",
                 readout_norm: bool = False) -> None:
        super().__init__()
        if quant not in ("bwn", "fp"):
            raise ValueError(f"quant must be 'bwn' or 'fp' for a direct B-SNN, got {quant!r}")
        if coding not in CODINGS:
            raise ValueError(f"coding must be one of {', '.join(CODINGS)}, got {coding!r}")
        if v_init not in V_INITS:
            raise ValueError(f"v_init must be {' or '.join(map(repr, V_INITS))}, got {v_init!r}")
        if reset not in NEURONS:
            raise ValueError(f"reset {reset!r} is unknown; expected one of {', '.join(NEURONS)}")
        if not NEURONS[reset].direct:
            raise ValueError(unsupported(reset, "the direct route", "its direct attribute is "
                                         "false (its reset cannot take surrogate spikes)"))
        if timesteps < 1:
            raise ValueError(f"timesteps must be >= 1, got {timesteps}")
        if not residual_factor >= 0:
            raise ValueError(f"residual_factor must be >= 0, got {residual_factor}")
        self.codes = tuple(blocks)
        self.blocks = parse_blocks(blocks)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.num_classes, self.timesteps = num_classes, timesteps
        self.residual_factor, self.theta, self.quant = residual_factor, theta, quant
        self.coding, self.v_init, self.reset = coding, v_init, reset
        self.synapses, self.norms, self.pools = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        self.shapes = [self.input_shape]  # spike shape after each block (0 = the input)
        for i, block in enumerate(self.blocks, start=1):
            self._add_block(i, block, affine)
        n_last = int(torch.tensor(self.shapes[-1]).prod())
        self.readout = nn.Linear(n_last, num_classes, bias=False)
        nn.init.normal_(self.readout.weight, 0, 0.01)
        self.readout_norm = nn.BatchNorm1d(num_classes, affine=affine) if readout_norm else None

    def _add_block(self, i: int, block: Block, affine: bool) -> None:
        src = self.shapes[-1]
        if block.residual and (i < 3 or self.shapes[-2] != src):
            prev = self.shapes[-2] if i >= 3 else None
            raise ValueError(f"block {i}: a residual input from block {i - 2} needs its spikes "
                             f"to have the shape of block {i - 1}'s ({src}), got {prev}")
        binary = self.quant == "bwn" and i > 1
        if block.kind == "conv":
            if len(src) != 3:
                raise ValueError(f"block {i}: a conv block after a linear one")
            syn = (BinaryConv2d(src[0], block.out, 3, padding=1) if binary
                   else nn.Conv2d(src[0], block.out, 3, padding=1, bias=False))
            nn.init.kaiming_normal_(syn.weight, mode="fan_out", nonlinearity="relu")
            h, w = src[1], src[2]
            shape = (block.out, h // 2, w // 2) if block.pool else (block.out, h, w)
            norm = nn.BatchNorm2d(block.out, affine=affine)
        else:
            n_in = int(torch.tensor(src).prod())
            syn = BinaryLinear(n_in, block.out) if binary else nn.Linear(n_in, block.out,
                                                                         bias=False)
            shape = (block.out,)
            norm = nn.BatchNorm1d(block.out, affine=affine)
        self.synapses.append(syn)
        self.norms.append(norm)
        self.pools.append(nn.AvgPool2d(2) if block.pool else nn.Identity())
        self.shapes.append(shape)

    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The coded input ``[T, B, *input_shape]`` of analog input ``x`` (``self.coding``)."""
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"input of shape {tuple(x.shape)}; expected [B, "
                             f"{', '.join(map(str, self.input_shape))}]")
        return encode(x, self.timesteps, encoding=self.coding, generator=generator).contiguous()

    def run(self, spikes: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Run on input spikes ``[T, B, *input_shape]``; returns the readout potential
        :math:`u^{T,L}` ``[B, classes]`` and every block's spikes ``[T, B, *shape]``."""
        t, b = spikes.shape[:2]
        outs = [spikes.reshape(t * b, *spikes.shape[2:])]
        v0 = float(V_INITS[self.v_init](torch.tensor(float(self.theta))))
        for i, block in enumerate(self.blocks):
            src = outs[-1]
            if block.residual:
                src = src + self.residual_factor * outs[-2]
            if block.kind == "linear":
                src = src.flatten(1)
            current = self.norms[i](self.pools[i](self.synapses[i](src)))
            o = if_sequence(current.view(t, b, *current.shape[1:]), self.theta, v0, self.reset)
            outs.append(o.reshape(t * b, *o.shape[2:]))
        current = self.readout(outs[-1].flatten(1))
        if self.readout_norm is not None:  # Algorithm 1, step 19
            current = self.readout_norm(current)
        logits = current.view(t, b, -1).sum(0)
        return logits, [o.view(t, b, *o.shape[1:]) for o in outs[1:]]

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Readout potential after ``T`` steps (the logits) for analog input ``x``."""
        return self.run(self.encode(x, generator))[0]

