import pytest
import torch
from torch import nn

from bsnn_bindsnet.direct.export import direct_to_bsnn, direct_to_plan, fold_batchnorm
from bsnn_bindsnet.direct.model import DirectBSNN, parse_blocks
from bsnn_bindsnet.direct.surrogate import if_sequence, spike, surrogate_grad


@pytest.mark.parametrize("u, theta, expected", [
    (1.0, 1.0, 0.3), (0.5, 1.0, 0.15), (1.5, 1.0, 0.15), (0.0, 1.0, 0.0), (2.0, 1.0, 0.0),
    (3.0, 1.0, 0.0), (1.0, 2.0, 0.15), (2.0, 2.0, 0.3), (3.0, 2.0, 0.15)])
def test_surrogate_gradient_at_hand_picked_points(u, theta, expected):
    x = torch.tensor(u, requires_grad=True)
    out = spike(x, theta)
    out.backward()
    assert out.item() == float(u >= theta)
    assert x.grad.item() == pytest.approx(expected)
    assert surrogate_grad(torch.tensor(u), theta).item() == pytest.approx(expected)


def test_if_sequence_soft_reset_by_hand():
    current = torch.tensor([[0.6], [0.6], [0.6], [1.5], [0.0]])
    # u: 0.6, 1.2 -> spike, 0.2; 0.8; 2.3 -> spike, 1.3; 1.3 -> spike, 0.3
    assert if_sequence(current, 1.0).flatten().tolist() == [0, 1, 0, 1, 1]
    # from u0 = 0.5: 1.1 -> spike, 0.1; 0.7; 1.3 -> spike, 0.3; 1.8 -> spike, 0.8; 0.8
    assert if_sequence(current, 1.0, 0.5).flatten().tolist() == [1, 0, 1, 1, 0]


def test_parse_blocks_and_shape_errors():
    assert [b.residual for b in parse_blocks(["c8p", "c8", "c8r", "f16r"])] == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="not a block code"):
        parse_blocks(["conv8"])
    with pytest.raises(ValueError, match="linear blocks cannot pool"):
        parse_blocks(["f8p"])
    with pytest.raises(ValueError, match="residual input from block 1 needs"):
        DirectBSNN(("c8p", "c16", "c16r"), input_shape=(1, 8, 8))  # o1 8ch vs o2 16ch
    with pytest.raises(ValueError, match="expected \\[B, 1, 8, 8\\]"):
        DirectBSNN(("c8", "c8"), input_shape=(1, 8, 8))(torch.zeros(2, 1, 6, 6))


def _bn(gamma, beta, mu, var):
    bn = nn.BatchNorm1d(1)
    bn.weight.data.fill_(gamma)
    bn.bias.data.fill_(beta)
    bn.running_mean.fill_(mu)
    bn.running_var.fill_(var - bn.eps)  # sigma = sqrt(var)
    return bn


def test_fold_batchnorm_by_hand():
    # k = gamma*alpha/sigma = 2*0.5/2 = 0.5: thresh 1/0.5 = 2, bias (0.5*2/2 - 1)/0.5 = -1
    flip, bias, thresh = fold_batchnorm(torch.tensor([0.5]), _bn(2.0, 0.5, 1.0, 4.0), 1.0)
    assert (flip.item(), bias.item(), thresh.item()) == pytest.approx((1, -1, 2))
    # negative gamma: the row is negated, bias -((0.5*2/-2) - 1)/0.5 = 3
    flip, bias, thresh = fold_batchnorm(torch.tensor([0.5]), _bn(-2.0, 0.5, 1.0, 4.0), 1.0)
    assert (flip.item(), bias.item(), thresh.item()) == pytest.approx((-1, 3, 2))
    with pytest.raises(ValueError, match="scale \\(or alpha\\) of 0"):
        fold_batchnorm(torch.tensor([0.5]), _bn(0.0, 0.5, 1.0, 4.0), 1.0)


def _random_bn_model(seed=0, coding="poisson", v_init="zero"):
    torch.manual_seed(seed)
    model = DirectBSNN(("c8p", "c8", "c8r", "f16r"), input_shape=(1, 8, 8), num_classes=5,
                       timesteps=6, residual_factor=0.5, coding=coding, v_init=v_init)
    for bn in model.norms:  # non-trivial statistics, some negative gammas
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(-1.5, 1.5)
        bn.bias.data.uniform_(-0.3, 0.6)
    return model.eval()


