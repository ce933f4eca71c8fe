"""NIR across simulators, through files: this package's graphs in Norse 1.1.0 and snnTorch 1.0.0
(their own importers, and :mod:`bsnn_bindsnet.interop.peers`' adapters for what they lack),
graphs the peers write imported by ``bsnn import-nir``, and NIR's firing rule at the boundary.
Each test is skipped, with the reason, when its peer is not installed (``make install`` installs
the ``peers`` extra of setup.cfg)."""

import numpy as np
import pytest
import torch
from torch import nn

nir = pytest.importorskip("nir", reason="NIR support is optional: pip install 'bsnn-bindsnet[nir]'")

from test_nir_io import (_peer_mlp_plan, _run_peer_module, boundary_plan,  # noqa: E402
                         converted_plan, run_bindsnet)

from bsnn_bindsnet.cli.main import main  # noqa: E402
from bsnn_bindsnet.conversion.convert import READOUT, ann_to_bsnn  # noqa: E402
from bsnn_bindsnet.interop.nir_io import read_nir, to_nir, write_nir  # noqa: E402
from bsnn_bindsnet.interop.peers import (batch_flatten, norse_from_nir, run_peer,  # noqa: E402
                                         snntorch_from_nir, snntorch_to_nir)
from bsnn_bindsnet.snn.network import build_network, load_plan  # noqa: E402

T = 12
INSTALL = "make install (the `peers` extra: pip install 'bsnn-bindsnet[peers]')"


def _norse():
    return pytest.importorskip("norse.torch",
                               reason=f"peer check: Norse is not installed; {INSTALL}")


def _snntorch():
    return pytest.importorskip("snntorch",
                               reason=f"peer check: snnTorch is not installed; {INSTALL}")


ADAPTERS = {"norse": (_norse, norse_from_nir), "snntorch": (_snntorch, snntorch_from_nir)}


def _spiking(plan):
    """The spiking layers (their names are also their NIR node keys: none has a dot)."""
    return [layer.name for layer in plan.layers if layer.kind == "if"]


def _mlp_plan():
    return _peer_mlp_plan("zero")


def _running_sum(out):
    """The readout's potential from a peer's per-step outputs: v <- v + out_t, in step order
    (as BindsNET integrates; torch.cumsum may add in another order)."""
    acc, sums = torch.zeros_like(out[0]), []
    for o in out:
        acc = acc + o
        sums.append(acc)
    return torch.stack(sums)


def _assert_same(plan, ours, spikes):
    for name in _spiking(plan):
        assert torch.equal(spikes[name], ours[name]), name
        assert int(ours[name].sum()) > 0, name  # it does spike


# ------------------------------------------------------- this package's graphs in the peers


@pytest.mark.parametrize("peer", ["norse", "snntorch"])
def test_a_converted_conv_net_runs_in_the_peer_from_a_file_spike_for_spike(tmp_path, peer):
    need, load = ADAPTERS[peer]
    need()
    plan = converted_plan(reset="zero", v_init="zero")  # conv, avg-pool, flatten, linear
    path = write_nir(plan, tmp_path / "net.nir")
    x = torch.randn(8, 1, 8, 8)  # a batch of 8: the adapter's Flatten keeps the batch
    ours = run_bindsnet(build_network(plan), x, T)
    spikes, out = run_peer(load(path), x, T, _spiking(plan))
    _assert_same(plan, ours, spikes)
    assert torch.equal(out, ours[READOUT])  # NIR's I: the readout's potential, every step


def test_norse_as_shipped_has_no_avgpool_and_drops_the_integrator(tmp_path):
    norse = _norse()
    conv = read_nir(write_nir(converted_plan(reset="zero", v_init="zero"), tmp_path / "c.nir"))
    with pytest.raises(KeyError, match="_pool"):  # no mapping for AvgPool2d
        norse.from_nir(conv)
    plan = _mlp_plan()
    net = norse.from_nir(read_nir(write_nir(plan, tmp_path / "mlp.nir")))
    x = torch.randn(4, 16)
    ours = run_bindsnet(build_network(plan), x, T)
    _, out = run_peer(net, x, T)
    # the I node is gone without a word: Norse outputs the current into it, not its potential
    assert torch.equal(_running_sum(out), ours[READOUT]) and not torch.equal(out, ours[READOUT])


def test_snntorch_as_shipped_refuses_the_integrator_and_makes_if_leaky(tmp_path):
    _snntorch()
    from snntorch.import_nir import import_from_nir

    plan = _mlp_plan()
    with pytest.raises(ValueError, match="Unknown node type .*I'>"):
        import_from_nir(read_nir(write_nir(plan, tmp_path / "mlp.nir")))
    net = import_from_nir(to_nir(plan, peer_compatible=True))  # no I
    assert float(net.relu1.beta) == pytest.approx(0.9)  # NIR's IF imported as a leaky neuron
    assert float(snntorch_from_nir(to_nir(plan)).relu1.beta) == 1.0  # the adapter's IF


