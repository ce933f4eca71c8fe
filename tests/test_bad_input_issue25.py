"""Issue 25, row by row (reliability, round 3): each case gives its message and exit status and
leaves every file as it was. Item 2 (one writer per output) is tests/test_locking.py, item 12
(integrity by format version) and item 6 (Ctrl-C) are in tests/test_bad_input.py; item 5
(import-nir validation) belongs to the NIR issue."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from bsnn_bindsnet.checkpoint import CheckpointError, atomic_save
from bsnn_bindsnet.training.models import load_model
from bsnn_bindsnet.cli.main import main
from bsnn_bindsnet.locking import held
from test_bad_input import network, one_line_error, run, snapshot, two_layer_mlp  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--preset", "digits-fp", "--train-subset", "32", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 2-epoch digits-fp run (32 training images), trained once for the module."""
    from bsnn_bindsnet.training.fit import RunConfig, fit

    out = tmp_path_factory.mktemp("trained") / "r"
    fit(RunConfig("digits-fp", str(out), epochs=2, train_subset=32, progress=False))
    return out


@pytest.fixture
def ref(trained, tmp_path, monkeypatch):
    """A copy of the trained run at ``tmp_path/ref3``, the working directory ``tmp_path``."""
    shutil.copytree(trained, tmp_path / "ref3")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "ref3"


# ------------------------------------------------------------------ 1. experiments


@pytest.fixture
def fake_fit(monkeypatch):
    """Replace fit() by a recorder: which runs an experiment would train, and how."""
    import bsnn_bindsnet.training.fit as fit_module

    calls = []
    monkeypatch.setattr(fit_module, "fit", lambda cfg, **kw: calls.append((cfg, kw)) or [])
    return calls


def test_an_experiment_trains_only_the_missing_run_and_says_so(tmp_path, capsys, fake_fit):
    from experiments.common import trained_models

    users = tmp_path / "myruns" / "digits-fp"
    users.mkdir(parents=True)
    (users / "model.pt").write_text("the user's run")
    before = snapshot(users)
    trained_models("digits", tmp_path / "myruns", smoke=True)
    ((cfg, kw),) = fake_fit  # the FP run is the user's: only the BWN run is trained
    assert (cfg.preset, cfg.out_dir, cfg.init_from) == (
        "digits-bwn", str(tmp_path / "myruns" / "digits-bwn"), str(users / "model.pt"))
    assert kw == {"resume": False}  # never overwrite=True
    assert snapshot(users) == before
    out = capsys.readouterr().out
    assert f"using {users / 'model.pt'}\n" in out
    assert f"training digits-bwn (4 epochs) in {tmp_path / 'myruns' / 'digits-bwn'}\n" in out


def test_an_experiment_resumes_an_interrupted_run_rather_than_replacing_it(tmp_path, capsys,
                                                                           fake_fit):
    from experiments.common import trained_models

    for mode in ("fp", "bwn"):
        (tmp_path / f"digits-{mode}").mkdir()
    (tmp_path / "digits-fp" / "model.pt").write_text("done")
    (tmp_path / "digits-bwn" / "checkpoint.pt").write_text("interrupted")
    trained_models("digits", tmp_path, smoke=True)
    assert [kw for _, kw in fake_fit] == [{"resume": True}]
    assert f"resuming digits-bwn (4 epochs) in {tmp_path / 'digits-bwn'}" in capsys.readouterr().out


def test_an_experiment_never_replaces_results_without_overwrite(tmp_path, fake_fit):
    from experiments import fig7_activation_histogram

    out = tmp_path / "x"
    out.mkdir()
    (out / "results.json").write_text('{"results": "the user\'s"}')
    before = snapshot(tmp_path)
    with pytest.raises(FileExistsError, match=rf"^--out-dir {out} already holds results.json; "
                                              r"pass --overwrite to replace it \(or choose "
                                              r"another --out-dir\)$"):
        fig7_activation_histogram.main(["--smoke", "--out-dir", str(out)])
    assert snapshot(tmp_path) == before and fake_fit == []  # refused before any work
    assert not held(out)


