"""Issue 20: the QCFS twin of a ReLU BWN, its B-SNN step by step, percentile tables and
selection, the step loss, training through the B-SNN, and the experiment that reports it."""

import json
import math
from collections import OrderedDict

import pytest
import torch
from torch import nn

from bsnn_bindsnet.ann.qcfs import QCFS
from bsnn_bindsnet.training.qcfs import (percentile_table, qcfs_twin, relu_points,
                                         select_percentiles, step_accuracy, step_predictions)
from bsnn_bindsnet.training.through_bsnn import (TuneConfig, parse_percentiles, step_loss,
                                                 tune)


def _relu_net(w_hidden: float = 1.0) -> nn.Sequential:
    """x [B, 1] -> hidden ReLU (weight w_hidden) -> readout [+1, -1]."""
    net = nn.Sequential(OrderedDict([("fc1", nn.Linear(1, 1, bias=False)), ("relu1", nn.ReLU()),
                                     ("fc2", nn.Linear(1, 2, bias=False))]))
    with torch.no_grad():
        net.fc1.weight.fill_(w_hidden)
        net.fc2.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    return net.eval()


def test_qcfs_twin_replaces_each_relu_and_keeps_the_original():
    net = _relu_net()
    twin = qcfs_twin(net, {"relu1": 1.5}, levels=3)
    assert isinstance(twin.relu1, QCFS) and isinstance(net.relu1, nn.ReLU)
    assert (twin.relu1.levels, twin.relu1.lam.item()) == (3, 1.5)
    assert relu_points(net) == ["relu1"] and relu_points(twin) == []
    with pytest.raises(ValueError, match="expected exactly the ReLUs"):
        qcfs_twin(net, {"relu2": 1.0})
    with pytest.raises(ValueError, match="must be > 0"):
        qcfs_twin(net, {"relu1": 0.0})


def test_step_predictions_follow_the_if_neuron_by_hand():
    # theta = lambda = 1, v(0) = 1/2, input current 0.3 per step: v = 0.8, 1.1 -> spike
    # (v = 0.1), 0.4, 0.7. Readout currents (+s, -s): 0, 1, 0, 0; mean after t steps:
    # 0, 1/2, 1/3, 1/4. Step 1 is a tie (argmax takes class 0), then class 0 leads.
    twin = qcfs_twin(_relu_net(), {"relu1": 1.0})
    x, y = torch.tensor([[0.3], [0.3]]), torch.tensor([0, 1])
    preds, conf, labels = step_predictions(twin, (x, y), 4)
    assert preds[:, 0].tolist() == [0, 0, 0, 0] and torch.equal(labels, y)
    assert conf[:, 0].tolist() == pytest.approx([0.0, 0.5, 1 / 3, 0.25])
    assert step_accuracy(twin, (x, y), 4) == [0.5] * 4


def test_percentile_table_matches_hand_computed_percentiles():
    # activations relu(x) of x = 0, 1, 2, 3, 4: the 50th percentile is 2, the 75th 3,
    # the 90th 3.6 (linear interpolation, as torch.quantile)
    x = torch.arange(5.0).view(-1, 1)
    table = percentile_table(_relu_net(), (x, torch.zeros(5, dtype=torch.long)),
                             [90, 50, 75])
    assert list(table) == [50.0, 75.0, 90.0]
    assert [table[p]["relu1"] for p in (50.0, 75.0, 90.0)] == pytest.approx([2.0, 3.0, 3.6])
    with pytest.raises(ValueError, match="no ReLU"):
        percentile_table(qcfs_twin(_relu_net(), {"relu1": 1.0}), x, [50])


def test_select_percentiles_takes_the_best_on_validation():
    # readout [-1, +1]: a hidden spike predicts class 1, no spike a tie (class 0). At T = 1
    # the neuron fires iff x >= lambda / 2. Val: x = 1.2 (class 1), x = 0.5 (class 0).
    # lambda = 0.8 fires on both (1/2 right), 2.0 on 1.2 only (2/2), 4.0 on neither (1/2).
    net = _relu_net()
    with torch.no_grad():
        net.fc2.weight.copy_(torch.tensor([[-1.0], [1.0]]))
    val = (torch.tensor([[1.2], [0.5]]), torch.tensor([1, 0]))
    table = {50.0: {"relu1": 0.8}, 90.0: {"relu1": 2.0}, 99.0: {"relu1": 4.0}}
    choice, acc, trace = select_percentiles(net, table, val, 1)
    assert (choice, acc) == ({"relu1": 90.0}, 1.0)
    assert [t["val_accuracy"] for t in trace] == [0.5, 1.0, 0.5, 0.5, 0.5]  # 3 + 2 per layer