@pytest.mark.parametrize("peer", ["norse", "snntorch"])
def test_the_peers_flatten_the_batch_and_the_adapter_keeps_it(peer):
    ADAPTERS[peer][0]()
    if peer == "norse":
        from norse.torch.utils.import_nir import _import_norse_module as shipped
    else:
        from snntorch.import_nir import _nir_to_snntorch_module as shipped
    node = nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0, end_dim=-1)
    x = torch.randn(4, 2, 3, 3)
    assert tuple(shipped(node)(x).shape) == (72,)  # the four samples in one vector
    assert tuple(batch_flatten(node)(x).shape) == (4, 18)  # NIR's dims exclude the batch


def _conv_mlp_plan():
    """Conv (float) -> IF -> flatten -> binary linear -> IF -> linear readout, no pooling."""
    from collections import OrderedDict

    from bsnn_bindsnet.ann.binarize import BinaryLinear

    torch.manual_seed(1)
    model = nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 4, 3)), ("relu1", nn.ReLU()), ("flat", nn.Flatten()),
        ("fc1", BinaryLinear(4 * 6 * 6, 24)), ("relu2", nn.ReLU()), ("fc2", nn.Linear(24, 5))]))
    return ann_to_bsnn(model, torch.randn(64, 1, 8, 8), reset="zero", v_init="zero",
                       build=False)


def test_a_peer_compatible_export_runs_in_norse_unmodified(tmp_path, capsys):
    norse = _norse()
    from bsnn_bindsnet.snn.network import save_plan

    plan = _conv_mlp_plan()
    save_plan(plan, tmp_path / "snn.pt")
    assert main(["export-nir", str(tmp_path / "snn.pt"), "--out", str(tmp_path / "p.nir"),
                 "--peer-compatible"]) == 0
    capsys.readouterr()
    net = norse.from_nir(read_nir(tmp_path / "p.nir"))  # Norse's own importer, as shipped
    x = torch.randn(8, 1, 8, 8)
    ours = run_bindsnet(build_network(plan), x, T)
    spikes, out = run_peer(net, x, T, ["relu1", "relu2"])
    _assert_same(plan, ours, spikes)
    assert torch.equal(_running_sum(out), ours[READOUT])  # the current per step, summed


# --------------------------------------------------------------- the firing rule, both ways


@pytest.mark.parametrize("peer", ["norse", "snntorch"])
def test_a_potential_landing_on_the_threshold_fires_in_the_peer_as_here(tmp_path, peer):
    need, load = ADAPTERS[peer]
    need()
    plan = boundary_plan()  # weight 0.5, theta 1, input 1: v reaches theta exactly
    path = write_nir(plan, tmp_path / "b.nir")
    ours = run_bindsnet(build_network(plan), torch.ones(1, 1), 10)
    spikes, _ = run_peer(load(path), torch.ones(1, 1), 10, ["if1"])
    steps = (torch.nonzero(spikes["if1"][:, 0, 0]).flatten() + 1).tolist()
    assert steps == [2, 4, 6, 8, 10]  # v >= 1 here; v > nextafter(1, -inf) = 0.99999994 there
    assert torch.equal(spikes["if1"], ours["if1"])


@pytest.mark.parametrize("peer", ["norse", "snntorch"])
def test_a_peer_graph_landing_on_the_threshold_fires_here_as_in_the_peer(tmp_path, capsys,
                                                                          peer):
    ADAPTERS[peer][0]()
    if peer == "norse":
        import norse.torch as norse

        lin = nn.Linear(1, 1, bias=False)
        net = norse.SequentialState(lin, norse.IAFCell(norse.IAFParameters(
            v_th=torch.tensor(1.0))))
    else:
        import snntorch as snn
        from snntorch.export_nir import export_to_nir

        lin = nn.Linear(1, 1, bias=False)
        net = nn.Sequential(lin, snn.Leaky(beta=torch.ones(1), threshold=torch.ones(1),
                                           init_hidden=True, reset_mechanism="zero"))
    with torch.no_grad():
        lin.weight.fill_(0.5)
    stateful = peer == "norse"
    graph = norse.to_nir(net, torch.ones(1, 1)) if stateful else export_to_nir(
        net, torch.ones(1))
    nir.write(tmp_path / "peer.nir", graph, compression=None)  # Norse's are scalars: no gzip
    assert main(["import-nir", str(tmp_path / "peer.nir"), "--out", str(tmp_path / "b.pt")]) == 0
    capsys.readouterr()
    plan = load_plan(tmp_path / "b.pt")
    ours = run_bindsnet(build_network(plan), torch.ones(1, 1), 10)
    if peer == "snntorch":
        from snntorch.utils import reset

        reset(net)
    theirs, _ = _run_peer_module(net, torch.ones(1, 1), ["1"], 10, stateful=stateful)
    steps = (torch.nonzero(ours["1"][:, 0, 0]).flatten() + 1).tolist()
    assert steps == [3, 6, 9]  # v = 1.0 does not exceed theta = 1 (NIR, and both peers)
    assert torch.equal(ours["1"], theirs["1"])


# ------------------------------------------------------ files the peers write, `import-nir`


