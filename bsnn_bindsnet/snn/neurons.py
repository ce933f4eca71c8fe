r"""Neuron models as registered objects, initial potentials, and their registries.

An integrate-and-fire step (:func:`bsnn_bindsnet.snn.functional.if_step`) integrates, compares with
the threshold :math:`\theta`, and hands the spikes to the *neuron model*'s reset, a pure
``__call__(v, s, thresh) -> v`` (Sinabs' ``MembraneSubtract`` / ``MembraneReset``). Everything
else a neuron model is asked by the rest of the package is an attribute or method of the same
object (:class:`NeuronModel`):

- ``label``: a short name for tables and figures (``"SIF"``);
- ``reset_``: the in-place reset the BindsNET nodes run on their ``v`` buffer;
- :meth:`NeuronModel.make_nodes`: the node factory (``None``: the default
  :class:`~bsnn_bindsnet.snn.nodes.BinaryIFNodes` with this reset);
- :meth:`NeuronModel.nir_node`: its NIR node, or a refusal with the reason;
- ``direct``: whether the surrogate-gradient route (:mod:`bsnn_bindsnet.direct`) may train it
  (its ``__call__`` takes float spikes and keeps their gradient);
- ``imc_rule``: how XNOR-BSNN's periphery applies it, for :func:`~bsnn_bindsnet.imc.export_imc`
  (``None``: refused there).

A *v-init strategy* gives the initial potential :math:`v_0` from :math:`\theta`; it is chosen
independently of the neuron model.

Both are registered by name in :data:`NEURONS` (alias :data:`RESETS`) and :data:`V_INITS`; a plan
stores the names (``plan.reset``, ``plan.v_init``), the CLI offers the registered names,
and :func:`check_neuron_options` refuses a name that is not registered (a saved plan with an
unknown reset is an error, never a silent reset to zero). An edge that cannot handle a model
refuses it by name (:func:`unsupported`). Add a model with :func:`register_neuron`
(alias :func:`register_reset`) / :func:`register_v_init`; nothing else in the package changes.

This module imports torch but neither BindsNET nor NIR; the names of the built-in models are
also spelled out torch-free in :mod:`bsnn_bindsnet.cli.checks` for the CLI's early checks.
"""

from __future__ import annotations


from typing import Any

import torch
from torch import Tensor

__all__ = ["NEURONS", "RESETS", "V_INITS", "HalfThreshold", "MembraneReset", "MembraneSubtract",
           "NeuronModel", "ResetStrategy", "VInitStrategy", "ZeroPotential",
           "check_neuron_options", "get_neuron", "get_reset", "get_v_init", "register_neuron",
           "register_reset", "register_v_init", "unregister_neuron", "unregister_reset",
           "unregister_v_init", "unsupported"]


