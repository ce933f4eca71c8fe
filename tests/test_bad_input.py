"""Issue 12, row by row: bad files and bad arguments give one line naming what was wrong and
what was expected, and leave every file on disk as it was (hashed before and after)."""

import gzip
import hashlib
import json
import logging
import os
import struct
import subprocess
import sys
import zipfile

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bsnn_bindsnet.training.models import get_model
from bsnn_bindsnet.checkpoint import (CheckpointError, read_model_file, safe_torch_load,
                                      save_model)
from bsnn_bindsnet.training.models import load_model
from bsnn_bindsnet.cli.main import DATASET_NAMES, RUN_FILES, main
from bsnn_bindsnet.conversion.convert import ann_to_bsnn
from bsnn_bindsnet.snn.network import build_network, load_plan, save_plan

CUDA = torch.cuda.is_available()


def snapshot(root) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {os.path.relpath(os.path.join(d, f), root):
            hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
            for d, _, files in os.walk(root) for f in files}


def one_line_error(capsys, argv, root) -> str:
    """Run ``bsnn argv``; it must exit 2, print one line to stderr and change no file."""
    before = snapshot(root)
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"bsnn {argv[0]}: error: "), err
    assert snapshot(root) == before
    return err.strip()


@pytest.fixture
def run(tmp_path):
    """A run folder with a small digits model.pt (vgg_tiny, BWN) and no checkpoint."""
    torch.manual_seed(0)
    path = tmp_path / "run" / "model.pt"
    save_model(get_model("vgg_tiny", quant="bwn"), path, name="vgg_tiny",
               model_kwargs={"quant": "bwn"}, meta={"dataset": "digits"})
    return path


def two_layer_mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


@pytest.fixture
def network(tmp_path):
    """A converted network (plan) file of a 4 -> 3 -> 2 MLP."""
    path = tmp_path / "snn.pt"
    save_plan(ann_to_bsnn(two_layer_mlp(), torch.rand(16, 4) + 0.5, build=False), path)
    return path


