"""The one-pass IF kernel (issue 21): hand-computed steps, bit-for-bit identity with the eager
step for both resets and every threshold shape, the fallbacks, and whole networks."""

import json

import pytest
import torch
import torch.nn.functional as F

from bsnn_bindsnet.conversion.convert import ann_to_bsnn
from bsnn_bindsnet.simulation.simulate import simulate
from bsnn_bindsnet.snn import fused_if
from bsnn_bindsnet.snn.functional import if_step_, to_conv_layout
from bsnn_bindsnet.snn.fused_if import fused_reset, if_step_fused, kernels_used
from bsnn_bindsnet.snn.network import build_network
from bsnn_bindsnet.snn.neurons import MembraneReset, MembraneSubtract, get_reset
from bsnn_bindsnet.training.models import get_model

pytestmark = pytest.mark.usefixtures("single_thread")
SUB, ZERO = get_reset("subtract"), get_reset("zero")
needs_kernel = pytest.mark.skipif(fused_if.status() != "fused",
                                  reason=f"no fused IF kernel here: {fused_if.status()}")


@needs_kernel
def test_one_step_by_hand():
    # theta 1: u = v + x = [1.5, 0.75, 2.5, -0.25]; spikes where u >= 1: [1, 0, 1, 0]
    v = torch.tensor([[0.5, 0.5, 2.0, 0.25]])
    x = torch.tensor([[1.0, 0.25, 0.5, -0.5]])
    theta = torch.tensor(1.0)
    s = if_step_fused(v, x, theta, SUB)
    assert s.tolist() == [[True, False, True, False]]
    assert v.tolist() == [[0.5, 0.75, 1.5, -0.25]]  # subtract: the residue is kept
    v = torch.tensor([[0.5, 0.5, 2.0, 0.25]])
    s = if_step_fused(v, x, theta, ZERO)
    assert s.tolist() == [[True, False, True, False]]
    assert v.tolist() == [[0.0, 0.75, 0.0, -0.25]]  # to zero: the residue is lost


def _eager(v, x, thresh, reset):
    v = v.clone()
    return if_step_(v, x, thresh, reset), v


def _layout(t):
    return to_conv_layout(t)


@needs_kernel
@pytest.mark.parametrize("reset", [SUB, ZERO], ids=["subtract", "zero"])
@pytest.mark.parametrize("shape,thresh", [
    ((5, 3, 4, 6), torch.tensor(0.7)),                                   # one threshold
    ((5, 3, 4, 6), torch.tensor([0.3, 0.9, 1.7]).view(3, 1, 1)),        # per channel
    ((5, 3, 4, 6), torch.rand(3, 4, 6, generator=torch.Generator().manual_seed(1)) + 0.2),
    ((5, 1, 4, 4), torch.tensor(0.5)),                                   # one channel
    ((7, 33), torch.rand(33, generator=torch.Generator().manual_seed(2)) + 0.1),
], ids=["scalar", "per-channel", "per-neuron", "one-channel", "linear"])
def test_identical_to_the_eager_step(reset, shape, thresh):
    g = torch.Generator().manual_seed(3)
    v = _layout(torch.randn(shape, generator=g))
    for step in range(6):  # several steps: residues, ties at theta and negative potentials
        x = _layout(torch.randn(shape, generator=g))
        if step == 2:  # exact ties: u == theta must fire in both
            v.zero_()
            x.copy_(thresh.broadcast_to(shape))
        s_ref, v_ref = _eager(v, x, thresh, reset)
        s = if_step_fused(v, x, thresh, reset)
        assert s is not None and s.dtype == torch.bool and s.stride() == v.stride()
        assert torch.equal(s, s_ref), step
        assert torch.equal(v, v_ref), step  # bit for bit, incl. the sign of zeros
        assert torch.equal(torch.signbit(v), torch.signbit(v_ref)), step


