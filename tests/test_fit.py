import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch

from bsnn_bindsnet.training.fit import RunConfig, fit
from bsnn_bindsnet.training.loop import evaluate, train_one_epoch
from bsnn_bindsnet.checkpoint import CheckpointError, atomic_save, read_model_file


def _cfg(tmp_path, name="run", **kw):
    base = dict(preset="digits-fp", out_dir=str(tmp_path / name), epochs=3, train_subset=512,
                progress=False, seed=3)
    return RunConfig(**{**base, **kw})


def _weights(run_dir):
    return read_model_file(os.path.join(run_dir, "model.pt"))["state_dict"]


class Interrupt(Exception):
    pass


def test_resume_after_an_interruption_mid_epoch_reaches_the_same_weights(tmp_path):
    straight = _cfg(tmp_path, "straight")
    history = fit(straight)
    interrupted = _cfg(tmp_path, "interrupted")

    def stop_in_epoch_2(epoch, batch, loss):
        if epoch == 1 and batch == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(interrupted, on_batch=stop_in_epoch_2)
    assert torch.load(os.path.join(interrupted.out_dir, "checkpoint.pt"),
                      weights_only=True)["epoch"] == 1
    resumed = fit(interrupted, resume=True)
    a, b = _weights(straight.out_dir), _weights(interrupted.out_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["test_acc"] for r in resumed] == [r["test_acc"] for r in history]
    rows = (tmp_path / "interrupted" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,lr,weight_decay,train_loss") and len(rows) == 4


def test_same_seed_same_run_different_seed_different_run(tmp_path):
    one = fit(_cfg(tmp_path, "a", epochs=1))
    two = fit(_cfg(tmp_path, "b", epochs=1))
    three = fit(_cfg(tmp_path, "c", epochs=1, seed=4))
    assert one[0]["train_loss"] == two[0]["train_loss"] != three[0]["train_loss"]


def test_an_existing_run_is_never_overwritten_silently(tmp_path):
    cfg = _cfg(tmp_path, epochs=1)
    fit(cfg)
    with pytest.raises(FileExistsError, match="--resume"):
        fit(cfg)
    with pytest.raises(CheckpointError, match="lr: checkpoint None vs now 0.5"):
        fit(replace(cfg, lr=0.5), resume=True)
    fit(cfg, overwrite=True)


def test_hybrid_binarization_starts_from_the_full_precision_weights(tmp_path):
    fp = _cfg(tmp_path, "fp", epochs=1)
    fit(fp)
    with pytest.raises(ValueError, match="--init-from"):
        fit(_cfg(tmp_path, "bwn", preset="digits-bwn"))
    bwn = _cfg(tmp_path, "bwn", preset="digits-bwn", epochs=1, lr=1e-12,
               init_from=os.path.join(fp.out_dir, "model.pt"))
    fit(bwn)
    before, after = _weights(fp.out_dir), _weights(bwn.out_dir)
    assert torch.allclose(before["conv2.weight"], after["conv2.weight"], atol=1e-9)
    config = json.loads((tmp_path / "bwn" / "config.json").read_text())
    assert config["resolved"]["quant"] == "bwn"


def test_init_from_another_architecture_is_refused(tmp_path):
    fp = _cfg(tmp_path, "fp", epochs=1)
    fit(fp)
    blob = read_model_file(os.path.join(fp.out_dir, "model.pt"))
    blob["model"] = "mlp"
    atomic_save(blob, tmp_path / "mlp.pt")  # hashed again: a well-formed file of another model
    with pytest.raises(CheckpointError, match="holds a 'mlp' model"):
        fit(_cfg(tmp_path, "bwn", preset="digits-bwn", init_from=str(tmp_path / "mlp.pt")))


def test_nan_input_and_nan_loss_stop_with_a_clear_error():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.ones(2, 4), torch.tensor([0, 1])
    bad = x.clone()
    bad[0, 1] = float("nan")
    with pytest.raises(ValueError, match="training batch 0: the input holds 1 NaN"):
        train_one_epoch(model, [(bad, y)], opt)
    with pytest.raises(ValueError, match="evaluation batch 0"):
        evaluate(model, [(torch.full((2, 4), float("inf")), y)])
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train_one_epoch(model, [(x, y)], opt)


def test_a_last_step_that_diverges_is_caught_before_anything_is_saved():
    # one batch per epoch and a huge learning rate: the loss of the only batch is finite, the
    # step it takes is not
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    opt = torch.optim.SGD(model.parameters(), lr=1e30)
    x, y = torch.full((2, 4), 1e10), torch.tensor([0, 1])  # gradients ~1e10: the step overflows
    with pytest.raises(FloatingPointError, match=r"1\.weight holds NaN/inf.*learning rate"):
        train_one_epoch(model, [(x, y)], opt)
    # fit() lets the error through before it saves the epoch (as for a NaN loss:
    # tests/test_bad_input_issue25.py), so no run is left with these weights


def test_killed_training_process_resumes_to_the_same_weights(tmp_path):
    """A real SIGKILL of `bsnn train`, then `--resume`."""
    args = [sys.executable, "-m", "bsnn_bindsnet.cli.main", "train", "--preset", "digits-fp",
            "--epochs", "6", "--train-subset", "512", "--seed", "5", "--no-progress"]
    straight = tmp_path / "straight"
    subprocess.run(args + ["--out", str(straight)], check=True, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(args + ["--out", str(killed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = torch.load(killed / "checkpoint.pt", weights_only=True)["epoch"]
    assert 1 <= done < 6, "the run should have been killed before its last epoch"
    subprocess.run(args + ["--out", str(killed), "--resume"], check=True, capture_output=True)
    a, b = _weights(straight), _weights(killed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_every_epoch_records_the_held_out_val_split_beside_test(tmp_path):
    """Selecting an epoch needs an accuracy on images no model trains on: the "val" split
    (120 of digits' 1,437 training images), measured on the saved weights, not the test set."""
    from bsnn_bindsnet.training.models import load_model
    from bsnn_bindsnet.data.registry import load_dataset, make_loader

    cfg = _cfg(tmp_path, epochs=1)
    row = fit(cfg)[0]
    model = load_model(os.path.join(cfg.out_dir, "model.pt"))
    for split, key in (("val", "val_acc"), ("test", "test_acc")):
        data = load_dataset("digits", split)
        acc = evaluate(model, make_loader(data, batch_size=256, shuffle=False)).acc
        assert row[key] == pytest.approx(acc, abs=1e-12), split
    assert len(load_dataset("digits", "val")) == 120
    assert round(row["val_acc"] * 120) == pytest.approx(row["val_acc"] * 120, abs=1e-9)
    assert read_model_file(os.path.join(cfg.out_dir, "model.pt"))["meta"]["val_acc"] == \
        row["val_acc"]
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header.index("val_acc") < header.index("test_acc")


def test_metrics_of_a_run_resumed_from_before_val_was_recorded_keep_every_column(tmp_path):
    from bsnn_bindsnet.training.fit import _write_metrics

    old = {"epoch": 1, "train_acc": 0.5, "test_acc": 0.4}
    new = {"epoch": 2, "train_acc": 0.6, "val_acc": 0.55, "test_acc": 0.5}
    _write_metrics(tmp_path, [old, new])
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows == ["epoch,train_acc,test_acc,val_acc", "1,0.5,0.4,", "2,0.6,0.5,0.55"]


def test_a_direct_run_checkpointed_before_readout_norm_existed_resumes(tmp_path):
    """Direct runs saved before issue 22 had no readout batch-norm and no ``readout_norm``
    in their config; since then the presets default to one. Resuming must rebuild the model
    they trained, not the new default (which would not load their weights)."""
    from bsnn_bindsnet.checkpoint import atomic_save
    from bsnn_bindsnet.training.models import load_model

    out = tmp_path / "run"
    cfg = RunConfig("digits-direct", str(out), epochs=1, train_subset=64, readout_norm=False,
                    progress=False)
    fit(cfg)
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    del state["config"]["readout_norm"], state["config"]["bn_affine"]  # as an older file
    state.pop("sha256", None)
    atomic_save({k: v for k, v in state.items() if not k.startswith("_")},
                out / "checkpoint.pt")
    history = fit(replace(cfg, epochs=2, readout_norm=None), resume=True)
    assert [r["epoch"] for r in history] == [1, 2]
    assert load_model(out / "model.pt").readout_norm is None
