"""Every setting is chosen on the held-out "val" split and only scored on test (issue 22, 1).

Each selection function gets validation data and test data separately; the cases below are
built so that choosing on the test data would give another answer, so a selection that
reads the test set fails them.
"""

from pathlib import Path

import pytest
import torch

from bsnn_bindsnet.data.registry import load_dataset
from bsnn_bindsnet.data.sources import split_indices
from bsnn_bindsnet.simulation.simulate import SimResult
from experiments.common import chosen_on_val
from experiments.harness import Setup, early_exit_study, selection_data


def _setup(smoke: bool = False) -> Setup:
    return Setup(dataset="digits", runs_dir=Path("runs"), out_dir=Path("out"), timesteps=4,
                 percentile=99.9, limit=None, batch_size=64, data_root=None, device="cpu",
                 smoke=smoke)


def test_selection_data_is_the_val_split_which_no_model_trains_on():
    val = load_dataset("digits", "val")
    picked = selection_data(_setup(), 10)
    assert len(picked) == 10
    for i in range(10):
        assert torch.equal(picked[i][0], val[i][0]) and picked[i][1] == val[i][1]
    assert len(selection_data(_setup(), None)) == len(val) == 120  # 1/12 of 1,437
    assert len(selection_data(_setup(), 0)) == 120
    assert len(selection_data(_setup(smoke=True), None)) == 64
    held_out = set(split_indices(1437, "val").tolist())
    assert not held_out & set(split_indices(1437, "train").tolist())
    assert not held_out & set(split_indices(1437, "calib", 256).tolist())


def test_chosen_on_val_takes_the_step_from_val_and_reads_test_there():
    val = {"accuracy": [0.5, 0.8, 0.9, 0.95], "normalized_ops": [0.1, 0.2, 0.3, 0.4]}
    test = {"accuracy": [0.9, 0.91, 0.92, 0.93], "normalized_ops": [1.0, 2.0, 3.0, 4.0]}
    # val reaches 0.85 at step 3; test (already 0.9 at step 1) has no say
    assert chosen_on_val(val, test, 0.85) == {"t_val": 3, "val_accuracy": 0.9,
                                              "val_ops": 0.3, "test_accuracy": 0.92,
                                              "test_ops": 3.0}
    never = chosen_on_val(val, test, 0.99)
    assert set(never.values()) == {None}
    short = chosen_on_val(val, {"accuracy": [0.9], "normalized_ops": [1.0]}, 0.85)
    assert short["t_val"] == 3 and short["test_accuracy"] is None


def _plan():
    from bsnn_bindsnet.training.models import get_model
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn

    torch.manual_seed(0)
    model = get_model("vgg_tiny", quant="bwn", input_shape=(1, 8, 8), num_classes=10).eval()
    return ann_to_bsnn(model, torch.rand(16, 1, 8, 8), build=False)


def _result(plan, predictions: list[list[int]], rate: float) -> SimResult:
    """Traces of 4 samples (label 0) over T = 4 steps; every IF neuron fires ``rate`` spikes
    per step; confidence t at step t for every sample."""
    pred = torch.tensor(predictions)
    labels = torch.zeros(4, dtype=torch.int64)
    t, n = pred.shape
    neurons = {layer.name: int(torch.tensor(layer.shape).prod()) for layer in plan.layers
               if layer.kind == "if"}
    per_sample = {k: torch.full((t, n), rate * v) for k, v in neurons.items()}
    return SimResult(timesteps=t, one_step=True, encoding="current",
                     correct=(pred == labels).sum(1), predictions=pred[-1],
                     confidence=torch.full((n,), float(t)), labels=labels,
                     layer_spikes={k: s.sum(1) for k, s in per_sample.items()},
                     layer_neurons=neurons, step_predictions=pred,
                     step_confidence=torch.arange(1.0, t + 1).repeat_interleave(n).view(t, n),
                     sample_spikes=per_sample)


