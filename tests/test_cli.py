import json
import subprocess
import sys

import pytest

from bsnn_bindsnet.cli.main import main


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["convert", "--help"],
                                  ["simulate", "--help"]])
def test_help_imports_neither_torch_nor_bindsnet_nor_matplotlib(argv):
    code = ("import sys\nimport bsnn_bindsnet\nfrom bsnn_bindsnet.cli.main import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('torch', 'bindsnet', 'gymnasium', 'matplotlib', 'cv2') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_simulate_offers_every_encoding_of_the_library():
    from bsnn_bindsnet.cli.main import build_parser
    from bsnn_bindsnet.snn.encoding import ENCODINGS

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    enc = next(a for a in sub.choices["simulate"]._actions if a.dest == "encoding")
    assert tuple(enc.choices) == ENCODINGS and enc.default is None


def test_convert_offers_the_choices_of_the_library():
    # cli.py spells the choices out (no torch import for --help): they must match convert's.
    from bsnn_bindsnet.cli.main import build_parser
    from bsnn_bindsnet.conversion.convert import MAXPOOL_AFTER, RESETS, V_INITS

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    actions = {a.dest: a for a in sub.choices["convert"]._actions}
    assert tuple(actions["maxpool_after"].choices) == MAXPOOL_AFTER
    assert actions["maxpool_after"].default == "or"
    assert tuple(actions["reset"].choices) == RESETS
    assert tuple(actions["v_init"].choices) == V_INITS
    with pytest.raises(SystemExit):
        build_parser().parse_args(["convert", "m.pt", "--out", "x.pt", "--maxpool-after", "avg"])


def test_package_attribute_is_lazy():
    import bsnn_bindsnet

    assert bsnn_bindsnet.sign_nonzero.__module__ == "bsnn_bindsnet.snn.functional"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        bsnn_bindsnet.nope  # noqa: B018


def test_unknown_preset_is_a_one_line_error_listing_the_choices(tmp_path, capsys):
    assert main(["train", "--preset", "cifar10-fp", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "unknown preset 'cifar10-fp'" in err and "fmnist-fp" in err


def test_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--preset", "digits-fp", "--out", str(out), "--epochs", "1",
                 "--train-subset", "128", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "epoch 1: lr 0.1" in printed and "digits-fp: test accuracy" in printed
    assert main(["evaluate", str(out / "model.pt")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dataset"] == "digits" and result["n"] == 360
    logged = json.loads((out / "metrics.json").read_text())[0]["test_acc"]
    assert result["accuracy"] == pytest.approx(logged)


def test_missing_model_file_is_reported(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "none.pt")]) == 2
    assert "no model file" in capsys.readouterr().err


def test_presets_lists_the_paper_recipes(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "cifar100-fp" in out and "imagenet-bwn" in out


def test_convert_then_simulate_writes_the_curve_and_records_the_mode(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "digits-bwn", "--quant", "bwn", "--out", str(run),
                 "--epochs", "1", "--train-subset", "128", "--no-progress",
                 "--init-from", _fp_model(tmp_path)]) == 0
    net = tmp_path / "snn.pt"
    capsys.readouterr()
    assert main(["convert", str(run / "model.pt"), "--out", str(net), "--percentile", "99"]) == 0
    converted = json.loads(capsys.readouterr().out)
    assert set(converted["thresholds"]) == {"relu1", "relu2", "relu3", "relu4", "relu_fc1"}
    assert converted["layers"][-1] == "readout" and 0 <= converted["ann_test_acc"] <= 1
    for mode in ("one-step", "delayed"):
        out = tmp_path / mode
        assert main(["simulate", str(net), "--timesteps", "6", "--limit", "20", "--mode", mode,
                     "--out", str(out), "--no-progress"]) == 0
        summary = json.loads((out / "simulation.json").read_text())
        assert summary["mode"] == mode and summary["n"] == 20
        assert len(summary["accuracy"]) == 6 and summary["conversion"]["percentile"] == 99
        assert (out / "accuracy.csv").read_text().startswith("timestep,snn\n1,")
        assert (out / "accuracy.png").stat().st_size > 5_000


def test_convert_refuses_a_training_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    main(["train", "--preset", "digits-fp", "--out", str(run), "--epochs", "1",
          "--train-subset", "64", "--no-progress"])
    capsys.readouterr()
    assert main(["convert", str(run / "checkpoint.pt"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "not a bsnn-bindsnet model file" in capsys.readouterr().err


def _fp_model(tmp_path):
    fp = tmp_path / "fp"
    main(["train", "--preset", "digits-fp", "--out", str(fp), "--epochs", "1",
          "--train-subset", "128", "--no-progress"])
    return str(fp / "model.pt")


def test_direct_route_train_convert_simulate(tmp_path, capsys):
    run, net = tmp_path / "direct", tmp_path / "direct.pt"
    assert main(["train", "--preset", "digits-direct", "--route", "direct", "--out", str(run),
                 "--epochs", "1", "--train-subset", "128", "--no-progress"]) == 0
    assert main(["convert", str(run / "model.pt"), "--out", str(net)]) == 0
    printed = json.loads(capsys.readouterr().out.split("digits-direct: test accuracy")[1]
                         .split("\n", 1)[1])
    assert printed["layers"][-1] == "readout" and len(printed["thresholds"]["block2"]) == 16
    # no --encoding: the model's own Poisson coding, recorded at conversion
    assert main(["simulate", str(net), "--timesteps", "8", "--limit", "32", "--out", str(tmp_path / "sim"), "--no-progress"]) == 0
    sim = json.loads((tmp_path / "sim" / "simulation.json").read_text())
    assert sim["encoding"] == "poisson-intensity" and sim["conversion"]["route"] == "direct"


def test_train_offers_every_input_coding_of_the_direct_model():
    from bsnn_bindsnet.cli.main import build_parser
    from bsnn_bindsnet.direct.model import CODINGS

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    coding = next(a for a in sub.choices["train"]._actions if a.dest == "coding")
    assert tuple(coding.choices) == CODINGS and coding.default is None


def test_direct_route_options_reach_the_model_and_the_simulation(tmp_path, capsys):
    from bsnn_bindsnet.checkpoint import read_model_file

    run, net = tmp_path / "direct", tmp_path / "direct.pt"
    assert main(["train", "--preset", "digits-direct", "--out", str(run), "--epochs", "1",
                 "--train-subset", "64", "--no-progress", "--blocks", "c8", "c8", "c8r",
                 "f16", "--coding", "current", "--v-init", "half",
                 "--residual-factor", "0.5"]) == 0
    kwargs = read_model_file(run / "model.pt")["model_kwargs"]
    assert (tuple(kwargs["blocks"]), kwargs["coding"], kwargs["v_init"],
            kwargs["residual_factor"]) == (("c8", "c8", "c8r", "f16"), "current", "half", 0.5)
    assert main(["convert", str(run / "model.pt"), "--out", str(net)]) == 0
    assert main(["simulate", str(net), "--timesteps", "8", "--limit", "16", "--out",
                 str(tmp_path / "sim"), "--no-progress"]) == 0
    sim = json.loads((tmp_path / "sim" / "simulation.json").read_text())
    assert sim["encoding"] == "current" and sim["conversion"]["blocks"] == ["c8", "c8", "c8r",
                                                                             "f16"]
    capsys.readouterr()


def test_direct_route_options_are_refused_for_an_ann_preset(tmp_path, capsys):
    assert main(["train", "--preset", "digits-fp", "--out", str(tmp_path / "r"),
                 "--coding", "current", "--v-init", "half"]) == 2
    err = capsys.readouterr().err
    assert "--coding, --v-init: options of a direct-route preset" in err
    assert "'digits-fp' trains an ANN" in err and not (tmp_path / "r").exists()


def _mnist_idx(directory, n_train=8, n_test=4):
    """The four MNIST IDX files, written with the package's own writer: random 28x28 images."""
    import torch

    from bsnn_bindsnet.data.formats import write_idx

    gen = torch.Generator().manual_seed(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=gen),
                  directory / f"{prefix}-images-idx3-ubyte")
        write_idx((torch.arange(n) % 10).to(torch.uint8),
                  directory / f"{prefix}-labels-idx1-ubyte")
    return directory


@pytest.mark.parametrize("argv", [["--preset", "mnist-fp"],
                                  ["--preset", "fmnist-fp", "--dataset", "mnist"]])
def test_mnist_trains_the_fashion_mnist_recipe_from_idx_files(tmp_path, capsys, argv):
    from bsnn_bindsnet.checkpoint import read_model_file
    from bsnn_bindsnet.training.recipes import get_preset

    data = _mnist_idx(tmp_path / "idx")
    out = tmp_path / "run"
    assert main(["train", *argv, "--data-root", str(data), "--epochs", "1", "--out", str(out),
                 "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    resolved, fmnist = config["resolved"], get_preset("fmnist-fp")
    assert resolved["dataset"] == "mnist" and resolved["model"] == fmnist.model == "vgg_small"
    assert resolved["recipe"]["lr"] == fmnist.recipe.lr and resolved["quant"] == "fp"
    assert config["dataset"] == ("mnist" if "--dataset" in argv else None)
    blob = read_model_file(out / "model.pt")
    assert blob["meta"]["dataset"] == "mnist"
    assert json.loads((out / "metrics.json").read_text())[0]["epoch"] == 1
    assert main(["evaluate", str(out / "model.pt"), "--data-root", str(data)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n"] == 4


def test_every_registered_dataset_with_a_family_has_presets_and_mnist_copies_fmnist():
    from bsnn_bindsnet.data.registry import DATASETS
    from bsnn_bindsnet.training.recipes import PRESETS

    for info in DATASETS.values():
        assert PRESETS[f"{info.prefix}-fp"].dataset == info.name
    assert "mnist-direct" not in PRESETS  # direct training on MNIST: fmnist-direct --dataset
    for mode in ("fp", "bwn", "bwn-scratch", "xnor"):
        a, b = PRESETS[f"mnist-{mode}"], PRESETS[f"fmnist-{mode}"]
        assert (a.model, a.quant, a.recipe, a.model_kwargs, a.route, a.hybrid) == (
            b.model, b.quant, b.recipe, b.model_kwargs, b.route, b.hybrid)
        assert (a.dataset, b.dataset) == ("mnist", "fashion-mnist")
