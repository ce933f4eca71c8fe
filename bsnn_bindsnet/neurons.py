r"""The neuron as plug-in parts: reset strategies, initial potentials, and their registries.

An integrate-and-fire step (:func:`bsnn_bindsnet.functional.if_step`) integrates, compares with
the threshold :math:`\theta`, and hands the spikes to a *reset strategy*, a small object with a
pure ``__call__(v, s, thresh) -> v`` (Sinabs' ``MembraneSubtract`` / ``MembraneReset``). A
*v-init strategy* gives the initial potential :math:`v_0` from :math:`\theta`.

Both are registered by name in :data:`RESETS` and :data:`V_INITS`; a conversion plan stores the
names, the CLI offers ``tuple(RESETS)`` / ``tuple(V_INITS)`` as choices, and
:func:`check_neuron_options` refuses a name that is not registered (a saved plan with an unknown
reset is an error, never a silent reset to zero). Add a neuron model with
:func:`register_reset` / :func:`register_v_init`; nothing else in the package changes.

This module imports torch but not BindsNET; :func:`bsnn_bindsnet.nodes.if_nodes` builds the
BindsNET layer of a registered strategy.
"""

from __future__ import annotations


from typing import Any

import torch
from torch import Tensor

__all__ = ["RESETS", "V_INITS", "HalfThreshold", "MembraneReset", "MembraneSubtract",
           "ResetStrategy", "VInitStrategy", "ZeroPotential", "check_neuron_options",
           "get_reset", "get_v_init", "register_reset", "register_v_init",
           "unregister_reset", "unregister_v_init"]


class ResetStrategy:
    r"""What happens to the membrane potential after a step.

    Subclasses implement the pure ``__call__``; ``reset_`` is its in-place form, used by the
    BindsNET nodes on their own ``v`` buffer. The default ``reset_`` copies the pure result,
    so a new strategy needs ``__call__`` only (override ``reset_`` for speed). ``label`` is a
    short name for tables and figures (``"SIF"``).
    """

    label: str = ""

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

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MembraneSubtract(ResetStrategy):
    r"""Reset by subtraction (SIF): :math:`v \leftarrow v - \theta s`; the residue is kept."""

    label = "SIF"

    def __call__(self, v: Tensor, s: Tensor, thresh: Tensor) -> Tensor:
        return v - s.to(v.dtype) * thresh

    def reset_(self, v: Tensor, s: Tensor, thresh: Tensor) -> None:
        v.addcmul_(s, thresh, value=-1.0)  # v - theta * s, fused


class MembraneReset(ResetStrategy):
    r"""Reset to zero (RIF): :math:`v \leftarrow (1 - s)\, v`; the residue is lost."""

    label = "RIF"

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


RESETS: dict[str, ResetStrategy] = {"subtract": MembraneSubtract(), "zero": MembraneReset()}
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


def register_reset(name: str, strategy: ResetStrategy, *, replace: bool = False) -> ResetStrategy:
    """Register a reset strategy under ``name`` (for plans, the CLI and :func:`~bsnn_bindsnet.nodes.if_nodes`).

    Raises:
        ValueError: ``name`` is taken by another strategy and ``replace`` is false.
    """
    return _register(RESETS, "reset", name, strategy, replace)


def register_v_init(name: str, strategy: VInitStrategy, *,
                    replace: bool = False) -> VInitStrategy:
    """Register a v-init strategy under ``name``; errors as in :func:`register_reset`."""
    return _register(V_INITS, "v_init", name, strategy, replace)


def unregister_reset(name: str) -> ResetStrategy:
    """Remove the reset ``name`` (a test's cleanup); returns the strategy it held."""
    return _unregister(RESETS, "reset", name)


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


def get_reset(reset: str | ResetStrategy) -> ResetStrategy:
    """The strategy registered as ``reset``, or ``reset`` itself if it is not a string."""
    if isinstance(reset, str):
        _check("reset", reset, RESETS)
        return RESETS[reset]
    if not callable(reset):
        raise TypeError(f"reset must be a registered name or a strategy, got {reset!r}")
    return reset


def get_v_init(v_init: str | VInitStrategy) -> VInitStrategy:
    """The strategy registered as ``v_init``, or ``v_init`` itself if it is not a string."""
    if isinstance(v_init, str):
        _check("v_init", v_init, V_INITS)
        return V_INITS[v_init]
    if not callable(v_init):
        raise TypeError(f"v_init must be a registered name or a strategy, got {v_init!r}")
    return v_init
