r"""Issue 23's "done when": a neuron model and a synapse type registered outside the package (the
plugin ``tests/plugin_clamp.py``) go through every edge of the package, which either takes them
or refuses them by name, with no edit to ``bsnn_bindsnet/``.

The neuron ``"clamp"``: :math:`v \leftarrow \max(v - \theta s, -\theta)`. By hand, in the plan of
:func:`two_layer_plan` (:math:`\theta = 1`, :math:`v_0 = 0`, current input 1/4, one-step mode):

- layer ``a`` integrates 1/4 per step and fires at steps 4 and 8 (both models);
- layer ``b`` receives :math:`c_t = -1 + 3 s_a(t)`. With subtraction its potential runs
  -1, -2, -3, -1 (step 4: -3 - 1 + 3), -2, -3, -4, -2: **0** spikes in 8 steps. With the clamp
  it stays at -1 for steps 1-3, reaches -1 - 1 + 3 = 1 at step 4 (fires, back to 0), then -1,
  -1, -1 and fires again at step 8: **2** spikes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from bsnn_bindsnet.checkpoint import save_model
from bsnn_bindsnet.cli.main import main
from bsnn_bindsnet.direct.export import direct_to_plan
from bsnn_bindsnet.direct.model import DirectBSNN
from bsnn_bindsnet.imc import export_imc
from bsnn_bindsnet.interop.nir_io import to_nir
from bsnn_bindsnet.simulation.simulate import simulate
from bsnn_bindsnet.snn import neurons
from bsnn_bindsnet.snn.network import build_network, load_plan, save_plan
from bsnn_bindsnet.snn.plan import SYNAPSES, BSNNPlan, LayerSpec, LinearSynapse, Synapse
from bsnn_bindsnet.training.models import get_model

pytestmark = pytest.mark.usefixtures("single_thread")
TESTS = Path(__file__).resolve().parent
PLUGIN = "plugin_clamp"


@pytest.fixture
def clean_registries():
    """Whatever a test's plugin registers is gone afterwards (and importable again)."""
    before = dict(neurons.NEURONS), dict(SYNAPSES)
    try:
        yield
    finally:
        sys.modules.pop(PLUGIN, None)
        for registry, saved in zip((neurons.NEURONS, SYNAPSES), before):
            registry.clear()
            registry.update(saved)


