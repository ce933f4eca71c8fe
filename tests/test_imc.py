import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bsnn_bindsnet.imc import (BREAK_EVEN_SPIKES, array_area, export_imc, layer_mac, pack_bits,
                               row_activations, row_energy, to_unipolar, xnor_mac,
                               xnor_macs_per_frame)


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


@pytest.mark.parametrize("c_in, kernel, stride, padding", [
    (4, (3, 3), (1, 1), (1, 1)), (4, (3, 3), (2, 2), (0, 0)),
    (11, (2, 3), (1, 2), (0, 1)),  # channels over a byte boundary, odd kernel and stride
    (16, (3, 3), (1, 1), (1, 1))])
def test_layer_mac_conv_and_residual_equal_the_float_conv(c_in, kernel, stride, padding):
    g = torch.Generator().manual_seed(1)
    sign = (torch.randint(0, 2, (6, c_in, *kernel), generator=g) * 2 - 1).to(torch.int8)
    syn = {"type": "conv", "binary": True, "sign": sign, "stride": stride, "padding": padding}
    o1 = torch.randint(0, 2, (3, c_in, 7, 7), generator=g).float()
    o2 = torch.randint(0, 2, (3, c_in, 7, 7), generator=g).float()
    ref = F.conv2d(o1 + 0.5 * o2, sign.float(), stride=stride, padding=padding)
    torch.testing.assert_close(layer_mac(syn, o1, residual=o2, factor=0.5).float(), ref)
    with pytest.raises(ValueError, match="binary spikes"):
        layer_mac(syn, o1 * 0.5)


