"""B-SNNs to and from NIR: round trips through files, binary weights, refusals, CLI, peers."""

import json

import numpy as np
import pytest
import torch

nir = pytest.importorskip("nir", reason="NIR support is optional: pip install 'bsnn-bindsnet[nir]'")

from bsnn_bindsnet.training.models import get_model  # noqa: E402
from bsnn_bindsnet.cli.main import main  # noqa: E402
from bsnn_bindsnet.conversion.convert import INPUT, READOUT, ann_to_bsnn  # noqa: E402
from bsnn_bindsnet.snn.encoding import encode  # noqa: E402
from bsnn_bindsnet.snn.network import build_network, load_plan, save_plan  # noqa: E402
from bsnn_bindsnet.interop.nir_io import (METADATA_KEY, from_nir, nir_to_network, read_nir,  # noqa: E402
                                  to_nir, write_nir)

T = 12


class _Recorder:
    """A BindsNET monitor keeping every layer's spikes and the readout's potential per step."""

    def __init__(self, network):
        self.network, self.steps = network, []

    def reset_state_variables(self):
        self.steps = []

    def record(self):
        layers = self.network.layers
        self.steps.append({name: (layers[name].v if name == READOUT else layers[name].s).clone()
                           for name in layers if name != INPUT})


def run_bindsnet(network, x, timesteps=T):
    """``{layer: [T, B, *shape]}`` spikes (bool) and the readout's potential, one-step mode."""
    rec = _Recorder(network)
    network.add_monitor(rec, "_rec")
    network.reset_state_variables()
    with torch.no_grad():
        network.run(inputs={INPUT: encode(x, timesteps, encoding="current")}, time=timesteps,
                    one_step=True)
    del network.monitors["_rec"]
    return {name: torch.stack([step[name] for step in rec.steps]) for name in rec.steps[0]}


def assert_same_run(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"layer {name} differs"


def converted_plan(seed=0, **kw):
    torch.manual_seed(seed)
    model = get_model("vgg_tiny", quant="bwn", pool=kw.pop("pool", "avg"),
                      pool_position=kw.pop("pool_position", "before"))
    calib = torch.randn(32, 1, 8, 8)
    return ann_to_bsnn(model, calib, build=False, **kw)


def direct_plan():
    from bsnn_bindsnet.direct.export import direct_to_plan
    from bsnn_bindsnet.direct.model import DirectBSNN

    torch.manual_seed(0)
    model = DirectBSNN(("c8p", "c8", "c8r", "f16r"), input_shape=(1, 8, 8), num_classes=5,
                       timesteps=4, residual_factor=0.5, v_init="half").eval()
    with torch.no_grad():  # non-trivial batch-norm statistics: per-channel thresholds, biases
        for bn in model.norms:
            bn.running_mean.uniform_(-0.3, 0.3)
            bn.running_var.uniform_(0.5, 2.0)
            if bn.affine:
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.2, 0.2)
    return direct_to_plan(model)


@pytest.mark.parametrize("reset,v_init,pool_position", [
    ("subtract", "half", "before"), ("zero", "zero", "before"), ("subtract", "zero", "after"),
    ("zero", "half", "after")])
def test_converted_round_trip_through_a_file_reproduces_every_spike(tmp_path, reset, v_init,
                                                                    pool_position):
    plan = converted_plan(reset=reset, v_init=v_init, pool_position=pool_position)
    path = write_nir(plan, tmp_path / "net.nir")
    back = from_nir(path)
    assert (back.reset, back.v_init) == (reset, v_init)
    assert [l.name for l in back.layers] == [l.name for l in plan.layers]
    x = torch.randn(8, 1, 8, 8)
    ours, theirs = run_bindsnet(build_network(plan), x), run_bindsnet(build_network(back), x)
    assert_same_run(ours, theirs)
    assert sum(int(v.sum()) for k, v in ours.items() if k != READOUT) > 0  # it does spike
    assert back.info.percentile == plan.info.percentile


def test_direct_route_round_trip_keeps_residuals_per_channel_thresholds_and_biases(tmp_path):
    plan = direct_plan()
    graph = to_nir(plan)
    assert ("block1", "block3_res") in graph.edges  # the residual from l-2 ...
    assert ("block3_res", "block3") in graph.edges  # ... into the same IF node
    thr = graph.nodes["block2"].v_threshold
    assert thr.shape == plan.layers[1].shape and len(np.unique(thr)) > 1  # per channel
    back = from_nir(write_nir(graph, tmp_path / "direct.nir"))
    for old, new in zip(plan.layers, back.layers):
        assert (old.residual is None) == (new.residual is None)
        if old.thresh is not None:
            assert torch.equal(torch.as_tensor(old.thresh), torch.as_tensor(new.thresh))
        if getattr(old.synapse, "bias", None) is not None:
            assert torch.equal(old.synapse.bias, new.synapse.bias)
    assert back.layers[2].residual.synapse.binary
    x = torch.rand(6, 1, 8, 8) * 2
    assert_same_run(run_bindsnet(build_network(plan), x), run_bindsnet(nir_to_network(graph), x))