@needs_kernel
def test_a_layer_split_over_threads_is_identical(monkeypatch):
    monkeypatch.setattr(fused_if, "_MIN_SPLIT", 64)  # split this small layer
    torch.set_num_threads(2)  # restored by the single_thread fixture
    g = torch.Generator().manual_seed(4)
    shape = (9, 4, 5, 5)
    thresh = torch.rand(4, 1, 1, generator=g) + 0.3
    v = _layout(torch.randn(shape, generator=g))
    x = _layout(torch.randn(shape, generator=g))
    s_ref, v_ref = _eager(v, x, thresh, SUB)
    calls = []
    real = fused_if._call
    monkeypatch.setattr(fused_if, "_call", lambda *a: (calls.append(a[2:4]), real(*a)))
    s = if_step_fused(v, x, thresh, SUB)
    assert torch.equal(s, s_ref) and torch.equal(v, v_ref)
    per = 4 * 5 * 5
    assert sorted(calls) == [(0, 4 * per), (4 * per, 9 * per)]  # two threads, whole samples


def test_it_declines_what_it_does_not_implement():
    v, x = torch.zeros(2, 3), torch.ones(2, 3)
    theta = torch.tensor(0.5)
    assert if_step_fused(v.double(), x.double(), theta.double(), SUB) is None  # float64

    class Variant(MembraneSubtract):  # a subclass may change the rule: never the parent's kernel
        def reset_(self, v, s, thresh):
            v.addcmul_(s, thresh, value=-0.5)

    assert fused_reset(Variant()) is None and fused_reset(MembraneReset()) == "zero"
    assert if_step_fused(v, x, theta, Variant()) is None
    assert if_step_fused(v, x.t().contiguous().t(), theta, SUB) is None  # other strides
    assert if_step_fused(v.requires_grad_(), x, theta, SUB) is None
    assert if_step_fused(torch.zeros(2, 3), x, 0.5, SUB) is None  # a float, not a tensor
    assert torch.equal(v, torch.zeros(2, 3))  # declined: nothing changed
    assert if_step_fused(torch.zeros(3), torch.ones(3), theta, SUB) is None  # no batch dim
    per_batch = torch.full((2, 3), 0.5)  # thresholds over the batch too: not a layer's
    assert if_step_fused(torch.zeros(2, 3), x, per_batch.unsqueeze(0), SUB) is None
    w = torch.zeros(2, 3)
    assert if_step_fused(w, w, theta, SUB) is None  # x aliases v


def test_a_layer_records_mixed_when_some_steps_cannot_take_the_kernel():
    from bsnn_bindsnet.snn.nodes import BinaryIFNodes

    layer = BinaryIFNodes(shape=(2, 3, 3), thresh=0.5)
    layer.set_batch_size(2)
    layer.forward(to_conv_layout(torch.ones(2, 2, 3, 3)))
    expected = "fused" if fused_if.status() == "fused" else "eager"
    assert layer.last_kernel == expected
    layer.forward(torch.ones(2, 2, 3, 3).double())  # float64: the eager step
    assert layer.last_kernel == ("mixed" if expected == "fused" else "eager")


