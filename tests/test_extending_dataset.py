"""Issue 13 (c): a new dataset plugs in with code that lives only here plus two registration
calls, then trains, converts and simulates through the public API and the ``bsnn`` commands.

The code between the ``docs`` markers is the walk-through of ``docs/extending.md``.
"""

import json

import pytest
import torch

from bsnn_bindsnet.cli.main import main
from bsnn_bindsnet.data.registry import DATASETS, load_dataset, unregister_dataset
from bsnn_bindsnet.training.recipes import FAMILIES, PRESETS

# --- docs: a new dataset ------------------------------------------------------------------
from bsnn_bindsnet.data.registry import DatasetInfo, register_dataset, tensor_dataset
from bsnn_bindsnet.training.recipes import PresetFamily, Recipe, register_family


def load_bars(info, split, *, data_root=None, download=False, augment=False, calib_size):
    """8x8 images with one bright bar on dim noise: class 0 horizontal, class 1 vertical."""
    gen = torch.Generator().manual_seed(1 if split == "test" else 0)  # calib: from train
    n = 200 if split == "test" else 600
    y = torch.randint(0, 2, (n,), generator=gen)
    bar = torch.arange(8) == torch.randint(1, 7, (n, 1), generator=gen)        # [n, 8]
    rows = bar.view(n, 1, 8, 1).expand(n, 1, 8, 8)
    cols = bar.view(n, 1, 1, 8).expand(n, 1, 8, 8)
    x = torch.where((y == 0).view(n, 1, 1, 1), rows, cols).float()
    x = torch.maximum(x, 0.2 * torch.rand(n, 1, 8, 8, generator=gen))            # [0, 1]
    return tensor_dataset(info, x, y, split, calib_size)  # normalizes, cuts the calib split


QUICK = Recipe("adam", 1e-3, batch_size=32, epochs=1)
BARS = DatasetInfo("bars", input_shape=(1, 8, 8), n_classes=2, mean=(0.21,), std=(0.30,),
                   calib_size=128, loader=load_bars, family="quick-mlp")
# --- end docs -------------------------------------------------------------------------------


@pytest.fixture
def bars():
    # --- docs: registration -----------------------------------------------------------------
    register_family("quick-mlp", PresetFamily("mlp", fp=QUICK, bwn=QUICK, scratch=QUICK,
                                              where="CPU, seconds"))
    register_dataset(BARS)   # presets bars-fp, bars-bwn, bars-bwn-scratch, bars-xnor
    # --- end docs ---------------------------------------------------------------------------
    try:
        yield BARS
    finally:
        unregister_dataset("bars")
        del FAMILIES["quick-mlp"]


def test_the_dataset_loads_normalized_with_its_calib_split(bars):
    train, val, calib, test = (load_dataset("bars", s) for s in ("train", "val", "calib", "test"))
    assert (len(train), len(val), len(calib), len(test)) == (550, 50, 128, 200)  # val: 600 / 12
    x, y = train.tensors
    assert x.shape == (550, 1, 8, 8) and x.dtype == torch.float32 and set(y.tolist()) == {0, 1}
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05  # mean/std fit
    assert calib.tensors[0].shape == (128, 1, 8, 8)
    assert {"bars-fp", "bars-bwn", "bars-bwn-scratch", "bars-xnor"} <= set(PRESETS)
    assert PRESETS["bars-fp"].model == "mlp" and PRESETS["bars-fp"].recipe == QUICK


def test_train_binarize_convert_simulate(bars, tmp_path, capsys):
    from bsnn_bindsnet.training.fit import RunConfig, fit

    fp, bwn = tmp_path / "bars-fp", tmp_path / "bars-bwn"
    # --- docs: train, binarize, convert, simulate -------------------------------------------
    fit(RunConfig(preset="bars-fp", out_dir=str(fp), progress=False))
    assert main(["train", "--preset", "bars-bwn", "--init-from", str(fp / "model.pt"),
                 "--out", str(bwn), "--no-progress"]) == 0
    assert main(["convert", str(bwn / "model.pt"), "--out", str(tmp_path / "snn.pt")]) == 0
    assert main(["simulate", str(tmp_path / "snn.pt"), "--timesteps", "16",
                 "--out", str(tmp_path / "sim"), "--no-progress"]) == 0
    # --- end docs ---------------------------------------------------------------------------
    config = json.loads((bwn / "config.json").read_text())
    assert config["resolved"]["dataset"] == "bars" and config["resolved"]["quant"] == "bwn"
    assert config["resolved"]["model"] == "mlp"
    metrics = json.loads((bwn / "metrics.json").read_text())
    assert len(metrics) == 1 and metrics[0]["test_acc"] > 0.9       # chance is 0.5
    sim = json.loads((tmp_path / "sim" / "simulation.json").read_text())
    assert sim["dataset"] == "bars" and sim["conversion"]["dataset"] == "bars"
    assert sim["n"] == 200 and sim["final_accuracy"] > 0.9


def test_dataset_override_trains_another_recipe_on_it(bars, tmp_path):
    """``--dataset`` puts a registered dataset under any preset; the run records it."""
    out = tmp_path / "run"
    assert main(["train", "--preset", "digits-fp", "--dataset", "bars", "--epochs", "1",
                 "--train-subset", "64", "--out", str(out), "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"] == "bars" and config["resolved"]["dataset"] == "bars"
    assert config["resolved"]["model"] == "vgg_tiny"


def test_registration_is_checked():
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(DATASETS["digits"])
    with pytest.raises(ValueError, match="a loader is required"):
        register_dataset(DatasetInfo("noloader", (1, 8, 8), 2, (0.5,), (0.5,)))
    with pytest.raises(ValueError, match="one value per channel"):
        DatasetInfo("rgb", (3, 8, 8), 2, (0.5,), (0.5,), loader=load_bars)
    with pytest.raises(ValueError, match="prefix 'fmnist' is the prefix of 'fashion-mnist'"):
        register_dataset(DatasetInfo("fm2", (1, 28, 28), 10, (0.5,), (0.5,), loader=load_bars,
                                     prefix="fmnist"))
    assert "noloader" not in DATASETS and "fm2" not in DATASETS