def test_binary_weights_export_as_exactly_alpha_sign_and_come_back_binary(tmp_path):
    plan = converted_plan()
    graph = read_nir(write_nir(plan, tmp_path / "net.nir"))
    back = from_nir(graph)
    checked = 0
    for old, new in zip(plan.layers, back.layers):
        syn = old.synapse
        w = graph.nodes[f"{old.name}_syn" if old.kind == "if" else "readout_syn"].weight
        assert w.dtype == np.float32
        if not syn.binary:
            assert not new.synapse.binary
            assert np.array_equal(w, syn.weight.numpy())
            continue
        view = (-1,) + (1,) * (syn.sign.dim() - 1)
        expected = (syn.scale.float().view(view) * syn.sign.float()).numpy()
        assert np.array_equal(w.view(np.int32), expected.view(np.int32))  # bit for bit
        assert set(np.unique(np.abs(w[0]))) == {np.abs(w[0]).max()}  # two values +-alpha
        assert new.synapse.binary and new.synapse.sign.dtype == torch.int8
        assert torch.equal(new.synapse.sign, syn.sign)
        assert torch.equal(new.synapse.scale, syn.scale.float())
        checked += 1
    assert checked == 4  # three binary convs and the hidden linear layer


def test_the_file_says_how_neurons_reset_and_start(tmp_path):
    graph = read_nir(write_nir(converted_plan(reset="subtract", v_init="half"),
                               tmp_path / "net.nir"))
    meta = graph.metadata[METADATA_KEY]
    assert (meta["reset"], meta["v_init"], meta["spike_condition"]) == (
        "subtract", "half", "v > v_threshold")  # NIR's rule: thresholds are nextafter(theta, -inf)
    node = graph.nodes["relu1"]
    assert isinstance(node, nir.IF) and np.all(node.v_reset == 0) and np.all(node.r == 1)
    assert node.metadata["reset"] == "subtract" and node.metadata["name"] == "relu1"
    assert isinstance(graph.nodes[READOUT], nir.I)


def test_spike_max_pooling_is_refused_by_name():
    plan = converted_plan(pool="max", pool_position="after")
    with pytest.raises(NotImplementedError, match=r"layer '.*pool.*'.*max-pool.*no max-pooling"):
        to_nir(plan)


