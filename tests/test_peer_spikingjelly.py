import sys

import pytest
import torch

from bsnn_bindsnet.ann.binarize import binary_layers
from bsnn_bindsnet.training.models import get_model
from bsnn_bindsnet.interop.spikingjelly import (INSTALL, SpikingJellyMissingError, prepare_model,
                                             spikingjelly_convert, spikingjelly_curve)
from bsnn_bindsnet.training.unrolled import SpikingQCFS, unroll


@pytest.fixture
def sj(single_thread):
    return pytest.importorskip(
        "spikingjelly", reason=f"SpikingJelly is an optional peer: {INSTALL}")


def one_hidden_qcfs_mlp():
    """x [B, 1, 1, 4] -> fc1 (picks x[:3]) -> QCFS(L=4, lam=2) -> fc2 (3 -> 2)."""
    model = get_model("mlp", input_shape=(1, 1, 4), hidden=(3,), num_classes=2,
                      activation="qcfs", levels=4).eval()
    with torch.no_grad():
        model.fc1.weight.copy_(torch.eye(3, 4))
        model.relu_fc1.lam.fill_(2.0)
        model.fc2.weight.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))
    return model


# currents z = x[:3]; in units of theta per step over T = 4: z * 4 / 2
X = torch.tensor([[0.375, 1.375, 3.0, 0.0], [-1.0, 0.625, 1.125, 0.0]]).reshape(2, 1, 1, 4)
Y = torch.tensor([0, 1])


def test_qcfs_mode_counts_spikes_by_hand_and_as_the_unrolled_snn(sj):
    # v(0) = theta/2: count = clip(floor(4 z / 2 + 1/2), 0, 4): [1, 3, 4] and [0, 1, 2]
    model = one_hidden_qcfs_mlp()
    peer = spikingjelly_curve(model, None, (X, Y), 4, mode="qcfs")
    assert peer.thresholds == {"relu_fc1": 2.0}
    assert peer.neuron_spikes["relu_fc1"].tolist() == [1.0, 4.0, 6.0]
    assert int(peer.layer_spikes["relu_fc1"].sum()) == 11 and peer.layer_neurons == {
        "relu_fc1": 3}
    counts = []
    snn = unroll(model, 4)
    snn.body.relu_fc1.register_forward_hook(
        lambda m, i, out: counts.append(out.unflatten(0, (4, -1)).sum((0, 1)) / 2.0))
    with torch.no_grad():
        snn(X)
    assert isinstance(snn.body.relu_fc1, SpikingQCFS)
    assert counts[0].tolist() == [1.0, 4.0, 6.0]
    # T = L: the SNN reproduces the ANN (QCFS Theorem 2): h(z) * L / lam per sample
    with torch.no_grad():
        assert (model.relu_fc1(model.fc1(model.flatten(X))) * 4 / 2).sum(0).tolist() == [
            1.0, 4.0, 6.0]


def test_qcfs_mode_with_zero_initial_potential_rounds_down(sj):
    # v(0) = 0 (SpikingJelly's IFNode): floor(4 z / 2) -> [0, 2, 4] and [0, 1, 2]
    peer = spikingjelly_curve(one_hidden_qcfs_mlp(), None, (X, Y), 4, mode="qcfs",
                              v_init="zero")
    assert peer.neuron_spikes["relu_fc1"].tolist() == [0.0, 3.0, 6.0]
    assert peer.neuron.startswith("IFNode")


def test_binary_weights_reach_the_converted_model_bit_for_bit(sj):
    torch.manual_seed(0)
    model = get_model("vgg_tiny", quant="bwn", activation="qcfs", levels=4).eval()
    snn, names = spikingjelly_convert(model, mode="qcfs")
    assert sorted(names.values()) == ["relu1", "relu2", "relu3", "relu4", "relu_fc1"]
    for name, layer in binary_layers(model):
        w = snn.get_submodule(name).weight
        assert torch.equal(w, layer.binary_weight().detach())
        # alpha * sign(W): one magnitude per output channel
        assert (w.abs().flatten(1).amax(1) == w.abs().flatten(1).amin(1)).all()
    assert all(type(snn.get_submodule(f"{p}.if_node")).__name__ == "HalfThresholdIFNode"
               for p in names)
    # the caller's model keeps its binary layers and QCFS
    assert len(binary_layers(model)) == 4 and type(model.relu1).__name__ == "QCFS"


def test_percentile_mode_matches_our_converter_on_a_small_model(sj):
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn
    from bsnn_bindsnet.simulation.simulate import simulate

    torch.manual_seed(0)
    model = get_model("vgg_tiny", quant="bwn").eval()
    calib = torch.rand(32, 1, 8, 8)
    x = torch.rand(16, 1, 8, 8)
    y = model(x).argmax(1)  # labels the ANN gets right: the curve climbs to 1
    peer = spikingjelly_curve(model, calib, (x, y), 8, v_init="half")
    ours = simulate(ann_to_bsnn(model, calib, percentile=99.9, v_init="half"), (x, y), 8)
    assert peer.ann_accuracy == 1.0
    assert peer.accuracy == pytest.approx(ours.accuracy, abs=1 / 16)
    rates = ours.firing_rates()
    assert peer.firing_rates() == pytest.approx(rates, rel=1e-3)


def test_options_are_checked(sj):
    model = get_model("vgg_tiny", quant="bwn").eval()
    with pytest.raises(ValueError, match="QCFS"):
        spikingjelly_convert(model, mode="qcfs")
    with pytest.raises(ValueError, match="mode"):
        spikingjelly_convert(model, mode="max")
    with pytest.raises(ValueError, match="v_init"):
        spikingjelly_convert(model, torch.rand(4, 1, 8, 8), v_init="third")


def test_prepare_model_needs_no_spikingjelly():
    model = get_model("vgg_tiny", quant="bwn", activation="qcfs").eval()
    plain, qcfs = prepare_model(model)
    assert sorted(qcfs) == ["relu1", "relu2", "relu3", "relu4", "relu_fc1"]
    assert type(plain.conv2) is torch.nn.Conv2d and type(plain.relu1) is torch.nn.ReLU
    relu = get_model("vgg_tiny", quant="bwn").eval()
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(prepare_model(relu)[0](x), relu(x))


def test_missing_spikingjelly_names_the_install_command(monkeypatch):
    for name in [m for m in sys.modules if m.split(".")[0] == "spikingjelly"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "spikingjelly", None)  # import spikingjelly fails
    model = get_model("vgg_tiny", quant="bwn").eval()
    with pytest.raises(SpikingJellyMissingError, match="--no-deps spikingjelly==2.0.0") as err:
        spikingjelly_curve(model, torch.rand(4, 1, 8, 8), (torch.rand(2, 1, 8, 8),
                                                           torch.zeros(2, dtype=torch.long)), 2)
    assert isinstance(err.value, ModuleNotFoundError) and err.value.name.startswith("spikingjelly")
