"""Every trainable model by name: the constrained ANNs of :mod:`bsnn_bindsnet.ann.models` and
the direct-training B-SNN (``direct_bsnn``, :class:`~bsnn_bindsnet.direct.model.DirectBSNN`).

Model files (``model.pt``) store the registry name and its kwargs, so
:func:`bsnn_bindsnet.checkpoint.load_model` rebuilds any of them with :func:`get_model`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from bsnn_bindsnet.ann.models import MODELS as ANN_MODELS
from bsnn_bindsnet.direct.model import DirectBSNN

__all__ = ["MODELS", "get_model"]

MODELS: dict[str, Callable[..., nn.Module]] = {**ANN_MODELS, "direct_bsnn": DirectBSNN}


def get_model(name: str, **kw: Any) -> nn.Module:
    """Build a registered model; unknown names raise a ``ValueError`` listing the choices."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    return MODELS[name](**kw)
