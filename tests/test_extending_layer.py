"""Extending the converter with a new layer mapping (issue 13, docs/extending.md (b)).

Everything that defines the new activation and its rule lives in this file: nothing in
``bsnn_bindsnet/`` knows about ``ClipReLU``.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from bsnn_bindsnet.conversion.convert import DEFAULT_MAPPING, IFActivation, ann_to_bsnn, register_rule
from bsnn_bindsnet.snn.network import build_network
from bsnn_bindsnet.simulation.simulate import simulate


class ClipReLU(nn.Module):
    """:math:`\\min(\\max(x, 0), c)`: a ReLU clipped at a level ``clip`` fixed by the ANN."""

    def __init__(self, clip: float) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, x: Tensor) -> Tensor:
        return x.clamp(0.0, self.clip)


# The rule: a ClipReLU becomes an IF layer whose lambda is the clip level (theta = c / lambda_src),
# so the layer needs no calibration statistics.
CLIP_RULE = IFActivation(fixed_lambda=lambda module: module.clip)


def clip_mlp() -> nn.Sequential:
    """One input, four hidden neurons fed 0.7, 1.3, 3.0 and -1.0 times it, clipped at 2."""
    fc1, fc2 = nn.Linear(1, 4, bias=False), nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        fc1.weight.copy_(torch.tensor([[0.7], [1.3], [3.0], [-1.0]]))
        fc2.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]))
    return nn.Sequential(fc1, ClipReLU(2.0), fc2)


def test_a_clipped_relu_maps_to_an_if_layer_without_calibration():
    mapping = {**DEFAULT_MAPPING, ClipReLU: CLIP_RULE}
    plan = ann_to_bsnn(clip_mlp(), None, mapping=mapping, input_shape=(1,), build=False)
    hidden = plan.layers[0]
    assert (hidden.name, hidden.kind, hidden.shape) == ("1", "if", (4,))
    assert hidden.fixed_lambda == 2.0 and hidden.thresh == 2.0  # lambda_input = 1
    assert plan.info.lambdas == {"1": 2.0} and plan.info.calibration_samples is None

    # SIF with v(0) = theta / 2 under a constant current z fires floor(T z / theta + 1/2)
    # times in T steps, at most once per step: the rounded ANN activation clip(z, 0, 2) / 2.
    timesteps = 8
    result = simulate(build_network(plan), (torch.ones(1, 1), torch.zeros(1, dtype=torch.long)),
                      timesteps, per_neuron=True)
    # z = 0.7: floor(2.8 + 0.5) = 3; z = 1.3: floor(5.2 + 0.5) = 5; z = 3 > 2: every step, 8;
    # z = -1: never.
    assert result.neuron_spikes["1"].tolist() == [3.0, 5.0, 8.0, 0.0]
    ann = clip_mlp()[:2](torch.ones(1, 1))[0]  # [0.7, 1.3, 2.0, 0.0]
    expected = torch.floor(timesteps * ann / 2.0 + 0.5)
    assert result.neuron_spikes["1"].tolist() == expected.tolist()


def test_without_the_rule_the_module_is_named():
    with pytest.raises(NotImplementedError, match=r"^1: no conversion for ClipReLU; supported: "
                                                  r"Conv2d, Linear"):
        ann_to_bsnn(clip_mlp(), None, input_shape=(1,), build=False)


def test_a_relu_layer_still_needs_calibration_data():
    model = nn.Sequential(nn.Linear(1, 4), nn.ReLU(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"calibration data is needed: the layers \['1'\]"):
        ann_to_bsnn(model, None, input_shape=(1,), build=False)


def test_register_rule_extends_the_default_mapping():
    register_rule(ClipReLU, CLIP_RULE)
    try:
        plan = ann_to_bsnn(clip_mlp(), None, input_shape=(1,), build=False)
        assert plan.layers[0].thresh == 2.0
        with pytest.raises(ValueError, match="ClipReLU already has a conversion rule"):
            register_rule(ClipReLU, IFActivation())
    finally:
        del DEFAULT_MAPPING[ClipReLU]
