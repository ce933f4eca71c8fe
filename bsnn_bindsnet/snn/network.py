"""Build a BindsNET ``Network`` from a conversion plan, and save / load plans.

A plan (:class:`~bsnn_bindsnet.snn.plan.BSNNPlan`) is topology + weights + thresholds, so a
converted network is saved as its plan (``torch.save`` of plain data and tensors, written
atomically) and rebuilt at any batch size. Every synapse builds its own connection
(:meth:`~bsnn_bindsnet.snn.plan.Synapse.connection`) and :func:`~bsnn_bindsnet.snn.nodes.if_nodes`
builds the IF layers, so a registered synapse type or reset needs no change here.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from bsnn_bindsnet.checkpoint import CheckpointError, atomic_save, safe_torch_load
from bsnn_bindsnet.snn.neurons import check_neuron_options
from bsnn_bindsnet.snn.plan import INPUT, READOUT, BSNNPlan

PLAN_FORMAT = "bsnn-bindsnet/bsnn-plan-v2"
# v1 plans (written before issue 25) still load; v2 is always written with an integrity record,
# so a v2 file without one is refused as damaged (checkpoint.UNHASHED_FORMATS lists only v1)
PLAN_FORMATS_READ = ("bsnn-bindsnet/bsnn-plan-v1", PLAN_FORMAT)

with warnings.catch_warnings():  # `import bindsnet` filters all warnings process-wide
    from bindsnet.network import Network
    from bindsnet.network.nodes import Input

from bsnn_bindsnet.snn.nodes import ReadoutNodes, if_nodes  # noqa: E402


class BSNNNetwork(Network):
    """BindsNET's ``Network`` with a leaner gathering of the input currents.

    ``Network._get_inputs`` allocates a zero tensor per layer and step and adds every incoming
    connection's current into it: two extra passes over each layer's current, in the default
    memory layout while the connections return channels-last currents. Here a layer with one
    incoming connection takes that connection's current as it is, and a layer with several
    (a residual block) their sum, in the order the connections were added. The values are the
    same (:math:`0 + a = a`); the current may be a tensor the connection keeps (a cached
    constant input), which BindsNET's nodes only read. ``Network.run`` is unchanged and calls
    every connection's ``compute`` each step.
    """

    def _get_inputs(self, layers=None) -> dict:
        layers = self.layers if layers is None else layers
        inputs: dict = {}
        for (_, target), conn in self.connections.items():
            if target not in layers:
                continue
            if hasattr(conn.target, "res_window_size"):  # BindsNET's CSRM nodes: its own way
                return super()._get_inputs(layers)
            current = conn.compute(conn.source.s)
            inputs[target] = current if target not in inputs else inputs[target] + current
        return inputs


def build_network(plan: BSNNPlan, *, dt: float = 1.0) -> Network:
    """A BindsNET network (:class:`BSNNNetwork`): ``input`` (``Input``), the IF layers,
    ``readout``.

    The plan is attached as ``network.bsnn_plan``.
    """
    check_plan_options(plan)
    net = BSNNNetwork(dt=dt, batch_size=1)
    net.add_layer(Input(shape=plan.input_shape), name=INPUT)
    for layer in plan.layers:
        if layer.kind == "if":
            nodes = if_nodes(layer.shape, layer.thresh, plan.reset, plan.v_init)
        else:
            nodes = ReadoutNodes(shape=layer.shape)
        net.add_layer(nodes, name=layer.name)
        inputs = [(layer.source, layer.synapse)]
        if layer.residual is not None:  # BindsNET sums the currents of all incoming synapses
            inputs.append((layer.residual.source, layer.residual.synapse))
        for source, synapse in inputs:
            conn = synapse.connection(net.layers[source], nodes)
            net.add_connection(conn, source=source, target=layer.name)
    net.train(False)
    net.bsnn_plan = plan
    return net


def check_plan_options(plan: BSNNPlan, where: str = "") -> None:
    """Refuse a reset or initial potential that is not registered in
    :mod:`bsnn_bindsnet.snn.neurons` (an unknown reset used to become reset-to-zero silently)."""
    check_neuron_options(plan.reset, plan.v_init, where=where)


def save_plan(plan: BSNNPlan, path: str | os.PathLike) -> Path:
    """Save a plan atomically (``bsnn convert`` output), synapses as dicts with a ``"type"``."""
    return atomic_save({"format": PLAN_FORMAT, **plan.to_dict()}, path)


def load_plan(path: str | os.PathLike) -> BSNNPlan:
    """Load a plan saved by :func:`save_plan`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no converted network at {path} (expected a file written by "
                                "`bsnn convert`)")
    blob = safe_torch_load(path, what="a converted bsnn-bindsnet network")
    if not isinstance(blob, dict) or blob.get("format") not in PLAN_FORMATS_READ:
        raise CheckpointError(f"{path} is not a converted bsnn-bindsnet network (expected "
                              f"format {PLAN_FORMAT!r})")
    try:
        plan = BSNNPlan.from_dict(blob)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        missing = f"missing key {err}" if isinstance(err, KeyError) else str(err)
        raise CheckpointError(f"{path} is an incomplete or damaged converted network "
                              f"({missing}); expected a file written by `bsnn convert` "
                              f"(input_shape, layers, reset, v_init, info)") from err
    check_plan_options(plan, where=f"{path}: ")
    return plan


def load_network(path: str | os.PathLike) -> Network:
    """Rebuild the BindsNET network saved at ``path``."""
    return build_network(load_plan(path))


__all__ = ["INPUT", "READOUT", "PLAN_FORMAT", "BSNNNetwork", "build_network", "check_plan_options",
           "load_network", "load_plan", "save_plan"]
