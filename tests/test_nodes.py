"""Hand-computed checks of the IF and readout layers, alone and inside a BindsNET Network."""

import math
import warnings

import pytest
import torch

from bsnn_bindsnet.snn.functional import if_step_subtract, if_step_zero
from bsnn_bindsnet.snn.nodes import BinaryIFNodes, ReadoutNodes, ResetIFNodes, SubtractiveIFNodes

with warnings.catch_warnings():
    from bindsnet.network import Network
    from bindsnet.network.monitors import Monitor
    from bindsnet.network.nodes import Input
    from bindsnet.network.topology import Connection


def drive(layer, x: torch.Tensor, steps: int) -> torch.Tensor:
    """Feed the same current ``x`` [B, *shape] for ``steps`` steps; return spikes [T, B, *shape]."""
    spikes = []
    for _ in range(steps):
        layer.forward(x)
        spikes.append(layer.s)
    return torch.stack(spikes)


def spike_steps(spikes: torch.Tensor) -> list[int]:
    """1-based steps at which neuron (0, 0, ...) fired, from spikes [T, B, ...]."""
    return [t + 1 for t, s in enumerate(spikes.flatten(1)[:, 0].tolist()) if s]


@pytest.mark.parametrize(
    "x, thresh, steps",
    [(0.25, 1.0, 10), (0.3, 0.7, 50), (0.75, 2.0, 16), (1.0, 1.0, 5), (0.0, 1.0, 7)],
)
def test_sif_fires_floor_of_total_input_over_threshold(x, thresh, steps):
    layer = SubtractiveIFNodes(3, thresh=thresh)
    layer.set_batch_size(2)
    spikes = drive(layer, torch.full((2, 3), x), steps)
    assert spikes.dtype == torch.bool and spikes.shape == (steps, 2, 3)
    expected = math.floor(steps * x / thresh)  # 2, 21, 6, 5, 0
    assert (spikes.sum(0) == expected).all()


def test_sif_per_channel_threshold_on_a_conv_layer():
    layer = SubtractiveIFNodes(shape=(3, 2, 2), thresh=torch.tensor([1.0, 2.0, 4.0]))
    assert layer.thresh.shape == (3, 1, 1)
    layer.set_batch_size(2)
    counts = drive(layer, torch.full((2, 3, 2, 2), 0.75), 16).sum(0)
    # 16 * 0.75 = 12 units of input: floor(12 / theta) = 12, 6, 3 per channel.
    expected = torch.tensor([12, 6, 3]).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    assert torch.equal(counts, expected)


def test_sif_per_neuron_threshold_on_a_linear_layer():
    layer = SubtractiveIFNodes(3, thresh=torch.tensor([0.5, 1.0, 3.0]))
    layer.set_batch_size(1)
    counts = drive(layer, torch.tensor([[0.5, 0.5, 0.5]]), 12).sum(0)  # 6 units of input
    assert counts.tolist() == [[12, 6, 2]]


@pytest.mark.parametrize("x, thresh", [(2.0, 5.0), (0.5, 1.25)])  # x / theta = 0.4, exact in fp32
def test_sif_and_rif_differ_where_theory_says(x, thresh):
    # In units of theta: SIF .4 .8 1.2|.2 .6 1.0|0 .4 .8 1.2|.2 .6 1.0|0 -> steps 3, 5, 8, 10
    #                    RIF .4 .8 1.2|0 .4 .8 1.2|0 .4 .8 1.2|0 .4     -> steps 3, 6, 9
    sif, rif = SubtractiveIFNodes(1, thresh=thresh), ResetIFNodes(1, thresh=thresh)
    for layer in (sif, rif):
        layer.set_batch_size(1)
    assert spike_steps(drive(sif, torch.tensor([[x]]), 10)) == [3, 5, 8, 10]
    assert spike_steps(drive(rif, torch.tensor([[x]]), 10)) == [3, 6, 9]