@pytest.fixture
def plugin(clean_registries, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    return __import__(PLUGIN)


def two_layer_plan(reset: str) -> BSNNPlan:
    one = torch.ones(1, 1)
    return BSNNPlan((1,), [
        LayerSpec("a", "if", (1,), "input", LinearSynapse(weight=one), thresh=1.0),
        LayerSpec("b", "if", (1,), "a", LinearSynapse(weight=3 * one, bias=-torch.ones(1)),
                  thresh=1.0),
        LayerSpec("readout", "readout", (1,), "b", LinearSynapse(weight=one))],
        reset=reset, v_init="zero")


def test_the_plugin_neuron_simulates_as_computed_by_hand(plugin):
    data = (torch.tensor([[0.25]]), torch.tensor([0]))
    counts = {reset: simulate(build_network(two_layer_plan(reset)), data, 8,
                              per_neuron=True).neuron_spikes
              for reset in ("subtract", "clamp")}
    assert counts["subtract"]["a"].tolist() == counts["clamp"]["a"].tolist() == [2.0]
    assert counts["subtract"]["b"].tolist() == [0.0] and counts["clamp"]["b"].tolist() == [2.0]


def _untrained_model(path: Path) -> Path:
    torch.manual_seed(0)
    model = get_model("mlp", input_shape=(1, 8, 8), hidden=(16,), num_classes=10)
    save_model(model, path, name="mlp", model_kwargs={"input_shape": (1, 8, 8),
                                                      "hidden": (16,), "num_classes": 10},
               meta={"dataset": "digits"})
    return path


def test_bsnn_convert_simulate_and_export_nir_take_the_plugin_neuron(clean_registries,
                                                                     monkeypatch, tmp_path,
                                                                     capsys):
    monkeypatch.syspath_prepend(str(TESTS))
    model, snn = _untrained_model(tmp_path / "model.pt"), tmp_path / "snn.pt"
    with pytest.raises(SystemExit):  # not registered yet: argparse lists the choices
        main(["convert", str(model), "--out", str(snn), "--reset", "clamp"])
    assert "invalid choice: 'clamp'" in capsys.readouterr().err
    plug = ["--plugin", PLUGIN]
    assert main([*plug, "convert", str(model), "--out", str(snn), "--reset", "clamp",
                 "--no-eval", "--calib-size", "32"]) == 0
    assert load_plan(snn).reset == "clamp"
    assert main([*plug, "simulate", str(snn), "--out", str(tmp_path / "sim"), "--limit", "8",
                 "--timesteps", "3", "--no-progress"]) == 0
    summary = json.loads((tmp_path / "sim" / "simulation.json").read_text())
    assert summary["conversion"]["model"] == "mlp" and len(summary["accuracy"]) == 3
    capsys.readouterr()
    assert main([*plug, "export-nir", str(snn), "--out", str(tmp_path / "net.nir")]) == 2
    assert ("neuron model 'clamp' is not supported by NIR export: it defines no NIR node"
            in capsys.readouterr().err)
    assert not (tmp_path / "net.nir").exists()
    with pytest.raises(NotImplementedError, match="'clamp' is not supported by IMC export"):
        export_imc(load_plan(snn), tmp_path / "imc")


def test_the_direct_route_trains_the_plugin_neuron_and_exports_it_exactly(plugin):
    torch.manual_seed(0)
    model = DirectBSNN(("c4p", "c4", "c4r", "f8"), input_shape=(1, 8, 8), num_classes=3,
                       timesteps=5, coding="current", reset="clamp")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert all(p.grad is not None for p in model.synapses.parameters())
    model.eval()
    plan = direct_to_plan(model)
    assert plan.reset == "clamp" and plan.info.timesteps == 5
    with torch.no_grad():
        logits, outs = model.run(model.encode(x))
    result = simulate(build_network(plan), (x, y), 5, per_neuron=True)
    # every hidden layer fires the same number of spikes as in PyTorch (folding is exact for
    # a positively homogeneous reset), and the readout predicts the same classes
    for i, o in enumerate(outs, start=1):
        assert result.neuron_spikes[f"block{i}"].sum().item() == o.sum().item()
    assert torch.equal(result.predictions, logits.argmax(1))


class SubtractOne(neurons.NeuronModel):
    """v <- v - s (a fixed amount, not the threshold): not positively homogeneous."""

    def __call__(self, v, s, thresh):
        return v - s.to(v.dtype)


class BoolOnly(neurons.NeuronModel):
    direct = False

    def __call__(self, v, s, thresh):
        return torch.where(s, torch.zeros_like(v), v)


def test_neurons_the_direct_route_cannot_take_are_refused_by_name(clean_registries):
    neurons.register_neuron("subtract-one", SubtractOne())
    neurons.register_neuron("bool-only", BoolOnly())
    with pytest.raises(ValueError, match="'bool-only' is not supported by the direct route"):
        DirectBSNN(("c4", "f8"), input_shape=(1, 8, 8), num_classes=3, reset="bool-only")
    model = DirectBSNN(("c4", "f8"), input_shape=(1, 8, 8), num_classes=3,
                       reset="subtract-one").eval()
    with pytest.raises(NotImplementedError, match="'subtract-one' is not supported by the "
                       "direct route's export: batch-norm folding"):
        direct_to_plan(model)


@dataclasses.dataclass(frozen=True, eq=False)
class BareSynapse(Synapse):
    """A registered synapse that states no NIR and no IMC form."""

    type: ClassVar[str] = "test-bare"

    def connection(self, source: Any, target: Any) -> Any:
        from bsnn_bindsnet.snn.connections import FullPrecisionConnection

        return FullPrecisionConnection(source, target, weight=torch.eye(source.n))

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(in_shape)


def _plan_with(synapse: Synapse) -> BSNNPlan:
    return BSNNPlan((2,), [
        LayerSpec("h", "if", (2,), "input", synapse, thresh=1.0),
        LayerSpec("readout", "readout", (2,), "h", LinearSynapse(weight=torch.eye(2)))],
        reset="subtract", v_init="zero")


def test_a_plugin_synapse_crosses_nir_and_imc_export(plugin, tmp_path):
    plan = _plan_with(plugin.GainSynapse(gain=0.5))
    graph = to_nir(plan)
    assert type(graph.nodes["h_syn"]).__name__ == "Scale"
    assert graph.nodes["h_syn"].scale.tolist() == [0.5, 0.5]
    assert ("input", "h_syn") in graph.edges and ("h_syn", "h") in graph.edges
    _, manifest = export_imc(plan, tmp_path / "imc")
    entry = json.loads(manifest.read_text())["layers"][0]
    assert entry == {"name": "h", "kind": "test-gain", "gain": 0.5, "source": "input"}


def test_a_synapse_without_nir_or_imc_form_is_refused_by_name(clean_registries, tmp_path):
    from bsnn_bindsnet.snn.plan import register_synapse

    register_synapse(BareSynapse)
    plan = _plan_with(BareSynapse())
    with pytest.raises(NotImplementedError, match=r"layer 'h' \(synapse\): synapse type "
                       "'test-bare' has no NIR form"):
        to_nir(plan)
    with pytest.raises(NotImplementedError, match="layer 'h': synapse type 'test-bare' has no "
                       "IMC form"):
        export_imc(plan, tmp_path / "imc")
    assert not (tmp_path / "imc.npz").exists()


def test_an_installed_plugin_is_found_through_its_entry_point(clean_registries, monkeypatch,
                                                              tmp_path):
    site = tmp_path / "site"
    dist = site / "bsnn_clamp_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bsnn-clamp-plugin\n"
                                   "Version: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[bsnn_bindsnet.plugins]\nclamp = {PLUGIN}\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(TESTS))
    model = _untrained_model(tmp_path / "model.pt")
    assert main(["convert", str(model), "--out", str(tmp_path / "snn.pt"), "--reset", "clamp",
                 "--no-eval", "--calib-size", "16"]) == 0
    assert load_plan(tmp_path / "snn.pt").reset == "clamp"


def test_a_plugin_that_cannot_be_imported_is_a_one_line_error(capsys):
    assert main(["--plugin", "no_such_plugin_module", "presets"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bsnn: error: --plugin 'no_such_plugin_module': cannot import")


@pytest.mark.slow
def test_the_console_script_takes_the_plugin(tmp_path):
    model = _untrained_model(tmp_path / "model.pt")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get(
        "PYTHONPATH", "")])}
    bsnn = Path(sys.executable).with_name("bsnn")
    run = subprocess.run([str(bsnn), "--plugin", PLUGIN, "convert", str(model), "--out",
                          str(tmp_path / "snn.pt"), "--reset", "clamp", "--no-eval",
                          "--calib-size", "16"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert torch.load(tmp_path / "snn.pt", weights_only=True)["reset"] == "clamp"


def test_bsnn_simulate_runs_the_t_the_network_records(tmp_path):
    model, snn = _untrained_model(tmp_path / "model.pt"), tmp_path / "snn.pt"
    assert main(["convert", str(model), "--out", str(snn), "--no-eval", "--calib-size",
                 "16"]) == 0
    plan = load_plan(snn)
    assert plan.info.timesteps is None and plan.info.dataset == "digits"
    plan.info.timesteps = 5  # as the direct route and the *-qcfs-snn models record it
    save_plan(plan, snn)
    for extra, steps in (([], 5), (["--timesteps", "3"], 3)):
        out = tmp_path / f"sim{steps}"
        assert main(["simulate", str(snn), "--out", str(out), "--limit", "4",
                     "--no-progress", *extra]) == 0
        assert len(json.loads((out / "simulation.json").read_text())["accuracy"]) == steps
