import math

import pytest
import torch

from bsnn_bindsnet.analysis.early_exit import (choose_exit, early_exit, exit_histogram,
                                               exit_steps, first_step_reaching,
                                               rates_until_exit, select_threshold, sweep,
                                               threshold_grid, timestep_saving)


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


def test_exit_steps_stop_at_the_cap(traces):
    pred, conf, labels = traces
    # > 1.0 with the cap at 2: sample 0 crosses at step 2, samples 1 (step 3) and 2 stop at 2
    assert exit_steps(conf, 1.0, t_cap=2).tolist() == [2, 2, 2]
    assert exit_steps(conf, 0.0, t_cap=2).tolist() == [1, 1, 1]
    assert exit_steps(conf, 1.0, t_cap=4).tolist() == exit_steps(conf, 1.0).tolist()
    for bad in (0, 5):
        with pytest.raises(ValueError, match="t_cap must lie in"):
            exit_steps(conf, 1.0, t_cap=bad)
    capped = sweep(pred, conf, labels, [1.0], t_cap=2)[0]
    assert capped.predictions.tolist() == [1, 0, 5] and capped.mean_exit == 2.0


def test_infinite_threshold_with_the_cap_is_the_fixed_latency_run(traces):
    pred, conf, labels = traces
    # accuracy after each step: 1/3 (0, 0, 5), 2/3 (1, 0, 5), 2/3, 1 (1, 2, 5)
    for t_ref, acc in ((1, 1 / 3), (2, 2 / 3), (3, 2 / 3), (4, 1.0)):
        fixed = early_exit(pred, conf, labels, math.inf, t_cap=t_ref)
        assert fixed.exit_steps.tolist() == [t_ref] * 3
        assert fixed.predictions.tolist() == pred[t_ref - 1].tolist()
        assert fixed.accuracy == pytest.approx(acc) and fixed.mean_exit == t_ref


def test_timestep_saving_is_never_negative():
    assert timestep_saving(3.0, 4) == pytest.approx(0.25)
    assert timestep_saving(4.0, 4) == 0.0
    assert timestep_saving(5.04, 4) == 0.0  # a policy slower than T_ref saves nothing


def test_choose_exit_saves_where_a_threshold_keeps_the_accuracy(traces):
    pred, conf, labels = traces
    # T_ref = 4 (accuracy 1): as in the uncapped sweep, 2.0 keeps it with mean exit 11/3
    chosen, runs = choose_exit(pred, conf, labels, 4, [10.0, 0.0, 2.0, 1.0], tolerance=0.0)
    assert [r.threshold for r in runs] == [0.0, 1.0, 2.0, 10.0, math.inf]
    assert chosen.threshold == 2.0 and chosen.mean_exit == pytest.approx(11 / 3)
    # T_ref = 3 (accuracy 2/3), cap 3: 1.0 exits at 2, 3, 3 with 1, 0, 5 (2/3), mean 8/3;
    # 2.0 exits at 3, 3, 3 (sample 1 would cross at 4): no faster than T_ref
    chosen, runs = choose_exit(pred, conf, labels, 3, [0.0, 1.0, 2.0], tolerance=0.0)
    assert [r.mean_exit for r in runs] == pytest.approx([1.0, 8 / 3, 3.0, 3.0])
    assert chosen.threshold == 1.0 and chosen.accuracy == pytest.approx(2 / 3)
    assert all(r.mean_exit <= 3 for r in runs)


@pytest.fixture
def confidently_wrong():
    # 2 samples, T = 3: both predict 0 (wrong) at steps 1-2 and 1 (right) at step 3;
    # sample 0 is confident from the start, sample 1 never much
    conf = torch.tensor([[2.0, 0.1],
                         [2.5, 0.2],
                         [3.0, 0.3]])
    pred = torch.tensor([[0, 0],
                         [0, 0],
                         [1, 1]])
    return pred, conf, torch.tensor([1, 1])


def test_choose_exit_reports_no_saving_when_the_fixed_latency_is_optimal(confidently_wrong):
    pred, conf, labels = confidently_wrong
    # T_ref = 3 (accuracy 1): any sample leaving before step 3 is wrong, so every finite
    # threshold that exits anyone early loses accuracy; the rest stop everyone at 3
    grid = threshold_grid(conf, n=8)
    chosen, runs = choose_exit(pred, conf, labels, 3, grid, tolerance=0.0)
    assert all(r.accuracy < 1.0 for r in runs if r.mean_exit < 3)
    assert chosen.threshold == math.inf
    assert chosen.mean_exit == 3.0 and chosen.accuracy == 1.0
    assert chosen.exit_steps.tolist() == [3, 3] and timestep_saving(chosen.mean_exit, 3) == 0.0


def test_choose_exit_tolerance_admits_a_cheaper_threshold(confidently_wrong):
    pred, conf, labels = confidently_wrong
    # capped at 3: 0.15 exits at 1, 2 (both wrong): 0, mean 1.5; 0.25 exits at 1, 3: 1/2,
    # mean 2; 2.0 exits at 2, 3: 1/2, mean 2.5; +inf: 1, mean 3. Half a point allowed: 0.25
    chosen, runs = choose_exit(pred, conf, labels, 3, [0.15, 0.25, 2.0], tolerance=0.5)
    assert [(r.accuracy, r.mean_exit) for r in runs] == [(0.0, 1.5), (0.5, 2.0), (0.5, 2.5),
                                                         (1.0, 3.0)]
    assert chosen.threshold == 0.25
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        choose_exit(pred, conf, labels, 3, [0.25], tolerance=-0.1)


def test_the_submodule_is_not_hidden_by_its_function():
    import importlib

    import bsnn_bindsnet.analysis.early_exit as module

    assert module is importlib.import_module("bsnn_bindsnet.analysis.early_exit")
    assert callable(module.early_exit)
