"""Helpers shared by the experiment scripts: dataset -> preset prefix, JSON and figure output."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bsnn_bindsnet.checkpoint import atomic_write_json

# Dataset name -> the prefix of its training presets (see `bsnn presets`).
PRESET_PREFIX = {"digits": "digits", "fashion-mnist": "fmnist", "cifar100": "cifar100",
                 "imagenet": "imagenet"}


def preset_prefix(dataset: str) -> str:
    """The preset family of ``dataset``; unknown names raise a ValueError listing the choices."""
    if dataset not in PRESET_PREFIX:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of "
                         f"{', '.join(sorted(PRESET_PREFIX))}")
    return PRESET_PREFIX[dataset]


def write_results(out_dir: Path, config: Mapping[str, Any], results: Any) -> Path:
    """Write ``{"config": ..., "results": ...}`` to ``out_dir/results.json`` atomically."""
    return atomic_write_json({"config": _jsonable(config), "results": results},
                             Path(out_dir) / "results.json")


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def savefig(fig: Any, path: Path) -> Path:
    """Save a matplotlib figure (PNG, 150 dpi) and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return path


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
