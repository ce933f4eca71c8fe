import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bsnn_bindsnet.imc import (export_imc, layer_mac, pack_bits, row_activations, to_unipolar,
                               xnor_mac)


def test_pack_bits_matches_numpy_packbits():
    bits = torch.randint(0, 2, (5, 21), generator=torch.Generator().manual_seed(0))
    assert np.array_equal(pack_bits(bits).numpy(), np.packbits(bits.numpy().astype(np.uint8),
                                                                axis=1))


def test_xnor_mac_by_hand():
    w = torch.tensor([[1, -1, -1]])           # M1 = 2
    o = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1]])
    # XNOR matches: [1,1,0] -> 2; [0,1,1] -> 2; [1,0,0] -> 1; minus M1 = 0, 0, -1
    got = xnor_mac(pack_bits(to_unipolar(w)), torch.tensor([2]), pack_bits(o), 3)
    assert got.flatten().tolist() == [0, 0, -1] == (o @ w.T).flatten().tolist()
    with pytest.raises(ValueError, match="exactly -1 or \\+1"):
        to_unipolar(torch.tensor([1, 0, -1]))


@pytest.mark.parametrize("seed", range(20))
def test_xnor_mac_equals_the_float_mac_on_random_rows(seed):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 300, (1,), generator=g))
    w = torch.randint(0, 2, (7, n), generator=g) * 2 - 1
    o = torch.randint(0, 2, (11, n), generator=g)
    got = xnor_mac(pack_bits(to_unipolar(w)), (w < 0).sum(1), pack_bits(o), n)
    assert torch.equal(got, (o @ w.T).int())


@pytest.mark.parametrize("stride, padding", [((1, 1), (1, 1)), ((2, 2), (0, 0))])
def test_layer_mac_conv_and_residual_equal_the_float_conv(stride, padding):
    g = torch.Generator().manual_seed(1)
    sign = (torch.randint(0, 2, (6, 4, 3, 3), generator=g) * 2 - 1).to(torch.int8)
    syn = {"type": "conv", "binary": True, "sign": sign, "stride": stride, "padding": padding}
    o1 = torch.randint(0, 2, (3, 4, 7, 7), generator=g).float()
    o2 = torch.randint(0, 2, (3, 4, 7, 7), generator=g).float()
    ref = F.conv2d(o1 + 0.5 * o2, sign.float(), stride=stride, padding=padding)
    torch.testing.assert_close(layer_mac(syn, o1, residual=o2, factor=0.5).float(), ref)
    with pytest.raises(ValueError, match="binary spikes"):
        layer_mac(syn, o1 * 0.5)


def _plan_and_spikes():
    from bsnn_bindsnet.direct.export import direct_to_plan
    from bsnn_bindsnet.direct.model import DirectBSNN

    torch.manual_seed(0)
    model = DirectBSNN(("c8p", "c8", "c8r", "f16r"), input_shape=(1, 8, 8), num_classes=5,
                       timesteps=4).eval()
    spikes = model.encode(torch.randn(6, 1, 8, 8), torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, outs = model.run(spikes)
    return direct_to_plan(model), outs


def test_verify_network_reports_zero_error_on_every_binary_layer():
    from bsnn_bindsnet.imc import verify_network

    plan, outs = _plan_and_spikes()
    spikes = {f"block{i}": o.flatten(0, 1) for i, o in enumerate(outs, start=1)}
    assert verify_network(plan, spikes) == {"block2": 0.0, "block3": 0.0, "block4": 0.0}


def test_every_binary_layer_of_a_network_runs_on_the_xnor_array():
    plan, outs = _plan_and_spikes()
    spikes = {f"block{i}": o for i, o in enumerate(outs, start=1)}
    checked = 0
    for layer in plan.layers:
        syn = layer.synapse
        if not syn.get("binary"):
            continue
        src = spikes[layer.source].flatten(0, 1)  # all steps as one batch
        res = spikes[layer.residual["source"]].flatten(0, 1) if layer.residual else None
        w = syn["sign"].float()
        x = src if res is None else src + 0.5 * res
        ref = F.conv2d(x, w, padding=syn["padding"]) if syn["type"] == "conv" else (
            x.flatten(1) @ w.T)
        torch.testing.assert_close(layer_mac(syn, src, residual=res, factor=0.5).float(), ref)
        checked += 1
    assert checked == 3


def test_export_imc_round_trips_without_this_package(tmp_path):
    plan, _ = _plan_and_spikes()
    npz, manifest = export_imc(plan, tmp_path / "imc")
    meta = json.loads(manifest.read_text())
    arrays = np.load(npz)
    layers = {entry["name"]: entry for entry in meta["layers"]}
    assert [e["binary"] for e in meta["layers"]] == [False, True, True, True, False]
    for layer in plan.layers:
        if not layer.synapse["binary"]:
            continue
        entry = layers[layer.name]
        bits = np.unpackbits(arrays[f"{layer.name}/bits"], axis=1)[:, :entry["cols"]]
        sign = layer.synapse["sign"].reshape(entry["rows"], -1).numpy()
        assert np.array_equal(bits.astype(np.int8) * 2 - 1, sign)
        assert np.array_equal(arrays[f"{layer.name}/m1"], (sign < 0).sum(1))
        np.testing.assert_allclose(arrays[f"{layer.name}/thresh"], layer.thresh.numpy())
    assert layers["block3"]["residual"] == {"source": "block1", "factor": 0.5,
                                            "shares_rows": True}
    assert not list(tmp_path.glob("*.tmp*"))


def test_row_activations_by_hand():
    sign = torch.tensor([[1, -1, 1]], dtype=torch.int8)
    syn = {"type": "linear", "binary": True, "sign": sign}
    from bsnn_bindsnet.convert import BSNNPlan, LayerSpec

    plan = BSNNPlan((3,), [LayerSpec("a", "if", (3,), "input", {"type": "linear",
                                                                "binary": False}),
                           LayerSpec("b", "if", (1,), "a", syn)], reset="subtract",
                    v_init="zero", info={})
    # layer a fired 4 spikes over 2 samples: 2 row activations per inference vs 2*3 for a BNN
    got = row_activations(plan, {"a": torch.tensor([1.0, 0.0, 3.0])}, n_samples=2)
    assert got["b"] == {"bnn": 6.0, "bsnn": 2.0, "ratio": pytest.approx(1 / 3)}
    assert got["total"]["ratio"] == pytest.approx(1 / 3)