@pytest.mark.parametrize("cls", [SubtractiveIFNodes, ResetIFNodes])
def test_v_init_half_fires_earlier(cls):
    # x = 0.25, theta = 1. From 0: .25 .5 .75 1.0 -> first spike at step 4, then every 4th.
    # From theta/2: .75 1.0 -> step 2; after the spike v = 0 for both resets -> 6, 10.
    zero, half = cls(1, thresh=1.0), cls(1, thresh=1.0, v_init="half")
    for layer in (zero, half):
        layer.set_batch_size(1)
    x = torch.tensor([[0.25]])
    assert spike_steps(drive(zero, x, 10)) == [4, 8]
    assert spike_steps(drive(half, x, 10)) == [2, 6, 10]


def test_v_init_half_is_restored_per_channel_by_reset_and_batch_change():
    layer = SubtractiveIFNodes(shape=(2, 1, 3), thresh=torch.tensor([1.0, 3.0]), v_init="half")
    layer.set_batch_size(2)
    expected = torch.tensor([0.5, 1.5]).view(1, 2, 1, 1).expand(2, 2, 1, 3)
    assert torch.equal(layer.v, expected)
    drive(layer, torch.ones(2, 2, 1, 3), 3)
    layer.reset_state_variables()
    assert torch.equal(layer.v, expected) and not layer.s.any()
    layer.set_batch_size(4)
    assert torch.equal(layer.v, expected[:1].expand(4, 2, 1, 3))


@pytest.mark.parametrize(
    "cls, step", [(SubtractiveIFNodes, if_step_subtract), (ResetIFNodes, if_step_zero)]
)
def test_in_place_forward_equals_the_functional_step(cls, step):
    gen = torch.Generator().manual_seed(0)
    thresh = torch.tensor([0.5, 1.0, 2.0])
    layer = cls(shape=(3, 4, 4), thresh=thresh, v_init="half")
    layer.set_batch_size(2)
    v = (0.5 * thresh).view(3, 1, 1).expand(2, 3, 4, 4)
    for _ in range(30):
        x = torch.rand(2, 3, 4, 4, generator=gen) * 1.5 - 0.25
        s, v = step(v, x, thresh.view(3, 1, 1))
        layer.forward(x)
        assert torch.equal(layer.s, s) and torch.equal(layer.v, v)


def test_spikes_returned_earlier_are_not_overwritten():
    layer = SubtractiveIFNodes(2, thresh=1.0)
    layer.set_batch_size(1)
    layer.forward(torch.tensor([[1.0, 0.0]]))
    first = layer.s
    layer.forward(torch.tensor([[0.0, 1.0]]))
    assert first.tolist() == [[True, False]] and layer.s.tolist() == [[False, True]]


def test_readout_integrates_and_never_spikes():
    layer = ReadoutNodes(3)
    layer.set_batch_size(2)
    x = torch.tensor([[0.5, -1.0, 2.0], [100.0, 0.0, -3.0]])
    spikes = drive(layer, x, 7)
    assert spikes.dtype == torch.bool and not spikes.any()
    assert torch.equal(layer.v, 7 * x)
    assert layer.v.argmax(1).tolist() == [2, 0]
    layer.reset_state_variables()
    assert not layer.v.any()
    layer.set_batch_size(1)
    assert layer.v.shape == (1, 3) and layer.s.shape == (1, 3)


@pytest.mark.parametrize(
    "thresh, match",
    [
        (0.0, "> 0"),
        (-1.0, "> 0"),
        (float("inf"), "finite"),
        (float("nan"), "finite"),
        (torch.tensor([1.0, 0.0, 1.0]), "> 0"),
        (torch.tensor([1.0, 2.0]), r"one value per channel.*\(3,\)"),
        (torch.ones(3, 2, 1), "does not broadcast"),
        (torch.ones(2, 3, 4, 4), "does not broadcast"),
    ],
)
def test_invalid_threshold_is_rejected(thresh, match):
    with pytest.raises(ValueError, match=match):
        SubtractiveIFNodes(shape=(3, 4, 4), thresh=thresh)


def test_threshold_shape_must_fit_a_linear_layer():
    with pytest.raises(ValueError, match="does not broadcast"):
        ResetIFNodes(4, thresh=torch.ones(3))
    assert ResetIFNodes(4, thresh=torch.ones(4)).thresh.shape == (4,)
    assert ResetIFNodes(shape=(3, 4, 4), thresh=torch.ones(3, 1, 1)).thresh.shape == (3, 1, 1)


