r"""ANN -> B-SNN conversion into a BindsNET ``Network``.

The ANN (an ``nn.Sequential``, nested ones are flattened) is walked in order and turned into a
*plan*: a list of :class:`~bsnn_bindsnet.snn.plan.LayerSpec` (pure data: the synapse that feeds
each spiking layer and its threshold). :func:`~bsnn_bindsnet.snn.network.build_network` turns a
plan into a BindsNET ``Network``; plans are what
``bsnn convert`` saves, because a ``Network``'s ``state_dict`` holds batch-sized runtime state.

Mapping (Lu & Sengupta 2020, Sec. 3):

- ``Conv2d``/``Linear`` (binary or full precision) followed by ``ReLU`` -> an IF layer.
- ``AvgPool2d`` before the ReLU is linear: it is folded into the conv connection (exact).
- ``AvgPool2d`` after the ReLU: an :class:`~bsnn_bindsnet.snn.connections.AvgPool2dConnection`
  into an extra IF layer, so that the next layer receives binary spikes.
- ``MaxPool2d`` before the ReLU: an extra IF layer after the conv, then a spike max-pool
  (OR) into the ReLU's IF layer (``relu(maxpool(x)) = maxpool(relu(x))``).
- ``MaxPool2d`` after the ReLU (``maxpool_after``): the max-pool of binary spikes is an OR,
  already binary, so by default (``"or"``, the paper) the pooled spikes reach the next synaptic
  layer unchanged: the pool's layer is a *relay*, an IF layer with :math:`\theta = 1` fed 0/1
  currents, which fires exactly when its input is 1 (SIF or RIF, :math:`v(0) = 0` or
  :math:`1/2`: v stays below 1 between spikes), and :math:`\lambda_{pool} = \lambda_{ReLU}`.
  ``"if"`` instead balances it as an extra IF layer (:math:`\theta = \lambda_{pool} /
  \lambda_{ReLU}`, the former default). In BindsNET's delayed mode the relay, like any
  layer, adds one step of delay.
- The last synaptic layer feeds a non-firing :class:`~bsnn_bindsnet.snn.nodes.ReadoutNodes`.
- ``Dropout``, ``Identity`` and ``Flatten`` are absorbed; any other module raises
  ``NotImplementedError`` naming it and the supported types.

Each of these is a rule of :data:`~bsnn_bindsnet.conversion.rules.DEFAULT_MAPPING` (module type ->
rule, looked up along the MRO); ``ann_to_bsnn(..., mapping=...)`` adds or replaces rules, e.g.
an activation whose scale the ANN fixes maps to an IF layer with that :math:`\lambda` and needs
no calibration (:class:`~bsnn_bindsnet.conversion.rules.IFActivation`).

Threshold balancing: with :math:`\lambda_l` the activation percentile of the ANN point that
layer ``l`` approximates (see :mod:`bsnn_bindsnet.conversion.normalize`) and :math:`\lambda_0 = 1` for
the analog input, layer ``l`` gets :math:`\theta_l = \lambda_l / \lambda_{src(l)}`: the
weights, and so the binary signs and :math:`\alpha`, stay exactly as trained. This is the
layer-wise weight scaling :math:`W_l \lambda_{l-1} / \lambda_l` with unit thresholds, moved into
the threshold. The readout's weights are not rescaled (argmax is scale-free).

Biases: every current into layer ``l`` is in units of :math:`\lambda_{src(l)}`, so each
synapse's bias (the readout's too) is divided by :math:`\lambda_{src(l)}`. With
:math:`a_{src} \approx \lambda_{src}\, r_{src}` (rates :math:`r`), the ANN computes
:math:`a_l = W a_{src} + b` and the SNN layer, fed :math:`W s + b'`, fires at
:math:`r_l = (W r_{src} + b') / \theta_l = (W a_{src} + \lambda_{src} b') / \lambda_l`, which
is :math:`a_l / \lambda_l` exactly when :math:`b' = b / \lambda_{src}`. The first layer's
source is the analog input (:math:`\lambda = 1`): its bias is unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from bsnn_bindsnet.conversion.rules import (ABSORBED, DEFAULT_MAPPING, ConversionState,
                                         IFActivation, Rule, register_rule, weight_synapse)
from bsnn_bindsnet.snn.neurons import check_neuron_options
from bsnn_bindsnet.snn.neurons import RESETS as _RESETS
from bsnn_bindsnet.snn.neurons import V_INITS as _V_INITS
from bsnn_bindsnet.conversion.normalize import activation_scales
from bsnn_bindsnet.snn.plan import INPUT, READOUT, BSNNPlan, LayerSpec, PlanInfo, WeightSynapse
from bsnn_bindsnet.data.samples import batches, check_samples, num_samples

__all__ = ["ABSORBED", "DEFAULT_MAPPING", "INPUT", "MAXPOOL_AFTER", "READOUT", "BSNNPlan",
           "ConversionState", "IFActivation", "LayerSpec", "Rule", "ann_to_bsnn",
           "plan_layers", "register_rule", "weight_synapse"]

RESETS = tuple(_RESETS)  # the names registered at import (CLI choices); checks use neurons
V_INITS = tuple(_V_INITS)
MAXPOOL_AFTER = ("or", "if")


def _flat_children(module: nn.Module, prefix: str = "",
                   seen: dict[int, str] | None = None) -> list[tuple[str, nn.Module]]:
    """Leaf children in execution order; a module instance used twice is an error (its
    statistics could not be told apart)."""
    seen = {} if seen is None else seen
    out = []
    for name, child in module._modules.items():
        full = f"{prefix}{name}"
        if child is None:
            continue
        if id(child) in seen:
            raise ValueError(f"{full}: the same {type(child).__name__} instance is also used as "
                             f"{seen[id(child)]}; expected one module per position (use "
                             "separate instances)")
        seen[id(child)] = full
        if isinstance(child, nn.Sequential):
            out += _flat_children(child, f"{full}.", seen)
        else:
            out.append((full, child))
    return out


def _rule(mapping: Mapping[type[nn.Module], Rule], name: str, module: nn.Module) -> Rule:
    for cls in type(module).__mro__:
        if cls in mapping:
            return mapping[cls]
    kind = type(module).__name__
    hint = (" (batch-norm: use the direct-training route, which folds it into thresholds)"
            if "BatchNorm" in kind else "")
    raise NotImplementedError(f"{name}: no conversion for {kind}{hint}; supported: "
                              f"{', '.join(t.__name__ for t in mapping)}")


def _walk(model: nn.Module, input_shape: Sequence[int],
          mapping: Mapping[type[nn.Module], Rule] | None = None,
          maxpool_after: str = "or") -> ConversionState:
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"expected an nn.Sequential whose children run in order, got "
                        f"{type(model).__name__}")
    mapping = DEFAULT_MAPPING if mapping is None else mapping
    state = ConversionState(torch.zeros(1, *input_shape), maxpool_after=maxpool_after)
    with torch.no_grad():
        for name, module in _flat_children(model):
            _rule(mapping, name, module)(state, name, module)
    if not isinstance(state.pending, WeightSynapse):
        raise ValueError("the model must end with a Conv2d or Linear layer (the readout)")
    state.layers.append(LayerSpec(READOUT, "readout", state.shape, state.source,
                                  state.pending))
    return state


def plan_layers(model: nn.Module, input_shape: Sequence[int], *,
                mapping: Mapping[type[nn.Module], Rule] | None = None) -> list[LayerSpec]:
    """Walk ``model`` and map it to layer specs (thresholds not yet set).

    Args:
        mapping: Module type -> :data:`Rule`; default :data:`DEFAULT_MAPPING`.

    Raises:
        TypeError: ``model`` is not an ``nn.Sequential``.
        NotImplementedError: a module without a rule (named in the message).
        ValueError: a structure that cannot be converted (e.g. two synaptic layers in a row).
    """
    return _walk(model, input_shape, mapping).layers


def _input_shape(ann: nn.Module, calibration: Any) -> tuple[int, ...]:
    shape = getattr(ann, "input_shape", None)
    if shape is None:
        if calibration is None:
            raise ValueError("input_shape is needed: the model has no input_shape and there "
                             "is no calibration data to read it from")
        shape = next(batches(calibration, 1, "calibration"))[0].shape[1:]
    return tuple(int(d) for d in shape)


def ann_to_bsnn(model: nn.Module, calibration: Any = None, *,
                mapping: Mapping[type[nn.Module], Rule] | None = None,
                input_shape: Sequence[int] | None = None, percentile: float = 99.7,
                statistic: str = "all", reset: str = "subtract", v_init: str = "half",
                maxpool_after: str = "or", batch_size: int = 256,
                device: torch.device | str = "cpu", build: bool = True) -> Any:
    """Convert a trained constrained ANN (full precision or BWN) to a BindsNET network.

    Args:
        model: An ``nn.Sequential`` (e.g. a :class:`~bsnn_bindsnet.ann.models.ConstrainedNet`);
            never modified: a deep copy is converted.
        calibration: Training-set samples for threshold balancing: a ``Dataset`` of ``(x, y)``
            or ``x``, a ``DataLoader``, a tensor ``[N, *input_shape]`` or a pair ``(X, Y)``
            (:mod:`bsnn_bindsnet.data.samples`). ``None`` when every layer's rule fixes its
            :math:`\\lambda` (:class:`IFActivation` with ``fixed_lambda``).
        mapping: Module type -> conversion :data:`Rule`; default :data:`DEFAULT_MAPPING`
            (extend it: ``{**DEFAULT_MAPPING, MyAct: IFActivation(...)}``).
        input_shape: ``(C, H, W)``; defaults to ``model.input_shape`` or the first sample's.
        percentile: Activation percentile for :math:`\\lambda` (100 = max-normalization).
        statistic: ``"all"`` (every activation value) or ``"sample-max"``.
        reset: A reset registered in :mod:`bsnn_bindsnet.snn.neurons`: ``"subtract"`` (SIF,
            default) or ``"zero"`` (RIF).
        v_init: Initial membrane potential ``"half"`` (:math:`\\theta/2`, default: spike counts
            round the ANN activation to the nearest instead of down, which cuts the latency
            several-fold) or ``"zero"`` (the paper).
        maxpool_after: A ``MaxPool2d`` after a ReLU: ``"or"`` (default, the paper) passes the
            OR of the spikes unchanged to the next synaptic layer through a relay layer
            (:math:`\\theta = 1`, :math:`\\lambda` = its source's); ``"if"`` makes it an extra
            balanced IF layer (:math:`\\theta = \\lambda_{pool} / \\lambda_{ReLU}`).
        build: Return the BindsNET ``Network`` (default) or, if false, the :class:`BSNNPlan`.

    Returns:
        A ``bindsnet.network.Network`` with layers ``input``, one IF layer per ReLU/extra pool
        layer, and ``readout``; ``network.bsnn_plan`` holds the plan. Biases are divided by
        the source layer's :math:`\\lambda` (see the module docstring); ``plan.info`` records
        ``bias_rescaled``, ``maxpool_after`` and the ``relay_layers``.

    Raises:
        TypeError: ``calibration`` is none of the accepted forms.
        ValueError: ``calibration`` is ``None`` but a layer needs statistics.
    """
    if calibration is not None:
        check_samples(calibration, "calibration")
    check_neuron_options(reset, v_init)
    if maxpool_after not in MAXPOOL_AFTER:
        raise ValueError(f"unknown maxpool_after {maxpool_after!r}; expected one of "
                         f"{MAXPOOL_AFTER}")
    ann = copy.deepcopy(model).eval().to(device)
    if input_shape is None:
        input_shape = _input_shape(ann, calibration)
    input_shape = tuple(int(d) for d in input_shape)
    state = _walk(ann.cpu(), input_shape, mapping, maxpool_after)
    layers, relays = state.layers, state.relays
    ann.to(device)
    modules = dict(_flat_children(ann))
    points = {layer.point: modules[layer.point] for layer in layers
              if layer.kind == "if" and layer.name not in relays and layer.fixed_lambda is None}
    lambdas: dict[str, float] = {}
    if points:
        if calibration is None:
            raise ValueError(f"calibration data is needed: the layers {sorted(points)} take "
                             "their lambda from activation statistics")
        lambdas = activation_scales(ann, points, calibration, percentile=percentile,
                                    statistic=statistic, batch_size=batch_size, device=device)
    lam = {INPUT: 1.0}
    for layer in layers:  # in order: a layer's source always comes first
        src = lam[layer.source]
        bias = getattr(layer.synapse, "bias", None)
        if bias is not None:  # b' = b / lambda_src (module docstring): a new tensor
            layer.synapse = layer.synapse.with_bias(bias / src)
        if layer.name in relays:  # OR of 0/1 spikes, passed on exactly
            lam[layer.name], layer.thresh = src, 1.0
        elif layer.kind == "if":
            lam[layer.name] = (layer.fixed_lambda if layer.fixed_lambda is not None
                               else lambdas[layer.point])
            layer.thresh = lam[layer.name] / src
    plan = BSNNPlan(input_shape, layers, reset=reset, v_init=v_init,
                    info=PlanInfo(
                        percentile=percentile, statistic=statistic,
                        lambdas={k: v for k, v in lam.items() if k != INPUT},
                        calibration_samples=(None if calibration is None
                                             else num_samples(calibration)),
                        bias_rescaled=True, maxpool_after=maxpool_after,
                        relay_layers=[l.name for l in layers if l.name in relays],
                        # lambda set by the ANN (QCFS): no percentile statistics there
                        fixed_lambda_layers=[l.name for l in layers
                                             if l.fixed_lambda is not None]))
    if not build:
        return plan
    from bsnn_bindsnet.snn.network import build_network

    return build_network(plan)
