"""Integer arithmetic of the binary connections: hand-computed kernels, and spike-for-spike,
bit-for-bit identity with the float path on conv, linear, pooled and residual networks."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bsnn_bindsnet.training.models import get_model
from bsnn_bindsnet.conversion.convert import ann_to_bsnn
from bsnn_bindsnet.direct.export import direct_to_plan
from bsnn_bindsnet.direct.model import DirectBSNN
from bsnn_bindsnet.simulation.simulate import simulate, spike_counts
from bsnn_bindsnet.snn.connections import (BinaryConnection, BinaryConv2dConnection,
                                           FullPrecisionConv2dConnection)
from bsnn_bindsnet.snn.connections.base import ConstantInputCache
from bsnn_bindsnet.snn.connections.integer import (ARITHMETICS, arithmetic_used, im2col_nhwc,
                                                   onednn_int8_available, pool_fold,
                                                   pooled_kernel, resolve_arithmetic,
                                                   set_arithmetic)
from bsnn_bindsnet.snn.network import build_network

with warnings.catch_warnings():
    from bindsnet.network import Network
    from bindsnet.network.nodes import Input

pytestmark = pytest.mark.usefixtures("single_thread")
CPU = torch.device("cpu")
INTEGER = ["int_mm"] + (["onednn"] if onednn_int8_available() else [])


# --------------------------------------------------------------------------- hand-computed

@pytest.mark.parametrize("arithmetic", ["float", *INTEGER])
def test_binary_conv_by_hand(arithmetic):
    # one 2x2 sign kernel [[+1, -1], [-1, +1]] (weights [[.5, -.5], [-1, 1]]: alpha = 0.75)
    # on spikes [[1, 1, 0], [0, 1, 1], [1, 0, 1]], no padding:
    # top-left 1 - 1 - 0 + 1 = 1, top-right 1 - 0 - 1 + 1 = 1,
    # bottom-left 0 - 1 - 1 + 0 = -2, bottom-right 1 - 1 - 0 + 1 = 1; times 0.75
    w = torch.tensor([[[[0.5, -0.5], [-1.0, 1.0]]]])
    conn = BinaryConv2dConnection(Input(shape=(1, 3, 3)), Input(shape=(1, 2, 2)), weight=w,
                                  arithmetic=arithmetic)
    s = torch.tensor([[[[1, 1, 0], [0, 1, 1], [1, 0, 1]]]], dtype=torch.bool)
    assert conn.compute(s).flatten().tolist() == [0.75, 0.75, -1.5, 0.75]
    assert conn.last_arithmetic == arithmetic


@pytest.mark.parametrize("arithmetic", ["float", *INTEGER])
def test_binary_linear_by_hand(arithmetic):
    # signs [[+, +, -], [-, +, +]], alpha = [1, 0.5] (mean |w| of each row), bias [0, 1]:
    # s = [1, 0, 1] -> [1 - 1, -1 + 1] = [0, 0] -> [0, 0] + bias = [0, 1]
    # s = [1, 1, 0] -> [2, 0] -> [2, 0] + bias = [2, 1]
    w = torch.tensor([[1.0, 1.0, -1.0], [-0.5, 0.5, 0.5]])
    conn = BinaryConnection(Input(n=3), Input(n=2), weight=w, bias=torch.tensor([0.0, 1.0]),
                            arithmetic=arithmetic)
    s = torch.tensor([[1, 0, 1], [1, 1, 0]], dtype=torch.bool)
    assert conn.compute(s).tolist() == [[0.0, 1.0], [2.0, 1.0]]


def test_pooled_kernel_sums_the_shifted_signs():
    # a 2x2 kernel [[a, b], [c, d]] under a 2x2 pool (conv stride 1) reads a 3x3 patch:
    # [[a, a+b, b], [a+c, a+b+c+d, b+d], [c, c+d, d]]
    sign = torch.tensor([[[[1, -1], [1, 1]]]], dtype=torch.int8)  # a=1, b=-1, c=1, d=1
    expected = [[1, 0, -1], [2, 2, 0], [1, 2, 1]]
    assert pooled_kernel(sign, (1, 1), (2, 2))[0, 0].tolist() == expected
    # conv stride 2: the copies shift by 2, so a 1x1 kernel [[1]] becomes [[1, 0, 1]] x 2 rows
    one = torch.ones(1, 1, 1, 1, dtype=torch.int8)
    assert pooled_kernel(one, (2, 2), (2, 2))[0, 0].tolist() == [[1, 0, 1], [0, 0, 0],
                                                                 [1, 0, 1]]


def test_pool_fold_only_where_the_average_is_exact():
    assert pool_fold(nn.AvgPool2d(2), (1, 1)) == ((2, 2), (2, 2), 4)
    assert pool_fold(nn.AvgPool2d(2, stride=1), (2, 2)) == ((2, 2), (2, 2), 4)
    assert pool_fold(nn.AvgPool2d(3), (1, 1)) is None  # /9 rounds
    assert pool_fold(nn.AvgPool2d(2, padding=1), (1, 1)) is None  # partial windows
    assert pool_fold(nn.AvgPool2d(2, ceil_mode=True), (1, 1)) is None
    assert pool_fold(nn.AvgPool2d(2, divisor_override=3), (1, 1)) is None


def test_im2col_rows_are_kh_kw_c_patches():
    x = torch.arange(2 * 3 * 3).view(1, 2, 3, 3)  # channel 0: 0..8, channel 1: 9..17
    rows = im2col_nhwc(x, (2, 2), (1, 1), (0, 0))
    assert rows.shape == (4, 8)
    # the first patch: (0,0): [0, 9], (0,1): [1, 10], (1,0): [3, 12], (1,1): [4, 13]
    assert rows[0].tolist() == [0, 9, 1, 10, 3, 12, 4, 13]
    padded = im2col_nhwc(x, (3, 3), (2, 2), (1, 1))
    assert padded.shape == (4, 18) and padded[0, :2].tolist() == [0, 0]  # a padded corner


@pytest.mark.parametrize("shape", [(3, 5, 7, 9), (4, 256), (2, 8, 2, 2), (1, 255 * 8 + 16)])
def test_spike_counts_are_exact(shape):
    gen = torch.Generator().manual_seed(0)
    s = torch.rand(*shape, generator=gen) < 0.9
    assert torch.equal(spike_counts(s).long(), s.flatten(1).long().sum(1))
    full = torch.ones(*shape, dtype=torch.bool)  # every byte lane at its largest
    assert spike_counts(full).tolist() == [full[0].numel()] * shape[0]
    if len(shape) == 4:
        cl = s.contiguous(memory_format=torch.channels_last)
        assert torch.equal(spike_counts(cl), spike_counts(s))


# --------------------------------------------------------------------------- choosing a path

def test_auto_picks_onednn_on_this_cpu_where_it_runs_else_float():
    expected = "onednn" if onednn_int8_available() else "float"
    assert resolve_arithmetic("auto", CPU, 288, 32) == expected
    assert resolve_arithmetic("float", CPU, 288, 32) == "float"
    assert resolve_arithmetic("auto", torch.device("cuda"), 288, 32) == "int_mm"
    assert resolve_arithmetic("auto", torch.device("cuda"), 9, 32) == "float"  # 9 % 8 != 0


def test_unknown_or_impossible_arithmetic_is_refused():
    with pytest.raises(ValueError, match="unknown arithmetic 'int4'; expected one of"):
        BinaryConnection(Input(n=3), Input(n=2), weight=torch.ones(2, 3), arithmetic="int4")
    with pytest.raises(ValueError, match="arithmetic='onednn' needs a CPU tensor"):
        resolve_arithmetic("onednn", torch.device("cuda"), 8, 8)


def test_analog_input_takes_the_float_path():
    conn = BinaryConnection(Input(n=3), Input(n=2), weight=torch.ones(2, 3))
    assert conn.compute(torch.tensor([[0.5, 1.0, 0.0]])).tolist() == [[1.5, 1.5]]
    assert conn.last_arithmetic == "float"


# --------------------------------------------------------------------------- identity

CONNECTIONS = [  # (source shape, target shape, kwargs)
    ((4, 6, 6), (8, 6, 6), dict(padding=1)),
    ((4, 7, 7), (8, 4, 4), dict(padding=1, stride=2)),
    ((4, 6, 6), (8, 3, 3), dict(padding=1, pool=nn.AvgPool2d(2))),  # folded
    ((4, 6, 6), (8, 4, 4), dict(padding=1, pool=nn.AvgPool2d(3, stride=1))),  # not folded
    ((4, 6, 6), (8, 4, 4), dict(padding=1, pool=nn.AvgPool2d(2, padding=1))),  # padded pool
]


@pytest.mark.parametrize("src, tgt, kw", CONNECTIONS)
@pytest.mark.parametrize("bias", [False, True])
def test_conv_connection_currents_are_bitwise_identical(src, tgt, kw, bias):
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(8, 4, 3, 3, generator=gen)
    b = torch.randn(8, generator=gen) if bias else None
    conn = BinaryConv2dConnection(Input(shape=src), Input(shape=tgt), weight=w, bias=b, **kw)
    s = torch.rand(5, *src, generator=gen) < 0.4
    currents = {}
    for arithmetic in ["float", *INTEGER]:
        conn.arithmetic = arithmetic
        currents[arithmetic] = conn.compute(s)
    for arithmetic in INTEGER:
        assert torch.equal(currents[arithmetic], currents["float"]), arithmetic
    # and the current is alpha * pool(sign * s) + pool(b): the float path is the reference
    alpha = w.abs().mean(dim=(1, 2, 3)).view(-1, 1, 1)
    z = F.conv2d(s.float(), torch.where(w >= 0, 1.0, -1.0), stride=kw.get("stride", 1),
                 padding=1)
    pool = kw.get("pool")
    expected = alpha * (z if pool is None else pool(z))
    if bias:
        expected = expected + (b.view(-1, 1, 1) if pool is None
                               else pool(b.view(1, -1, 1, 1).expand_as(z[:1]).contiguous()))
    torch.testing.assert_close(currents["float"], expected, rtol=0, atol=1e-6)


def _step_all(network, x, timesteps):
    """Every layer's spikes and potential after every step, constant-current input."""
    network.reset_state_variables()
    trace = []
    with torch.no_grad():
        for _ in range(timesteps):
            network.run(inputs={"input": x.unsqueeze(0)}, time=1, one_step=True)
            trace.append({name: (layer.s.clone(), getattr(layer, "v", layer.s).clone())
                          for name, layer in network.layers.items() if name != "input"})
    return trace


