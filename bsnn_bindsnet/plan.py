r"""The plan of a B-SNN: pure data between the converters, BindsNET and the file formats.

A plan (:class:`BSNNPlan`) is the input shape, the spiking layers in order
(:class:`LayerSpec`) and the typed synapse that feeds each of them
(:mod:`bsnn_bindsnet.synapses`, re-exported here). Plans are saved as plain data
(:meth:`BSNNPlan.to_dict`: synapses as dicts with a ``"type"``, the v1 file layout) and read
back with :meth:`BSNNPlan.from_dict`. Bottom floor: imports only torch.

For backward compatibility a synapse also reads like the dict it is saved as
(``syn["binary"]``, ``syn.get("bias")``), and a :class:`LayerSpec` or :class:`Residual` given
dicts converts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bsnn_bindsnet.synapses import (SYNAPSES, AvgPoolSynapse, ConvSynapse, LinearSynapse,
                                    MaxPoolSynapse, Synapse, WeightSynapse, register_synapse,
                                    synapse_from_dict)

__all__ = ["INPUT", "READOUT", "SYNAPSES", "AvgPoolSynapse", "BSNNPlan", "ConvSynapse",
           "LayerSpec", "LinearSynapse", "MaxPoolSynapse", "Residual", "Synapse",
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

    def __getitem__(self, key: str) -> Any:  # read-only dict view, as in v1 plans
        if key not in ("source", "synapse"):
            raise KeyError(key)
        return getattr(self, key)

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
                "v_init": self.v_init, "info": self.info}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BSNNPlan:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(d["input_shape"]), [LayerSpec.from_dict(x) for x in d["layers"]],
                   reset=d["reset"], v_init=d["v_init"], info=d["info"])
