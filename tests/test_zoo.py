"""The model zoo: exact packing, refused damage, and every shipped claim measured again."""

import argparse
import hashlib
import json

import pytest
import torch

from bsnn_bindsnet.zoo import entries
from bsnn_bindsnet.zoo import registry as zoo
from bsnn_bindsnet.ann.binarize import binary_layers
from bsnn_bindsnet.training.models import get_model
from bsnn_bindsnet.checkpoint import read_model_file, save_model
from bsnn_bindsnet.training.models import load_model
from bsnn_bindsnet.cli.zoo import (add_zoo_parser, resolve_model_argument,
                                   resolve_zoo_arguments, run_zoo)
from bsnn_bindsnet.data.registry import DatasetNotFoundError, load_dataset

SHIPPED = [e.name for e in zoo.list_models()]


def _bwn_model(seed: int = 0):
    torch.manual_seed(seed)
    return get_model("vgg_tiny", quant="bwn", input_shape=(1, 8, 8), num_classes=10).eval()


def test_pack_round_trip_is_exact():
    model = _bwn_model()
    arrays, layout = zoo.pack_state(model)
    state = zoo.unpack_state(arrays, layout)
    loaded = get_model("vgg_tiny", quant="bwn", input_shape=(1, 8, 8), num_classes=10)
    loaded.load_state_dict(state)
    binary = dict(binary_layers(model))
    assert set(binary) == {"conv2", "conv3", "conv4", "fc1"}
    for name, layer in binary_layers(loaded):  # alpha * sign, bit for bit
        assert torch.equal(layer.binary_weight(), binary[name].binary_weight()), name
        assert layout[f"{name}.weight"]["kind"] == "binary"
    original = model.state_dict()
    for key in ("conv1.weight", "fc2.weight"):  # full precision: float16, widened again
        assert layout[key]["kind"] == "float16" and state[key].dtype == torch.float32
        assert torch.equal(state[key], original[key].half().float())
    x = torch.randn(5, 1, 8, 8)
    reference = get_model("vgg_tiny", quant="bwn", input_shape=(1, 8, 8), num_classes=10)
    reference.load_state_dict({**original, "conv1.weight": state["conv1.weight"],
                               "fc2.weight": state["fc2.weight"]})
    assert torch.equal(loaded.eval()(x), reference.eval()(x))