def _tiny_vgg(pool_position):
    torch.manual_seed(0)
    return get_model("vgg_tiny", quant="bwn", pool_position=pool_position).eval()


def _tiny_mlp():
    torch.manual_seed(0)
    return get_model("mlp", quant="bwn", input_shape=(1, 8, 8), hidden=(48, 40)).eval()


def _residual_plan(reset, v_init):
    torch.manual_seed(0)
    model = DirectBSNN(("c8p", "c8", "c8r", "f16r"), input_shape=(1, 8, 8), num_classes=5,
                       timesteps=6, residual_factor=0.5, coding="current", v_init=v_init)
    for bn in model.norms:  # statistics that make every layer fire
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(0.0, 0.6)
    plan = direct_to_plan(model.eval())
    plan.reset = reset
    return plan


NETWORKS = ["conv, pool before the IF (folded)", "conv, pool of spikes", "linear", "residual"]


def _plan(kind, reset, v_init):
    if kind == "residual":
        return _residual_plan(reset, v_init)
    calib = torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    model = {"conv, pool before the IF (folded)": lambda: _tiny_vgg("before"),
             "conv, pool of spikes": lambda: _tiny_vgg("after"), "linear": _tiny_mlp}[kind]()
    return ann_to_bsnn(model, calib, reset=reset, v_init=v_init, percentile=99.0, build=False)


