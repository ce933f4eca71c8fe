"""QCFS activation and its unrolled spiking twin, against hand-computed values."""

import pytest
import torch
from torch import nn

from bsnn_bindsnet.training.models import get_model
from bsnn_bindsnet.ann.qcfs import QCFS, qcfs
from bsnn_bindsnet.training.unrolled import SpikingQCFS, unroll


def test_qcfs_hand_values():
    # L = 4, lambda = 2: h(z) = 0.5 * clip(floor(2 z + 0.5), 0, 4)
    z = torch.tensor([-1.0, 0.0, 0.2, 0.3, 1.2, 1.9, 5.0])
    expected = torch.tensor([0.0, 0.0, 0.0, 0.5, 1.0, 2.0, 2.0])
    assert torch.equal(qcfs(z, torch.tensor(2.0), 4), expected)


def test_qcfs_gradients_are_straight_through_inside_the_clip():
    z = torch.tensor([0.3, 1.2, 3.0, -1.0], requires_grad=True)
    lam = torch.tensor(2.0, requires_grad=True)
    qcfs(z, lam, 4).sum().backward()
    assert torch.equal(z.grad, torch.tensor([1.0, 1.0, 0.0, 0.0]))
    # inside: h/lam - z/lam per element; above: 1; below: 0
    expected = (0.5 - 0.3) / 2 + (1.0 - 1.2) / 2 + 1.0 + 0.0
    assert lam.grad.item() == pytest.approx(expected)


def test_qcfs_rejects_bad_levels_and_threshold():
    with pytest.raises(ValueError, match="levels"):
        QCFS(0)
    with pytest.raises(ValueError, match="lam"):
        QCFS(4, lam=0.0)


def test_if_neuron_counts_equal_the_quantized_activation_at_T_equal_L():
    # constant current z for L steps, theta = lambda, v(0) = lambda/2, subtractive reset:
    # floor((lambda/2 + L z) / lambda) spikes, clipped to [0, L] = L h(z) / lambda
    levels, lam = 4, 2.0
    act = QCFS(levels, lam)
    z = torch.linspace(-1, 3, 41)
    neuron = SpikingQCFS(act, levels)
    spikes = neuron(z.repeat(levels)).view(levels, -1)
    assert torch.equal(spikes.sum(0), act(z) * levels)


def test_one_hidden_layer_snn_equals_the_ann_at_T_equal_L():
    torch.manual_seed(0)
    model = get_model("mlp", input_shape=(1, 4, 4), hidden=(32,), activation="qcfs", levels=4)
    model.eval()
    x = torch.rand(50, 1, 4, 4)
    snn = unroll(model, 4).eval()
    torch.testing.assert_close(snn(x), model(x))


@pytest.mark.parametrize("pool", ["avg-before", "max-after"])
def test_unrolled_snn_shares_the_models_parameters(pool):
    kind, position = pool.split("-")
    model = get_model("vgg_tiny", quant="bwn", activation="qcfs", levels=2, pool=kind,
                      pool_position=position)
    snn = unroll(model, (2, 4))
    assert {id(p) for p in snn.parameters()} == {id(p) for p in model.parameters()}
    loss = snn(torch.rand(3, 1, 8, 8)).sum()
    loss.backward()
    assert all(m.lam.grad is not None for m in model.modules() if isinstance(m, QCFS))
    snn.eval()
    assert snn.timesteps == 2


def test_several_timesteps_are_drawn_in_training_only():
    model = get_model("mlp", input_shape=(1, 4, 4), hidden=(8,), activation="qcfs")
    snn = unroll(model, (2, 3)).train()
    seen = set()
    for _ in range(30):
        snn(torch.rand(2, 1, 4, 4))
        seen.add(next(m for m in snn.modules() if isinstance(m, SpikingQCFS)).timesteps)
    assert seen == {2, 3}
    snn.eval()(torch.rand(2, 1, 4, 4))
    assert next(m for m in snn.modules() if isinstance(m, SpikingQCFS)).timesteps == 2


def test_unroll_refuses_relu_and_avg_after():
    with pytest.raises(ValueError, match="ReLU"):
        unroll(get_model("vgg_tiny"), 2)
    for kind, position in (("avg", "after"), ("max", "before")):
        with pytest.raises(ValueError, match="extra IF layer"):
            unroll(get_model("vgg_tiny", activation="qcfs", pool=kind, pool_position=position), 2)


def test_qcfs_is_refused_for_xnor():
    with pytest.raises(ValueError, match="qcfs"):
        get_model("vgg_tiny", quant="xnor", activation="qcfs")


