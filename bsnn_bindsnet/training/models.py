"""Every trainable model by name: the constrained ANNs of :mod:`bsnn_bindsnet.ann.models` and
the direct-training B-SNN (``direct_bsnn``, :class:`~bsnn_bindsnet.direct.model.DirectBSNN`),
and :func:`load_model`, which rebuilds any of them from a model file.

Model files (``model.pt``, :func:`bsnn_bindsnet.checkpoint.save_model`) store the registry name
and its kwargs, so :func:`load_model` rebuilds any of them with :func:`get_model`: the one model
registry of the package.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from bsnn_bindsnet.ann.models import ANN_MODELS
from bsnn_bindsnet.checkpoint import load_state_checked, read_model_file
from bsnn_bindsnet.direct.model import LEGACY_RESIDUAL_FACTOR, DirectBSNN

__all__ = ["MODELS", "get_model", "load_model"]

MODELS: dict[str, Callable[..., nn.Module]] = {**ANN_MODELS, "direct_bsnn": DirectBSNN}


def get_model(name: str, **kw: Any) -> nn.Module:
    """Build a registered model; unknown names raise a ``ValueError`` listing the choices."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    return MODELS[name](**kw)


def _legacy_kwargs(blob: Mapping[str, Any]) -> dict[str, Any]:
    """The saved kwargs, completed with the values that older files relied on as defaults.

    Direct-route models saved before ``residual_factor`` was recorded were built with the
    then-default ``f = 0.5``; the default is now the paper's ``f = 1``, so such a file states
    its ``f`` here instead of silently changing meaning.
    """
    kwargs = dict(blob["model_kwargs"])
    if blob["model"] == "direct_bsnn" and "residual_factor" not in kwargs:
        kwargs["residual_factor"] = LEGACY_RESIDUAL_FACTOR
    return kwargs


def load_model(path: str | os.PathLike, **overrides: Any) -> nn.Module:
    """Rebuild and load the model saved at ``path``; ``overrides`` replace saved kwargs."""
    blob = read_model_file(path)
    model = get_model(blob["model"], **{**_legacy_kwargs(blob), **overrides})
    load_state_checked(model, blob["state_dict"], source=str(path))
    return model
