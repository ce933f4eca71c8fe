r"""ANN -> B-SNN conversion into a BindsNET ``Network``.

The ANN (an ``nn.Sequential``, nested ones are flattened) is walked in order and turned into a
*plan*: a list of :class:`LayerSpec` (pure data: the synapse that feeds each spiking layer and
its threshold). :func:`build_network` turns a plan into a BindsNET ``Network``; plans are what
``bsnn convert`` saves, because a ``Network``'s ``state_dict`` holds batch-sized runtime state.

Mapping (Lu & Sengupta 2020, Sec. 3):

- ``Conv2d``/``Linear`` (binary or full precision) followed by ``ReLU`` -> an IF layer.
- ``AvgPool2d`` before the ReLU is linear: it is folded into the conv connection (exact).
- ``AvgPool2d`` after the ReLU: an :class:`~bsnn_bindsnet.connections.AvgPool2dConnection`
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
- The last synaptic layer feeds a non-firing :class:`~bsnn_bindsnet.nodes.ReadoutNodes`.
- ``Dropout``, ``Identity`` and ``Flatten`` are absorbed; any other module raises
  ``NotImplementedError`` naming it.

Threshold balancing: with :math:`\lambda_l` the activation percentile of the ANN point that
layer ``l`` approximates (see :mod:`bsnn_bindsnet.normalize`) and :math:`\lambda_0 = 1` for
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from bsnn_bindsnet.ann.binarize import BinaryConv2d, BinaryLinear
from bsnn_bindsnet.normalize import activation_scales

RESETS = ("subtract", "zero")
V_INITS = ("zero", "half")
MAXPOOL_AFTER = ("or", "if")
ABSORBED = (nn.Dropout, nn.Identity, nn.Flatten)
INPUT = "input"
READOUT = "readout"


@dataclass
class LayerSpec:
    """One spiking layer and the synapse that feeds it (pure data, saved by ``bsnn convert``).

    Attributes:
        name: Layer name in the ``Network`` (the ANN module it approximates, or ``readout``).
        kind: ``"if"`` or ``"readout"``.
        shape: Neuron shape ``(C, H, W)`` or ``(n,)``.
        source: Name of the presynaptic layer (``"input"`` for the first).
        synapse: ``{"type": "conv"|"linear"|"avgpool"|"maxpool", ...}``: for conv/linear
            ``binary``, ``weight`` (full precision) or ``sign`` (int8) + ``scale``, ``bias``,
            ``stride``, ``padding``, ``pool`` (avg-pool of the current: kernel, stride,
            padding, ceil_mode); for pools kernel, stride, padding, ceil_mode.
        point: The ANN module whose (ReLU'd) output this layer's rate approximates.
        thresh: Firing threshold (``None`` for the readout): a float, or a ``[C]`` tensor
            (one per channel, from batch-norm folding).
        residual: A second synapse ``{"source": layer, "synapse": {...}}`` whose current adds
            to the first (the direct route's input from layer l-2; same signs, scale ``f``).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    source: str
    synapse: dict[str, Any]
    point: str | None = None
    thresh: float | Any | None = None
    residual: dict[str, Any] | None = None


@dataclass
class BSNNPlan:
    """A converted network: input shape, layers in order, and how they were obtained."""

    input_shape: tuple[int, ...]
    layers: list[LayerSpec]
    reset: str = "subtract"
    v_init: str = "half"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def spiking(self) -> list[str]:
        """Names of the IF layers, in order."""
        return [layer.name for layer in self.layers if layer.kind == "if"]


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


def _pool_args(pool: nn.Module) -> dict[str, Any]:
    if getattr(pool, "dilation", 1) not in (1, (1, 1)):
        raise NotImplementedError(f"pooling with dilation {pool.dilation} is not supported")
    if isinstance(pool, nn.AvgPool2d) and (not pool.count_include_pad or pool.divisor_override):
        raise NotImplementedError("AvgPool2d must count padding and have no divisor_override")
    return {"kernel_size": pool.kernel_size, "stride": pool.stride, "padding": pool.padding,
            "ceil_mode": pool.ceil_mode}


def _synapse(module: nn.Module) -> dict[str, Any]:
    binary = isinstance(module, (BinaryConv2d, BinaryLinear))
    syn: dict[str, Any] = {"type": "conv" if isinstance(module, nn.Conv2d) else "linear",
                           "binary": binary, "pool": None}
    if binary:
        sign, scale = module.export_weight()
        syn["sign"] = sign.to(torch.int8)
        syn["scale"] = scale.reshape(-1).clone()
    else:
        syn["weight"] = module.weight.detach().clone()
    syn["bias"] = None if module.bias is None else module.bias.detach().clone()
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or module.dilation != (1, 1) or module.padding_mode != "zeros":
            raise NotImplementedError("only plain convolutions (groups=1, dilation=1, zero "
                                      "padding) can be converted")
        syn["stride"], syn["padding"] = module.stride, module.padding
    return syn


def plan_layers(model: nn.Module, input_shape: Sequence[int]) -> list[LayerSpec]:
    """Walk ``model`` and map it to layer specs (thresholds not yet set).

    Raises:
        TypeError: ``model`` is not an ``nn.Sequential``.
        NotImplementedError: a module that cannot be mapped (named in the message).
        ValueError: a structure that cannot be converted (e.g. two synaptic layers in a row).
    """
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"expected an nn.Sequential whose children run in order, got "
                        f"{type(model).__name__}")
    layers: list[LayerSpec] = []
    pending: dict[str, Any] | None = None  # synapse waiting for its neuron
    pending_name = ""  # the synaptic module
    pending_point = ""  # the module whose output equals the pending current (conv or its pool)
    source, x = INPUT, torch.zeros(1, *input_shape)

    def add(name: str, syn: dict[str, Any], point: str) -> None:
        nonlocal source, pending
        layers.append(LayerSpec(name, "if", tuple(x.shape[1:]), source, syn, point))
        source, pending = name, None

    with torch.no_grad():
        for name, module in _flat_children(model):
            kind = type(module).__name__
            if isinstance(module, ABSORBED):
                x = module(x)
                continue
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                if pending is not None:
                    raise ValueError(f"{name}: {pending_name} and {name} follow each other "
                                     "without a ReLU between them; expected synaptic layer -> "
                                     "ReLU")
                if isinstance(module, nn.Linear) and x.dim() > 2:
                    x = x.flatten(1)
                pending, pending_name, pending_point = _synapse(module), name, name
            elif isinstance(module, nn.AvgPool2d):
                if pending is not None and pending["type"] == "conv":
                    if pending["pool"] is not None:
                        raise ValueError(f"{name}: a second pooling layer after {pending_name} "
                                         "before its ReLU; expected at most one average pool")
                    pending["pool"] = _pool_args(module)  # linear: fold into the current
                    pending_point = name
                elif pending is None and layers:
                    x = module(x)
                    add(name, {"type": "avgpool", **_pool_args(module)}, name)
                    continue
                else:
                    raise ValueError(f"{name}: average pooling must follow a conv or a ReLU")
            elif isinstance(module, nn.MaxPool2d):
                if pending is not None and pending["type"] == "conv":
                    add(f"{pending_name}_if", pending, pending_point)  # extra IF layer
                    x = module(x)
                    pending = {"type": "maxpool", **_pool_args(module)}
                    pending_name = pending_point = name
                    continue
                if pending is None and layers:
                    x = module(x)
                    add(name, {"type": "maxpool", **_pool_args(module)}, name)
                    continue
                raise ValueError(f"{name}: max pooling must follow a conv or a ReLU")
            elif isinstance(module, nn.ReLU):
                if pending is None:
                    raise ValueError(f"{name}: ReLU without a synaptic layer before it")
                x = module(x)
                add(name, pending, name)
                continue
            else:
                hint = (" (batch-norm: use the direct-training route, which folds it into "
                        "thresholds)" if "BatchNorm" in kind else "")
                raise NotImplementedError(
                    f"{name}: no conversion for {kind}{hint}; supported: Conv2d, Linear, "
                    "BinaryConv2d, BinaryLinear, ReLU, AvgPool2d, MaxPool2d, Dropout, "
                    "Flatten, Identity")
            x = module(x)
    if pending is None or pending["type"] not in ("conv", "linear"):
        raise ValueError("the model must end with a Conv2d or Linear layer (the readout)")
    layers.append(LayerSpec(READOUT, "readout", tuple(x.shape[1:]), source, pending))
    return layers


def ann_to_bsnn(model: nn.Module, calibration: Tensor | Sequence, *,
                input_shape: Sequence[int] | None = None, percentile: float = 99.7,
                statistic: str = "all", reset: str = "subtract", v_init: str = "half",
                maxpool_after: str = "or", batch_size: int = 256,
                device: torch.device | str = "cpu", build: bool = True) -> Any:
    """Convert a trained constrained ANN (full precision or BWN) to a BindsNET network.

    Args:
        model: An ``nn.Sequential`` (e.g. a :class:`~bsnn_bindsnet.ann.models.ConstrainedNet`);
            never modified: a deep copy is converted.
        calibration: Training-set samples for threshold balancing: ``[N, *input_shape]`` or a
            dataset of ``(x, y)``.
        input_shape: ``(C, H, W)``; defaults to ``model.input_shape`` or the first sample's.
        percentile: Activation percentile for :math:`\\lambda` (100 = max-normalization).
        statistic: ``"all"`` (every activation value) or ``"sample-max"``.
        reset: ``"subtract"`` (SIF, default) or ``"zero"`` (RIF).
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
    """
    from bsnn_bindsnet.data import refuse_loader

    refuse_loader(calibration, "calibration")
    if reset not in RESETS:
        raise ValueError(f"unknown reset {reset!r}; expected one of {RESETS}")
    if v_init not in V_INITS:
        raise ValueError(f"unknown v_init {v_init!r}; expected one of {V_INITS}")
    if maxpool_after not in MAXPOOL_AFTER:
        raise ValueError(f"unknown maxpool_after {maxpool_after!r}; expected one of "
                         f"{MAXPOOL_AFTER}")
    ann = copy.deepcopy(model).eval().to(device)
    if input_shape is None:
        input_shape = getattr(ann, "input_shape", None)
        if input_shape is None:
            first = calibration[0]
            input_shape = tuple((first[0] if isinstance(first, (tuple, list)) else first).shape)
    input_shape = tuple(int(d) for d in input_shape)
    layers = plan_layers(ann.cpu(), input_shape)
    ann.to(device)
    modules = dict(_flat_children(ann))
    # A max-pool after the ReLU is the only layer whose point is the MaxPool2d module itself
    # (before the ReLU, the pooled spikes feed the ReLU's layer, whose point is the ReLU).
    relays = ({layer.name for layer in layers if layer.kind == "if"
               and isinstance(modules[layer.point], nn.MaxPool2d)}
              if maxpool_after == "or" else set())
    points = {layer.point: modules[layer.point] for layer in layers
              if layer.kind == "if" and layer.name not in relays}
    lambdas = activation_scales(ann, points, calibration, percentile=percentile,
                                statistic=statistic, batch_size=batch_size, device=device)
    lam = {INPUT: 1.0}
    for layer in layers:  # in order: a layer's source always comes first
        src = lam[layer.source]
        bias = layer.synapse.get("bias")
        if bias is not None:  # b' = b / lambda_src (module docstring): a new tensor
            layer.synapse["bias"] = bias / src
        if layer.name in relays:  # OR of 0/1 spikes, passed on exactly
            lam[layer.name], layer.thresh = src, 1.0
        elif layer.kind == "if":
            lam[layer.name] = lambdas[layer.point]
            layer.thresh = lam[layer.name] / src
    plan = BSNNPlan(input_shape, layers, reset=reset, v_init=v_init,
                    info={"percentile": percentile, "statistic": statistic,
                          "lambdas": {k: v for k, v in lam.items() if k != INPUT},
                          "calibration_samples": len(calibration),
                          "bias_rescaled": True, "maxpool_after": maxpool_after,
                          "relay_layers": [l.name for l in layers if l.name in relays]})
    if not build:
        return plan
    from bsnn_bindsnet.network import build_network

    return build_network(plan)