def test_without_a_compiler_the_eager_step_runs_and_says_why(monkeypatch, tmp_path):
    monkeypatch.setattr(fused_if, "_state", {"lib": None, "why": None})
    monkeypatch.setenv("BSNN_KERNEL_DIR", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    assert fused_if.status().startswith("kernel unavailable")
    assert if_step_fused(torch.zeros(1, 2), torch.ones(1, 2), torch.tensor(0.5), SUB) is None
    monkeypatch.setattr(fused_if, "_state", {"lib": None, "why": None})
    monkeypatch.setenv("BSNN_FUSED_IF", "0")
    assert fused_if.status() == "disabled by BSNN_FUSED_IF=0"
    assert list(tmp_path.iterdir()) == []  # nothing half-written


@needs_kernel
def test_the_library_is_built_once_and_atomically(monkeypatch, tmp_path):
    monkeypatch.setattr(fused_if, "_state", {"lib": None, "why": None})
    monkeypatch.setenv("BSNN_KERNEL_DIR", str(tmp_path))
    assert fused_if.status() == "fused"
    built = list(tmp_path.iterdir())
    assert len(built) == 1 and built[0].suffix == ".so"  # no temporary left behind


def test_one_channel_tensors_get_unambiguous_nhwc_strides():
    x = torch.arange(2 * 1 * 3 * 4, dtype=torch.float32).view(2, 1, 3, 4)
    y = to_conv_layout(x)
    assert y.stride() == (12, 1, 4, 1) and torch.equal(y, x)
    w = torch.randn(5, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    out = F.conv2d(y, w, padding=1)
    assert out.is_contiguous(memory_format=torch.channels_last)  # NHWC, as the layer's v
    assert torch.equal(out, F.conv2d(x, w, padding=1))


def _plan(reset, v_init):
    torch.manual_seed(0)
    model = get_model("vgg_tiny", quant="bwn", pool_position="before").eval()
    calib = torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    return ann_to_bsnn(model, calib, reset=reset, v_init=v_init, percentile=99.0, build=False)


@needs_kernel
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("v_init", ["zero", "half"])
def test_networks_agree_spike_for_spike(reset, v_init):
    plan = _plan(reset, v_init)
    x = torch.randn(12, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    y = torch.arange(12) % 10
    runs = {k: simulate(build_network(plan), (x, y), 10, per_sample=True, per_neuron=True,
                        neuron_kernel=k) for k in ("eager", "auto")}
    eager, fused = runs["eager"], runs["auto"]
    assert set(eager.neuron_kernel.values()) == {"eager"}
    assert set(fused.neuron_kernel.values()) == {"fused"}
    assert all(s.sum() > 0 for s in eager.layer_spikes.values())  # not vacuous
    assert torch.equal(eager.step_confidence, fused.step_confidence)  # readout potentials
    for name in eager.sample_spikes:
        assert torch.equal(eager.sample_spikes[name], fused.sample_spikes[name]), name
        assert torch.equal(eager.neuron_spikes[name], fused.neuron_spikes[name]), name


def test_simulate_refuses_an_unknown_kernel_and_restores_the_layers():
    net = build_network(_plan("subtract", "half"))
    x, y = torch.randn(3, 1, 8, 8), torch.arange(3)
    with pytest.raises(ValueError, match="unknown neuron kernel 'fast'.*auto.*eager"):
        simulate(net, (x, y), 2, neuron_kernel="fast")
    assert not any(name.startswith("_bsnn") for name in net.monitors)
    simulate(net, (x, y), 2, neuron_kernel="eager")
    assert {getattr(layer, "kernel", "auto") for layer in net.layers.values()} == {"auto"}
    assert set(kernels_used(net).values()) == {"eager"}


def test_bsnn_simulate_says_which_kernel_ran(tmp_path, capsys):
    from bsnn_bindsnet.cli.main import main
    from bsnn_bindsnet.snn.network import save_plan

    net = save_plan(_plan("subtract", "half"), tmp_path / "snn.pt")
    expected = "fused" if fused_if.status() == "fused" else "eager"
    for flag, want in ((None, expected), ("eager", "eager")):
        out = tmp_path / str(flag)
        argv = ["simulate", str(net), "--dataset", "digits", "--timesteps", "3", "--limit",
                "10", "--out", str(out), "--no-progress"]
        assert main(argv + ([] if flag is None else ["--neuron-kernel", flag])) == 0
        summary = json.loads((out / "simulation.json").read_text())
        assert set(summary["neuron_kernel"].values()) == {want}
        assert f"IF kernel: {want}" in capsys.readouterr().out


@pytest.mark.parametrize("shape", [(6, 1, 8, 8), (64, 1, 28, 28)])
def test_the_first_layer_current_still_equals_the_anns_pre_activation(shape):
    # the constrained models have no bias: their one-channel input now runs in NHWC, and the
    # current must stay bit for bit the ANN's (NCHW) pre-activation
    from bsnn_bindsnet.snn.connections import FullPrecisionConv2dConnection
    from bindsnet.network.nodes import Input

    w = torch.randn(8, 1, 3, 3, generator=torch.Generator().manual_seed(1))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    conn = FullPrecisionConv2dConnection(Input(shape=shape[1:]), Input(shape=(8, *shape[2:])),
                                         weight=w, padding=1)
    current = conn.compute(x)
    assert current.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(current, F.conv2d(x, w, padding=1))