def test_step_loss_is_cross_entropy_then_distillation():
    out = torch.tensor([[[2.0, 0.0]], [[0.0, 0.0]]])  # [T=2, B=1, 2]
    y = torch.tensor([0])
    ce1 = nn.functional.cross_entropy(torch.tensor([[2.0, 0.0]]), y)
    ce2 = nn.functional.cross_entropy(torch.tensor([[1.0, 0.0]]), y)  # mean of the 2 steps
    assert float(step_loss(out, y, [1])) == pytest.approx(float(ce1))
    assert float(step_loss(out, y, [1, 2])) == pytest.approx(float(ce1 + ce2) / 2)
    # a teacher that agrees with the step-2 readout adds no distillation loss there
    same = step_loss(out, y, [2], torch.tensor([[1.0, 0.0]]), kd_weight=0.25)
    assert float(same) == pytest.approx(0.75 * float(ce2))
    assert float(step_loss(out, y, [2], torch.tensor([[0.0, 3.0]]), kd_weight=0.25)) > float(same)


def test_bad_options_are_refused_by_name():
    with pytest.raises(ValueError, match="bad item 'relu1:98'"):
        parse_percentiles("relu1:98")
    assert parse_percentiles("relu1=98, relu2=99.5") == {"relu1": 98.0, "relu2": 99.5}
    with pytest.raises(ValueError, match="loss_steps"):
        TuneConfig("zoo:digits-bwn", "out", timesteps=2, loss_steps=(3,))
    with pytest.raises(ValueError, match="schedule"):
        TuneConfig("zoo:digits-bwn", "out", schedule="step")


@pytest.mark.slow
def test_tune_on_digits_keeps_every_epoch_and_picks_on_val(tmp_path):
    from bsnn_bindsnet.checkpoint import read_model_file
    from bsnn_bindsnet.training.models import load_model
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn
    from bsnn_bindsnet.data.registry import load_dataset
    from bsnn_bindsnet.simulation.simulate import simulate

    from bsnn_bindsnet.zoo.registry import materialize

    pct = {n: 98.0 for n in ("relu1", "relu2", "relu3", "relu4", "relu_fc1")}
    bwn = str(materialize("digits-bwn", tmp_path / "zoo"))
    cfg = TuneConfig(bwn, str(tmp_path / "run"), percentiles=pct, dataset="digits",
                     teacher=bwn, epochs=2, batch_size=64, train_subset=256, eval_steps=3)
    history = tune(cfg)
    assert [r["epoch"] for r in history] == [0, 1, 2]  # 256 images: 4 batches an epoch
    assert [r["batches"] for r in history] == [0, 4, 8]
    assert all(len(r["val_acc"]) == 3 and r["val_n"] == 120 for r in history)
    best = max(history, key=lambda r: (r["val_acc"][1], -r["epoch"]))
    blob = read_model_file(tmp_path / "run" / "model.pt")
    assert blob["meta"]["epoch"] == best["epoch"]
    assert blob["model_kwargs"]["activation"] == "qcfs"
    with pytest.raises(FileExistsError):
        tune(cfg)
    # epoch 0 is the standard conversion at those percentiles, and the saved network's
    # BindsNET simulation predicts what the unrolled twin predicts, step by step
    model = load_model(str(tmp_path / "run" / "epoch-0" / "model.pt")).eval()
    val = load_dataset("digits", "val")
    assert step_accuracy(model, val, 3) == pytest.approx(history[0]["val_acc"])
    trained = load_model(str(tmp_path / "run" / "model.pt")).eval()
    result = simulate(ann_to_bsnn(trained, None), val, 3, one_step=True, per_sample=True)
    preds, _, _ = step_predictions(trained, val, 3)
    assert torch.equal(result.step_predictions, preds)


