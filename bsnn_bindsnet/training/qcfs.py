"""Training support for QCFS networks (issue 14): thresholds of a network fine-tuned from a
ReLU run, and the unrolled B-SNN that ``*-qcfs-snn`` presets train through.

A QCFS model initialized from a ReLU checkpoint (``bsnn train --preset fmnist-qcfs-bwn
--init-from zoo:fmnist-bwn``) has no trained :math:`\\lambda`: each starts, as in the issue's
first measurement and in QCFS's own fine-tuning, at the 99.9th percentile of the activation
the ReLU produced there on the calibration split (:func:`init_thresholds`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from torch import nn

from bsnn_bindsnet.ann.qcfs import QCFS

__all__ = ["INIT_PERCENTILE", "init_thresholds", "qcfs_modules", "untrained_thresholds"]

INIT_PERCENTILE = 99.9


def qcfs_modules(model: nn.Module) -> dict[str, QCFS]:
    """Name -> every :class:`QCFS` of ``model``."""
    return {name: m for name, m in model.named_modules() if isinstance(m, QCFS)}


def untrained_thresholds(model: nn.Module, state_dict: Any) -> list[str]:
    """The QCFS modules of ``model`` whose :math:`\\lambda` is not in ``state_dict`` (a
    checkpoint of a ReLU network of the same architecture)."""
    return [name for name in qcfs_modules(model) if f"{name}.lam" not in state_dict]


def init_thresholds(model: nn.Module, names: Sequence[str], calibration: Any, *,
                    percentile: float = INIT_PERCENTILE, batch_size: int = 256,
                    device: Any = "cpu") -> dict[str, float]:
    """Set the :math:`\\lambda` of the QCFS modules ``names`` to the ``percentile`` of the
    ReLU activation at their place (the model with those QCFS read as ReLUs) on
    ``calibration``; returns the values.
    """
    from bsnn_bindsnet.normalize import activation_scales

    if not names:
        return {}
    relu_view = copy.deepcopy(model)
    for name in names:
        parent, _, leaf = name.rpartition(".")
        setattr(relu_view.get_submodule(parent) if parent else relu_view, leaf, nn.ReLU())
    points = {name: relu_view.get_submodule(name) for name in names}
    lambdas = activation_scales(relu_view.to(device), points, calibration,
                                percentile=percentile, batch_size=batch_size, device=device)
    modules = qcfs_modules(model)
    for name, lam in lambdas.items():
        modules[name].lam.data.fill_(float(lam))
    return lambdas