@pytest.mark.parametrize("pool", ["avg-before", "avg-after", "max-before", "max-after"])
def test_qcfs_model_trains_in_every_pooling_placement(pool):
    kind, position = pool.split("-")
    model = get_model("vgg_tiny", quant="bwn", activation="qcfs", pool=kind,
                      pool_position=position)
    lams = [m.lam for m in model.modules() if isinstance(m, QCFS)]
    assert len(lams) == 5
    loss = nn.functional.cross_entropy(model(torch.randn(4, 1, 8, 8)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert all(lam.grad is not None for lam in lams)


# ---------------------------------------------------------------- conversion to BindsNET


def _qcfs_mlp(hidden=(32,), levels=4, seed=0):
    torch.manual_seed(seed)
    model = get_model("mlp", input_shape=(1, 4, 4), hidden=hidden, activation="qcfs",
                      levels=levels).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, QCFS):
                m.lam.fill_(0.3)
            elif isinstance(m, nn.Linear):
                m.weight.normal_(0, 0.3)
    return model


def test_converted_counts_equal_the_ann_at_T_equal_L_without_calibration():
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn
    from bsnn_bindsnet.simulation.simulate import simulate

    levels = 4
    model = _qcfs_mlp(levels=levels)
    x = torch.rand(20, 1, 4, 4)
    plan = ann_to_bsnn(model, None, build=False)
    assert plan.layers[0].thresh == pytest.approx(0.3)  # theta = lambda, no statistics
    assert plan.info.calibration_samples is None
    assert plan.info.fixed_lambda_layers == ["relu_fc1"]
    net = ann_to_bsnn(model, None)
    for i in range(len(x)):  # per sample: counts of relu_fc1 = L h(z) / lambda
        r = simulate(net, (x[i:i + 1], torch.zeros(1, dtype=torch.long)), levels,
                     per_neuron=True)
        expected = nn.Sequential(*list(model)[:3])(x[i:i + 1])[0] * levels / 0.3
        torch.testing.assert_close(r.neuron_spikes["relu_fc1"].float(), expected)
    r = simulate(net, (x, torch.zeros(20, dtype=torch.long)), levels)
    assert torch.equal(r.predictions, model(x).argmax(1))


def test_bindsnet_and_the_unrolled_snn_agree_with_two_hidden_layers():
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn
    from bsnn_bindsnet.simulation.simulate import simulate

    model = _qcfs_mlp(hidden=(32, 32), levels=2, seed=1)
    x = torch.rand(200, 1, 4, 4)
    for t in (1, 2, 3, 5):
        r = simulate(ann_to_bsnn(model, None), (x, torch.zeros(200, dtype=torch.long)), t)
        with torch.no_grad():
            assert torch.equal(r.predictions, unroll(model, t)(x).argmax(1))


# ---------------------------------------------------------------- training


def test_fine_tuning_a_relu_run_into_qcfs_starts_lambda_at_the_percentile(tmp_path):
    from bsnn_bindsnet.zoo import registry as zoo
    from bsnn_bindsnet.training.models import load_model
    from bsnn_bindsnet.data.registry import load_dataset
    from bsnn_bindsnet.conversion.normalize import activation_scales
    from bsnn_bindsnet.training.fit import RunConfig, fit

    relu = zoo.load("digits-bwn")
    calib = load_dataset("digits", "calib")
    names = [n for n, m in relu.named_children() if isinstance(m, nn.ReLU)]
    expected = activation_scales(relu, {n: getattr(relu, n) for n in names}, calib,
                                 percentile=99.9)
    out = tmp_path / "qcfs"
    # lr tiny: after one step lambda is still (almost) where it started
    fit(RunConfig("digits-qcfs-bwn", str(out), init_from=str(zoo.materialize("digits-bwn")),
                  levels=2, epochs=1, lr=1e-9, train_subset=64, progress=False))
    model = load_model(out / "model.pt")
    got = {n: float(m.lam.detach()) for n, m in model.named_children() if isinstance(m, QCFS)}
    assert list(got) == names
    for n in names:
        assert got[n] == pytest.approx(expected[n], rel=1e-4)
    assert all(m.levels == 2 for m in model.modules() if isinstance(m, QCFS))

    # then through the B-SNN: the run's test accuracy is the unrolled B-SNN's at T = 2
    snn_out = tmp_path / "snn"
    history = fit(RunConfig("digits-qcfs-snn", str(snn_out), init_from=str(out / "model.pt"),
                            snn_timesteps=(2,), epochs=1, train_subset=64, progress=False))
    tuned = load_model(snn_out / "model.pt").eval()
    test = load_dataset("digits", "test")
    x = torch.stack([test[i][0] for i in range(len(test))])
    y = torch.tensor([test[i][1] for i in range(len(test))])
    with torch.no_grad():
        acc = float((unroll(tuned, 2).eval()(x).argmax(1) == y).double().mean())
    assert history[-1]["test_acc"] == pytest.approx(acc)


@pytest.mark.parametrize("name", ["vgg_tiny", "vgg_small", "mlp", "vgg15"])
def test_qcfs_models_trace_with_torch_fx(name):
    model = get_model(name, quant="bwn", activation="qcfs", levels=4).eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.rand(2, *model.input_shape)
    torch.testing.assert_close(traced(x), model(x))
