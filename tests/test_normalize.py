"""Hand-computed checks of the streaming percentile and the activation scales (lambda)."""

from collections import OrderedDict

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from bsnn_bindsnet.conversion.normalize import StreamingPercentile, activation_scales

# Linear(2 -> 2), W = [[1, -1], [1, 1]], no bias, on four inputs:
#   x1 = [1, 0]  -> [ 1, 1]        relu [1, 1]
#   x2 = [0, 1]  -> [-1, 1]        relu [0, 1]
#   x3 = [2, 1]  -> [ 1, 3]        relu [1, 3]
#   x4 = [3, -1] -> [ 4, 2]        relu [4, 2]
# "all": the 8 values sorted are [0, 1, 1, 1, 1, 2, 3, 4] (N = 8, rank = q/100 * 7);
# "sample-max": the per-sample maxima sorted are [1, 1, 3, 4] (N = 4, rank = q/100 * 3).
X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [3.0, -1.0]])
HAND = {
    # q: (all, sample-max)
    50.0: (1.0, 2.0),    # rank 3.5 -> 1 + 0.5 * (1 - 1);   rank 1.5 -> 1 + 0.5 * (3 - 1)
    80.0: (2.6, 3.4),    # rank 5.6 -> 2 + 0.6 * (3 - 2);   rank 2.4 -> 3 + 0.4 * (4 - 3)
    90.0: (3.3, 3.7),    # rank 6.3 -> 3 + 0.3 * (4 - 3);   rank 2.7 -> 3 + 0.7 * (4 - 3)
    100.0: (4.0, 4.0),   # the max either way
}


def tiny_model(dropout: float = 0.0) -> nn.Sequential:
    lin = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -1.0], [1.0, 1.0]]))
    return nn.Sequential(OrderedDict([("drop", nn.Dropout(dropout)), ("fc", lin),
                                      ("relu", nn.ReLU())]))


@pytest.fixture
def model() -> nn.Sequential:
    return tiny_model()


def feed(values: torch.Tensor, q: float, chunks: list[int]) -> float:
    tracker = StreamingPercentile(q, values.numel())
    for chunk in values.split(chunks):
        tracker.update(chunk)
    return tracker.result()


# --------------------------------------------------------------------------- StreamingPercentile

@pytest.mark.parametrize("q, expected", [(50, 5.5), (100, 10.0), (0, 1.0), (10, 1.9),
                                         (99.7, 9.973)])
def test_streaming_percentile_hand_example_one_to_ten(q, expected):
    # Values 1..10: rank = q/100 * 9; q=50 -> 4.5 -> 5 + 0.5 = 5.5; q=10 -> 0.9 -> 1.9;
    # q=99.7 -> 8.973 -> 9 + 0.973 * (10 - 9) = 9.973.
    values = torch.arange(1.0, 11.0)[torch.randperm(10, generator=torch.Generator().manual_seed(0))]
    assert feed(values, q, [3, 3, 4]) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("q", [0.0, 10.0, 50.0, 99.7, 100.0])
def test_streaming_percentile_equals_torch_quantile_on_uneven_chunks(q):
    g = torch.Generator().manual_seed(int(q * 10))
    values = torch.randn(1000, generator=g)
    values[::7] = 0.0  # many ties, as ReLU outputs have
    chunks = [1, 7, 300, 2, 690]
    expected = torch.quantile(values.double(), q / 100.0, interpolation="linear").item()
    assert feed(values, q, chunks) == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_streaming_percentile_accepts_multidimensional_chunks():
    values = torch.arange(24.0).reshape(2, 3, 4)  # 0..23, rank 0.5 * 23 = 11.5 -> 11.5
    tracker = StreamingPercentile(50, 24)
    tracker.update(values[0])
    tracker.update(values[1])
    assert tracker.result() == pytest.approx(11.5)


def test_streaming_percentile_keeps_only_the_values_that_matter():
    # q=90 of 1000 values: only the top 1000 - floor(0.9 * 999) = 101 can matter.
    tracker = StreamingPercentile(90, 1000)
    for chunk in torch.randn(1000, generator=torch.Generator().manual_seed(0)).split(100):
        tracker.update(chunk)
        assert tracker.top.numel() <= 101


@pytest.mark.parametrize("q", [-0.1, 100.1, float("nan")])
def test_streaming_percentile_rejects_q_outside_0_100(q):
    with pytest.raises(ValueError, match="percentile"):
        StreamingPercentile(q, 10)


def test_streaming_percentile_rejects_wrong_totals():
    with pytest.raises(ValueError, match="at least one"):
        StreamingPercentile(50, 0)
    tracker = StreamingPercentile(50, 4)
    tracker.update(torch.ones(3))
    with pytest.raises(ValueError, match="3 of the announced 4"):
        tracker.result()  # too few
    with pytest.raises(ValueError, match="more than the announced 4"):
        tracker.update(torch.ones(2))  # too many


# --------------------------------------------------------------------------- activation_scales

@pytest.mark.parametrize("q", sorted(HAND))
@pytest.mark.parametrize("statistic", ["all", "sample-max"])
def test_activation_scales_hand_computed(model, q, statistic):
    lam = activation_scales(model, {"relu": model.relu}, X, percentile=q, statistic=statistic)
    expected = HAND[q][0 if statistic == "all" else 1]
    assert lam == {"relu": pytest.approx(expected, abs=1e-6)}