def test_unknown_v_init_is_rejected():
    with pytest.raises(ValueError, match=r"v_init must be one of \('zero', 'half'\).*'random'"):
        SubtractiveIFNodes(3, v_init="random")


def test_unknown_reset_is_rejected():
    with pytest.raises(ValueError, match=r"reset must be one of \('subtract', 'zero'\).*'soft'"):
        BinaryIFNodes(3, reset="soft")


@pytest.mark.parametrize(("reset", "named"), [("subtract", SubtractiveIFNodes),
                                              ("zero", ResetIFNodes)])
def test_the_named_classes_are_the_generic_nodes_with_their_reset(reset, named):
    gen = torch.Generator().manual_seed(1)
    generic = BinaryIFNodes(shape=(2, 3), thresh=torch.tensor([1.0, 0.5]), reset=reset,
                            v_init="half")
    fixed = named(shape=(2, 3), thresh=torch.tensor([1.0, 0.5]), v_init="half")
    assert fixed.reset == generic.reset == reset
    for layer in (generic, fixed):
        layer.set_batch_size(2)
    for _ in range(12):
        x = torch.rand(2, 2, 3, generator=gen)
        generic.forward(x)
        fixed.forward(x)
        assert torch.equal(generic.s, fixed.s) and torch.equal(generic.v, fixed.v)
    assert "reset='" + reset + "'" in repr(fixed)


def test_state_names_list_the_per_sample_state():
    assert BinaryIFNodes.state_names == ReadoutNodes.state_names == ("s", "v", "x", "summed")


# Input -> identity Connection -> IF layer inside a real Network. Constant currents over
# T = 8 steps (dyadic, so exact): SIF fires floor(8 x); RIF loses the residue above theta = 1.
X = torch.tensor([[0.25, 0.5, 0.75, 1.0], [0.125, 0.375, 0.625, 0.875], [0.0, 0.0, 0.5, 0.25]])
COUNTS = {
    SubtractiveIFNodes: [[2, 4, 6, 8], [1, 3, 5, 7], [0, 0, 4, 2]],
    # 0.75: .75 1.5|0 -> every 2nd step (4); 0.375: .375 .75 1.125|0 -> every 3rd (2);
    # 0.625: .625 1.25|0 -> every 2nd (4); 0.875: .875 1.75|0 -> every 2nd (4).
    ResetIFNodes: [[2, 4, 4, 8], [1, 2, 4, 4], [0, 0, 4, 2]],
}


def build_network(layer) -> Network:
    network = Network(dt=1.0)
    network.add_layer(Input(n=4), name="in")
    network.add_layer(layer, name="hid")
    network.add_connection(
        Connection(network.layers["in"], layer, w=torch.eye(4)), source="in", target="hid"
    )
    network.add_monitor(Monitor(layer, ["s"]), name="hid_s")
    network.train(False)
    return network


@pytest.mark.parametrize("cls", [SubtractiveIFNodes, ResetIFNodes])
def test_nodes_in_a_bindsnet_network_across_batch_sizes(cls):
    network = build_network(cls(4, thresh=1.0))
    for rows in ([0], [0, 1, 2], [2]):  # batch 1, then 3, then back to 1
        x = X[rows]
        inputs = {"in": x.unsqueeze(0).repeat(8, 1, 1)}  # [T, B, n], a fresh tensor each run
        network.run(inputs=inputs, time=8, one_step=True)
        spikes = network.monitors["hid_s"].get("s")
        assert spikes.shape == (8, len(rows), 4) and spikes.dtype == torch.bool
        assert spikes.sum(0).tolist() == [COUNTS[cls][r] for r in rows]
        assert network.layers["hid"].v.shape == (len(rows), 4)
        network.reset_state_variables()
        assert not network.layers["hid"].v.any()


def test_traces_and_sum_input_are_handled_by_bindsnet_after_the_spikes():
    layer = SubtractiveIFNodes(2, thresh=1.0, traces=True, sum_input=True)
    layer.compute_decays(1.0)
    layer.set_batch_size(1)
    x = torch.tensor([[0.5, 0.25]])
    drive(layer, x, 2)  # neuron 0 fires at step 2, neuron 1 not yet
    assert torch.equal(layer.summed, 2 * x)
    assert layer.x[0, 0].item() == 1.0 and layer.x[0, 1].item() == 0.0