class NeuronModel:
    r"""An integrate-and-fire neuron model: its reset, and what every edge of the package needs
    to know about it (see the module docstring).

    Subclasses implement the pure ``__call__``; ``reset_`` is its in-place form, used by the
    BindsNET nodes on their own ``v`` buffer. The default ``reset_`` copies the pure result,
    so a new model needs ``__call__`` only (override ``reset_`` for speed). A new model is
    refused by NIR export (override :meth:`nir_node`) and IMC export (set ``imc_rule``) until
    it says how; the direct route trains it (set ``direct = False`` if ``__call__`` cannot
    take float spikes).
    """

    label: str = ""
    direct: bool = True
    imc_rule: str | None = None

    def __call__(self, v: Tensor, s: Tensor, thresh: Tensor) -> Tensor:
        """The potential after the reset.

        Args:
            v: Potential after integration, :math:`v_{t-1} + x_t` (not modified).
            s: Spikes of this step, :math:`[v \\ge \\theta]`: bool, or float with a surrogate
                gradient on the direct-training route.
            thresh: Threshold :math:`\\theta`, broadcastable to ``v``.
        """
        raise NotImplementedError

    def reset_(self, v: Tensor, s: Tensor, thresh: Tensor) -> None:
        """Apply the reset to ``v`` in place."""
        v.copy_(self(v, s, thresh))

    def make_nodes(self, shape: Any, thresh: Any, reset: str, v_init: str,
                   **kwargs: Any) -> Any:
        """The BindsNET node layer of one IF layer, or ``None`` for the default
        (:class:`~bsnn_bindsnet.snn.nodes.BinaryIFNodes` with ``reset``); a model with more
        state than ``v`` returns its own nodes here (``reset`` is its registered name)."""
        return None

    def nir_node(self, nir: Any, v_threshold: Any) -> Any:
        """Its NIR node (``nir`` is the imported ``nir`` package; ``v_threshold`` a float32
        array of the layer's shape), or ``NotImplementedError`` with the reason."""
        raise NotImplementedError("it defines no NIR node (override NeuronModel.nir_node)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


ResetStrategy = NeuronModel  # the name of issue 13's guide


def _nir_if(nir: Any, v_threshold: Any) -> Any:
    import numpy as np

    return nir.IF(r=np.ones(v_threshold.shape, np.float32), v_threshold=v_threshold,
                  v_reset=np.zeros(v_threshold.shape, np.float32))


class MembraneSubtract(NeuronModel):
    r"""Reset by subtraction (SIF): :math:`v \leftarrow v - \theta s`; the residue is kept.
    NIR: an ``IF`` (``v_reset = 0``) whose graph metadata says ``reset = "subtract"``
    (:mod:`bsnn_bindsnet.interop.nir_io`)."""

    label = "SIF"
    imc_rule = "v <- v - thresh at a spike"
    fused = "subtract"  # the one-pass kernel of bsnn_bindsnet.snn.fused_if

    def nir_node(self, nir: Any, v_threshold: Any) -> Any:
        return _nir_if(nir, v_threshold)

    def __call__(self, v: Tensor, s: Tensor, thresh: Tensor) -> Tensor:
        return v - s.to(v.dtype) * thresh

    def reset_(self, v: Tensor, s: Tensor, thresh: Tensor) -> None:
        v.addcmul_(s, thresh, value=-1.0)  # v - theta * s, fused


class MembraneReset(NeuronModel):
    r"""Reset to zero (RIF): :math:`v \leftarrow (1 - s)\, v`; the residue is lost. NIR: its own
    ``IF`` semantics (``v_reset = 0``)."""

    label = "RIF"
    imc_rule = "v <- 0 at a spike"
    fused = "zero"  # the one-pass kernel of bsnn_bindsnet.snn.fused_if

    def nir_node(self, nir: Any, v_threshold: Any) -> Any:
        return _nir_if(nir, v_threshold)

    def __call__(self, v: Tensor, s: Tensor, thresh: Tensor) -> Tensor:
        if s.dtype == torch.bool:
            return torch.where(s, torch.zeros_like(v), v)
        return v * (1 - s)  # float spikes keep the surrogate gradient

    def reset_(self, v: Tensor, s: Tensor, thresh: Tensor) -> None:
        v.mul_(~s if s.dtype == torch.bool else 1 - s)


class VInitStrategy:
    r"""The initial potential :math:`v_0` of an IF layer, from its threshold.

    ``__call__(thresh)`` returns :math:`v_0` shaped as ``thresh`` (``[]``, ``[C, 1, 1]`` or
    ``[*shape]``); the nodes broadcast it to ``[B, *shape]``.
    """

    def __call__(self, thresh: Tensor) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ZeroPotential(VInitStrategy):
    r""":math:`v_0 = 0` (the paper's)."""

    def __call__(self, thresh: Tensor) -> Tensor:
        return torch.zeros_like(thresh)


class HalfThreshold(VInitStrategy):
    r""":math:`v_0 = \theta / 2`: spike counts round to the nearest instead of down."""

    def __call__(self, thresh: Tensor) -> Tensor:
        return 0.5 * thresh


NEURONS: dict[str, NeuronModel] = {"subtract": MembraneSubtract(), "zero": MembraneReset()}
RESETS = NEURONS  # a plan's ``reset`` is the name of its neuron model
V_INITS: dict[str, VInitStrategy] = {"zero": ZeroPotential(), "half": HalfThreshold()}


def _register(registry: dict[str, Any], kind: str, name: str, strategy: Any,
              replace: bool) -> Any:
    if not isinstance(name, str) or not name:
        raise ValueError(f"a {kind} name must be a non-empty string, got {name!r}")
    if not callable(strategy):
        raise TypeError(f"a {kind} strategy must be callable, got {type(strategy).__name__}")
    if name in registry and not replace and registry[name] is not strategy:
        raise ValueError(f"{kind} {name!r} is already registered ({registry[name]!r}); pass "
                         "replace=True to override it")
    registry[name] = strategy
    return strategy


def register_neuron(name: str, model: NeuronModel, *, replace: bool = False) -> NeuronModel:
    """Register a neuron model under ``name`` (for plans, the CLI, the nodes and every export).

    Raises:
        ValueError: ``name`` is taken by another model and ``replace`` is false.
    """
    return _register(NEURONS, "reset", name, model, replace)


register_reset = register_neuron


def register_v_init(name: str, strategy: VInitStrategy, *,
                    replace: bool = False) -> VInitStrategy:
    """Register a v-init strategy under ``name``; errors as in :func:`register_reset`."""
    return _register(V_INITS, "v_init", name, strategy, replace)


def unregister_neuron(name: str) -> NeuronModel:
    """Remove the neuron model ``name`` (a test's cleanup); returns the model it held."""
    return _unregister(NEURONS, "reset", name)


unregister_reset = unregister_neuron


def unregister_v_init(name: str) -> VInitStrategy:
    """Remove the v-init ``name``; returns the strategy it held."""
    return _unregister(V_INITS, "v_init", name)


def _unregister(registry: dict[str, Any], kind: str, name: str) -> Any:
    if name not in registry:
        raise ValueError(f"{kind} {name!r} is not registered; registered: "
                         f"{', '.join(registry)}")
    return registry.pop(name)


def check_neuron_options(reset: str, v_init: str, where: str = "") -> None:
    """Refuse a reset or initial potential that is not registered.

    Args:
        reset: A key of :data:`RESETS`.
        v_init: A key of :data:`V_INITS`.
        where: Prefix of the message (e.g. the path of a saved plan, ending in ``": "``).

    Raises:
        ValueError: ``"{where}reset 'x' is unknown; expected one of subtract, zero"``.
    """
    _check("reset", reset, RESETS, where)
    _check("v_init", v_init, V_INITS, where)


def _check(field: str, value: Any, registry: dict[str, Any], where: str = "") -> None:
    if not isinstance(value, str) or value not in registry:
        raise ValueError(f"{where}{field} {value!r} is unknown; expected one of "
                         f"{', '.join(registry)}")


def get_neuron(reset: str | NeuronModel) -> NeuronModel:
    """The model registered as ``reset``, or ``reset`` itself if it is not a string."""
    if isinstance(reset, str):
        _check("reset", reset, RESETS)
        return RESETS[reset]
    if not callable(reset):
        raise TypeError(f"reset must be a registered name or a strategy, got {reset!r}")
    return reset


get_reset = get_neuron


def unsupported(name: str, edge: str, reason: str) -> str:
    """The one message of an edge that refuses a neuron model:
    ``"neuron model 'x' is not supported by <edge>: <reason>"``."""
    return f"neuron model {name!r} is not supported by {edge}: {reason}"


def get_v_init(v_init: str | VInitStrategy) -> VInitStrategy:
    """The strategy registered as ``v_init``, or ``v_init`` itself if it is not a string."""
    if isinstance(v_init, str):
        _check("v_init", v_init, V_INITS)
        return V_INITS[v_init]
    if not callable(v_init):
        raise TypeError(f"v_init must be a registered name or a strategy, got {v_init!r}")
    return v_init
