"""Hand-computed checks of simulate(), its monitors and SimResult on a hand-built tiny plan."""

import json
import warnings
from collections import OrderedDict
from dataclasses import fields

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from bsnn_bindsnet.conversion.convert import BSNNPlan, LayerSpec, ann_to_bsnn
from bsnn_bindsnet.snn.encoding import constant_current
from bsnn_bindsnet.snn.network import build_network
from bsnn_bindsnet.simulation.simulate import (ReadoutTracker, SimResult, SpikeCounter, reset_rows,
                                    select_rows, simulate)

with warnings.catch_warnings():
    from bindsnet.network.monitors import Monitor

# The hand-built network: input (2,) -> "hidden" (2 SIF neurons, W = I, theta = 1) ->
# "readout" (W = [[1, 0], [0, 5]], bias [0.25, 0]). All values are binary fractions: exact.
#
# Sample A, x = [0.5, 0.25], label 1. One-step mode, steps t = 0..5:
#   n0: v = 0.5, 1.0 -> fires at t = 1, 3, 5;  n1: v = .25, .5, .75, 1.0 -> fires at t = 3.
#   spikes per step [0, 1, 0, 2, 0, 1]
#   readout v0 = 0.25 (t+1) + #n0 spikes so far, v1 = 5 #n1 spikes so far:
#   t0 .25|0  t1 1.5|0  t2 1.75|0  t3 3|5  t4 3.25|5  t5 4.5|5 -> pred [0, 0, 0, 1, 1, 1]
# Sample B, x = [0, 1], label 1: n1 fires every step, n0 never: spikes [1] * 6;
#   v1 = 5 (t+1) > v0 = .25 (t+1) -> pred [1] * 6.
#
# Delayed mode (BindsNET's default): every connection reads its source's spikes of the
# previous step (the input layer holds 0 before step 0), so the hidden layer lags 1 step and
# the readout 2 steps behind the input. Bias reaches the readout from step 0.
#   A: n0 v = 0 (t0), .5, 1.0 -> fires at t = 2, 4; n1 v = 0, .25, .5, .75, 1.0 -> t = 4.
#      spikes [0, 0, 1, 0, 2, 0] (one-step spikes shifted by one step)
#      readout at t uses hidden spikes up to t - 1:
#      t0 .25|0  t1 .5|0  t2 .75|0  t3 2|0  t4 2.25|0  t5 3.5|5 -> pred [0, 0, 0, 0, 0, 1]
#   B: n1 fires at t = 1..5: spikes [0, 1, 1, 1, 1, 1]; v1 = 5 (t - 1) for t >= 2:
#      t0 .25|0  t1 .5|0  t2 .75|5 ... -> pred [0, 0, 1, 1, 1, 1]
T = 6
X = torch.tensor([[0.5, 0.25], [0.0, 1.0]])
Y = torch.tensor([1, 1])
ONE_STEP = {"spikes": [[0, 1], [1, 1], [0, 1], [2, 1], [0, 1], [1, 1]],  # [T, N]
            "preds": [[0, 1], [0, 1], [0, 1], [1, 1], [1, 1], [1, 1]],
            "conf": [[0.25, 5.0], [1.5, 10.0], [1.75, 15.0], [5.0, 20.0], [5.0, 25.0],
                     [5.0, 30.0]],
            "accuracy": [0.5, 0.5, 0.5, 1.0, 1.0, 1.0]}
DELAYED = {"spikes": [[0, 0], [0, 1], [1, 1], [0, 1], [2, 1], [0, 1]],
           "preds": [[0, 0], [0, 0], [0, 1], [0, 1], [0, 1], [1, 1]],
           "accuracy": [0.0, 0.0, 0.5, 0.5, 0.5, 1.0]}


pytestmark = pytest.mark.usefixtures("single_thread")


