import pytest
import torch
from torch.nn.modules.utils import _pair

from bsnn_bindsnet.analysis.ops import layer_ops, normalized_ops
from bsnn_bindsnet.training.models import get_model
from bsnn_bindsnet.conversion.convert import ann_to_bsnn


@pytest.fixture
def plan():
    torch.manual_seed(0)
    model = get_model("vgg_tiny", quant="bwn")  # 1x8x8 -> 16,16,P,32,32,P -> 128 -> 10
    return ann_to_bsnn(model, torch.randn(8, 1, 8, 8), build=False)


def test_eq3_and_eq4_counts_by_hand(plan):
    ops = {o.name: (o.source, o.kind, o.binary, o.ops) for o in layer_ops(plan)}
    assert ops == {
        "relu1": ("input", "conv", False, 1 * 3 * 3 * 16 * 8 * 8),      # 9216
        "relu2": ("relu1", "conv", True, 16 * 3 * 3 * 16 * 8 * 8),      # pool folded: o = 8x8
        "relu3": ("relu2", "conv", True, 16 * 3 * 3 * 32 * 4 * 4),
        "relu4": ("relu3", "conv", True, 32 * 3 * 3 * 32 * 4 * 4),
        "relu_fc1": ("relu4", "linear", True, 32 * 2 * 2 * 128),
        "readout": ("relu_fc1", "linear", False, 128 * 10),
    }


def test_normalized_ops_by_hand(plan):
    ops = layer_ops(plan)
    ifr = {"relu1": 2.0, "relu2": 1.0, "relu3": 0.5, "relu4": 4.0, "relu_fc1": 3.0}
    # (2*147456 + 1*73728 + 0.5*147456 + 4*16384) / (147456 + 73728 + 147456 + 16384)
    assert normalized_ops(ops, ifr, timesteps=10) == pytest.approx(507904 / 385024)
    # all layers: the analog input costs T=10 passes of conv1; the readout is driven by relu_fc1
    expect = (507904 + 10 * 9216 + 3.0 * 1280) / (385024 + 9216 + 1280)
    assert normalized_ops(ops, ifr, timesteps=10, layers="all") == pytest.approx(expect)


def test_an_ann_rate_of_one_spike_per_neuron_costs_exactly_the_ann(plan):
    ops = layer_ops(plan)
    ones = {name: 1.0 for name in ("relu1", "relu2", "relu3", "relu4", "relu_fc1")}
    assert normalized_ops(ops, ones, timesteps=1, layers="all") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="'hidden' or 'all'"):
        normalized_ops(ops, ones, timesteps=1, layers="binary")


def test_full_precision_networks_are_counted_at_the_same_positions():
    torch.manual_seed(0)
    fp = ann_to_bsnn(get_model("vgg_tiny"), torch.randn(8, 1, 8, 8), build=False)
    ops = layer_ops(fp)
    assert not any(o.binary for o in ops)
    ifr = {"relu1": 2.0, "relu2": 1.0, "relu3": 0.5, "relu4": 4.0, "relu_fc1": 3.0}
    assert normalized_ops(ops, ifr, timesteps=10) == pytest.approx(507904 / 385024)


def _brute_force_events(syn, counts):
    """Count (spike, target) pairs neuron by neuron from the connectivity rule itself."""
    if syn.type == "linear":
        return float(counts.sum()) * syn.matrix.shape[0]
    c_out, _, kh, kw = syn.matrix.shape
    (sh, sw), (ph, pw) = _pair(syn.stride), _pair(syn.padding)
    _, h, w = counts.shape
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    total = 0.0
    for y in range(h):
        for x in range(w):
            # output positions whose kernel window covers input (y, x)
            rows = sum(1 for oy in range(oh) if oy * sh - ph <= y < oy * sh - ph + kh)
            cols = sum(1 for ox in range(ow) if ox * sw - pw <= x < ox * sw - pw + kw)
            total += float(counts[:, y, x].sum()) * rows * cols * c_out
    return total


