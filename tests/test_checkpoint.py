import os

import pytest
import torch

from bsnn_bindsnet.training.models import get_model
from bsnn_bindsnet.checkpoint import (CheckpointError, atomic_save, load_state_checked,
                                      read_model_file, safe_torch_load, save_model)
from bsnn_bindsnet.training.models import load_model


def test_interrupted_write_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    atomic_save({"epoch": 1}, path)

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"epoch": 2}, path)
    monkeypatch.undo()
    assert safe_torch_load(path, what="a test file") == {"epoch": 1}
    assert os.listdir(tmp_path) == ["checkpoint.pt"]  # no temporary file left behind


def test_saved_files_are_readable_by_others_as_umask_allows(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_save({}, tmp_path / "a.pt")
    finally:
        os.umask(old)
    assert (tmp_path / "a.pt").stat().st_mode & 0o777 == 0o644


def test_model_file_round_trip(tmp_path):
    torch.manual_seed(0)
    model = get_model("vgg_tiny", quant="bwn")
    save_model(model, tmp_path / "model.pt", name="vgg_tiny", model_kwargs={"quant": "bwn"},
               meta={"dataset": "digits"})
    again = load_model(tmp_path / "model.pt")
    x = torch.randn(3, 1, 8, 8)
    assert torch.equal(model.eval()(x), again.eval()(x))
    assert read_model_file(tmp_path / "model.pt")["meta"] == {"dataset": "digits"}


def test_mismatched_checkpoint_names_the_differences():
    small = get_model("vgg_tiny")
    other = get_model("vgg_tiny", channels=(8, 16, 32, 32))
    with pytest.raises(CheckpointError, match=r"conv1.weight: checkpoint \[8, 1, 3, 3\] vs "
                                              r"model \[16, 1, 3, 3\]"):
        load_state_checked(small, other.state_dict(), source="x.pt")
    with pytest.raises(CheckpointError, match="missing keys"):
        load_state_checked(get_model("vgg_tiny", quant="xnor"), small.state_dict(), source="x")


def test_foreign_or_missing_model_file_is_refused(tmp_path):
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a bsnn-bindsnet model file"):
        read_model_file(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="no model file"):
        read_model_file(tmp_path / "none.pt")
