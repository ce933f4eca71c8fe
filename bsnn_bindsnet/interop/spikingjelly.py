r"""SpikingJelly 2.0's ``ann2snn`` run on our trained models: an optional peer converter.

What SpikingJelly 2.0.0 offers a CNN (read from ``spikingjelly/activation_based/ann2snn``):

- ``RateCodingRecipe`` (for ``FXConverter``): "a traditional rate-coding ReLU-to-IFNode
  conversion recipe ... performs Conv-BN fusion, VoltageHook calibration and neuron
  replacement". Each ``nn.ReLU`` (matched by ``type(m) is nn.ReLU``) becomes
  ``VoltageScaler(1/s)``, a neuron of threshold 1, ``VoltageScaler(s)``; ``s`` is calibrated
  (``mode="99.9%"`` "means recording the 99.9% percentile"; batches after the first are
  merged with momentum 0.1). The neuron is ``IFNode(v_reset=None)`` (reset by subtraction,
  :math:`v(0) = 0`) unless ``neuron_factory`` gives another; we give ``HalfThresholdIFNode``
  for :math:`v(0) = \theta/2` ("After each explicit ``reset()``, its membrane potential is
  restored to ``v_threshold / 2``. The per-step post-spike reset still uses the standard soft
  reset.").
- ``LocalThresholdBalancingRecipe`` (Bu et al. 2024): channel-wise thresholds; not used.
- **No QCFS recipe for CNNs.** ``ann2snn/qcfs.py`` is ``SignedQCFSSequenceEncoder``, used
  only by ``Qwen2SNNRecipe`` (signed transformer activations as two spike channels), and
  ``SpikeZIPTFQANNRecipe`` takes RoBERTa/ViT QANNs with SpikeZIP quantizers. No recipe reads a
  trained clip threshold :math:`\lambda`.

So ``mode="qcfs"`` extends ``RateCodingRecipe`` through the hook its base class documents
("Subclasses can override ... :meth:`calibrate` ..."): ``calibrate`` sets each layer's scale
to the trained :math:`\lambda` of its QCFS instead of reading data, i.e. :math:`\theta =
\lambda`, soft reset, :math:`v(0) = \lambda/2`, spikes of size :math:`\lambda`; the graph
rewrite, neurons and scalers stay SpikingJelly's. ``mode="percentile"`` is its standard
conversion (on a QCFS model, of the QCFS-trained weights with each QCFS replaced by ReLU).

Binary layers: SpikingJelly traces through ``BinaryConv2d``/``BinaryLinear`` and refuses the
``binarize_weight`` node ("does not support function node"), so they are handed over as
``nn.Conv2d``/``nn.Linear`` holding :math:`\alpha\,\operatorname{sign}(W)`, bit for bit the
forward pass's weights. Input: the analog image at every step (constant current, as its
``examples/cnn_mnist.py`` and our simulator); the prediction after step :math:`t` is the
argmax of the outputs summed over steps :math:`1..t`. Install without dependencies (they
would replace torch): ``pip install --no-deps spikingjelly==2.0.0 loguru requests``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from bsnn_bindsnet.ann.binarize import BinaryConv2d, BinaryLinear
from bsnn_bindsnet.ann.qcfs import QCFS
from bsnn_bindsnet.data.samples import batches, num_samples

__all__ = ["INSTALL", "PeerCurve", "SpikingJellyMissingError", "prepare_model",
           "spikingjelly_convert", "spikingjelly_curve"]

INSTALL = "pip install --no-deps spikingjelly==2.0.0 loguru requests"
MODES = ("percentile", "qcfs")
V_INITS = ("zero", "half")


class SpikingJellyMissingError(ModuleNotFoundError):
    """SpikingJelly (or its ``loguru``/``requests`` imports) is not installed."""


def _import_spikingjelly() -> dict[str, Any]:
    try:
        from spikingjelly.activation_based import ann2snn, functional, neuron
        from spikingjelly.activation_based.ann2snn.modules import VoltageHook
    except ModuleNotFoundError as exc:
        raise SpikingJellyMissingError(
            f"the SpikingJelly peer needs spikingjelly 2.0.0 (missing module {exc.name!r}); "
            f"install it with `{INSTALL}` (without --no-deps pip would replace torch)",
            name=exc.name) from exc
    return {"ann2snn": ann2snn, "functional": functional, "neuron": neuron,
            "VoltageHook": VoltageHook}


def _check_options(mode: str, v_init: str | None) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
    v_init = ("half" if mode == "qcfs" else "zero") if v_init is None else v_init
    if v_init not in V_INITS:
        raise ValueError(f"unknown v_init {v_init!r}; expected one of {V_INITS}")
    return v_init


def _plain_layer(m: nn.Module) -> nn.Module:
    w = m.binary_weight().detach().clone()  # alpha * sign(W), as in the forward pass
    if isinstance(m, BinaryConv2d):
        new = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride,
                        padding=m.padding, dilation=m.dilation, groups=m.groups,
                        bias=m.bias is not None, padding_mode=m.padding_mode)
    else:
        new = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
    new.weight.data.copy_(w)
    if m.bias is not None:
        new.bias.data.copy_(m.bias.detach())
    return new


def prepare_model(model: nn.Module) -> tuple[nn.Module, dict[str, QCFS]]:
    """A copy of ``model`` that SpikingJelly's FX converter accepts.

    Binary layers become ``nn.Conv2d``/``nn.Linear`` with weights :math:`\\alpha\\,
    \\operatorname{sign}(W)`; each :class:`QCFS` becomes ``nn.ReLU`` (the only activation its
    recipes match). ``model`` is not modified.

    Returns:
        ``(copy, {name: QCFS})``: the QCFS modules that were replaced, by module path.
    """
    plain = copy.deepcopy(model).eval()
    qcfs: dict[str, QCFS] = {}
    for parent_name, parent in list(plain.named_modules()):
        for name, child in list(parent.named_children()):
            path = f"{parent_name}.{name}" if parent_name else name
            if isinstance(child, (BinaryConv2d, BinaryLinear)):
                setattr(parent, name, _plain_layer(child))
            elif isinstance(child, QCFS):
                qcfs[path] = child
                setattr(parent, name, nn.ReLU())
    return plain, qcfs


def _recipe(sj: dict[str, Any], calibration: list[Tensor], percentile: float,
            lambdas: dict[str, float] | None, v_init: str) -> Any:
    voltage_hook = sj["VoltageHook"]

    class _Recipe(sj["ann2snn"].RateCodingRecipe):
        """``RateCodingRecipe``; with ``lambdas``, calibrate() sets each scale to lambda."""

        def calibrate(self, converter, fx_model):  # noqa: D102
            if lambdas is None:
                return super().calibrate(converter, fx_model)
            modules = dict(fx_model.named_modules())
            for node in fx_model.graph.nodes:
                if node.op == "call_module" and isinstance(modules[node.target], voltage_hook):
                    modules[node.target].scale = torch.tensor(lambdas[node.args[0].target])
            return fx_model

        def replace(self, converter, fx_model):  # noqa: D102
            modules = dict(fx_model.named_modules())
            self.spiking = {}  # spiking block prefix -> name of the activation it replaces
            for node in fx_model.graph.nodes:
                if node.op == "call_module" and isinstance(modules[node.target], voltage_hook):
                    parent, _, leaf = node.target.rpartition(".")
                    leaf = leaf.replace("voltage_hook_", "spiking_")
                    prefix = f"{parent}.{leaf}" if parent else leaf
                    self.spiking[prefix] = node.args[0].target
            return super().replace(converter, fx_model)

    factory = (lambda scale: sj["neuron"].HalfThresholdIFNode()) if v_init == "half" else None
    return _Recipe(dataloader=calibration, mode=f"{percentile}%", neuron_factory=factory)


@dataclass(frozen=True)
class PeerCurve:
    """SpikingJelly's converted model on a test set, step by step.

    Attributes:
        mode, v_init: As passed to :func:`spikingjelly_curve`; ``neuron``: the neuron, in words.
        n: Test samples. ``ann_accuracy``: the ANN's. ``accuracy``: after each step ``1..T``.
        thresholds: Activation name -> :math:`\\theta` in ANN units (SpikingJelly's scale).
        layer_spikes: Activation name -> ``[T]`` spikes of all samples per step, as
            ``SimResult.layer_spikes`` (the names are our converter's IF layer names).
        layer_neurons: Activation name -> number of neurons.
        neuron_spikes: Activation name -> ``float64 [*shape]``: spikes per neuron over all
            samples and steps (for :func:`bsnn_bindsnet.analysis.ops.synaptic_events`).
    """

    mode: str
    v_init: str
    neuron: str
    n: int
    ann_accuracy: float
    accuracy: list[float]
    thresholds: dict[str, float]
    layer_spikes: dict[str, Tensor]
    layer_neurons: dict[str, int]
    neuron_spikes: dict[str, Tensor]

    def firing_rates(self, upto: int | None = None) -> dict[str, float]:
        """Spikes per neuron over steps ``1..upto``, per sample (``SimResult.firing_rates``)."""
        return {k: float(s[:upto].sum()) / (self.n * self.layer_neurons[k])
                for k, s in self.layer_spikes.items()}

    def summary(self) -> dict[str, Any]:
        """JSON-ready: settings, ANN accuracy, accuracy curve, thresholds, IFR per layer."""
        return {"peer": "spikingjelly==2.0.0", "mode": self.mode, "v_init": self.v_init,
                "neuron": self.neuron, "n": self.n, "ann_accuracy": self.ann_accuracy,
                "accuracy": self.accuracy, "thresholds": self.thresholds,
                "ifr": self.firing_rates()}


def spikingjelly_convert(model: nn.Module, calibration: Any = None, *,
                         mode: str = "percentile", percentile: float = 99.9,
                         v_init: str | None = None, calib_batch_size: int | None = None,
                         device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, str]]:
    r"""Convert ``model`` with SpikingJelly's ``FXConverter`` (arguments as
    :func:`spikingjelly_curve`).

    Returns:
        ``(snn, names)``: SpikingJelly's single-step ``GraphModule`` (``functional.reset_net``
        it before each batch) and, for each of its spiking blocks (``<prefix>.scaler0``,
        ``.if_node``, ``.scaler1``), the name of the ANN activation it replaces.
    """
    v_init = _check_options(mode, v_init)
    sj = _import_spikingjelly()
    plain, qcfs = prepare_model(model)
    lambdas = None
    calib: list[Tensor] = []
    if mode == "qcfs":
        if not qcfs or any(type(m) is nn.ReLU for m in model.modules()):
            raise ValueError("mode='qcfs' needs a model whose activations are all QCFS")
        if v_init == "half" and any(q.shift != 0.5 for q in qcfs.values()):
            raise ValueError("HalfThresholdIFNode starts at theta/2: QCFS shift must be 0.5")
        lambdas = {k: float(q.lam.detach()) for k, q in qcfs.items()}
    else:
        size = calib_batch_size or max(num_samples(calibration) or 1, 1)
        calib = [x for x, _ in batches(calibration, size, "calibration")]
    recipe = _recipe(sj, calib, percentile, lambdas, v_init)
    snn = sj["ann2snn"].FXConverter(recipe, device=device).convert(plain).eval()
    return snn, recipe.spiking


def spikingjelly_curve(model: nn.Module, calibration: Any, test: Any, timesteps: int, *,
                       mode: str = "percentile", percentile: float = 99.9,
                       v_init: str | None = None, batch_size: int = 256,
                       calib_batch_size: int | None = None,
                       device: torch.device | str = "cpu") -> PeerCurve:
    r"""Convert ``model`` with SpikingJelly's ``ann2snn`` and score it after every step.

    Args:
        model: A trained constrained ANN (ReLU or QCFS, full precision or BWN); not modified.
        calibration: Samples for ``mode="percentile"`` (the forms of
            :mod:`bsnn_bindsnet.data.samples`); unused (may be ``None``) with ``mode="qcfs"``.
        test: Labelled test samples: a dataset of ``(x, y)``, a loader or ``(X, Y)``.
        timesteps: :math:`T`; the curve has one point per step ``1..T``.
        mode: ``"percentile"`` (``RateCodingRecipe(mode="<percentile>%")``) or ``"qcfs"``
            (:math:`\theta = \lambda` of each QCFS; see the module docstring).
        percentile: The percentile of ``"percentile"`` mode (100 = max).
        v_init: ``"zero"`` (``IFNode(v_reset=None)``) or ``"half"`` (``HalfThresholdIFNode``);
            default ``"zero"`` for ``"percentile"`` (its standard conversion), ``"half"`` for
            ``"qcfs"`` (QCFS's :math:`\varphi = 1/2`).
        batch_size: Test batch size.
        calib_batch_size: ``None`` (default): the whole calibration set (unless a loader) is
            one batch, so the scale is the exact percentile over all values, as in
            :func:`bsnn_bindsnet.conversion.convert.ann_to_bsnn` (``torch.quantile`` takes at most 2**24
            values); with batches SpikingJelly averages their percentiles with momentum 0.1.
        device: Where to run.

    Raises:
        SpikingJellyMissingError: SpikingJelly is not installed (the message has the command).
        ValueError: Bad ``mode``/``v_init``/``timesteps``, no QCFS in ``"qcfs"`` mode, a QCFS
            shift other than 1/2 with ``v_init="half"``, or test data without labels.
    """
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    snn, names = spikingjelly_convert(model, calibration, mode=mode, percentile=percentile,
                                      v_init=v_init, calib_batch_size=calib_batch_size,
                                      device=device)
    v_init = _check_options(mode, v_init)
    neuron = ("HalfThresholdIFNode: soft reset, v(0) = theta/2" if v_init == "half"
              else "IFNode(v_reset=None): soft reset, v(0) = 0")
    thresholds = {n: float(snn.get_submodule(f"{p}.scaler1").scale) for p, n in names.items()}
    sj = _import_spikingjelly()
    spikes: dict[str, Tensor] = {}
    per_neuron: dict[str, Tensor] = {}
    step = [0]

    def counter(name: str):
        def record(module: nn.Module, inputs: Any, s: Tensor) -> None:
            if name not in spikes:
                spikes[name] = torch.zeros(timesteps, dtype=torch.int64)
                per_neuron[name] = torch.zeros(s.shape[1:], dtype=torch.float64)
            spikes[name][step[0]] += int(s.sum())
            per_neuron[name] += s.detach().sum(0).to("cpu", torch.float64)
        return record

    handles = [snn.get_submodule(f"{p}.if_node").register_forward_hook(counter(n))
               for p, n in names.items()]
    ann = copy.deepcopy(model).eval().to(device)
    correct, ann_correct, n = torch.zeros(timesteps, dtype=torch.int64), 0, 0
    try:
        with torch.no_grad():
            for x, y in batches(test, batch_size, "test"):
                if y is None:
                    raise ValueError("test data need labels: (x, y) samples or a pair (X, Y)")
                x, y = x.to(device), y.to(device)
                ann_correct += int((ann(x).argmax(1) == y).sum())
                n += len(y)
                sj["functional"].reset_net(snn)
                total = torch.zeros((), device=device)
                for t in range(timesteps):
                    step[0] = t
                    total = total + snn(x)
                    correct[t] += int((total.argmax(1) == y).sum())
    finally:
        for h in handles:
            h.remove()
    return PeerCurve(mode, v_init, neuron, n, ann_correct / max(n, 1),
                     (correct.double() / max(n, 1)).tolist(), thresholds, spikes,
                     {k: v.numel() for k, v in per_neuron.items()}, per_neuron)