def _bindsnet_steps(network, spikes):
    """Run ``network`` step by step on ``[T, B, ...]`` spikes: per-step spikes of every layer."""
    network.reset_state_variables()
    out = {name: [] for name in network.layers if name.startswith("block")}
    for t in range(spikes.shape[0]):
        network.run(inputs={"input": spikes[t:t + 1].clone()}, time=1, one_step=True)
        for name in out:
            out[name].append(network.layers[name].s.clone().float())
    return {k: torch.stack(v) for k, v in out.items()}, network.layers["readout"].v.flatten(1)


@pytest.mark.parametrize(("coding", "v_init"), [("poisson", "zero"),
                                               ("poisson-intensity", "zero"),
                                               ("poisson-intensity", "half"),
                                               ("current", "zero")])
def test_exported_network_reproduces_every_spike_and_the_readout(coding, v_init):
    model = _random_bn_model(coding=coding, v_init=v_init)
    assert any((bn.weight < 0).any() for bn in model.norms)
    x = torch.randn(9, 1, 8, 8)
    spikes = model.encode(x, torch.Generator().manual_seed(3))
    assert (spikes < 0).any() == (coding != "poisson-intensity")  # intensity: 0/1 spikes
    assert (coding == "current") == bool((spikes == spikes[:1]).all())  # constant over T
    plan = direct_to_plan(model)
    assert plan.info.encoding == coding and plan.v_init == v_init  # `bsnn simulate` uses
    with torch.no_grad():
        logits, outs = model.run(spikes)
    assert all(o.sum() > 0 for o in outs)  # every layer is active: the test has teeth
    steps, readout = _bindsnet_steps(direct_to_bsnn(model), spikes)
    for i, o in enumerate(outs, start=1):
        assert torch.equal(steps[f"block{i}"], o), f"block{i}"
    torch.testing.assert_close(readout, logits, rtol=1e-5, atol=1e-6)


def test_plan_has_binary_integer_macs_folded_thresholds_and_round_trips(tmp_path):
    from bsnn_bindsnet.snn.network import load_plan, save_plan

    plan = direct_to_plan(_random_bn_model())
    hidden = [layer for layer in plan.layers if layer.kind == "if"]
    assert [layer.synapse.binary for layer in hidden] == [False, True, True, True]
    assert all(torch.equal(layer.synapse.scale, torch.ones_like(layer.synapse.scale))
               for layer in hidden[1:])
    assert [layer.residual.source if layer.residual else None for layer in hidden] == [
        None, None, "block1", "block2"]
    assert hidden[2].residual.synapse.scale.unique().tolist() == [0.5]
    assert torch.equal(hidden[2].residual.synapse.sign, hidden[2].synapse.sign)
    loaded = load_plan(save_plan(plan, tmp_path / "direct.pt"))
    assert loaded.layers[2].residual.source == "block1"
    torch.testing.assert_close(loaded.layers[1].thresh, plan.layers[1].thresh)


def test_unknown_input_coding_or_initial_potential_is_refused():
    with pytest.raises(ValueError, match="coding must be one of current, poisson, poisson-intensity"):
        DirectBSNN(("c8",), input_shape=(1, 8, 8), coding="latency")
    with pytest.raises(ValueError, match="v_init must be 'zero' or 'half', got 'one'"):
        DirectBSNN(("c8",), input_shape=(1, 8, 8), v_init="one")


def test_direct_to_plan_rejects_an_ann():
    with pytest.raises(TypeError, match="expected a DirectBSNN"):
        direct_to_plan(nn.Sequential(nn.Linear(2, 2)))


