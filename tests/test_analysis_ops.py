import pytest
import torch

from bsnn_bindsnet.analysis.ops import layer_ops, normalized_ops
from bsnn_bindsnet.ann.models import get_model
from bsnn_bindsnet.convert import ann_to_bsnn


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