@pytest.mark.slow
def test_low_latency_t2_experiment_smoke(tmp_path):
    from experiments import low_latency_t2

    sel = low_latency_t2.main(["select", "--smoke", "--out-dir", str(tmp_path)])
    assert set(sel["global"]) == {"1", "2", "4"} and "2" in sel["layerwise"]
    for g in sel["global"].values():  # the chosen percentile is the best of its curve
        t_best = max(c for c in sel["curves"].values())
        assert g["percentile"] in (96.0, 99.0, 99.9) and t_best
    pct = ",".join(f"{n}=98" for n in ("relu1", "relu2", "relu3", "relu4", "relu_fc1"))
    history = low_latency_t2.main(["train", "--init-from", "zoo:digits-bwn", "--dataset",
                                   "digits", "--percentiles", pct, "--max-batches", "2",
                                   "--batch-size", "32", "--out", str(tmp_path / "run")])
    assert [r["batches"] for r in history] == [0, 2]
    out = low_latency_t2.main(["evaluate", "--smoke", "--out-dir", str(tmp_path),
                               "--model", f"t2={tmp_path / 'run' / 'model.pt'}",
                               "--start", f"start={tmp_path / 'run'}", "--exit-model", "t2"])
    assert out["n_test"] == 64 and out["n_val"] == 120
    for row in out["rows"].values():
        assert len(row["test"]) == len(row["val"]) == 4
    t2 = out["rows"]["t2"]
    assert t2["unrolled_agreement"] == [1.0, 1.0]  # BindsNET = the unrolled twin, T = 1, 2
    assert t2["first_1000_correct"] == [round(64 * a) for a in t2["test"]]
    (exit_row,) = out["early_exit"]  # --smoke: T_ref = 2 only
    assert exit_row["t_ref"] == 2 and 1 <= exit_row["test_mean_exit"] <= 2
    assert exit_row["val_exit"] >= exit_row["val_fixed"] - 0.001
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["config"]["smoke"] is True and math.isfinite(saved["results"]["relu_ann"])


# The shipped low-latency B-SNN (issue 20): correct images among the first 1,000 test images
# after T = 1 and T = 2 steps of its BindsNET simulation (one-step mode, theta = lambda), as
# measured on the shipped weights by `python -m experiments.low_latency_t2 evaluate ...`
# (README, "Low latency, part 2"; results.json: rows.fmnist-bsnn-t2.first_1000_correct).
SHIPPED_LOW_LATENCY = "fmnist-bsnn-t2"
SHIPPED_FIRST_1000_CORRECT = {1: 895, 2: 914}


def test_shipped_low_latency_bsnn_accuracy_on_a_fixed_subset():
    from torch.utils.data import Subset

    from bsnn_bindsnet.conversion.convert import ann_to_bsnn
    from bsnn_bindsnet.data.registry import DatasetNotFoundError, load_dataset
    from bsnn_bindsnet.simulation.simulate import simulate
    from bsnn_bindsnet.zoo import registry as zoo

    if SHIPPED_LOW_LATENCY not in {e.name for e in zoo.list_models()}:
        pytest.skip(f"the zoo has no {SHIPPED_LOW_LATENCY} entry")
    try:
        test = Subset(load_dataset("fashion-mnist", "test"), range(1000))
    except DatasetNotFoundError:
        pytest.skip("Fashion-MNIST is not installed")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = simulate(ann_to_bsnn(zoo.load(SHIPPED_LOW_LATENCY), None), test, 2,
                          one_step=True, batch_size=250)
    finally:
        torch.set_num_threads(threads)
    correct = {t: round(result.accuracy[t - 1] * 1000) for t in (1, 2)}
    assert correct == SHIPPED_FIRST_1000_CORRECT


def test_tune_never_replaces_a_run_folder(tmp_path):
    """A folder that holds any file a run writes is refused before any work, and kept as is."""
    from bsnn_bindsnet.training.through_bsnn import TuneConfig, tune

    out = tmp_path / "run"
    out.mkdir()
    (out / "model.pt").write_bytes(b"the user's model")
    with pytest.raises(FileExistsError, match=r"already holds a run \(model.pt\)"):
        tune(TuneConfig("zoo:digits-bwn", str(out), dataset="digits"))
    assert (out / "model.pt").read_bytes() == b"the user's model"
