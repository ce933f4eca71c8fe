import pytest
import torch

from bsnn_bindsnet.analysis.early_exit import (early_exit, exit_histogram, exit_steps,
                                               first_step_reaching, rates_until_exit,
                                               select_threshold, sweep, threshold_grid)


@pytest.fixture
def traces():
    # 3 samples over T=4 steps. Confidence (readout max potential) after each step:
    conf = torch.tensor([[0.5, 0.2, 0.1],
                         [1.5, 0.4, 0.2],
                         [2.5, 1.1, 0.3],
                         [3.5, 2.2, 0.4]])
    # argmax after each step: sample 0 settles on 1 at step 2; sample 1 on 2 at step 4
    pred = torch.tensor([[0, 0, 5],
                         [1, 0, 5],
                         [1, 0, 5],
                         [1, 2, 5]])
    labels = torch.tensor([1, 2, 5])
    return pred, conf, labels


def test_exit_steps_by_hand(traces):
    _, conf, _ = traces
    # > 1.0: sample 0 at step 2 (1.5), sample 1 at step 3 (1.1), sample 2 never -> T = 4
    assert exit_steps(conf, 1.0).tolist() == [2, 3, 4]
    assert exit_steps(conf, 0.0).tolist() == [1, 1, 1]
    assert exit_steps(conf, 10.0).tolist() == [4, 4, 4]


def test_early_exit_accuracy_and_mean_exit(traces):
    pred, conf, labels = traces
    res = early_exit(pred, conf, labels, 1.0)
    # predictions at steps 2, 3, 4: 1 (right), 0 (wrong, label 2), 5 (right)
    assert res.predictions.tolist() == [1, 0, 5]
    assert res.accuracy == pytest.approx(2 / 3) and res.mean_exit == pytest.approx(3.0)
    late = early_exit(pred, conf, labels, 2.0)  # exits 3, 4, 4: all right
    assert late.accuracy == 1.0 and late.mean_exit == pytest.approx(11 / 3)
    assert [r.threshold for r in sweep(pred, conf, labels, [1.0, 2.0])] == [1.0, 2.0]


def test_exit_histogram(traces):
    _, conf, _ = traces
    assert exit_histogram(exit_steps(conf, 1.0), 4).tolist() == [0, 1, 1, 1]


def test_rates_until_exit_count_only_spikes_before_each_exit():
    spikes = {"l1": torch.tensor([[1, 2], [1, 2], [1, 2]])}  # [T=3, N=2] spikes per step
    steps = torch.tensor([1, 3])
    # sample 0 keeps 1 spike, sample 1 keeps 6: 7 spikes / (2 samples * 2 neurons)
    assert rates_until_exit(spikes, {"l1": 2}, steps) == {"l1": pytest.approx(7 / 4)}


def test_select_threshold_takes_the_earliest_exit_that_keeps_the_accuracy(traces):
    pred, conf, labels = traces
    runs = sweep(pred, conf, labels, [0.0, 1.0, 2.0, 10.0])
    # accuracies 1/3 (exit at 1: 0, 0, 5), 2/3, 1, 1; mean exits 1, 3, 11/3, 4
    assert [round(r.accuracy, 3) for r in runs] == [0.333, 0.667, 1.0, 1.0]
    assert select_threshold(runs, 1.0).threshold == 2.0
    assert select_threshold(runs, 0.5).threshold == 1.0
    assert select_threshold(runs, 0.0).threshold == 0.0
    assert select_threshold(runs[:2], 0.9) is None


def test_threshold_grid_spans_the_confidences(traces):
    _, conf, _ = traces
    grid = threshold_grid(conf, n=5)
    assert grid == sorted(grid) and len(grid) == 5
    assert grid[0] < float(conf.min()) and grid[-1] == pytest.approx(float(conf.max()))
    assert exit_steps(conf, grid[0]).tolist() == [1, 1, 1]
    assert threshold_grid(torch.ones(3, 2), n=8) == [0.0, 1.0]  # duplicates collapse
    with pytest.raises(ValueError, match="n must be >= 2"):
        threshold_grid(conf, n=1)


def test_first_step_reaching():
    assert first_step_reaching([0.1, 0.5, 0.9, 0.8], 0.5) == 2
    assert first_step_reaching([0.1, 0.5], 0.95) is None