def test_counted_synaptic_events_match_the_simulated_spikes_and_bound_the_eq5_estimate(plan):
    from bsnn_bindsnet.analysis.ops import normalized_events, synaptic_events
    from bsnn_bindsnet.snn.network import build_network
    from bsnn_bindsnet.simulation.simulate import simulate

    torch.manual_seed(1)
    data = [(torch.randn(1, 8, 8), 0) for _ in range(6)]
    result = simulate(build_network(plan), data, 12, per_neuron=True, progress=False)
    spikes = result.neuron_spikes
    events = synaptic_events(plan, spikes, result.n)
    assert [o.name for o, _ in events] == ["relu2", "relu3", "relu4", "relu_fc1"]
    syn = {layer.name: layer.synapse for layer in plan.layers}
    for o, got in events:
        assert got > 0
        assert got == pytest.approx(_brute_force_events(syn[o.name], spikes[o.source]) / 6)
    # Eq. 5 with IFR: the linear layer agrees exactly; padded convs differ by the border only
    ifr = result.firing_rates()
    by_layer = {o.name: (o, e) for o, e in events}
    o, e = by_layer["relu_fc1"]
    assert e == pytest.approx(ifr["relu4"] * o.ops)
    estimate = normalized_ops(layer_ops(plan), ifr, timesteps=12)
    assert normalized_events(events) == pytest.approx(estimate, rel=0.25)


def test_uniform_firing_makes_counted_events_equal_eq5(plan):
    from bsnn_bindsnet.analysis.ops import normalized_events, synaptic_events

    shapes = {layer.name: layer.shape for layer in plan.layers}
    spikes = {name: torch.full(shapes[name], 3.0)
              for name in ("relu1", "relu2", "relu3", "relu4", "relu_fc1")}
    # every neuron fires 3 times in one sample; with padding 1 a border input of a 3x3 conv
    # reaches fewer outputs, so uniform firing gives fewer events than IFR * #OPS ...
    events = synaptic_events(plan, spikes, 1)
    ops = layer_ops(plan)
    eq5 = normalized_ops(ops, {k: 3.0 for k in spikes}, timesteps=1)
    assert normalized_events(events, denominator="eq3") < eq5
    # divided by the unpadded MACs (the events' own convention) uniform firing gives IFR exactly
    assert eq5 == pytest.approx(3.0)
    assert normalized_events(events) == pytest.approx(3.0)
    # ... by exactly the missing border synapses: on an 8x8 map with a 3x3 kernel and padding
    # 1, rows 0 and 7 are covered by 2 output rows and rows 1-6 by 3: 22 row-coverings, so
    # 22 * 22 (spike, position) pairs per channel instead of 3 * 3 * 64 = 24 * 24
    o, e = next((o, e) for o, e in events if o.name == "relu2")
    assert e == pytest.approx(3.0 * 16 * 16 * 22 * 22)        # c_in * c_out * 484 * 3 spikes
    assert o.ops == 16 * 9 * 16 * 64 == 16 * 16 * 24 * 24
    # the hidden layers by hand (8x8 maps: 22*22 coverings, 4x4 maps: 10*10, linear: all):
    # eq3 = 147456 + 73728 + 147456 + 16384 = 385024 padded MACs,
    # unpadded = 16*16*484 + 16*32*100 + 32*32*100 + 128*128 = 123904 + 51200 + 102400 + 16384
    unpadded = {o.name: o.unpadded for o in ops}
    assert unpadded == {"relu1": 1 * 16 * 22 * 22, "relu2": 123904, "relu3": 51200,
                        "relu4": 102400, "relu_fc1": 16384, "readout": 1280}
    assert normalized_events(events, denominator="eq3") == pytest.approx(3 * 293888 / 385024)
    with pytest.raises(ValueError, match="'unpadded' or 'eq3'"):
        normalized_events(events, denominator="padded")
    with pytest.raises(ValueError, match="analog input"):
        synaptic_events(plan, spikes, 1, layers="all")


def test_ops_report_gives_the_hidden_and_the_all_layers_count_by_hand(plan):
    from bsnn_bindsnet.analysis.ops import ops_report

    ops = layer_ops(plan)
    ifr = {"relu1": 2.0, "relu2": 1.0, "relu3": 0.5, "relu4": 4.0, "relu_fc1": 3.0}
    r = ops_report(ops, ifr, timesteps=10)
    assert r["hidden"] == pytest.approx(507904 / 385024)                       # 1.3192
    # all: + 10 full passes of conv1 (9216 MACs each) + the readout driven by relu_fc1
    assert r["all"] == pytest.approx((507904 + 92160 + 3840) / (385024 + 9216 + 1280))
    assert r["first_layer_share"] == pytest.approx(92160 / (507904 + 92160 + 3840))