def test_activation_scales_all_counts_zeros_and_sample_max_does_not(model):
    # q=10: "all" rank 0.7 -> 0 + 0.7 * (1 - 0) = 0.7, only possible if the zero is counted;
    # "sample-max" rank 0.3 -> 1 + 0.3 * (1 - 1) = 1.0.
    lam_all = activation_scales(model, {"relu": model.relu}, X, percentile=10)
    lam_max = activation_scales(model, {"relu": model.relu}, X, percentile=10,
                                statistic="sample-max")
    assert lam_all["relu"] == pytest.approx(0.7)
    assert lam_max["relu"] == pytest.approx(1.0)


def test_activation_scales_of_a_pre_relu_point_is_taken_after_relu(model):
    # The point "fc" outputs [1, 1], [-1, 1], [1, 3], [4, 2]: the negative value counts as 0,
    # so the result equals the ReLU point's.
    lam = activation_scales(model, {"fc": model.fc, "relu": model.relu}, X, percentile=80)
    assert lam["fc"] == pytest.approx(2.6) and lam["relu"] == pytest.approx(2.6)


def test_activation_scales_is_independent_of_batching_and_container(model):
    ref = activation_scales(model, {"relu": model.relu}, X, percentile=90, batch_size=256)
    chunked = activation_scales(model, {"relu": model.relu}, X, percentile=90, batch_size=3)
    pairs = TensorDataset(X, torch.arange(4))
    from_pairs = activation_scales(model, {"relu": model.relu}, pairs, percentile=90,
                                   batch_size=3)
    as_list = activation_scales(model, {"relu": model.relu}, list(X), percentile=90)
    assert ref == chunked == from_pairs == as_list == {"relu": pytest.approx(3.3)}


def test_activation_scales_ignores_dropout_and_restores_training_mode():
    model = tiny_model(dropout=1.0)  # in train mode it zeroes every input; in eval: identity
    model.train()
    lam = activation_scales(model, {"relu": model.relu}, X, percentile=100)
    # Train mode would give all-zero activations, hence lambda = 1.0 (the fallback), not 4.
    assert lam["relu"] == pytest.approx(4.0)
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    activation_scales(model, {"relu": model.relu}, X, percentile=100)
    assert not any(m.training for m in model.modules())


def test_activation_scales_leaves_no_hooks(model):
    activation_scales(model, {"fc": model.fc, "relu": model.relu}, X)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_activation_scales_restores_each_submodules_training_flag():
    model = tiny_model(dropout=0.5)
    model.train()
    model.drop.eval()  # e.g. a caller who froze one part
    activation_scales(model, {"relu": model.relu}, X)
    assert model.training and not model.drop.training


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_activation_scales_rejects_non_finite_calibration_data(model, bad):
    model.train()
    data = X.clone()
    data[2, 1] = bad
    with pytest.raises(ValueError, match="NaN/inf"):
        activation_scales(model, {"relu": model.relu}, data)
    # Cleaned up even on error: no hooks, training mode restored.
    assert all(not m._forward_hooks for m in model.modules())
    assert model.training


def test_activation_scales_rejects_non_finite_activations():
    model = tiny_model()
    with torch.no_grad():
        model.fc.weight[0, 0] = float("inf")
    # x2 = [0, 1] gives inf * 0 = nan in the first output.
    with pytest.raises(ValueError, match="non-finite activation at 'relu'"):
        activation_scales(model, {"relu": model.relu}, X)
    assert all(not m._forward_hooks for m in model.modules())


def test_activation_scales_argument_errors(model):
    with pytest.raises(ValueError, match="unknown statistic"):
        activation_scales(model, {"relu": model.relu}, X, statistic="mean")
    with pytest.raises(ValueError, match="empty"):
        activation_scales(model, {"relu": model.relu}, X[:0])


def test_activation_scales_no_active_layer_is_an_error():
    model = tiny_model()
    with torch.no_grad():
        model.fc.weight.fill_(-1.0)
    positive = X.abs() + 0.5  # every pre-activation is negative: relu is all zeros
    with pytest.raises(ValueError, match=r"no layer is active on the calibration data "
                                         r"\(4 samples; every activation of \['relu'\] is 0\)"):
        activation_scales(model, {"relu": model.relu}, positive, percentile=100)


def test_zero_percentile_of_an_active_layer_is_an_error_and_a_dead_layer_gets_one():
    lin = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0], [-1.0]]))  # unit 1 is dead for x > 0
    relu = nn.ReLU()
    model = nn.Sequential(lin, relu)
    x = torch.tensor([[1.0], [2.0], [3.0], [4.0]])  # relu outputs: 1,0 2,0 3,0 4,0
    # 8 values, 4 of them 0: the 20th percentile is 0 although the layer is active
    with pytest.raises(ValueError, match="percentile of its activations is 0"):
        activation_scales(model, {"relu": relu}, x, percentile=20)
    # 99th percentile: pos = 0.99 * 7 = 6.93 -> 3 + 0.93 * (4 - 3)
    assert activation_scales(model, {"relu": relu}, x, percentile=99)["relu"] == pytest.approx(3.93)
    # beside an active layer, a dead one gets 1.0 and a warning naming it
    dead = nn.Sequential(nn.Linear(1, 1, bias=False), nn.ReLU(), nn.Linear(1, 1, bias=False),
                         nn.ReLU())
    with torch.no_grad():
        dead[0].weight.fill_(1.0)  # relu 1 outputs x = 1..4
        dead[2].weight.fill_(-1.0)  # relu 2 outputs 0 for every x > 0
    with pytest.warns(UserWarning, match=r"^r2 never activates on the calibration data "
                                         r"\(4 samples\); its lambda falls back to 1.0$"):
        lam = activation_scales(dead, {"r1": dead[1], "r2": dead[3]}, x, percentile=100)
    assert lam == {"r1": 4.0, "r2": 1.0}