def test_write_results_replaces_only_what_was_allowed(tmp_path):
    from experiments.common import claim_out_dir, write_results

    out = tmp_path / "x"
    out.mkdir()
    (out / "results.json").write_text("an earlier run's")
    with pytest.raises(FileExistsError, match="already holds results.json"):
        write_results(out, {"overwrite": False}, 1)  # an experiment that did not claim first
    assert (out / "results.json").read_text() == "an earlier run's" and not held(out)
    claim_out_dir(out, overwrite=True)  # what --overwrite does, before any work
    assert held(out)
    write_results(out, {"overwrite": True}, 2)
    assert json.loads((out / "results.json").read_text())["results"] == 2 and not held(out)
    write_results(out, {"overwrite": False}, 3)  # the same run may write its results again
    with pytest.raises(FileExistsError, match="already holds results.json"):
        claim_out_dir(out)  # but a new run (without --overwrite) may not


@pytest.mark.slow
def test_the_issue_command_keeps_the_users_run(trained, tmp_path, monkeypatch):
    """``cp -r RUN myruns/digits-fp && fig7 --smoke --runs-dir myruns --out-dir x``."""
    from experiments import fig7_activation_histogram

    monkeypatch.chdir(tmp_path)
    shutil.copytree(trained, tmp_path / "myruns" / "digits-fp")
    before = snapshot(tmp_path / "myruns" / "digits-fp")
    fig7_activation_histogram.main(["--smoke", "--runs-dir", "myruns", "--out-dir", "x"])
    assert snapshot(tmp_path / "myruns" / "digits-fp") == before
    assert (tmp_path / "myruns" / "digits-bwn" / "model.pt").is_file()
    with pytest.raises(FileExistsError, match="already holds results.json"):
        fig7_activation_histogram.main(["--smoke", "--runs-dir", "myruns", "--out-dir", "x"])


# ------------------------------------------------------------------ 3. labels


def test_labels_that_are_not_integers_are_refused():
    from bsnn_bindsnet.simulation.simulate import simulate
    from bsnn_bindsnet.snn.network import build_network
    from bsnn_bindsnet.conversion.convert import ann_to_bsnn

    net = build_network(ann_to_bsnn(two_layer_mlp(), torch.rand(8, 4) + 0.5, build=False))
    x, y = torch.rand(6, 4), torch.tensor([0, 1, 1, 0, 1, 0])
    with pytest.raises(ValueError, match=r"^data: labels must be integer class indices; got "
                                         r"torch.float32 labels such as 0.5 \(6 not whole "
                                         r"numbers\)$"):
        simulate(net, (x, y.float() + 0.5), 8)
    with pytest.raises(ValueError, match="labels must be integer class indices"):
        simulate(net, TensorDataset(x, y.double() / 4), 8)  # a Dataset, checked per batch
    whole = simulate(net, (x, y.float()), 8)  # 0.0 and 1.0 are class indices
    assert whole.accuracy == simulate(net, (x, y), 8).accuracy


# ------------------------------------------------------------------ 4 and 8. resume


@pytest.mark.parametrize("spelling", ["./ref3", "ref3/", "ABS", "ref3/../ref3"])
def test_resume_accepts_the_folder_spelled_any_way(ref, capsys, spelling):
    out = str(ref) if spelling == "ABS" else spelling
    before = snapshot(ref)
    assert main([*TRAIN, "--out", out, "--resume"]) == 0  # --epochs: the run's own (2)
    assert "after 2 epochs" in capsys.readouterr().out
    assert snapshot(ref) == before  # finished: nothing to train, nothing rewritten


def test_a_moved_run_resumes(ref, tmp_path, capsys):
    moved = tmp_path / "elsewhere" / "r"
    moved.parent.mkdir()
    shutil.move(ref, moved)
    assert main([*TRAIN, "--out", str(moved), "--resume", "--epochs", "2"]) == 0
    assert "after 2 epochs" in capsys.readouterr().out


def test_resume_with_fewer_epochs_than_done_is_refused(ref, tmp_path, capsys):
    err = one_line_error(capsys, [*TRAIN, "--out", "ref3", "--resume", "--epochs", "1"],
                         tmp_path)
    assert err.endswith("--epochs 1: ref3/checkpoint.pt has already completed 2 epochs; pass "
                        "--epochs 2 or more to continue it (or leave --epochs out)")
    assert json.loads((ref / "config.json").read_text())["resolved"]["recipe"]["epochs"] == 2


# ------------------------------------------------------------------ 6. a failed first epoch