def test_early_exit_study_chooses_t_ref_on_val_and_scores_it_on_test():
    plan = _plan()
    # val accuracy per step 0.25, 0.5, 1, 1 -> within 1 point of an ANN at 100 % at step 3
    val = _result(plan, [[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]], rate=1.0)
    # test accuracy 0.25, 1, 1, 1 -> chosen on test it would be step 2
    test = _result(plan, [[0, 1, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], rate=0.5)
    study = early_exit_study(val, test, plan, ann_val=1.0, ann_test=1.0, tolerance=0.001,
                             reference_tolerance=0.01)
    assert (study["reference"], study["t_ref"], study["n_val"]) == ("ANN", 3, 4)
    assert study["val"]["accuracy_at_t_ref"] == 1.0
    assert study["selected_on_test"]["t_ref"] == 2  # for comparison only
    # scored on test at T_ref = 3: test accuracy there, and #OPS from the *test* spikes: every
    # hidden source fired 0.5 per step, 1.5 in 3 steps (val fired 1.0 per step: 3.0)
    assert study["accuracy_at_t_ref"] == 1.0
    assert study["ops_at_t_ref"] == pytest.approx(1.5)
    # every sample has the same confidence, so no threshold exits early without losing
    # val accuracy: the fixed latency, no saving
    assert study["threshold"] is None and study["no_saving"] and study["mean_exit"] == 3
    # the test-set ANN accuracy plays no part in the choice
    other = early_exit_study(val, test, plan, ann_val=1.0, ann_test=0.0, tolerance=0.001,
                             reference_tolerance=0.01)
    assert other["t_ref"] == 3


def test_latency_benchmark_chooses_t_star_on_val():
    from benchmarks.latency_to_accuracy import choose_t_star

    val_curve = [0.80, 0.88, 0.915, 0.93]
    # the reference scores 92 % on val: the target is 91 %, first met at step 3
    assert choose_t_star(val_curve, 0.92, 0.01) == 3
    assert choose_t_star(val_curve, 0.95, 0.01) is None


def test_latency_benchmark_chooses_the_percentile_on_val():
    from benchmarks.latency_to_accuracy import choose_plan

    curves = {99.0: [0.85, 0.905, 0.92],   # reaches 91 % at step 3
              99.9: [0.80, 0.912, 0.93],   # step 2, 91.2 %
              99.99: [0.70, 0.915, 0.94]}  # step 2 too, 91.5 %: wins the tie
    assert choose_plan(curves, curves, 0.92, 0.01) == (99.99, 2)
    # none within 1 point: the highest final val accuracy, no T*
    assert choose_plan(curves, curves, 0.99, 0.01) == (99.99, None)
    # the fewest steps wins even when another plan ends higher (not the last key, not the max)
    curves = {99.0: [0.80, 0.915, 0.92], 99.9: [0.70, 0.85, 0.95]}
    assert choose_plan(curves, curves, 0.92, 0.01) == (99.0, 2)


def test_fig3_best_epoch_is_chosen_on_val():
    from experiments.fig3_training_curves import best_on_val

    history = [{"epoch": 1, "val_acc": 0.90, "test_acc": 0.89},
               {"epoch": 2, "val_acc": 0.91, "test_acc": 0.93},   # best on test
               {"epoch": 3, "val_acc": 0.92, "test_acc": 0.90},   # best on val
               {"epoch": 4, "val_acc": 0.92, "test_acc": 0.91}]   # tie: the earlier wins
    assert best_on_val(history) == {"epoch": 3, "val_acc": 0.92, "test_acc": 0.90}
    assert best_on_val([{"epoch": 1, "test_acc": 0.9}]) is None  # trained before val existed


def test_latency_benchmark_chooses_the_exit_threshold_on_val():
    import math

    import torch

    from benchmarks.latency_to_accuracy import choose_val_exit

    labels = torch.tensor([0, 1, 2, 3])
    preds = torch.tensor([[0, 1, 0, 0],    # step 1: samples 0 and 1 right
                          [0, 1, 2, 3]])   # step 2: all right (the fixed T* = 2 run: 100 %)
    conf = torch.tensor([[5.0, 4.0, 1.0, 2.0],
                         [6.0, 6.0, 6.0, 6.0]])
    # no accuracy to lose: only a threshold in [2, 4) exits the two confident, right samples
    # at step 1 and keeps the others to step 2 (mean exit 1.5, still 100 %)
    chosen = choose_val_exit(preds, conf, labels, 2, tolerance=0.001)
    assert chosen.accuracy == 1.0 and chosen.mean_exit == 1.5 and 2.0 <= chosen.threshold < 4.0
    # a quarter may be lost: sample 3 (confidence 2, wrong at step 1) may exit too
    chosen = choose_val_exit(preds, conf, labels, 2, tolerance=0.3)
    assert chosen.accuracy == 0.75 and chosen.mean_exit == 1.25
    # T* = 1: nothing to save; the fixed run (+inf) is the choice
    assert math.isinf(choose_val_exit(preds, conf, labels, 1, tolerance=0.001).threshold)
    # equally confident everywhere: any finite threshold exits all at step 1 and loses half
    flat = choose_val_exit(preds, torch.ones(2, 4), labels, 2, tolerance=0.001)
    assert math.isinf(flat.threshold) and flat.mean_exit == 2.0


def test_latency_benchmark_times_early_exit_end_to_end(tmp_path, capsys):
    import json

    from benchmarks import latency_to_accuracy

    out = tmp_path / "latency.json"
    latency_to_accuracy.main(["--reference", "zoo:digits-bwn", "--model", "std=zoo:digits-bwn",
                              "--dataset", "digits", "--limit", "64", "--select-limit", "64",
                              "--max-timesteps", "6", "--percentiles", "99.9", "--within",
                              "0.5", "--repeats", "1", "--early-exit", "--out", str(out)])
    row = json.loads(out.read_text())["models"]["std"]
    exit_row = row["early_exit"]
    assert row["t_star"] is not None and exit_row["tolerance"] == 0.001
    assert exit_row["val_accuracy"] >= exit_row["val_accuracy_at_t_star"] - 0.001
    if exit_row["threshold"] is not None:  # a saving on val: timed and scored on test
        assert 1.0 <= exit_row["test_mean_exit"] <= row["t_star"]
        assert exit_row["ratio"] == exit_row["seconds"] / exit_row["ann_seconds"]
    assert "early exit at T* =" in capsys.readouterr().out


def test_latency_benchmark_checks_the_exit_tolerance(capsys):
    from benchmarks import latency_to_accuracy

    with pytest.raises(SystemExit):
        latency_to_accuracy.main(["--model", "a=zoo:digits-bwn", "--exit-tolerance", "1.5"])
    assert "--exit-tolerance must be in [0, 1), got 1.5" in capsys.readouterr().err