def _norse_net(per_neuron):
    import norse.torch as norse

    torch.manual_seed(0)
    th1 = torch.rand(32) + 0.5 if per_neuron else torch.tensor(0.8)
    th2 = torch.rand(24) + 0.3 if per_neuron else torch.tensor(0.5)
    return norse.SequentialState(nn.Linear(16, 32), norse.IAFCell(norse.IAFParameters(v_th=th1)),
                                 nn.Linear(32, 24, bias=False),
                                 norse.IAFCell(norse.IAFParameters(v_th=th2)), nn.Linear(24, 5))


def _snntorch_net(per_neuron):
    import snntorch as snn

    torch.manual_seed(0)
    beta = (torch.ones(32), torch.ones(24)) if per_neuron else (1.0, 1.0)
    th = ((torch.rand(32) + 0.5, torch.rand(24) + 0.3) if per_neuron else (0.8, 0.5))
    return nn.Sequential(nn.Linear(16, 32), snn.Leaky(beta=beta[0], threshold=th[0],
                                                      init_hidden=True, reset_mechanism="zero"),
                         nn.Linear(32, 24, bias=False),
                         snn.Leaky(beta=beta[1], threshold=th[1], init_hidden=True,
                                   reset_mechanism="zero"), nn.Linear(24, 5))


@pytest.mark.parametrize("params", ["scalar", "per-neuron"])
@pytest.mark.parametrize("peer", ["norse", "snntorch"])
def test_a_file_written_by_the_peer_imports_with_every_spike(tmp_path, capsys, peer, params):
    ADAPTERS[peer][0]()
    per_neuron = params == "per-neuron"
    if peer == "norse":
        import norse.torch as norse

        net = _norse_net(per_neuron)
        graph = norse.to_nir(net, torch.randn(1, 16))  # Input keeps the sample's batch dim
    else:
        from snntorch.export_nir import export_to_nir

        net = _snntorch_net(per_neuron)
        if per_neuron:
            graph = export_to_nir(net, torch.randn(16))
        else:  # snnTorch's exporter fails its own type inference on scalar parameters
            with pytest.raises(ValueError, match="Type inference error"):
                export_to_nir(net, torch.randn(16))
            graph = snntorch_to_nir(net, torch.randn(16))
    if per_neuron:
        nir.write(tmp_path / "peer.nir", graph)  # the peer's graph, written to disk
    else:  # h5py cannot gzip the scalar parameters nir.write compresses by default
        with pytest.raises(TypeError, match="Scalar datasets don't support chunk/filter"):
            nir.write(tmp_path / "peer.nir", graph)
        nir.write(tmp_path / "peer.nir", graph, compression=None)
    if peer == "norse" and per_neuron:  # nir.read's type inference refuses the batch dim
        with pytest.raises(ValueError, match="Type inference error"):
            nir.read(tmp_path / "peer.nir")
    assert main(["import-nir", str(tmp_path / "peer.nir"), "--out", str(tmp_path / "n.pt")]) == 0
    assert "imported as full precision" in capsys.readouterr().err
    plan = load_plan(tmp_path / "n.pt")
    x = torch.randn(8, 16)
    ours = run_bindsnet(build_network(plan), x, 30)
    if peer == "snntorch":
        from snntorch.utils import reset

        reset(net)
    spikes, summed = _run_peer_module(net, x, ["1", "3"], 30, stateful=peer == "norse")
    for name in spikes:
        assert torch.equal(spikes[name], ours[name]), name
        assert int(ours[name].sum()) > 50, name
    assert torch.equal(summed, ours[READOUT])  # the readout integrates the last Linear
    assert plan.info.nir["readout"] == "integrates the current of '4'"


# -------------------------------------------------- the zoo's conv net on real images (slow)


@pytest.mark.slow
def test_the_zoo_fmnist_bwn_conversion_runs_in_norse_and_snntorch_on_real_images(tmp_path,
                                                                                  capsys):
    _norse()
    _snntorch()
    from bsnn_bindsnet.data.registry import load_dataset

    snn_file, graph = tmp_path / "snn.pt", tmp_path / "fmnist-bwn.nir"
    assert main(["convert", "zoo:fmnist-bwn", "--out", str(snn_file), "--reset", "zero",
                 "--v-init", "zero", "--no-eval"]) == 0
    assert main(["export-nir", str(snn_file), "--out", str(graph)]) == 0
    capsys.readouterr()
    test = load_dataset("fashion-mnist", "test")
    x = torch.stack([test[i][0] for i in range(8)])  # the first 8 test images
    plan = load_plan(snn_file)
    ours = run_bindsnet(build_network(plan), x, 16)
    for load in (norse_from_nir, snntorch_from_nir):
        spikes, out = run_peer(load(graph), x, 16, _spiking(plan))
        _assert_same(plan, ours, spikes)
        assert torch.equal(out, ours[READOUT])
    counts = {name: int(ours[name].sum()) for name in _spiking(plan)}
    with capsys.disabled():
        print(f"\nfmnist-bwn, 8 test images x 16 steps: {sum(counts.values())} spikes "
              f"{counts} and the readout identical in BindsNET, Norse 1.1.0 and snnTorch 1.0.0")