@pytest.mark.parametrize("flag, value, expected", [
    ("--lr", "nan", "--lr must be a finite number in (0, inf), got nan"),
    ("--lr", "0", "--lr must be a finite number in (0, inf), got 0"),
    ("--betas", "2", "--betas must be a finite number in [0, 1), got 2"),
])
def test_bad_optimizer_numbers_name_their_flag(tmp_path, capsys, flag, value, expected):
    argv = [*TRAIN, "--out", tmp_path / "r", flag, value] + ([value] if flag == "--betas" else [])
    assert one_line_error(capsys, argv, tmp_path).endswith(expected)
    assert not (tmp_path / "r").exists()


def test_fit_refuses_a_nan_learning_rate_before_anything(tmp_path):
    from bsnn_bindsnet.training.fit import RunConfig, fit

    with pytest.raises(ValueError, match=r"^lr must be a finite number > 0, got nan$"):
        fit(RunConfig("digits-fp", str(tmp_path / "r"), lr=float("nan"), progress=False))
    assert list(tmp_path.iterdir()) == []


def test_a_failure_in_the_first_epoch_leaves_nothing(tmp_path, monkeypatch):
    import bsnn_bindsnet.training.fit as fit_module

    def diverge(*args, **kw):
        raise FloatingPointError("training batch 3: the loss is nan; expected a finite loss")

    monkeypatch.setattr(fit_module, "train_one_epoch", diverge)
    with pytest.raises(FloatingPointError, match="the loss is nan"):
        fit_module.fit(fit_module.RunConfig("digits-fp", str(tmp_path / "r"), epochs=1,
                                            train_subset=32, progress=False))
    assert list(tmp_path.iterdir()) == []  # no folder, no config.json, no lock file


