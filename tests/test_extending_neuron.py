r"""A new neuron model added from outside the package: code in this file plus registration calls.

The model is a leaky IF neuron, written as a reset strategy: after the reset by subtraction the
potential leaks by :math:`\beta`, so the next step integrates :math:`v_t = \beta (v_{t-1} -
\theta s_{t-1}) + x_t` (the LIF of snnTorch / Norse with a soft reset). With :math:`\beta = 1/2`
and :math:`\theta = 1` every potential below is a binary fraction, so the counts are exact.

One neuron driven by a constant :math:`x`, from :math:`v_0 = 0` ("zero"), T = 6 steps:

- :math:`x = 3/4`: v = .75 | .375 + .75 = 1.125 (fires) | .0625 + .75 = .8125 | 1.15625 (fires)
  | .828125 | 1.1640625 (fires): **3** spikes (IF with subtraction: :math:`\lfloor 6 x \rfloor`
  = 4);
- :math:`x = 1/2`: v = .5, .75, .875, .9375, .96875, .984375 approaches the threshold but never
  reaches it: **0** spikes (IF: 3).

From :math:`v_0 = \theta` (the v-init "threshold" registered here) both fire at step 1 as well:
x = 3/4 fires at steps 1, 2, 4, 6 (**4**); x = 1/2 at step 1 only (v = 1.5 -> .25, then .75,
.875, ...) (**1**).
"""

import pytest
import torch
from torch import Tensor, nn

from bsnn_bindsnet.snn import neurons
from bsnn_bindsnet.conversion.convert import ann_to_bsnn
from bsnn_bindsnet.direct.surrogate import if_sequence
from bsnn_bindsnet.snn.network import build_network, load_plan, save_plan
from bsnn_bindsnet.snn.nodes import BinaryIFNodes
from bsnn_bindsnet.snn.plan import BSNNPlan, LayerSpec, LinearSynapse
from bsnn_bindsnet.simulation.simulate import simulate

pytestmark = pytest.mark.usefixtures("single_thread")


# --------------------------------------------------------------- the new model: code of this file

class LeakySubtract(neurons.ResetStrategy):
    r"""Reset by subtraction, then leak: :math:`v \leftarrow \beta (v - \theta s)`."""

    def __init__(self, beta: float) -> None:
        self.beta = beta

    def __call__(self, v: Tensor, s: Tensor, thresh: Tensor) -> Tensor:
        return self.beta * (v - s.to(v.dtype) * thresh)


class ThresholdStart(neurons.VInitStrategy):
    r""":math:`v_0 = \theta`: every neuron with a non-negative input fires at the first step."""

    def __call__(self, thresh: Tensor) -> Tensor:
        return thresh.clone()


@pytest.fixture
def leaky():
    """Register the model for one test, and remove it afterwards."""
    neurons.register_reset("leaky-subtract", LeakySubtract(beta=0.5))
    neurons.register_v_init("threshold", ThresholdStart())
    try:
        yield
    finally:
        neurons.unregister_reset("leaky-subtract")
        neurons.unregister_v_init("threshold")


# --------------------------------------------------------------------------------------- tests

T = 6
X = torch.tensor([[0.75, 0.5]])
Y = torch.tensor([0])


def identity_plan(reset: str, v_init: str) -> BSNNPlan:
    """input (2,) -> 2 IF neurons (W = I, theta = 1) -> readout (W = I): the readout's
    potential after T steps is the spike count of each hidden neuron."""
    eye = torch.eye(2)
    hidden = LayerSpec("hidden", "if", (2,), "input", LinearSynapse(weight=eye), thresh=1.0)
    readout = LayerSpec("readout", "readout", (2,), "hidden", LinearSynapse(weight=eye))
    return BSNNPlan((2,), [hidden, readout], reset=reset, v_init=v_init)


@pytest.mark.parametrize(("v_init", "counts"), [("zero", [3, 0]), ("threshold", [4, 1])])
def test_the_registered_model_runs_in_a_built_network(leaky, v_init, counts):
    network = build_network(identity_plan("leaky-subtract", v_init))
    assert type(network.layers["hidden"]) is BinaryIFNodes
    result = simulate(network, (X, Y), T, per_sample=True)
    assert result.sample_spikes["hidden"].sum(0).tolist() == [sum(counts)]
    assert result.confidence.tolist() == [max(counts)]  # readout v = the larger count
    assert result.predictions.tolist() == [0]


def test_without_the_leak_the_same_network_fires_as_plain_if():
    network = build_network(identity_plan("subtract", "zero"))
    result = simulate(network, (X, Y), T, per_sample=True)
    assert result.sample_spikes["hidden"].sum(0).tolist() == [4 + 3]  # floor(6 x) each


def test_the_surrogate_gradient_route_runs_the_same_kernel(leaky):
    current = X.expand(T, 1, 2)  # [T, B, n]
    spikes = if_sequence(current, theta=1.0, reset="leaky-subtract")
    assert spikes.sum(0).tolist() == [[3.0, 0.0]]
    assert spikes[:, 0, 0].tolist() == [0, 1, 0, 1, 0, 1]


def test_ann_to_bsnn_and_saved_plans_accept_the_registered_name(leaky, tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2))
    plan = ann_to_bsnn(model, torch.rand(16, 4) + 0.5, reset="leaky-subtract", build=False)
    assert plan.reset == "leaky-subtract"
    path = save_plan(plan, tmp_path / "net.pt")
    assert load_plan(path).reset == "leaky-subtract"
    hidden = build_network(load_plan(path)).layers[plan.layers[0].name]
    assert isinstance(hidden.reset_fn, LeakySubtract)
    neurons.unregister_reset("leaky-subtract")  # a plan naming an unknown reset is refused
    try:
        with pytest.raises(ValueError, match=r"reset 'leaky-subtract' is unknown; expected one "
                                             r"of subtract, zero"):
            load_plan(path)
    finally:
        neurons.register_reset("leaky-subtract", LeakySubtract(beta=0.5))


def test_a_taken_name_is_not_overwritten_by_accident(leaky):
    with pytest.raises(ValueError, match="'subtract' is already registered"):
        neurons.register_reset("subtract", LeakySubtract(beta=0.5))
    with pytest.raises(ValueError, match="v_init 'nope' is not registered"):
        neurons.unregister_v_init("nope")