@pytest.mark.parametrize("kind", NETWORKS)
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("v_init", ["zero", "half"])
def test_integer_and_float_networks_agree_spike_for_spike(kind, reset, v_init):
    plan = _plan(kind, reset, v_init)
    x = torch.randn(6, *plan.input_shape, generator=torch.Generator().manual_seed(7))
    traces = {}
    for arithmetic in ["float", *INTEGER]:
        net = build_network(plan)
        set_arithmetic(net, arithmetic)
        traces[arithmetic] = _step_all(net, x.clone(), 12)
        used = set(arithmetic_used(net).values())
        assert used == {arithmetic}, used  # every binary connection ran it
    ref = traces["float"]
    fired = {name for step in ref for name, (s, _) in step.items() if s.any()}
    hidden = set(ref[0]) - {"readout"}
    assert fired == hidden, f"silent layers {hidden - fired}: the comparison would be vacuous"
    for arithmetic in INTEGER:
        for t, (a, b) in enumerate(zip(traces[arithmetic], ref)):
            for name in ref[0]:
                assert torch.equal(a[name][0], b[name][0]), (arithmetic, t, name, "spikes")
                assert torch.equal(a[name][1], b[name][1]), (arithmetic, t, name, "v")


def test_simulate_records_and_restores_the_arithmetic():
    plan = _plan("conv, pool before the IF (folded)", "subtract", "half")
    net = build_network(plan)
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.arange(5)
    forced = simulate(net, (x, y), 4, arithmetic="float", per_sample=True)
    assert set(forced.arithmetic.values()) == {"float"}
    assert forced.summary()["arithmetic"] == forced.arithmetic
    assert {c.arithmetic for c in net.connections.values() if hasattr(c, "arithmetic")} == {"auto"}
    default = simulate(net, (x, y), 4, per_sample=True)
    expected = "onednn" if onednn_int8_available() else "float"
    assert set(default.arithmetic.values()) == {expected}
    assert torch.equal(default.step_confidence, forced.step_confidence)
    with pytest.raises(ValueError, match="unknown arithmetic"):
        simulate(net, (x, y), 4, arithmetic="fast")