def test_packed_bits_are_one_per_weight():
    model = _bwn_model()
    arrays, layout = zoo.pack_state(model)
    fc1 = model.fc1.weight
    assert arrays["fc1.weight.bits"].nbytes == -(-fc1.numel() // 8)
    assert arrays["fc1.weight.alpha"].shape == (fc1.shape[0],)
    bits = torch.from_numpy(arrays["fc1.weight.bits"][:1]).item()  # first 8 signs, MSB first
    signs = (fc1.detach().reshape(-1)[:8] >= 0).tolist()
    assert [bool(bits >> (7 - i) & 1) for i in range(8)] == signs


@pytest.fixture
def packed(tmp_path, monkeypatch):
    """A digits entry packed into a temporary zoo directory."""
    model = _bwn_model(1)
    path = save_model(model, tmp_path / "run" / "model.pt", name="vgg_tiny",
                      model_kwargs={"quant": "bwn", "input_shape": [1, 8, 8],
                                    "num_classes": 10}, meta={"dataset": "digits"})
    monkeypatch.setattr(entries, "DATA_DIR", tmp_path / "zoo")
    e = zoo.pack(path, "tiny", description="test", train_commands=["bsnn train ..."],
                 commit="abc1234", out_dir=tmp_path / "zoo", subset_size=100)
    return e, model


def test_pack_records_what_ships(packed):
    e, model = packed
    assert zoo.entry("tiny") == e and [x.name for x in zoo.list_models()] == ["tiny"]
    assert (e.test_n, e.subset_n, e.commit) == (360, 100, "abc1234")
    data = e.weights_file.read_bytes()
    assert e.sha256 == hashlib.sha256(data).hexdigest() and e.size_bytes == len(data)
    shipped = zoo.load("tiny")
    assert not shipped.training
    assert zoo.measure_accuracy(shipped, "digits") == (e.test_correct, 360)
    assert zoo.measure_accuracy(shipped, "digits", limit=100) == (e.subset_correct, 100)
    record = json.loads(e.weights_file.with_suffix(".json").read_text())  # val: 120 held out
    assert zoo.measure_accuracy(shipped, "digits", split="val") == (record["val_correct"], 120)


def test_damaged_file_is_refused(packed):
    e, _ = packed
    data = bytearray(e.weights_file.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    e.weights_file.write_bytes(bytes(data))
    with pytest.raises(zoo.ZooError, match=r"tiny\.npz is damaged"):
        zoo.load("tiny")


def test_unknown_name_lists_the_zoo(packed):
    with pytest.raises(zoo.ZooError, match="no zoo model called 'nope'; the zoo has: tiny"):
        zoo.load("nope")
    with pytest.raises(zoo.ZooError, match="no zoo model"):
        zoo.entry("../tiny")


def test_zoo_argument_resolves_to_a_model_file(packed, tmp_path, monkeypatch):
    e, _ = packed
    monkeypatch.setenv("BSNN_ZOO_CACHE", str(tmp_path / "cache"))
    assert resolve_model_argument("runs/x/model.pt") == "runs/x/model.pt"
    path = resolve_model_argument("zoo:tiny")
    assert path == tmp_path / "cache" / f"tiny-{e.sha256[:12]}" / "model.pt"
    blob = read_model_file(path)
    assert blob["model"] == "vgg_tiny" and blob["meta"]["dataset"] == "digits"
    assert blob["meta"]["zoo_sha256"] == e.sha256
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(load_model(path).eval()(x), zoo.load("tiny")(x))
    args = argparse.Namespace(model="zoo:tiny", init_from=None, out="snn.pt")
    resolve_zoo_arguments(args)
    assert args.model == str(path) and args.out == "snn.pt"


def test_bsnn_zoo_lists_entries(packed, capsys):
    e, _ = packed
    parser = argparse.ArgumentParser(prog="bsnn")
    add_zoo_parser(parser.add_subparsers(dest="command"))
    assert run_zoo(parser.parse_args(["zoo"])) == 0
    out = capsys.readouterr().out
    assert "zoo:tiny" in out and "bsnn train ..." in out and "abc1234" in out
    assert f"{100 * e.test_accuracy:.2f} %" in out
    assert run_zoo(parser.parse_args(["zoo", "--json"])) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "tiny" and row["size_bytes"] == e.size_bytes


def test_digits_entry_is_shipped():
    assert "digits-bwn" in SHIPPED  # the entry the notebook falls back to


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_accuracy_is_measured_again(name):
    e = zoo.entry(name)
    try:
        load_dataset(e.dataset, "test")
    except DatasetNotFoundError:
        pytest.skip(f"{e.dataset} is not installed (apt-get install dataset-fashion-mnist)")
    model = zoo.load(name)  # checks the SHA-256 too
    assert zoo.measure_accuracy(model, e.dataset, limit=e.subset_n) == (e.subset_correct,
                                                                        e.subset_n)
    assert e.size_bytes == e.weights_file.stat().st_size
    # `bsnn train`, or the low-latency recipe's select/train steps (issue 20)
    starts = ("bsnn train ", "python -m experiments.low_latency_t2 ")
    assert e.train_commands and all(c.startswith(starts) for c in e.train_commands)


def test_demo_zoo_part(tmp_path, capsys):
    from experiments.demo import ZOO_MODEL, Config, zoo_part

    row = zoo_part(Config(out_dir=tmp_path, smoke=True))
    out = capsys.readouterr().out
    if ZOO_MODEL not in SHIPPED:
        assert row is None and "no fmnist-bwn entry" in out
        return
    try:
        load_dataset(zoo.entry(ZOO_MODEL).dataset, "test")
    except DatasetNotFoundError:
        assert row is None and "apt-get install dataset-fashion-mnist" in out
        return
    assert row["n"] == 64 and len(row["accuracy"]) == 8 and row["sha256"] == zoo.entry(
        ZOO_MODEL).sha256
    assert (tmp_path / "zoo-fmnist-bwn.csv").is_file() and "   8  " in out


def test_load_spec_takes_a_zoo_name_or_a_model_file(tmp_path):
    shipped = zoo.load("digits-bwn")
    named = zoo.load_spec("zoo:digits-bwn")
    assert all(torch.equal(a, b) for a, b in zip(shipped.state_dict().values(),
                                                 named.state_dict().values()))
    e = zoo.entry("digits-bwn")
    path = save_model(shipped, tmp_path / "model.pt", name=e.model, model_kwargs=e.model_kwargs)
    from_file = zoo.load_spec(str(path))
    assert not from_file.training
    assert all(torch.equal(a, b) for a, b in zip(shipped.state_dict().values(),
                                                 from_file.state_dict().values()))