def damage_tensor_bytes(path, member: str) -> None:
    """Overwrite 16 bytes inside one tensor's storage in the zip archive; same file size."""
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(member))
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(info.header_offset)
        name_len, extra_len = struct.unpack("<HH", f.read(30)[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len + 8)
        old = f.read(16)
        f.seek(-16, os.SEEK_CUR)
        f.write(bytes(b ^ 0x5A for b in old))
    assert os.path.getsize(path) == size


# ------------------------------------------------------------------ outputs: the overwrite rule

@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_convert_never_writes_over_its_own_input_model(run, tmp_path, capsys, overwrite):
    err = one_line_error(capsys, ["convert", run, "--out", run, *overwrite], tmp_path)
    assert err.endswith(f"--out {run} is the input model; choose another file (the model "
                        "would be replaced by the converted network)")


def test_convert_refuses_an_input_reached_through_a_symlink(run, tmp_path, capsys):
    os.symlink(run, tmp_path / "link.pt")
    err = one_line_error(capsys, ["convert", run, "--out", tmp_path / "link.pt",
                                  "--overwrite"], tmp_path)
    assert "is the input model" in err


def test_convert_refuses_an_existing_out_file_without_overwrite(run, tmp_path, capsys):
    (tmp_path / "snn.pt").write_text("a user's file")
    err = one_line_error(capsys, ["convert", run, "--out", tmp_path / "snn.pt"], tmp_path)
    assert err.endswith(f"--out {tmp_path / 'snn.pt'} already exists; pass --overwrite to "
                        "replace it (or choose another --out)")


def test_convert_out_an_existing_directory(run, tmp_path, capsys):
    err = one_line_error(capsys, ["convert", run, "--out", tmp_path], tmp_path)
    assert err.endswith(f"--out {tmp_path} is a directory; expected a file for the converted "
                        f"network, e.g. {tmp_path / 'snn.pt'}")


def test_simulate_refuses_earlier_results_without_overwrite(network, tmp_path, capsys):
    out = tmp_path / "sim"
    out.mkdir()
    (out / "simulation.json").write_text("{}")
    (out / "accuracy.png").write_bytes(b"png")
    err = one_line_error(capsys, ["simulate", network, "--out", out], tmp_path)
    assert err.endswith(f"--out {out} already holds simulation.json, accuracy.png; pass "
                        "--overwrite to replace them (or choose another --out)")


def test_simulate_out_the_network_file_itself(network, tmp_path, capsys):
    err = one_line_error(capsys, ["simulate", network, "--out", network, "--overwrite"],
                         tmp_path)
    assert err.endswith(f"--out {network} is a file; expected a folder for simulation.json, "
                        "accuracy.csv, accuracy.png")


def test_train_refuses_a_folder_holding_a_model_but_no_checkpoint(run, tmp_path, capsys):
    err = one_line_error(capsys, ["train", "--preset", "digits-fp", "--out", run.parent],
                         tmp_path)
    assert err.endswith(f"{run.parent} already holds model.pt (no checkpoint.pt to resume); "
                        "pass --overwrite to replace them or choose another --out")


def test_fit_refuses_a_folder_holding_a_model_but_no_checkpoint(run):
    from bsnn_bindsnet.training.fit import RunConfig, fit

    before = snapshot(run.parent)
    with pytest.raises(FileExistsError, match=r"already holds model.pt \(no checkpoint.pt"):
        fit(RunConfig(preset="digits-fp", out_dir=str(run.parent), epochs=1, progress=False))
    assert snapshot(run.parent) == before


def test_train_init_from_inside_its_own_out(run, tmp_path, capsys):
    err = one_line_error(capsys, ["train", "--preset", "digits-bwn", "--out", run.parent,
                                  "--init-from", run, "--overwrite"], tmp_path)
    assert err.endswith(f"--init-from {run} is a file of --out {run.parent}, which this run "
                        "rewrites; choose another --out")


def test_cli_run_files_are_the_files_fit_writes():
    from bsnn_bindsnet.training.fit import RUN_FILES as FIT_RUN_FILES
    from bsnn_bindsnet.data.registry import DATASETS

    assert RUN_FILES == FIT_RUN_FILES and DATASET_NAMES == tuple(DATASETS)


# ------------------------------------------------------------------ arguments, before any import

@pytest.mark.parametrize("argv, message", [
    (["simulate", "{net}", "--out", "{tmp}/s", "--limit", "0"],
     "--limit must be >= 1 (omit it for the whole set), got 0"),
    (["simulate", "{net}", "--out", "{tmp}/s", "--limit", "-5"],
     "--limit must be >= 1 (omit it for the whole set), got -5"),
    (["simulate", "{net}", "--out", "{tmp}/s", "--timesteps", "0"],
     "--timesteps must be >= 1, got 0"),
    (["simulate", "{net}", "--out", "{tmp}/s", "--dataset", "cifar10"],
     "--dataset 'cifar10' is unknown; expected one of digits, fashion-mnist, mnist, "
     "cifar100, imagenet"),
    (["convert", "{model}", "--out", "{tmp}/x.pt", "--percentile", "0"],
     "--percentile must be in (0, 100] (100 = the max), got 0"),
    (["convert", "{model}", "--out", "{tmp}/x.pt", "--percentile", "100.5"],
     "--percentile must be in (0, 100] (100 = the max), got 100.5"),
    (["convert", "{model}", "--out", "{tmp}/x.pt", "--dataset", "cifar10"],
     "--dataset 'cifar10' is unknown"),
    (["evaluate", "{model}", "--dataset", "cifar10"], "--dataset 'cifar10' is unknown"),
    (["train", "--preset", "digits-fp", "--out", "{tmp}/r", "--epochs", "0"],
     "--epochs must be >= 1, got 0"),
    (["train", "--preset", "fmnist-fp", "--out", "{tmp}/r", "--dataset", "cifar10"],
     "--dataset 'cifar10' is unknown; expected one of digits, fashion-mnist, mnist, "
     "cifar100, imagenet"),
    (["train", "--preset", "digits-fp", "--out", "{tmp}/r", "--resume"],
     "--resume: no checkpoint at {tmp}/r/checkpoint.pt"),
])
def test_argument_errors_come_before_torch_is_imported(run, network, tmp_path, argv, message):
    names = {"net": network, "model": run, "tmp": tmp_path}
    argv = [a.format(**names) for a in argv]
    code = ("import sys\nfrom bsnn_bindsnet.cli.main import main\n"
            f"status = main({argv!r})\n"
            "print(status, [m for m in ('torch', 'bindsnet') if m in sys.modules])")
    before = snapshot(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "2 []"
    assert out.stderr.startswith(f"bsnn {argv[0]}: error: {message.format(**names)}")
    assert out.stderr.count("\n") == 1, out.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(CUDA, reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", ["convert", "simulate", "evaluate"])
def test_device_cuda_without_a_gpu(run, network, tmp_path, capsys, command):
    argv = {"convert": ["convert", run, "--out", tmp_path / "x.pt"],
            "simulate": ["simulate", network, "--out", tmp_path / "sim"],
            "evaluate": ["evaluate", run]}[command]
    err = one_line_error(capsys, [*argv, "--device", "cuda"], tmp_path)
    assert err.endswith("--device 'cuda': CUDA is not available on this machine; use "
                        "--device cpu")


def test_device_that_is_no_device(run, tmp_path, capsys):
    err = one_line_error(capsys, ["evaluate", run, "--device", "gpu"], tmp_path)
    assert err.endswith("--device 'gpu' is not a device; expected cpu, cuda, cuda:N or auto")


# ------------------------------------------------------------------ files that are not ours

@pytest.mark.parametrize("content, begins", [
    (b'{"layers": []}\n', "b'{\"layers\": []}\\n'"),
    (bytes(range(200, 216)) * 4, repr(bytes(range(200, 216)))),
])
def test_a_non_torch_file_as_a_network_is_one_line(tmp_path, capsys, content, begins):
    path = tmp_path / "net.pt"
    path.write_bytes(content)
    err = one_line_error(capsys, ["simulate", path, "--out", tmp_path / "sim"], tmp_path)
    assert err.endswith(f"{path} cannot be read as a converted bsnn-bindsnet network: not a "
                        f"file written by torch.save (it begins {begins})")


def test_a_truncated_model_is_one_line(run, tmp_path, capsys):
    run.write_bytes(run.read_bytes()[:300])
    err = one_line_error(capsys, ["evaluate", run], tmp_path)
    assert err.endswith(f"{run} cannot be read as a bsnn-bindsnet model file: RuntimeError: "
                        "PytorchStreamReader failed reading zip archive: failed finding "
                        "central directory")


# ------------------------------------------------------------------ integrity

def test_bytes_changed_inside_a_weight_are_refused_everywhere(run, tmp_path, capsys):
    damage_tensor_bytes(run, "data/2")  # the third tensor of the state dict: conv3.weight
    expected = (f"{run} is damaged: state_dict.conv3.weight no longer matches the SHA-256 "
                "recorded when the file was written; restore the file or write it again")
    for argv in (["evaluate", run], ["convert", run, "--out", tmp_path / "snn.pt"],
                 ["train", "--preset", "digits-bwn", "--out", tmp_path / "bwn",
                  "--init-from", run]):
        assert one_line_error(capsys, argv, tmp_path).endswith(expected)
    with pytest.raises(CheckpointError, match="state_dict.conv3.weight no longer matches"):
        load_model(run)


def test_a_weight_edited_without_its_hash_is_refused(run):
    blob = torch.load(run, weights_only=True)  # the raw dict, hashes included
    blob["state_dict"]["fc1.weight"][0, 0] += 1.0
    torch.save(blob, run)
    with pytest.raises(CheckpointError, match=r"is damaged: state_dict.fc1.weight no longer"):
        read_model_file(run)


def test_edited_metadata_is_refused(run):
    blob = torch.load(run, weights_only=True)
    blob["meta"]["dataset"] = "mnist"
    torch.save(blob, run)
    with pytest.raises(CheckpointError, match=r"is damaged: meta no longer matches"):
        read_model_file(run)


def test_a_damaged_converted_network_is_refused(network, tmp_path, capsys):
    damage_tensor_bytes(network, "data/0")
    err = one_line_error(capsys, ["simulate", network, "--out", tmp_path / "sim",
                                  "--dataset", "digits"], tmp_path)
    assert f"{network} is damaged: layers.0.synapse.weight no longer matches" in err


def test_non_finite_weights_are_refused_even_in_an_unhashed_file(run):
    blob = torch.load(run, weights_only=True)
    del blob["_integrity"]
    blob["format"] = "bsnn-bindsnet/ann-model-v1"  # a file of the version before hashes
    blob["state_dict"]["fc1.weight"][1, :3] = float("nan")
    torch.save(blob, run)
    with pytest.raises(CheckpointError, match=r"state_dict.fc1.weight holds 3 NaN/inf values; "
                                              r"expected finite weights"):
        load_model(run)


def test_a_file_written_before_hashes_loads_with_a_note(run, caplog):
    blob = torch.load(run, weights_only=True)
    del blob["_integrity"]
    blob["format"] = "bsnn-bindsnet/ann-model-v1"  # the only version that may lack hashes
    torch.save(blob, run)
    with caplog.at_level(logging.WARNING, logger="bsnn_bindsnet.checkpoint"):
        model = load_model(run)
    assert isinstance(model, nn.Module)
    assert f"{run} records no content hash (format bsnn-bindsnet/ann-model-v1, which may " \
           "predate integrity checks); loaded unchecked" in caplog.text


def test_a_current_file_whose_integrity_record_was_removed_is_refused(run, tmp_path, capsys):
    """Issue 25, item 12: integrity is decided by format version, not by the record."""
    blob = torch.load(run, weights_only=True)
    assert blob["format"] == "bsnn-bindsnet/ann-model-v2"
    del blob["_integrity"]
    torch.save(blob, run)
    err = one_line_error(capsys, ["evaluate", run], tmp_path)
    assert err.endswith(f"{run} is damaged: its integrity record was removed (format "
                        "'bsnn-bindsnet/ann-model-v2' is always written with one); restore the "
                        "file or write it again")


def test_hashes_are_invisible_to_readers(run, network):
    assert "_integrity" not in read_model_file(run)
    assert "_integrity" not in safe_torch_load(network, what="a network")
    assert "_integrity" in torch.load(run, weights_only=True)  # but stored in the file
    load_plan(network)


# ------------------------------------------------------------------ API inputs

def test_a_dataloader_given_to_simulate_or_ann_to_bsnn():
    data = TensorDataset(torch.rand(8, 4), torch.zeros(8, dtype=torch.long))
    loader = DataLoader(data, batch_size=4)
    from bsnn_bindsnet.simulation.simulate import simulate  # a DataLoader is accepted: batches as they come

    net = build_network(ann_to_bsnn(two_layer_mlp(), torch.rand(16, 4) + 0.5, build=False))
    assert simulate(net, loader, 4).n == 8
    with pytest.raises(TypeError, match=r"^data is a dict; expected a Dataset"):
        simulate(net, {"x": torch.rand(8, 4)}, 4)
    # calibration accepts a DataLoader (issue 13): the same plan as its samples as a tensor
    calib = torch.rand(8, 4) + 0.5
    by_loader = ann_to_bsnn(two_layer_mlp(), DataLoader(TensorDataset(calib), batch_size=3),
                            build=False)
    by_tensor = ann_to_bsnn(two_layer_mlp(), calib, build=False)
    assert [l.thresh for l in by_loader.layers] == [l.thresh for l in by_tensor.layers]
    with pytest.raises(TypeError, match=r"^calibration is a str; expected a Dataset"):
        ann_to_bsnn(two_layer_mlp(), "train.pt")


def test_an_all_zero_calibration_set_is_an_error():
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"^no layer is active on the calibration data "
                                         r"\(8 samples; every activation of \['1'\] is 0\)"):
        ann_to_bsnn(model, torch.zeros(8, 4))


def test_labels_outside_the_classes_in_simulate():
    from bsnn_bindsnet.simulation.simulate import simulate

    net = build_network(ann_to_bsnn(two_layer_mlp(), torch.rand(8, 4) + 0.5, build=False))
    with pytest.raises(ValueError, match=r"^label 2 is outside \[0, 2\) \(the readout has 2 "
                                         r"neurons\)"):
        simulate(net, (torch.rand(3, 4), torch.tensor([0, 2, 1])), 4)
    with pytest.raises(ValueError, match=r"^label -1 is outside \[0, 2\)"):
        simulate(net, (torch.rand(3, 4), torch.tensor([0, 1, -1])), 4)


def _idx(path, magic: int, dims: tuple[int, ...], data: bytes) -> None:
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + data)


def test_labels_outside_the_classes_in_a_dataset_file(tmp_path):
    from bsnn_bindsnet.data.registry import load_dataset

    for prefix in ("train", "t10k"):  # 3 images of 28 x 28; one label 10 of 10 classes
        _idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", 0x803, (3, 28, 28), bytes(3 * 784))
        _idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", 0x801, (3,), bytes([1, 10, 3]))
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match=rf"^mnist: {tmp_path} holds label 10 \(1 labels in "
                                         r"all\) outside \[0, 10\); expected class indices"):
        load_dataset("mnist", "test", data_root=tmp_path)
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------ Ctrl-C

@pytest.mark.parametrize("stop_at, hint", [
    (0, "; no epoch had finished, nothing was written ({out} is as it was; the same "
        "command starts again)"),
    (1, "; epoch 1 is saved in {out} (--resume continues from it)"),
])
def test_ctrl_c_says_what_was_saved(tmp_path, capsys, monkeypatch, stop_at, hint):
    import bsnn_bindsnet.training.fit as fit_module

    calls = []
    real = fit_module.train_one_epoch

    def train_then_interrupt(*args, **kw):
        calls.append(1)
        if len(calls) > stop_at:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(fit_module, "train_one_epoch", train_then_interrupt)
    out = tmp_path / "run"
    assert main(["train", "--preset", "digits-fp", "--out", str(out), "--epochs", "3",
                 "--train-subset", "64", "--no-progress"]) == 130
    err = capsys.readouterr().err
    assert err == f"bsnn train: interrupted{hint.format(out=out)}\n"
    assert (out / "checkpoint.pt").exists() == (stop_at > 0)
    assert out.exists() == (stop_at > 0)  # issue 25, item 6: no config.json left behind
    if stop_at:
        assert json.loads((out / "metrics.json").read_text())[-1]["epoch"] == 1