# --------------------------------------------------------------------------- constant input

def test_constant_input_current_is_computed_once_and_refreshed_on_change():
    w = torch.ones(2, 1, 1, 1)
    conn = FullPrecisionConv2dConnection(Input(shape=(1, 2, 2)), Input(shape=(2, 2, 2)),
                                         weight=w)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]).expand(3, 1, 1, 2, 2)  # [T, B, C, H, W]
    first = conn.compute(x[0])
    assert conn.compute(x[1]) is first  # the same memory, unchanged: not recomputed
    base = x._base if x._base is not None else x
    base.mul_(2.0)  # an in-place edit (BindsNET zeroing its input, early exit refilling)
    again = conn.compute(x[2])
    assert again is not first and again[0, 0].tolist() == [[2.0, 4.0], [6.0, 8.0]]
    conn.reset_state_variables()
    assert conn._constant.get(x[2]) is None


def test_constant_input_cache_skips_tensors_that_track_gradients():
    cache = ConstantInputCache()
    s = torch.ones(2, requires_grad=True)
    cache.put(s, s * 2)
    assert cache.get(s) is None


def test_lean_get_inputs_equals_bindsnets():
    plan = _residual_plan("subtract", "zero")
    net = build_network(plan)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        net.run(inputs={"input": x.unsqueeze(0).expand(2, *x.shape)}, time=2, one_step=True)
        ours, stock = net._get_inputs(), Network._get_inputs(net)
    assert set(ours) == set(stock) and len(ours) == len(net.layers) - 1
    for name in ours:
        assert torch.equal(ours[name], stock[name]), name


# --------------------------------------------------------------------------- GPU

@pytest.mark.gpu
@pytest.mark.parametrize("kind", NETWORKS)
def test_cuda_int_mm_agrees_with_the_cuda_float_path(kind):
    # both on CUDA, so that the full-precision layers run the same float kernels
    plan = _plan(kind, "subtract", "half")
    x = torch.randn(20, *plan.input_shape, generator=torch.Generator().manual_seed(7))
    y = torch.zeros(20, dtype=torch.long)
    deterministic = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = True
    try:
        runs = {a: simulate(build_network(plan), (x, y), 6, arithmetic=a, device="cuda",
                            per_sample=True, per_neuron=True) for a in ("float", "int_mm")}
    finally:
        torch.backends.cudnn.deterministic = deterministic
    ref, gpu = runs["float"], runs["int_mm"]
    assert set(gpu.arithmetic.values()) == {"int_mm"}
    for name in ref.sample_spikes:
        assert torch.equal(gpu.sample_spikes[name], ref.sample_spikes[name]), name
    assert torch.equal(gpu.step_confidence, ref.step_confidence)


def test_a_network_that_ran_copies_without_its_packed_weights():
    import copy

    plan = _plan("conv, pool before the IF (folded)", "subtract", "zero")
    net = build_network(plan)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    y = torch.arange(4)
    first = simulate(net, (x, y), 3, per_sample=True)
    twin = copy.deepcopy(net)
    assert all(not c._kernel._packed for c in twin.connections.values() if hasattr(c, "_kernel"))
    again = simulate(twin, (x, y), 3, per_sample=True)
    assert torch.equal(first.step_confidence, again.step_confidence)


def test_arithmetic_names():
    assert ARITHMETICS == ("auto", "float", "onednn", "int_mm")


def test_bsnn_simulate_uses_the_integer_path_by_default_and_says_so(tmp_path, capsys):
    import json

    from bsnn_bindsnet.cli.main import main
    from bsnn_bindsnet.snn.network import save_plan

    net = save_plan(_plan("conv, pool before the IF (folded)", "subtract", "half"),
                    tmp_path / "snn.pt")
    default = "onednn" if onednn_int8_available() else "float"
    for flag, expected in ((None, default), ("float", "float")):
        out = tmp_path / str(flag)
        argv = ["simulate", str(net), "--dataset", "digits", "--timesteps", "3", "--limit",
                "10", "--out", str(out), "--no-progress"]
        assert main(argv + ([] if flag is None else ["--arithmetic", flag])) == 0
        summary = json.loads((out / "simulation.json").read_text())
        assert set(summary["arithmetic"].values()) == {expected}
        assert f"arithmetic: {expected};" in capsys.readouterr().out
