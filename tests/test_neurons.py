"""Hand-computed checks of the reset / v(0) strategies and their registries (neurons.py)."""

import pytest
import torch

from bsnn_bindsnet.snn import neurons
from bsnn_bindsnet.snn.nodes import if_nodes
from bsnn_bindsnet.snn.neurons import (RESETS, V_INITS, HalfThreshold, MembraneReset,
                                   MembraneSubtract, ZeroPotential, check_neuron_options,
                                   get_reset)

V = torch.tensor([0.5, 1.25, 2.0])
S = torch.tensor([False, True, True])
TH = torch.tensor(1.0)


def test_builtin_names_are_the_plan_vocabulary():
    assert tuple(RESETS) == ("subtract", "zero") and tuple(V_INITS) == ("zero", "half")
    assert isinstance(RESETS["subtract"], MembraneSubtract)
    assert isinstance(V_INITS["half"], HalfThreshold)
    assert [r.label for r in RESETS.values()] == ["SIF", "RIF"]


def test_subtract_keeps_the_residue_and_zero_drops_it():
    assert MembraneSubtract()(V, S, TH).tolist() == [0.5, 0.25, 1.0]
    assert MembraneReset()(V, S, TH).tolist() == [0.5, 0.0, 0.0]
    assert MembraneReset()(V, S.float(), TH).tolist() == [0.5, 0.0, 0.0]  # surrogate spikes


@pytest.mark.parametrize("reset", [MembraneSubtract(), MembraneReset()])
def test_in_place_reset_equals_the_pure_one(reset):
    v = V.clone()
    reset.reset_(v, S, TH)
    assert torch.equal(v, reset(V, S, TH))


def test_a_strategy_with_only_call_gets_an_in_place_form():
    class Halve(neurons.ResetStrategy):
        def __call__(self, v, s, thresh):
            return v / 2

    v = V.clone()
    Halve().reset_(v, S, TH)
    assert v.tolist() == [0.25, 0.625, 1.0]


def test_v_init_from_the_threshold():
    th = torch.tensor([[2.0], [4.0]])
    assert ZeroPotential()(th).tolist() == [[0.0], [0.0]]
    assert HalfThreshold()(th).tolist() == [[1.0], [2.0]]


def test_unknown_names_are_refused_with_the_registered_ones():
    with pytest.raises(ValueError, match=r"^net.pt: reset 'soft' is unknown; expected one of "
                                         r"subtract, zero$"):
        check_neuron_options("soft", "zero", where="net.pt: ")
    with pytest.raises(ValueError, match=r"^v_init 'third' is unknown; expected one of zero, "
                                         r"half$"):
        check_neuron_options("subtract", "third")
    with pytest.raises(ValueError, match="reset 'soft' is unknown"):
        get_reset("soft")
    with pytest.raises(TypeError, match="registered name or a strategy"):
        get_reset(3)


def test_registration_refuses_bad_names_and_strategies():
    with pytest.raises(ValueError, match="non-empty string"):
        neurons.register_reset("", MembraneSubtract())
    with pytest.raises(TypeError, match="must be callable"):
        neurons.register_v_init("third", 0.33)
    neurons.register_reset("subtract", RESETS["subtract"])  # the same object again: no-op
    assert tuple(RESETS) == ("subtract", "zero")


def test_if_nodes_keeps_the_named_classes_for_the_builtin_resets():
    from bsnn_bindsnet.snn.nodes import BinaryIFNodes, ResetIFNodes, SubtractiveIFNodes

    sif = if_nodes((3,), 1.0, "subtract", "half")
    rif = if_nodes((2, 4, 4), torch.ones(2), "zero", "zero")
    assert type(sif) is SubtractiveIFNodes and sif.reset == "subtract" and sif.v_init == "half"
    assert type(rif) is ResetIFNodes and rif.thresh.shape == (2, 1, 1)
    strategy = neurons.register_reset("halve", MembraneReset())
    try:
        other = if_nodes((3,), 1.0, "halve", "zero")
        assert type(other) is BinaryIFNodes and other.reset_fn is strategy
    finally:
        neurons.unregister_reset("halve")
    with pytest.raises(ValueError, match="reset 'halve' is unknown"):
        if_nodes((3,), 1.0, "halve", "zero")


def test_importing_neurons_does_not_import_bindsnet():
    import subprocess
    import sys

    code = "import sys, bsnn_bindsnet.snn.neurons; print('bindsnet' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_cli_spells_the_builtin_names_torch_free():
    from bsnn_bindsnet.cli import checks

    assert checks.NEURON_NAMES == tuple(neurons.NEURONS) and checks.V_INIT_NAMES == tuple(V_INITS)
    assert checks.known_neurons() == tuple(neurons.NEURONS)  # the live registry once imported


def test_what_the_edges_ask_a_neuron_model():
    import nir
    import numpy as np

    for name, model in neurons.NEURONS.items():
        node = model.nir_node(nir, np.full((3,), 2.0, np.float32))
        assert type(node).__name__ == "IF" and node.v_reset.tolist() == [0.0] * 3, name
        assert model.direct and model.imc_rule
    new = type("Plain", (neurons.NeuronModel,), {"__call__": lambda self, v, s, th: v})()
    assert new.direct and new.imc_rule is None and new.make_nodes((2,), 1.0, "x", "zero") is None
    with pytest.raises(NotImplementedError, match="defines no NIR node"):
        new.nir_node(nir, np.ones(2, np.float32))
    assert neurons.unsupported("x", "IMC export", "why") == (
        "neuron model 'x' is not supported by IMC export: why")