def test_batchnorm_folding_keeps_predictions_of_a_trained_model(tmp_path):
    from bsnn_bindsnet.training.fit import RunConfig, fit
    from bsnn_bindsnet.training.models import load_model
    from bsnn_bindsnet.data.registry import load_dataset

    hist = fit(RunConfig(preset="digits-direct", out_dir=str(tmp_path), epochs=3,
                         progress=False))
    assert hist[-1]["test_acc"] > 0.6
    model = load_model(tmp_path / "model.pt").eval()
    test = load_dataset("digits", "test")
    x = torch.stack([test[i][0] for i in range(64)])
    spikes = model.encode(x, torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, _ = model.run(spikes)
    network = direct_to_bsnn(model)
    steps, readout = _bindsnet_steps(network, spikes)
    assert torch.equal(readout.argmax(1), logits.argmax(1))
    torch.testing.assert_close(readout, logits, rtol=1e-4, atol=1e-4)
    # every binary MAC of the trained network runs exactly on the XNOR array model
    from bsnn_bindsnet.imc import verify_network

    errors = verify_network(network, {k: v.flatten(0, 1) for k, v in steps.items()})
    assert len(errors) == 3 and set(errors.values()) == {0.0}


def test_presets_use_the_papers_residual_indicator_f_1():
    # XNOR-BSNN: "f = 1 implies the presence of the residual connection, otherwise f = 0"
    from bsnn_bindsnet.training.recipes import PRESETS

    direct = {k: p for k, p in PRESETS.items() if p.route == "direct"}
    assert set(direct) == {"cifar100-direct", "fmnist-direct", "digits-direct"}
    assert all(p.model_kwargs["residual_factor"] == 1.0 for p in direct.values())
    assert DirectBSNN(("c4", "c4", "c4r"), input_shape=(1, 4, 4)).residual_factor == 1.0
    with pytest.raises(ValueError, match="residual_factor must be >= 0"):
        DirectBSNN(("c4",), input_shape=(1, 4, 4), residual_factor=-1.0)


def test_a_model_file_without_residual_factor_loads_with_the_f_it_was_trained_with(tmp_path):
    # files written before residual_factor was recorded were trained with the old default 0.5
    from bsnn_bindsnet.checkpoint import save_model
    from bsnn_bindsnet.training.models import load_model

    torch.manual_seed(0)
    model = DirectBSNN(("c4", "c4", "c4r", "f8"), input_shape=(1, 6, 6), num_classes=3,
                       timesteps=3, residual_factor=0.5).eval()
    old = {"blocks": ("c4", "c4", "c4r", "f8"), "input_shape": (1, 6, 6), "num_classes": 3,
           "timesteps": 3}
    save_model(model, tmp_path / "old.pt", name="direct_bsnn", model_kwargs=old)
    loaded = load_model(tmp_path / "old.pt")
    assert loaded.residual_factor == 0.5
    x = torch.randn(5, 1, 6, 6)
    torch.testing.assert_close(loaded.eval()(x, generator=torch.Generator().manual_seed(1)),
                               model(x, generator=torch.Generator().manual_seed(1)))
    save_model(model, tmp_path / "new.pt", name="direct_bsnn",
               model_kwargs={**old, "residual_factor": 1.0})
    assert load_model(tmp_path / "new.pt").residual_factor == 1.0


@pytest.mark.parametrize("affine", [True, False])
def test_readout_batchnorm_of_algorithm_1_step_19_folds_into_the_exported_readout(affine):
    torch.manual_seed(0)
    model = DirectBSNN(("c8p", "c8", "f16"), input_shape=(1, 8, 8), num_classes=5, timesteps=6,
                       coding="current", readout_norm=True, affine=affine)
    assert model.readout_norm is not None and model.readout_norm.affine == affine
    for bn in [*model.norms, model.readout_norm]:
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        if affine:
            bn.weight.data.uniform_(-1.5, 1.5)
            bn.bias.data.uniform_(-0.3, 0.6)
    model.eval()
    spikes = model.encode(torch.randn(7, 1, 8, 8))
    with torch.no_grad():
        logits, outs = model.run(spikes)
    steps, readout = _bindsnet_steps(direct_to_bsnn(model), spikes)
    assert outs[-1].sum() > 0
    torch.testing.assert_close(readout, logits, rtol=1e-5, atol=1e-5)
    # without the option the readout has no batch-norm and no bias, as before
    assert DirectBSNN(("c8p", "f16"), input_shape=(1, 8, 8)).readout_norm is None


def test_readout_batchnorm_folding_by_hand():
    model = DirectBSNN(("f2",), input_shape=(1, 1, 2), num_classes=1, timesteps=2,
                       quant="fp", readout_norm=True).eval()
    model.readout.weight.data = torch.tensor([[1.0, 2.0]])
    bn = model.readout_norm
    bn.running_mean.fill_(1.0)
    bn.running_var.fill_(4.0 - bn.eps)       # sigma = 2
    bn.weight.data.fill_(3.0)
    bn.bias.data.fill_(0.5)
    syn = direct_to_plan(model).layers[-1].synapse
    # gamma/sigma * W = 1.5 * [1, 2]; bias beta - gamma*mu/sigma = 0.5 - 1.5 = -1
    assert syn.matrix.tolist() == [[1.5, 3.0]]
    assert syn.bias.tolist() == [-1.0]