def _plan_and_spikes():
    from bsnn_bindsnet.direct.export import direct_to_plan
    from bsnn_bindsnet.direct.model import DirectBSNN

    torch.manual_seed(0)
    model = DirectBSNN(("c8p", "c8", "c8r", "f16r"), input_shape=(1, 8, 8), num_classes=5,
                       timesteps=4, residual_factor=0.5).eval()
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
        if not syn.binary:
            continue
        src = spikes[layer.source].flatten(0, 1)  # all steps as one batch
        res = spikes[layer.residual.source].flatten(0, 1) if layer.residual else None
        w = syn.sign.float()
        x = src if res is None else src + 0.5 * res
        ref = F.conv2d(x, w, padding=syn.padding) if syn.type == "conv" else (
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
        if not layer.synapse.binary:
            continue
        entry = layers[layer.name]
        bits = np.unpackbits(arrays[f"{layer.name}/bits"], axis=1)[:, :entry["cols"]]
        sign = layer.synapse.sign.reshape(entry["rows"], -1).numpy()
        assert np.array_equal(bits.astype(np.int8) * 2 - 1, sign)
        assert np.array_equal(arrays[f"{layer.name}/m1"], (sign < 0).sum(1))
        np.testing.assert_allclose(arrays[f"{layer.name}/thresh"], layer.thresh.numpy())
    assert layers["block3"]["residual"] == {"source": "block1", "factor": 0.5,
                                            "shares_rows": True}
    assert not list(tmp_path.glob("*.tmp*"))


def _linear_plan(n_in, sign, residual_sign=None):
    """input -> a (n_in,) full precision -> b binary linear (+ a residual from ``input``)."""
    from bsnn_bindsnet.conversion.convert import BSNNPlan, LayerSpec

    syn = {"type": "linear", "binary": True, "sign": torch.tensor(sign, dtype=torch.int8),
           "scale": torch.ones(len(sign))}
    res = None
    if residual_sign is not None:
        res = {"source": "input", "synapse": {
            "type": "linear", "binary": True, "scale": torch.full((len(sign),), 0.5),
            "sign": torch.tensor(residual_sign, dtype=torch.int8)}}
    return BSNNPlan((n_in,), [
        LayerSpec("a", "if", (n_in,), "input", {"type": "linear", "binary": False}),
        LayerSpec("b", "if", (len(sign),), "a", syn, residual=res)],
        reset="subtract", v_init="zero", info={})


def test_row_energy_by_hand():
    plan = _linear_plan(3, [[1, -1, 1]])
    # layer a fired 1 + 0 + 3 spikes over 2 samples: 0.5, 0, 1.5 per inference. Each input
    # feeds the one output position once. BNN: one of each input's two rows is active:
    # 3 rows per inference; B-SNN: one row per spike: 2 per inference.
    got = row_energy(plan, {"a": torch.tensor([1.0, 0.0, 3.0])}, n_samples=2)
    assert got["b"] == {"bnn": 3.0, "bsnn": 2.0, "ratio": pytest.approx(2 / 3),
                        "spikes_per_input": pytest.approx(2 / 3),
                        "mean_spikes": pytest.approx(2 / 3), "break_even": 1.0}
    assert got["total"]["ratio"] == pytest.approx(2 / 3)
    # area: BNN 2*3 rows x 1 column = 6 cells; B-SNN 3 rows x (1 + dummy) columns = 6 cells
    assert array_area(plan)["b"] == {"bnn_rows": 6, "bnn_cols": 1, "bnn_cells": 6,
                                     "bsnn_rows": 3, "bsnn_cols": 2, "bsnn_cells": 6,
                                     "ratio": 1.0}


def test_row_activations_is_a_deprecated_alias_of_row_energy():
    plan = _linear_plan(3, [[1, -1, 1]])
    spikes = {"a": torch.tensor([1.0, 0.0, 3.0])}
    with pytest.warns(DeprecationWarning, match="row_energy"):
        got = row_activations(plan, spikes, n_samples=2)
    assert got == row_energy(plan, spikes, n_samples=2)


def test_two_input_two_output_linear_layer_energy_and_area_by_hand():
    plan = _linear_plan(2, [[1, -1], [-1, -1]])
    # spikes per inference: input 0 fires 1 in 2 samples (0.5), input 1 fires 2 (1.0).
    got = row_energy(plan, {"a": torch.tensor([1.0, 2.0])}, n_samples=2)
    # BNN: inputs are +-1, one of the two rows of each input is active: 2 active rows (both
    # columns are read by the same row activation). B-SNN: 0.5 + 1.0 = 1.5 active rows.
    assert got["b"]["bnn"] == 2.0 and got["b"]["bsnn"] == 1.5
    assert got["b"]["ratio"] == got["b"]["spikes_per_input"] == 0.75
    assert got["b"]["spikes_per_input"] < got["b"]["break_even"] == BREAK_EVEN_SPIKES == 1.0
    # inputs at exactly one spike per inference: the break-even, same energy
    even = row_energy(plan, {"a": torch.tensor([2.0, 2.0])}, n_samples=2)["b"]
    assert even["bsnn"] == even["bnn"] == 2.0 and even["ratio"] == 1.0
    # area: BNN 2 inputs x 2 rows = 4 rows x 2 columns = 8 cells; B-SNN 2 rows x (2 + 1 dummy)
    # columns = 6 cells
    area = array_area(plan)
    assert area["b"] == {"bnn_rows": 4, "bnn_cols": 2, "bnn_cells": 8, "bsnn_rows": 2,
                         "bsnn_cols": 3, "bsnn_cells": 6, "ratio": 0.75}
    assert area["total"] == {"bnn_cells": 8, "bsnn_cells": 6, "ratio": 0.75}


def test_a_residual_synapse_costs_energy_and_area_only_when_it_needs_its_own_rows():
    spikes = {"a": torch.tensor([1.0, 2.0]), "input": torch.tensor([2.0, 0.0])}
    shared = _linear_plan(2, [[1, -1], [-1, -1]], residual_sign=[[1, -1], [-1, -1]])
    got = row_energy(shared, spikes, n_samples=2)
    # the residual MAC from `input` (1.0 and 0 spikes per inference) reads the same rows
    # once more: BNN 2 more active rows, B-SNN 1.0
    assert got["b<-input"]["bnn"] == 2.0 and got["b<-input"]["bsnn"] == 1.0
    assert got["total"]["bnn"] == 4.0 and got["total"]["bsnn"] == 2.5
    assert got["total"]["ratio"] == got["total"]["spikes_per_input"] == 2.5 / 4
    assert got["total"]["mean_spikes"] == (0.5 + 1.0 + 1.0 + 0.0) / 4
    assert array_area(shared)["b"]["bnn_cells"] == 8  # same signs: no extra rows
    own = _linear_plan(2, [[1, -1], [-1, -1]], residual_sign=[[1, 1], [-1, -1]])
    assert array_area(own)["b"] == {"bnn_rows": 8, "bnn_cols": 2, "bnn_cells": 16,
                                    "bsnn_rows": 4, "bsnn_cols": 3, "bsnn_cells": 12,
                                    "ratio": 0.75}


def _conv_plan(padding):
    from bsnn_bindsnet.conversion.convert import BSNNPlan, LayerSpec

    sign = torch.tensor([[[[1, -1], [-1, 1]]], [[[1, 1], [1, 1]]]], dtype=torch.int8)
    syn = {"type": "conv", "binary": True, "sign": sign, "scale": torch.ones(2),
           "stride": (1, 1), "padding": padding}
    out = 2 + 2 * padding[0]
    return BSNNPlan((1, 3, 3), [
        LayerSpec("a", "if", (1, 3, 3), "input", {"type": "linear", "binary": False}),
        LayerSpec("b", "if", (2, out, out), "a", syn)], reset="subtract", v_init="zero",
        info={})


def test_conv_energy_and_area_by_hand_with_border_fan_out():
    # 1 channel 3x3 -> 2x2 kernel, no padding -> 2x2 output positions of 4 patch entries.
    # Fan-out (output positions an input pixel feeds): corners 1, edges 2, centre 4:
    #   1 2 1
    #   2 4 2     sum 16 = 4 positions x 4 entries
    #   1 2 1
    plan = _conv_plan((0, 0))
    counts = torch.tensor([[[3.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0]]])
    got = row_energy(plan, {"a": counts}, n_samples=1)["b"]
    # BNN: 16 active rows. B-SNN: corner 3 spikes x 1 + edge 1 x 2 + centre 2 x 4 = 13
    assert got["bnn"] == 16.0 and got["bsnn"] == 13.0
    assert got["ratio"] == got["spikes_per_input"] == 13 / 16
    assert got["mean_spikes"] == pytest.approx(6 / 9)  # unweighted: not the energy ratio
    # zero padding drives no row: with padding 1 every pixel feeds 4 of the 4x4 positions
    padded = row_energy(_conv_plan((1, 1)), {"a": counts}, n_samples=1)["b"]
    assert padded["bnn"] == 36.0 and padded["bsnn"] == 6 * 4
    # area: n = 1 x 2 x 2 = 4 inputs, R = 2 channels, one array reused at every position:
    # BNN 8 rows x 2 columns = 16 cells; B-SNN 4 rows x 3 columns = 12 cells
    assert array_area(plan)["b"] == {"bnn_rows": 8, "bnn_cols": 2, "bnn_cells": 16,
                                     "bsnn_rows": 4, "bsnn_cols": 3, "bsnn_cells": 12,
                                     "ratio": 0.75}
    # the XNOR check of one frame: 4 positions x 2 channels dot products of 4 bits each
    assert xnor_macs_per_frame(plan)["b"] == {"dot_products": 8, "bit_macs": 32}


def test_row_energy_names_missing_or_misshapen_counts():
    plan = _linear_plan(3, [[1, -1, 1]])
    with pytest.raises(KeyError, match="no spike counts for 'a'"):
        row_energy(plan, {}, n_samples=1)
    with pytest.raises(ValueError, match="have 2 entries"):
        row_energy(plan, {"a": torch.ones(2)}, n_samples=1)
    with pytest.raises(ValueError, match="n_samples must be positive"):
        row_energy(plan, {"a": torch.ones(3)}, n_samples=0)


def test_fan_out_maps_by_hand():
    from bsnn_bindsnet.imc import fan_out_maps

    source, f = fan_out_maps(_conv_plan((0, 0)))["b"]
    assert source == "a"
    assert f.tolist() == [[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]
    # with padding 1 every pixel of the 3x3 map feeds 4 of the 4x4 positions
    assert fan_out_maps(_conv_plan((1, 1)))["b"][1].eq(4).all()
    assert fan_out_maps(_linear_plan(3, [[1, -1, 1]]))["b"][1].tolist() == [1.0, 1.0, 1.0]


def test_crossbar_energy_by_hand_in_both_pictures_with_sensing_and_widths():
    from bsnn_bindsnet.imc import crossbar_energy

    plan = _conv_plan((0, 0))   # F = 16 BNN rows, P = 4 positions, R = 2 columns
    # kappa = 0, rows: row_energy's model (13 active B-SNN rows from the test above)
    got = crossbar_energy(plan, {"b": 13.0}, timesteps=8)["b"]
    assert (got["bnn"], got["bsnn"], got["ratio"]) == (16.0, 13.0, 13 / 16)
    # XNOR-BSNN's array evaluates every input at every step: 8 x the BNN
    assert got["xnor_bsnn"] == 128.0 and got["xnor_ratio"] == 8.0
    # kappa = 0.5, rows: BNN 16 + 0.5 * 4 positions * 2 columns = 20;
    # B-SNN 13 + 0.5 * 8 steps * 4 positions * (2 + 1 dummy) columns = 13 + 48 = 61
    got = crossbar_energy(plan, {"b": 13.0}, timesteps=8, sense_weight=0.5)["b"]
    assert (got["bnn"], got["bsnn"], got["xnor_bsnn"]) == (20.0, 61.0, 160.0)
    assert got["ratio"] == 61 / 20
    # cells: a BNN row drives R = 2 cells, a B-SNN row R + 1 = 3:
    # BNN 2 * 16 + 4 = 36; B-SNN 3 * 13 + 48 = 87
    got = crossbar_energy(plan, {"b": 13.0}, timesteps=8, sense_weight=0.5,
                          weighting="cells")["b"]
    assert (got["bnn"], got["bsnn"], got["xnor_bsnn"]) == (36.0, 87.0, 288.0)


def test_crossbar_energy_weights_wide_arrays_more_with_cells():
    from bsnn_bindsnet.imc import crossbar_energy

    # a residual synapse on the same 2 columns: two linear MACs of 2 inputs each
    plan = _linear_plan(2, [[1, -1], [-1, -1]], residual_sign=[[1, -1], [-1, -1]])
    rows = {"b": 1.5, "b<-input": 1.0}
    got = crossbar_energy(plan, rows, timesteps=4, sense_weight=1.0, weighting="cells")
    # each MAC: BNN 2 cells x 2 rows + 1 x 1 position x 2 columns = 6;
    # B-SNN 3 x 1.5 + 4 steps x 3 columns = 16.5 and 3 x 1.0 + 12 = 15
    assert got["b"]["bnn"] == got["b<-input"]["bnn"] == 6.0
    assert (got["b"]["bsnn"], got["b<-input"]["bsnn"]) == (16.5, 15.0)
    assert got["total"] == {"bnn": 12.0, "bsnn": 31.5, "xnor_bsnn": 48.0,
                            "ratio": 31.5 / 12, "xnor_ratio": 4.0}
    with pytest.raises(KeyError, match="b<-input"):
        crossbar_energy(plan, {"b": 1.5}, timesteps=4)
    with pytest.raises(ValueError, match="'rows' or 'cells'"):
        crossbar_energy(plan, rows, timesteps=4, weighting="columns")
    with pytest.raises(ValueError, match="sense_weight"):
        crossbar_energy(plan, rows, timesteps=4, sense_weight=-1)