def _foreign_graph(**extra_nodes):
    """A hand-written graph without bsnn_bindsnet metadata: Input -> Affine -> IF -> Linear -> I."""
    w1 = np.array([[0.5, -0.25, 0.25], [0.25, 0.5, -0.5]], np.float32)
    w2 = np.array([[1.0, -1.0], [-2.0, 2.0]], np.float32)
    nodes = {"in": nir.Input(input_type={"input": np.array([3])}),
             "fc1": nir.Affine(weight=w1, bias=np.array([0.1, 0.0], np.float32)),
             "lif": nir.IF(r=np.ones(2, np.float32), v_threshold=np.array([1.0, 0.5], np.float32)),
             "fc2": nir.Linear(weight=w2), "acc": nir.I(r=np.ones(2, np.float32)),
             "out": nir.Output(output_type={"output": np.array([2])}), **extra_nodes}
    edges = [("in", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "acc"), ("acc", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_a_foreign_graph_is_read_with_nir_semantics():
    plan = from_nir(_foreign_graph())
    assert (plan.reset, plan.v_init) == ("zero", "zero")
    assert [l.name for l in plan.layers] == ["lif", READOUT]
    # NIR fires at v > v_threshold: stored as the next float32 up, so that v >= theta agrees
    assert torch.equal(plan.layers[0].thresh, torch.tensor([1.0000001192, 0.50000006]))
    assert not plan.layers[0].synapse.binary
    assert plan.layers[1].synapse.binary  # rows of one magnitude each: +-1 and +-2
    assert torch.equal(plan.layers[1].synapse.scale, torch.tensor([1.0, 2.0]))
    x = torch.tensor([[1.0, 0.5, 0.25]])
    run = run_bindsnet(build_network(plan), x, timesteps=6)
    # by hand: current [0.5375, 0.375], reset to zero, fire on exceeding the threshold (NIR)
    i = torch.tensor([0.5 - 0.125 + 0.0625 + 0.1, 0.25 + 0.25 - 0.125])
    v, spikes = torch.zeros(2), []
    for _ in range(6):
        v = v + i
        s = v > torch.tensor([1.0, 0.5])
        v = torch.where(s, torch.zeros(2), v)
        spikes.append(s)
    assert torch.equal(run["lif"][:, 0], torch.stack(spikes))


def test_unsupported_nodes_are_refused_by_name_and_type():
    lif = nir.LIF(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2))
    graph = _foreign_graph(lif=lif)
    with pytest.raises(NotImplementedError, match=r"NIR node 'lif' of type LIF: not supported; "
                                                  r"bsnn-bindsnet reads graphs of Input, .*IF"):
        from_nir(graph)
    bad = _foreign_graph()
    bad.nodes["lif"].v_reset = np.full(2, -1.0, np.float32)
    with pytest.raises(NotImplementedError, match="'lif' of type IF with a non-zero v_reset"):
        from_nir(bad)


def test_write_is_atomic_and_replaces_the_file(tmp_path):
    path = tmp_path / "net.nir"
    path.write_text("old")
    write_nir(converted_plan(), path)
    assert isinstance(read_nir(path), nir.NIRGraph)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.nir"]
    with pytest.raises(ValueError, match="not a readable NIR file"):
        (tmp_path / "junk.nir").write_text("junk")
        read_nir(tmp_path / "junk.nir")


# ---------------------------------------------------------------------------------- CLI


def test_cli_export_then_import_round_trips(tmp_path, capsys):
    plan = converted_plan(reset="zero")
    plan.info.dataset = "digits"
    net = tmp_path / "snn.pt"
    save_plan(plan, net)
    assert main(["export-nir", str(net), "--out", str(tmp_path / "net.nir")]) == 0
    assert json.loads(capsys.readouterr().out)["reset"] == "zero"
    assert main(["import-nir", str(tmp_path / "net.nir"), "--out", str(tmp_path / "b.pt")]) == 0
    back = load_plan(tmp_path / "b.pt")
    assert back.info.dataset == "digits"
    x = torch.randn(4, 1, 8, 8)
    assert_same_run(run_bindsnet(build_network(plan), x), run_bindsnet(build_network(back), x))


def test_cli_nir_commands_follow_the_overwrite_rule(tmp_path, capsys):
    net = tmp_path / "snn.pt"
    save_plan(converted_plan(), net)
    out = tmp_path / "net.nir"
    out.write_text("keep me")
    assert main(["export-nir", str(net), "--out", str(out)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == "keep me"
    assert main(["export-nir", str(net), "--out", str(net), "--overwrite"]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert main(["export-nir", str(net), "--out", str(out), "--overwrite"]) == 0
    capsys.readouterr()
    assert main(["import-nir", str(out), "--out", str(out), "--overwrite"]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert main(["import-nir", str(tmp_path / "missing.nir"), "--out",
                 str(tmp_path / "x.pt")]) == 2
    assert "no NIR graph at" in capsys.readouterr().err
    assert main(["import-nir", str(out), "--out", str(tmp_path), "--dataset", "digits"]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_cli_import_refuses_an_unsupported_graph_in_one_line(tmp_path, capsys):
    lif = nir.LIF(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2))
    write_nir(_foreign_graph(lif=lif), tmp_path / "g.nir")
    assert main(["import-nir", str(tmp_path / "g.nir"), "--out", str(tmp_path / "g.pt")]) == 2
    err = capsys.readouterr().err
    assert "NIR node 'lif' of type LIF: not supported" in err and not (tmp_path / "g.pt").exists()


# -------------------------------------------------------------------------------- peers
# Exported graphs are loaded with the peers' own NIR importers and run for T steps on the same
# constant current. Neither snnTorch 1.0.0 nor Norse 1.1.0 imports NIR's I (integrator), so the
# peer gets the graph up to the readout's synapse and its readout is the running sum of that
# current (what BindsNET's ReadoutNodes integrate). Verified versions: see setup.cfg [peers].


def _peer_mlp_plan(reset):
    from collections import OrderedDict

    from torch import nn

    from bsnn_bindsnet.ann.binarize import BinaryLinear

    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict([("fc1", nn.Linear(16, 32)), ("relu1", nn.ReLU()),
                                       ("fc2", BinaryLinear(32, 24)), ("relu2", nn.ReLU()),
                                       ("fc3", nn.Linear(24, 5))]))
    return ann_to_bsnn(model, torch.randn(64, 16), reset=reset, v_init="zero", build=False)


def _without_readout(graph):
    """The graph with its I node removed: the readout's synapse feeds the Output."""
    src = next(a for a, b in graph.edges if b == READOUT)
    nodes = {k: v for k, v in graph.nodes.items() if k != READOUT}
    edges = [(a, b) for a, b in graph.edges if READOUT not in (a, b)] + [(src, "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=graph.metadata)


def _run_peer(net, x, layers, timesteps):
    """Spikes of ``layers`` ``[T, B, n]`` (forward hooks) and the integrated readout."""
    rec = {name: [] for name in layers}
    for name in layers:
        getattr(net, name).register_forward_hook(
            lambda mod, inp, out, name=name: rec[name].append(
                (out[0] if isinstance(out, tuple) else out).detach().clone()))
    state, acc, readout = None, None, []
    with torch.no_grad():
        for _ in range(timesteps):
            out, state = net(x, state)
            acc = out.clone() if acc is None else acc.add_(out)
            readout.append(acc.clone())
    return {name: torch.stack(v).bool() for name, v in rec.items()}, torch.stack(readout)


PEER_T = 30


def test_norse_agrees_spike_for_spike_on_a_reset_to_zero_bsnn(tmp_path):
    norse = pytest.importorskip("norse.torch", reason="peer check: pip install "
                                "'bsnn-bindsnet[peers]' (norse)")
    plan = _peer_mlp_plan("zero")
    graph = read_nir(write_nir(plan, tmp_path / "rif.nir"))
    x = torch.randn(8, 16)
    ours = run_bindsnet(build_network(plan), x, PEER_T)
    spikes, readout = _run_peer(norse.from_nir(_without_readout(graph)), x, ["relu1", "relu2"],
                                PEER_T)
    for name in spikes:
        assert torch.equal(spikes[name], ours[name]), name
    assert torch.equal(readout, ours[READOUT])
    assert int(ours["relu2"].sum()) > 100


def test_norse_resets_to_zero_so_a_subtractive_bsnn_runs_as_rif_there(tmp_path):
    # Norse's IAF reads v_reset (0) and ignores bsnn_bindsnet's "reset": "subtract": it runs the
    # SIF graph exactly as BindsNET runs the same plan with reset to zero.
    norse = pytest.importorskip("norse.torch", reason="peer check: norse not installed")
    plan = _peer_mlp_plan("subtract")
    graph = read_nir(write_nir(plan, tmp_path / "sif.nir"))
    x = torch.randn(8, 16)
    ours_sif = run_bindsnet(build_network(plan), x, PEER_T)
    plan.reset = "zero"
    ours_rif = run_bindsnet(build_network(plan), x, PEER_T)
    spikes, _ = _run_peer(norse.from_nir(_without_readout(graph)), x, ["relu1", "relu2"], PEER_T)
    assert all(torch.equal(spikes[n], ours_rif[n]) for n in spikes)
    assert not torch.equal(spikes["relu1"], ours_sif["relu1"])


def _snntorch_if(net, names, reset):
    """snnTorch 1.0.0 imports NIR's IF as ``Leaky(beta=0.9, init_hidden=False)``: a leaky
    neuron whose (spk, mem) tuple breaks the next layer. Replace it with the IF it stands for:
    ``Leaky(beta=1)`` with the threshold it read and the graph's reset."""
    import snntorch as snn

    for name in names:
        mod = getattr(net, name)
        assert float(mod.beta) == pytest.approx(0.9)  # documents the importer's choice
        setattr(net, name, snn.Leaky(beta=1.0, threshold=float(mod.threshold), init_hidden=True,
                                     reset_mechanism=reset, reset_delay=False))
    return net


def test_snntorch_agrees_spike_for_spike_on_a_reset_to_zero_bsnn(tmp_path):
    pytest.importorskip("snntorch", reason="peer check: pip install 'bsnn-bindsnet[peers]'")
    from snntorch.import_nir import import_from_nir

    plan = _peer_mlp_plan("zero")
    graph = read_nir(write_nir(plan, tmp_path / "rif.nir"))
    x = torch.randn(8, 16)
    ours = run_bindsnet(build_network(plan), x, PEER_T)
    net = _snntorch_if(import_from_nir(_without_readout(graph)), ["relu1", "relu2"], "zero")
    spikes, readout = _run_peer(net, x, ["relu1", "relu2"], PEER_T)
    for name in spikes:
        assert torch.equal(spikes[name], ours[name]), name
    assert torch.equal(readout, ours[READOUT])


def test_snntorch_subtractive_reset_matches_up_to_its_rounding(tmp_path):
    # snnTorch subtracts in two stages ((v + x - r*theta) - (s - r)*theta, r = [v_prev >
    # theta]), which rounds differently from v + x - s*theta once a residue exceeds theta: the
    # first IF layer is identical, the next one differs in a few spikes out of hundreds.
    pytest.importorskip("snntorch", reason="peer check: snntorch not installed")
    from snntorch.import_nir import import_from_nir

    plan = _peer_mlp_plan("subtract")
    graph = read_nir(write_nir(plan, tmp_path / "sif.nir"))
    x = torch.randn(8, 16)
    ours = run_bindsnet(build_network(plan), x, PEER_T)
    net = _snntorch_if(import_from_nir(_without_readout(graph)), ["relu1", "relu2"], "subtract")
    spikes, _ = _run_peer(net, x, ["relu1", "relu2"], PEER_T)
    assert torch.equal(spikes["relu1"], ours["relu1"])
    mismatch = int((spikes["relu2"] != ours["relu2"]).sum())
    assert mismatch <= 0.02 * int(ours["relu2"].sum())


# ------------------------------------------------------------------ peer -> BindsNET
# Networks built and exported by the peers themselves (Norse's to_nir, snnTorch's
# export_to_nir), imported with from_nir and run on the same constant current as the peer
# module they came from. Norse writes IAFCell as IF(r=1, v_threshold, v_reset=0) with scalar
# parameters and the sample's batch dimension in Input; snnTorch writes Leaky(beta=1) as
# LIF(tau=inf, r=inf, v_leak=0, v_reset=0), whatever its reset_mechanism. Both peers reset to
# zero and fire on v > theta (BindsNET: v >= theta; random currents never hit theta exactly).


def _hand_graph(end):
    """Input (with a batch dim) -> Affine -> LIF(tau = r = inf) -> Linear -> IF [-> Output]."""
    nodes = {"in": nir.Input(input_type={"input": np.array([1, 3])}),
             "fc1": nir.Affine(weight=np.array([[0.5, -0.25, 0.25], [0.25, 0.5, -0.5]],
                                               np.float32), bias=np.array([0.1, 0.0], np.float32)),
             "n1": nir.LIF(tau=np.full(2, np.inf), r=np.full(2, np.inf), v_leak=np.zeros(2),
                           v_threshold=np.array([1.0, 0.5], np.float32)),
             "fc2": nir.Linear(weight=np.array([[1.0, -1.0], [0.5, 1.0]], np.float32)),
             "n2": nir.IF(r=np.array(1.0), v_threshold=np.array(0.75)),
             "out": nir.Output(output_type={"output": np.array([2])})}
    edges = [("in", "fc1"), ("fc1", "n1"), ("n1", "fc2")]
    if end == "spikes":
        edges += [("fc2", "n2"), ("n2", "out")]
    else:
        del nodes["n2"]
        edges += [("fc2", "out")]
    nodes["fc1"].input_type = {"input": np.array([3])}  # what nirtorch records
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@pytest.mark.parametrize("end", ["spikes", "current"])
def test_a_graph_without_an_integrator_gets_a_readout_from_its_output(end):
    plan = from_nir(_hand_graph(end))
    assert plan.input_shape == (3,)  # the batch dimension nirtorch records is dropped
    x = torch.tensor([[1.0, 0.5, 0.25]])
    run = run_bindsnet(build_network(plan), x, timesteps=6)
    # by hand: n1 gets [0.5375, 0.375] per step (LIF without leak: an IF), resets to zero
    i1, v, s1 = torch.tensor([0.5375, 0.375]), torch.zeros(2), []
    for _ in range(6):
        v = v + i1
        s1.append(v > torch.tensor([1.0, 0.5]))  # NIR's rule
        v = torch.where(s1[-1], torch.zeros(2), v)
    s1 = torch.stack(s1).float()
    assert torch.equal(run["n1"][:, 0], s1.bool())
    i2 = s1 @ torch.tensor([[1.0, -1.0], [0.5, 1.0]]).T
    if end == "current":  # fc2 -> Output: the readout integrates fc2's current
        assert [l.name for l in plan.layers] == ["n1", READOUT]
        assert plan.info.nir["readout"] == "integrates the current of 'fc2'"
        assert torch.allclose(run[READOUT][:, 0], i2.cumsum(0))
        return
    assert [l.name for l in plan.layers] == ["n1", "n2", READOUT]  # n2 -> Output: its spikes
    assert plan.layers[1].shape == (2,)  # scalar params; v > 0.75 is v >= the next float32 up
    assert plan.layers[1].thresh == float(np.nextafter(np.float32(0.75), np.float32(1)))
    v, s2 = torch.zeros(2), []
    for t in range(6):
        v = v + i2[t]
        s2.append(v > 0.75)
        v = torch.where(s2[-1], torch.zeros(2), v)
    s2 = torch.stack(s2)
    assert torch.equal(run["n2"][:, 0], s2) and int(s2.sum()) > 0
    assert plan.info.nir["readout"] == "counts the spikes of 'n2'"
    assert torch.equal(run[READOUT][:, 0], s2.float().cumsum(0))  # the readout counts spikes


def _run_peer_module(net, x, layers, timesteps, stateful):
    """Spikes of ``layers`` (forward hooks) and the running sum of the module's output."""
    rec = {name: [] for name in layers}
    for name in layers:
        getattr(net, name).register_forward_hook(
            lambda mod, inp, out, name=name: rec[name].append(
                (out[0] if isinstance(out, tuple) else out).detach().clone()))
    state, acc, outs = None, None, []
    with torch.no_grad():
        for _ in range(timesteps):
            if stateful:
                out, state = net(x, state)
            else:
                out = net(x)
            out = out[0] if isinstance(out, tuple) else out
            acc = out.clone() if acc is None else acc.add_(out)
            outs.append(acc.clone())
    return {name: torch.stack(v).bool() for name, v in rec.items()}, torch.stack(outs)


def _assert_peer_run(plan, ours, spikes, summed, end):
    for name in spikes:
        assert torch.equal(spikes[name], ours[name]), name
        assert int(ours[name].sum()) > 100, name  # it does spike
    assert plan.info.nir["readout"] == (
        "counts the spikes of '3'" if end == "spikes" else "integrates the current of '4'")
    assert torch.equal(summed, ours[READOUT])  # spike counts, or the summed Linear outputs


@pytest.mark.parametrize("end", ["spikes", "linear"])
def test_a_network_exported_by_norse_runs_in_bindsnet_spike_for_spike(end):
    norse = pytest.importorskip("norse.torch", reason="peer check: pip install "
                                "'bsnn-bindsnet[peers]' (norse)")
    from torch import nn

    torch.manual_seed(0)
    mods = [nn.Linear(16, 32), norse.IAFCell(norse.IAFParameters(v_th=torch.tensor(0.8))),
            nn.Linear(32, 24, bias=False),
            norse.IAFCell(norse.IAFParameters(v_th=torch.tensor(0.5)))]
    net = norse.SequentialState(*mods, *([nn.Linear(24, 5)] if end == "linear" else []))
    graph = norse.to_nir(net, torch.randn(1, 16))
    assert isinstance(graph.nodes["1"], nir.IF) and np.shape(graph.nodes["1"].r) == ()
    plan = from_nir(graph)
    assert plan.input_shape == (16,) and [l.shape for l in plan.layers[:2]] == [(32,), (24,)]
    x = torch.randn(8, 16)
    ours = run_bindsnet(build_network(plan), x, PEER_T)
    spikes, summed = _run_peer_module(net, x, ["1", "3"], PEER_T, stateful=True)
    if end == "spikes":
        summed = spikes["3"].float().cumsum(0)
    _assert_peer_run(plan, ours, spikes, summed, end)


def _snntorch_net(end, reset="zero"):
    import snntorch as snn
    from torch import nn

    torch.manual_seed(0)  # per-neuron beta and threshold: snnTorch 1.0.0's exporter fails on
    mods = [nn.Linear(16, 32),  # scalar ones (its LIF nodes get no shape)
            snn.Leaky(beta=torch.ones(32), threshold=torch.full((32,), 0.8), init_hidden=True,
                      reset_mechanism=reset),
            nn.Linear(32, 24, bias=False),
            snn.Leaky(beta=torch.ones(24), threshold=torch.full((24,), 0.5), init_hidden=True,
                      reset_mechanism=reset, output=end == "spikes")]
    return nn.Sequential(*mods, *([nn.Linear(24, 5)] if end == "linear" else []))


@pytest.mark.parametrize("end", ["spikes", "linear"])
def test_a_network_exported_by_snntorch_runs_in_bindsnet_spike_for_spike(end):
    pytest.importorskip("snntorch", reason="peer check: pip install 'bsnn-bindsnet[peers]'")
    from snntorch.export_nir import export_to_nir
    from snntorch.utils import reset

    net = _snntorch_net(end)
    graph = export_to_nir(net, torch.randn(16))
    node = graph.nodes["1"]
    assert isinstance(node, nir.LIF) and np.all(np.isposinf(node.tau)) and np.all(
        np.isposinf(node.r))  # beta = 1: tau = dt / (1 - beta), r = tau / dt
    plan = from_nir(graph)
    x = torch.randn(8, 16)
    ours = run_bindsnet(build_network(plan), x, PEER_T)
    reset(net)
    spikes, summed = _run_peer_module(net, x, ["1", "3"], PEER_T, stateful=False)
    if end == "spikes":
        summed = spikes["3"].float().cumsum(0)
    _assert_peer_run(plan, ours, spikes, summed, end)


def test_snntorch_exports_a_subtractive_leaky_as_reset_to_zero():
    # snnTorch 1.0.0 writes v_reset = 0 for every Leaky and drops reset_mechanism: its default
    # "subtract" network comes into BindsNET (as into any NIR reader) as reset to zero.
    pytest.importorskip("snntorch", reason="peer check: snntorch not installed")
    from snntorch.export_nir import export_to_nir
    from snntorch.utils import reset

    net = _snntorch_net("spikes", reset="subtract")
    plan = from_nir(export_to_nir(net, torch.randn(16)))
    assert plan.reset == "zero"
    x = torch.randn(8, 16)
    ours = run_bindsnet(build_network(plan), x, PEER_T)
    reset(net)
    subtract, _ = _run_peer_module(net, x, ["1"], PEER_T, stateful=False)
    zero_net = _snntorch_net("spikes", reset="zero")
    reset(zero_net)
    zero, _ = _run_peer_module(zero_net, x, ["1"], PEER_T, stateful=False)
    assert torch.equal(ours["1"], zero["1"]) and not torch.equal(ours["1"], subtract["1"])


def test_leaky_peer_neurons_are_refused_by_name():
    norse = pytest.importorskip("norse.torch", reason="peer check: norse not installed")
    from torch import nn

    graph = norse.to_nir(norse.SequentialState(nn.Linear(4, 3), norse.LIFBoxCell()),
                         torch.randn(1, 4))
    with pytest.raises(NotImplementedError, match=r"NIR node '1' of type LIF: not supported; "
                                                  r".*this one has tau in \[1e-05"):
        from_nir(graph)
    graph = norse.to_nir(norse.SequentialState(nn.Linear(4, 3), norse.LIFCell()),
                         torch.randn(1, 4))
    with pytest.raises(NotImplementedError, match="NIR node '1' of type CubaLIF: not supported"):
        from_nir(graph)


# ------------------------------------------------- NIR's firing rule: v > v_threshold (issue 24)
# This package fires at v >= theta, NIR's IF (and Norse, snnTorch) at v > v_threshold. Exported
# thresholds are nextafter(theta, -inf) in float32, so both fire on the same steps; an imported
# v_threshold (NIR's rule) becomes theta = nextafter(v_threshold, +inf). Weight 0.5, theta 1,
# input 1: v = 0.5, 1.0 (= theta) ...: here steps 2, 4, 6, 8, 10; by NIR's rule 3, 6, 9.


def boundary_plan():
    """Input -> weight 0.5 -> IF (theta 1, reset to zero, v(0) = 0) -> readout."""
    from bsnn_bindsnet.snn.plan import BSNNPlan, LayerSpec, LinearSynapse

    return BSNNPlan((1,), [
        LayerSpec("if1", "if", (1,), INPUT, LinearSynapse(weight=torch.tensor([[0.5]])),
                  thresh=1.0),
        LayerSpec(READOUT, "readout", (1,), "if1", LinearSynapse(weight=torch.tensor([[1.0]])))],
        reset="zero", v_init="zero")


def _steps(spikes):
    """1-based steps at which the first neuron of the first sample fires."""
    return (torch.nonzero(spikes.reshape(spikes.shape[0], -1)[:, 0]).flatten() + 1).tolist()


def test_exported_thresholds_make_nirs_rule_fire_on_the_same_steps(tmp_path):
    plan = boundary_plan()
    graph = read_nir(write_nir(plan, tmp_path / "b.nir"))
    thr, w = graph.nodes["if1"].v_threshold, graph.nodes["if1_syn"].weight
    assert thr.dtype == np.float32 and thr[0] == np.float32(0.99999994)  # nextafter(1, -inf)
    v, nir_steps = np.zeros(1, np.float32), []
    for t in range(1, 11):  # NIR's IF by hand: v += W x; fire at v > v_threshold; v <- v_reset
        v = v + w @ np.ones(1, np.float32)
        if v[0] > thr[0]:
            nir_steps.append(t)
            v[:] = graph.nodes["if1"].v_reset
    ours = _steps(run_bindsnet(build_network(plan), torch.ones(1, 1), 10)["if1"])
    assert ours == nir_steps == [2, 4, 6, 8, 10]
    assert from_nir(graph).layers[0].thresh == 1.0  # and theta comes back exactly


def boundary_graph(spike_condition=None):
    """Input -> Linear(0.5) -> IF(v_threshold = 1) -> Linear(1) -> I -> Output, from another tool
    (no metadata), or with this package's nir-v1 metadata (``spike_condition`` v >= ...)."""
    nodes = {"in": nir.Input(input_type={"input": np.array([1])}),
             "w": nir.Linear(weight=np.array([[0.5]], np.float32)),
             "if1": nir.IF(r=np.ones(1, np.float32), v_threshold=np.ones(1, np.float32),
                           v_reset=np.zeros(1, np.float32)),
             "w2": nir.Linear(weight=np.array([[1.0]], np.float32)),
             "acc": nir.I(r=np.ones(1, np.float32)),
             "out": nir.Output(output_type={"output": np.array([1])})}
    edges = [("in", "w"), ("w", "if1"), ("if1", "w2"), ("w2", "acc"), ("acc", "out")]
    meta = {} if spike_condition is None else {METADATA_KEY: {
        "format": "bsnn-bindsnet/nir-v1", "spike_condition": spike_condition}}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)


@pytest.mark.parametrize("condition,steps", [(None, [3, 6, 9]),
                                             ("v >= v_threshold", [2, 4, 6, 8, 10])])
def test_import_follows_nirs_rule_and_reads_nir_v1_files_as_written(tmp_path, capsys, condition,
                                                                    steps):
    write_nir(boundary_graph(condition), tmp_path / "g.nir")
    assert main(["import-nir", str(tmp_path / "g.nir"), "--out", str(tmp_path / "b.pt")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["spike_condition"] == (condition or "v > v_threshold")
    run = run_bindsnet(build_network(load_plan(tmp_path / "b.pt")), torch.ones(1, 1), 10)
    assert _steps(run["if1"]) == steps


# --------------------------------------------------------------- import validation (issue 24)


@pytest.mark.parametrize("node,field,value,message", [
    ("fc1", "weight", np.nan, r"NIR node 'fc1' \(Affine\): its weight holds 1 NaN/inf value; "
                              r"expected finite numbers"),
    ("fc2", "weight", -np.inf, r"NIR node 'fc2' \(Linear\): its weight holds 1 NaN/inf value"),
    ("fc1", "bias", np.inf, r"NIR node 'fc1' \(Affine\): its bias holds 1 NaN/inf value"),
    ("lif", "v_threshold", np.nan, r"NIR node 'lif' \(IF\): 1 v_threshold value is not a finite "
                                   r"positive number \(e\.g\. nan\); expected v_threshold > 0"),
    ("lif", "v_threshold", 0.0, r"NIR node 'lif' \(IF\): 1 v_threshold value is not .*\(e\.g\. "
                                r"0\); expected v_threshold > 0"),
    ("lif", "v_threshold", -0.5, r"'lif' \(IF\): 1 v_threshold value .*\(e\.g\. -0\.5\)"),
    ("lif", "v_threshold", np.inf, r"'lif' \(IF\): 1 v_threshold value .*\(e\.g\. inf\)")])
def test_import_refuses_a_broken_graph_naming_the_node(tmp_path, capsys, node, field, value,
                                                       message):
    import re

    graph = _foreign_graph()
    arr = np.array(getattr(graph.nodes[node], field), np.float32)
    arr.flat[0] = value
    setattr(graph.nodes[node], field, arr)
    write_nir(graph, tmp_path / "bad.nir")
    with pytest.raises(ValueError, match=message):
        from_nir(tmp_path / "bad.nir")
    assert main(["import-nir", str(tmp_path / "bad.nir"), "--out", str(tmp_path / "b.pt")]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and err.count("\n") == 1
    assert not (tmp_path / "b.pt").exists()


def test_import_says_which_layers_have_float_weights(tmp_path, capsys):
    write_nir(_foreign_graph(), tmp_path / "g.nir")
    assert main(["import-nir", str(tmp_path / "g.nir"), "--out", str(tmp_path / "g.pt")]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["full_precision"] == ["lif"]  # fc2 is +-1, +-2: binary
    assert ("note: lif: float weights (rows not +-alpha), imported as full precision"
            in captured.err)


def test_a_file_nirs_own_type_inference_refuses_still_imports(tmp_path):
    # nirtorch (Norse's to_nir) keeps the sample's batch dimension in Input: nir.read's type
    # inference refuses the file; read_nir / from_nir check the shapes themselves
    path = write_nir(_hand_graph("spikes"), tmp_path / "batch.nir")  # scalar n2: not gzipped
    with pytest.raises(ValueError, match="Type inference error"):
        nir.read(path)
    plan = from_nir(path)
    assert plan.input_shape == (3,) and [l.name for l in plan.layers] == ["n1", "n2", READOUT]


def test_a_flatten_that_keeps_two_dimensions_is_refused():
    graph = to_nir(converted_plan(reset="zero", v_init="zero"))
    flat = next(k for k, n in graph.nodes.items() if isinstance(n, nir.Flatten))
    graph.nodes[flat].start_dim = 1  # (C, H, W) -> (C, H*W)
    with pytest.raises(ValueError, match=rf"NIR node '{flat}' \(Flatten\): start_dim 1, end_dim "
                                         r"-1 of a .* expected it to flatten the whole sample"):
        from_nir(graph)


# ------------------------------------------------ SIF, v(0) and --peer-compatible (issue 24)


def test_peer_compatible_export_refuses_a_network_peers_would_run_differently(tmp_path, capsys):
    net, out = tmp_path / "sif.pt", tmp_path / "g.nir"
    save_plan(converted_plan(reset="subtract", v_init="half"), net)
    assert main(["export-nir", str(net), "--out", str(out), "--peer-compatible"]) == 2
    err = capsys.readouterr().err
    assert "reset 'subtract'" in err and "v_init 'half'" in err and err.count("\n") == 1
    assert "Convert with --reset zero --v-init zero" in err and not out.exists()
    assert main(["export-nir", str(net), "--out", str(out)]) == 0  # written, with a warning
    captured = capsys.readouterr()
    assert "warning: a peer simulator runs another network" in captured.err
    assert json.loads(captured.out)["peers_run_it"] is False


def test_peer_compatible_export_ends_at_the_readouts_synapse_and_round_trips(tmp_path, capsys):
    plan = converted_plan(reset="zero", v_init="zero")
    save_plan(plan, tmp_path / "rif.pt")
    out = tmp_path / "p.nir"
    assert main(["export-nir", str(tmp_path / "rif.pt"), "--out", str(out),
                 "--peer-compatible"]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err and json.loads(captured.out)["peers_run_it"] is True
    graph = read_nir(out)
    assert not any(isinstance(n, nir.I) for n in graph.nodes.values())
    assert ("readout_syn", "output") in graph.edges
    flats = [n for n in graph.nodes.values() if isinstance(n, nir.Flatten)]
    assert flats and all(n.start_dim < 0 and n.end_dim == -1 for n in flats)  # batch-proof
    back = from_nir(out)
    assert back.info.nir["readout"] == "integrates the current of 'readout_syn'"
    x = torch.randn(4, 1, 8, 8)
    assert_same_run(run_bindsnet(build_network(plan), x), run_bindsnet(build_network(back), x))
