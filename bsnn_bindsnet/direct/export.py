r"""Batch-norm folding and export of a :class:`~bsnn_bindsnet.direct.model.DirectBSNN` to the
same plan / BindsNET network as the conversion route.

A hidden block computes :math:`y = \gamma(\alpha\,\mathrm{pool}(W_b * o) - \mu)/\sigma + \beta`
and its IF neurons compare the running sum of :math:`y` with :math:`\theta`. With
:math:`k = \gamma\alpha/\sigma > 0` that is the same as integrating the *integer* MAC plus a
bias and comparing with a folded threshold (Eq. 6-7, generalized to an affine BN):

.. math:: z = \mathrm{pool}(W_b * o) + b, \quad b = (\beta\sigma/\gamma - \mu)/\alpha, \quad
          \hat\theta = \sigma\theta/(\gamma\alpha),

and the soft reset subtracts :math:`\hat\theta`. For :math:`k < 0` the comparison flips; negating
that output channel's signs and bias restores it (the row stays binary) with
:math:`\hat\theta = \sigma\theta/(|\gamma|\alpha)`. The full-precision first block folds the
same way with :math:`\alpha = 1` and real weights. A residual block's second synapse reuses
the (possibly negated) signs with scale :math:`f` and no bias.

Folding divides every potential and threshold by :math:`k`, which is exact for a neuron model
whose reset is positively homogeneous, :math:`R(kv, s, k\theta) = k R(v, s, \theta)` (the
subtractive and the zero reset, a leak, a clamp at :math:`-\theta`); the model's name is kept in
the plan, and a model without that property is refused by name (:func:`check_foldable`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from bsnn_bindsnet.ann.binarize import BinaryConv2d, BinaryLinear
from bsnn_bindsnet.snn.neurons import get_neuron, unsupported
from bsnn_bindsnet.snn.plan import (INPUT, READOUT, BSNNPlan, ConvSynapse, LayerSpec,
                                    LinearSynapse, PlanInfo, Residual, WeightSynapse)


def fold_batchnorm(alpha: Tensor, bn: nn.modules.batchnorm._BatchNorm,
                   theta: float) -> tuple[Tensor, Tensor, Tensor]:
    r"""``(flip, bias, thresh)`` per output channel: ``flip`` is ``+1``/``-1`` (the sign of
    :math:`\gamma\alpha`), ``bias`` :math:`\mathrm{flip}\cdot(\beta\sigma/\gamma - \mu)/\alpha`,
    ``thresh`` :math:`\sigma\theta/|\gamma\alpha|` (see the module docstring).

    Raises:
        ValueError: a channel with :math:`\gamma = 0` or :math:`\alpha = 0` (its neurons see a
            constant current: no threshold to fold into).
    """
    sigma = (bn.running_var + bn.eps).sqrt().double()
    mu = bn.running_mean.double()
    gamma = bn.weight.detach().double() if bn.affine else torch.ones_like(mu)
    beta = bn.bias.detach().double() if bn.affine else torch.zeros_like(mu)
    alpha = torch.as_tensor(alpha).double().expand_as(mu)
    k = gamma * alpha / sigma
    if (k == 0).any():
        bad = torch.nonzero(k == 0).flatten().tolist()
        raise ValueError(f"channels {bad} have a batch-norm scale (or alpha) of 0; expected "
                         "non-zero gamma and alpha to fold into thresholds")
    flip = torch.sign(k)
    bias = flip * (beta * sigma / gamma - mu) / alpha
    thresh = theta / k.abs()
    return flip.float(), bias.float(), thresh.float()


def _pool_args(pool: nn.Module) -> dict[str, Any] | None:
    if isinstance(pool, nn.Identity):
        return None
    return {"kernel_size": pool.kernel_size, "stride": pool.stride, "padding": pool.padding,
            "ceil_mode": pool.ceil_mode}


def _synapse(module: nn.Module, flip: Tensor, bias: Tensor | None, pool: nn.Module,
             *, scale: float | None = None) -> WeightSynapse:
    view = (-1, 1, 1, 1) if isinstance(module, nn.Conv2d) else (-1, 1)
    if isinstance(module, (BinaryConv2d, BinaryLinear)):
        sign, _ = module.export_weight()
        weights = {"sign": (sign * flip.view(view)).to(torch.int8),
                   "scale": torch.full((sign.shape[0],), 1.0 if scale is None else scale)}
    else:
        w = module.weight.detach() * flip.view(view)
        weights = {"weight": w if scale is None else w * scale}
    if isinstance(module, nn.Conv2d):
        return ConvSynapse(bias=bias, stride=module.stride, padding=module.padding,
                           pool=_pool_args(pool), **weights)
    return LinearSynapse(bias=bias, **weights)


def check_foldable(reset: str) -> None:
    r"""Refuse a neuron model whose reset does not commute with a positive rescaling of the
    potential and the threshold (tried on a fixed set of values at :math:`k = 1/2` and 3).

    Raises:
        NotImplementedError: naming the model.
    """
    neuron = get_neuron(reset)
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(64, generator=gen, dtype=torch.float64) * 2
    thresh = torch.rand(64, generator=gen, dtype=torch.float64) + 0.25
    s = v >= thresh
    base = neuron(v, s, thresh)
    for k in (0.5, 3.0):
        if not torch.allclose(neuron(k * v, s, k * thresh), k * base, rtol=1e-9, atol=1e-12):
            raise NotImplementedError(unsupported(
                reset, "the direct route's export", "batch-norm folding rescales potentials "
                "and thresholds by k > 0, and its reset R does not satisfy R(k v, s, k theta) "
                "= k R(v, s, theta)"))


def _readout_synapse(model: nn.Module) -> LinearSynapse:
    r"""The readout, with its batch-norm (Algorithm 1, step 19, ``readout_norm``) folded:
    :math:`\gamma(W o - \mu)/\sigma + \beta = (\gamma/\sigma) W o + (\beta - \gamma\mu/\sigma)`, the
    bias added at every step as the BN was; exact for any sign of :math:`\gamma` (no
    threshold)."""
    w = model.readout.weight.detach().clone()
    bn = getattr(model, "readout_norm", None)
    if bn is None:
        return LinearSynapse(weight=w)
    sigma = (bn.running_var + bn.eps).sqrt()
    gamma = bn.weight.detach() if bn.affine else torch.ones_like(sigma)
    beta = bn.bias.detach() if bn.affine else torch.zeros_like(sigma)
    return LinearSynapse(weight=w * (gamma / sigma)[:, None],
                         bias=beta - gamma * bn.running_mean / sigma)


def direct_to_plan(model: nn.Module) -> BSNNPlan:
    """The folded plan of a trained :class:`~bsnn_bindsnet.direct.model.DirectBSNN`: layers
    ``block1`` ... ``blockN`` (the model's neuron model and v(0), per-channel thresholds) and
    ``readout``; binary blocks have scale 1 (integer MAC) and the folded bias."""
    from bsnn_bindsnet.direct.model import DirectBSNN

    if not isinstance(model, DirectBSNN):
        raise TypeError(f"expected a DirectBSNN, got {type(model).__name__}; ANNs are "
                        "converted with bsnn_bindsnet.conversion.convert.ann_to_bsnn")
    check_foldable(model.reset)
    layers: list[LayerSpec] = []
    names = [INPUT]
    for i, block in enumerate(model.blocks):
        syn_mod, bn, pool = model.synapses[i], model.norms[i], model.pools[i]
        alpha = (syn_mod.export_weight()[1].reshape(-1)
                 if isinstance(syn_mod, (BinaryConv2d, BinaryLinear)) else torch.tensor(1.0))
        flip, bias, thresh = fold_batchnorm(alpha, bn, model.theta)
        name = f"block{i + 1}"
        residual = None
        if block.residual:
            residual = Residual(names[-2], _synapse(syn_mod, flip, None, pool,
                                                    scale=model.residual_factor))
        layers.append(LayerSpec(name, "if", tuple(model.shapes[i + 1]), names[-1],
                                _synapse(syn_mod, flip, bias, pool), thresh=thresh,
                                residual=residual))
        names.append(name)
    readout = _readout_synapse(model)
    layers.append(LayerSpec(READOUT, "readout", (model.num_classes,), names[-1], readout))
    return BSNNPlan(model.input_shape, layers, reset=model.reset, v_init=model.v_init,
                    info=PlanInfo(route="direct", timesteps=model.timesteps,
                                  residual_factor=model.residual_factor, theta=model.theta,
                                  encoding=model.coding, blocks=list(model.codes)))


def direct_to_bsnn(model: nn.Module) -> Any:
    """A BindsNET ``Network`` of the folded plan (see :func:`direct_to_plan`)."""
    from bsnn_bindsnet.snn.network import build_network

    return build_network(direct_to_plan(model))