def hand_plan(n_hidden: int = 2) -> BSNNPlan:
    """The plan above; with ``n_hidden > 2`` the extra neurons get no input (memory tests)."""
    w_in = torch.zeros(n_hidden, 2)
    w_in[0, 0] = w_in[1, 1] = 1.0
    w_out = torch.zeros(2, n_hidden)
    w_out[0, 0], w_out[1, 1] = 1.0, 5.0
    hidden = LayerSpec("hidden", "if", (n_hidden,), "input",
                       {"type": "linear", "binary": False, "pool": None, "weight": w_in,
                        "bias": None}, point=None, thresh=1.0)
    readout = LayerSpec("readout", "readout", (2,), "hidden",
                        {"type": "linear", "binary": False, "pool": None, "weight": w_out,
                         "bias": torch.tensor([0.25, 0.0])})
    return BSNNPlan((2,), [hidden, readout], v_init="zero")


@pytest.fixture
def net():
    return build_network(hand_plan())


def held_bytes(obj) -> int:
    """Bytes of every tensor held by ``obj`` (dataclass, dict, list, tuple or tensor)."""
    if isinstance(obj, Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(held_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(held_bytes(v) for v in obj)
    if hasattr(obj, "__dataclass_fields__"):
        return sum(held_bytes(getattr(obj, f.name)) for f in fields(obj))
    return 0


# --------------------------------------------------------------------------- hand-computed runs

def test_one_step_hand_computed_spikes_predictions_and_accuracy(net):
    r = simulate(net, (X, Y), T, per_sample=True)
    assert isinstance(r, SimResult)
    assert r.one_step and r.encoding == "current" and r.timesteps == T and r.n == 2
    assert r.sample_spikes["hidden"].tolist() == ONE_STEP["spikes"]
    assert r.step_predictions.tolist() == ONE_STEP["preds"]
    assert r.step_confidence.tolist() == ONE_STEP["conf"]
    assert r.predictions.tolist() == ONE_STEP["preds"][-1]  # after the last step
    assert r.confidence.tolist() == ONE_STEP["conf"][-1]
    assert r.labels.tolist() == [1, 1]
    assert r.correct.tolist() == [1, 1, 1, 2, 2, 2]
    assert r.accuracy == ONE_STEP["accuracy"]
    assert r.layer_spikes["hidden"].tolist() == [1, 2, 1, 3, 1, 2]  # summed over samples
    assert r.layer_neurons == {"hidden": 2}  # the readout is not counted
    # IFR: 10 spikes / (2 samples * 2 neurons) = 2.5 spikes per neuron over the window.
    assert r.firing_rates() == {"hidden": 2.5}


def test_per_sample_traces_are_kept_only_when_asked(net):
    r = simulate(net, (X, Y), T)
    assert r.step_predictions is None and r.step_confidence is None and r.sample_spikes == {}
    assert r.predictions.tolist() == ONE_STEP["preds"][-1]
    assert r.confidence.tolist() == ONE_STEP["conf"][-1]
    # The aggregate curves need no per-sample traces.
    assert r.accuracy == ONE_STEP["accuracy"]
    assert r.layer_spikes["hidden"].tolist() == [1, 2, 1, 3, 1, 2]


def test_delayed_mode_lags_one_step_per_connection(net):
    r = simulate(net, (X, Y), T, one_step=False, per_sample=True)
    assert not r.one_step
    assert r.sample_spikes["hidden"].tolist() == DELAYED["spikes"]
    assert r.step_predictions.tolist() == DELAYED["preds"]
    assert r.accuracy == DELAYED["accuracy"]
    # The hidden layer's spikes are the one-step spikes shifted by exactly one step.
    one = simulate(net, (X, Y), T, per_sample=True)
    assert torch.equal(r.sample_spikes["hidden"][1:], one.sample_spikes["hidden"][:-1])
    assert r.sample_spikes["hidden"][0].tolist() == [0, 0]


def test_summary_is_json_and_states_the_mode(net):
    for one_step, mode in [(True, "one-step"), (False, "delayed")]:
        r = simulate(net, (X, Y), T, one_step=one_step)
        s = json.loads(json.dumps(r.summary()))
        assert s["mode"] == mode and s["one_step"] is one_step
        assert s["timesteps"] == T and s["n"] == 2 and s["encoding"] == "current"
        acc = ONE_STEP["accuracy"] if one_step else DELAYED["accuracy"]
        assert s["accuracy"] == acc and s["final_accuracy"] == acc[-1]
        # one-step: (4 + 6) spikes / 4 neuron-samples; delayed: (3 + 5) / 4.
        assert s["ifr"] == {"hidden": 2.5 if one_step else 2.0}


def test_per_neuron_totals_match_per_step_totals(net):
    r = simulate(net, (X, Y), T, per_neuron=True)
    # n0: A fires at t = 1, 3, 5 (3), B never; n1: A once, B six times (7).
    assert r.neuron_spikes["hidden"].tolist() == [3.0, 7.0]
    assert r.neuron_spikes["hidden"].dtype == torch.float64
    assert r.neuron_spikes["hidden"].sum() == r.layer_spikes["hidden"].sum() == 10
    assert simulate(net, (X, Y), T).neuron_spikes == {}  # not kept unless asked


def test_batch_size_changes_across_batches(net):
    # 10 samples alternating A, B; batch_size=4 -> batches of 4, 4, 2.
    x10, y10 = X.repeat(5, 1), Y.repeat(5)
    r = simulate(net, (x10, y10), T, batch_size=4, per_sample=True)
    assert r.n == 10 and r.step_predictions.shape == (T, 10) and r.predictions.shape == (10,)
    assert r.step_predictions.tolist() == [row * 5 for row in ONE_STEP["preds"]]
    assert r.sample_spikes["hidden"].tolist() == [row * 5 for row in ONE_STEP["spikes"]]
    assert r.accuracy == ONE_STEP["accuracy"]
    assert r.labels.tolist() == y10.tolist()
    # A second call starting at a different batch size gives the same answer.
    again = simulate(net, (x10, y10), T, batch_size=3, per_sample=True)
    assert torch.equal(again.step_predictions, r.step_predictions)
    assert torch.equal(again.sample_spikes["hidden"], r.sample_spikes["hidden"])


def test_dataset_input_matches_tensor_pair(net):
    a = simulate(net, (X, Y), T, per_sample=True)
    b = simulate(net, TensorDataset(X, Y), T, batch_size=1, per_sample=True)
    assert torch.equal(a.step_predictions, b.step_predictions)
    assert torch.equal(a.sample_spikes["hidden"], b.sample_spikes["hidden"])


def test_dataloader_is_used_batch_by_batch_as_it_comes(net):
    a = simulate(net, (X, Y), T, per_sample=True)
    loader = DataLoader(TensorDataset(X, Y), batch_size=1)
    b = simulate(net, loader, T, batch_size=64, per_sample=True)  # the loader's size wins
    assert torch.equal(a.step_predictions, b.step_predictions)
    assert torch.equal(a.sample_spikes["hidden"], b.sample_spikes["hidden"])


@pytest.mark.parametrize("data", [X, TensorDataset(X)], ids=["tensor", "dataset"])
def test_data_without_labels_is_refused_clearly(net, data):
    with pytest.raises(ValueError, match=r"^data holds inputs without labels; expected \(x, y\)"):
        simulate(net, data, T)
    assert list(net.monitors) == []


def test_anything_else_is_a_type_error(net):
    with pytest.raises(TypeError, match=r"^data is a int; expected a Dataset"):
        simulate(net, 3, T)


def _run(net, x, steps):
    net.run(inputs={"input": x.unsqueeze(0).repeat(steps, 1, 1)}, time=steps, one_step=True)


def test_select_rows_keeps_a_sample_running_as_if_alone(net):
    # after t0..t2, sample A: hidden v = [.5, .75] (n0 fired at t1), readout v = [1.75, 0];
    # sliced to A alone, three more steps end where the 6-step run ends: readout [4.5, 5]
    _run(net, X, 3)
    select_rows(net, torch.tensor([True, False]))
    assert net.batch_size == 1 and net.layers["hidden"].batch_size == 1
    assert net.layers["hidden"].v.tolist() == [[0.5, 0.75]]
    assert net.layers["readout"].v.tolist() == [[1.75, 0.0]]
    _run(net, X[:1], 3)  # same batch size: BindsNET does not reallocate (reset) the state
    assert net.layers["readout"].v.tolist() == [[4.5, 5.0]]


def test_reset_rows_restarts_only_those_rows(net):
    # after t0..t2, sample B: n1 fired every step (v = 0), readout v = [.75, 15]
    _run(net, X, 3)
    reset_rows(net, torch.tensor([True, False]))
    assert net.layers["hidden"].v.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert net.layers["readout"].v.tolist() == [[0.0, 0.0], [0.75, 15.0]]
    assert not net.layers["hidden"].s[0].any()


def test_callers_data_is_never_modified(net):
    x, y = X.clone(), Y.clone()
    for one_step in (True, False):
        simulate(net, (x, y), T, one_step=one_step, batch_size=1)
        simulate(net, (x, y), T, encoding="poisson", generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, X) and torch.equal(y, Y)


def test_simulation_state_does_not_leak_between_calls(net):
    first = simulate(net, (X, Y), T, per_sample=True)
    second = simulate(net, (X, Y), T, per_sample=True)
    assert torch.equal(first.step_confidence, second.step_confidence)


def test_poisson_encoding_is_seeded(net):
    kw = {"encoding": "poisson", "per_sample": True}
    a = simulate(net, (X, Y), 32, generator=torch.Generator().manual_seed(1), **kw)
    b = simulate(net, (X, Y), 32, generator=torch.Generator().manual_seed(1), **kw)
    assert a.encoding == "poisson"
    assert torch.equal(a.sample_spikes["hidden"], b.sample_spikes["hidden"])
    # Sample B (x = [0, 1], c = 1) emits 1 every step: identical to the constant current.
    assert a.sample_spikes["hidden"][:, 1].tolist() == [1] * 32


# --------------------------------------------------------------------------- errors and cleanup

@pytest.mark.parametrize("bad", ["shape", "nan", "inf"])
def test_bad_input_raises_and_removes_monitors(net, bad):
    own = Monitor(net.layers["hidden"], ("s",), time=T)
    net.add_monitor(own, "mine")
    x = torch.zeros(2, 3) if bad == "shape" else X.clone()
    if bad != "shape":
        x[1, 0] = float(bad)
    with pytest.raises(ValueError, match="wrong input shape" if bad == "shape" else "NaN/inf"):
        simulate(net, (x, Y), T)
    assert list(net.monitors) == ["mine"]


def test_monitors_are_removed_after_a_run(net):
    simulate(net, (X, Y), T)
    assert list(net.monitors) == []


def test_argument_errors(net):
    with pytest.raises(ValueError, match="timesteps"):
        simulate(net, (X, Y), 0)
    with pytest.raises(ValueError, match="unknown encoding"):
        simulate(net, (X, Y), T, encoding="burst")
    assert list(net.monitors) == []


# --------------------------------------------------------------------------- monitors and memory

def test_spike_counter_per_step_is_t_by_b(net):
    counter = SpikeCounter(net, ["hidden"], T, per_neuron=True)
    net.add_monitor(counter, "count")
    net.run(inputs={"input": constant_current(X, T)}, time=T, one_step=True)
    assert counter.per_step["hidden"].shape == (T, 2)
    assert counter.per_step["hidden"].dtype == torch.int32
    assert counter.per_step["hidden"].tolist() == ONE_STEP["spikes"]
    assert counter.per_neuron["hidden"].shape == (2,)
    # Sized for T steps: a longer run is refused instead of overflowing.
    with pytest.raises(RuntimeError, match="sized for 6 steps"):
        net.run(inputs={"input": constant_current(X, 1)}, time=1, one_step=True)
    counter.reset_state_variables()
    assert counter.t == 0 and counter.per_step == {}


def test_readout_tracker_records_argmax_and_max_potential(net):
    tracker = ReadoutTracker(net, T)
    net.add_monitor(tracker, "readout")
    net.run(inputs={"input": constant_current(X, T)}, time=T, one_step=True)
    assert tracker.pred.tolist() == ONE_STEP["preds"]
    assert tracker.conf.tolist() == ONE_STEP["conf"]


@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("timesteps", [8, 32])
def test_result_memory_does_not_grow_with_neurons(timesteps, per_sample):
    # Everything the result holds is [T], [N] or [T, N] per layer: the same bytes for 2 or
    # 4096 hidden neurons.
    small = simulate(build_network(hand_plan(2)), (X, Y), timesteps, per_sample=per_sample)
    large = simulate(build_network(hand_plan(4096)), (X, Y), timesteps, per_sample=per_sample)
    assert large.layer_neurons == {"hidden": 4096}
    assert large.layer_spikes["hidden"].shape == (timesteps,)
    if per_sample:
        assert large.sample_spikes["hidden"].shape == (timesteps, 2)
    assert held_bytes(large) == held_bytes(small)


@pytest.mark.parametrize("per_sample", [False, True])
def test_result_memory_is_linear_in_timesteps_not_neurons_times_t(per_sample):
    # Doubling T doubles the T-dependent part; O(T x neurons) storage with 4096 neurons
    # would hold at least 4096 * T bytes, far above what is held.
    plan = hand_plan(4096)
    r8 = simulate(build_network(plan), (X, Y), 8, per_sample=per_sample)
    r16 = simulate(build_network(plan), (X, Y), 16, per_sample=per_sample)
    fixed = held_bytes(r8) - (held_bytes(r16) - held_bytes(r8))  # the T-independent part
    assert fixed >= 0
    assert held_bytes(r16) - fixed == 2 * (held_bytes(r8) - fixed)
    assert held_bytes(r16) < 4096 * 16


def test_default_result_is_independent_of_samples_times_t():
    # Without per_sample, nothing [T, N] is kept: 10 samples cost [T] + 10 x [N]-sized bytes.
    plan = hand_plan(2)
    r2 = simulate(build_network(plan), (X, Y), 64)
    r10 = simulate(build_network(plan), (X.repeat(5, 1), Y.repeat(5)), 64)
    per_sample_bytes = (held_bytes(r10) - held_bytes(r2)) / 8  # 8 more samples
    assert per_sample_bytes <= 8 + 4 + 8  # prediction int64, confidence float32, label int64


# --------------------------------------------------------------------------- known issues

def test_fully_convolutional_readout():
    # conv 3x3 (pad 1) -> ReLU -> conv 8x8 (no pad) -> readout of shape (3, 1, 1): a
    # classifier that plan_layers accepts ("must end with a Conv2d or Linear layer").
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict([("conv1", nn.Conv2d(1, 4, 3, padding=1)),
                                       ("relu1", nn.ReLU()),
                                       ("conv2", nn.Conv2d(4, 3, 8))]))
    x = torch.randn(5, 1, 8, 8)
    net = ann_to_bsnn(model, x)
    r = simulate(net, (x, torch.zeros(5, dtype=torch.long)), 4, per_sample=True)
    assert r.step_predictions.shape == (4, 5) and r.predictions.shape == (5,)
    assert torch.equal(r.predictions, net.layers["readout"].v.flatten(1).argmax(1))


def test_empty_dataset_is_rejected_clearly(net):
    with pytest.raises(ValueError, match="empty"):
        simulate(net, TensorDataset(X[:0], Y[:0]), T)
    assert list(net.monitors) == []


def test_empty_tensor_pair_is_rejected_clearly(net):
    with pytest.raises(ValueError, match="empty"):
        simulate(net, (X[:0], Y[:0]), T)


def test_rates_per_step_by_hand():
    from bsnn_bindsnet.simulation.simulate import SimResult

    # 2 samples, a layer of 4 neurons: 8 spikes at step 1, 2 at step 2, none at step 3
    res = SimResult(timesteps=3, one_step=True, encoding="current",
                    correct=torch.tensor([1, 2, 2]), predictions=torch.tensor([0, 1]),
                    confidence=torch.zeros(2), labels=torch.tensor([0, 1]),
                    layer_spikes={"a": torch.tensor([8, 2, 0])}, layer_neurons={"a": 4})
    assert res.rates_per_step() == {"a": [1.0, 0.25, 0.0]}
    assert res.firing_rates() == {"a": 1.25} and res.firing_rates(1) == {"a": 1.0}
    assert res.accuracy == [0.5, 1.0, 1.0]
