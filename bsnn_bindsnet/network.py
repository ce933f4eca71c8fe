"""Build a BindsNET ``Network`` from a conversion plan, and save / load plans.

A plan (:class:`~bsnn_bindsnet.convert.BSNNPlan`) is topology + weights + thresholds, so a
converted network is saved as its plan (``torch.save`` of plain data and tensors, written
atomically) and rebuilt at any batch size.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from bsnn_bindsnet.checkpoint import CheckpointError, atomic_save, safe_torch_load
from bsnn_bindsnet.convert import INPUT, READOUT, RESETS, V_INITS, BSNNPlan, LayerSpec

PLAN_FORMAT = "bsnn-bindsnet/bsnn-plan-v1"

with warnings.catch_warnings():  # `import bindsnet` filters all warnings process-wide
    from bindsnet.network import Network
    from bindsnet.network.nodes import Input

from bsnn_bindsnet.connections import (AvgPool2dConnection, BinaryConnection,  # noqa: E402
                                       BinaryConv2dConnection, FullPrecisionConnection,
                                       FullPrecisionConv2dConnection, MaxPool2dConnection)
from bsnn_bindsnet.nodes import ReadoutNodes, ResetIFNodes, SubtractiveIFNodes  # noqa: E402


def _avg_pool(args: dict[str, Any] | None) -> torch.nn.AvgPool2d | None:
    return None if args is None else torch.nn.AvgPool2d(**args)


def _connection(syn: dict[str, Any], source, target):
    kind = syn["type"]
    if kind in ("avgpool", "maxpool"):
        cls = AvgPool2dConnection if kind == "avgpool" else MaxPool2dConnection
        return cls(source, target, kernel_size=syn["kernel_size"], stride=syn["stride"],
                   padding=syn["padding"], ceil_mode=syn["ceil_mode"])
    if kind == "conv":
        geometry = {"stride": syn["stride"], "padding": syn["padding"],
                    "pool": _avg_pool(syn["pool"])}
        if syn["binary"]:
            return BinaryConv2dConnection(source, target, weight=syn["sign"].float(),
                                          scale=syn["scale"], bias=syn["bias"], **geometry)
        return FullPrecisionConv2dConnection(source, target, weight=syn["weight"],
                                             bias=syn["bias"], **geometry)
    if kind == "linear":
        if syn["binary"]:
            return BinaryConnection(source, target, weight=syn["sign"].float(),
                                    scale=syn["scale"], bias=syn["bias"])
        return FullPrecisionConnection(source, target, weight=syn["weight"], bias=syn["bias"])
    raise ValueError(f"unknown synapse type {kind!r}")


def build_network(plan: BSNNPlan, *, dt: float = 1.0) -> Network:
    """A BindsNET ``Network``: ``input`` (``Input``), the IF layers, ``readout``.

    The plan is attached as ``network.bsnn_plan``.
    """
    check_plan_options(plan)
    node_cls = SubtractiveIFNodes if plan.reset == "subtract" else ResetIFNodes
    net = Network(dt=dt, batch_size=1)
    net.add_layer(Input(shape=plan.input_shape), name=INPUT)
    for layer in plan.layers:
        if layer.kind == "if":
            nodes = node_cls(shape=layer.shape, thresh=layer.thresh, v_init=plan.v_init)
        else:
            nodes = ReadoutNodes(shape=layer.shape)
        net.add_layer(nodes, name=layer.name)
        conn = _connection(layer.synapse, net.layers[layer.source], nodes)
        net.add_connection(conn, source=layer.source, target=layer.name)
        if layer.residual is not None:  # BindsNET sums the currents of all incoming synapses
            src = layer.residual["source"]
            conn = _connection(layer.residual["synapse"], net.layers[src], nodes)
            net.add_connection(conn, source=src, target=layer.name)
    net.train(False)
    net.bsnn_plan = plan
    return net


def check_plan_options(plan: BSNNPlan, where: str = "") -> None:
    """Refuse a reset or initial potential this library does not implement (an unknown reset
    used to become reset-to-zero silently)."""
    for field, value, allowed in (("reset", plan.reset, RESETS),
                                  ("v_init", plan.v_init, V_INITS)):
        if value not in allowed:
            raise ValueError(f"{where}{field} {value!r} is unknown; expected one of "
                             f"{', '.join(allowed)}")


def save_plan(plan: BSNNPlan, path: str | os.PathLike) -> Path:
    """Save a plan atomically (``bsnn convert`` output)."""
    return atomic_save({"format": PLAN_FORMAT, **asdict(plan)}, path)


def load_plan(path: str | os.PathLike) -> BSNNPlan:
    """Load a plan saved by :func:`save_plan`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no converted network at {path} (expected a file written by "
                                "`bsnn convert`)")
    blob = safe_torch_load(path, what="a converted bsnn-bindsnet network")
    if not isinstance(blob, dict) or blob.get("format") != PLAN_FORMAT:
        raise CheckpointError(f"{path} is not a converted bsnn-bindsnet network (expected "
                              f"format {PLAN_FORMAT!r})")
    layers = [LayerSpec(**{**d, "shape": tuple(d["shape"])}) for d in blob["layers"]]
    plan = BSNNPlan(tuple(blob["input_shape"]), layers, reset=blob["reset"],
                    v_init=blob["v_init"], info=blob["info"])
    check_plan_options(plan, where=f"{path}: ")
    return plan


def load_network(path: str | os.PathLike) -> Network:
    """Rebuild the BindsNET network saved at ``path``."""
    return build_network(load_plan(path))


__all__ = ["INPUT", "READOUT", "PLAN_FORMAT", "build_network", "check_plan_options",
           "load_network", "load_plan", "save_plan"]
