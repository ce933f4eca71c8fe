r"""Conversion rules: how each ANN module type becomes part of a B-SNN plan.

:func:`~bsnn_bindsnet.conversion.convert.ann_to_bsnn` walks the ANN in order and calls, for every module,
the :data:`Rule` that :data:`DEFAULT_MAPPING` (or the caller's ``mapping``) gives its type, found
along the MRO. A rule reads and updates a :class:`ConversionState`: it runs the shape probe
through the module (:meth:`~ConversionState.advance`), holds a synapse until its neurons come
(:meth:`~ConversionState.hold`) and closes IF layers (:meth:`~ConversionState.fire`). A rule
may fix a layer's :math:`\lambda` itself (``fire(..., fixed_lambda=...)``, e.g. a clip level
learned by the ANN); such layers take no calibration statistics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from bsnn_bindsnet.ann.binarize import BinaryConv2d, BinaryLinear
from bsnn_bindsnet.ann.qcfs import QCFS
from bsnn_bindsnet.snn.plan import (INPUT, AvgPoolSynapse, ConvSynapse, LayerSpec, LinearSynapse,
                                MaxPoolSynapse, WeightSynapse)

__all__ = ["ABSORBED", "DEFAULT_MAPPING", "ConversionState", "IFActivation", "Rule", "absorb",
           "avg_pool", "max_pool", "register_rule", "synaptic", "weight_synapse"]

ABSORBED = (nn.Dropout, nn.Identity, nn.Flatten)


@dataclass
class ConversionState:
    """What a conversion rule reads and changes while the ANN is walked in order.

    Attributes:
        x: A probe ``[1, *shape]``: the output of the modules walked so far (for shapes).
        maxpool_after: The ``ann_to_bsnn`` option of that name.
        layers: The spiking layers closed so far.
        source: The last closed layer (``"input"`` at first): the source of the next synapse.
        pending: The synapse waiting for its neurons (``None``: none).
        pending_name: The module that made ``pending``.
        pending_point: The module whose output equals the pending current (conv or its pool).
        relays: Layers that pass 0/1 spikes on unchanged (:math:`\\theta = 1`,
            :math:`\\lambda` = their source's).
    """

    x: Tensor
    maxpool_after: str = "or"
    layers: list[LayerSpec] = field(default_factory=list)
    source: str = INPUT
    pending: WeightSynapse | Any | None = None
    pending_name: str = ""
    pending_point: str = ""
    relays: set[str] = field(default_factory=set)

    @property
    def shape(self) -> tuple[int, ...]:
        """The current neuron shape (without the batch dimension)."""
        return tuple(self.x.shape[1:])

    def advance(self, module: nn.Module) -> None:
        """Run the probe through ``module``."""
        self.x = module(self.x)

    def expect_free(self, name: str) -> None:
        """Refuse a second synapse while one is pending (no activation between them)."""
        if self.pending is not None:
            raise ValueError(f"{name}: {self.pending_name} and {name} follow each other "
                             "without a ReLU between them; expected synaptic layer -> ReLU")

    def hold(self, name: str, synapse: Any, point: str | None = None) -> None:
        """Make ``synapse`` (of module ``name``) the pending synapse."""
        self.expect_free(name)
        self.pending, self.pending_name, self.pending_point = synapse, name, point or name

    def fire(self, name: str, synapse: Any = None, point: str | None = None, *,
             fixed_lambda: float | None = None, relay: bool = False) -> LayerSpec:
        """Close an IF layer ``name`` of the current shape, fed by ``synapse`` (default: the
        pending one), approximating the output of module ``point`` (default: ``name``).

        Args:
            fixed_lambda: :math:`\\lambda` of the layer, if the rule knows it (no calibration
                statistics are taken for it).
            relay: The layer passes 0/1 spikes on unchanged (:math:`\\theta = 1`).
        """
        syn = self.pending if synapse is None else synapse
        if syn is None:
            raise ValueError(f"{name}: no synapse feeds this layer; expected a Conv2d or "
                             "Linear before it")
        layer = LayerSpec(name, "if", self.shape, self.source, syn, point or name,
                          fixed_lambda=None if fixed_lambda is None else float(fixed_lambda))
        self.layers.append(layer)
        if relay:
            self.relays.add(name)
        self.source, self.pending = name, None
        return layer


Rule = Callable[[ConversionState, str, nn.Module], None]
"""``rule(state, name, module)``: map one ANN module, updating the :class:`ConversionState`
(and running its probe through the module with :meth:`ConversionState.advance`)."""


def _pool_args(pool: nn.Module) -> dict[str, Any]:
    if getattr(pool, "dilation", 1) not in (1, (1, 1)):
        raise NotImplementedError(f"pooling with dilation {pool.dilation} is not supported")
    if isinstance(pool, nn.AvgPool2d) and (not pool.count_include_pad or pool.divisor_override):
        raise NotImplementedError("AvgPool2d must count padding and have no divisor_override")
    return {"kernel_size": pool.kernel_size, "stride": pool.stride, "padding": pool.padding,
            "ceil_mode": pool.ceil_mode}


def weight_synapse(module: nn.Module) -> WeightSynapse:
    """The synapse of an ``nn.Conv2d`` / ``nn.Linear`` (binary for :class:`BinaryConv2d` /
    :class:`BinaryLinear`: int8 sign and per-output scale), with copies of its tensors."""
    weights: dict[str, Any] = {}
    if isinstance(module, (BinaryConv2d, BinaryLinear)):
        sign, scale = module.export_weight()
        weights = {"sign": sign.to(torch.int8), "scale": scale.reshape(-1).clone()}
    else:
        weights = {"weight": module.weight.detach().clone()}
    bias = None if module.bias is None else module.bias.detach().clone()
    if not isinstance(module, nn.Conv2d):
        return LinearSynapse(bias=bias, **weights)
    if module.groups != 1 or module.dilation != (1, 1) or module.padding_mode != "zeros":
        raise NotImplementedError("only plain convolutions (groups=1, dilation=1, zero "
                                  "padding) can be converted")
    return ConvSynapse(bias=bias, stride=module.stride, padding=module.padding, **weights)


def absorb(state: ConversionState, name: str, module: nn.Module) -> None:
    """Rule: a module that changes no rate (dropout in eval, identity, flatten)."""
    state.advance(module)


def synaptic(state: ConversionState, name: str, module: nn.Module) -> None:
    """Rule: a ``Conv2d`` / ``Linear`` becomes the pending synapse."""
    state.expect_free(name)  # before anything else
    if isinstance(module, nn.Linear) and state.x.dim() > 2:
        state.x = state.x.flatten(1)
    state.hold(name, weight_synapse(module))
    state.advance(module)


@dataclass(frozen=True)
class IFActivation:
    """Rule: an activation becomes the IF layer that the pending synapse feeds.

    Args:
        fixed_lambda: ``module -> lambda`` when the ANN itself fixes the activation's scale
            (a clip level, a learned threshold); the layer then takes no calibration
            statistics. ``None`` (ReLU): :math:`\\lambda` is a calibration percentile.
    """

    fixed_lambda: Callable[[nn.Module], float] | None = None

    def __call__(self, state: ConversionState, name: str, module: nn.Module) -> None:
        if state.pending is None:
            raise ValueError(f"{name}: {type(module).__name__} without a synaptic layer "
                             "before it")
        state.advance(module)
        lam = None if self.fixed_lambda is None else float(self.fixed_lambda(module))
        state.fire(name, fixed_lambda=lam)


def avg_pool(state: ConversionState, name: str, module: nn.Module) -> None:
    """Rule: before the ReLU, fold into the conv (linear, exact); after it, an
    average-pooling connection into an extra IF layer."""
    pending = state.pending
    if isinstance(pending, ConvSynapse):
        if pending.pool is not None:
            raise ValueError(f"{name}: a second pooling layer after {state.pending_name} "
                             "before its ReLU; expected at most one average pool")
        state.pending = dataclasses.replace(pending, pool=_pool_args(module))
        state.pending_point = name
        state.advance(module)
    elif pending is None and state.layers:
        state.advance(module)
        state.fire(name, AvgPoolSynapse(**_pool_args(module)))
    else:
        raise ValueError(f"{name}: average pooling must follow a conv or a ReLU")


def max_pool(state: ConversionState, name: str, module: nn.Module) -> None:
    """Rule: before the ReLU, an extra IF layer after the conv, then a spike max-pool into the
    ReLU's layer; after it, a spike max-pool into a relay (``maxpool_after="or"``) or an
    extra balanced IF layer (``"if"``)."""
    if isinstance(state.pending, ConvSynapse):
        state.fire(f"{state.pending_name}_if", point=state.pending_point)  # extra IF layer
        state.advance(module)
        state.hold(name, MaxPoolSynapse(**_pool_args(module)))
    elif state.pending is None and state.layers:
        state.advance(module)
        state.fire(name, MaxPoolSynapse(**_pool_args(module)),
                   relay=state.maxpool_after == "or")
    else:
        raise ValueError(f"{name}: max pooling must follow a conv or a ReLU")


DEFAULT_MAPPING: dict[type[nn.Module], Rule] = {
    nn.Conv2d: synaptic, nn.Linear: synaptic, BinaryConv2d: synaptic, BinaryLinear: synaptic,
    nn.ReLU: IFActivation(),
    # QCFS (Bu et al. 2022): theta = lambda, the threshold the ANN learned; v(0) = theta / 2
    # is the plan's v_init="half" (the activation's shift 1/2). Extra IF layers that pooling
    # inserts (max-before, avg-after) still take their lambda from calibration statistics.
    QCFS: IFActivation(fixed_lambda=lambda m: float(m.lam.detach())),
    nn.AvgPool2d: avg_pool, nn.MaxPool2d: max_pool,
    nn.Dropout: absorb, nn.Flatten: absorb, nn.Identity: absorb,
}
"""Module type -> rule. A module's rule is found along its MRO (a subclass of ``nn.Conv2d``
uses the ``nn.Conv2d`` rule unless the mapping names it)."""


def register_rule(module_type: type[nn.Module], rule: Rule, *, replace: bool = False) -> Rule:
    """Add ``module_type -> rule`` to :data:`DEFAULT_MAPPING` (for ``bsnn convert``, which
    takes no mapping); pass ``mapping=`` to :func:`ann_to_bsnn` to leave it unchanged.

    Raises:
        ValueError: ``module_type`` already has a rule and ``replace`` is false.
    """
    if module_type in DEFAULT_MAPPING and not replace and DEFAULT_MAPPING[module_type] is not rule:
        raise ValueError(f"{module_type.__name__} already has a conversion rule; pass "
                         "replace=True to override it")
    DEFAULT_MAPPING[module_type] = rule
    return rule
