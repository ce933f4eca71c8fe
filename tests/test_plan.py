"""The plan and its typed synapses: files of the v1 format still load and simulate as they did,
synapses round-trip through dicts, and a synapse type registered outside the package works."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from bsnn_bindsnet.snn.network import PLAN_FORMAT, build_network, load_plan, save_plan
from bsnn_bindsnet.snn.plan import (SYNAPSES, AvgPoolSynapse, BSNNPlan, ConvSynapse, LayerSpec,
                                    LinearSynapse, MaxPoolSynapse, PlanInfo, Residual, Synapse,
                                    register_synapse, synapse_from_dict)
from bsnn_bindsnet.simulation.simulate import simulate

DATA = Path(__file__).parent / "data"


# ------------------------------------------------------------------ files saved before issue 13
# plan_v1.pt: a conv/avg-pool/max-pool/linear BWN converted by the dict-based converter;
# plan_v1_direct.pt: a direct-trained net with per-channel thresholds and a residual synapse;
# plan_v1_expected.pt: their simulation (12 steps, current input) recorded at the same time.

@pytest.mark.parametrize("name", ["plan_v1", "plan_v1_direct"])
def test_a_plan_saved_in_the_v1_format_loads_and_simulates_as_before(name):
    plan = load_plan(DATA / f"{name}.pt")
    expected = torch.load(DATA / "plan_v1_expected.pt", weights_only=True)
    result = simulate(build_network(plan), (expected["x"], expected["y"]), 12,
                      per_neuron=True, per_sample=True)
    assert torch.equal(result.step_predictions, expected[name]["step_predictions"])
    assert torch.equal(result.step_confidence, expected[name]["step_confidence"])
    assert result.neuron_spikes.keys() == expected[name]["neuron_spikes"].keys()
    for layer, spikes in expected[name]["neuron_spikes"].items():
        assert torch.equal(result.neuron_spikes[layer], spikes), layer


def test_v1_files_are_read_as_typed_synapses_and_written_back_unchanged(tmp_path):
    plan = load_plan(DATA / "plan_v1.pt")
    assert [type(l.synapse) for l in plan.layers] == [
        ConvSynapse, ConvSynapse, MaxPoolSynapse, ConvSynapse, AvgPoolSynapse, LinearSynapse,
        LinearSynapse]
    assert plan.layers[1].synapse.binary and plan.layers[1].synapse.sign.dtype == torch.int8
    again = load_plan(save_plan(plan, tmp_path / "again.pt"))
    old = torch.load(DATA / "plan_v1.pt", weights_only=True)
    new = torch.load(tmp_path / "again.pt", weights_only=True)
    assert old["format"] == "bsnn-bindsnet/bsnn-plan-v1" and new["format"] == PLAN_FORMAT
    for a, b in zip(old["layers"], new["layers"]):
        assert a.keys() == b.keys() and a["synapse"].keys() == b["synapse"].keys()
        for k, v in a["synapse"].items():
            w = b["synapse"][k]
            assert torch.equal(v, w) if isinstance(v, torch.Tensor) else v == w
    direct = load_plan(DATA / "plan_v1_direct.pt")
    res = direct.layers[2].residual
    assert isinstance(res, Residual) and res.source == "block1" and res.synapse.binary
    assert not hasattr(res.synapse, "__getitem__")  # no dict view: typed fields only
    assert [l.name for l in again.layers] == [l.name for l in plan.layers]


@pytest.mark.parametrize("name", ["plan_v1", "plan_v1_direct"])
def test_v1_info_loads_as_a_typed_record_and_is_written_back_unchanged(name, tmp_path):
    old = torch.load(DATA / f"{name}.pt", weights_only=True)["info"]
    plan = load_plan(DATA / f"{name}.pt")
    assert isinstance(plan.info, PlanInfo) and plan.info.extra == {}
    assert plan.info.to_dict() == old
    new = torch.load(save_plan(plan, tmp_path / "again.pt"), weights_only=True)["info"]
    assert new == old


def test_plan_info_fields_and_unknown_keys():
    direct = load_plan(DATA / "plan_v1_direct.pt").info
    assert (direct.route, direct.timesteps, direct.encoding) == ("direct", 4, "current")
    assert direct.blocks == ["c4p", "c4", "c4r", "f8"] and direct.dataset is None
    conv = load_plan(DATA / "plan_v1.pt").info
    assert conv.percentile == 99.7 and conv.relay_layers == ["5"] and conv.timesteps is None
    info = PlanInfo.from_dict({"dataset": "digits", "made_by": "a plugin"})
    assert info.dataset == "digits" and info.extra == {"made_by": "a plugin"}
    assert info.to_dict() == {"dataset": "digits", "made_by": "a plugin"}
    assert BSNNPlan((1,), [], info={"timesteps": 8}).info.timesteps == 8  # a dict converts


def test_layer_specs_convert_dicts_and_synapses_are_frozen():
    weight = torch.tensor([[1.0, -2.0]])
    spec = LayerSpec("h", "if", (1,), "input", {"type": "linear", "binary": False,
                                                "pool": None, "weight": weight, "bias": None})
    syn = spec.synapse
    assert isinstance(syn, LinearSynapse) and not syn.binary and syn.weight is weight
    assert set(syn.to_dict()) == {"type", "binary", "pool", "weight", "bias"}
    with pytest.raises(TypeError):
        syn["weight"]  # noqa: B018 (the v1 dict view is gone)
    with pytest.raises(dataclasses.FrozenInstanceError):
        syn.bias = torch.zeros(1)
    with pytest.raises(ValueError, match=r"unknown synapse type 'gap'; expected one of \["):
        synapse_from_dict({"type": "gap"})


def test_macs_and_events_of_a_padded_conv():
    # 1 -> 2 channels, 3x3 kernel, padding 1 on a 4x4 map: 1*9*2*4*4 = 288 MACs; one spike in
    # a corner reaches 2 channels x 4 output positions, one in the middle 2 x 9.
    syn = ConvSynapse(weight=torch.ones(2, 1, 3, 3), stride=(1, 1), padding=(1, 1))
    assert syn.out_shape((1, 4, 4)) == (2, 4, 4) and syn.macs((1, 4, 4)) == 288
    counts = torch.zeros(1, 4, 4)
    counts[0, 0, 0] = counts[0, 1, 1] = 1.0
    assert syn.events(counts) == 2 * 4 + 2 * 9


# --------------------------------------------------------------------- a synapse type from outside

@dataclasses.dataclass(frozen=True, eq=False)
class GainSynapse(Synapse):
    """One-to-one synapse with a gain (defined in this test only)."""

    gain: float = 1.0
    type: ClassVar[str] = "test-gain"

    def connection(self, source: Any, target: Any) -> Any:
        from bsnn_bindsnet.snn.connections import FullPrecisionConnection

        return FullPrecisionConnection(source, target, weight=self.gain * torch.eye(source.n))

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(in_shape)


@pytest.fixture
def gain_type():
    register_synapse(GainSynapse)
    yield GainSynapse
    del SYNAPSES[GainSynapse.type]


def test_a_registered_synapse_type_builds_saves_and_loads(gain_type, tmp_path):
    plan = BSNNPlan((2,), [
        LayerSpec("h", "if", (2,), "input", GainSynapse(gain=0.5), thresh=1.0),
        LayerSpec("readout", "readout", (2,), "h", LinearSynapse(weight=torch.eye(2)))],
        v_init="zero")
    loaded = load_plan(save_plan(plan, tmp_path / "gain.pt"))
    assert isinstance(loaded.layers[0].synapse, GainSynapse)
    assert loaded.layers[0].synapse.gain == 0.5
    # input 1 and 2 times the gain 0.5, threshold 1, v(0) = 0, 4 steps: 2 and 4 spikes
    result = simulate(build_network(loaded), (torch.tensor([[1.0, 2.0]]), torch.tensor([1])), 4,
                      per_neuron=True)
    assert result.neuron_spikes["h"].tolist() == [2.0, 4.0]
    with pytest.raises(ValueError, match="'test-gain' is already registered"):
        register_synapse(dataclasses.make_dataclass(
            "Other", [], bases=(GainSynapse,), frozen=True, namespace={"type": "test-gain"}))


def test_a_current_plan_without_its_integrity_record_is_refused(tmp_path):
    """Issue 25, item 12: only v1 plans (written before hashes) may load unchecked."""
    from bsnn_bindsnet.checkpoint import INTEGRITY_KEY, CheckpointError

    path = save_plan(load_plan(DATA / "plan_v1.pt"), tmp_path / "v2.pt")
    blob = torch.load(path, weights_only=True)
    assert blob["format"] == PLAN_FORMAT == "bsnn-bindsnet/bsnn-plan-v2"
    del blob[INTEGRITY_KEY]
    torch.save(blob, tmp_path / "stripped.pt")
    with pytest.raises(CheckpointError, match="integrity record was removed"):
        load_plan(tmp_path / "stripped.pt")


@pytest.mark.parametrize("drop", ["reset", "layers", "input_shape"])
def test_a_current_plan_with_a_missing_key_is_refused_by_name(tmp_path, drop):
    """A v2 file whose integrity record is intact but which lacks a key (written by another
    tool, or by hand) gets one clear line, not a KeyError."""
    from bsnn_bindsnet.checkpoint import CheckpointError, atomic_save

    d = load_plan(DATA / "plan_v1.pt").to_dict()
    del d[drop]
    path = atomic_save({"format": PLAN_FORMAT, **d}, tmp_path / "incomplete.pt")
    with pytest.raises(CheckpointError, match=f"incomplete or damaged.*missing key '{drop}'"):
        load_plan(path)