def test_ctrl_c_in_the_first_epoch_of_overwrite_keeps_the_old_run(ref, tmp_path, capsys,
                                                                    monkeypatch):
    import bsnn_bindsnet.training.fit as fit_module

    def interrupt(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(fit_module, "train_one_epoch", interrupt)
    before = snapshot(tmp_path)
    assert main([*TRAIN, "--out", "ref3", "--overwrite"]) == 130
    assert capsys.readouterr().err == ("bsnn train: interrupted; no epoch had finished, nothing "
                                       "was written (ref3 is as it was; the same command "
                                       "starts again)\n")
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ 7. --data-root


@pytest.mark.parametrize("command", ["train", "evaluate", "convert", "simulate"])
def test_a_data_root_that_does_not_exist_is_refused(run, network, tmp_path, capsys, command):
    missing = tmp_path / "no-such-folder"
    argv = {"train": [*TRAIN, "--out", tmp_path / "r"], "evaluate": ["evaluate", run],
            "convert": ["convert", run, "--out", tmp_path / "snn.pt"],
            "simulate": ["simulate", network, "--out", tmp_path / "sim"]}[command]
    err = one_line_error(capsys, [*argv, "--data-root", missing], tmp_path)
    hint = " (or add --download to fetch them into it)" if command == "train" else ""
    assert err.endswith(f"--data-root {missing}: no such folder; expected the folder holding "
                        f"the dataset files{hint}")


def test_the_library_refuses_a_missing_data_root_too(tmp_path):
    from bsnn_bindsnet.data.registry import DatasetNotFoundError, load_dataset

    for name in ("digits", "fashion-mnist"):  # fashion-mnist would fall back to /usr/share
        with pytest.raises(DatasetNotFoundError, match=rf"^data_root {tmp_path / 'x'}: no such "
                                                       r"folder"):
            load_dataset(name, "test", data_root=tmp_path / "x")


# ------------------------------------------------------------------ 9. zoo:NAME, outputs first


def test_a_refused_zoo_convert_imports_no_torch_and_leaves_the_cache_alone(tmp_path):
    (tmp_path / "snn.pt").write_text("a user's file")
    code = ("import sys\nfrom bsnn_bindsnet.cli.main import main\n"
            f"rc = main(['convert', 'zoo:digits-bwn', '--out', {str(tmp_path / 'snn.pt')!r}])\n"
            "print(rc, 'torch' in sys.modules)")
    env = {**os.environ, "BSNN_ZOO_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert proc.stdout.split() == ["2", "False"], proc.stderr
    assert proc.stderr.strip() == (f"bsnn convert: error: --out {tmp_path / 'snn.pt'} already "
                                   "exists; pass --overwrite to replace it (or choose another "
                                   "--out)")
    assert sorted(os.listdir(tmp_path)) == ["snn.pt"]  # no cache, no lock file


def test_a_zoo_model_is_written_once_the_checks_pass(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BSNN_ZOO_CACHE", str(tmp_path / "cache"))
    assert main(["evaluate", "zoo:digits-bwn"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["n"] == 360 and row["accuracy"] > 0.9
    assert Path(row["model"]).is_file() and Path(row["model"]).is_relative_to(tmp_path)


# ------------------------------------------------------------------ 10. the zoo's JSON


@pytest.fixture
def zoo_copy(tmp_path, monkeypatch):
    from bsnn_bindsnet.zoo import entries

    shutil.copytree(entries.DATA_DIR, tmp_path / "zoo")
    monkeypatch.setattr(entries, "DATA_DIR", tmp_path / "zoo")
    return tmp_path / "zoo" / "digits-bwn.json"


def _edit(path, **changes):
    record = json.loads(path.read_text())
    record.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del record[key]
    path.write_text(json.dumps(record, indent=2))


@pytest.mark.parametrize("changes", [{"test_correct": 360}, {"description": "edited"},
                                     {"model_kwargs": {"quant": "fp", "num_classes": 10,
                                                       "input_shape": [1, 8, 8]}},
                                     {"sha256": "0" * 64}])
def test_an_edited_zoo_entry_is_refused_naming_it(zoo_copy, tmp_path, capsys, changes):
    _edit(zoo_copy, **changes)
    err = one_line_error(capsys, ["zoo"], tmp_path)
    assert err == (f"bsnn zoo: error: {zoo_copy} was changed after it was packed: its content no "
                   "longer matches its record_sha256; reinstall bsnn-bindsnet (or pack the "
                   "entry again)")
    one_line_error(capsys, ["evaluate", "zoo:digits-bwn"], tmp_path)


def test_a_malformed_or_incomplete_zoo_entry_is_one_line(zoo_copy, tmp_path, capsys):
    text = zoo_copy.read_text()
    zoo_copy.write_text(text[:100])
    err = one_line_error(capsys, ["zoo"], tmp_path)
    assert err.startswith(f"bsnn zoo: error: {zoo_copy} is not a readable zoo entry "
                          "(JSONDecodeError: ")
    zoo_copy.write_text(text)
    _edit(zoo_copy, layout=None)
    err = one_line_error(capsys, ["zoo"], tmp_path)
    assert err.endswith(f"{zoo_copy} is incomplete: no layout; reinstall bsnn-bindsnet (or "
                        "pack the entry again)")


# ------------------------------------------------------------------ 11. unclear messages


def test_a_zip_that_is_not_a_torch_file(run, tmp_path, capsys):
    with zipfile.ZipFile(run, "w") as z:
        z.writestr("notes.txt", "hello")
    err = one_line_error(capsys, ["evaluate", run], tmp_path)
    assert err.endswith(f"{run} cannot be read as a bsnn-bindsnet model file: a zip archive, "
                        "but not one written by torch.save (no data.pkl; it holds 'notes.txt')")


def test_a_zip_whose_entries_are_not_in_a_folder_keeps_torchs_reason(run, tmp_path, capsys):
    with zipfile.ZipFile(run, "w") as z:
        z.writestr("data.pkl", "garbage")
    err = one_line_error(capsys, ["evaluate", run], tmp_path)
    assert err.endswith("RuntimeError: file in archive is not in a subdirectory: data.pkl")


def test_a_hand_made_model_file_with_missing_keys(run, tmp_path, capsys):
    atomic_save({"format": "bsnn-bindsnet/ann-model-v2", "model": "vgg_tiny",
                 "model_kwargs": []}, run)
    err = one_line_error(capsys, ["evaluate", run], tmp_path)
    assert err.endswith(f"{run} is incomplete: no state_dict, meta; model_kwargs is a list, "
                        "expected a dict (expected a model file written by `bsnn train`)")
    with pytest.raises(CheckpointError, match="is incomplete: no state_dict"):
        load_model(run)


def test_a_hand_made_checkpoint_with_missing_keys(ref, tmp_path, capsys):
    atomic_save({"format": "bsnn-bindsnet/train-checkpoint-v2", "epoch": 1},
                ref / "checkpoint.pt")
    err = one_line_error(capsys, [*TRAIN, "--out", "ref3", "--resume"], tmp_path)
    assert err.endswith("ref3/checkpoint.pt is incomplete: no config, model, optimizer, "
                        "history; expected a checkpoint.pt written by `bsnn train`")
