r"""The plan of a B-SNN: pure data between the converters, BindsNET and the file formats.

A plan (:class:`BSNNPlan`) is the input shape, the spiking layers in order
(:class:`LayerSpec`) and the typed synapse that feeds each of them
(:mod:`bsnn_bindsnet.snn.synapses`, re-exported here). Plans are saved as plain data
(:meth:`BSNNPlan.to_dict`: synapses as dicts with a ``"type"``, the v1 file layout) and read
back with :meth:`BSNNPlan.from_dict`; how the plan was obtained is a typed :class:`PlanInfo`,
saved as the v1 ``info`` dict. Bottom floor: imports only torch.

A :class:`LayerSpec` or :class:`Residual` given dicts (as v1 files hold them) converts them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bsnn_bindsnet.snn.synapses import (SYNAPSES, AvgPoolSynapse, ConvSynapse, LinearSynapse,
                                    MaxPoolSynapse, Synapse, WeightSynapse, register_synapse,
                                    synapse_from_dict)

__all__ = ["INPUT", "READOUT", "SYNAPSES", "AvgPoolSynapse", "BSNNPlan", "ConvSynapse",
           "LayerSpec", "LinearSynapse", "MaxPoolSynapse", "PlanInfo", "Residual", "Synapse",
           "WeightSynapse", "register_synapse", "synapse_from_dict"]

INPUT = "input"
READOUT = "readout"


@dataclass(frozen=True, eq=False)
class Residual:
    """A second synapse into a layer, from an earlier layer ``source``: its current adds to
    the first synapse's (the direct route's input from layer l-2)."""

    source: str
    synapse: Synapse

    def __post_init__(self) -> None:
        if isinstance(self.synapse, Mapping):
            object.__setattr__(self, "synapse", synapse_from_dict(self.synapse))

    def to_dict(self) -> dict[str, Any]:
        """``{"source": ..., "synapse": {...}}``."""
        return {"source": self.source, "synapse": self.synapse.to_dict()}


@dataclass
class LayerSpec:
    """One spiking layer and the synapse that feeds it.

    Attributes:
        name: Layer name in the ``Network`` (the ANN module it approximates, or ``readout``).
        kind: ``"if"`` or ``"readout"``.
        shape: Neuron shape ``(C, H, W)`` or ``(n,)``.
        source: Name of the presynaptic layer (``"input"`` for the first).
        synapse: The :class:`Synapse` that feeds it (a dict with ``"type"`` is converted).
        point: The ANN module whose (ReLU'd) output this layer's rate approximates.
        thresh: Firing threshold (``None`` for the readout): a float, or a ``[C]`` tensor
            (one per channel, from batch-norm folding).
        residual: A second synapse (:class:`Residual`) whose current adds to the first.
        fixed_lambda: :math:`\\lambda` set by the conversion rule (e.g. a clip level learned
            by the ANN) instead of a calibration percentile; ``None``: calibrated.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    source: str
    synapse: Synapse
    point: str | None = None
    thresh: float | Any | None = None
    residual: Residual | None = None
    fixed_lambda: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.synapse, Mapping):
            self.synapse = synapse_from_dict(self.synapse)
        if isinstance(self.residual, Mapping):
            self.residual = Residual(**self.residual)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the v1 file layout; ``fixed_lambda`` only when set)."""
        d = {"name": self.name, "kind": self.kind, "shape": tuple(self.shape),
             "source": self.source, "synapse": self.synapse.to_dict(), "point": self.point,
             "thresh": self.thresh,
             "residual": None if self.residual is None else self.residual.to_dict()}
        if self.fixed_lambda is not None:
            d["fixed_lambda"] = self.fixed_lambda
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LayerSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**d, "shape": tuple(d["shape"])})


@dataclass
class PlanInfo:
    """How a plan was obtained: what the commands read, typed; saved as the v1 ``info`` dict.

    Attributes:
        route: ``"direct"`` for a direct-trained network (None: converted or imported).
        dataset: The dataset ``bsnn simulate`` uses by default.
        encoding: The input coding it was trained for (``bsnn simulate``'s default).
        timesteps: The :math:`T` it was trained or converted for (``bsnn simulate``'s default).
        ann_test_acc: The ANN's test accuracy, measured at conversion.
        model, model_file: The registry name and file of the model it came from.
        percentile, statistic, lambdas, calibration_samples, bias_rescaled, maxpool_after,
        relay_layers, fixed_lambda_layers: The conversion's record
            (:func:`~bsnn_bindsnet.conversion.convert.ann_to_bsnn`).
        residual_factor, theta, blocks: The direct route's record.
        nir: Where a NIR import came from (:func:`~bsnn_bindsnet.interop.nir_io.from_nir`).
        extra: Any other key of a saved ``info`` (kept, and written back).
    """

    route: str | None = None
    dataset: str | None = None
    encoding: str | None = None
    timesteps: int | None = None
    ann_test_acc: float | None = None
    model: str | None = None
    model_file: str | None = None
    percentile: float | None = None
    statistic: str | None = None
    lambdas: dict[str, float] | None = None
    calibration_samples: int | None = None
    bias_rescaled: bool | None = None
    maxpool_after: str | None = None
    relay_layers: list[str] | None = None
    fixed_lambda_layers: list[str] | None = None
    residual_factor: float | None = None
    theta: float | None = None
    blocks: list[str] | None = None
    nir: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The v1 ``info`` dict: the fields that are set, then ``extra``."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name != "extra" and getattr(self, f.name) is not None}
        return {**d, **self.extra}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> PlanInfo:
        """Inverse of :meth:`to_dict`; unknown keys go to ``extra``."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        d = dict(d or {})
        return cls(**{k: d.pop(k) for k in list(d) if k in names}, extra=d)


@dataclass
class BSNNPlan:
    """A converted network: input shape, layers in order, the neuron model and initial
    potential (registered names, :mod:`bsnn_bindsnet.snn.neurons`), and how it was obtained."""

    input_shape: tuple[int, ...]
    layers: list[LayerSpec]
    reset: str = "subtract"
    v_init: str = "half"
    info: PlanInfo = field(default_factory=PlanInfo)

    def __post_init__(self) -> None:
        if not isinstance(self.info, PlanInfo):  # a v1 dict
            self.info = PlanInfo.from_dict(self.info)

    @property
    def spiking(self) -> list[str]:
        """Names of the IF layers, in order."""
        return [layer.name for layer in self.layers if layer.kind == "if"]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Layer name (``input`` included) -> neuron shape."""
        out = {INPUT: tuple(self.input_shape)}
        out.update({layer.name: tuple(layer.shape) for layer in self.layers})
        return out

    def synapses(self) -> list[tuple[LayerSpec, str, Synapse]]:
        """``(layer, source, synapse)`` for every synapse in order, residuals after their
        layer's first synapse."""
        out = []
        for layer in self.layers:
            out.append((layer, layer.source, layer.synapse))
            if layer.residual is not None:
                out.append((layer, layer.residual.source, layer.residual.synapse))
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data and tensors (what ``save_plan`` writes after the format tag)."""
        return {"input_shape": tuple(self.input_shape),
                "layers": [layer.to_dict() for layer in self.layers], "reset": self.reset,
                "v_init": self.v_init, "info": self.info.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BSNNPlan:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(d["input_shape"]), [LayerSpec.from_dict(x) for x in d["layers"]],
                   reset=d["reset"], v_init=d["v_init"], info=PlanInfo.from_dict(d["info"]))
