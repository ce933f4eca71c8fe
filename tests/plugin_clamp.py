r"""A user's plugin, outside the package: ``bsnn --plugin plugin_clamp ...`` imports it (with
``tests/`` on ``PYTHONPATH``), and its top level registers a neuron model and a synapse type.

- ``"clamp"``: reset by subtraction, then the potential is clamped at :math:`-\theta`:
  :math:`v \leftarrow \max(v - \theta s, -\theta)`. A long negative drive is forgotten beyond
  one threshold. Positively homogeneous, so the direct route trains and exports it; it states
  no NIR node and no IMC rule, so those exports refuse it by name.
- ``"test-gain"``: a one-to-one synapse with a gain. It answers for itself: NIR (a ``Scale``
  node), IMC (a digital gain between arrays, no crossbar), MACs (one per neuron).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import Tensor

from bsnn_bindsnet.snn import neurons
from bsnn_bindsnet.snn.synapses import Synapse, register_synapse


class SubtractClamp(neurons.NeuronModel):
    r""":math:`v \leftarrow \max(v - \theta s, -\theta)`."""

    label = "SIF-clamp"

    def __call__(self, v: Tensor, s: Tensor, thresh: Tensor) -> Tensor:
        thresh = torch.as_tensor(thresh, dtype=v.dtype, device=v.device)
        return torch.maximum(v - s.to(v.dtype) * thresh, -thresh)


@register_synapse
@dataclasses.dataclass(frozen=True, eq=False)
class GainSynapse(Synapse):
    """One-to-one synapse: target neuron i receives ``gain`` times the spike of source i."""

    gain: float = 1.0
    type: ClassVar[str] = "test-gain"

    def connection(self, source: Any, target: Any) -> Any:
        from bsnn_bindsnet.snn.connections import FullPrecisionConnection

        return FullPrecisionConnection(source, target, weight=self.gain * torch.eye(source.n))

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(in_shape)

    def macs(self, in_shape: tuple[int, ...]) -> int:
        return int(torch.Size(in_shape).numel())

    def to_nir(self, src_shape: tuple[int, ...], key: str) -> list[tuple[str, Any]]:
        import nir
        import numpy as np

        return [(key, nir.Scale(scale=np.full(src_shape, self.gain, np.float32)))]

    def imc_entry(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        return {"kind": self.type, "gain": self.gain}, {}


neurons.register_neuron("clamp", SubtractClamp())
